import { DAY_MS, MINUTE_MS } from '../../src/time.ts';
import { createRandom, type Random } from './random.ts';

/** One entry of participants_sessions, as Stream would send it (docs/stream-api.md §2). */
export interface SimParticipant {
  user_id: string;
  user_session_id: string;
  publisher_type: string;
  roles: string[];
  joined_at: Date | null;
  left_at: Date | null;
  /**
   * Nanoseconds past joined_at's / left_at's millisecond (0–999,999), as Stream's clock has them
   * (`…35.879421674Z`, `1775658215879421674`); absent means 0. Only sessions generated with
   * `subMillisecond` have them, so precision is tested end to end without changing other seeds.
   */
  joined_at_sub_ms_ns?: number;
  left_at_sub_ms_ns?: number;
  duration_in_seconds: number | null;
  /** Filter-only fields: Stream filters on them but does not return them in the entry. */
  published_tracks: string[];
  is_live: boolean;
  is_tech_user: boolean;
}

/** One call session with its full attendance: the ground truth tests compare archives against. */
export interface SimSession {
  callType: string;
  callId: string;
  callSessionId: string;
  startedAt: Date;
  endedAt: Date;
  /** Sorted by joined_at, then user_session_id: the order the simulator serves them in. */
  participants: SimParticipant[];
  /** Seconds; the sum of every entry's duration_in_seconds (entries without one count 0). */
  totalParticipantDuration: number;
  /** How call_stats lists it, when not as a complete row. */
  statsRow?: SimStatsRowQuirks;
  /** Nanoseconds past startedAt's / endedAt's millisecond, for `session.started_at`/`ended_at` (subMillisecond sessions only). */
  startedAtSubMsNs?: number;
  endedAtSubMsNs?: number;
  /**
   * Top-level members Stream might add to its participant_sessions answer one day, as JSON text
   * (`"something_new":{…}`), served after `session`; only sessions generated with `extraFields`.
   */
  extraFieldsJson?: string;
}

/**
 * Rough edges of a session's call_stats row. Stream requires only call_type, call_id,
 * call_session_id, generated_at and counts in a row (docs/stream-api.md §7), so the session window may
 * be absent; and a row may be broken outright. The simulator still filters and sorts on the
 * session's true times (Stream knows them even when the row leaves them out).
 */
export interface SimStatsRowQuirks {
  /** Fields the row leaves out. */
  readonly omit?: readonly StatsRowField[];
  /** The row names no session we could archive: call_session_id left out, or call_id sent as a number. */
  readonly unusable?: 'no_call_session_id' | 'call_id_not_string';
}

export type StatsRowField = 'call_started_at' | 'call_ended_at' | 'generated_at';

export interface GenerateSessionOptions {
  readonly seed: number | string;
  /** Number of participant-session entries, 0 to MAX_SESSION_SIZE. */
  readonly size: number;
  /** Defaults to the current time, whole seconds; every other time is placed relative to it. */
  readonly endedAt?: Date;
  readonly callType?: string;
  readonly callId?: string;
  readonly callSessionId?: string;
  readonly statsRow?: SimStatsRowQuirks;
  /** Give every timestamp nanoseconds past its millisecond (seeded, most non-zero). */
  readonly subMillisecond?: boolean;
  /** Serve a top-level field Stream's answer does not have today (see SimSession.extraFieldsJson). */
  readonly extraFields?: boolean;
}

export const MAX_SESSION_SIZE = 1_000_000;

const CALL_TYPES = ['default', 'default', 'default', 'livestream', 'audio_room'] as const;
const CALL_NAMES = ['standup', 'town-hall', 'webinar', 'support', 'class', 'interview'] as const;
/** Weighted: most people are plain users, some have no role at all (Stream allows an empty list). */
const ROLE_SETS: readonly (readonly string[])[] = [
  ['user'],
  ['user'],
  ['user'],
  ['user'],
  ['user'],
  ['user'],
  ['guest'],
  ['guest'],
  [],
  ['user', 'moderator'],
  ['call_member'],
  ['admin'],
];
const TRACK_SETS: readonly (readonly string[])[] = [
  [],
  [],
  [],
  [],
  ['audio'],
  ['audio'],
  ['audio', 'video'],
  ['audio', 'video'],
  ['audio', 'video'],
  ['audio', 'video', 'screenshare', 'screenshare_audio'],
];
/**
 * User ids that break careless code: spaces, slashes, quotes, emoji (astral and ZWJ sequences),
 * characters with a meaning in URLs, a backslash that JSON must escape, non-Latin scripts.
 * Each takes the user's index, so ids stay unique.
 */
const ODD_USER_IDS: readonly ((n: number) => string)[] = [
  (n) => `Ada Lovelace ${n}`,
  (n) => `team/alpha/${n}`,
  (n) => `o"brien-${n}`,
  (n) => `d'arcy-${n}`,
  (n) => `🎧 dj-${n}`,
  (n) => `👩🏽‍💻-${n}`,
  (n) => `zoë.núñez+${n}@example.com`,
  (n) => `a&b=c?d#${n}%20`,
  (n) => `back\\slash-${n}`,
  (n) => `名前-${n}`,
];

interface SimUser {
  id: string;
  roles: string[];
  publisherType: 'webrtc' | 'rtmp' | 'srt';
  isTech: boolean;
}

/**
 * A realistic call session: people who rejoin, people on two devices at once, RTMP/SRT ingest,
 * a recorder bot, roles including none, odd user ids, and a few entries without `left_at` or
 * `duration_in_seconds`. Everything but the default `endedAt` follows from `seed`.
 */
export function generateSession(options: GenerateSessionOptions): SimSession {
  const { size } = options;
  if (!Number.isInteger(size) || size < 0 || size > MAX_SESSION_SIZE) {
    throw new RangeError(`session size must be a whole number from 0 to ${MAX_SESSION_SIZE}`);
  }
  // Separate streams, so passing an explicit id does not shift the generated attendance.
  const ids = createRandom(`session-ids:${options.seed}`);
  const random = createRandom(`session:${options.seed}`);

  const endedAt = options.endedAt ?? wholeSecondsNow();
  const callType = options.callType ?? ids.pick(CALL_TYPES);
  const callId = options.callId ?? `${ids.pick(CALL_NAMES)}-${ids.hex(10)}`;
  const callSessionId = options.callSessionId ?? ids.uuid();

  const lengthMs = size <= 10 ? random.int(5, 60) * MINUTE_MS : random.int(20, 180) * MINUTE_MS;
  const endMs = endedAt.getTime();
  const startMs = endMs - lengthMs;

  const users = createUsers(random, size);
  const entryCounts = spreadEntries(random, users.length, size);
  const participants: SimParticipant[] = [];
  let dualDeviceForced = false;
  for (let u = 0; u < users.length; u++) {
    const user = users[u] as SimUser;
    const count = entryCounts[u] as number;
    // The first user with several visits is always on two devices at once, so every session that can show it does.
    const dual = count >= 2 && (!dualDeviceForced || random.chance(0.2));
    if (dual) dualDeviceForced = true;
    for (const [joinMs, leaveMs] of layOutVisits(random, count, startMs, endMs, u === 0, dual)) {
      participants.push({
        user_id: user.id,
        user_session_id: random.uuid(),
        publisher_type: user.publisherType,
        roles: [...user.roles],
        joined_at: new Date(joinMs),
        left_at: new Date(leaveMs),
        duration_in_seconds: Math.round((leaveMs - joinMs) / 1000),
        published_tracks: user.isTech ? [] : user.publisherType === 'webrtc' ? [...random.pick(TRACK_SETS)] : ['audio', 'video'],
        is_live: false,
        is_tech_user: user.isTech,
      });
    }
  }
  participants.sort(byJoinThenId);
  leaveSomeEntriesIncomplete(random, participants);
  const precise: { startedAtSubMsNs?: number; endedAtSubMsNs?: number } = {};
  if (options.subMillisecond) {
    // Its own stream, so the same seed gives the same attendance with or without the digits.
    const digits = createRandom(`session-sub-ms:${options.seed}`);
    for (const p of participants) {
      p.joined_at_sub_ms_ns = digits.int(0, 999_999);
      if (p.left_at !== null) p.left_at_sub_ms_ns = digits.int(0, 999_999);
    }
    // Drawn after the entries', so their digits stay what they were before sessions had them.
    precise.startedAtSubMsNs = digits.int(1, 999_999);
    precise.endedAtSubMsNs = digits.int(1, 999_999);
  }

  let totalParticipantDuration = 0;
  for (const p of participants) totalParticipantDuration += p.duration_in_seconds ?? 0;
  return {
    callType,
    callId,
    callSessionId,
    startedAt: new Date(startMs),
    endedAt: new Date(endMs),
    participants,
    totalParticipantDuration,
    ...(options.statsRow ? { statsRow: options.statsRow } : {}),
    ...precise,
    ...(options.extraFields ? { extraFieldsJson: extraFieldsJson(options.seed, endMs) } : {}),
  };
}

/**
 * A field Stream does not send today, nested, with an `*_at` integer of nanoseconds whatever the
 * page's timestamp form (19 digits, not a multiple of 256, so a JS number would change it): what a
 * field Stream adds later could look like, for proving it reaches the archive route unchanged.
 */
function extraFieldsJson(seed: number | string, endMs: number): string {
  const random = createRandom(`session-extra:${seed}`);
  const checkedAt = `${endMs + random.int(0, 59_999)}${String(random.int(1, 999_999)).padStart(6, '0')}`;
  return `"something_new":{"a":1,"labels":["x","y"],"checked_at":${checkedAt},"note":null}`;
}

export interface GenerateDatasetOptions {
  readonly seed: number | string;
  readonly sizes: readonly number[];
  /** When the newest session ended; older ones end before the next newer one started. */
  readonly endedAt?: Date;
  /**
   * Spread the sessions' ends over this many days before `endedAt` instead of back to back: the
   * newest ends at `endedAt`, the oldest exactly `spreadDays` earlier, the others evenly between
   * (to the minute, seeded jitter). 89 gives a dataset Stream still holds whole, its oldest a day
   * from expiry.
   */
  readonly spreadDays?: number;
  /** Share (0–1) of sessions whose call_stats row leaves out call_ended_at (seeded). */
  readonly withoutEndShare?: number;
  /** Share of sessions whose row leaves out the whole window, call_started_at and call_ended_at. */
  readonly withoutWindowShare?: number;
  /** Share of sessions whose row names no usable session (half without call_session_id, half with a numeric call_id). */
  readonly unusableShare?: number;
  /** Share (0–1) of sessions whose timestamps carry nanoseconds past the millisecond (seeded, own stream). */
  readonly subMillisecondShare?: number;
  /** Share (0–1) of sessions whose answer carries a top-level field Stream might add (seeded, own stream). */
  readonly extraFieldsShare?: number;
}

/**
 * Sessions newest first, one per size, that do not overlap in time; about one in five is another
 * session of the call before it (the same call type and id), as a reused meeting link would give.
 * The row quirks are drawn from their own seeded stream, so asking for them changes nothing else.
 */
export function generateDataset(options: GenerateDatasetOptions): SimSession[] {
  const random = createRandom(`dataset:${options.seed}`);
  const quirks = createRandom(`dataset-rows:${options.seed}`);
  const precision = createRandom(`dataset-sub-ms:${options.seed}`);
  const extras = createRandom(`dataset-extra:${options.seed}`);
  const newestMs = (options.endedAt ?? wholeSecondsNow()).getTime();
  const count = options.sizes.length;
  const spreadMs = options.spreadDays === undefined ? undefined : options.spreadDays * DAY_MS;
  if (spreadMs !== undefined && !(spreadMs >= 0)) throw new RangeError('spreadDays must not be negative');
  let endMs = newestMs;
  const sessions: SimSession[] = [];
  for (let i = 0; i < count; i++) {
    const previous = sessions[i - 1];
    const sameCall = previous !== undefined && random.chance(0.2);
    if (spreadMs !== undefined && i > 0) {
      const step = spreadMs / Math.max(1, count - 1);
      // Jitter of up to a quarter step, never past the oldest end.
      const jitter = i === count - 1 ? 0 : Math.floor((quirks.next() * step) / 4 / MINUTE_MS) * MINUTE_MS;
      endMs = newestMs - Math.round((i * step) / 1000) * 1000 + jitter;
    }
    const statsRow = drawRowQuirks(quirks, options);
    const session = generateSession({
      seed: `${options.seed}:${i}`,
      size: options.sizes[i] as number,
      endedAt: new Date(endMs),
      ...(sameCall ? { callType: previous.callType, callId: previous.callId } : {}),
      ...(statsRow ? { statsRow } : {}),
      ...(precision.next() < (options.subMillisecondShare ?? 0) ? { subMillisecond: true } : {}),
      ...(extras.next() < (options.extraFieldsShare ?? 0) ? { extraFields: true } : {}),
    });
    sessions.push(session);
    endMs = session.startedAt.getTime() - random.int(1, 60) * MINUTE_MS;
  }
  return sessions;
}

/** One draw per session whatever the shares, so the same seed gives the same rows. */
function drawRowQuirks(random: Random, options: GenerateDatasetOptions): SimStatsRowQuirks | undefined {
  const roll = random.next();
  const unusable = options.unusableShare ?? 0;
  const withoutWindow = options.withoutWindowShare ?? 0;
  const withoutEnd = options.withoutEndShare ?? 0;
  if (roll < unusable) return { unusable: roll < unusable / 2 ? 'no_call_session_id' : 'call_id_not_string' };
  if (roll < unusable + withoutWindow) return { omit: ['call_started_at', 'call_ended_at'] };
  if (roll < unusable + withoutWindow + withoutEnd) return { omit: ['call_ended_at'] };
  return undefined;
}

/**
 * Session sizes for a demo or dev dataset: mostly small meetings, some medium, a few large,
 * always one single-person session; capped at `maxSize`.
 */
export function pickSessionSizes(options: { seed: number | string; count: number; maxSize?: number }): number[] {
  const random = createRandom(`sizes:${options.seed}`);
  const maxSize = options.maxSize ?? 5_000;
  const sizes: number[] = [];
  for (let i = 0; i < options.count; i++) {
    const roll = random.next();
    const size = i === 0 ? 1 : roll < 0.6 ? random.int(2, 30) : roll < 0.9 ? random.int(31, 500) : random.int(501, 5_000);
    sizes.push(Math.min(size, maxSize));
  }
  return sizes;
}

function createUsers(random: Random, size: number): SimUser[] {
  if (size === 0) return [];
  const count = Math.max(1, Math.min(size, Math.round(size * (0.6 + 0.25 * random.next()))));
  // Fixed slots guarantee every kind shows up once a session is big enough to hold them.
  const oddOffset = random.int(0, 9);
  const [rtmpSlot, srtSlot, techSlot] = count >= 10 ? distinctIndices(random, 3, 1, count - 1) : [-1, -1, -1];
  const users: SimUser[] = [];
  for (let i = 0; i < count; i++) {
    const isTech = i === techSlot || (i > 0 && random.chance(0.005));
    const publisherType =
      i === rtmpSlot ? 'rtmp' : i === srtSlot ? 'srt' : isTech ? 'webrtc' : random.chance(0.03) ? random.pick(['rtmp', 'srt'] as const) : 'webrtc';
    const id = isTech
      ? `egress-recorder-${i}`
      : i % 10 === oddOffset
        ? (ODD_USER_IDS[Math.floor(i / 10) % ODD_USER_IDS.length] as (n: number) => string)(i)
        : `user-${String(i).padStart(5, '0')}`;
    const roles = i === 0 ? ['host'] : isTech ? ['admin'] : [...random.pick(ROLE_SETS)];
    users.push({ id, roles, publisherType, isTech });
  }
  return users;
}

/** Every user gets one entry; the rest go mostly to a few users, who rejoin many times. */
function spreadEntries(random: Random, userCount: number, size: number): number[] {
  const counts = new Array<number>(userCount).fill(1);
  for (let extra = size - userCount; extra > 0; extra--) {
    const u = Math.floor(userCount * random.next() ** 2);
    counts[u] = (counts[u] as number) + 1;
  }
  return counts;
}

/**
 * Join/leave times for one user's `count` visits: sequential rejoins, except that with `dual`
 * the second visit overlaps the first (a second device). The host joins first and stays late.
 */
function layOutVisits(random: Random, count: number, startMs: number, endMs: number, host: boolean, dual: boolean): [number, number][] {
  const points: number[] = [];
  for (let i = 0; i < count * 2; i++) points.push(random.int(startMs, endMs));
  points.sort((x, y) => x - y);
  if (host) {
    points[0] = startMs + random.int(0, 30_000);
    points[points.length - 1] = endMs - random.int(0, 60_000);
    points.sort((x, y) => x - y);
  }
  const visits: [number, number][] = [];
  for (let i = 0; i < count; i++) visits.push([points[2 * i] as number, points[2 * i + 1] as number]);
  if (dual) {
    const [join0, leave0] = visits[0] as [number, number];
    const join1 = join0 + random.int(0, Math.min(120_000, leave0 - join0));
    visits[1] = [join1, random.int(join1, endMs)];
  }
  return visits;
}

/**
 * Stream may send entries whose connection it never saw close: no `left_at` and no duration
 * (still live in its data), or a `left_at` without a duration (docs/stream-api.md §2, §9.9).
 */
function leaveSomeEntriesIncomplete(random: Random, participants: SimParticipant[]): void {
  const forced = participants.length >= 20 ? distinctIndices(random, 2, 0, participants.length - 1) : [];
  for (let i = 0; i < participants.length; i++) {
    const p = participants[i] as SimParticipant;
    const roll = random.next();
    if (i === forced[0] || roll < 0.002) {
      p.left_at = null;
      p.duration_in_seconds = null;
      p.is_live = true;
    } else if (i === forced[1] || roll < 0.004) {
      p.duration_in_seconds = null;
    }
  }
}

function distinctIndices(random: Random, count: number, min: number, max: number): number[] {
  const chosen = new Set<number>();
  while (chosen.size < Math.min(count, max - min + 1)) chosen.add(random.int(min, max));
  return [...chosen];
}

function byJoinThenId(a: SimParticipant, b: SimParticipant): number {
  const byJoin = (a.joined_at?.getTime() ?? 0) - (b.joined_at?.getTime() ?? 0);
  if (byJoin !== 0) return byJoin;
  return a.user_session_id < b.user_session_id ? -1 : a.user_session_id > b.user_session_id ? 1 : 0;
}

function wholeSecondsNow(): Date {
  return new Date(Math.floor(Date.now() / 1000) * 1000);
}
