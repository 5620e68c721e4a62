import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { RetentionConfig } from '../config.ts';
import { ADVISORY_LOCK_KEYS, withSessionAdvisoryLock } from '../db/advisory-lock.ts';
import type { Database } from '../db/client.ts';
import { pruneArchiveBatch, pruneResponsesBatch } from './prune-archive.ts';
import { pruneInboxBatch } from './prune-inbox.ts';

/** One pruner at a time over every replica and `attendance prune` (db/advisory-lock.ts lists every key). */
const PRUNE_LOCK_KEY = ADVISORY_LOCK_KEYS.prune;

/*
 * Batches and pauses, measured with bench/prune.ts (2 shared cores, ~1.3 KiB events, figures in
 * bench/RESULTS.md): 1,000-row batches take ~20 ms each and a million expired events go in 40 s
 * with a 20 ms pause after each batch, while a single-row insert every 5 ms (intake's shape) kept
 * p50 1.13 ms and p99 11.7 ms (8.3 ms without pruning). Without the pause (100,000 rows) the
 * inserts' p99 tripled to 29.5 ms: on two cores the pause is what leaves intake its CPU. 5,000-row
 * batches were no faster per row (~140 ms a batch) and hold each transaction seven times longer.
 */
export const PRUNE_BATCH_ROWS = 1_000;
export const PRUNE_PAUSE_MS = 20;
const SESSION_IDS_REMEMBERED = 100_000;

export interface PruneOptions {
  readonly retention: RetentionConfig;
  readonly batchRows?: number;
  readonly pauseMs?: number;
  /** Stops between batches (the service's shutdown); what was deleted so far stays deleted. */
  readonly signal?: AbortSignal;
}

export interface PruneResult {
  /** False when another process held the prune lock, so nothing was done. */
  readonly ran: boolean;
  readonly webhookEvents: number;
  readonly participantSessions: number;
  readonly streamResponses: number;
  /** call_sessions rows kept with archived_participant_sessions recounted. */
  readonly callSessions: number;
  /** Stopped by the signal before the end. */
  readonly interrupted: boolean;
}

/** The rows a run removed (or recounted), added to batch by batch. */
type PruneCounts = { -readonly [K in 'webhookEvents' | 'participantSessions' | 'streamResponses' | 'callSessions']: PruneResult[K] };

/**
 * Inbox events kept: WEBHOOK_EVENTS_RETENTION_DAYS (0: for ever), but never longer than
 * ARCHIVE_RETENTION_DAYS when that is set, since payloads carry user ids and the attendance they
 * announced is gone by then. Undefined: keep every event.
 */
export function inboxRetentionDays(retention: RetentionConfig): number | undefined {
  const inbox = retention.webhookEventsDays > 0 ? retention.webhookEventsDays : undefined;
  if (retention.archiveDays === undefined) return inbox;
  return inbox === undefined ? retention.archiveDays : Math.min(inbox, retention.archiveDays);
}

/** True when some retention is configured, i.e. a prune can delete anything. */
export function pruningEnabled(retention: RetentionConfig): boolean {
  return inboxRetentionDays(retention) !== undefined;
}

/**
 * One prune run: the inbox, then the archive, in batches of their own short transactions with a
 * pause between, all on one connection holding a session-level advisory lock, so one replica
 * prunes at a time and a lost connection takes the lock with it. The run takes that one
 * background connection for as long as it lasts (seconds once caught up).
 */
export async function runPrune(database: Database, options: PruneOptions): Promise<PruneResult> {
  const counts: PruneCounts = { webhookEvents: 0, participantSessions: 0, streamResponses: 0, callSessions: 0 };
  const run = await withSessionAdvisoryLock(database.pool, PRUNE_LOCK_KEY, (client) => pruneLocked(client, options, counts));
  return run.locked ? { ran: true, ...counts, interrupted: run.value } : { ran: false, ...counts, interrupted: false };
}

async function pruneLocked(client: pg.PoolClient, options: PruneOptions, counts: PruneCounts): Promise<boolean> {
  const batchRows = options.batchRows ?? PRUNE_BATCH_ROWS;
  const pauseMs = options.pauseMs ?? PRUNE_PAUSE_MS;
  const signal = options.signal;
  const pause = async (): Promise<boolean> => {
    if (signal?.aborted) return false;
    await sleep(pauseMs, undefined, { signal }).catch(() => undefined);
    return !signal?.aborted;
  };

  /** Runs `batch` until it reports nothing more to do, pausing between; true when stopped first. */
  const drain = async (batch: () => Promise<boolean>): Promise<boolean> => {
    for (;;) {
      if (signal?.aborted) return true;
      if (!(await batch())) return false;
      if (!(await pause())) return true;
    }
  };

  const inboxDays = inboxRetentionDays(options.retention);
  const inboxStopped =
    inboxDays !== undefined &&
    (await drain(async () => {
      const deleted = await pruneInboxBatch(client, inboxDays, batchRows);
      counts.webhookEvents += deleted;
      return deleted >= batchRows;
    }));
  if (inboxStopped) return true;
  const archiveDays = options.retention.archiveDays;
  if (archiveDays === undefined) return false;
  // A session split between batches is counted once: exactly while a run has recounted fewer
  // than SESSION_IDS_REMEMBERED sessions (all but a first run on a years-old archive); past
  // that the memory is dropped (~100 B an id) and such a session may count twice.
  let seen = new Set<string>();
  const entriesStopped = await drain(async () => {
    const batch = await pruneArchiveBatch(client, archiveDays, batchRows);
    counts.participantSessions += batch.participantSessions;
    for (const id of batch.callSessionIds) {
      if (seen.has(id)) continue;
      if (seen.size >= SESSION_IDS_REMEMBERED) seen = new Set();
      seen.add(id);
      counts.callSessions++;
    }
    return batch.participantSessions > 0;
  });
  if (entriesStopped) return true;
  return drain(async () => {
    const deleted = await pruneResponsesBatch(client, archiveDays, batchRows);
    counts.streamResponses += deleted;
    return deleted >= batchRows;
  });
}
