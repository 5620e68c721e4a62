/*
 * npm run chaos [-- --only replays,starvation] [-- --skip-faults] [-- --sessions 200 --max-size 20000
 *               --delivery-seconds 120 --slow-ms 11000 --settle-minutes 20 --seed chaos --logs <file>]
 *
 * Issue 15's hostile cases at the red team's full size, then the full-size fault run; each case
 * prints one line with its figure and its verdict, and the run exits 1 if any failed. Each case has
 * a database of its own and `attendance serve` as a child process against the simulator, on
 * loopback only. The scenarios are the CI-size tests' own (test/reliability/*-run.ts), at other sizes:
 *
 *   nesting     a signed event nested 100,000 deep among 60 concurrent webhooks: 60 × 200, 1 × 400
 *   replays     173 replays of one signed report in 10 s for a 3,000-entry session being archived,
 *               49 for a complete one: at most one extra archive run (red team: 2,632 and 1,490 calls)
 *   outage      ~9,000 webhooks refused while the database is cut: a handful of summary lines
 *               (red team: 8,732 lines, 5.4 MB)
 *   starvation  5 waves of 100 authenticated /summary on a 20,000-row session + 600 /metrics while
 *               signed webhooks flow: every webhook 200, p99 < 1 s, nothing 500
 *   memory      800 concurrent unsigned uploads of 1 MiB − 1 B: VmHWM < 300 MiB, /healthz 200
 *               throughout, RSS back near idle
 *   faults      the fault run (test/reliability/fault-run.ts, about 16 min): the archive equals the
 *               simulator's sessions exactly under API faults, SIGKILLs and a cut connection
 *
 * --only takes a comma-separated list of these names; --skip-faults leaves out the fault run. A
 * failed fault run keeps its database for inspection and prints its name. DATABASE_URL names the
 * server (any database on it; default postgres://postgres@127.0.0.1:5432/postgres).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startSimulator, type Simulator, type SimulatorOptions } from '../tools/simulator/server.ts';
import { startTcpProxy, type TcpProxy } from '../test/helpers/tcp-proxy.ts';
import { formatBodyMemory, runBodyMemoryScenario } from '../test/reliability/body-memory-run.ts';
import { runFaultScenario } from '../test/reliability/fault-run.ts';
import { runNestingScenario } from '../test/reliability/nesting-run.ts';
import { outageLineBudget, runOutageScenario } from '../test/reliability/outage-run.ts';
import { runReplayScenario } from '../test/reliability/replay-run.ts';
import { formatFaultReport } from '../test/reliability/report.ts';
import { createServeSupervisor, findSecretLeaks, type ServeSupervisor } from '../test/reliability/serve-process.ts';
import { formatStarvation, runStarvationFlood, seedStarvationData } from '../test/reliability/starvation-run.ts';
import { fmt, withBenchDatabase, withTimeout, type BenchDatabase } from './lib/bench-env.ts';
import { MINUTE_MS } from '../src/time.ts';

const CASES = ['nesting', 'replays', 'outage', 'starvation', 'memory', 'faults'] as const;
type CaseName = (typeof CASES)[number];

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    'skip-faults': { type: 'boolean', default: false },
    sessions: { type: 'string', default: '200' },
    'max-size': { type: 'string', default: '20000' },
    'delivery-seconds': { type: 'string', default: '120' },
    'slow-ms': { type: 'string', default: '11000' },
    'settle-minutes': { type: 'string', default: '20' },
    seed: { type: 'string', default: 'chaos' },
    /** Write every serve process's log lines of the fault run here. */
    logs: { type: 'string' },
  },
});
const number = (name: 'sessions' | 'max-size' | 'delivery-seconds' | 'slow-ms' | 'settle-minutes'): number => {
  const value = Number(values[name]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
};

const KEYS = { apiKey: 'chaos-key', apiSecret: 'chaos-secret-that-must-never-be-logged-5b2e' };
const HOSTILE_CASE_TIMEOUT_MS = 5 * MINUTE_MS;

interface CaseResult {
  readonly passed: boolean;
  /** The one-line figure. */
  readonly figure: string;
  /** What passing means, printed with the verdict. */
  readonly criterion: string;
  /** More lines after the verdict, if any. */
  readonly details?: string;
}

interface Service {
  readonly db: BenchDatabase;
  readonly sim: Simulator;
  readonly serve: ServeSupervisor;
  /** Present when the service reaches its database through a proxy that can be cut. */
  readonly proxy: TcpProxy | undefined;
}

interface ServiceOptions {
  readonly simulator?: Partial<SimulatorOptions>;
  readonly viaProxy?: boolean;
  /** Runs on the fresh database before serve starts. */
  readonly prepare?: (db: BenchDatabase) => Promise<void>;
}

// Serve processes still running: a case cut short by its timeout leaves its own behind.
const liveServes = new Set<ServeSupervisor>();

/** A database of its own, the simulator and `attendance serve` for the length of `fn`; the secret must not reach serve's output. */
async function withService<T>(options: ServiceOptions, fn: (service: Service) => Promise<T>): Promise<T> {
  return withBenchDatabase(
    async (db) => {
      await options.prepare?.(db);
      const sim = await startSimulator({ ...KEYS, ...options.simulator });
      let proxy: TcpProxy | undefined;
      let databaseUrl = db.url;
      if (options.viaProxy) {
        const target = new URL(db.url);
        proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
        const viaProxy = new URL(db.url);
        viaProxy.hostname = '127.0.0.1';
        viaProxy.port = String(proxy.port);
        databaseUrl = viaProxy.toString();
      }
      const serve = await createServeSupervisor({
        DATABASE_URL: databaseUrl,
        STREAM_API_KEY: KEYS.apiKey,
        STREAM_API_SECRET: KEYS.apiSecret,
        STREAM_BASE_URL: sim.url,
        LOG_LEVEL: 'info',
        RECONCILE_INTERVAL_MINUTES: '0',
      });
      liveServes.add(serve);
      try {
        await serve.start();
        const result = await fn({ db, sim, serve, proxy });
        const leaks = findSecretLeaks(serve.output(), KEYS.apiSecret);
        if (leaks.length > 0) throw new Error(`serve's output: ${leaks.join('; ')}`);
        return result;
      } finally {
        await serve.kill();
        liveServes.delete(serve);
        await sim.close();
        await proxy?.close();
      }
    },
    { prefix: 'attendance_chaos' },
  );
}

const NESTED_AMONG = 60;
const NESTING_DEPTH = 100_000;

async function nestingCase(): Promise<CaseResult> {
  return withService({}, async ({ db, serve }) => {
    const r = await runNestingScenario({ serveUrl: serve.url, keys: KEYS, pool: db.pool, legitimate: NESTED_AMONG, depth: NESTING_DEPTH });
    return {
      passed:
        r.legitimateStatuses['200'] === NESTED_AMONG &&
        Object.keys(r.legitimateStatuses).length === 1 &&
        r.deepStatus === 400 &&
        r.legitimateStored === NESTED_AMONG &&
        !r.deepStored,
      figure:
        `1 signed event nested ${fmt(NESTING_DEPTH)} deep among ${NESTED_AMONG} concurrent webhooks → legitimate ${JSON.stringify(r.legitimateStatuses)}, ` +
        `deep ${r.deepStatus}; stored ${r.legitimateStored} of ${NESTED_AMONG}, deep stored ${r.deepStored}; ${r.seconds.toFixed(2)} s (red team: 60 of 61 answered 503)`,
      criterion: `${NESTED_AMONG} × 200 and stored, 1 × 400 and not stored`,
    };
  });
}

// The red team's figures: 173 replays in 10 s cost 2,632 Stream calls and fenced out 172 runs; 49, 1,490 calls.
const REPLAY_SESSION_SIZE = 3_000;
const RUNNING_REPLAYS = 173;
const COMPLETE_REPLAYS = 49;
const REPLAY_SPAN_MS = 10_000;

async function replaysCase(): Promise<CaseResult> {
  return withService({ simulator: { pageLatencyMs: 100 } }, async ({ db, sim, serve }) => {
    const r = await runReplayScenario({
      serve,
      sim,
      pool: db.pool,
      keys: KEYS,
      sessionSize: REPLAY_SESSION_SIZE,
      completeReplays: COMPLETE_REPLAYS,
      runningReplays: RUNNING_REPLAYS,
      spacingMs: REPLAY_SPAN_MS / RUNNING_REPLAYS,
    });
    const allAcked = r.running.statuses['200'] === RUNNING_REPLAYS && r.complete.statuses['200'] === COMPLETE_REPLAYS;
    return {
      passed: allAcked && r.running.streamCalls <= 2 * r.pages && r.complete.streamCalls <= r.pages,
      figure:
        `${RUNNING_REPLAYS} replays in ${r.running.replaySeconds.toFixed(1)} s of the report of a ${fmt(REPLAY_SESSION_SIZE)}-entry session being archived (status ${r.running.statusBefore}) → ` +
        `${r.running.streamCalls} Stream calls (one run is ${r.pages}); ${COMPLETE_REPLAYS} of a complete one's → ${r.complete.streamCalls}; lease lost ${r.leaseLost}; ` +
        `answers ${JSON.stringify(r.running.statuses)} / ${JSON.stringify(r.complete.statuses)} (red team: 2,632 and 1,490 calls, 172 runs fenced out)`,
      criterion: `every replay 200; at most one extra run: ≤ ${2 * r.pages} calls being archived, ≤ ${r.pages} complete`,
    };
  });
}

const OUTAGE_WEBHOOKS = 9_000;

async function outageCase(): Promise<CaseResult> {
  return withService({ viaProxy: true }, async ({ serve, proxy }) => {
    const r = await runOutageScenario({ serve, proxy: proxy!, keys: KEYS, webhooks: OUTAGE_WEBHOOKS, concurrency: 8 });
    const budget = outageLineBudget(r.outageSeconds);
    const last = r.webhookLines.at(-1);
    const recovered = last?.msg === 'webhooks not stored: database unavailable (recovered)' && Number(last.total) >= OUTAGE_WEBHOOKS;
    return {
      passed: r.statuses['503'] === OUTAGE_WEBHOOKS && r.webhookLines.length <= budget && r.perWebhookLines === 0 && recovered,
      figure:
        `${fmt(OUTAGE_WEBHOOKS)} webhooks refused in ${r.outageSeconds.toFixed(1)} s (${JSON.stringify(r.statuses)}) → ${r.webhookLines.length} log lines about them, ` +
        `${fmt(r.webhookBytes)} bytes; every line meanwhile: ${r.lines}, ${fmt(r.bytes)} bytes (red team: 8,732 lines, 5.4 MB)`,
      details: `other lines meanwhile: ${JSON.stringify(r.otherLines)}`,
      criterion: `all 503; at most ${budget} lines (first, one per 10 s, recovered), none per webhook; the recovered line counts them all`,
    };
  });
}

const SUMMARY_ROWS = 20_000;
const QUEUE_ROWS = 200_000;
const FLOOD_WAVES = 5;
const PARALLEL_SUMMARIES = 100;
const PARALLEL_SCRAPES = 600;

async function starvationCase(): Promise<CaseResult> {
  let session: Awaited<ReturnType<typeof seedStarvationData>> | undefined;
  const prepare = async (db: BenchDatabase) => {
    session = await seedStarvationData(db.pool, { summaryRows: SUMMARY_ROWS, queueRows: QUEUE_ROWS });
  };
  return withService({ prepare }, async ({ serve }) => {
    const r = await runStarvationFlood({
      serveUrl: serve.url,
      keys: KEYS,
      session: session!,
      waves: FLOOD_WAVES,
      parallelSummaries: PARALLEL_SUMMARIES,
      parallelScrapes: PARALLEL_SCRAPES,
      webhookConcurrency: 5,
      minWebhooks: 150,
    });
    const notOk = r.webhookStatuses.filter((s) => s !== 200).length;
    const answered500 = (r.summaries.statuses['500'] ?? 0) + (r.scrapes.statuses['500'] ?? 0) + r.webhookStatuses.filter((s) => s === 500).length;
    return {
      passed: notOk === 0 && r.p99Ms < 1_000 && answered500 === 0 && r.summaries.failed === 0 && r.scrapes.failed === 0,
      figure: `${FLOOD_WAVES} × (${PARALLEL_SUMMARIES} /summary on ${fmt(SUMMARY_ROWS)} rows + ${PARALLEL_SCRAPES} /metrics), ${fmt(QUEUE_ROWS)} call_sessions: ${formatStarvation(r)}; webhooks not 200: ${notOk}`,
      criterion: 'every webhook 200, p99 < 1 s, nothing 500, no request failed',
    };
  });
}

const UPLOADS = 800;
const UPLOAD_BYTES = 1024 * 1024 - 1;
const PEAK_LIMIT_MIB = 300;
const NEAR_IDLE_MIB = 128;

async function memoryCase(): Promise<CaseResult> {
  return withService({}, async ({ serve }) => {
    const plan = { serve, apiKey: KEYS.apiKey, uploads: UPLOADS, bytes: UPLOAD_BYTES, holdLastByteMs: 2_000, settleMs: 2_000 };
    const r = await runBodyMemoryScenario(plan);
    const healthy = r.health.length > 0 && r.health.every((h) => h.status === 200);
    return {
      passed: r.peak.peakMiB < PEAK_LIMIT_MIB && healthy && r.after.rssMiB < r.idle.rssMiB + NEAR_IDLE_MIB,
      figure: `${formatBodyMemory(plan, r)} (red team: RSS 416 → 923 MiB, 945 MiB after)`,
      criterion: `VmHWM < ${PEAK_LIMIT_MIB} MiB, /healthz 200 throughout, RSS after < idle + ${NEAR_IDLE_MIB} MiB`,
    };
  });
}

async function faultsCase(log: (message: string) => void): Promise<CaseResult> {
  let details = '';
  const passed = await withBenchDatabase(
    async ({ url }) => {
      const report = await runFaultScenario({
        databaseUrl: url,
        seed: String(values.seed),
        sessions: number('sessions'),
        maxSize: number('max-size'),
        deliveryPhaseMs: number('delivery-seconds') * 1000,
        slowMs: number('slow-ms'),
        settleTimeoutMs: number('settle-minutes') * MINUTE_MS,
        progress: log,
      });
      details = `seed ${String(values.seed)}, slow answers ${number('slow-ms')} ms\n${formatFaultReport(report)}`;
      if (values.logs !== undefined) writeFileSync(values.logs, report.output);
      const ok =
        report.settled &&
        report.check.problems.length === 0 &&
        report.ackedNotStored === 0 &&
        report.secretLeaks.length === 0 &&
        report.finalExit === 0 &&
        report.restarts === 3;
      // A failed run keeps its database: withBenchDatabase keeps it when this throws.
      if (!ok) throw new Error('the archive differs from Stream');
      return true;
    },
    { prefix: 'attendance_chaos', keepOnFailure: true },
  ).catch((error: unknown) => {
    if (details === '') throw error;
    return false;
  });
  return {
    passed,
    figure: details.split('\n')[1] ?? '',
    criterion: 'the archive equals Stream exactly; every 200 stored; 3 restarts; clean SIGTERM exit; no secret in the logs',
    details,
  };
}

function selectedCases(): CaseName[] {
  const only = values.only
    ?.split(',')
    .map((name) => name.trim())
    .filter((name) => name.length > 0);
  const unknown = (only ?? []).filter((name) => !(CASES as readonly string[]).includes(name));
  if (unknown.length > 0) {
    console.error(`unknown case ${unknown.join(', ')}; the cases are ${CASES.join(', ')}`);
    process.exit(2);
  }
  return CASES.filter((name) => (only === undefined || only.includes(name)) && !(name === 'faults' && values['skip-faults']));
}

const runStarted = performance.now();
const elapsed = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;
const results: { name: CaseName; result: CaseResult; seconds: string }[] = [];
console.log(`chaos, ${new Date().toISOString()}: ${selectedCases().join(', ')}`);
for (const name of selectedCases()) {
  const started = performance.now();
  const log = (message: string) => console.log(`  [${name} ${elapsed(started)}] ${message}`);
  let result: CaseResult;
  try {
    if (name === 'faults') result = await faultsCase(log);
    else {
      const run = { nesting: nestingCase, replays: replaysCase, outage: outageCase, starvation: starvationCase, memory: memoryCase }[name];
      result = await withTimeout(name, HOSTILE_CASE_TIMEOUT_MS, run());
    }
  } catch (error) {
    result = { passed: false, figure: `did not finish: ${error instanceof Error ? error.message : String(error)}`, criterion: 'the case runs to the end' };
  }
  results.push({ name, result, seconds: elapsed(started) });
  console.log(`${result.passed ? 'PASS' : 'FAIL'} ${name} (${elapsed(started)}): ${result.figure}`);
  console.log(`     ${result.passed ? 'met' : 'MISSED'}: ${result.criterion}`);
  if (result.details !== undefined) console.log(result.details.replace(/^/gm, '     '));
}

await Promise.all([...liveServes].map((serve) => serve.kill()));
const failed = results.filter((r) => !r.result.passed);
console.log(
  `\n${results.length - failed.length} of ${results.length} cases passed in ${elapsed(runStarted)}${failed.length > 0 ? `; failed: ${failed.map((r) => r.name).join(', ')}` : ''}`,
);
process.exit(failed.length === 0 ? 0 : 1);
