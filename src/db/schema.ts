import { bigint, check, foreignKey, index, integer, jsonb, pgTable, primaryKey, sql, text, timestamp } from './drizzle.ts';

/**
 * The source of truth for `migrations/` (drizzle-kit generate). Table and column names are
 * a public interface: users query them with SQL, so they follow the README's Tables section and
 * docs/sql.md exactly.
 *
 * Not here, because drizzle-kit cannot express them (functions, triggers, views), all documented in
 * docs/sql.md: the `attendance_stretches` view (hand-written migration 0002_attendance_views.sql);
 * the rollups (0006_attendance_rollups.sql): the tables attendance_rollup, session_rollup,
 * monthly_user_attendance, daily_call_type_attendance, daily_call_type_users and rollup_pending, the
 * trigger on participant_sessions that marks sessions pending, attendance_rollup_refresh(), and the
 * `attendance` and `call_session_attendance` views that read them.
 */

/**
 * Every status a call session can have, written once: the column's CHECK constraint, the queue's
 * SQL (src/queue/sql.ts) and every reader take the names from here (as SESSION_STATUS.pending …),
 * so no status literal is typed twice.
 */
export const SESSION_STATUSES = Object.freeze(['pending', 'running', 'complete', 'retrying', 'dead', 'expired'] as const);
export type SessionStatus = (typeof SESSION_STATUSES)[number];
export const SESSION_STATUS: { readonly [S in SessionStatus]: S } = Object.freeze(
  Object.fromEntries(SESSION_STATUSES.map((status) => [status, status])) as { [S in SessionStatus]: S },
);

/** `'a', 'b'`: status names as a SQL list (they are plain words, so quoting is all they need). */
export const sqlStatusList = (statuses: readonly SessionStatus[]): string => statuses.map((status) => `'${status}'`).join(', ');

const tstz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/** One row per call session; also the job queue (status, lease, cursor). */
export const callSessions = pgTable(
  'call_sessions',
  {
    callSessionId: text('call_session_id').primaryKey(),
    callType: text('call_type').notNull(),
    callId: text('call_id').notNull(),
    callCid: text('call_cid').notNull(),
    status: text('status', { enum: SESSION_STATUSES }).notNull().default(SESSION_STATUS.pending),
    totalParticipantSessions: integer('total_participant_sessions'),
    totalParticipantDuration: bigint('total_participant_duration', { mode: 'number' }),
    archivedParticipantSessions: integer('archived_participant_sessions').notNull().default(0),
    sessionEndedAt: tstz('session_ended_at'),
    statsReportReadyAt: tstz('stats_report_ready_at'),
    retentionExpiresAt: tstz('retention_expires_at'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: tstz('next_attempt_at').notNull().defaultNow(),
    leaseOwner: text('lease_owner'),
    leaseExpiresAt: tstz('lease_expires_at'),
    cursor: text('cursor'),
    lastError: text('last_error'),
    createdAt: tstz('created_at').notNull().defaultNow(),
    updatedAt: tstz('updated_at').notNull().defaultNow(),
    archivedAt: tstz('archived_at'),
  },
  (t) => [
    check('call_sessions_status_check', sql`${t.status} in (${sql.raw(sqlStatusList(SESSION_STATUSES))})`),
    check('call_sessions_cid_check', sql`${t.callCid} = ${t.callType} || ':' || ${t.callId}`),
    // The worker's claim: due sessions by status and time, nearest expiry first.
    index('call_sessions_claim_idx').on(t.status, t.nextAttemptAt, t.retentionExpiresAt),
    // Running sessions whose lease lapsed are taken over.
    index('call_sessions_lease_idx')
      .on(t.leaseExpiresAt)
      .where(sql`${t.status} = ${sql.raw(`'${SESSION_STATUS.running}'`)}`),
    index('call_sessions_call_idx').on(t.callType, t.callId),
    index('call_sessions_ended_idx').on(t.sessionEndedAt),
    // The sessions not complete (docs/sql.md), nearest expiry first, without reading the complete ones.
    index('call_sessions_not_complete_idx')
      .on(t.retentionExpiresAt, t.callSessionId)
      .where(sql`${t.status} <> ${sql.raw(`'${SESSION_STATUS.complete}'`)}`),
  ],
);

/** One row per participant session (one join → leave of one connection), as Stream reports it. */
export const participantSessions = pgTable(
  'participant_sessions',
  {
    callSessionId: text('call_session_id').notNull(),
    userSessionId: text('user_session_id').notNull(),
    callType: text('call_type').notNull(),
    callId: text('call_id').notNull(),
    userId: text('user_id').notNull(),
    joinedAt: tstz('joined_at'),
    leftAt: tstz('left_at'),
    durationInSeconds: integer('duration_in_seconds'),
    publisherType: text('publisher_type').notNull(),
    roles: text('roles').array().notNull().default(sql`'{}'::text[]`),
    /**
     * What the other columns do not give back of Stream's entry, fields it adds later included;
     * participant_session_entry(p) (migrations/0005_lean_raw.sql) rebuilds the entry exactly.
     */
    raw: jsonb('raw').notNull(),
    archivedAt: tstz('archived_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ name: 'participant_sessions_pkey', columns: [t.callSessionId, t.userSessionId] }),
    foreignKey({ name: 'participant_sessions_call_session_fk', columns: [t.callSessionId], foreignColumns: [callSessions.callSessionId] }),
    index('participant_sessions_user_idx').on(t.userId),
    index('participant_sessions_joined_idx').on(t.joinedAt),
  ],
);

/** The webhook inbox: each delivery stored once, keyed by Stream's X-WEBHOOK-ID. */
export const webhookEvents = pgTable(
  'webhook_events',
  {
    webhookId: text('webhook_id').primaryKey(),
    type: text('type').notNull(),
    callCid: text('call_cid'),
    sessionId: text('session_id'),
    attempt: integer('attempt'),
    receivedAt: tstz('received_at').notNull().defaultNow(),
    payload: jsonb('payload').notNull(),
  },
  (t) => [index('webhook_events_session_idx').on(t.sessionId), index('webhook_events_received_idx').on(t.receivedAt)],
);

/**
 * Small per-process-group state, one row per name: the reconciler's `session_ended_at`
 * watermark and the `next` cursor of a sweep in progress, so an interrupted sweep resumes.
 */
export const reconcileState = pgTable('reconcile_state', {
  name: text('name').primaryKey(),
  watermark: tstz('watermark'),
  sweepUntil: tstz('sweep_until'),
  cursor: text('cursor'),
  lastSweepAt: tstz('last_sweep_at'),
  lastError: text('last_error'),
  updatedAt: tstz('updated_at').notNull().defaultNow(),
  /** Start of the window the sweep in progress (or the last one) covers. */
  sweepFrom: tstz('sweep_from'),
  /** The latest session end committed so far in the window in progress: how far the sweep has got. */
  sweepPosition: tstz('sweep_position'),
  /** The earliest session end any finished sweep covered: [covered_from, watermark] has been listed. */
  coveredFrom: tstz('covered_from'),
  sweepStartedAt: tstz('sweep_started_at'),
  /** Rows of the sweep in progress (or the last one): listed, newly enqueued, unusable. */
  sweepSeen: integer('sweep_seen').notNull().default(0),
  sweepEnqueued: integer('sweep_enqueued').notNull().default(0),
  sweepUnusable: integer('sweep_unusable').notNull().default(0),
  /** Rows call_stats listed that could not be used at all, over every sweep and backfill. */
  unusableTotal: bigint('unusable_total', { mode: 'number' }).notNull().default(0),
});

export const STREAM_HEALTH_STATES = ['ok', 'unauthorized', 'unreachable', 'unknown'] as const;
export type StreamHealthState = (typeof STREAM_HEALTH_STATES)[number];

/**
 * What the service last learned about Stream's API, one row (name 'stream'), written by every
 * replica that talks to Stream, so /readyz, `status` and /metrics of any replica can tell.
 */
export const serviceHealth = pgTable(
  'service_health',
  {
    name: text('name').primaryKey(),
    state: text('state', { enum: STREAM_HEALTH_STATES }).notNull().default('unknown'),
    checkedAt: tstz('checked_at'),
    lastError: text('last_error'),
    lastSuccessAt: tstz('last_success_at'),
    updatedAt: tstz('updated_at').notNull().defaultNow(),
  },
  (t) => [check('service_health_state_check', sql`${t.state} in ('ok', 'unauthorized', 'unreachable', 'unknown')`)],
);

/**
 * Stream's last QueryCallParticipantSessions answer for a session without its entries (`session`,
 * totals, `duration` and any top-level field Stream adds), so the archive route can answer with
 * every field Stream's own response had. Kept beside call_sessions, whose columns are a fixed public interface.
 */
export const streamResponses = pgTable(
  'stream_responses',
  {
    callSessionId: text('call_session_id').primaryKey(),
    response: jsonb('response').notNull(),
    updatedAt: tstz('updated_at').notNull().defaultNow(),
  },
  (t) => [
    foreignKey({ name: 'stream_responses_call_session_fk', columns: [t.callSessionId], foreignColumns: [callSessions.callSessionId] }).onDelete('cascade'),
  ],
);

/**
 * One row per `attendance forget --user` run that removed something: when, which user (as a
 * SHA-256 hex digest, so the audit trail does not keep the id it erased), and how much went.
 */
export const erasureLog = pgTable('erasure_log', {
  id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
  erasedAt: tstz('erased_at').notNull().defaultNow(),
  userIdSha256: text('user_id_sha256').notNull(),
  participantSessionsDeleted: integer('participant_sessions_deleted').notNull(),
  webhookEventsScrubbed: integer('webhook_events_scrubbed').notNull(),
  callSessionsAdjusted: integer('call_sessions_adjusted').notNull(),
});
