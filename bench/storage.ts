/**
 * Bytes on disk per archived participant session, to plan disks and know when to partition.
 *
 *   node bin/run-ts.js bench/storage.ts [--entries 100000]
 *
 * Creates its own database on the server of DATABASE_URL (default: the local Postgres), migrates it,
 * archives simulator-generated sessions (the demo's size mix: mostly small meetings, some of
 * hundreds, a few of thousands; odd user ids, rejoins, second devices) through the worker's own
 * page write (parseParticipantSessionsPage, then writePage: pages of 100, one fenced statement
 * each, `raw` stored lean), plus each session's call_sessions row and its two webhooks, then
 * vacuums and reads pg_relation_size of every table, TOAST table and index (listed from the
 * catalog, so whatever the migrations hold). The same rows with `raw` as Stream sent the entry
 * go to a scratch table in the same run: the "before" figure, and the reference every rebuilt
 * entry (participant_session_entry) is compared with. With pg_dump on PATH it also measures a
 * custom-format dump; the rollup tables, when the migrations have them, are refreshed and
 * reported on their own lines. Then it times the lean write and read against the whole raw on
 * scratch tables, and records which index each reader uses (views, cookbook, archive route, queue,
 * lifecycle). Not in `npm run bench`: --entries 1000000 takes minutes.
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
import { writePage } from '../src/ingest/write-page.ts';
import { leanRaw } from '../src/ingest/lean-raw.ts';
import { parseParticipantSessionsPage, parseStreamJson } from '../src/stream/schemas.ts';
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
import { appendResults, describeMachine, fmt, median, ratio, withBenchDatabase } from './lib/bench-env.ts';

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

// The index-use probe's page write: the worker's upsert (queue/checkpoint-page.ts) without its lease
// fence and checkpoint, every row a conflict, so it writes nothing.
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
 * The cost of the lean form, on scratch tables without indexes, in the same run: the worker's
 * insert shape (one page as a jsonb array through jsonb_to_recordset, a named statement like the
 * worker's) storing the entry whole, the lean form the worker makes (ingest/lean-raw.ts), or the
 * lean form made in the statement by participant_session_lean_raw(...) (how the worker stored it
 * before); and 100-row page reads of raw against participant_session_entry(p) (unnamed, planned
 * per read, as the archive route's are). Alternated, three rounds, medians.
 */
const writeSql = (raw: string, table: string) => `
  insert into ${table} (call_session_id, user_session_id, call_type, call_id, user_id, joined_at, left_at,
     duration_in_seconds, publisher_type, roles, raw, archived_at)
  select $1, r.user_session_id, $2, $3, r.user_id, r.joined_at, r.left_at, r.duration_in_seconds, r.publisher_type, r.roles, ${raw}, now()
    from jsonb_to_recordset($4::jsonb) as r(user_session_id text, user_id text, joined_at timestamptz, left_at timestamptz,
      duration_in_seconds integer, publisher_type text, roles text[], raw jsonb)`;
const WRITE_WHOLE_SQL = writeSql('r.raw', 'storage_write_whole');
const WRITE_LEAN_SQL = writeSql('r.raw', 'storage_write_lean');
const WRITE_LEAN_IN_SQL_SQL = writeSql(
  'participant_session_lean_raw(r.raw, r.user_id, r.user_session_id, r.publisher_type, r.duration_in_seconds, r.roles, r.joined_at, r.left_at)',
  'storage_write_lean_in_sql',
);
const READ_RAW_SQL = 'select raw::text from participant_sessions p where call_session_id = $1 order by user_session_id limit 100';
const READ_ENTRY_SQL = 'select participant_session_entry(p)::text from participant_sessions p where call_session_id = $1 order by user_session_id limit 100';

interface PageRows {
  readonly callSessionId: string;
  readonly callType: string;
  readonly callId: string;
  readonly rowsJson: string;
  /** The same rows with raw as the worker stores it. */
  readonly leanRowsJson: string;
  readonly rows: number;
}

interface CostResult {
  /** Median µs per row of each variant. */
  readonly writeWhole: number;
  readonly writeLean: number;
  readonly writeLeanInSql: number;
  readonly readRaw: number;
  readonly readEntry: number;
}

async function measureCost(pool: pg.Pool, pages: readonly PageRows[], sessions: readonly string[]): Promise<CostResult> {
  await pool.query('create table storage_write_whole (like participant_sessions including defaults)');
  await pool.query('create table storage_write_lean (like participant_sessions including defaults)');
  await pool.query('create table storage_write_lean_in_sql (like participant_sessions including defaults)');
  const rows = pages.reduce((sum, page) => sum + page.rows, 0);
  const reads = sessions.length * 100;
  const write = async (sql: string, table: string, lean = false): Promise<number> => {
    await pool.query(`truncate ${table}`);
    const started = performance.now();
    // Named, as the worker's statement is: each connection plans it once, not once a page.
    for (const page of pages) {
      await pool.query({ name: table, text: sql, values: [page.callSessionId, page.callType, page.callId, lean ? page.leanRowsJson : page.rowsJson] });
    }
    return ((performance.now() - started) * 1000) / rows;
  };
  const read = async (sql: string): Promise<number> => {
    const started = performance.now();
    for (const id of sessions) await pool.query(sql, [id]);
    return ((performance.now() - started) * 1000) / reads;
  };
  const samples = { writeWhole: [] as number[], writeLean: [] as number[], writeLeanInSql: [] as number[], readRaw: [] as number[], readEntry: [] as number[] };
  for (let round = 0; round < 3; round++) {
    samples.writeWhole.push(await write(WRITE_WHOLE_SQL, 'storage_write_whole'));
    samples.writeLean.push(await write(WRITE_LEAN_SQL, 'storage_write_lean', true));
    samples.writeLeanInSql.push(await write(WRITE_LEAN_IN_SQL_SQL, 'storage_write_lean_in_sql'));
    samples.readRaw.push(await read(READ_RAW_SQL));
    samples.readEntry.push(await read(READ_ENTRY_SQL));
  }
  await pool.query('drop table storage_write_whole, storage_write_lean, storage_write_lean_in_sql');
  return {
    writeWhole: median(samples.writeWhole),
    writeLean: median(samples.writeLean),
    writeLeanInSql: median(samples.writeLeanInSql),
    readRaw: median(samples.readRaw),
    readEntry: median(samples.readEntry),
  };
}

// The same rows with raw as Stream sent the entry: the "before" of the lean form.
const WHOLE_RAW_SQL = `
  insert into storage_whole_raw
  select p.call_session_id, p.user_session_id, p.call_type, p.call_id, p.user_id, p.joined_at, p.left_at,
         p.duration_in_seconds, p.publisher_type, p.roles, s.sent, p.archived_at
    from jsonb_array_elements($2::jsonb) as s(sent)
    join participant_sessions p on p.call_session_id = $1 and p.user_session_id = s.sent ->> 'user_session_id'`;

// Tables of migration 0006 (attendance rollups), reported on their own when present.
const ROLLUP_TABLES = ['attendance_rollup', 'session_rollup', 'monthly_user_attendance', 'daily_call_type_attendance', 'daily_call_type_users'] as const;

const LEASE_OWNER = 'storage-bench';
// Pages kept for the cost comparison; about 20,000 rows.
const COST_PAGES = 200;

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
    await db.pool.query('create table storage_whole_raw (like participant_sessions including defaults)');
    const now = Date.now();
    let entries = 0;
    let rawJsonBytes = 0;
    let writeMs = 0;
    const costPages: PageRows[] = [];
    const started = performance.now();
    for (const [index, size] of sizes.entries()) {
      // Sessions spread over the 90 days Stream keeps, as a first sweep would find them.
      const endedAt = new Date(Math.floor((now - (index / sizes.length) * 90 * DAY_MS) / 1000) * 1000);
      const session = generateSession({ seed: `storage-${index}`, size, endedAt });
      const duration = session.totalParticipantDuration;
      // Running under this bench's lease while its pages are written, as the worker holds it.
      await db.pool.query(
        `insert into call_sessions (call_session_id, call_type, call_id, call_cid, status, total_participant_sessions,
           total_participant_duration, archived_participant_sessions, session_ended_at, stats_report_ready_at,
           retention_expires_at, attempts, lease_owner, lease_expires_at)
         values ($1, $2, $3, $2 || ':' || $3, 'running', $4, $5, 0, $6, $6, $6::timestamptz + interval '90 days', 1, $7, now() + interval '1 day')`,
        [session.callSessionId, session.callType, session.callId, size, duration, session.endedAt, LEASE_OWNER],
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
      const lease = { callSessionId: session.callSessionId, owner: LEASE_OWNER };
      for (let i = 0; i < session.participants.length; i += PAGE_SIZE) {
        const page = session.participants.slice(i, i + PAGE_SIZE).map((p) => participantJson(p, 'rfc3339', 'omit'));
        for (const json of page) rawJsonBytes += Buffer.byteLength(json);
        const body =
          `{"call_type":${JSON.stringify(session.callType)},"call_id":${JSON.stringify(session.callId)},"call_session_id":${JSON.stringify(session.callSessionId)},` +
          `"duration":1,"total_participant_sessions":${size},"total_participant_duration":${duration},"participants_sessions":[${page.join(',')}]}`;
        const parsed = parseParticipantSessionsPage(parseStreamJson(body));
        const writeStarted = performance.now();
        await writePage(db.pool, lease, { callType: session.callType, callId: session.callId, entries: parsed.entries, resumeCursor: null });
        writeMs += performance.now() - writeStarted;
        await db.pool.query(WHOLE_RAW_SQL, [session.callSessionId, `[${page.join(',')}]`]);
        if (costPages.length < COST_PAGES) {
          // The rows as write-page.ts sends them (RFC 3339 timestamps only, so no integer to restore).
          const rows = parsed.entries.map((e) => ({
            user_session_id: e.userSessionId,
            user_id: e.userId,
            joined_at: e.joinedAtMicros,
            left_at: e.leftAtMicros,
            duration_in_seconds: e.durationInSeconds,
            publisher_type: e.publisherType,
            roles: e.roles,
            raw: e.raw,
          }));
          costPages.push({
            callSessionId: session.callSessionId,
            callType: session.callType,
            callId: session.callId,
            rowsJson: JSON.stringify(rows),
            leanRowsJson: JSON.stringify(rows.map((row, n) => ({ ...row, raw: leanRaw(parsed.entries[n]!) }))),
            rows: rows.length,
          });
        }
      }
      await db.pool.query(
        `update call_sessions set status = 'complete', archived_participant_sessions = $2, archived_at = now(), lease_owner = null, lease_expires_at = null
          where call_session_id = $1`,
        [session.callSessionId, size],
      );
      entries += size;
    }
    const loadSeconds = (performance.now() - started) / 1000;
    await db.pool.query('vacuum (analyze) participant_sessions, storage_whole_raw, call_sessions, webhook_events');

    // Rollups, when migration 0006 is there: brought up to date for every session, as the worker's sweep would.
    const rollupTables: string[] = [];
    for (const table of ROLLUP_TABLES) {
      const { rows } = await db.pool.query<{ present: boolean }>('select to_regclass($1) is not null as present', [table]);
      if (rows[0]!.present) rollupTables.push(table);
    }
    let rollupNote = rollupTables.length === 0 ? 'no rollup tables in this schema' : '';
    if (rollupTables.length > 0) {
      try {
        const ids = (await db.pool.query<{ id: string }>('select call_session_id as id from call_sessions order by 1')).rows.map((r) => r.id);
        const refreshStarted = performance.now();
        for (let i = 0; i < ids.length; i += 200) await db.pool.query('select attendance_rollup_refresh($1::text[])', [ids.slice(i, i + 200)]);
        rollupNote = `refreshed with attendance_rollup_refresh in ${fmt((performance.now() - refreshStarted) / 1000, 1)} s`;
        await db.pool.query(`vacuum (analyze) ${rollupTables.join(', ')}`);
      } catch (error) {
        rollupNote = `not refreshed (${(error as Error).message.split('\n')[0]}): sizes as the triggers left them`;
      }
    }

    const relations = async (table: string): Promise<{ heap: number; toast: number; indexes: Relation[]; total: number }> => {
      const { rows } = await db.pool.query<{ heap: string; toast: string; total: string }>(
        `select pg_relation_size(c.oid) as heap,
                coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) as toast,
                pg_total_relation_size(c.oid) as total
           from pg_class c where c.oid = $1::regclass`,
        [table],
      );
      const indexes = await db.pool.query<{ name: string; bytes: string }>(
        `select indexname as name, pg_relation_size(format('%I.%I', schemaname, indexname)::regclass) as bytes
           from pg_indexes where schemaname = current_schema() and tablename = $1 order by 1`,
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
    const whole = await relations('storage_whole_raw');
    const calls = await relations('call_sessions');
    const webhooks = await relations('webhook_events');
    const rollups = await Promise.all(rollupTables.map(async (table) => ({ table, ...(await relations(table)) })));
    const { rows: averages } = await db.pool.query<{
      row_bytes: string;
      raw_bytes: string;
      whole_row_bytes: string;
      whole_raw_bytes: string;
      held: string;
      mismatches: string;
    }>(
      `select (select avg(pg_column_size(p.*))::int from participant_sessions p) as row_bytes,
              (select avg(pg_column_size(p.raw))::int from participant_sessions p) as raw_bytes,
              (select avg(pg_column_size(w.*))::int from storage_whole_raw w) as whole_row_bytes,
              (select avg(pg_column_size(w.raw))::int from storage_whole_raw w) as whole_raw_bytes,
              (select count(*) from storage_whole_raw w join participant_sessions p using (call_session_id, user_session_id)) as held,
              (select count(*) from storage_whole_raw w join participant_sessions p using (call_session_id, user_session_id)
                where participant_session_entry(p)::text is distinct from w.raw::text) as mismatches`,
    );
    const sizesOf = averages[0]!;
    await db.pool.query('drop table storage_whole_raw');

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

    // Before any probe deletes rows: 100-row reads come from the largest sessions.
    const readSessions = (
      await db.pool.query<{ id: string }>(
        'select call_session_id as id from call_sessions where total_participant_sessions >= 100 order by total_participant_sessions desc, 1 limit 100',
      )
    ).rows.map((r) => r.id);
    const cost = await measureCost(db.pool, costPages, readSessions);
    const costRows = costPages.reduce((sum, page) => sum + page.rows, 0);

    const { rows: picks } = await db.pool.query<{ id: string; call_type: string; call_id: string; size: number; user_id: string; page: string; month: string }>(
      `select cs.call_session_id as id, cs.call_type, cs.call_id, cs.total_participant_sessions as size,
              (select user_id from participant_sessions where call_session_id = cs.call_session_id group by 1 order by count(*) desc, 1 limit 1) as user_id,
              (select jsonb_agg(e)::text from (select participant_session_entry(p) as e from participant_sessions p where call_session_id = cs.call_session_id limit ${PAGE_SIZE}) r) as page,
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
    const rollupBytes = rollups.reduce((sum, r) => sum + r.total, 0);
    const leanHeap = participants.heap + participants.toast;
    const wholeHeap = whole.heap + whole.toast;
    const withoutUnused = participants.total - unusedBytes;
    const table = [
      row('participant_sessions heap, `raw` lean (as the worker now writes it)', participants.heap, probesUsing('seq scan of participant_sessions').join('; ')),
      row('participant_sessions TOAST', participants.toast),
      row('before: the same rows with `raw` as Stream sent the entry, heap + TOAST (scratch table, same run)', wholeHeap),
      ...participants.indexes.map((index) => row(`index ${index.name}`, index.bytes, probesUsing(index.name).join('; ') || '**none**')),
      row('**participant_sessions, total**', participants.total),
      row(`call_sessions, total (${fmt(sizes.length)} sessions)`, calls.total),
      row(`webhook_events, total (${fmt(sizes.length * 2)} webhooks)`, webhooks.total),
      row('**all three tables**', everything),
      ...rollups.map((r) => row(`rollup table ${r.table}, total`, r.total)),
      ...(rollups.length === 0 ? [] : [row('**rollup tables, together**', rollupBytes)]),
      ...(dumpBytes === undefined ? [] : [row('pg_dump --format=custom (compressed)', dumpBytes)]),
    ];
    const gib = (bytes: number) => fmt((perEntry(bytes) * 1e6) / 1024 ** 3, 2);
    const otherIndexes = [...new Set([...usedBy.values()].flat())].filter(
      (name) => !name.startsWith('participant_sessions') && !name.includes('participant_sessions'),
    );
    const us = (value: number) => `${fmt(value, 1)} µs`;
    console.table(table);
    await appendResults({
      title: 'Storage per archived entry (bench/storage.ts)',
      command: `node bin/run-ts.js bench/storage.ts --entries ${target}`,
      machine: await describeMachine(db.pool),
      notes: [
        `${fmt(entries)} participant sessions in ${fmt(sizes.length)} call sessions of the demo's size mix (1 to 5,000 entries, ` +
          `mean ${fmt(entries / sizes.length)}), generated by the simulator (timestamps in RFC 3339 with 0 to 3 fraction digits, as it sends them by default) ` +
          `and written through the worker's own page write (parseParticipantSessionsPage, writePage: pages of 100, ${fmt((writeMs * 1000) / entries, 1)} µs an entry on this shared machine), ` +
          `loaded in ${fmt(loadSeconds, 1)} s with the "before" copy, then \`vacuum (analyze)\`; sizes from pg_relation_size / pg_total_relation_size, indexes from pg_indexes. ` +
          `An entry is ${fmt(rawJsonBytes / entries)} bytes of JSON as Stream sends it, ${sizesOf.whole_raw_bytes} bytes as jsonb; stored lean, raw is ${sizesOf.raw_bytes} bytes. ` +
          `A whole row averages ${sizesOf.row_bytes} bytes (${sizesOf.whole_row_bytes} with raw whole) before the 24-byte tuple header and line pointer.`,
        '',
        `"used by": each reader run alone on one connection after the sizes were taken, with the idx_scan / seq_scan deltas of ` +
          'pg_stat_user_indexes / pg_stat_user_tables read after a forced stats flush: the four documented views on one session or user, ' +
          `every cookbook query of docs/sql.md (its class, user and month replaced by this archive's: session ${pick.call_type}:${pick.call_id} of ` +
          `${fmt(pick.size)} entries, user ${pick.user_id}, ${pick.month.slice(0, 7)}), and the product's own ` +
          'archive-route, queue and lifecycle functions (findArchivedSession, readParticipantPage, summarizeParticipantSessions, countArchived, ' +
          'claimSessions, expireOverdueSessions, readQueueStats, recountArchived, forgetUser, pruneArchiveBatch, pruneInboxBatch); the page ' +
          "upsert is this bench's copy of the worker's statement. Indexes of call_sessions / webhook_events used: " +
          `${otherIndexes.join(', ') || 'none'}.`,
        '',
        `Rollup tables: ${rollupNote}.`,
      ],
      table: { header: ['relation', 'MiB', 'bytes per entry', 'MiB per million entries', 'used by'], rows: table },
      verdicts: [
        `participant_sessions grows ${gib(participants.total)} GiB per million entries with its indexes; ` +
          `${gib(everything)} GiB with the call_sessions and webhook_events rows that come with them at this session mix` +
          (rollups.length === 0 ? '' : `; the rollup tables add ${gib(rollupBytes)} GiB (${fmt(perEntry(rollupBytes), 1)} B an entry)`),
        ...(dumpBytes === undefined ? [] : [`a compressed custom-format dump takes ${gib(dumpBytes)} GiB per million entries`]),
        `**lean raw (issue 19, item 1):** heap + TOAST ${fmt(perEntry(wholeHeap), 1)} B an entry with raw whole → ${fmt(perEntry(leanHeap), 1)} B lean ` +
          `(${ratio(leanHeap, wholeHeap)}, same rows, same run); raw as jsonb ${sizesOf.whole_raw_bytes} → ${sizesOf.raw_bytes} bytes. ` +
          `participant_session_entry(p) differs from the entry as sent in ${fmt(Number(sizesOf.mismatches))} of ${fmt(Number(sizesOf.held))} rows (must be 0 of ${fmt(entries)})`,
        `its cost, medians of 3 alternated rounds on scratch tables without indexes (${fmt(costRows)} rows in ${fmt(costPages.length)} pages; 2 cores shared with other work, so ` +
          `the absolute figures are loose, the ratios less so): the worker's insert ${us(cost.writeWhole)} an entry storing raw whole, ${us(cost.writeLean)} storing the lean form it makes ` +
          `(${ratio(cost.writeLean, cost.writeWhole)}), ${us(cost.writeLeanInSql)} making it in the statement (${ratio(cost.writeLeanInSql, cost.writeWhole)}); reading 100-row pages, ${us(cost.readRaw)} an entry for raw, ${us(cost.readEntry)} for participant_session_entry(p) ` +
          `(${ratio(cost.readEntry, cost.readRaw)})`,
        `indexes no reader used: ${unused.map((index) => `${index.name} (${fmt(perEntry(index.bytes), 1)} B/entry)`).join(', ') || 'none'}, ${fmt(perEntry(unusedBytes), 1)} B/entry together`,
        `participant_sessions per entry: ${fmt(perEntry(participants.total), 1)} B (${fmt(perEntry(withoutUnused), 1)} B without the unused indexes; ` +
          `target ≤ 500: ${perEntry(participants.total) <= 500 ? 'met' : 'MISSED'}); the call_sessions / webhook_events rows add ${fmt(perEntry(calls.total + webhooks.total), 1)} B at this session mix; ` +
          `the primary key alone (two text ids) is ${fmt(perEntry(participants.indexes.find((i) => i.name === 'participant_sessions_pkey')?.bytes ?? 0), 1)} B`,
      ],
    });
  },
  { prefix: 'attendance_bench_storage', deadlineMs: DEADLINE_MS },
);
