/**
 * Wire-level stand-ins for how Stream's Go and Python server SDKs decode a
 * QueryCallParticipantSessions answer, for SDKs that cannot be installed here. Written from their
 * sources' rules, not their code:
 *
 * - Go, GetStream/getstream-go: `models.go` (QueryCallParticipantSessionsResponse,
 *   ParticipantSessionDetails, APIError) decoded by encoding/json. A string field takes only a
 *   JSON string (or null, left empty), an int field only an integer literal in range (no fraction,
 *   no exponent), a slice only an array. Timestamps are `*Timestamp` (`rfc3339.go`), whose
 *   UnmarshalJSON in the releases users pin reads `null` as nil and anything else with
 *   strconv.ParseInt(text, 10, 64): an RFC 3339 string fails the whole response. (A later commit,
 *   4163efd, also reads strings; pinned versions do not.)
 * - Python, GetStream/stream-py: generated dataclasses (dataclasses_json) whose timestamp fields
 *   decode with `getstream/utils` `datetime_from_unix_ns`: None stays None, a str goes through
 *   int(ts) (so RFC 3339 raises ValueError), then datetime.fromtimestamp(ts / 1e9, tz=UTC), a
 *   float division that keeps about microseconds. json.loads reads integers exactly.
 */

/** A JSON value whose numbers keep their literal text, as Go and Python see them. */
export type Literal =
  | { readonly kind: 'number'; readonly text: string }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'null' }
  | { readonly kind: 'array'; readonly items: Literal[] }
  | { readonly kind: 'object'; readonly fields: Map<string, Literal> };

/** A small strict JSON reader keeping number literals (JSON.parse would round 19-digit integers). */
export function parseLiteralJson(text: string): Literal {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const value = (): Literal => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const fields = new Map<string, Literal>();
      ws();
      if (text[i] === '}') {
        i++;
        return { kind: 'object', fields };
      }
      for (;;) {
        ws();
        const key = value();
        if (key.kind !== 'string') throw new SyntaxError(`object key at ${i} is not a string`);
        ws();
        if (text[i++] !== ':') throw new SyntaxError(`expected : at ${i}`);
        fields.set(key.value, value());
        ws();
        const next = text[i++];
        if (next === '}') return { kind: 'object', fields };
        if (next !== ',') throw new SyntaxError(`expected , or } at ${i}`);
      }
    }
    if (c === '[') {
      i++;
      const items: Literal[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return { kind: 'array', items };
      }
      for (;;) {
        items.push(value());
        ws();
        const next = text[i++];
        if (next === ']') return { kind: 'array', items };
        if (next !== ',') throw new SyntaxError(`expected , or ] at ${i}`);
      }
    }
    if (c === '"') {
      const start = i;
      i++;
      while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
      return { kind: 'string', value: JSON.parse(text.slice(start, i)) as string };
    }
    const literal = /^(-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (!literal) throw new SyntaxError(`unexpected ${c} at ${i}`);
    i += literal[0].length;
    if (literal[0] === 'true' || literal[0] === 'false') return { kind: 'bool', value: literal[0] === 'true' };
    if (literal[0] === 'null') return { kind: 'null' };
    return { kind: 'number', text: literal[0] };
  };
  const result = value();
  ws();
  if (i !== text.length) throw new SyntaxError(`trailing text at ${i}`);
  return result;
}

class DecodeError extends Error {}

const INT64_MAX = 9_223_372_036_854_775_807n;
const INT64_MIN = -9_223_372_036_854_775_808n;

function field(object: Literal, name: string): Literal | undefined {
  if (object.kind !== 'object') throw new DecodeError(`expected object, got ${object.kind}`);
  return object.fields.get(name);
}

// ---- Go (encoding/json into the generated structs) ----

function goString(value: Literal | undefined, path: string): string | undefined {
  if (value === undefined || value.kind === 'null') return undefined;
  if (value.kind !== 'string') throw new DecodeError(`json: cannot unmarshal ${value.kind} into Go struct field ${path} of type string`);
  return value.value;
}

function goInt(value: Literal | undefined, path: string): bigint | undefined {
  if (value === undefined || value.kind === 'null') return undefined;
  if (value.kind !== 'number' || !/^-?\d+$/.test(value.text))
    throw new DecodeError(`json: cannot unmarshal ${value.kind === 'number' ? `number ${value.text}` : value.kind} into Go struct field ${path} of type int`);
  const n = BigInt(value.text);
  if (n > INT64_MAX || n < INT64_MIN) throw new DecodeError(`json: ${value.text} overflows ${path}`);
  return n;
}

/** Timestamp.UnmarshalJSON of the pinned releases: "null", else strconv.ParseInt(data, 10, 64). */
function goTimestamp(value: Literal | undefined, path: string): bigint | undefined {
  if (value === undefined || value.kind === 'null') return undefined;
  if (value.kind !== 'number' || !/^[+-]?\d+$/.test(value.text)) {
    throw new DecodeError(
      `${path}: failed to parse timestamp: strconv.ParseInt: parsing ${value.kind === 'string' ? JSON.stringify(value.value) : value.kind}: invalid syntax`,
    );
  }
  const n = BigInt(value.text);
  if (n > INT64_MAX || n < INT64_MIN) throw new DecodeError(`${path}: strconv.ParseInt: value out of range`);
  return n;
}

function goStrings(value: Literal | undefined, path: string): string[] {
  if (value === undefined || value.kind === 'null') return [];
  if (value.kind !== 'array') throw new DecodeError(`json: cannot unmarshal ${value.kind} into Go struct field ${path} of type []string`);
  return value.items.map((item, index) => goString(item, `${path}[${index}]`) ?? '');
}

export interface GoEntry {
  userId: string;
  userSessionId: string;
  publisherType: string;
  roles: string[];
  /** time.Unix(0, ns): nanoseconds, exact. */
  joinedAtNs?: bigint;
  leftAtNs?: bigint;
  durationInSeconds?: bigint;
}

export interface GoResponse {
  callType: string;
  callId: string;
  callSessionId: string;
  duration: bigint;
  totalParticipantSessions: bigint;
  totalParticipantDuration: bigint;
  participantsSessions: GoEntry[];
  next?: string;
  prev?: string;
}

/** Decodes as getstream-go would; throws DecodeError where json.Unmarshal would return an error. */
export function goDecodeParticipantSessions(text: string): GoResponse {
  const root = parseLiteralJson(text);
  const s = 'QueryCallParticipantSessionsResponse';
  const list = field(root, 'participants_sessions');
  if (list !== undefined && list.kind !== 'null' && list.kind !== 'array')
    throw new DecodeError(`cannot unmarshal ${list.kind} into ${s}.participants_sessions`);
  return {
    callType: goString(field(root, 'call_type'), `${s}.call_type`) ?? '',
    callId: goString(field(root, 'call_id'), `${s}.call_id`) ?? '',
    callSessionId: goString(field(root, 'call_session_id'), `${s}.call_session_id`) ?? '',
    duration: goInt(field(root, 'duration'), `${s}.duration`) ?? 0n,
    totalParticipantSessions: goInt(field(root, 'total_participant_sessions'), `${s}.total_participant_sessions`) ?? 0n,
    totalParticipantDuration: goInt(field(root, 'total_participant_duration'), `${s}.total_participant_duration`) ?? 0n,
    participantsSessions: (list?.kind === 'array' ? list.items : []).map((item, index) => {
      const p = `${s}.participants_sessions[${index}]`;
      const entry: GoEntry = {
        userId: goString(field(item, 'user_id'), `${p}.user_id`) ?? '',
        userSessionId: goString(field(item, 'user_session_id'), `${p}.user_session_id`) ?? '',
        publisherType: goString(field(item, 'publisher_type'), `${p}.publisher_type`) ?? '',
        roles: goStrings(field(item, 'roles'), `${p}.roles`),
      };
      const joined = goTimestamp(field(item, 'joined_at'), `${p}.joined_at`);
      const left = goTimestamp(field(item, 'left_at'), `${p}.left_at`);
      const duration = goInt(field(item, 'duration_in_seconds'), `${p}.duration_in_seconds`);
      if (joined !== undefined) entry.joinedAtNs = joined;
      if (left !== undefined) entry.leftAtNs = left;
      if (duration !== undefined) entry.durationInSeconds = duration;
      return entry;
    }),
    ...optional('next', goString(field(root, 'next'), `${s}.next`)),
    ...optional('prev', goString(field(root, 'prev'), `${s}.prev`)),
  };
}

/** APIError as getstream-go decodes an error body (duration is a string there). */
export function goDecodeApiError(text: string): { code: bigint; message: string; statusCode: bigint; duration: string; exceptionFields: Map<string, string> } {
  const root = parseLiteralJson(text);
  const exception = field(root, 'exception_fields');
  const exceptionFields = new Map<string, string>();
  if (exception !== undefined && exception.kind !== 'null') {
    if (exception.kind !== 'object') throw new DecodeError('APIError.exception_fields: not an object');
    for (const [key, value] of exception.fields) exceptionFields.set(key, goString(value, `APIError.exception_fields.${key}`) ?? '');
  }
  const details = field(root, 'details');
  if (details !== undefined && details.kind !== 'null') {
    if (details.kind !== 'array') throw new DecodeError('APIError.details: not an array');
    for (const [i, d] of details.items.entries()) goInt(d, `APIError.details[${i}]`);
  }
  const unrecoverable = field(root, 'unrecoverable');
  if (unrecoverable !== undefined && unrecoverable.kind !== 'null' && unrecoverable.kind !== 'bool')
    throw new DecodeError('APIError.unrecoverable: not a bool');
  return {
    code: goInt(field(root, 'code'), 'APIError.code') ?? 0n,
    message: goString(field(root, 'message'), 'APIError.message') ?? '',
    statusCode: goInt(field(root, 'StatusCode'), 'APIError.StatusCode') ?? 0n,
    duration: goString(field(root, 'duration'), 'APIError.duration') ?? '',
    exceptionFields,
  };
}

// ---- Python (json.loads, then the generated dataclasses) ----

export interface PyEntry {
  user_id: string;
  user_session_id: string;
  publisher_type: string;
  roles: string[];
  /** datetime.fromtimestamp(ts / 1e9): seconds as a double, as Python holds it. */
  joined_at?: number | null;
  left_at?: number | null;
  duration_in_seconds?: number | null;
}

function pyRequiredString(value: Literal | undefined, path: string): string {
  if (value === undefined) throw new DecodeError(`KeyError: '${path}'`);
  if (value.kind !== 'string') throw new DecodeError(`${path}: expected str, got ${value.kind}`);
  return value.value;
}

function pyInt(value: Literal | undefined, path: string): number | null | undefined {
  if (value === undefined) return undefined;
  if (value.kind === 'null') return null;
  if (value.kind !== 'number' || !/^-?\d+$/.test(value.text))
    throw new DecodeError(`${path}: expected int, got ${value.kind === 'number' ? value.text : value.kind}`);
  return Number(value.text);
}

/** datetime_from_unix_ns: None → None; str → int(ts) (ValueError on RFC 3339); then ts / 1e9. */
function pyTimestamp(value: Literal | undefined, path: string): number | null | undefined {
  if (value === undefined) return undefined;
  if (value.kind === 'null') return null;
  let ns: bigint;
  if (value.kind === 'string') {
    if (!/^\s*[+-]?\d+\s*$/.test(value.value)) throw new DecodeError(`${path}: ValueError: invalid literal for int() with base 10: '${value.value}'`);
    ns = BigInt(value.value.trim());
  } else if (value.kind === 'number' && /^-?\d+$/.test(value.text)) {
    ns = BigInt(value.text);
  } else if (value.kind === 'number') {
    return Number(value.text) / 1e9;
  } else {
    throw new DecodeError(`${path}: TypeError: unsupported operand type(s) for /: '${value.kind}' and 'float'`);
  }
  // Python's int / float is correctly rounded: the nearest double to ns / 10^9.
  return Number(ns) / 1e9;
}

/** Decodes as stream-py would; throws DecodeError where it would raise. */
export function pyDecodeParticipantSessions(text: string): {
  call_type: string;
  call_id: string;
  call_session_id: string;
  duration: number;
  total_participant_sessions: number;
  total_participant_duration: number;
  participants_sessions: PyEntry[];
} {
  const root = parseLiteralJson(text);
  const list = field(root, 'participants_sessions');
  if (list === undefined) throw new DecodeError("KeyError: 'participants_sessions'");
  if (list.kind !== 'array') throw new DecodeError('participants_sessions: expected list');
  const required = (name: string) => {
    const n = pyInt(field(root, name), name);
    if (n === undefined || n === null) throw new DecodeError(`KeyError: '${name}'`);
    return n;
  };
  return {
    call_type: pyRequiredString(field(root, 'call_type'), 'call_type'),
    call_id: pyRequiredString(field(root, 'call_id'), 'call_id'),
    call_session_id: pyRequiredString(field(root, 'call_session_id'), 'call_session_id'),
    duration: required('duration'),
    total_participant_sessions: required('total_participant_sessions'),
    total_participant_duration: required('total_participant_duration'),
    participants_sessions: list.items.map((item, index) => {
      const p = `participants_sessions[${index}]`;
      const roles = field(item, 'roles');
      if (roles === undefined || roles.kind !== 'array') throw new DecodeError(`${p}.roles: expected list`);
      const entry: PyEntry = {
        user_id: pyRequiredString(field(item, 'user_id'), `${p}.user_id`),
        user_session_id: pyRequiredString(field(item, 'user_session_id'), `${p}.user_session_id`),
        publisher_type: pyRequiredString(field(item, 'publisher_type'), `${p}.publisher_type`),
        roles: roles.items.map((r, i) => pyRequiredString(r, `${p}.roles[${i}]`)),
      };
      const joined = pyTimestamp(field(item, 'joined_at'), `${p}.joined_at`);
      const left = pyTimestamp(field(item, 'left_at'), `${p}.left_at`);
      const duration = pyInt(field(item, 'duration_in_seconds'), `${p}.duration_in_seconds`);
      if (joined !== undefined) entry.joined_at = joined;
      if (left !== undefined) entry.left_at = left;
      if (duration !== undefined) entry.duration_in_seconds = duration;
      return entry;
    }),
  };
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}
