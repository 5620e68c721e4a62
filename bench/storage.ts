/**
 * Bytes on disk per archived participant session, to plan disks and know when to partition.
 *
 *   node bin/run-ts.js bench/storage.ts [--entries 100000]
 *
 * Creates its own database on the server of DATABASE_URL (default: the local Postgres), migrates it,
 * archives simulator-generated sessions (the demo's size mix: mostly small meetings, some of
 * hundreds, a few of thousands; odd user ids, rejoins, second devices) the way the worker writes
 * them (pages of 100, one upsert statement each, `raw` as Stream sent the entry), plus each
 * session's call_sessions row and its two webhooks, then vacuums and reads pg_relation_size of
 * every table, TOAST table and index. With pg_dump on PATH it also measures a custom-format dump.
 * Then it records which index each reader uses (views, cookbook, archive route, queue, lifecycle)
 * and measures the issue 19 proposal on scratch tables: `raw` without what the typed columns
 * hold, and the indexes no reader uses. Not in `npm run bench`: --entries 1000000 takes minutes.
 * Appends the figures to bench/RESULTS.md and drops the database.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type pg from 'pg';
import { generateSession, pickSessionSizes } from '../tools/simulator/generate.ts';
import { buildSessionEndedEvent, buildStatsReportReadyEvent } from '../tools/simulator/webhooks.ts';
import { DAY_MS, MINUTE_MS } from '../src/time.ts';
import { participantJson } from '../tools/simulator/wire.ts';
import { findArchivedSession } from '../src/archive/session.ts';
import { readParticipantPage } from '../src/archive/page.ts';
import { summarizeParticipantSessions } from '../src/archive/summary.ts';
import { createDatabase, type Database } from '../src/db/client.ts';
import { forgetUser } from '../src/lifecycle/forget.ts';
import { pruneArchiveBatch } from '../src/lifecycle/prune-archive.ts';
import { pruneInboxBatch } from '../src/lifecycle/prune-inbox.ts';
import { claimSessions } from '../src/queue/claim.ts';
import { expireOverdueSessions } from '../src/queue/expire.ts';
import { countArchived } from '../src/queue/finish.ts';
import { recountArchived } from '../src/queue/recount.ts';
import { readQueueStats } from '../src/queue/stats.ts';
import { appendResults, describeMachine, fmt, withBenchDatabase } from './lib/bench-env.ts';

const PAGE_SIZE = 100;
const DEADLINE_MS = 30 * MINUTE_MS;
const MIB = 1024 * 1024;

function parseArgs(argv: string[]): { entries: number } {
  const args = { entries: 100_000 };
  for (let i = 0; i < argv.length; i += 2) {
    const value = Number(argv[i + 1]);
    if (argv[i] === '--entries' && Number.isInteger(value) && value >= 1_000) args.entries = value;
    else throw new Error(`usage: storage.ts [--entries N>=1000] (bad ${argv[i]})`);
  }
  return args;
}

// The worker's page write (src/ingest/write-page.ts) without its lease fence and checkpoint.
const PAGE_SQL = `
  insert into participant_sessions
    (call_session_id, user_session_id, call_type, call_id, user_id, joined_at, left_at,
     duration_in_seconds, publisher_type, roles, raw, archived_at)
  select $1, r.raw->>'user_session_id', $2, $3, r.raw->>'user_id', (r.raw->>'joined_at')::timestamptz,
         (r.raw->>'left_at')::timestamptz, (r.raw->>'duration_in_seconds')::integer, r.raw->>'publisher_type',
         array(select jsonb_array_elements_text(r.raw->'roles')), r.raw, now()
    from jsonb_array_elements($4::jsonb) as r(raw)
  on conflict (call_session_id, user_session_id) do nothing`;

/*
 * Which index each reader uses: every probe runs alone on one connection, then that backend's
 * pending statistics are flushed (pg_stat_force_next_flush) and the idx_scan / seq_scan deltas of
 * pg_stat_user_indexes / pg_stat_user_tables are read. The probes are the product's own
 * functions where they can run outside a worker (archive route, queue, lifecycle), the documented
 * views, and every cookbook query of docs/sql.md with its literals replaced by this archive's.
 * The destructive probes (forget, retention) run last, after every size is measured.
 */
interface ProbeContext {
  readonly database: Database;
  readonly session: { readonly id: string; readonly callType: string; readonly callId: string };
  readonly user: string;
  readonly month: readonly [string, string];
  readonly page: string;
}

interface Probe {
  readonly name: string;
  readonly run: (ctx: ProbeContext) => Promise<unknown>;
}

async function withClient<T>(database: Database, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await database.pool.connect();
  try {
    return await fn(client);
  } finally {
    client.release();
  }
}

const PRODUCT_PROBES: readonly Probe[] = [
  { name: 'archive route: session lookup', run: ({ database, session }) => findArchivedSession(database.db, { ...session, callSessionId: session.id }) },
  {
    name: 'archive route: first page',
    run: ({ database, session }) => readParticipantPage(database.db, { callSessionId: session.id, filters: [], limit: 100 }),
  },
  {
    name: 'archive route: page filtered by user_id',
    run: ({ database, session, user }) =>
      readParticipantPage(database.db, { callSessionId: session.id, filters: [{ field: 'user_id', op: '$eq', values: [user] }], limit: 100 }),
  },
  { name: 'archive route: summary', run: ({ database, session }) => summarizeParticipantSessions(database.db, { callSessionId: session.id, filters: [] }) },
  {
    name: 'worker: page upsert (same statement shape, all conflicts)',
    run: ({ database, session, page }) => database.pool.query(PAGE_SQL, [session.id, session.callType, session.callId, page]),
  },
  { name: 'worker: count archived', run: ({ database, session }) => countArchived(database.pool, session.id) },
  { name: 'worker: claim', run: ({ database }) => claimSessions(database.pool, { workerId: 'storage-bench', limit: 4, leaseSeconds: 60 }) },
  { name: 'worker: expire overdue', run: ({ database }) => expireOverdueSessions(database.pool) },
  { name: 'status: queue stats', run: ({ database }) => readQueueStats(database.pool) },
  { name: 'lifecycle: recount', run: ({ database, session }) => recountArchived(database.pool, [session.id]) },
  { name: 'forget --dry-run', run: ({ database, user }) => withClient(database, (client) => forgetUser(client, user, { dryRun: true })) },
  { name: 'forget', run: ({ database, user }) => withClient(database, (client) => forgetUser(client, user)) },
  { name: 'archive retention batch', run: ({ database }) => withClient(database, (client) => pruneArchiveBatch(client, 30, 1_000)) },
  { name: 'inbox retention batch', run: ({ database }) => withClient(database, (client) => pruneInboxBatch(client, 30, 1_000)) },
];

function viewProbes(): Probe[] {
  const sql =
    (text: (ctx: ProbeContext) => [string, unknown[]]) =>
    (ctx: ProbeContext): Promise<unknown> =>
      ctx.database.pool.query(...text(ctx));
  return [
    { name: 'view attendance: one session', run: sql(({ session }) => ['select * from attendance where call_session_id = $1', [session.id]]) },
    {
      name: 'view attendance_stretches: one session',
      run: sql(({ session }) => ['select * from attendance_stretches where call_session_id = $1', [session.id]]),
    },
    {
      name: 'view call_session_attendance: one session',
      run: sql(({ session }) => ['select * from call_session_attendance where call_session_id = $1', [session.id]]),
    },
    {
      name: 'view attendance: one user',
      run: sql(({ user }) => ['select * from attendance where user_id = $1', [user]]),
    },
  ];
}

async function cookbookProbes(): Promise<Probe[]> {
  const text = await readFile(new URL('../docs/sql.md', import.meta.url), 'utf8');
  return [...text.matchAll(/```sql\n-- id: ([a-z0-9-]+)\n([\s\S]*?)```/g)].map(([, id, query]) => ({
    name: `cookbook ${id!}`,
    run: ({ database, session, user, month }: ProbeContext) =>
      database.pool.query(
        query!
          .replaceAll("'classroom'", `'${session.callType}'`)
          .replaceAll("'algebra-101'", `'${session.callId}'`)
          .replaceAll("'student-03'", `'${user}'`)
          .replaceAll("'2026-03-01T00:00:00Z'", `'${month[0]}'`)
          .replaceAll("'2026-04-01T00:00:00Z'", `'${month[1]}'`),
      ),
  }));
}

type ScanCounts = Map<string, number>;

async function readScans(database: Database): Promise<ScanCounts> {
  const { rows } = await database.pool.query<{ name: string; scans: string }>(
    `select indexrelname as name, idx_scan as scans from pg_stat_user_indexes
     union all select 'seq scan of ' || relname, seq_scan from pg_stat_user_tables`,
  );
  return new Map(rows.map((r) => [r.name, Number(r.scans)]));
}

/** For each probe, the indexes (and sequential scans) its statements used. */
async function probeIndexUse(url: string, ctx: Omit<ProbeContext, 'database'>): Promise<Map<string, string[]>> {
  // One connection, so the flush below covers everything the probe did.
  const database = createDatabase(url, { max: 1 });
  try {
    await database.pool.query('set statement_timeout = 120000');
    const used = new Map<string, string[]>();
    for (const probe of [...viewProbes(), ...(await cookbookProbes()), ...PRODUCT_PROBES]) {
      await database.pool.query('select pg_stat_force_next_flush()');
      const before = await readScans(database);
      await probe.run({ ...ctx, database });
      await database.pool.query('select pg_stat_force_next_flush()');
      const after = await readScans(database);
      used.set(
        probe.name,
        [...after].filter(([name, scans]) => scans > (before.get(name) ?? 0)).map(([name]) => name),
      );
    }
    return used;
  } finally {
    await database.close();
  }
}

/*
 * The worked proposal, on scratch tables: `raw` keeping only what the typed columns do not hold.
 * Stripped when the column gives back the value's exact JSON text: user_id, user_session_id,
 * publisher_type, duration_in_seconds, and roles when not empty (an absent roles becomes the
 * column's '{}', so an empty one stays). Key present in raw with column null (a JSON null) is
 * kept. Timestamps: the columns hold microseconds, Stream sends nanoseconds, so `lean` keeps them
 * whole; `residue` replaces one by a small integer under a marker key ("~joined_at" for RFC 3339
 * in UTC: fraction digits × 1000 + the digits past the microsecond; "#joined_at" for integer
 * nanoseconds: the nanoseconds past the microsecond) when rebuilding it gives back the exact text. RESTORE_SQL rebuilds raw and the run
 * counts the rows where it differs from the original.
 */
const strip = (key: string, column: string, extra = 'true') =>
  `case when (p.raw -> '${key}')::text = to_jsonb(p.${column})::text and ${extra} then '${key}' end`;
const LEAN_RAW = `p.raw - array_remove(array[${strip('user_id', 'user_id')}, ${strip('user_session_id', 'user_session_id')},
  ${strip('publisher_type', 'publisher_type')}, ${strip('duration_in_seconds', 'duration_in_seconds')},
  ${strip('roles', 'roles', 'cardinality(p.roles) > 0')}], null)`;
// An RFC 3339 UTC residue is (fraction digits sent) × 1000 + the digits past the microsecond.
const rfcOf = (column: string, code: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
  || case when ${code} >= 1000 then '.' || left(to_char(${column} at time zone 'UTC', 'US') || lpad((${code} % 1000)::text, 3, '0'), ${code} / 1000) else '' end || 'Z'`;
const nanosOf = (column: string) => `(extract(epoch from ${column}) * 1000000000)::numeric`;
function residue(key: string, column: string): string {
  const text = `(p.raw ->> '${key}')`;
  const fraction = `coalesce(substring(${text} from '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.(\\d{1,9})Z$'), '')`;
  const rfcCode = `(length(${fraction}) * 1000 + substr(rpad(${fraction}, 9, '0'), 7, 3)::int)`;
  const intDigits = `(case when jsonb_typeof(p.raw -> '${key}') = 'number' then (p.raw ->> '${key}')::numeric end - ${nanosOf(`p.${column}`)})`;
  return `case
    when jsonb_typeof(p.raw -> '${key}') = 'string' and ${text} ~ '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d{1,9})?Z$'
         and ${rfcOf(`p.${column}`, rfcCode)} = ${text}
      then jsonb_build_object('~${key}', ${rfcCode})
    when jsonb_typeof(p.raw -> '${key}') = 'number' and ${intDigits} between 0 and 999 and ${intDigits} = trunc(${intDigits})
      then jsonb_build_object('#${key}', ${intDigits}::int)
    end`;
}
// Reads r.joined_residue / r.left_residue, computed once per row by measureLean's lateral join.
const RESIDUE_RAW = `(${LEAN_RAW}) - array_remove(array[
    case when r.joined_residue is not null then 'joined_at' end,
    case when r.left_residue is not null then 'left_at' end], null)
  || coalesce(r.joined_residue, '{}') || coalesce(r.left_residue, '{}')`;
const back = (key: string, column: string, value: string, extra = 'true') =>
  `case when not (l.raw ? '${key}') and l.${column} is not null and ${extra} then jsonb_build_object('${key}', ${value}) else '{}' end`;
const timeBack = (key: string, column: string) => `case
    when l.raw ? '~${key}' then jsonb_build_object('${key}', ${rfcOf(`l.${column}`, `(l.raw ->> '~${key}')::int`)})
    when l.raw ? '#${key}' then jsonb_build_object('${key}', ${nanosOf(`l.${column}`)} + (l.raw ->> '#${key}')::numeric)
    else '{}' end`;
const RESTORE_SQL = `(l.raw - array['~joined_at', '#joined_at', '~left_at', '#left_at']
  || ${back('user_id', 'user_id', 'l.user_id')} || ${back('user_session_id', 'user_session_id', 'l.user_session_id')}
  || ${back('publisher_type', 'publisher_type', 'l.publisher_type')}
  || ${back('duration_in_seconds', 'duration_in_seconds', 'l.duration_in_seconds')}
  || ${back('roles', 'roles', 'to_jsonb(l.roles)', 'cardinality(l.roles) > 0')}
  || ${timeBack('joined_at', 'joined_at')} || ${timeBack('left_at', 'left_at')})`;

interface LeanResult {
  readonly name: string;
  readonly heap: number;
  readonly toast: number;
  readonly rawBytes: number;
  readonly mismatches: number;
}

async function measureLean(pool: pg.Pool, name: string, rawSql: string, residues = false): Promise<LeanResult> {
  await pool.query(`create table ${name} (like participant_sessions including defaults)`);
  await pool.query(`insert into ${name} (call_session_id, user_session_id, call_type, call_id, user_id, joined_at, left_at,
      duration_in_seconds, publisher_type, roles, raw, archived_at)
    select p.call_session_id, p.user_session_id, p.call_type, p.call_id, p.user_id, p.joined_at,
      p.left_at, p.duration_in_seconds, p.publisher_type, p.roles, ${rawSql}, p.archived_at
      from participant_sessions p
      ${residues ? `cross join lateral (select ${residue('joined_at', 'joined_at')} as joined_residue, ${residue('left_at', 'left_at')} as left_residue) r` : ''}`);
  await pool.query(`vacuum (analyze) ${name}`);
  const { rows } = await pool.query<{ heap: string; toast: string; raw_bytes: string; mismatches: string }>(
    `select pg_relation_size('${name}') as heap,
            coalesce(pg_total_relation_size(nullif((select reltoastrelid from pg_class where oid = '${name}'::regclass), 0)), 0) as toast,
            (select avg(pg_column_size(raw)) from ${name}) as raw_bytes,
            (select count(*) from ${name} l join participant_sessions p using (call_session_id, user_session_id)
              where ${RESTORE_SQL}::text is distinct from p.raw::text) as mismatches`,
  );
  const r = rows[0]!;
  return { name, heap: Number(r.heap), toast: Number(r.toast), rawBytes: Number(r.raw_bytes), mismatches: Number(r.mismatches) };
}

interface Relation {
  readonly name: string;
  readonly bytes: number;
}

const { entries: target } = parseArgs(process.argv.slice(2));

await withBenchDatabase(
  async (db) => {
    const sizes: number[] = [];
    for (const size of pickSessionSizes({ seed: 'storage', count: 100_000, maxSize: 5_000 })) {
      const have = sizes.reduce((a, b) => a + b, 0);
      if (have >= target) break;
      sizes.push(Math.min(size, target - have));
    }
    const now = Date.now();
    let entries = 0;
    let rawJsonBytes = 0;
    const started = performance.now();
    for (const [index, size] of sizes.entries()) {
      // Sessions spread over the 90 days Stream keeps, as a first sweep would find them.
      const endedAt = new Date(Math.floor((now - (index / sizes.length) * 90 * DAY_MS) / 1000) * 1000);
      const session = generateSession({ seed: `storage-${index}`, size, endedAt });
      const duration = session.totalParticipantDuration;
      await db.pool.query(
        `insert into call_sessions (call_session_id, call_type, call_id, call_cid, status, total_participant_sessions,
           total_participant_duration, archived_participant_sessions, session_ended_at, stats_report_ready_at,
           retention_expires_at, attempts, archived_at)
         values ($1, $2, $3, $2 || ':' || $3, 'complete', $4, $5, $4, $6, $6, $6::timestamptz + interval '90 days', 1, now())`,
        [session.callSessionId, session.callType, session.callId, size, duration, session.endedAt],
      );
      for (const event of [buildStatsReportReadyEvent(session), buildSessionEndedEvent(session)]) {
        await db.pool.query(`insert into webhook_events (webhook_id, type, call_cid, session_id, attempt, payload) values ($1, $2, $3, $4, 1, $5)`, [
          randomUUID(),
          event.type,
          `${session.callType}:${session.callId}`,
          session.callSessionId,
          JSON.stringify(event),
        ]);
      }
      for (let i = 0; i < session.participants.length; i += PAGE_SIZE) {
        const page = session.participants.slice(i, i + PAGE_SIZE).map((p) => participantJson(p, 'rfc3339', 'omit'));
        for (const json of page) rawJsonBytes += Buffer.byteLength(json);
        await db.pool.query(PAGE_SQL, [session.callSessionId, session.callType, session.callId, `[${page.join(',')}]`]);
      }
      entries += size;
    }
    const loadSeconds = (performance.now() - started) / 1000;
    await db.pool.query('vacuum (analyze) participant_sessions, call_sessions, webhook_events');

    const relations = async (table: string): Promise<{ heap: number; toast: number; indexes: Relation[]; total: number }> => {
      const { rows } = await db.pool.query<{ heap: string; toast: string; total: string }>(
        `select pg_relation_size(c.oid) as heap,
                coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) as toast,
                pg_total_relation_size(c.oid) as total
           from pg_class c where c.oid = $1::regclass`,
        [table],
      );
      const indexes = await db.pool.query<{ name: string; bytes: string }>(
        `select i.indexrelid::regclass::text as name, pg_relation_size(i.indexrelid) as bytes
           from pg_index i where i.indrelid = $1::regclass order by 1`,
        [table],
      );
      return {
        heap: Number(rows[0]!.heap),
        toast: Number(rows[0]!.toast),
        total: Number(rows[0]!.total),
        indexes: indexes.rows.map((r) => ({ name: r.name, bytes: Number(r.bytes) })),
      };
    };
    const participants = await relations('participant_sessions');
    const calls = await relations('call_sessions');
    const webhooks = await relations('webhook_events');
    const { rows: averages } = await db.pool.query<{ row_bytes: string; raw_bytes: string }>(
      `select avg(pg_column_size(p.*))::int as row_bytes, avg(pg_column_size(p.raw))::int as raw_bytes from participant_sessions p`,
    );

    let dumpBytes: number | undefined;
    const dir = await mkdtemp(join(tmpdir(), 'attendance-storage-'));
    try {
      await promisify(execFile)('pg_dump', ['--format=custom', '--no-owner', `--file=${join(dir, 'archive.dump')}`, db.url], { timeout: 300_000 });
      dumpBytes = (await stat(join(dir, 'archive.dump'))).size;
    } catch (error) {
      console.error(`pg_dump not measured: ${(error as Error).message.split('\n')[0]}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    // The proposal's scratch tables, measured before any probe deletes rows.
    const lean = await measureLean(db.pool, 'storage_lean_raw', LEAN_RAW);
    const residueLean = await measureLean(db.pool, 'storage_residue_raw', RESIDUE_RAW, true);
    await db.pool.query('drop table storage_lean_raw, storage_residue_raw');

    const { rows: picks } = await db.pool.query<{ id: string; call_type: string; call_id: string; size: number; user_id: string; page: string; month: string }>(
      `select cs.call_session_id as id, cs.call_type, cs.call_id, cs.total_participant_sessions as size,
              (select user_id from participant_sessions where call_session_id = cs.call_session_id group by 1 order by count(*) desc, 1 limit 1) as user_id,
              (select jsonb_agg(raw)::text from (select raw from participant_sessions where call_session_id = cs.call_session_id limit ${PAGE_SIZE}) r) as page,
              to_char(date_trunc('month', now() at time zone 'UTC' - interval '45 days'), 'YYYY-MM-DD') as month
         from call_sessions cs order by cs.total_participant_sessions desc, 1 limit 1`,
    );
    const pick = picks[0]!;
    const monthStart = new Date(`${pick.month}T00:00:00Z`);
    const monthEnd = new Date(Date.UTC(monthStart.getUTCFullYear(), monthStart.getUTCMonth() + 1, 1));
    const usedBy = await probeIndexUse(db.url, {
      session: { id: pick.id, callType: pick.call_type, callId: pick.call_id },
      user: pick.user_id,
      month: [monthStart.toISOString().replace('.000', ''), monthEnd.toISOString().replace('.000', '')],
      page: pick.page,
    });
    for (const [probe, used] of usedBy) console.log(`${probe}: ${used.join(', ') || '(no scan of a user table)'}`);
    const probesUsing = (name: string) => [...usedBy].filter(([, used]) => used.includes(name)).map(([probe]) => probe);
    const unused = participants.indexes.filter((index) => probesUsing(index.name).length === 0);
    const kept = participants.indexes.filter((index) => probesUsing(index.name).length > 0);
    const keptBytes = kept.reduce((sum, index) => sum + index.bytes, 0);
    const unusedBytes = unused.reduce((sum, index) => sum + index.bytes, 0);

    const perEntry = (bytes: number) => bytes / entries;
    const row = (what: string, bytes: number, used = ''): string[] => [
      what,
      fmt(bytes / MIB, 2),
      fmt(perEntry(bytes), 1),
      fmt((perEntry(bytes) * 1e6) / MIB, 0),
      used,
    ];
    const everything = participants.total + calls.total + webhooks.total;
    const proposed = residueLean.heap + residueLean.toast + keptBytes;
    const windowBytes = kept.filter((i) => /session_(joined|left)_idx$/.test(i.name)).reduce((sum, i) => sum + i.bytes, 0);
    const table = [
      row('participant_sessions heap', participants.heap, probesUsing('seq scan of participant_sessions').join('; ')),
      row('participant_sessions TOAST', participants.toast),
      ...participants.indexes.map((index) => row(`index ${index.name}`, index.bytes, probesUsing(index.name).join('; ') || '**none**')),
      row('**participant_sessions, total**', participants.total),
      row(`call_sessions, total (${fmt(sizes.length)} sessions)`, calls.total),
      row(`webhook_events, total (${fmt(sizes.length * 2)} webhooks)`, webhooks.total),
      row('**all three tables**', everything),
      ...(dumpBytes === undefined ? [] : [row('pg_dump --format=custom (compressed)', dumpBytes)]),
      row("proposal: heap with `raw` minus the typed columns' fields (scratch table)", lean.heap + lean.toast),
      row('proposal: heap with that and timestamps as sub-µs residues (scratch table)', residueLean.heap + residueLean.toast),
      ...unused.map((index) => row(`proposal: drop ${index.name}`, -index.bytes)),
      row('**proposal: participant_sessions, total**', proposed),
    ];
    const gib = (bytes: number) => fmt((perEntry(bytes) * 1e6) / 1024 ** 3, 2);
    const otherIndexes = [...new Set([...usedBy.values()].flat())].filter(
      (name) => !name.startsWith('participant_sessions') && !name.includes('participant_sessions'),
    );
    console.table(table);
    await appendResults({
      title: 'Storage per archived entry (bench/storage.ts)',
      command: `node bin/run-ts.js bench/storage.ts --entries ${target}`,
      machine: await describeMachine(db.pool),
      notes: [
        `${fmt(entries)} participant sessions in ${fmt(sizes.length)} call sessions of the demo's size mix (1 to 5,000 entries, ` +
          `mean ${fmt(entries / sizes.length)}), generated by the simulator and written as the worker writes them (pages of 100, timestamps in RFC 3339 with 0 to 9 fraction digits as the simulator sends them), loaded in ${fmt(loadSeconds, 1)} s, then ` +
          '`vacuum (analyze)`; sizes from pg_relation_size / pg_total_relation_size. ' +
          `An entry's \`raw\` is ${fmt(rawJsonBytes / entries)} bytes of JSON as Stream sends it, ${averages[0]!.raw_bytes} bytes as jsonb; ` +
          `a whole row averages ${averages[0]!.row_bytes} bytes before the 24-byte tuple header and line pointer.`,
        '',
        `"used by": each reader run alone on one connection after the sizes were taken, with the idx_scan / seq_scan deltas of ` +
          'pg_stat_user_indexes / pg_stat_user_tables read after a forced stats flush: the four documented views on one session or user, ' +
          `every cookbook query of docs/sql.md (its class, user and month replaced by this archive's: session ${pick.call_type}:${pick.call_id} of ` +
          `${fmt(pick.size)} entries, user ${pick.user_id}, ${pick.month.slice(0, 7)}), and the product's own ` +
          'archive-route, queue and lifecycle functions (findArchivedSession, readParticipantPage, summarizeParticipantSessions, countArchived, ' +
          'claimSessions, expireOverdueSessions, readQueueStats, recountArchived, forgetUser, pruneArchiveBatch, pruneInboxBatch); the page ' +
          "upsert is this bench's copy of the worker's statement. Indexes of call_sessions / webhook_events used: " +
          `${otherIndexes.join(', ') || 'none'}.`,
      ],
      table: { header: ['relation', 'MiB', 'bytes per entry', 'MiB per million entries', 'used by'], rows: table },
      verdicts: [
        `participant_sessions grows ${gib(participants.total)} GiB per million entries with its indexes; ` +
          `${gib(everything)} GiB with the call_sessions and webhook_events rows that come with them at this session mix`,
        ...(dumpBytes === undefined ? [] : [`a compressed custom-format dump takes ${gib(dumpBytes)} GiB per million entries`]),
        `**Proposal (issue 19, item 1), measured on scratch tables, not applied:** \`raw\` keeps only what the typed columns do not hold. ` +
          "Stripped losslessly, when the column gives back the value's exact JSON text: `user_id`, `user_session_id`, `publisher_type`, " +
          "`duration_in_seconds`, and `roles` when not empty (an absent `roles` becomes the column's `{}`, so an empty one must stay in raw); " +
          'a key sent as `null`, a value of another JSON type (a number as user_id) or one the column does not give back byte for byte stays. ' +
          '`joined_at` / `left_at` cannot be stripped: the columns hold microseconds, Stream sends nanoseconds (RFC 3339 with its offset and ' +
          'up to nine digits, or integer nanoseconds), so at most they shrink to a small integer under a marker key: `~joined_at` = fraction digits sent × 1000 + ' +
          'the digits past the microsecond for RFC 3339 in UTC (`Z`), `#joined_at` = the nanoseconds past the microsecond for an integer; ' +
          'kept whole otherwise (another offset, `+00:00`). Fields Stream adds stay. Every rule is checked by rebuilding raw (below).',
        `raw as jsonb: ${averages[0]!.raw_bytes} bytes now, ${fmt(lean.rawBytes)} with the typed fields stripped, ${fmt(residueLean.rawBytes)} with timestamp residues too; ` +
          `rebuilding raw from columns + stripped raw differs from the original in ${fmt(lean.mismatches)} and ${fmt(residueLean.mismatches)} rows (must be 0)`,
        `indexes no reader used: ${unused.map((index) => `${index.name} (${fmt(perEntry(index.bytes), 1)} B/entry)`).join(', ') || 'none'}, ${fmt(perEntry(unusedBytes), 1)} B/entry together`,
        `participant_sessions per entry: ${fmt(perEntry(participants.total), 1)} B now → ${fmt(perEntry(proposed), 1)} B with residue raw and only the used indexes ` +
          `(target ≤ 500: ${perEntry(proposed) <= 500 ? 'met' : 'MISSED'}); the call_sessions / webhook_events rows add ${fmt(perEntry(calls.total + webhooks.total), 1)} B at this session mix`,
        `the rest is keys: without the two session-window indexes (${fmt(perEntry(windowBytes), 1)} B/entry: built for the views' session ` +
          `window, which a per-session window kept on call_sessions would replace; their other lookups by call_session_id the primary key's leading column serves) it would be ${fmt(perEntry(proposed - windowBytes), 1)} B; ` +
          `the primary key alone (two text ids) is ${fmt(perEntry(participants.indexes.find((i) => i.name === 'participant_sessions_pkey')?.bytes ?? 0), 1)} B`,
      ],
    });
  },
  { prefix: 'attendance_bench_storage', deadlineMs: DEADLINE_MS },
);
