import type pg from 'pg';
import { beforeEach, describe, expect, it } from 'vitest';
import { writePage } from '../../src/ingest/write-page.ts';
import { LeaseLostError } from '../../src/queue/fence.ts';
import { parseParticipantSessionsPage, parseStreamJson, type ParticipantEntry } from '../../src/stream/schemas.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { readSessionRow } from '../helpers/session-rows.ts';
import { insertQueueRow } from '../queue/queue-rows.ts';

const db = useTestDatabase();
const pool = () => db.current.database.pool;
const lease = { callSessionId: 's1', owner: 'w1' };

function entry(n: number, overrides: Partial<ParticipantEntry> = {}): ParticipantEntry {
  const raw = { user_id: `user ${n}`, user_session_id: `us-${n}`, publisher_type: 'webrtc', roles: ['user'], joined_at: '2026-01-01T10:00:00Z', extra: { n } };
  return {
    userId: `user ${n}`,
    userSessionId: `us-${n}`,
    publisherType: 'webrtc',
    roles: ['user', `r${n % 3}`],
    joinedAt: new Date('2026-01-01T10:00:00.123Z'),
    leftAt: n % 4 === 0 ? null : new Date('2026-01-01T10:30:00Z'),
    joinedAtMicros: '2026-01-01T10:00:00.123Z',
    leftAtMicros: n % 4 === 0 ? null : '2026-01-01T10:30:00Z',
    durationInSeconds: n % 4 === 0 ? null : 1800,
    raw,
    ...overrides,
  };
}

/** The pool, with every statement sent through it (pooled or on a checked-out client) counted. */
function countingPool(): { pool: pg.Pool; statements: string[] } {
  const statements: string[] = [];
  const real = pool();
  const record = (args: unknown[]) => {
    const first = args[0] as string | { text: string };
    statements.push((typeof first === 'string' ? first : first.text).trim().split(/\s+/).slice(0, 2).join(' '));
  };
  const counted = Object.create(real) as pg.Pool;
  counted.query = ((...args: unknown[]) => {
    record(args);
    return (real.query as (...a: unknown[]) => unknown)(...args);
  }) as typeof real.query;
  counted.connect = (async () => {
    const client = await real.connect();
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    return Object.assign(Object.create(client) as pg.PoolClient, {
      query: (...args: unknown[]) => {
        record(args);
        return query(...args);
      },
      release: client.release.bind(client),
    });
  }) as typeof real.connect;
  return { pool: counted, statements };
}

beforeEach(async () => {
  await pool().query('truncate participant_sessions, stream_responses, call_sessions');
  await insertQueueRow(pool(), { id: 's1', status: 'running', leaseOwner: 'w1', leaseExpiresInSeconds: 30 });
});

describe('writePage', () => {
  it('writes a page of 100 and its cursor behind the lease fence in one statement (one implicit transaction)', async () => {
    const { pool: counted, statements } = countingPool();
    const entries = Array.from({ length: 100 }, (_, i) => entry(i));
    expect(await writePage(counted, lease, { callType: 'default', callId: 's1', entries, resumeCursor: 'c1' })).toEqual({ rows: 100 });
    expect(statements).toEqual(['with fence']);

    const rows = await pool().query('select p.*, participant_session_entry(p) as entry from participant_sessions p order by user_session_id');
    expect(rows.rowCount).toBe(100);
    const zero = rows.rows.find((r) => r.user_session_id === 'us-0');
    expect(zero).toMatchObject({
      call_type: 'default',
      call_id: 's1',
      user_id: 'user 0',
      publisher_type: 'webrtc',
      roles: ['user', 'r0'],
      left_at: null,
      duration_in_seconds: null,
      entry: entries[0]?.raw,
    });
    expect(zero?.joined_at.toISOString()).toBe('2026-01-01T10:00:00.123Z');
    expect((await readSessionRow(pool(), 's1')).cursor).toBe('c1');
  });

  it('overwrites a row with what Stream says now (excluded.*), keyed on the user session', async () => {
    await writePage(pool(), lease, {
      callType: 'default',
      callId: 's1',
      entries: [entry(1, { leftAt: null, leftAtMicros: null, durationInSeconds: null })],
      resumeCursor: 'c1',
    });
    await writePage(pool(), lease, {
      callType: 'default',
      callId: 's1',
      entries: [entry(1, { leftAt: new Date('2026-01-01T11:00:00Z'), leftAtMicros: '2026-01-01T11:00:00Z', durationInSeconds: 3600, roles: ['host'] })],
      resumeCursor: 'c2',
    });
    const rows = await pool().query('select left_at, duration_in_seconds, roles from participant_sessions');
    expect(rows.rows).toEqual([{ left_at: new Date('2026-01-01T11:00:00Z'), duration_in_seconds: 3600, roles: ['host'] }]);
  });

  it('a page that repeats a user session writes it once, the later copy winning', async () => {
    const page = [entry(1, { durationInSeconds: 10 }), entry(2), entry(1, { durationInSeconds: 20 })];
    expect(await writePage(pool(), lease, { callType: 'default', callId: 's1', entries: page, resumeCursor: null })).toEqual({ rows: 2 });
    const rows = await pool().query<{ duration_in_seconds: number }>(`select duration_in_seconds from participant_sessions where user_session_id = 'us-1'`);
    expect(rows.rows).toEqual([{ duration_in_seconds: 20 }]);
  });

  it('stores entries holding NUL or a lone surrogate (valid JSON, refused by Postgres) instead of failing the page', async () => {
    const odd = entry(7, {
      userId: 'nul\u0000user',
      raw: { user_id: 'nul\u0000user', user_session_id: 'us-7', note: 'half an emoji \ud83d', ok: 'whole \ud83d\ude00' },
    });
    expect(await writePage(pool(), lease, { callType: 'default', callId: 's1', entries: [entry(6), odd], resumeCursor: 'c2' })).toEqual({ rows: 2 });
    const { rows } = await pool().query<{ user_id: string; raw: Record<string, string> }>(
      `select user_id, participant_session_entry(p) as raw from participant_sessions p where user_session_id = 'us-7'`,
    );
    expect(rows[0]?.user_id).toBe('nuluser');
    expect(rows[0]?.raw).toMatchObject({ user_id: 'nuluser', note: 'half an emoji \ufffd', ok: 'whole \ud83d\ude00' });
    expect((await readSessionRow(pool(), 's1')).cursor).toBe('c2');
  });

  it('keeps integer nanoseconds digit for digit in raw and microseconds in the columns, whichever form Stream used', async () => {
    // As Stream sends them: 19-digit integers (beyond 2^53) and RFC 3339 with nine fractional digits.
    const text = `{"call_type":"default","call_id":"s1","call_session_id":"s1","duration":3,"total_participant_sessions":3,"total_participant_duration":60,"participants_sessions":[
      {"user_id":"n","user_session_id":"ns-1","publisher_type":"webrtc","roles":[],"joined_at":1775658215879421674,"left_at":1775658245000000999,"duration_in_seconds":29,"future":12345678901234567890},
      {"user_id":"s","user_session_id":"ns-2","publisher_type":"webrtc","roles":[],"joined_at":"2026-04-08T14:23:35.879421674Z","left_at":"2026-04-08T16:23:45.0000009+02:00","duration_in_seconds":30},
      {"user_id":"o","user_session_id":"ns-3","publisher_type":"webrtc","roles":[],"joined_at":"2026-04-08T14:23:35.5Z","left_at":null}]}`;
    const page = parseParticipantSessionsPage(parseStreamJson(text));
    await writePage(pool(), lease, { callType: 'default', callId: 's1', entries: page.entries, resumeCursor: 'c3' });
    const { rows } = await pool().query<{ id: string; raw: string; joined: string; left: string | null }>(
      `select user_session_id as id, participant_session_entry(p)::text as raw,
              to_char(joined_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') as joined,
              to_char(left_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') as left
         from participant_sessions p order by user_session_id`,
    );
    expect(rows.map((r) => [r.id, r.joined, r.left])).toEqual([
      ['ns-1', '2026-04-08T14:23:35.879421', '2026-04-08T14:24:05.000000'],
      ['ns-2', '2026-04-08T14:23:35.879421', '2026-04-08T14:23:45.000000'],
      ['ns-3', '2026-04-08T14:23:35.500000', null],
    ]);
    // jsonb keeps the integers exact (numeric), and the strings as sent.
    expect(rows[0]!.raw).toContain('"joined_at": 1775658215879421674');
    expect(rows[0]!.raw).toContain('"left_at": 1775658245000000999');
    expect(rows[1]!.raw).toContain('"joined_at": "2026-04-08T14:23:35.879421674Z"');
    expect(rows[1]!.raw).toContain('"left_at": "2026-04-08T16:23:45.0000009+02:00"');
    expect(rows[2]!.raw).toContain('"left_at": null');
  });

  describe("the envelope (Stream's answer without its entries) in stream_responses", () => {
    // Entries in RFC 3339, the session's timestamps as integers: the integers are found wherever they are.
    const text = `{"call_type":"default","call_id":"s1","call_session_id":"s1","duration":3,"total_participant_sessions":1,"total_participant_duration":60,
      "session":{"id":"s1","participants":[],"accepted_by":{},"started_at":1775658215879421674,"ended_at":1775661815000000001,"live_ended_at":null},
      "something_new":{"a":1,"seen_at":1775661815123456789,"label":"x"},"next":"c-next",
      "participants_sessions":[{"user_id":"n","user_session_id":"ns-1","publisher_type":"webrtc","roles":[],"joined_at":"2026-04-08T14:23:35.879421674Z","duration_in_seconds":29,"x":{"seen_at":1775658215879421111}}]}`;
    const parsed = () => parseParticipantSessionsPage(parseStreamJson(text));
    const stored = async () =>
      (
        await pool().query<{ response: string; updated_at: Date; xmin: string }>(
          'select response::text as response, updated_at, xmin::text from stream_responses where call_session_id = $1',
          ['s1'],
        )
      ).rows[0];

    it("is written digit for digit by the page's one statement, without the entries, next, prev and duration", async () => {
      const { pool: counted, statements } = countingPool();
      const page = parsed();
      await writePage(counted, lease, { callType: 'default', callId: 's1', entries: page.entries, resumeCursor: 'c1', envelope: page.envelope });
      expect(statements).toHaveLength(1);
      const row = await stored();
      expect(JSON.parse(row!.response.replace(/\d{19}/g, '"$&"'))).toEqual({
        call_type: 'default',
        call_id: 's1',
        call_session_id: 's1',
        total_participant_sessions: 1,
        total_participant_duration: 60,
        session: { id: 's1', participants: [], accepted_by: {}, started_at: '1775658215879421674', ended_at: '1775661815000000001', live_ended_at: null },
        something_new: { a: 1, seen_at: '1775661815123456789', label: 'x' },
      });
      // Integers in jsonb, not strings: the same type Stream sent.
      expect(row!.response).toContain('"started_at": 1775658215879421674');
      expect(row!.response).toContain('"seen_at": 1775661815123456789');
      // The entry's own nested *_at integer, quoted by the reader, is an integer again in raw.
      const raw = (await pool().query<{ raw: string }>('select participant_session_entry(p)::text as raw from participant_sessions p')).rows[0]!.raw;
      expect(raw).toContain('"seen_at": 1775658215879421111');
      expect(raw).toContain('"joined_at": "2026-04-08T14:23:35.879421674Z"');
    });

    it('is upserted with excluded.*: a changed answer replaces it, an unchanged one rewrites nothing, a page without one leaves it', async () => {
      const page = parsed();
      await writePage(pool(), lease, { callType: 'default', callId: 's1', entries: [], resumeCursor: 'c1', envelope: page.envelope });
      const first = await stored();
      await writePage(pool(), lease, { callType: 'default', callId: 's1', entries: [], resumeCursor: 'c2', envelope: page.envelope });
      expect(await stored()).toEqual(first);
      await writePage(pool(), lease, { callType: 'default', callId: 's1', entries: [], resumeCursor: 'c3' });
      expect(await stored()).toEqual(first);
      const changed = { ...page.envelope, total_participant_sessions: 2, something_new: undefined, other: [1] };
      await writePage(pool(), lease, { callType: 'default', callId: 's1', entries: [], resumeCursor: 'c4', envelope: changed });
      const second = await stored();
      expect(second!.response).toContain('"total_participant_sessions": 2');
      expect(second!.response).toContain('"other": [1]');
      expect(second!.response).not.toContain('something_new');
      expect(second!.response).toContain('"started_at": 1775658215879421674');
      expect(second!.xmin).not.toBe(first!.xmin);
    });

    it('is not written, nor an earlier one changed, once the lease belongs to someone else', async () => {
      const page = parsed();
      await expect(
        writePage(
          pool(),
          { callSessionId: 's1', owner: 'w2' },
          { callType: 'default', callId: 's1', entries: page.entries, resumeCursor: 'c1', envelope: page.envelope },
        ),
      ).rejects.toBeInstanceOf(LeaseLostError);
      expect(await stored()).toBeUndefined();
      await writePage(pool(), lease, { callType: 'default', callId: 's1', entries: [], resumeCursor: 'c1', envelope: page.envelope });
      const before = await stored();
      await pool().query(`update call_sessions set lease_owner = 'w2' where call_session_id = 's1'`);
      await expect(
        writePage(pool(), lease, {
          callType: 'default',
          callId: 's1',
          entries: [],
          resumeCursor: 'c2',
          envelope: { ...page.envelope, something_new: 'stale' },
        }),
      ).rejects.toBeInstanceOf(LeaseLostError);
      expect(await stored()).toEqual(before);
      // Nor by a run whose session is no longer running (intake reset it to pending under the same owner).
      await pool().query(`update call_sessions set lease_owner = 'w1', status = 'pending' where call_session_id = 's1'`);
      await expect(
        writePage(pool(), lease, {
          callType: 'default',
          callId: 's1',
          entries: [],
          resumeCursor: 'c2',
          envelope: { ...page.envelope, something_new: 'stale' },
        }),
      ).rejects.toBeInstanceOf(LeaseLostError);
      expect(await stored()).toEqual(before);
    });
  });

  it('an empty page still stores its cursor', async () => {
    const { pool: counted, statements } = countingPool();
    await writePage(counted, lease, { callType: 'default', callId: 's1', entries: [], resumeCursor: 'c9' });
    expect(statements).not.toContain('insert into');
    expect((await readSessionRow(pool(), 's1')).cursor).toBe('c9');
  });

  it('writes nothing, rows or cursor, once the lease belongs to someone else', async () => {
    await pool().query(`update call_sessions set lease_owner = 'w2' where call_session_id = 's1'`);
    await expect(writePage(pool(), lease, { callType: 'default', callId: 's1', entries: [entry(1), entry(2)], resumeCursor: 'c1' })).rejects.toBeInstanceOf(
      LeaseLostError,
    );
    expect((await pool().query('select 1 from participant_sessions')).rowCount).toBe(0);
    expect((await readSessionRow(pool(), 's1')).cursor).toBeNull();
  });
});
