/**
 * Pruning the webhook inbox: how long a million expired events take to go, and what that does to
 * intake's inserts meanwhile.
 *
 *   node bin/run-ts.js bench/prune.ts [--rows 1000000] [--batch 1000] [--pause 20] [--forget] [--record]
 *   node bin/run-ts.js bench/prune.ts --archive-sessions 50000 [--batch 1000] [--pause 20] [--record]
 *
 * Creates its own database on the server of DATABASE_URL (default: the local Postgres), migrates
 * it, and fills webhook_events with `--rows` events received 31–60 days ago (payloads of ~1 KiB,
 * the size of a Stream call.session_participant_joined body) plus 10,000 recent ones, with
 * generate_series. Then, with a loop of single-row inserts into webhook_events running all the
 * while (one connection, one insert every 5 ms: what intake does per webhook, without the session
 * upsert), it measures the inserts' latency for 10 s without pruning (the baseline), then for as
 * long as runPrune (lifecycle/prune.ts, WEBHOOK_EVENTS_RETENTION_DAYS=30) takes. `--record`
 * appends the figures to bench/RESULTS.md. `--forget` first times `attendance forget` (dry run, then
 * real) for a user named in one event, i.e. the whole-inbox scan erasure needs, and prints it.
 * `--archive-sessions N` measures archive retention instead: N call sessions of 10 entries each,
 * one ending every 30 minutes back from now, pruned with ARCHIVE_RETENTION_DAYS=365 (the older
 * two thirds at N = 50,000), with the same insert loop beside it.
 * The database is dropped afterwards.
 */
import pg from 'pg';
import { createDatabase } from '../src/db/client.ts';
import { forgetUser } from '../src/lifecycle/forget.ts';
import { runPrune } from '../src/lifecycle/prune.ts';
import { appendResults, describeMachine, fmt, ratio, withBenchDatabase } from './lib/bench-env.ts';
import { MINUTE_MS } from '../src/time.ts';

const BASELINE_MS = 10_000;
const INSERT_EVERY_MS = 5;

interface Args {
  rows: number;
  batch: number;
  pause: number;
  record: boolean;
  forget: boolean;
  archiveSessions: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { rows: 1_000_000, batch: 1_000, pause: 20, record: false, forget: false, archiveSessions: 0 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--record' || flag === '--forget') {
      args[flag === '--record' ? 'record' : 'forget'] = true;
      continue;
    }
    const value = Number(argv[++i]);
    if (flag === '--rows' && Number.isInteger(value) && value >= 1_000) args.rows = value;
    else if (flag === '--batch' && Number.isInteger(value) && value >= 1) args.batch = value;
    else if (flag === '--pause' && Number.isInteger(value) && value >= 0) args.pause = value;
    else if (flag === '--archive-sessions' && Number.isInteger(value) && value >= 1_000) args.archiveSessions = value;
    else throw new Error(`usage: prune.ts [--rows N>=1000] [--batch N] [--pause MS] [--forget] [--archive-sessions N>=1000] [--record] (bad ${flag})`);
  }
  return args;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

interface Latencies {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

function summarise(samples: number[]): Latencies {
  const sorted = [...samples].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

/** Single-row inserts on their own connection every INSERT_EVERY_MS until `stop` says so; their latencies in ms. */
async function insertLoop(url: string, prefix: string, stop: () => boolean): Promise<number[]> {
  const client = new pg.Client(url);
  await client.connect();
  const payload = JSON.stringify({ type: 'call.session_participant_joined', call_cid: 'default:bench', pad: 'x'.repeat(900) });
  const samples: number[] = [];
  try {
    for (let n = 0; !stop(); n++) {
      const started = performance.now();
      await client.query(
        `insert into webhook_events (webhook_id, type, call_cid, session_id, attempt, payload)
         values ($1, 'call.session_participant_joined', 'default:bench', 'bench-session', 1, $2::jsonb) on conflict (webhook_id) do nothing`,
        [`${prefix}-${n}`, payload],
      );
      const ms = performance.now() - started;
      samples.push(ms);
      if (ms < INSERT_EVERY_MS) await new Promise((r) => setTimeout(r, INSERT_EVERY_MS - ms));
    }
  } finally {
    await client.end();
  }
  return samples;
}

const args = parseArgs(process.argv.slice(2));

/** Runs `prune` while the insert loop runs; the loop's latencies without and with pruning. */
async function measure(url: string, prune: () => Promise<unknown>): Promise<{ baseline: Latencies; loaded: Latencies; pruneMs: number }> {
  const baselineEnd = performance.now() + BASELINE_MS;
  const baseline = summarise(await insertLoop(url, 'baseline', () => performance.now() > baselineEnd));
  let done = false;
  const during = insertLoop(url, 'during', () => done);
  const started = performance.now();
  try {
    await prune();
  } finally {
    done = true;
  }
  const pruneMs = performance.now() - started;
  return { baseline, loaded: summarise(await during), pruneMs };
}

async function archivePart(bench: { url: string; pool: pg.Pool }): Promise<void> {
  const machine = await describeMachine(bench.pool);
  const n = args.archiveSessions;
  const fillStarted = performance.now();
  await bench.pool.query(
    `insert into call_sessions (call_session_id, call_type, call_id, call_cid, status, session_ended_at, total_participant_sessions, archived_participant_sessions)
     select 's' || s, 'default', 'c' || s, 'default:c' || s, 'complete', now() - s * interval '30 minutes', 10, 10 from generate_series(1, $1::int) s`,
    [n],
  );
  await bench.pool.query(
    `insert into participant_sessions (call_session_id, user_session_id, call_type, call_id, user_id, joined_at, left_at, duration_in_seconds, publisher_type, roles, raw)
     select 's' || s, md5(s || '-' || u), 'default', 'c' || s, 'user-' || (s * 7 + u) % 20000,
            now() - s * interval '30 minutes' - interval '1 hour', now() - s * interval '30 minutes', 3600, 'webrtc', '{user}',
            jsonb_build_object('user_id', 'user-' || (s * 7 + u) % 20000, 'user_session_id', md5(s || '-' || u), 'pad', repeat('x', 200))
       from generate_series(1, $1::int) s, generate_series(1, 10) u`,
    [n],
  );
  await bench.pool.query(
    `insert into stream_responses (call_session_id, response) select 's' || s, '{"session":{}}'::jsonb from generate_series(1, $1::int) s`,
    [n],
  );
  await bench.pool.query('vacuum analyze');
  const fillMs = performance.now() - fillStarted;
  const expected =
    (
      await bench.pool.query<{ n: number }>(
        `select count(*)::int as n from participant_sessions p join call_sessions cs using (call_session_id) where cs.session_ended_at < now() - interval '365 days'`,
      )
    ).rows[0]?.n ?? 0;
  console.log(`filled ${fmt(n)} sessions, ${fmt(n * 10)} entries (${fmt(expected)} past 365 days) in ${fmt(fillMs / 1000, 1)} s`);
  const database = createDatabase(bench.url, { max: 2 });
  let result: Awaited<ReturnType<typeof runPrune>> | undefined;
  let caughtUpMs = 0;
  let figures;
  try {
    figures = await measure(bench.url, async () => {
      result = await runPrune(database, { retention: { webhookEventsDays: 0, archiveDays: 365 }, batchRows: args.batch, pauseMs: args.pause });
    });
    const started = performance.now();
    await runPrune(database, { retention: { webhookEventsDays: 0, archiveDays: 365 } });
    caughtUpMs = performance.now() - started;
  } finally {
    await database.close();
  }
  const { baseline, loaded, pruneMs } = figures;
  const deleted = result?.participantSessions ?? 0;
  console.log(
    `pruned ${fmt(deleted)} entries of ${fmt(result?.callSessions ?? 0)} sessions in ${fmt(pruneMs / 1000, 1)} s; the next run, caught up: ${fmt(caughtUpMs)} ms`,
  );
  console.log(
    `baseline inserts: p50 ${baseline.p50.toFixed(2)} ms, p99 ${baseline.p99.toFixed(2)} ms; while pruning: p50 ${loaded.p50.toFixed(2)} ms, p99 ${loaded.p99.toFixed(2)} ms, max ${loaded.max.toFixed(2)} ms`,
  );
  if (deleted !== expected) throw new Error(`expected ${expected} entries pruned, got ${deleted}`);
  if (!args.record) return;
  await appendResults({
    title: `Archive retention (issue 18): ${fmt(deleted)} expired participant_sessions`,
    command: `node bin/run-ts.js bench/prune.ts --archive-sessions ${n} --batch ${args.batch} --pause ${args.pause} --record`,
    machine,
    notes: [
      `${fmt(n)} complete call sessions of 10 entries (~300-byte raw), one ending every 30 minutes back from now, each with a stream_responses row; ` +
        `runPrune with ARCHIVE_RETENTION_DAYS=365 (WEBHOOK_EVENTS_RETENTION_DAYS=0): batches of ${fmt(args.batch)} entries by participant_sessions.joined_at (its index), ` +
        `each with its sessions' recount in one transaction, ${args.pause} ms pause between. Intake stand-in and baseline as in the inbox run.`,
    ],
    table: {
      header: ['run', 'entries pruned', 'sessions recounted', 'seconds', 'insert p50 ms', 'insert p99 ms', 'insert max ms'],
      rows: [
        ['baseline: inserts only', '0', '0', '—', baseline.p50.toFixed(2), baseline.p99.toFixed(2), baseline.max.toFixed(2)],
        ['pruning', fmt(deleted), fmt(result?.callSessions ?? 0), fmt(pruneMs / 1000, 1), loaded.p50.toFixed(2), loaded.p99.toFixed(2), loaded.max.toFixed(2)],
        ['next run, caught up', '0', '0', fmt(caughtUpMs / 1000, 3), '—', '—', '—'],
      ],
    },
    verdicts: [
      `insert p99 while pruning ${loaded.p99.toFixed(2)} ms vs ${baseline.p99.toFixed(2)} ms without (${ratio(loaded.p99, baseline.p99)})`,
      `${fmt(deleted / (pruneMs / 1000))} entries/s; a caught-up hourly run costs ${fmt(caughtUpMs)} ms`,
    ],
  });
}

await withBenchDatabase(
  async (bench) => {
    if (args.archiveSessions > 0) return archivePart(bench);
    const machine = await describeMachine(bench.pool);
    const fillStarted = performance.now();
    await bench.pool.query(
      `insert into webhook_events (webhook_id, type, call_cid, session_id, attempt, received_at, payload)
       select 'old-' || n, 'call.session_participant_joined', 'default:call-' || (n % 5000), 'session-' || (n % 5000), 1,
              now() - interval '31 days' - (n % 2592000) * interval '1 second',
              jsonb_build_object('type', 'call.session_participant_joined', 'call_cid', 'default:call-' || (n % 5000),
                                 'participant', jsonb_build_object('user', jsonb_build_object('id', 'user-' || n, 'name', repeat('n', 40)),
                                                                   'user_session_id', md5(n::text), 'role', 'user'),
                                 'pad', repeat('x', 800), 'created_at', 1775658215879421674)
         from generate_series(1, $1::int) n`,
      [args.rows],
    );
    await bench.pool.query(
      `insert into webhook_events (webhook_id, type, received_at, payload)
       select 'recent-' || n, 'call.session_ended', now() - interval '1 day', '{}'::jsonb from generate_series(1, 10000) n`,
    );
    await bench.pool.query('vacuum analyze webhook_events');
    const fillMs = performance.now() - fillStarted;
    const size = (await bench.pool.query<{ size: string }>("select pg_size_pretty(pg_total_relation_size('webhook_events')) as size")).rows[0]?.size;
    console.log(`filled ${fmt(args.rows)} expired + 10,000 recent events in ${fmt(fillMs / 1000, 1)} s (${size})`);

    if (args.forget) {
      const client = await bench.pool.connect();
      try {
        for (const dryRun of [true, false]) {
          const started = performance.now();
          const erased = await forgetUser(client, 'user-777', { dryRun });
          console.log(
            `forget${dryRun ? ' --dry-run' : ''}: ${erased.webhookEvents} event(s) in ${fmt(performance.now() - started)} ms over ${fmt(args.rows + 10_000)} events`,
          );
        }
      } finally {
        client.release();
      }
    }

    const baselineEnd = performance.now() + BASELINE_MS;
    const baseline = summarise(await insertLoop(bench.url, 'baseline', () => performance.now() > baselineEnd));
    console.log(`baseline inserts: p50 ${baseline.p50.toFixed(2)} ms, p99 ${baseline.p99.toFixed(2)} ms, max ${baseline.max.toFixed(2)} ms (${baseline.n})`);

    const database = createDatabase(bench.url, { max: 2 });
    let done = false;
    const during = insertLoop(bench.url, 'during', () => done);
    const pruneStarted = performance.now();
    let result;
    try {
      result = await runPrune(database, { retention: { webhookEventsDays: 30, archiveDays: undefined }, batchRows: args.batch, pauseMs: args.pause });
    } finally {
      done = true;
      await database.close();
    }
    const pruneMs = performance.now() - pruneStarted;
    const loaded = summarise(await during);
    const left = (await bench.pool.query<{ n: number }>('select count(*)::int as n from webhook_events')).rows[0]?.n ?? 0;
    const batches = Math.ceil(result.webhookEvents / args.batch);
    const workMs = pruneMs - batches * args.pause;
    console.log(
      `pruned ${fmt(result.webhookEvents)} rows in ${fmt(pruneMs / 1000, 1)} s (${fmt(result.webhookEvents / (pruneMs / 1000))} rows/s, ` +
        `${batches} batches, ~${(workMs / batches).toFixed(1)} ms each); ${fmt(left)} rows left`,
    );
    console.log(`inserts while pruning: p50 ${loaded.p50.toFixed(2)} ms, p99 ${loaded.p99.toFixed(2)} ms, max ${loaded.max.toFixed(2)} ms (${loaded.n})`);
    if (result.webhookEvents !== args.rows) throw new Error(`expected ${args.rows} rows pruned, got ${result.webhookEvents}`);

    if (args.record) {
      await appendResults({
        title: `Inbox pruning (issue 18): ${fmt(args.rows)} expired webhook_events`,
        command: `node bin/run-ts.js bench/prune.ts --rows ${args.rows} --batch ${args.batch} --pause ${args.pause} --record`,
        machine,
        notes: [
          `webhook_events filled with generate_series: ${fmt(args.rows)} events received 31–60 days ago (~1 KiB payloads) + 10,000 recent, ${size} with indexes, in ${fmt(fillMs / 1000, 1)} s. ` +
            `runPrune with WEBHOOK_EVENTS_RETENTION_DAYS=30: batches of ${fmt(args.batch)} rows by received_at (its index), each its own transaction, ${args.pause} ms pause between. ` +
            `Intake stand-in: one connection inserting one ~1 KiB event every ${INSERT_EVERY_MS} ms; baseline = the same loop for ${BASELINE_MS / 1000} s just before, without pruning.`,
        ],
        table: {
          header: ['run', 'rows pruned', 'seconds', 'rows/s', 'inserts', 'insert p50 ms', 'insert p99 ms', 'insert max ms'],
          rows: [
            ['baseline: inserts only', '0', '—', '—', fmt(baseline.n), baseline.p50.toFixed(2), baseline.p99.toFixed(2), baseline.max.toFixed(2)],
            [
              `pruning (${batches} batches, ~${(workMs / batches).toFixed(1)} ms each)`,
              fmt(result.webhookEvents),
              fmt(pruneMs / 1000, 1),
              fmt(result.webhookEvents / (pruneMs / 1000)),
              fmt(loaded.n),
              loaded.p50.toFixed(2),
              loaded.p99.toFixed(2),
              loaded.max.toFixed(2),
            ],
          ],
        },
        verdicts: [
          `insert p99 while pruning ${loaded.p99.toFixed(2)} ms vs ${baseline.p99.toFixed(2)} ms without (${ratio(loaded.p99, baseline.p99)}); p50 ${ratio(loaded.p50, baseline.p50)}`,
          `${fmt(result.webhookEvents)} rows in ${fmt(pruneMs / 1000, 1)} s; the 10,000 recent rows and every insert made meanwhile kept (${fmt(left)} left = 10,000 + ${fmt(baseline.n + loaded.n)} inserted)`,
        ],
      });
    }
  },
  { prefix: 'attendance_bench_prune', deadlineMs: 15 * MINUTE_MS },
);
