import { apiErrorBody, STREAM_ERROR_CODES } from '../../src/stream/api-error.ts';
import { FilterError, matchesParticipantFilter, parseFilterConditionsQuery, type ParticipantFilter } from '../../src/stream/filters.ts';
import { cursorScope, decodeCursor, encodeCursor } from './cursor.ts';
import type { SessionStore } from './session-store.ts';
import { sessionJson, type MissingFieldStyle, type TimestampFormat } from './wire.ts';

/** A response the server writes as is. */
export interface SimResponse {
  readonly status: number;
  readonly body: string;
}

export interface ParticipantSessionsDeps {
  readonly store: SessionStore;
  readonly now: () => Date;
  readonly options: () => {
    readonly notReadyForMs: number;
    readonly timestampFormat: TimestampFormat;
    readonly lastPageNext: 'absent' | 'empty';
    readonly missingFields: MissingFieldStyle;
  };
}

/** The server's answer when `limit` is absent or 0; Stream does not document its own (docs/stream-api.md §9.1). */
export const PARTICIPANT_SESSIONS_DEFAULT_LIMIT = 25;
export const PARTICIPANT_SESSIONS_MAX_LIMIT = 100;
/** Detail is kept this long after the session ends; later the list comes back empty (docs/stream-api.md §8). */
export const RETENTION_MS = 90 * 24 * 60 * 60 * 1000;

/**
 * GET /api/v2/video/call/{type}/{id}/session/{session}/participant_sessions (docs/stream-api.md §1–2).
 * Cursors hold an offset into the (filtered) list; sessions never change once added, so offsets
 * stay valid. Totals describe the whole session whatever the filter.
 */
export function queryParticipantSessions(
  deps: ParticipantSessionsDeps,
  path: { readonly type: string; readonly id: string; readonly session: string },
  query: URLSearchParams,
  startedAt: number,
): SimResponse {
  const fail = (status: number, code: number, message: string): SimResponse => ({
    status,
    body: JSON.stringify(apiErrorBody(status, code, message, { startedAt })),
  });
  const options = deps.options();

  const limit = parseLimit(query.get('limit'));
  if (limit === undefined) return fail(400, STREAM_ERROR_CODES.input, `limit must be a whole number from 0 to ${PARTICIPANT_SESSIONS_MAX_LIMIT}`);
  let filters: ParticipantFilter[];
  try {
    // JSON (what the SDKs send) or the bracket form, read by the parser the archive route uses.
    filters = parseFilterConditionsQuery(query);
  } catch (error) {
    if (error instanceof FilterError) return fail(400, STREAM_ERROR_CODES.input, error.message);
    throw error;
  }

  const stored = deps.store.get(path.session);
  const session = stored?.session;
  if (!stored || !session || session.callType !== path.type || session.callId !== path.id) {
    return fail(404, STREAM_ERROR_CODES.notFound, 'call session not found');
  }
  const nowMs = deps.now().getTime();
  // Right after a call Stream answers 404 until its analytics catch up (docs/stream-api.md §8).
  if (nowMs < session.endedAt.getTime() + options.notReadyForMs) return fail(404, STREAM_ERROR_CODES.notFound, 'call session not found');

  const filterKey = canonicalFilter(filters);
  const scope = cursorScope(stored.scope, filterKey);
  const nextRaw = query.get('next') || undefined;
  const prevRaw = query.get('prev') || undefined;
  if (nextRaw !== undefined && prevRaw !== undefined) return fail(400, STREAM_ERROR_CODES.input, 'pass either next or prev, not both');
  const cursorRaw = nextRaw ?? prevRaw;
  const direction = prevRaw !== undefined ? 'prev' : 'next';
  let offset = 0;
  if (cursorRaw !== undefined) {
    const cursor = decodeCursor(cursorRaw);
    if (!cursor || cursor.d !== direction || typeof cursor.o !== 'number' || !Number.isInteger(cursor.o) || cursor.o < 0) {
      return fail(400, STREAM_ERROR_CODES.input, `${direction} is not a valid cursor`);
    }
    if (cursor.s !== scope) {
      return fail(400, STREAM_ERROR_CODES.input, `${direction} cursor belongs to another call session or filter_conditions`);
    }
    offset = cursor.o;
  }

  const total = session.participants.length;
  const head =
    `{"call_type":${JSON.stringify(session.callType)},"call_id":${JSON.stringify(session.callId)},` +
    `"call_session_id":${JSON.stringify(session.callSessionId)},` +
    `"total_participant_sessions":${total},"total_participant_duration":${session.totalParticipantDuration},` +
    `"session":${sessionJson(session, options.timestampFormat)}${session.extraFieldsJson === undefined ? '' : `,${session.extraFieldsJson}`}`;
  const tail = () => `,"duration":${Math.round(performance.now() - startedAt)}}`;
  const emptyEnd = options.lastPageNext === 'empty';
  if (nowMs - session.endedAt.getTime() > RETENTION_MS) {
    return { status: 200, body: `${head},"participants_sessions":[]${emptyEnd ? ',"next":"","prev":""' : ''}${tail()}` };
  }

  const indices =
    filters.length === 0
      ? undefined
      : stored.filteredIndices(filterKey, () => {
          const kept: number[] = [];
          session.participants.forEach((p, i) => {
            if (matchesParticipantFilter(p, filters)) kept.push(i);
          });
          return kept;
        });
  const count = indices ? indices.length : total;
  const start = direction === 'next' ? Math.min(offset, count) : Math.max(0, Math.min(offset, count) - limit);
  const end = direction === 'next' ? Math.min(start + limit, count) : Math.min(offset, count);
  const page = stored.entriesJson(options.timestampFormat, options.missingFields, indices ? indices.slice(start, end) : range(start, end));

  let body = `${head},"participants_sessions":[${page.join(',')}]`;
  if (end < count) body += `,"next":"${encodeCursor({ s: scope, o: end, d: 'next' })}"`;
  else if (emptyEnd) body += ',"next":""';
  if (start > 0) body += `,"prev":"${encodeCursor({ s: scope, o: start, d: 'prev' })}"`;
  else if (emptyEnd) body += ',"prev":""';
  return { status: 200, body: body + tail() };
}

function* range(start: number, end: number): Generator<number> {
  for (let i = start; i < end; i++) yield i;
}

function parseLimit(raw: string | null): number | undefined {
  if (raw === null || raw === '') return PARTICIPANT_SESSIONS_DEFAULT_LIMIT;
  if (!/^\d{1,4}$/.test(raw)) return undefined;
  const limit = Number(raw);
  if (limit > PARTICIPANT_SESSIONS_MAX_LIMIT) return undefined;
  return limit === 0 ? PARTICIPANT_SESSIONS_DEFAULT_LIMIT : limit;
}

/** The same conditions in any key order give the same key, so cursors survive reordering. */
function canonicalFilter(filters: readonly ParticipantFilter[]): string {
  return JSON.stringify(filters.map((f) => [f.field, f.op, f.values]).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)));
}
