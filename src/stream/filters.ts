import { AppError } from '../errors.ts';

/**
 * `filter_conditions` of QueryCallParticipantSessions (docs/stream-api.md §1): a JSON object sent as one
 * URL-encoded query parameter. Only these fields and operators are allowed (the spec's
 * x-stream-filter-fields); anything else is a 400. Parsed once here, then applied in memory by the
 * simulator and turned into SQL by the archive route.
 */
export const PARTICIPANT_FILTER_FIELDS = {
  user_id: { type: 'string', operators: ['$eq', '$in'] },
  session_id: { type: 'string', operators: ['$eq', '$in'] },
  publisher_type: { type: 'string', operators: ['$eq', '$in'] },
  published_tracks: { type: 'string', operators: ['$eq', '$in'] },
  is_live: { type: 'boolean', operators: ['$eq'] },
  is_tech_user: { type: 'boolean', operators: ['$eq'] },
} as const;

export type ParticipantFilterField = keyof typeof PARTICIPANT_FILTER_FIELDS;

export type ParticipantFilter =
  | { readonly field: ParticipantFilterField; readonly op: '$in'; readonly values: readonly (string | boolean)[] }
  | { readonly field: ParticipantFilterField; readonly op: '$eq'; readonly values: readonly [string | boolean] };

export class FilterError extends AppError {
  constructor(message: string) {
    super('FILTER_INVALID', message);
    this.name = 'FilterError';
  }
}

/**
 * Parses the raw query value (already URL-decoded) into a conjunction of conditions.
 * `{ "user_id": "alice" }` is shorthand for `$eq`, as in Stream's other filters.
 * Throws FilterError with a message fit for an API error body.
 */
export function parseParticipantFilter(raw: string | undefined): ParticipantFilter[] {
  if (raw === undefined || raw === '') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new FilterError('filter_conditions is not valid JSON');
  }
  return parseParticipantFilterObject(parsed);
}

/** The same rules as parseParticipantFilter, for a filter that is already a value (JSON or the bracket form). */
export function parseParticipantFilterObject(parsed: unknown): ParticipantFilter[] {
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new FilterError('filter_conditions must be a JSON object');
  }
  const conditions: ParticipantFilter[] = [];
  for (const [field, condition] of Object.entries(parsed)) {
    if (!Object.hasOwn(PARTICIPANT_FILTER_FIELDS, field)) {
      throw new FilterError(`filter field "${field}" is not allowed; allowed: ${Object.keys(PARTICIPANT_FILTER_FIELDS).join(', ')}`);
    }
    const spec = PARTICIPANT_FILTER_FIELDS[field as ParticipantFilterField];
    const entries: [string, unknown][] =
      condition !== null && typeof condition === 'object' && !Array.isArray(condition) ? Object.entries(condition) : [['$eq', condition]];
    if (entries.length === 0) throw new FilterError(`filter on "${field}" has no operator`);
    for (const [op, value] of entries) {
      if (!(spec.operators as readonly string[]).includes(op)) {
        throw new FilterError(`operator "${op}" is not allowed on "${field}"; allowed: ${spec.operators.join(', ')}`);
      }
      if (op === '$in') {
        if (!Array.isArray(value) || value.length === 0 || value.some((v) => typeof v !== spec.type)) {
          throw new FilterError(`"${field}" $in takes a non-empty array of ${spec.type}s`);
        }
        conditions.push({ field: field as ParticipantFilterField, op: '$in', values: value as (string | boolean)[] });
      } else {
        if (typeof value !== spec.type) throw new FilterError(`"${field}" $eq takes a ${spec.type}`);
        conditions.push({ field: field as ParticipantFilterField, op: '$eq', values: [value as string | boolean] });
      }
    }
  }
  return conditions;
}

const BRACKET_KEY = /^filter_conditions\[([^[\]]*)\](?:\[([^[\]]*)\])?(?:\[([^[\]]*)\])?$/;

/**
 * `filter_conditions` from a whole query string, in either encoding, so the archive route and the
 * simulator read a request the same way:
 * - JSON, as every official SDK sends it (docs/stream-api.md §1): `filter_conditions=<URL-encoded JSON>`;
 * - the bracket form that qs-style clients and curl examples write:
 *   `filter_conditions[user_id]=alice` (shorthand for $eq), `filter_conditions[user_id][$eq]=alice`,
 *   `filter_conditions[user_id][$in][]=a&…[$in][]=b` or `…[$in][0]=a&…[$in][1]=b` (indexed values
 *   are taken in index order). Values arrive as text: a boolean field's `true`/`false` become
 *   booleans, anything else is refused by the same rules as the JSON form.
 * Both at once, the JSON form twice, or a bracket key that fits neither shape is a FilterError.
 */
export function parseFilterConditionsQuery(query: URLSearchParams): ParticipantFilter[] {
  const json = query.getAll('filter_conditions');
  const brackets: [string, string][] = [];
  for (const [key, value] of query) {
    if (key.startsWith('filter_conditions[')) brackets.push([key, value]);
  }
  if (json.length > 1) throw new FilterError('filter_conditions must be given once, as URL-encoded JSON');
  if (json.length === 1 && brackets.length > 0) {
    throw new FilterError('filter_conditions is given both as JSON and in the bracket form; use one');
  }
  if (brackets.length === 0) return parseParticipantFilter(json[0]);
  return parseParticipantFilterObject(bracketFilterObject(brackets));
}

function bracketFilterObject(pairs: readonly [string, string][]): Record<string, unknown> {
  const filter: Record<string, Record<string, unknown>> = Object.create(null) as Record<string, Record<string, unknown>>;
  const indexed = new Map<string, [number, string][]>();
  for (const [key, value] of pairs) {
    const match = BRACKET_KEY.exec(key);
    if (!match || match[1] === '') throw new FilterError(`"${key}" is not a filter_conditions[field][operator] key`);
    const field = match[1]!;
    // Unknown fields are refused before anything is keyed by them (no "__proto__" keys).
    if (!Object.hasOwn(PARTICIPANT_FILTER_FIELDS, field)) {
      throw new FilterError(`filter field "${field}" is not allowed; allowed: ${Object.keys(PARTICIPANT_FILTER_FIELDS).join(', ')}`);
    }
    const op = match[2] ?? '$eq';
    const index = match[3];
    const typed = typedValue(field, value);
    filter[field] ??= Object.create(null) as Record<string, unknown>;
    const conditions = filter[field];
    if (op === '$in') {
      if (index !== undefined && index !== '' && !/^\d{1,6}$/.test(index)) throw new FilterError(`"${key}": the $in index must be a whole number`);
      const list = indexed.get(`${field}\u0000$in`) ?? [];
      // Repeated `[]` keys keep their order; indexed ones sort by index after them.
      list.push([index === undefined || index === '' ? -1 : Number(index), typed as string]);
      indexed.set(`${field}\u0000$in`, list);
      conditions.$in = null;
    } else {
      if (index !== undefined) throw new FilterError(`"${key}": only $in takes a list`);
      if (Object.hasOwn(conditions, op)) throw new FilterError(`"${field}" ${op} is given more than once`);
      conditions[op] = typed;
    }
  }
  for (const [key, list] of indexed) {
    const field = key.slice(0, key.indexOf('\u0000'));
    const ordered = list.map((item, position) => ({ item, position })).sort((a, b) => a.item[0] - b.item[0] || a.position - b.position);
    filter[field]!.$in = ordered.map(({ item }) => item[1]);
  }
  return filter;
}

/** Query values are text: a boolean field's "true"/"false" become booleans (other text stays text and is refused by type). */
function typedValue(field: string, value: string): string | boolean {
  const spec = Object.hasOwn(PARTICIPANT_FILTER_FIELDS, field) ? PARTICIPANT_FILTER_FIELDS[field as ParticipantFilterField] : undefined;
  if (spec?.type === 'boolean' && (value === 'true' || value === 'false')) return value === 'true';
  return value;
}

/**
 * The values an entry has for each filter field. `session_id` is read as the entry's
 * user_session_id and `published_tracks` as the kinds it published; Stream does not document
 * either (docs/stream-api.md §9.7), so these are our reading.
 */
export interface FilterableEntry {
  readonly user_id: string;
  readonly user_session_id: string;
  readonly publisher_type: string;
  readonly published_tracks?: readonly string[];
  readonly is_live?: boolean;
  readonly is_tech_user?: boolean;
}

export function matchesParticipantFilter(entry: FilterableEntry, filters: readonly ParticipantFilter[]): boolean {
  return filters.every((filter) => {
    const actual = fieldValues(entry, filter.field);
    return filter.values.some((wanted) => actual.includes(wanted));
  });
}

function fieldValues(entry: FilterableEntry, field: ParticipantFilterField): readonly (string | boolean)[] {
  switch (field) {
    case 'user_id':
      return [entry.user_id];
    case 'session_id':
      return [entry.user_session_id];
    case 'publisher_type':
      return [entry.publisher_type];
    case 'published_tracks':
      return entry.published_tracks ?? [];
    case 'is_live':
      return [entry.is_live ?? false];
    case 'is_tech_user':
      return [entry.is_tech_user ?? false];
  }
}
