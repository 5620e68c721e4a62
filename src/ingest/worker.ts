import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Database } from '../db/client.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { BackoffPolicy } from '../queue/backoff.ts';
import { claimSessions, type ClaimedSession } from '../queue/claim.ts';
import { SESSIONS_DUE_CHANNEL } from '../queue/enqueue.ts';
import { LeaseLostError, type Lease } from '../queue/fence.ts';
import { extendLeases } from '../queue/lease.ts';
import type { StreamClient } from '../stream/client.ts';
import { WorkerStoppingError, archiveSession, type ArchiveResult, type PageRetryPolicy } from './archive-session.ts';
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

/**
 * The archiving loop: claims up to `concurrency` due sessions (free slots only), archives each
 * under a lease renewed by one heartbeat statement for all of them, and sleeps until a NOTIFY, a
 * finished session or the poll interval wakes it.
 */
export function startWorker(options: WorkerOptions): Worker {
  const workerId = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const leaseSeconds = options.leaseSeconds ?? LEASE_SECONDS;
  const heartbeatMs = options.heartbeatMs ?? HEARTBEAT_MS;
  const pollIntervalMs = options.pollIntervalMs ?? POLL_INTERVAL_MS;
  const maxAttempts = options.maxAttempts ?? MAX_ATTEMPTS;
  const { pool } = options.database;
  const { tracer } = options;
  const log = options.logger.child({ workerId });
  if (heartbeatMs >= leaseSeconds * 1000) {
    log.warn({ heartbeatMs, leaseSeconds }, 'heartbeat is not shorter than the lease; leases will lapse while held');
  }

  const held = new Map<string, Held>();
  let stopping = false;
  let wakeRequested = false;
  let wakeWaiter: (() => void) | null = null;

  const wake = (): void => {
    wakeRequested = true;
    wakeWaiter?.();
  };

  const sleepUntilWoken = async (ms: number): Promise<void> => {
    if (wakeRequested || stopping) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      wakeWaiter = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    wakeWaiter = null;
  };

  const begin = (session: ClaimedSession, claim?: { readonly startedAt: number; readonly endedAt: number }): void => {
    const controller = new AbortController();
    const started = performance.now();
    const span = tracer ? traceRun(tracer, session, claim) : undefined;
    const done = archiveSession({
      pool,
      stream: span && tracer ? tracedPages(options.stream, tracer, span) : options.stream,
      logger: log,
      metrics: options.metrics,
      session,
      signal: controller.signal,
      maxAttempts,
      backoff: options.backoff,
      pageRetry: options.pageRetry,
    })
      .then((result) => {
        options.metrics.archiveRunDuration.observe({ status: result.status }, (performance.now() - started) / 1000);
        if (span) {
          span.setAttributes({ 'archive.status': result.status, 'archive.rows': result.rows });
          endSpan(span, result.status === 'dead' ? new Error(result.detail ?? 'dead') : undefined);
        }
        options.onResult?.(session, result);
      })
      .catch((error: unknown) => {
        if (span) endSpan(span, error);
        log.error({ err: coerceError(error), callSessionId: session.callSessionId }, 'archive run failed unexpectedly');
      })
      .finally(() => {
        if (held.get(session.callSessionId) === entry) held.delete(session.callSessionId);
        wake();
      });
    const entry: Held = { controller, done, lease: { callSessionId: session.callSessionId, owner: session.leaseOwner } };
    held.set(session.callSessionId, entry);
  };

  const loop = async (): Promise<void> => {
    while (!stopping) {
      wakeRequested = false;
      const free = options.concurrency - held.size;
      if (free > 0) {
        let claimed: ClaimedSession[];
        const claimStartedAt = Date.now();
        try {
          claimed = await claimSessions(pool, { workerId, limit: free, leaseSeconds, exclude: [...held.keys()] });
        } catch (error) {
          log.error({ err: coerceError(error) }, 'claiming sessions failed');
          await sleepUntilWoken(Math.min(CLAIM_ERROR_PAUSE_MS, pollIntervalMs));
          continue;
        }
        if (stopping) {
          // Claimed just as stop() was called: begin them anyway, stop() hands them straight back.
          for (const session of claimed) begin(session);
          for (const entry of held.values()) entry.controller.abort(new WorkerStoppingError());
          break;
        }
        const claim = { startedAt: claimStartedAt, endedAt: Date.now() };
        for (const session of claimed) begin(session, claim);
        // Every free slot was filled and one has freed up since: more may be due, look again.
        // Otherwise sleep; a finishing run, a NOTIFY or the poll interval wakes the loop.
        if (claimed.length === free && held.size < options.concurrency) continue;
      }
      await sleepUntilWoken(pollIntervalMs);
    }
  };

  let beating = false;
  const heartbeat = async (): Promise<void> => {
    if (beating || held.size === 0) return;
    beating = true;
    try {
      const { lost } = await extendLeases(pool, {
        leases: [...held.values()].map((entry) => entry.lease),
        leaseSeconds,
        // One interval, but never so short that a busy database fails healthy beats.
        timeoutMs: Math.max(heartbeatMs, HEARTBEAT_TIMEOUT_FLOOR_MS),
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
  const heartbeatTimer = setInterval(() => void heartbeat(), heartbeatMs);

  const listener: DueListener | null =
    options.listen === false
      ? null
      : startDueListener({ connection: pool.options, channel: SESSIONS_DUE_CHANNEL, logger: log, onWake: wake });

  log.info({ concurrency: options.concurrency, leaseSeconds, heartbeatMs, pollIntervalMs, maxAttempts }, 'worker started');
  const running = loop();
  let stopped: Promise<void> | null = null;

  return {
    workerId,
    get idle() {
      return held.size === 0;
    },
    wake,
    stop() {
      stopped ??= (async () => {
        stopping = true;
        wake();
        for (const entry of held.values()) entry.controller.abort(new WorkerStoppingError());
        await running;
        await Promise.all([...held.values()].map((entry) => entry.done));
        clearInterval(heartbeatTimer);
        await listener?.close();
        log.info('worker stopped');
      })();
      return stopped;
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
