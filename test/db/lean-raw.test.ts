import { beforeEach, describe, expect, it } from 'vitest';
import { writePage } from '../../src/ingest/write-page.ts';
import { parseParticipantSessionsPage, parseStreamJson } from '../../src/stream/schemas.ts';
import { generateSession } from '../../tools/simulator/generate.ts';
import { participantJson } from '../../tools/simulator/wire.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { insertQueueRow } from '../queue/queue-rows.ts';

/*
 * participant_sessions.raw is stored lean (migrations/0005_lean_raw.sql) and
 * participant_session_entry(p) must give back exactly what the full raw held. The expected value
 * of every case is the entry's own JSON text as Postgres reads it (`$1::jsonb::text`), never
 * anything the functions under test computed.
 */

const db = useTestDatabase();
const pool = () => db.current.database.pool;
const lease = { callSessionId: 's1', owner: 'w1' };

/** JSON text of a value; `undefined` leaves the key out. Integers travel as text so none is rounded. */
type Json = string | undefined;
const str = (value: string): Json => JSON.stringify(value);
const ABSENT: Json = undefined;

// Every form an entry timestamp can arrive in that the reader accepts.
const INSTANTS: readonly Json[] = [
  ABSENT,
  'null',
  str(''),
  str('2026-04-08T14:23:35Z'),
  ...[1, 2, 3, 4, 5, 6, 7, 8, 9].map((digits) => str(`2026-04-08T14:23:35.${'879421674'.slice(0, digits)}Z`)),
  str('2026-04-08T14:23:35.100Z'),
  str('2026-04-08T14:23:35.000000000Z'),
  str('2026-04-08T14:23:35.120000000Z'),
  str('2026-04-08T14:23:35.000000001Z'),
  str('2026-04-08T14:23:35.879421674+00:00'),
  str('2026-04-08T16:23:35.879421674+02:00'),
  str('2026-04-08T09:53:35.5-04:30'),
  str('2026-04-08T14:23:35.879421674z'),
  str('2026-04-08t14:23:35.879421674Z'),
  str('2026-04-08 14:23:35.879Z'),
  str('2024-02-29T23:59:59.999999999Z'),
  str('2026-12-31T23:59:59.9999999Z'),
  str('1969-12-31T23:59:59.999999999Z'),
  str('1900-01-01T00:00:00.000001Z'),
  str('0001-01-01T00:00:00Z'),
  str('9999-12-31T23:59:59.999999999Z'),
  '1775658215879421674',
  '1775658215000000000',
  '1775658215879421000',
  '9223372036854775807',
  '0',
  '1',
  '999',
  '1000',
  '-1',
  '-1500',
  '-1000000000000000001',
];

// Each optional field: absent, JSON null, and the values a column holds back or does not.
const PUBLISHER_TYPES: readonly Json[] = [str('webrtc'), ABSENT, 'null', str(''), str('rtmp'), str('ウェブ "rtc"\\')];
const ROLES: readonly Json[] = ['["user"]', ABSENT, 'null', '[]', '["admin","user","admin"]', '["a\\"b","ç","\\u00e9"]'];
// (A number that JS would reformat, 1800.0, is not among them: the worker never stored it as sent; see the last describe.)
const DURATIONS: readonly Json[] = ['1800', ABSENT, 'null', '0', '-1', '30.5', str('1800'), '2147483647'];
const USER_IDS: readonly string[] = ['alice', '', 'émilie 🎓', 'quote " and \\ backslash', 'tab\there', '-', '~joined_at'];
const EXTRAS: readonly string[] = [
  '',
  ',"future":{"seen_at":1775658215879421111,"nested":{"left_at":"2026-04-08T14:23:35.879421674Z","n":[1,2.5,null,"x"]}}',
  ',"flag":true,"list":[{"joined_at":1775658215879421674}],"ключ":"значение"',
  ',"is_live":false,"published_tracks":["audio","video"]',
];

interface Case {
  readonly id: string;
  /** The entry's JSON text as Stream sent it. */
  readonly sent: string;
  /** What the full raw held, when it is not `sent` itself (a digit string under an `_at` key becomes its integer). */
  readonly held?: string;
}

function entryText(fields: Record<string, Json>, extra: string): string {
  const parts = Object.entries(fields).flatMap(([key, value]) => (value === undefined ? [] : [`${JSON.stringify(key)}:${value}`]));
  return `{${parts.join(',')}${extra}}`;
}

/** The cases: every instant form as joined_at and left_at, crossed with the other fields' variants. */
function cases(): Case[] {
  const out: Case[] = [];
  INSTANTS.forEach((joined, i) => {
    for (let shift = 0; shift < 3; shift++) {
      const n = i * 3 + shift;
      const left = INSTANTS[(i * 7 + shift * 11 + 3) % INSTANTS.length];
      const id = `us-${String(n).padStart(3, '0')}-${['plain', 'ユーザー', 'a"b'][shift]}`;
      const fields: Record<string, Json> = {
        user_id: str(USER_IDS[n % USER_IDS.length]!),
        user_session_id: str(id),
        publisher_type: PUBLISHER_TYPES[n % PUBLISHER_TYPES.length],
        roles: ROLES[(n + shift) % ROLES.length],
        joined_at: joined,
        left_at: left,
        duration_in_seconds: DURATIONS[n % DURATIONS.length],
      };
      out.push({ id, sent: entryText(fields, EXTRAS[n % EXTRAS.length]!) });
    }
  });
  // Keys in another order, and some left out altogether: absent stays absent whatever the column holds.
  out.push({ id: 'us-minimal', sent: '{"user_session_id":"us-minimal","user_id":"m"}' });
  out.push({
    id: 'us-reordered',
    sent: '{"duration_in_seconds":60,"roles":[],"user_session_id":"us-reordered","left_at":"2026-04-08T14:24:35Z","user_id":"r"}',
  });
  // Keys named like the lean form's markers are kept as sent.
  out.push({
    id: 'us-markers',
    sent: '{"user_id":"k","user_session_id":"us-markers","publisher_type":"webrtc","roles":[],"joined_at":"2026-04-08T14:23:35Z","-":["roles"],"~joined_at":7,"#left_at":1}',
  });
  // A digit string under an `_at` key is kept as the integer it denotes (docs/sql.md).
  out.push({
    id: 'us-digits',
    sent: '{"user_id":"d","user_session_id":"us-digits","publisher_type":"webrtc","roles":["user"],"joined_at":"1775658215879421674","left_at":1775658245000000999}',
    held: '{"user_id":"d","user_session_id":"us-digits","publisher_type":"webrtc","roles":["user"],"joined_at":1775658215879421674,"left_at":1775658245000000999}',
  });
  return out;
}

const CASES = cases();

function pageText(entries: readonly string[]): string {
  return `{"call_type":"default","call_id":"s1","call_session_id":"s1","duration":3,"total_participant_sessions":${entries.length},"total_participant_duration":0,"participants_sessions":[${entries.join(',')}]}`;
}

async function writeThroughWorker(texts: readonly string[]): Promise<void> {
  const page = parseParticipantSessionsPage(parseStreamJson(pageText(texts)));
  await writePage(pool(), lease, { callType: 'default', callId: 's1', entries: page.entries, resumeCursor: null });
}

interface Compared {
  id: string;
  entry: string;
  held: string;
}

/** Each case's rebuilt entry beside what the full raw held, both as jsonb text printed by Postgres. */
async function compare(callSessionId: string, list: readonly Case[]): Promise<Compared[]> {
  const { rows } = await pool().query<Compared>(
    `select c.id, participant_session_entry(p)::text as entry, c.held::jsonb::text as held
       from unnest($2::text[], $3::text[]) as c(id, held)
       left join participant_sessions p on p.call_session_id = $1 and p.user_session_id = c.id
      order by c.id`,
    [callSessionId, list.map((c) => c.id), list.map((c) => c.held ?? c.sent)],
  );
  return rows;
}

beforeEach(async () => {
  await pool().query('truncate participant_sessions, stream_responses, call_sessions');
  await insertQueueRow(pool(), { id: 's1', status: 'running', leaseOwner: 'w1', leaseExpiresInSeconds: 60 });
});

describe('participant_sessions.raw, stored lean', () => {
  it(`gives back every one of ${CASES.length} entries written by the worker exactly as sent`, async () => {
    expect(CASES.length).toBeGreaterThan(100);
    await writeThroughWorker(CASES.map((c) => c.sent));
    const compared = await compare('s1', CASES);
    expect(compared).toHaveLength(CASES.length);
    expect(compared.filter((row) => row.entry !== row.held)).toEqual([]);
    // And the columns are still what they were: the lean form changed raw only.
    const { rows } = await pool().query<{ n: number }>(
      `select count(*)::int as n from participant_sessions where call_session_id = 's1'
          and (joined_at is null) = (participant_session_entry(participant_sessions) ->> 'joined_at' is null or
                                     participant_session_entry(participant_sessions) ->> 'joined_at' = '')`,
    );
    expect(rows[0]!.n).toBe(CASES.length);
  });

  it('stores markers, not the columns, for the common shape, and keeps what the columns cannot give back', async () => {
    await writeThroughWorker(CASES.map((c) => c.sent));
    const raw = async (id: string) =>
      (await pool().query<{ raw: string }>(`select raw::text from participant_sessions where user_session_id = $1`, [id])).rows[0]!.raw;
    // joined_at in UTC with nine fraction digits: 9 × 1000 + 674.
    const common = CASES.find((c) => c.sent.includes('"joined_at":"2026-04-08T14:23:35.879421674Z"') && c.sent.includes('"publisher_type":"webrtc"'))!;
    expect(JSON.parse(await raw(common.id))).not.toHaveProperty('user_session_id');
    expect(await raw(common.id)).toMatch(/"~joined_at": 9674/);
    // An offset other than Z, a digit string, JSON null: kept as sent.
    const offset = CASES.find((c) => c.sent.includes('"joined_at":"2026-04-08T16:23:35.879421674+02:00"'))!;
    expect(await raw(offset.id)).toContain('"joined_at": "2026-04-08T16:23:35.879421674+02:00"');
    expect(await raw('us-markers')).toContain('"user_session_id": "us-markers"');
    // Absent although the column holds '' and '{}': named under `-`.
    expect(JSON.parse(await raw('us-minimal'))).toEqual({ '-': ['publisher_type', 'roles'] });
  });

  it('shrinks the common Stream entry to under half its jsonb size', async () => {
    const common = (n: number) =>
      `{"user_id":"user-${n}","user_session_id":"0f1c2d3e-4b5a-6978-8a9b-${String(n).padStart(12, '0')}","publisher_type":"webrtc","roles":["user"],` +
      `"joined_at":"2026-04-08T14:23:35.${String(1_000_000_000 + n * 7919).slice(1)}Z","left_at":"2026-04-08T15:02:11.${String(1_000_000_000 + n * 104_729).slice(1)}Z","duration_in_seconds":2315}`;
    await writeThroughWorker(Array.from({ length: 50 }, (_, n) => common(n)));
    const { rows } = await pool().query<{ lean: number; full: number; same: number }>(
      `select sum(pg_column_size(raw))::int as lean, sum(pg_column_size(participant_session_entry(p)))::int as full,
              count(*) filter (where participant_session_entry(p)::text = e.sent::jsonb::text)::int as same
         from participant_sessions p join unnest($1::text[]) as e(sent) on p.user_session_id = e.sent::jsonb ->> 'user_session_id'`,
      [Array.from({ length: 50 }, (_, n) => common(n))],
    );
    expect(rows[0]!.same).toBe(50);
    expect(rows[0]!.lean).toBeLessThan(rows[0]!.full / 2);
  });

  it('rewrites no tuple when an unchanged session is archived again', async () => {
    await writeThroughWorker(CASES.map((c) => c.sent));
    const versions = () => pool().query<{ id: string; xmin: string }>(`select user_session_id as id, xmin::text from participant_sessions order by 1`);
    const before = (await versions()).rows;
    await writeThroughWorker(CASES.map((c) => c.sent));
    expect((await versions()).rows).toEqual(before);
    // It can fail: a changed entry is rewritten.
    const changed = CASES.map((c, i) => (i === 0 ? c.sent.replace('}', ',"added":1}') : c.sent));
    await writeThroughWorker(changed);
    expect((await versions()).rows.filter((row, i) => row.xmin !== before[i]!.xmin)).toHaveLength(1);
  });
});

describe("the worker's lean raw (ingest/lean-raw.ts) against participant_session_lean_raw", () => {
  // The simulator's ordinary entries: both timestamp forms, 0 to 9 fraction digits, missing fields omitted or null.
  const simulated: Case[] = [
    { format: 'rfc3339', missing: 'omit', subMillisecond: false },
    { format: 'rfc3339', missing: 'null', subMillisecond: true },
    { format: 'nanoseconds', missing: 'omit', subMillisecond: true },
    { format: 'nanoseconds', missing: 'null', subMillisecond: false },
  ].flatMap(({ format, missing, subMillisecond }, n) =>
    generateSession({ seed: `lean-raw-${n}`, size: 60, subMillisecond }).participants.map((p) => ({
      id: p.user_session_id,
      sent: participantJson(p, format as 'rfc3339' | 'nanoseconds', missing as 'omit' | 'null'),
    })),
  );

  /** Each case's stored raw beside what the SQL function makes of the full raw and the same columns. */
  async function storedAgainstSql(list: readonly Case[]): Promise<{ id: string; stored: string; sql: string; entry: string; held: string }[]> {
    await writeThroughWorker(list.map((c) => c.sent));
    const { rows } = await pool().query(
      `select c.id, p.raw::text as stored, participant_session_entry(p)::text as entry, c.held::jsonb::text as held,
              participant_session_lean_raw(c.held::jsonb, p.user_id, p.user_session_id, p.publisher_type, p.duration_in_seconds,
                p.roles, p.joined_at, p.left_at)::text as sql
         from unnest($1::text[], $2::text[]) as c(id, held)
         join participant_sessions p on p.call_session_id = 's1' and p.user_session_id = c.id
        order by c.id`,
      [list.map((c) => c.id), list.map((c) => c.held ?? c.sent)],
    );
    expect(rows).toHaveLength(list.length);
    return rows;
  }

  // Beyond the crossing above: an hour 24 (JS reads it, Postgres rolls it over to the next day's
  // 00:00, so it must stay as sent), and entries where the worker keeps more than the SQL would.
  const hour24: Case = { id: 'us-hour-24', sent: '{"user_id":"h","user_session_id":"us-hour-24","joined_at":"2026-04-08T24:00:00Z"}' };
  const keptMore: readonly Case[] = [
    // A JS number is already rounded: the worker keeps it as JSON.stringify prints it; the SQL marks it.
    {
      id: 'us-float',
      sent: '{"user_id":"f","user_session_id":"us-float","joined_at":1.775658215879421e18}',
      held: '{"user_id":"f","user_session_id":"us-float","joined_at":1775658215879421000}',
    },
    // A key that storableJson renames (its NUL dropped): the worker keeps such an entry whole.
    {
      id: 'us-nul-key',
      sent: '{"user_id":"n","user_session_id":"us-nul-key","publisher_type":"webrtc","roles":[],"note\\u0000":1}',
      held: '{"user_id":"n","user_session_id":"us-nul-key","publisher_type":"webrtc","roles":[],"note":1}',
    },
  ];

  it(`stores what the SQL function would for all ${CASES.length + 1} awkward entries, and more only where it cannot cheaply tell`, async () => {
    const rows = await storedAgainstSql([...CASES, hour24, ...keptMore]);
    // Where they differ, the stored form is still lossless: the rebuilt entry is the one sent.
    expect(rows.filter((row) => row.entry !== row.held)).toEqual([]);
    expect(rows.filter((row) => row.stored !== row.sql).map((row) => row.id)).toEqual(keptMore.map((c) => c.id).sort());
    const stored = (id: string) => rows.find((row) => row.id === id)!.stored;
    expect(stored('us-hour-24')).toContain('"joined_at": "2026-04-08T24:00:00Z"');
    expect(stored('us-float')).toContain('"joined_at": 1775658215879421000');
    expect(stored('us-nul-key')).toContain('"user_session_id": "us-nul-key"');
  });

  it(`stores exactly what the SQL function would for all ${simulated.length} simulator entries`, async () => {
    const rows = await storedAgainstSql(simulated);
    expect(rows.filter((row) => row.stored !== row.sql)).toEqual([]);
    expect(rows.filter((row) => row.entry !== row.held)).toEqual([]);
    // The comparison can fail: the simulator's entries do take the lean form's markers.
    expect(rows.filter((row) => /"[~#](joined|left)_at"/.test(row.stored))).toHaveLength(simulated.length);
  });
});

describe('rows stored whole before the lean form', () => {
  it('come back unchanged, including keys absent although their column holds a value', async () => {
    await writeThroughWorker(CASES.map((c) => c.sent));
    // The same rows as the worker wrote them before 0005: columns as now, raw the whole entry.
    await insertQueueRow(pool(), { id: 'old' });
    await pool().query(
      `insert into participant_sessions (call_session_id, user_session_id, call_type, call_id, user_id, joined_at, left_at,
              duration_in_seconds, publisher_type, roles, raw)
       select 'old', p.user_session_id, p.call_type, p.call_id, p.user_id, p.joined_at, p.left_at, p.duration_in_seconds,
              p.publisher_type, p.roles, c.held::jsonb
         from participant_sessions p join unnest($1::text[], $2::text[]) as c(id, held) on p.user_session_id = c.id
        where p.call_session_id = 's1'`,
      [CASES.map((c) => c.id), CASES.map((c) => c.held ?? c.sent)],
    );
    const compared = await compare('old', CASES);
    expect(compared.filter((row) => row.entry !== row.held)).toEqual([]);
    const { rows } = await pool().query<{ n: number }>(
      `select count(*)::int as n from participant_sessions where call_session_id = 'old' and raw ? 'user_session_id'`,
    );
    expect(rows[0]!.n).toBe(CASES.length);
  });

  it('are rewritten lean when their session is archived again, giving back the same entry', async () => {
    const sent = CASES.map((c) => c.sent);
    await writeThroughWorker(sent);
    await pool().query(
      `update participant_sessions p set raw = c.held::jsonb from unnest($1::text[], $2::text[]) as c(id, held) where p.user_session_id = c.id`,
      [CASES.map((c) => c.id), CASES.map((c) => c.held ?? c.sent)],
    );
    await writeThroughWorker(sent);
    const compared = await compare('s1', CASES);
    expect(compared.filter((row) => row.entry !== row.held)).toEqual([]);
    const { rows } = await pool().query<{ n: number }>(`select count(*)::int as n from participant_sessions where raw ? 'user_session_id'`);
    // Only the entry whose marker-named keys keep it whole still holds its user_session_id.
    expect(rows[0]!.n).toBe(1);
  });
});

describe('participant_session_lean_raw with columns that disagree with the entry', () => {
  // Not what the worker writes, but the function must stay lossless for any row it is given.
  const rows: readonly {
    raw: string;
    user_id: string;
    user_session_id: string;
    publisher_type: string;
    duration: number | null;
    roles: string;
    joined: string | null;
    left: string | null;
  }[] = [
    {
      raw: '{"user_id":"a","user_session_id":"x1"}',
      user_id: 'b',
      user_session_id: 'x1',
      publisher_type: 'webrtc',
      duration: 5,
      roles: '{user}',
      joined: '2026-01-01T00:00:00Z',
      left: null,
    },
    {
      raw: '{"user_session_id":"other","joined_at":"2026-01-01T00:00:00Z"}',
      user_id: 'a',
      user_session_id: 'x2',
      publisher_type: '',
      duration: null,
      roles: '{}',
      joined: '2026-01-01T00:00:00Z',
      left: null,
    },
    {
      raw: '{"user_id":"a","joined_at":"2026-01-01T00:00:00.5Z","left_at":1767225601000000001}',
      user_id: 'a',
      user_session_id: 'x3',
      publisher_type: '',
      duration: 7,
      roles: '{}',
      joined: '2026-01-01T00:00:00.5Z',
      left: '2026-01-01T00:00:01Z',
    },
    {
      raw: '{"user_id":"a","user_session_id":"x4","joined_at":"2026-01-01T00:00:00.123Z","left_at":1767225601000000001}',
      user_id: 'a',
      user_session_id: 'x4',
      publisher_type: 'p',
      duration: null,
      roles: '{r}',
      joined: '2026-01-01T00:00:00.124Z',
      left: '2026-01-01T00:00:02Z',
    },
    {
      raw: '{"user_id":"a","user_session_id":"x5","roles":["b","a"],"duration_in_seconds":5}',
      user_id: 'a',
      user_session_id: 'x5',
      publisher_type: 'p',
      duration: 6,
      roles: '{a,b}',
      joined: null,
      left: null,
    },
    {
      raw: '{"user_id":null,"user_session_id":"x6","publisher_type":null,"roles":null,"joined_at":"2026-01-01T00:00:00Z"}',
      user_id: '',
      user_session_id: 'x6',
      publisher_type: '',
      duration: null,
      roles: '{}',
      joined: null,
      left: null,
    },
    {
      raw: '{"user_id":"a","user_session_id":"x7","duration_in_seconds":30.0,"roles":["r"]}',
      user_id: 'a',
      user_session_id: 'x7',
      publisher_type: '',
      duration: 30,
      roles: '{r}',
      joined: null,
      left: null,
    },
    { raw: '["not", "an", "object"]', user_id: 'a', user_session_id: 'x8', publisher_type: '', duration: null, roles: '{}', joined: null, left: null },
  ];

  it('keeps or marks whatever the columns would not give back', async () => {
    await insertQueueRow(pool(), { id: 'odd' });
    for (const row of rows) {
      await pool().query(
        `insert into participant_sessions (call_session_id, user_session_id, call_type, call_id, user_id, joined_at, left_at, duration_in_seconds, publisher_type, roles, raw)
         values ('odd', $2, 'default', 'odd', $3, $7, $8, $5, $4, $6::text[],
                 participant_session_lean_raw($1::jsonb, $3, $2, $4, $5, $6::text[], $7, $8))`,
        [row.raw, row.user_session_id, row.user_id, row.publisher_type, row.duration, row.roles, row.joined, row.left],
      );
    }
    const { rows: back } = await pool().query<{ id: string; entry: string; held: string }>(
      `select p.user_session_id as id, participant_session_entry(p)::text as entry, r.raw::jsonb::text as held
         from participant_sessions p join unnest($1::text[], $2::text[]) as r(id, raw) on r.id = p.user_session_id
        where p.call_session_id = 'odd' order by 1`,
      [rows.map((r) => r.user_session_id), rows.map((r) => r.raw)],
    );
    expect(back).toHaveLength(rows.length);
    expect(back.filter((row) => row.entry !== row.held)).toEqual([]);
  });
});
