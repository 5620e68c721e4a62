import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import { generateSession, type SimSession } from '../../tools/simulator/generate.ts';
import type { Simulator } from '../../tools/simulator/server.ts';
import { buildStatsReportReadyEvent } from '../../tools/simulator/webhooks.ts';
import type { HostileKeys } from './hostile-requests.ts';
import { countStatuses, postSignedWebhook, waitUntil } from './signed-post.ts';
import { parseLogLines, type ServeSupervisor } from './serve-process.ts';

export interface ReplayPlan {
  readonly serve: ServeSupervisor;
  readonly sim: Simulator;
  /** The service's database, for the session rows. */
  readonly pool: pg.Pool;
  readonly keys: HostileKeys;
  /** Entries of each of the two sessions (pages of 100). */
  readonly sessionSize: number;
  /** Replays of a complete session's report. */
  readonly completeReplays: number;
  /** Replays of the report of a session being archived. */
  readonly runningReplays: number;
  /**
   * Replay i goes out i × spacingMs after the first, or when the one before it is answered if that
   * is later: one after another, as a replaying attacker would. Concurrent copies would share one
   * group commit and hide the cost of each (50 concurrent replays cost 17 calls before the fix).
   */
  readonly spacingMs: number;
}

export interface ReplayReport {
  /** Stream calls (participant_sessions pages) of one archive run. */
  readonly pages: number;
  readonly complete: { readonly statuses: Record<string, number>; readonly streamCalls: number; readonly statusAfter: string | undefined };
  readonly running: {
    readonly statuses: Record<string, number>;
    readonly streamCalls: number;
    readonly replaySeconds: number;
    readonly statusBefore: string | undefined;
    readonly statusAfter: string | undefined;
  };
  /** "lease lost" log lines during the scenario: archive runs fenced out. */
  readonly leaseLost: number;
  /** For a follow-up: the complete session and the created_at its report carried. */
  readonly completeSession: SimSession;
  readonly reportedAt: Date;
}

interface SessionRow {
  status: string;
  archived: number;
  cursor: string | null;
  reported: Date | null;
}

/** The row of one session, as the replay checks read it. */
export async function readSessionRow(pool: pg.Pool, id: string): Promise<SessionRow | undefined> {
  return (
    await pool.query<SessionRow>(
      'select status, archived_participant_sessions as archived, cursor, stats_report_ready_at as reported from call_sessions where call_session_id = $1',
      [id],
    )
  ).rows[0];
}

/** Resolves when the session is complete; throws after `timeoutMs`. */
export async function waitComplete(pool: pg.Pool, id: string, timeoutMs = 60_000): Promise<void> {
  await waitUntil(
    `session ${id} complete`,
    async () => (await readSessionRow(pool, id))?.status,
    (s) => s === 'complete',
    timeoutMs,
  );
}

export function countLeaseLost(serve: ServeSupervisor): number {
  return parseLogLines(serve.output()).filter((line) => String(line.msg).startsWith('lease lost')).length;
}

/**
 * X-WEBHOOK-ID is not signed, so anyone who captured one signed body can replay it under fresh
 * ids. One signed call.stats_report_ready is replayed `completeReplays` times for a complete
 * session, then `runningReplays` times for a session the worker is paging; the Stream calls each
 * costs past its one run are counted (the simulator should answer each page in about 100 ms, so
 * the running session is still being paged when the replays start).
 */
export async function runReplayScenario(plan: ReplayPlan): Promise<ReplayReport> {
  const { serve, sim, pool } = plan;
  const leaseLostBefore = countLeaseLost(serve);
  const running = generateSession({ seed: 'replay-running', size: plan.sessionSize });
  const done = generateSession({ seed: 'replay-complete', size: plan.sessionSize });
  sim.addSession(running);
  sim.addSession(done);
  const reportOf = (session: SimSession, createdAt: Date) => Buffer.from(JSON.stringify(buildStatsReportReadyEvent(session, { createdAt })));
  const reportedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
  const replay = async (body: Buffer, count: number): Promise<number[]> => {
    const statuses: number[] = [];
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      const wait = started + i * plan.spacingMs - performance.now();
      if (wait > 0) await delay(wait);
      statuses.push(await postSignedWebhook(serve.url, plan.keys, body));
    }
    return statuses;
  };

  // A complete session, then its report again and again, each under a new X-WEBHOOK-ID.
  const doneReport = reportOf(done, reportedAt);
  const first = await postSignedWebhook(serve.url, plan.keys, doneReport);
  if (first !== 200) throw new Error(`the first report of the complete session was answered ${first}`);
  await waitComplete(pool, done.callSessionId);
  const afterFirstRun = sim.stats.requests;
  const completeStatuses = await replay(doneReport, plan.completeReplays);
  await delay(1_000);
  const completeCalls = sim.stats.requests - afterFirstRun;
  const completeStatusAfter = (await readSessionRow(pool, done.callSessionId))?.status;

  // A session being archived: the replays start once the worker has written its first page.
  const runningReport = reportOf(running, reportedAt);
  const beforeRunning = sim.stats.requests;
  const firstRunning = await postSignedWebhook(serve.url, plan.keys, runningReport);
  if (firstRunning !== 200) throw new Error(`the first report of the running session was answered ${firstRunning}`);
  await waitUntil(
    'the running session has a cursor',
    async () => (await readSessionRow(pool, running.callSessionId))?.cursor ?? null,
    (c) => c !== null,
    10_000,
    10,
  );
  const statusBefore = (await readSessionRow(pool, running.callSessionId))?.status;
  const replayStarted = performance.now();
  const runningStatuses = await replay(runningReport, plan.runningReplays);
  const replaySeconds = (performance.now() - replayStarted) / 1000;
  const statusAfter = (await readSessionRow(pool, running.callSessionId))?.status;
  await waitComplete(pool, running.callSessionId);
  // Late runs would show here: a second after completion, nothing more may be asked.
  await delay(1_000);
  const runningCalls = sim.stats.requests - beforeRunning;

  return {
    pages: Math.max(1, Math.ceil(plan.sessionSize / 100)),
    complete: { statuses: countStatuses(completeStatuses), streamCalls: completeCalls, statusAfter: completeStatusAfter },
    running: { statuses: countStatuses(runningStatuses), streamCalls: runningCalls, replaySeconds, statusBefore, statusAfter },
    leaseLost: countLeaseLost(serve) - leaseLostBefore,
    completeSession: done,
    reportedAt,
  };
}
