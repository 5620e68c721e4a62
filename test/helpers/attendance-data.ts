import type pg from 'pg';
import { DAY_MS, MINUTE_MS } from '../../src/time.ts';
import { insertSessionRows, type SessionRow } from './session-rows.ts';

/**
 * Archive rows for the SQL and archive-API tests: insert helpers that take entries in Stream's wire
 * shape (stored whole in `raw`, as rows written before migration 0005 are; columns derived from them), a seeded dataset generator, and a
 * plain TypeScript reference for what the attendance views should answer, written without SQL so
 * the two can check each other.
 */

/** One ParticipantSessionDetails entry as Stream sends it (docs/stream-api.md §2). */
export interface WireEntry {
  user_id: string;
  user_session_id: string;
  publisher_type: string;
  roles: string[];
  joined_at?: string | null;
  left_at?: string | null;
  duration_in_seconds?: number | null;
  [extra: string]: unknown;
}

/** A session of the dataset: its call always named, its times JavaScript Dates (the checks compute with them); status defaults to complete. */
export type SessionSeed = Omit<SessionRow, 'session_ended_at' | 'retention_expires_at'> & {
  call_type: string;
  call_id: string;
  session_ended_at?: Date | null;
  retention_expires_at?: Date | null;
};

export async function insertCallSession(pool: pg.Pool, seed: SessionSeed): Promise<void> {
  await insertSessionRows(pool, [{ ...seed, status: seed.status ?? 'complete' }]);
}

const INSERT_CHUNK = 1_000;

/** Inserts entries of one call session; `raw` is the entry itself, as the worker stored it before lean raw (migration 0005). */
export async function insertEntries(
  pool: pg.Pool,
  session: { call_session_id: string; call_type: string; call_id: string },
  entries: readonly WireEntry[],
): Promise<void> {
  for (let i = 0; i < entries.length; i += INSERT_CHUNK) {
    const chunk = entries.slice(i, i + INSERT_CHUNK);
    await pool.query(
      `insert into participant_sessions (call_session_id, user_session_id, call_type, call_id, user_id, joined_at, left_at,
         duration_in_seconds, publisher_type, roles, raw)
       select $1, e.raw->>'user_session_id', $2, $3, e.raw->>'user_id', (e.raw->>'joined_at')::timestamptz,
         (e.raw->>'left_at')::timestamptz, (e.raw->>'duration_in_seconds')::integer, e.raw->>'publisher_type',
         array(select jsonb_array_elements_text(e.raw->'roles')), e.raw
       from unnest($4::jsonb[]) as e(raw)`,
      [session.call_session_id, session.call_type, session.call_id, chunk.map((entry) => JSON.stringify(entry))],
    );
  }
}

// ---- reference computations (no SQL) ----

export interface Span {
  readonly start: number;
  readonly end: number;
}

/** The documented reading of an entry: joined_at/left_at, a missing end derived from duration. */
export function entrySpan(entry: WireEntry): { start: number | undefined; end: number | undefined } {
  const joined = entry.joined_at ? Date.parse(entry.joined_at) : undefined;
  const left = entry.left_at ? Date.parse(entry.left_at) : undefined;
  const seconds = entry.duration_in_seconds ?? undefined;
  const start = joined ?? (left !== undefined && seconds !== undefined ? left - seconds * 1000 : undefined);
  const end = left ?? (joined !== undefined && seconds !== undefined ? joined + seconds * 1000 : undefined);
  return { start, end };
}

/** Overlapping or touching spans merged into stretches, sorted by start. */
export function mergeSpans(spans: readonly Span[]): Span[] {
  const sorted = [...spans].sort((a, b) => a.start - b.start || a.end - b.end);
  const merged: { start: number; end: number }[] = [];
  for (const span of sorted) {
    const last = merged.at(-1);
    if (last && span.start <= last.end) last.end = Math.max(last.end, span.end);
    else merged.push({ ...span });
  }
  return merged;
}

export interface ExpectedAttendance {
  call_session_id: string;
  user_id: string;
  first_joined_at: number | undefined;
  last_left_at: number | undefined;
  join_count: number;
  summed_seconds: number;
  attended_seconds: number;
  stretches: number;
  session_started_at: number | undefined;
  session_ended_at: number | undefined;
  attended_share: number | null;
}

export interface ExpectedSession {
  call_session_id: string;
  participants: number;
  entries: number;
  summed_seconds: number;
  attended_seconds: number;
  peak_concurrent_participants: number;
  session_started_at: number | undefined;
  session_ended_at: number | undefined;
}

function validSpans(entries: readonly WireEntry[]): Span[] {
  const spans: Span[] = [];
  for (const entry of entries) {
    const { start, end } = entrySpan(entry);
    if (start !== undefined && end !== undefined && end >= start) spans.push({ start, end });
  }
  return spans;
}

function minOf(values: (number | undefined)[]): number | undefined {
  const known = values.filter((v): v is number => v !== undefined);
  return known.length === 0 ? undefined : Math.min(...known);
}
function maxOf(values: (number | undefined)[]): number | undefined {
  const known = values.filter((v): v is number => v !== undefined);
  return known.length === 0 ? undefined : Math.max(...known);
}

export function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = groups.get(k);
    if (list) list.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

/** What `attendance` should hold for one session's entries, one element per user. */
export function expectedAttendance(callSessionId: string, entries: readonly WireEntry[]): ExpectedAttendance[] {
  const windowStart = minOf(entries.map((e) => entrySpan(e).start));
  const windowEnd = maxOf(entries.map((e) => entrySpan(e).end));
  const windowSeconds = windowStart !== undefined && windowEnd !== undefined ? (windowEnd - windowStart) / 1000 : 0;
  const result: ExpectedAttendance[] = [];
  for (const [userId, mine] of groupBy(entries, (e) => e.user_id)) {
    const stretches = mergeSpans(validSpans(mine));
    const attended = stretches.reduce((sum, s) => sum + (s.end - s.start) / 1000, 0);
    result.push({
      call_session_id: callSessionId,
      user_id: userId,
      first_joined_at: minOf(mine.map((e) => entrySpan(e).start)),
      last_left_at: maxOf(mine.map((e) => entrySpan(e).end)),
      join_count: mine.length,
      summed_seconds: mine.reduce((sum, e) => sum + (e.duration_in_seconds ?? 0), 0),
      attended_seconds: attended,
      stretches: stretches.length,
      session_started_at: windowStart,
      session_ended_at: windowEnd,
      attended_share: windowSeconds > 0 ? attended / windowSeconds : null,
    });
  }
  return result.sort((a, b) => a.user_id.localeCompare(b.user_id));
}

/** Most users present at one instant; each user's stretches count once, [start, end) half-open. */
export function peakConcurrency(entries: readonly WireEntry[]): number {
  const events: [number, number][] = [];
  for (const mine of groupBy(entries, (e) => e.user_id).values()) {
    for (const s of mergeSpans(validSpans(mine))) {
      if (s.end > s.start) events.push([s.start, 1], [s.end, -1]);
    }
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let present = 0;
  let peak = 0;
  for (const [, delta] of events) {
    present += delta;
    peak = Math.max(peak, present);
  }
  return peak;
}

export function expectedSession(callSessionId: string, entries: readonly WireEntry[]): ExpectedSession {
  const users = expectedAttendance(callSessionId, entries);
  return {
    call_session_id: callSessionId,
    participants: users.length,
    entries: entries.length,
    summed_seconds: users.reduce((sum, u) => sum + u.summed_seconds, 0),
    attended_seconds: users.reduce((sum, u) => sum + u.attended_seconds, 0),
    peak_concurrent_participants: peakConcurrency(entries),
    session_started_at: minOf(entries.map((e) => entrySpan(e).start)),
    session_ended_at: maxOf(entries.map((e) => entrySpan(e).end)),
  };
}

// ---- generated dataset ----

/** Small deterministic PRNG (mulberry32): the same seed gives the same dataset on every run. */
export function createRandom(seed: number) {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  return {
    next,
    int: (min: number, max: number): number => min + Math.floor(next() * (max - min + 1)),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T,
    chance: (p: number): boolean => next() < p,
  };
}

export interface DatasetSession {
  readonly seed: Required<Pick<SessionSeed, 'call_session_id' | 'call_type' | 'call_id'>> & SessionSeed;
  readonly entries: WireEntry[];
}

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * Classes and a livestream over February and March 2026 (UTC), with the awkward cases mixed in:
 * second devices, rejoins after a gap and back to back, entries without left_at (with and without a
 * duration), without joined_at, and sessions not yet archived whose retention runs out soon.
 * `now` anchors retention times so "near expiry" questions have answers.
 */
export function generateAttendanceDataset(seed: number, now: number): DatasetSession[] {
  const random = createRandom(seed);
  const students = Array.from({ length: 12 }, (_, i) => `student-${String(i + 1).padStart(2, '0')}`);
  const plan: { callType: string; callId: string; day: string; hour: number; minutes: number }[] = [];
  const days = ['2026-02-03', '2026-02-10', '2026-02-17', '2026-02-24', '2026-03-03', '2026-03-10', '2026-03-17', '2026-03-31'];
  for (const day of days) plan.push({ callType: 'classroom', callId: 'algebra-101', day, hour: 9, minutes: 50 });
  for (const day of ['2026-02-05', '2026-03-05', '2026-03-19']) plan.push({ callType: 'classroom', callId: 'physics-201', day, hour: 14, minutes: 90 });
  for (const day of ['2026-02-28', '2026-03-28']) plan.push({ callType: 'livestream', callId: 'town-hall', day, hour: 23, minutes: 120 });

  const sessions: DatasetSession[] = [];
  plan.forEach((p, index) => {
    const callSessionId = `${p.callId}-${p.day}`;
    const start = Date.parse(`${p.day}T${String(p.hour).padStart(2, '0')}:00:00Z`);
    const length = p.minutes * MINUTE_MS;
    const entries: WireEntry[] = [];
    let serial = 0;
    const push = (
      userId: string,
      roles: string[],
      from: number,
      to: number,
      publisherType: string,
      shape: 'full' | 'no-left' | 'no-left-no-duration' | 'no-joined',
    ) => {
      serial += 1;
      const seconds = Math.round((to - from) / 1000);
      const entry: WireEntry = {
        user_id: userId,
        user_session_id: `${callSessionId}-us-${String(serial).padStart(3, '0')}`,
        publisher_type: publisherType,
        roles,
      };
      if (shape !== 'no-joined') entry.joined_at = iso(from);
      if (shape === 'full' || shape === 'no-joined') entry.left_at = iso(to);
      if (shape === 'no-left-no-duration') entry.left_at = null;
      if (shape !== 'no-left-no-duration') entry.duration_in_seconds = seconds;
      entries.push(entry);
    };
    const shapeOf = (): 'full' | 'no-left' | 'no-left-no-duration' | 'no-joined' =>
      random.chance(0.06) ? 'no-left' : random.chance(0.03) ? 'no-left-no-duration' : random.chance(0.03) ? 'no-joined' : 'full';

    const host = p.callType === 'livestream' ? 'host-1' : p.callId === 'algebra-101' ? 'teacher-a' : 'teacher-b';
    push(host, [p.callType === 'livestream' ? 'host' : 'teacher'], start - 120_000, start + length, p.callType === 'livestream' ? 'rtmp' : 'webrtc', 'full');
    for (const student of students) {
      if (random.chance(0.2)) continue;
      const role = p.callType === 'livestream' ? ['viewer'] : ['student'];
      let from = start + random.int(-3, 25) * MINUTE_MS + random.int(0, 59) * 1000;
      const pieces = random.int(1, 3);
      for (let k = 0; k < pieces && from < start + length; k += 1) {
        const to = Math.min(start + length + MINUTE_MS, from + random.int(3, 40) * MINUTE_MS);
        push(student, role, from, to, random.chance(0.1) ? 'srt' : 'webrtc', shapeOf());
        if (random.chance(0.25)) {
          // A second device, overlapping the first.
          const extraFrom = from + random.int(0, Math.max(0, Math.floor((to - from) / 1000) - 1)) * 1000;
          push(student, role, extraFrom, to + random.int(0, 600) * 1000, 'webrtc', 'full');
        }
        // Next piece: back to back sometimes, else after a gap.
        from = random.chance(0.3) ? to : to + random.int(1, 15) * MINUTE_MS;
      }
    }

    const summed = entries.reduce((sum, e) => sum + (e.duration_in_seconds ?? 0), 0);
    const status = index === 5 ? 'retrying' : index === 9 ? 'pending' : index === 12 ? 'dead' : 'complete';
    const archived = status === 'complete' ? entries : entries.slice(0, Math.floor(entries.length / 2));
    sessions.push({
      seed: {
        call_session_id: callSessionId,
        call_type: p.callType,
        call_id: p.callId,
        status,
        // One complete session whose Stream total disagrees with what we hold (cookbook: mismatches).
        total_participant_sessions: index === 2 ? entries.length + 1 : entries.length,
        total_participant_duration: summed,
        archived_participant_sessions: archived.length,
        session_ended_at: new Date(start + length),
        retention_expires_at: new Date(
          status === 'retrying' ? now + 3 * DAY_MS : status === 'pending' ? now + 10 * DAY_MS : status === 'dead' ? now + 40 * DAY_MS : now + 60 * DAY_MS,
        ),
        attempts: status === 'complete' ? 1 : 3,
        last_error: status === 'dead' ? 'HTTP 403 from Stream' : status === 'retrying' ? 'HTTP 503 from Stream' : null,
      },
      entries: archived,
    });
  });
  // Announced by a webhook, nothing archived yet.
  sessions.push({
    seed: {
      call_session_id: 'algebra-101-2026-04-07',
      call_type: 'classroom',
      call_id: 'algebra-101',
      status: 'pending',
      session_ended_at: null,
      retention_expires_at: new Date(now + 5 * DAY_MS),
    },
    entries: [],
  });
  return sessions;
}

export async function insertDataset(pool: pg.Pool, sessions: readonly DatasetSession[]): Promise<void> {
  for (const session of sessions) {
    await insertCallSession(pool, session.seed);
    await insertEntries(pool, session.seed, session.entries);
  }
}

/**
 * Every column of the two views that read the rollups, in a fixed order (attended_seconds as text,
 * so numeric digits compare exactly): what must not change whether a session is marked or rolled up.
 */
export const VIEW_SNAPSHOT_SQL = {
  attendance: `select call_session_id, user_id, call_type, call_id, first_joined_at, last_left_at, join_count, summed_seconds,
      attended_seconds::text, stretches, session_started_at, session_ended_at, attended_share
    from attendance order by call_session_id, user_id`,
  sessions: `select call_session_id, status, participants, entries, summed_seconds, attended_seconds::text,
      peak_concurrent_participants, session_started_at, session_ended_at
    from call_session_attendance order by call_session_id`,
} as const;

/**
 * attendance_rollup keeps a copy of each session's start (migration 0007), which a user's month is
 * read by: how many rollup rows there are, and how many differ from session_rollup's start.
 */
export async function sessionStartCopies(pool: pg.Pool): Promise<{ rows: number; differing: number }> {
  const { rows } = await pool.query<{ rows: number; differing: number }>(`
    select count(*)::int as rows, count(*) filter (where r.session_started_at is distinct from s.session_started_at)::int as differing
      from attendance_rollup r join session_rollup s using (call_session_id)`);
  return rows[0]!;
}
