import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Database } from '../db/client.ts';
import { SESSION_STATUS } from '../db/schema.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { BackoffPolicy, PageRetryPolicy } from '../policy/retry.ts';
import { claimSessions, leaseOf, type ClaimedSession } from '../queue/claim.ts';
import { SESSIONS_DUE_CHANNEL } from '../queue/sql.ts';
import { LeaseLostError, type Lease } from '../queue/fence.ts';
import { extendLeases } from '../queue/lease.ts';
import type { StreamClient } from '../stream/client.ts';
import { WorkerStoppingError, archiveSession, type ArchiveResult } from './archive-session.ts';
import { startDueListener, type DueListener } from './listen.ts';
import { endSpan, startChildSpan, type Span, type Tracer } from '../tracing.ts';

export const LEASE_SECONDS = 30;
export const HEARTBEAT_MS = 10_000;
export const POLL_INTERVAL_MS = 5_000;
export const MAX_ATTEMPTS = 10;
const HEARTBEAT_TIMEOUT_FLOOR_MS = 2_000;
// A failing claim (database away) is retried at this pace rather than the poll interval's.
const CLAIM_ERROR_PAUSE_MS = 2_000;

export interface WorkerOptions {
  readonly database: Database;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly stream: StreamClient;
  /** Sessions archived at once (WORKER_CONCURRENCY). */
  readonly concurrency: number;
  /** The lease owner name; must be unique per running worker. Defaults to host:pid:random. */
  readonly workerId?: string;
  readonly leaseSeconds?: number;
  readonly heartbeatMs?: number;
  readonly pollIntervalMs?: number;
  readonly maxAttempts?: number;
  /** Session-level retry schedule (default: 5 s doubling to 15 min; 404 not-ready gentler). */
  readonly backoff?: BackoffPolicy;
  /** In-process retries of one page request. */
  readonly pageRetry?: PageRetryPolicy;
  /** LISTEN for due sessions (default true); polling alone still works without it. */
  readonly listen?: boolean;
  /** Called after each run with its result (for tests and instrumentation). */
  readonly onResult?: (session: ClaimedSession, result: ArchiveResult) => void;
  /** Set when OTEL_EXPORTER_OTLP_ENDPOINT is: each run is traced (claim, pages, outcome). */
  readonly tracer?: Tracer;
}

export interface Worker {
  /** Stops claiming; sessions being archived are handed back (cursor kept), then it resolves. */
  stop(): Promise<void>;
  /** Look for due sessions now (a webhook just made one due). */
  wake(): void;
  /** True while no session is being archived. */
  readonly idle: boolean;
  readonly workerId: string;
}

interface Held {
  readonly controller: AbortController;
  readonly done: Promise<void>;
  readonly lease: Lease;
}

/** What every piece of a running worker shares; `held` is the one mutable part, owned by the loop. */
interface WorkerContext {
  readonly options: WorkerOptions;
  readonly workerId: string;
  readonly leaseSeconds: number;
  readonly heartbeatMs: number;
  readonly pollIntervalMs: number;
  readonly maxAttempts: number;
  readonly log: Logger;
  readonly held: Map<string, Held>;
  readonly waker: Waker;
}

type ClaimTimes = { readonly startedAt: number; readonly endedAt: number };

/**
 * The archiving loop: claims up to `concurrency` due sessions (free slots only), archives each
 * under a lease renewed by one heartbeat statement for all of them, and sleeps until a NOTIFY, a
 * finished session or the poll interval wakes it.
 */
export function startWorker(options: WorkerOptions): Worker {
  const ctx = workerContext(options);
  const { log, held, waker } = ctx;
  if (ctx.heartbeatMs >= ctx.leaseSeconds * 1000) {
    log.warn({ heartbeatMs: ctx.heartbeatMs, leaseSeconds: ctx.leaseSeconds }, 'heartbeat is not shorter than the lease; leases will lapse while held');
  }
  const stopHeartbeat = startHeartbeat(ctx);
  const listener: DueListener | null =
    options.listen === false
      ? null
      : startDueListener({ connection: options.database.pool.options, channel: SESSIONS_DUE_CHANNEL, logger: log, onWake: waker.wake });
  log.info(
    {
      concurrency: options.concurrency,
      leaseSeconds: ctx.leaseSeconds,
      heartbeatMs: ctx.heartbeatMs,
      pollIntervalMs: ctx.pollIntervalMs,
      maxAttempts: ctx.maxAttempts,
    },
    'worker started',
  );
  const running = claimLoop(ctx);
  let stopped: Promise<void> | null = null;

  return {
    workerId: ctx.workerId,
    get idle() {
      return held.size === 0;
    },
    wake: waker.wake,
    stop() {
      stopped ??= (async () => {
        waker.halt();
        for (const entry of held.values()) entry.controller.abort(new WorkerStoppingError());
        await running;
        await Promise.all([...held.values()].map((entry) => entry.done));
        stopHeartbeat();
        await listener?.close();
        log.info('worker stopped');
      })();
      return stopped;
    },
  };
}

function workerContext(options: WorkerOptions): WorkerContext {
  const workerId = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  return {
    options,
    workerId,
    leaseSeconds: options.leaseSeconds ?? LEASE_SECONDS,
    heartbeatMs: options.heartbeatMs ?? HEARTBEAT_MS,
    pollIntervalMs: options.pollIntervalMs ?? POLL_INTERVAL_MS,
    maxAttempts: options.maxAttempts ?? MAX_ATTEMPTS,
    log: options.logger.child({ workerId }),
    held: new Map(),
    waker: createWaker(),
  };
}

async function claimLoop(ctx: WorkerContext): Promise<void> {
  const { options, held, waker } = ctx;
  while (!waker.halted) {
    waker.reset();
    const free = options.concurrency - held.size;
    if (free > 0) {
      let claimed: ClaimedSession[];
      const claimStartedAt = Date.now();
      try {
        claimed = await claimSessions(options.database.pool, {
          workerId: ctx.workerId,
          limit: free,
          leaseSeconds: ctx.leaseSeconds,
          exclude: [...held.keys()],
        });
      } catch (error) {
        ctx.log.error({ err: coerceError(error) }, 'claiming sessions failed');
        await waker.sleep(Math.min(CLAIM_ERROR_PAUSE_MS, ctx.pollIntervalMs));
        continue;
      }
      if (waker.halted) {
        // Claimed just as stop() was called: begin them anyway, stop() hands them straight back.
        for (const session of claimed) beginRun(ctx, session);
        for (const entry of held.values()) entry.controller.abort(new WorkerStoppingError());
        break;
      }
      const claim = { startedAt: claimStartedAt, endedAt: Date.now() };
      for (const session of claimed) beginRun(ctx, session, claim);
      // Every free slot was filled and one has freed up since: more may be due, look again.
      // Otherwise sleep; a finishing run, a NOTIFY or the poll interval wakes the loop.
      if (claimed.length === free && held.size < options.concurrency) continue;
    }
    await waker.sleep(ctx.pollIntervalMs);
  }
}

/** Archives one claimed session in the background; it leaves `held` and wakes the loop when done. */
function beginRun(ctx: WorkerContext, session: ClaimedSession, claim?: ClaimTimes): void {
  const { options, held } = ctx;
  const { tracer } = options;
  const controller = new AbortController();
  const started = performance.now();
  const span = tracer ? traceRun(tracer, session, claim) : undefined;
  const done = archiveSession({
    pool: options.database.pool,
    stream: span && tracer ? tracedPages(options.stream, tracer, span) : options.stream,
    logger: ctx.log,
    metrics: options.metrics,
    session,
    signal: controller.signal,
    maxAttempts: ctx.maxAttempts,
    backoff: options.backoff,
    pageRetry: options.pageRetry,
  })
    .then((result) => {
      options.metrics.archiveRunDuration.observe({ status: result.status }, (performance.now() - started) / 1000);
      if (span) {
        span.setAttributes({ 'archive.status': result.status, 'archive.rows': result.rows });
        endSpan(span, result.status === SESSION_STATUS.dead ? new Error(result.detail ?? 'dead') : undefined);
      }
      options.onResult?.(session, result);
    })
    .catch((error: unknown) => {
      if (span) endSpan(span, error);
      ctx.log.error({ err: coerceError(error), callSessionId: session.callSessionId }, 'archive run failed unexpectedly');
    })
    .finally(() => {
      if (held.get(session.callSessionId) === entry) held.delete(session.callSessionId);
      ctx.waker.wake();
    });
  const entry: Held = { controller, done, lease: leaseOf(session) };
  held.set(session.callSessionId, entry);
}

/** One statement renews every held lease each interval; a lease found gone aborts its run. Returns the stop. */
function startHeartbeat(ctx: WorkerContext): () => void {
  const { held, log } = ctx;
  let beating = false;
  const beat = async (): Promise<void> => {
    if (beating || held.size === 0) return;
    beating = true;
    try {
      const { lost } = await extendLeases(ctx.options.database.pool, {
        leases: [...held.values()].map((entry) => entry.lease),
        leaseSeconds: ctx.leaseSeconds,
        // One interval, but never so short that a busy database fails healthy beats.
        timeoutMs: Math.max(ctx.heartbeatMs, HEARTBEAT_TIMEOUT_FLOOR_MS),
      });
      for (const id of lost) {
        const entry = held.get(id);
        if (entry && !entry.controller.signal.aborted) {
          log.warn({ callSessionId: id }, 'lease lost; aborting its archive run');
          entry.controller.abort(new LeaseLostError(id));
        }
      }
    } catch (error) {
      // Writes stay fenced, so a missed heartbeat can only cost a takeover, never a double write.
      log.warn({ err: coerceError(error) }, 'heartbeat failed');
    } finally {
      beating = false;
    }
  };
  const timer = setInterval(() => void beat(), ctx.heartbeatMs);
  return () => clearInterval(timer);
}

/** The loop's sleep: ends early on wake(), and never sleeps again once halted. */
interface Waker {
  wake(): void;
  /** Forget wakes seen so far (the loop is about to look for work anyway). */
  reset(): void;
  sleep(ms: number): Promise<void>;
  halt(): void;
  readonly halted: boolean;
}

function createWaker(): Waker {
  let requested = false;
  let halted = false;
  let waiter: (() => void) | null = null;
  const wake = (): void => {
    requested = true;
    waiter?.();
  };
  return {
    wake,
    reset: () => {
      requested = false;
    },
    async sleep(ms) {
      if (requested || halted) return;
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        waiter = resolve;
        timer = setTimeout(resolve, ms);
      });
      clearTimeout(timer);
      waiter = null;
    },
    halt() {
      halted = true;
      wake();
    },
    get halted() {
      return halted;
    },
  };
}

/**
 * One run as a trace: a root span from the claim on, with the claim itself as its first child
 * (its times set after the fact: the claim statement serves several sessions at once).
 */
function traceRun(tracer: Tracer, session: ClaimedSession, claim: { readonly startedAt: number; readonly endedAt: number } | undefined): Span {
  const span = tracer.startSpan('archive session', {
    startTime: claim?.startedAt,
    attributes: { call_session_id: session.callSessionId, call_cid: `${session.callType}:${session.callId}`, 'archive.attempt': session.attempts },
  });
  if (claim) startChildSpan(tracer, 'claim', span).end(claim.endedAt);
  return span;
}

/** The stream client with each page request as a child span of the run. */
function tracedPages(stream: StreamClient, tracer: Tracer, run: Span): StreamClient {
  return {
    ...stream,
    async queryCallParticipantSessions(params) {
      const page = startChildSpan(tracer, 'page', run, { 'page.first': params.next === undefined });
      try {
        const result = await stream.queryCallParticipantSessions(params);
        page.setAttribute('page.entries', result.entries.length);
        endSpan(page);
        return result;
      } catch (error) {
        endSpan(page, error);
        throw error;
      }
    },
  };
}
