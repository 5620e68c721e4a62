/**
 * A burst under Stream's rate limit (issue 19, item 4): a regression guard for the two things the
 * service already does there, spend exactly the minimum number of API calls and drain at the
 * rate-limit floor.
 *
 *   node bin/run-ts.js bench/burst.ts [--sessions 1000]
 *
 * 1,000 sessions of 0 to 300 entries end together: their signed call.stats_report_ready webhooks
 * are all sent at once to `attendance serve` (a child process), which pages participant_sessions
 * from the simulator under a limit of 600 calls per fixed one-minute window. Measured: the time from
 * the first webhook to the last session's `archived_at` against the floor the windows allow, the
 * calls and 429s the simulator served, and that every session is complete with exactly its rows.
 */
import { parseArgs } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import { PAGE_LIMIT } from '../src/stream/paginate.ts';
import { HOUR_MS, MINUTE_MS } from '../src/time.ts';
import { generateSession, type SimSession } from '../tools/simulator/generate.ts';
import { createRandom } from '../tools/simulator/random.ts';
import { startSimulator } from '../tools/simulator/server.ts';
import { buildStatsReportReadyEvent, deliverWebhook, type DeliveryResult } from '../tools/simulator/webhooks.ts';
import { appendResults, describeMachine, fmt, pass, withBenchDatabase, withTimeout } from './lib/bench-env.ts';
import { startServiceProcess } from './lib/service.ts';

const API_KEY = 'bench-key';
const API_SECRET = 'bench-secret';
const ENDPOINT = 'QueryCallParticipantSessions';
const LIMIT_PER_MINUTE = 600;
const WINDOW_MS = MINUTE_MS;
const TARGET_RATIO = 1.1;
// 1,000 sessions need 1,330 calls: two full windows and a tail of 130 at the start of the third.
// The service's limiter sends a window's first half at once and spaces the second half over what is
// left of the window (src/stream/rate-limiter.ts), so a tail of more than 300 calls is spread out
// rather than sent at once: 1,260 sessions (1,688 calls, a tail of 488) drained in 1.33 × the floor
// on the 2-core machine of bench/RESULTS.md. The guard holds the issue's size to the floor.
const DEFAULT_SESSIONS = 1_000;
// The floor below assumes the first window's whole budget can be spent in what is left of it: with
// 30 s left that is 20 calls a second, a fraction of what the service pages on this machine. With
// less left, the burst waits for the next window, so the figure measures the limit, not a sprint.
const MIN_FIRST_WINDOW_MS = 30_000;
const POLL_MS = 100;

export interface BurstBenchOptions {
  readonly sessions?: number;
}

export interface BurstBenchResult {
  readonly sessions: number;
  readonly entries: number;
  readonly minimumCalls: number;
  readonly calls: number;
  readonly rateLimited: number;
  readonly floorSeconds: number;
  readonly drainSeconds: number;
}

/**
 * Most calls are small and a few are large: three in four sessions fit one page, the rest need two
 * or three, and one in a hundred is empty (which still costs one call to learn it is).
 */
function burstSizes(count: number): number[] {
  const random = createRandom('bench-burst');
  return Array.from({ length: count }, (_, i) => {
    if (i % 100 === 0) return 0;
    const roll = random.next();
    if (roll < 0.75) return random.int(1, 100);
    if (roll < 0.92) return random.int(101, 200);
    return random.int(201, 300);
  });
}

/** One call per page of PAGE_LIMIT, and one for an empty session. */
export function minimumCalls(sizes: readonly number[]): number {
  return sizes.reduce((sum, size) => sum + Math.max(1, Math.ceil(size / PAGE_LIMIT)), 0);
}

/**
 * The earliest the last of `calls` calls can go out, in ms after `startMs`, under `limit` calls per
 * fixed window (the server counts per calendar minute, [k × 60 s, (k + 1) × 60 s), and refuses the
 * limit + 1st call in one; docs/stream-api.md §4). The window that holds `startMs` has limit calls
 * of room in what is left of it, and each later window limit more, so call n goes out no earlier
 * than the start of the window ceil(n / limit) − 1 after the first: that is what is left of the
 * first window plus a whole window for each one between. With calls ≤ limit the limit does not
 * bind and the floor is 0. This is below calls / limit minutes, the floor at an even rate, by up to
 * a window: a burst may spend a window's whole budget at its start and the next right after it.
 * The work after the last call opens (its page written, the session finished) is not in the floor.
 */
export function fixedWindowFloorMs(calls: number, limit: number, startMs: number): number {
  const windows = Math.ceil(calls / limit);
  if (windows <= 1) return 0;
  const leftInFirst = WINDOW_MS - (startMs % WINDOW_MS);
  return leftInFirst + (windows - 2) * WINDOW_MS;
}

export async function runBurstBench(options: BurstBenchOptions = {}): Promise<BurstBenchResult> {
  const count = options.sessions ?? DEFAULT_SESSIONS;
  const sizes = burstSizes(count);
  const minimum = minimumCalls(sizes);
  // The floor is at most one window per limit's worth of calls; the rest is set-up and slack.
  const budgetMs = Math.ceil(minimum / LIMIT_PER_MINUTE) * WINDOW_MS + 3 * MINUTE_MS;
  return withTimeout(
    'burst benchmark',
    budgetMs,
    withBenchDatabase(async (db) => {
      const endedAt = new Date(Math.floor((Date.now() - HOUR_MS) / 1000) * 1000);
      const sessions = sizes.map((size, i) => generateSession({ seed: `bench-burst-${i}`, size, endedAt }));
      const entries = sizes.reduce((sum, size) => sum + size, 0);
      const simulator = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET, rateLimitPerMinute: LIMIT_PER_MINUTE });
      try {
        for (const session of sessions) simulator.addSession(session);
        const service = await startServiceProcess({
          command: 'serve',
          databaseUrl: db.url,
          apiKey: API_KEY,
          apiSecret: API_SECRET,
          streamBaseUrl: simulator.url,
        });
        let drain: { t0: Date; last: Date; deliveries: DeliveryResult[] };
        try {
          const leftInWindow = WINDOW_MS - (Date.now() % WINDOW_MS);
          if (leftInWindow < MIN_FIRST_WINDOW_MS) await delay(leftInWindow + 100);
          drain = await sendBurstAndWait(db.pool, service.url!, sessions, budgetMs);
        } finally {
          await service.stop();
        }
        await verifyArchive(db.pool, sessions);
        const served = simulator.stats.byEndpoint[ENDPOINT] ?? { requests: 0, rateLimited: 0 };
        const floorMs = fixedWindowFloorMs(minimum, LIMIT_PER_MINUTE, drain.t0.getTime());
        const drainSeconds = (drain.last.getTime() - drain.t0.getTime()) / 1000;
        const floorSeconds = floorMs / 1000;
        const result: BurstBenchResult = {
          sessions: count,
          entries,
          minimumCalls: minimum,
          calls: served.requests,
          rateLimited: served.rateLimited,
          floorSeconds,
          drainSeconds,
        };
        await record(db.pool, result, drain.deliveries, service.problems.length);
        return result;
      } finally {
        await simulator.close();
      }
    }),
  );
}

/**
 * Sends every session's report at once, as Stream would when many calls end together, then waits
 * until all are complete. Returns the database clock's time just before the first send and the
 * last `archived_at`.
 */
async function sendBurstAndWait(
  pool: pg.Pool,
  serviceUrl: string,
  sessions: readonly SimSession[],
  timeoutMs: number,
): Promise<{ t0: Date; last: Date; deliveries: DeliveryResult[] }> {
  const events = sessions.map((session) => buildStatsReportReadyEvent(session, { createdAt: new Date() }));
  const url = `${serviceUrl}/webhooks/stream`;
  const t0 = (await pool.query<{ t0: Date }>('select clock_timestamp() as t0')).rows[0]!.t0;
  const deliveries = await Promise.all(events.map((event) => deliverWebhook({ url, apiKey: API_KEY, apiSecret: API_SECRET, event })));
  const refused = deliveries.filter((d) => d.status !== 200);
  if (refused.length > 0) throw new Error(`${refused.length} webhooks not accepted, e.g. status ${refused[0]!.status} ${refused[0]!.failure ?? ''}`);
  const ids = sessions.map((s) => s.callSessionId);
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const { rows } = await pool.query<{ complete: number; dead: number; last: Date | null; error: string | null }>(
      `select count(*) filter (where status = 'complete')::int as complete,
              count(*) filter (where status = 'dead')::int as dead,
              max(archived_at) as last,
              max(last_error) filter (where status in ('dead', 'retrying')) as error
         from call_sessions where call_session_id = any($1)`,
      [ids],
    );
    const r = rows[0]!;
    if (r.dead > 0) throw new Error(`${r.dead} sessions dead: ${r.error}`);
    if (r.complete === ids.length) return { t0, last: r.last!, deliveries };
    if (performance.now() > deadline) throw new Error(`burst did not drain (${r.complete}/${ids.length} complete: ${r.error})`);
    await delay(POLL_MS);
  }
}

/** Every session holds exactly as many rows as the simulator has entries for it, and nothing else is archived. */
async function verifyArchive(pool: pg.Pool, sessions: readonly SimSession[]): Promise<void> {
  const { rows } = await pool.query<{ id: string; expected: number; held: number }>(
    `select coalesce(s.id, p.call_session_id) as id, coalesce(s.expected, 0) as expected, coalesce(p.held, 0) as held
       from unnest($1::text[], $2::int[]) as s(id, expected)
       full join (select call_session_id, count(*)::int as held from participant_sessions group by 1) p on p.call_session_id = s.id
      where coalesce(p.held, 0) <> coalesce(s.expected, 0) or s.id is null`,
    [sessions.map((s) => s.callSessionId), sessions.map((s) => s.participants.length)],
  );
  if (rows.length > 0) {
    const first = rows[0]!;
    throw new Error(`${rows.length} sessions archived wrong, e.g. ${first.id}: ${first.held} rows, expected ${first.expected}`);
  }
}

async function record(pool: pg.Pool, r: BurstBenchResult, deliveries: readonly DeliveryResult[], problems: number): Promise<void> {
  const ratio = r.floorSeconds > 0 ? r.drainSeconds / r.floorSeconds : Number.NaN;
  const evenRateSeconds = (r.minimumCalls / LIMIT_PER_MINUTE) * 60;
  const retried = deliveries.filter((d) => d.attempts > 1).length;
  const drainMet = r.floorSeconds > 0 && ratio <= TARGET_RATIO;
  const callsMet = r.calls === r.minimumCalls;
  console.log(
    `${fmt(r.sessions)} sessions, ${fmt(r.entries)} entries: drained in ${r.drainSeconds.toFixed(1)} s, ` +
      `${Number.isNaN(ratio) ? 'n/a' : ratio.toFixed(3)} × the fixed-window floor ${r.floorSeconds.toFixed(1)} s; ` +
      `${fmt(r.calls)} calls for a minimum of ${fmt(r.minimumCalls)}, ${r.rateLimited} × 429`,
  );
  await appendResults({
    title: 'Burst under the rate limit (bench/burst.ts)',
    command: `node bin/run-ts.js bench/burst.ts --sessions ${r.sessions}`,
    machine: await describeMachine(pool),
    notes: [
      `${fmt(r.sessions)} sessions of 0–300 entries (three in four fit one page of ${PAGE_LIMIT}, one in a hundred is empty) end together: ` +
        `their signed \`call.stats_report_ready\` webhooks are sent at once to \`attendance serve\` (a child process, WORKER_CONCURRENCY 4), ` +
        `which pages participant_sessions from the simulator under ${LIMIT_PER_MINUTE} calls per fixed one-minute window. ` +
        'Drain: from the database clock just before the first webhook to the last `archived_at`. ' +
        `Floor: when the fixed windows let the last of the minimum calls out (what is left of the first window, plus a window for each ${LIMIT_PER_MINUTE} calls after the next ${LIMIT_PER_MINUTE}); ` +
        'the burst starts with at least 30 s left in its window.',
    ],
    table: {
      header: ['measure', 'value'],
      rows: [
        ['sessions / entries', `${fmt(r.sessions)} / ${fmt(r.entries)}`],
        ['webhooks accepted (retried by the sender)', `${fmt(deliveries.length)} (${retried})`],
        [`minimum calls (one per ${PAGE_LIMIT} entries, one for an empty session)`, fmt(r.minimumCalls)],
        ['participant_sessions calls served', fmt(r.calls)],
        ['429s served', String(r.rateLimited)],
        ['floor, fixed windows (s)', r.floorSeconds.toFixed(1)],
        [`at an even ${LIMIT_PER_MINUTE} per minute (s)`, evenRateSeconds.toFixed(1)],
        ['drain (s)', r.drainSeconds.toFixed(1)],
        ['drain / floor', Number.isNaN(ratio) ? 'n/a' : `${ratio.toFixed(3)} ×`],
        ['lines the service logged at warn or above', String(problems)],
      ],
    },
    verdicts: [
      `drain ≤ ${TARGET_RATIO} × floor: ${Number.isNaN(ratio) ? `n/a (${fmt(r.minimumCalls)} calls fit one window)` : `${ratio.toFixed(3)} ×`} (${pass(drainMet)})`,
      `calls = minimum: ${fmt(r.calls)} of ${fmt(r.minimumCalls)}, ${r.rateLimited} × 429 (${pass(callsMet)})`,
      'every session complete with exactly its rows: met',
    ],
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { sessions: { type: 'string', default: String(DEFAULT_SESSIONS) } } });
  const sessions = Number(values.sessions);
  if (!Number.isInteger(sessions) || sessions <= 0) throw new Error('--sessions must be a positive whole number');
  await runBurstBench({ sessions });
}
