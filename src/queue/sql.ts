import type pg from 'pg';
import { SESSION_STATUS, sqlStatusList, type SessionStatus } from '../db/schema.ts';
import { AT_RISK_DAYS } from '../policy/retention.ts';
import { STREAM_RETENTION_DAYS } from '../stream/retention.ts';

/*
 * The pieces every call_sessions statement is built from, each rule written once (pg-boss's
 * plans.ts way: the constants are interpolated into the SQL text, so a status name or a rule is
 * never typed twice). Statuses come from SESSION_STATUS, the same constant the column's CHECK
 * constraint is built from. Only src/queue/ writes call_sessions; the readers that test the same
 * rules (stats, the retention guard) use the same fragments.
 */

/** A client, a pool or a transaction's client: anything that runs one statement. */
export type Queryable = Pick<pg.ClientBase, 'query'>;

export const STATUS = SESSION_STATUS;

/** `status in ('a', 'b')` for the given column. */
export const statusIn = (column: string, ...statuses: SessionStatus[]): string => `${column} in (${sqlStatusList(statuses)})`;

/**
 * Workers LISTEN here. One notification per commit that made sessions due, its payload one of
 * their call_session_ids: a wake-up call, so a batch of fifty costs one entry in the NOTIFY queue.
 */
export const SESSIONS_DUE_CHANNEL = 'attendance_sessions_due';

/** The NOTIFY that wakes idle workers; sent at commit, never for a rolled-back statement. */
export const notifyDue = (callSessionId: string): string => `pg_notify('${SESSIONS_DUE_CHANNEL}', ${callSessionId})`;

/**
 * The lease check (fencing): the session is still 'running' under this lease owner. Every worker
 * write carries it, so a worker whose lease lapsed or was reset by intake writes nothing. `row` is
 * a table alias with its dot ('s.'), or empty.
 */
export const holdsLease = (callSessionId: string, leaseOwner: string, row = ''): string =>
  `${row}call_session_id = ${callSessionId} and ${row}lease_owner = ${leaseOwner} and ${row}status = '${STATUS.running}'`;

/**
 * A running session whose lease has lapsed (its worker is gone: claimable again), and one whose
 * lease is still live (its worker is still writing its rows).
 * `row` as for holdsLease.
 */
export const leaseLapsed = (row = ''): string => `${row}status = '${STATUS.running}' and ${row}lease_expires_at < now()`;
export const leaseLive = (row = ''): string => `${row}status = '${STATUS.running}' and ${row}lease_expires_at > now()`;

/** Gives the lease up; every transition out of 'running' (and every reset of one) sets these. */
export const RELEASE_LEASE = 'lease_owner = null, lease_expires_at = null, updated_at = now()';

/*
 * One retention clock (docs/architecture.md): retention_expires_at is Stream's session end + 90 days. The
 * interval comes from stream/retention.ts, the TypeScript side's only statement of the rule.
 */
export const RETENTION_INTERVAL = `interval '${STREAM_RETENTION_DAYS} days'`;

/** What users see in archived_participant_sessions: the rows really held for the session. */
export const archivedCount = (callSessionId: string): string => `(select count(*) from participant_sessions p where p.call_session_id = ${callSessionId})`;

/*
 * A session whose detail Stream no longer has is 'expired', unless it was archived in full
 * before (archived_at set and the rows held equal Stream's total): those rows were verified while
 * Stream still had them, so it stays (or goes back to) 'complete'. Used by the worker's expire
 * and by the retention guard.
 */
export const verifiedBefore = (held: string, total: string): string => `archived_at is not null and ${held} = ${total}`;
export const expiredUnlessVerified = (held: string, total: string): string =>
  `case when ${verifiedBefore(held, total)} then '${STATUS.complete}' else '${STATUS.expired}' end`;

/**
 * At risk: not finished (complete or expired) and within AT_RISK_DAYS of its retention. The one
 * predicate for `status`, /metrics and the reconciler's warning. A null retention is never at risk.
 */
export const AT_RISK = `status not in (${sqlStatusList([STATUS.complete, STATUS.expired])})
  and retention_expires_at < now() + make_interval(days => ${AT_RISK_DAYS})`;
