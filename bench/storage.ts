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
 * Appends the figures to bench/RESULTS.md and drops the database.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { generateSession, pickSessionSizes } from '../tools/simulator/generate.ts';
import { buildSessionEndedEvent, buildStatsReportReadyEvent } from '../tools/simulator/webhooks.ts';
import { DAY_MS, MINUTE_MS } from '../src/time.ts';
import { participantJson } from '../tools/simulator/wire.ts';
import { appendResults, describeMachine, fmt, withBenchDatabase } from './lib/bench-env.ts';

const PAGE_SIZE = 100;
const DEADLINE_MS = 10 * MINUTE_MS;
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

    const perEntry = (bytes: number) => bytes / entries;
    const row = (what: string, bytes: number): string[] => [what, fmt(bytes / MIB, 2), fmt(perEntry(bytes), 1), fmt((perEntry(bytes) * 1e6) / MIB, 0)];
    const everything = participants.total + calls.total + webhooks.total;
    const table = [
      row('participant_sessions heap', participants.heap),
      row('participant_sessions TOAST', participants.toast),
      ...participants.indexes.map((index) => row(`index ${index.name}`, index.bytes)),
      row('**participant_sessions, total**', participants.total),
      row(`call_sessions, total (${fmt(sizes.length)} sessions)`, calls.total),
      row(`webhook_events, total (${fmt(sizes.length * 2)} webhooks)`, webhooks.total),
      row('**all three tables**', everything),
      ...(dumpBytes === undefined ? [] : [row('pg_dump --format=custom (compressed)', dumpBytes)]),
    ];
    const gib = (bytes: number) => fmt((perEntry(bytes) * 1e6) / 1024 ** 3, 2);
    console.table(table);
    await appendResults({
      title: 'Storage per archived entry (bench/storage.ts)',
      command: `node bin/run-ts.js bench/storage.ts --entries ${target}`,
      machine: await describeMachine(db.pool),
      notes: [
        `${fmt(entries)} participant sessions in ${fmt(sizes.length)} call sessions of the demo's size mix (1 to 5,000 entries, ` +
          `mean ${fmt(entries / sizes.length)}), written as the worker writes them (pages of 100), loaded in ${fmt(loadSeconds, 1)} s, then ` +
          '`vacuum (analyze)`; sizes from pg_relation_size / pg_total_relation_size. ' +
          `An entry's \`raw\` is ${fmt(rawJsonBytes / entries)} bytes of JSON as Stream sends it, ${averages[0]!.raw_bytes} bytes as jsonb; ` +
          `a whole row averages ${averages[0]!.row_bytes} bytes before the 24-byte tuple header and line pointer.`,
      ],
      table: { header: ['relation', 'MiB', 'bytes per entry', 'MiB per million entries'], rows: table },
      verdicts: [
        `participant_sessions grows ${gib(participants.total)} GiB per million entries with its indexes; ` +
          `${gib(everything)} GiB with the call_sessions and webhook_events rows that come with them at this session mix`,
        ...(dumpBytes === undefined ? [] : [`a compressed custom-format dump takes ${gib(dumpBytes)} GiB per million entries`]),
        'No target: these figures size disks and backups (docs/operations.md).',
      ],
    });
  },
  { prefix: 'attendance_bench_storage', deadlineMs: DEADLINE_MS },
);
