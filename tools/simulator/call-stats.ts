import { apiErrorBody, STREAM_ERROR_CODES } from '../../src/stream/api-error.ts';
import { callStatsCounts } from './counts.ts';
import { cursorScope, decodeCursor, encodeCursor } from './cursor.ts';
import type { SimResponse } from './participant-sessions.ts';
import type { SessionStore, StoredSession } from './session-store.ts';
import { timestampValue, type TimestampFormat } from './wire.ts';

export interface CallStatsDeps {
  readonly store: SessionStore;
  readonly now: () => Date;
  readonly options: () => {
    readonly notReadyForMs: number;
    readonly timestampFormat: TimestampFormat;
    readonly lastPageNext: 'absent' | 'empty';
  };
}

/** Used when `limit` is absent or 0 (Stream documents none). */
export const DEFAULT_CALL_STATS_LIMIT = 25;
const MAX_LIMIT = 100;
const DATE_FIELDS = ['session_started_at', 'session_ended_at', 'generated_at', 'updated_at'] as const;
type DateField = (typeof DATE_FIELDS)[number];
const DATE_OPERATORS = ['$eq', '$gt', '$gte', '$lt', '$lte'] as const;
type DateOperator = (typeof DATE_OPERATORS)[number];

interface Row {
  readonly stored: StoredSession;
  readonly cid: string;
  readonly id: string;
  readonly times: Readonly<Record<DateField, number>>;
}
type Predicate = (row: Row) => boolean;
interface SortSpec {
  readonly field: DateField;
  readonly direction: 1 | -1;
  readonly cidDirection: 1 | -1;
}
type SortKey = readonly [number, string, string];

class QueryError extends Error {}

/**
 * POST /api/v2/video/call_stats (QueryCallSessionStats, docs/stream-api.md §7), the enumerator the
 * reconciler pages through. Filters: the four date fields ($eq $gt $gte $lt $lte with ISO
 * strings), call_cid and call_session_id ($eq), is_active ($eq), and $and of those. Sort: one of
 * the date fields, optionally followed by call_cid; default session_ended_at then call_cid,
 * ascending. A session is listed once its report is generated (endedAt + notReadyForMs), the same
 * moment participant_sessions stops answering 404. Cursors are keysets, so sessions added while a
 * client pages do not shift what it has not read yet.
 */
export function createCallStatsQuery(deps: CallStatsDeps): (body: unknown, startedAt: number) => SimResponse {
  // Sorted rows per sort order, rebuilt only when sessions are added or the report delay changes.
  const sorted = new Map<string, Row[]>();
  let sortedFor = '';
  const sortedRows = (sort: SortSpec, notReadyForMs: number): Row[] => {
    const stamp = `${deps.store.version}/${notReadyForMs}`;
    if (stamp !== sortedFor) {
      sorted.clear();
      sortedFor = stamp;
    }
    const key = `${sort.field}/${sort.direction}/${sort.cidDirection}`;
    let rows = sorted.get(key);
    if (!rows) {
      rows = [...deps.store.all()].map((stored) => toRow(stored, notReadyForMs));
      const compare = comparator(sort);
      rows.sort((a, b) => compare(keyOf(a, sort), keyOf(b, sort)));
      sorted.set(key, rows);
    }
    return rows;
  };
  return (body, startedAt) => queryCallSessionStats(deps, sortedRows, body, startedAt);
}

function queryCallSessionStats(
  deps: CallStatsDeps,
  sortedRows: (sort: SortSpec, notReadyForMs: number) => Row[],
  body: unknown,
  startedAt: number,
): SimResponse {
  const options = deps.options();
  try {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new QueryError('request body must be a JSON object');
    const request = body as Record<string, unknown>;
    const limit = parseLimit(request.limit);
    const predicates = request.filter_conditions === undefined ? [] : parseFilter(request.filter_conditions);
    const sort = parseSort(request.sort);
    const scope = cursorScope('call_stats', stableJson(request.filter_conditions ?? {}), stableJson(sort));
    const next = parseCursor(request.next, 'next', scope);
    const prev = parseCursor(request.prev, 'prev', scope);
    if (next && prev) throw new QueryError('pass either next or prev, not both');

    const nowMs = deps.now().getTime();
    const rows = sortedRows(sort, options.notReadyForMs).filter((row) => row.times.generated_at <= nowMs && predicates.every((p) => p(row)));
    const compare = comparator(sort);

    let start = 0;
    let end = Math.min(limit, rows.length);
    if (next) {
      start = firstIndex(rows, (row) => compare(keyOf(row, sort), next) > 0);
      end = Math.min(start + limit, rows.length);
    } else if (prev) {
      end = firstIndex(rows, (row) => compare(keyOf(row, sort), prev) >= 0);
      start = Math.max(0, end - limit);
    }
    const page = rows.slice(start, end);
    const response: Record<string, unknown> = { call_stats: page.map((row) => rowJson(row, options.timestampFormat)) };
    const emptyEnd = options.lastPageNext === 'empty';
    const last = page[page.length - 1];
    const first = page[0];
    if (end < rows.length && last) response.next = encodeCursor({ s: scope, k: keyOf(last, sort), d: 'next' });
    else if (emptyEnd) response.next = '';
    if (start > 0 && first) response.prev = encodeCursor({ s: scope, k: keyOf(first, sort), d: 'prev' });
    else if (emptyEnd) response.prev = '';
    response.duration = `${(performance.now() - startedAt).toFixed(2)}ms`;
    // The spec lists 201 as QueryCallSessionStats' success status (a POST query); clients must accept any 2xx.
    return { status: 201, body: JSON.stringify(response) };
  } catch (error) {
    if (!(error instanceof QueryError)) throw error;
    return { status: 400, body: JSON.stringify(apiErrorBody(400, STREAM_ERROR_CODES.input, error.message, { startedAt })) };
  }
}

function toRow(stored: StoredSession, notReadyForMs: number): Row {
  const { session } = stored;
  const generated = session.endedAt.getTime() + notReadyForMs;
  return {
    stored,
    cid: `${session.callType}:${session.callId}`,
    id: session.callSessionId,
    times: {
      session_started_at: session.startedAt.getTime(),
      session_ended_at: session.endedAt.getTime(),
      generated_at: generated,
      updated_at: generated,
    },
  };
}

/**
 * A CallStatsSessionResponse. A session generated with `statsRow` quirks leaves out what they say
 * (the window is optional in Stream's spec) or names no usable session, as a broken row would.
 */
function rowJson(row: Row, format: TimestampFormat): Record<string, unknown> {
  const { session } = row.stored;
  const json: Record<string, unknown> = {
    call_type: session.callType,
    call_id: session.callId,
    call_session_id: session.callSessionId,
    generated_at: timestampValue(new Date(row.times.generated_at), format),
    counts: callStatsCounts(session),
    call_started_at: timestampValue(session.startedAt, format),
    call_ended_at: timestampValue(session.endedAt, format),
  };
  const quirks = session.statsRow;
  if (!quirks) return json;
  for (const field of quirks.omit ?? []) delete json[field];
  if (quirks.unusable === 'no_call_session_id') delete json.call_session_id;
  else if (quirks.unusable === 'call_id_not_string') json.call_id = Number.parseInt(session.callId.replace(/\D/g, '').slice(0, 9) || '0', 10);
  return json;
}

function parseLimit(value: unknown): number {
  if (value === undefined || value === null || value === 0) return DEFAULT_CALL_STATS_LIMIT;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_LIMIT) {
    throw new QueryError(`limit must be a whole number from 0 to ${MAX_LIMIT}`);
  }
  return value;
}

function parseFilter(value: unknown): Predicate[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new QueryError('filter_conditions must be a JSON object');
  const predicates: Predicate[] = [];
  for (const [field, condition] of Object.entries(value)) {
    if (field === '$and') {
      if (!Array.isArray(condition)) throw new QueryError('$and takes an array of filter objects');
      for (const inner of condition) predicates.push(...parseFilter(inner));
    } else if ((DATE_FIELDS as readonly string[]).includes(field)) {
      for (const [op, operand] of operatorEntries(condition)) predicates.push(datePredicate(field as DateField, op, operand));
    } else if (field === 'call_cid' || field === 'call_session_id') {
      for (const [op, operand] of operatorEntries(condition)) {
        if (op !== '$eq' || typeof operand !== 'string') throw new QueryError(`${field} takes $eq with a string`);
        predicates.push(field === 'call_cid' ? (row) => row.cid === operand : (row) => row.id === operand);
      }
    } else if (field === 'is_active') {
      for (const [op, operand] of operatorEntries(condition)) {
        if (op !== '$eq' || typeof operand !== 'boolean') throw new QueryError('is_active takes $eq with a boolean');
        // Every session the simulator holds has ended.
        predicates.push(() => operand === false);
      }
    } else {
      throw new QueryError(`filter field "${field}" is not supported; supported: ${[...DATE_FIELDS, 'call_cid', 'call_session_id', 'is_active'].join(', ')}`);
    }
  }
  return predicates;
}

/** `{ field: value }` is shorthand for `{ field: { $eq: value } }`. */
function operatorEntries(condition: unknown): [string, unknown][] {
  if (condition !== null && typeof condition === 'object' && !Array.isArray(condition)) {
    const entries = Object.entries(condition);
    if (entries.length === 0) throw new QueryError('a filter condition needs an operator');
    return entries;
  }
  return [['$eq', condition]];
}

function datePredicate(field: DateField, op: string, operand: unknown): Predicate {
  if (!(DATE_OPERATORS as readonly string[]).includes(op)) {
    throw new QueryError(`operator "${op}" is not allowed on "${field}"; allowed: ${DATE_OPERATORS.join(', ')}`);
  }
  const at = typeof operand === 'string' && /^\d{4}-\d{2}-\d{2}/.test(operand) ? Date.parse(operand) : Number.NaN;
  if (Number.isNaN(at)) throw new QueryError(`"${field}" ${op} takes an ISO 8601 date string`);
  const compare: Record<DateOperator, (t: number) => boolean> = {
    $eq: (t) => t === at,
    $gt: (t) => t > at,
    $gte: (t) => t >= at,
    $lt: (t) => t < at,
    $lte: (t) => t <= at,
  };
  const test = compare[op as DateOperator];
  return (row) => test(row.times[field]);
}

function parseSort(value: unknown): SortSpec {
  if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) {
    return { field: 'session_ended_at', direction: 1, cidDirection: 1 };
  }
  if (!Array.isArray(value) || value.length > 2) throw new QueryError('sort takes an array of at most 2 {field, direction} objects');
  const [primary, secondary] = value.map(parseSortEntry);
  if (!primary || !(DATE_FIELDS as readonly string[]).includes(primary.field)) {
    throw new QueryError(`sort must start with one of ${DATE_FIELDS.join(', ')}`);
  }
  if (secondary && secondary.field !== 'call_cid') throw new QueryError('the second sort field must be call_cid');
  return { field: primary.field as DateField, direction: primary.direction, cidDirection: secondary?.direction ?? 1 };
}

function parseSortEntry(entry: unknown): { field: string; direction: 1 | -1 } {
  if (entry === null || typeof entry !== 'object') throw new QueryError('a sort entry must be an object');
  const { field, direction = 1 } = entry as { field?: unknown; direction?: unknown };
  if (typeof field !== 'string') throw new QueryError('a sort entry needs a field');
  if (direction !== 1 && direction !== -1) throw new QueryError('sort direction must be 1 or -1');
  return { field, direction };
}

function parseCursor(value: unknown, name: 'next' | 'prev', scope: string): SortKey | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const cursor = typeof value === 'string' ? decodeCursor(value) : undefined;
  const key = cursor?.k;
  if (
    !cursor ||
    cursor.d !== name ||
    !Array.isArray(key) ||
    key.length !== 3 ||
    typeof key[0] !== 'number' ||
    typeof key[1] !== 'string' ||
    typeof key[2] !== 'string'
  ) {
    throw new QueryError(`${name} is not a valid cursor`);
  }
  if (cursor.s !== scope) throw new QueryError(`${name} cursor belongs to other filter_conditions or sort`);
  return key as unknown as SortKey;
}

function keyOf(row: Row, sort: SortSpec): SortKey {
  return [row.times[sort.field], row.cid, row.id];
}

/** The call session id breaks the last ties, so the order is total and keysets never skip a row. */
function comparator(sort: SortSpec): (a: SortKey, b: SortKey) => number {
  return (a, b) => {
    if (a[0] !== b[0]) return (a[0] - b[0]) * sort.direction;
    if (a[1] !== b[1]) return (a[1] < b[1] ? -1 : 1) * sort.cidDirection;
    return a[2] === b[2] ? 0 : a[2] < b[2] ? -1 : 1;
  };
}

function firstIndex(rows: readonly Row[], test: (row: Row) => boolean): number {
  const index = rows.findIndex(test);
  return index === -1 ? rows.length : index;
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
