import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { generateSession, type SimSession } from '../../tools/simulator/generate.ts';
import { createRandom, type Random } from '../../tools/simulator/random.ts';
import { startSimulator, type SimulatorStats } from '../../tools/simulator/server.ts';
import { buildSessionEndedEvent, buildStatsReportReadyEvent, deliverWebhook } from '../../tools/simulator/webhooks.ts';
import { checkArchive, type ArchiveCheck } from './archive-check.ts';
import { createServeSupervisor, findSecretLeaks, parseLogLines } from './serve-process.ts';

export const FAULT_API_KEY = 'fault-run-key';
export const FAULT_API_SECRET = 'fault-run-secret-that-must-never-be-logged-3f9c';

/** The API's failure mix the issue asks for; `slowMs` is set per run (see FaultRunOptions). */
export const API_FAULTS = { serverErrorRate: 0.2, rateLimitRate: 0.1, slowRate: 0.05, truncatedRate: 0.03, resetRate: 0.01 } as const;

export interface FaultRunOptions {
  /** A migrated database of the run's own; serve runs against it. */
  readonly databaseUrl: string;
  readonly seed: string;
  readonly sessions: number;
  /** Sizes run from 1 to this (both included), log-uniform in between. */
  readonly maxSize: number;
  /** Sessions end, and their webhooks go out, spread over this long. */
  readonly deliveryPhaseMs: number;
  /**
   * How long a slow API answer takes. The stream client gives up after 10 s (REQUEST_TIMEOUT_MS);
   * the chaos run goes past that, the test suite stays under it to fit its time budget.
   */
  readonly slowMs: number;
  /** Give up waiting for the archive to settle after this long past the delivery phase. */
  readonly settleTimeoutMs: number;
  readonly workerConcurrency?: number;
  readonly progress?: (message: string) => void;
}

export interface DeliveryCounters {
  /** Distinct webhook ids sent (a copy with a fresh id counts as another webhook). */
  webhooks: number;
  /** Deliveries (each one to three copies per event, each with Stream's retries). */
  deliveries: number;
  /** HTTP attempts over all deliveries. */
  attempts: number;
  /** Deliveries that needed more than one attempt. */
  retried: number;
  /** Deliveries answered 200. */
  acknowledged: number;
  /** Deliveries Stream would have given up on. */
  lost: number;
  /** Events of which no copy was acknowledged: only the reconciler can find these. */
  eventsLost: number;
}

export interface FaultRunReport {
  readonly sessions: number;
  readonly entries: number;
  readonly elapsedMs: number;
  /** From the first webhook to the moment every session was complete (or the timeout). */
  readonly archiveMs: number;
  readonly settled: boolean;
  readonly deliveries: DeliveryCounters;
  readonly restarts: number;
  readonly terminatedBackends: number;
  readonly api: SimulatorStats;
  /** participant_sessions requests a fault-free run would have needed. */
  readonly minimumPageRequests: number;
  /** Counted from every process's logs. */
  readonly fromLogs: Record<string, number>;
  readonly finalExit: number | string;
  readonly check: ArchiveCheck;
  /** Acknowledged webhook ids that are not in webhook_events (a 200 before the commit). */
  readonly ackedNotStored: number;
  readonly secretLeaks: string[];
  /** Every serve process's output, in start order. */
  readonly output: string;
}

/**
 * The end-to-end fault scenario: `attendance serve` as a child process against the simulator and
 * a real Postgres; sessions end one after another and each one's session_ended and
 * stats_report_ready go out one to three times, concurrently and out of order, through Stream's
 * own retry policy; the API fails (API_FAULTS); serve is SIGKILLed three times and restarted;
 * the service's database connections are terminated once. Then the archive is compared with the
 * simulator's sessions. The last kill falls just after the deliveries, so the restart's sweep
 * is what finds sessions whose webhooks all fell into an outage, without waiting a sweep interval.
 */
export async function runFaultScenario(options: FaultRunOptions): Promise<FaultRunReport> {
  const say = options.progress ?? (() => undefined);
  const random = createRandom(`fault-run:${options.seed}`);
  const startedAt = performance.now();
  const sizes = planSizes(random, options.sessions, options.maxSize);
  const sim = await startSimulator({
    apiKey: FAULT_API_KEY,
    apiSecret: FAULT_API_SECRET,
    faults: { seed: options.seed, ...API_FAULTS, slowMs: options.slowMs },
  });
  const serve = await createServeSupervisor({
    DATABASE_URL: options.databaseUrl,
    STREAM_API_KEY: FAULT_API_KEY,
    STREAM_API_SECRET: FAULT_API_SECRET,
    STREAM_BASE_URL: sim.url,
    LOG_LEVEL: 'debug',
    WORKER_CONCURRENCY: String(options.workerConcurrency ?? 8),
    RECONCILE_INTERVAL_MINUTES: '1',
    RECONCILE_LOOKBACK_DAYS: '1',
  });
  const admin = new pg.Client({ connectionString: options.databaseUrl, application_name: 'fault-run' });
  await admin.connect();
  const truth: SimSession[] = [];
  const counters: DeliveryCounters = { webhooks: 0, deliveries: 0, attempts: 0, retried: 0, acknowledged: 0, lost: 0, eventsLost: 0 };
  const acknowledgedIds = new Set<string>();
  let restarts = 0;
  let terminatedBackends = 0;
  let finalExit: number | string = 'not stopped';
  let settled = false;
  let archiveMs = 0;

  try {
    await serve.start();
    const phase = options.deliveryPhaseMs;
    const phaseStart = performance.now();
    const clock = () => performance.now() - phaseStart;
    const at = async (ms: number) => {
      const wait = ms - clock();
      if (wait > 0) await delay(wait);
    };

    const killTimes = [random.int(0.15 * phase, 0.5 * phase), random.int(0.55 * phase, 0.9 * phase), phase + random.int(300, 1_500)];
    const downtimes = killTimes.map(() => random.int(0, 1_500));
    const cutAt = random.int(0.2 * phase, 0.8 * phase);
    let lastStartAt = 0;
    const faults = (async () => {
      const events = [...killTimes.map((t) => ({ t, kind: 'kill' as const })), { t: cutAt, kind: 'cut' as const }].sort((a, b) => a.t - b.t);
      for (const event of events) {
        await at(event.t);
        if (event.kind === 'cut') {
          // Right after a restart the service holds few connections yet; cut into a busy one.
          await at(lastStartAt + 2_000);
          const { rows } = await admin.query<{ pid: number }>(
            `select pg_terminate_backend(pid) as done, pid from pg_stat_activity
              where datname = current_database() and application_name like 'stream-attendance%' and pid <> pg_backend_pid()`,
          );
          terminatedBackends += rows.length;
          say(`database connections cut: ${rows.length} backends terminated`);
          continue;
        }
        await serve.kill();
        say(`serve killed (SIGKILL) at ${Math.round(clock())} ms`);
        await delay(downtimes[restarts]!);
        await serve.start();
        lastStartAt = clock();
        restarts += 1;
        say(`serve restarted (${restarts})`);
      }
    })();

    const deliveries: Promise<void>[] = [];
    for (let i = 0; i < sizes.length; i++) {
      await at((i * phase) / sizes.length);
      const session = generateSession({ seed: `${options.seed}:${i}`, size: sizes[i]! });
      truth.push(session);
      sim.addSession(session);
      const events = [buildSessionEndedEvent(session), buildStatsReportReadyEvent(session)];
      for (const event of events) deliveries.push(deliverCopies(random, serve.url, event, counters, acknowledgedIds));
    }
    await Promise.all(deliveries);
    await faults;
    say(`deliveries done: ${counters.acknowledged} acknowledged, ${counters.lost} lost, ${counters.eventsLost} events lost entirely`);

    const deadline = performance.now() + options.settleTimeoutMs;
    while (performance.now() < deadline) {
      const { rows } = await admin.query<{ complete: number }>("select count(*) filter (where status = 'complete')::int as complete from call_sessions");
      if (rows[0]!.complete === truth.length) {
        settled = true;
        break;
      }
      await delay(250);
    }
    archiveMs = Math.round(performance.now() - phaseStart);
    say(settled ? `every session complete after ${archiveMs} ms` : `not settled after ${archiveMs} ms`);
    finalExit = await serve.stop();
  } finally {
    await serve.kill();
    await sim.close();
  }

  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 2, application_name: 'fault-run-check' });
  try {
    const check = await checkArchive(pool, truth);
    const stored = new Set(
      (await admin.query<{ id: string }>('select webhook_id as id from webhook_events where webhook_id = any($1)', [[...acknowledgedIds]])).rows.map(
        (r) => r.id,
      ),
    );
    const output = serve.output();
    return {
      sessions: truth.length,
      entries: sizes.reduce((a, b) => a + b, 0),
      elapsedMs: Math.round(performance.now() - startedAt),
      archiveMs,
      settled,
      deliveries: counters,
      restarts,
      terminatedBackends,
      api: sim.stats,
      minimumPageRequests: sizes.reduce((sum, size) => sum + Math.max(1, Math.ceil(size / 100)), 0),
      fromLogs: countLogEvents(output),
      finalExit,
      check,
      ackedNotStored: acknowledgedIds.size - stored.size,
      secretLeaks: findSecretLeaks(output, FAULT_API_SECRET),
      output,
    };
  } finally {
    await admin.end();
    await pool.end();
  }
}

/** 1 and `max` always, the rest log-uniform: many small sessions, a few large ones, like real calls. */
function planSizes(random: Random, count: number, max: number): number[] {
  const sizes = [1, max];
  while (sizes.length < count) sizes.push(Math.max(1, Math.min(max, Math.round(Math.exp(random.next() * Math.log(max))))));
  // Shuffled, so the large sessions do not always end first.
  for (let i = sizes.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    [sizes[i], sizes[j]] = [sizes[j]!, sizes[i]!];
  }
  return sizes.slice(0, count);
}

/**
 * One to three copies of an event, each after a random pause (so the two events of a session and
 * their copies interleave), each through Stream's retry policy. Most copies repeat the webhook id
 * (a redelivery); some carry a fresh one (Stream sending the event again), which re-archives a
 * session that may already be complete.
 */
async function deliverCopies(
  random: Random,
  url: string,
  event: Record<string, unknown>,
  counters: DeliveryCounters,
  acknowledged: Set<string>,
): Promise<void> {
  const copies = random.int(1, 3);
  const firstId = `${String(event.type)}:${String(event.session_id)}:${random.int(0, 1e9)}`;
  const plan = Array.from({ length: copies }, (_, i) => ({
    webhookId: i > 0 && random.chance(0.25) ? `${firstId}:again-${i}` : firstId,
    pauseMs: random.int(0, 2_500),
    gzip: random.chance(0.3),
  }));
  counters.webhooks += new Set(plan.map((p) => p.webhookId)).size;
  const results = await Promise.all(
    plan.map(async (copy) => {
      await delay(copy.pauseMs);
      const result = await deliverWebhook({
        url: `${url}/webhooks/stream`,
        apiKey: FAULT_API_KEY,
        apiSecret: FAULT_API_SECRET,
        event,
        webhookId: copy.webhookId,
        gzip: copy.gzip,
      });
      counters.deliveries += 1;
      counters.attempts += result.attempts;
      if (result.attempts > 1) counters.retried += 1;
      if (result.status === 200) {
        counters.acknowledged += 1;
        acknowledged.add(copy.webhookId);
      } else {
        counters.lost += 1;
      }
      return result.status === 200;
    }),
  );
  if (!results.some(Boolean)) counters.eventsLost += 1;
}

const LOG_COUNTERS: Record<string, string> = {
  'session will be retried': 'session retries',
  'took over a session whose lease lapsed': 'takeovers after a lapsed lease',
  'lease lost; stopped archiving': 'runs fenced out (lease lost)',
  'webhook not stored: database unavailable': 'webhooks answered 503',
  'sessions with no webhook enqueued': 'reconciler sweeps that enqueued sessions',
  'sessions whose report event never came made due': 'reconciler sweeps that made waiting sessions due',
  'sweep done': 'reconciler sweeps done',
  'session dead': 'sessions dead',
  'idle database connection lost': 'idle connections lost',
};

function countLogEvents(output: string): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(Object.values(LOG_COUNTERS).map((name) => [name, 0]));
  let pageRetries = 0;
  let enqueued = 0;
  for (const line of parseLogLines(output)) {
    const name = LOG_COUNTERS[String(line.msg)];
    if (name !== undefined) counts[name]! += 1;
    if (line.msg === 'page request failed; retrying' || line.msg === 'page rate limited; waiting for the limiter') pageRetries += 1;
    if (line.msg === 'sessions with no webhook enqueued') enqueued += Number(line.enqueued ?? 0);
  }
  return { ...counts, 'page requests retried in process': pageRetries, 'sessions enqueued by the reconciler': enqueued };
}
