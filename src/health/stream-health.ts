import type pg from 'pg';
import type { StreamHealthState } from '../db/schema.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { describeStreamProblem, healthOfOutcome, type StreamHealthVerdict } from '../stream/health.ts';
import type { StreamOutcome } from '../stream/request.ts';

/** The service_health row that holds Stream's API health. */
const STREAM_ROW = 'stream';

/**
 * While Stream stays healthy the row is rewritten at most this often: enough for `checkedAt` and
 * the last-success time to stay fresh, without a write per page on the archive's hot path.
 */
export const HEALTH_REFRESH_MS = 30_000;

export interface StreamHealth {
  readonly state: StreamHealthState;
  /** When a replica last recorded a verdict; null before any. */
  readonly checkedAt: Date | null;
  /** Why the state is not ok (names what to fix); null when ok or unknown. */
  readonly lastError: string | null;
  /** When a replica last had a 2xx from Stream; null if never. */
  readonly lastSuccessAt: Date | null;
}

export const UNKNOWN_STREAM_HEALTH: StreamHealth = { state: 'unknown', checkedAt: null, lastError: null, lastSuccessAt: null };

/** Reads the recorded health; `unknown` when no replica has talked to Stream yet. */
export async function readStreamHealth(db: pg.Pool | pg.PoolClient): Promise<StreamHealth> {
  const { rows } = await db.query<{ state: StreamHealthState; checked_at: Date | null; last_error: string | null; last_success_at: Date | null }>(
    'select state, checked_at, last_error, last_success_at from service_health where name = $1',
    [STREAM_ROW],
  );
  const row = rows[0];
  if (!row) return UNKNOWN_STREAM_HEALTH;
  return { state: row.state, checkedAt: row.checked_at, lastError: row.last_error, lastSuccessAt: row.last_success_at };
}

/** One statement: the verdict, when, why; an ok verdict also moves last_success_at and clears the error. */
export async function recordStreamHealth(db: pg.Pool | pg.PoolClient, verdict: StreamHealthVerdict, error: string | null): Promise<void> {
  await db.query(
    `insert into service_health (name, state, checked_at, last_error, last_success_at, updated_at)
     values ($1, $2, now(), $3, case when $2 = 'ok' then now() end, now())
     on conflict (name) do update set
       state = excluded.state,
       checked_at = excluded.checked_at,
       last_error = excluded.last_error,
       last_success_at = coalesce(excluded.last_success_at, service_health.last_success_at),
       updated_at = excluded.updated_at`,
    [STREAM_ROW, verdict, verdict === 'ok' ? null : error],
  );
}

export interface StreamHealthRecorder {
  /** Feed every exchange with Stream here (the stream client's onOutcome). Never throws. */
  observe(outcome: StreamOutcome): void;
  /** The verdict this process last reached; `unknown` before any. */
  current(): StreamHealthState;
  /** What is wrong and what to fix, as recorded with the last verdict; null when ok or unknown. */
  problem(): string | null;
  /** Waits for the write in flight, if any (tests, shutdown). */
  flush(): Promise<void>;
}

export interface StreamHealthRecorderOptions {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  readonly baseUrl: string;
  readonly refreshMs?: number;
  readonly now?: () => number;
}

/**
 * Turns this process's exchanges with Stream into the shared record: written when the verdict
 * changes, and while it holds at most every `refreshMs`; one write at a time (a newer verdict
 * waiting behind a write replaces an older one). A change is logged once, at error level for a
 * problem (naming what to fix) and at info when Stream answers again.
 */
export function createStreamHealthRecorder(options: StreamHealthRecorderOptions): StreamHealthRecorder {
  const log = options.logger.child({ component: 'stream-health' });
  const refreshMs = options.refreshMs ?? HEALTH_REFRESH_MS;
  const now = options.now ?? Date.now;
  let state: StreamHealthState = 'unknown';
  let problem: string | null = null;
  let lastWriteAt = -Infinity;
  let writing: Promise<void> = Promise.resolve();
  let inFlight = false;
  let pending: { verdict: StreamHealthVerdict; error: string | null } | undefined;

  const write = () => {
    if (inFlight || !pending) return;
    const next = pending;
    pending = undefined;
    inFlight = true;
    writing = recordStreamHealth(options.pool, next.verdict, next.error)
      .catch((error: unknown) => log.warn({ err: coerceError(error) }, 'could not record Stream health'))
      .finally(() => {
        inFlight = false;
        write();
      });
  };

  return {
    observe(outcome) {
      const verdict = healthOfOutcome(outcome);
      if (verdict === null) return;
      const at = now();
      const changed = verdict !== state;
      if (!changed && at - lastWriteAt < refreshMs) return;
      const error = verdict === 'ok' ? null : describeStreamProblem(verdict, outcome, options.baseUrl);
      if (changed) {
        if (verdict === 'ok') log.info({ previous: state }, 'Stream answers');
        else log.error({ state: verdict, operation: outcome.operation, url: outcome.url, status: outcome.status }, error!);
      }
      state = verdict;
      problem = error;
      lastWriteAt = at;
      pending = { verdict, error };
      write();
    },
    current: () => state,
    problem: () => problem,
    async flush() {
      while (inFlight || pending) await writing;
    },
  };
}
