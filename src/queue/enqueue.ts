import type pg from 'pg';
import { isContentError } from '../db/sqlstate.ts';
import { storableJson } from '../db/storable-json.ts';
import { withDeadline } from '../deadline.ts';
import { AppError } from '../errors.ts';
import type { HandledWebhookEvent } from '../stream/webhook-events.ts';
import { notifyDue, RELEASE_LEASE, RETENTION_INTERVAL, STATUS, statusIn } from './sql.ts';

export interface WebhookEventToEnqueue {
  /** X-WEBHOOK-ID, or an id derived from the body when the header is missing. */
  readonly webhookId: string;
  /** X-WEBHOOK-ATTEMPT when it is a whole number. */
  readonly attempt: number | null;
  readonly event: HandledWebhookEvent;
  /** The body exactly as received (uncompressed); stored as jsonb so large integers stay exact. */
  readonly bodyText: string;
  /** The same body parsed, used only when Postgres could not store the text as it is. */
  readonly payload: unknown;
}

export interface EnqueueResult {
  /** False for a duplicate X-WEBHOOK-ID: then nothing at all was written. */
  readonly stored: boolean;
  /** The session is due now and a NOTIFY went out with the commit. */
  readonly due: boolean;
}

/** The database did not answer within the deadline; retrying later can help. */
export class EnqueueTimeoutError extends AppError {
  constructor(ms: number) {
    super('ENQUEUE_TIMEOUT', `database did not answer within ${ms} ms`, { retryable: true });
  }
}

/*
 * One statement per batch of webhooks of one kind, so one round trip and one implicit
 * transaction: the event inserts, the session upserts and the NOTIFYs commit together or not at
 * all, and a batch of fifty costs one commit (one WAL flush, one turn at the NOTIFY queue lock,
 * which Postgres holds from pre-commit to the end of the commit, so notifying transactions commit
 * one at a time: measured on 2 cores, 16 clients of single-event statements reach ~2,000 commits/s
 * with the NOTIFY and ~4,700 without; batching is how intake keeps up, see bench/RESULTS.md).
 * The builder cannot say this: data-modifying CTEs feeding each other, upserts that run only for
 * inbox rows actually inserted, and pg_notify gated on the upserts' results. Raw SQL here, next
 * to its only caller. The events travel as parallel arrays (a fixed parameter count, one plan).
 *
 * Dedupe: `on conflict (webhook_id) do nothing` returns no row for a duplicate, so its session is
 * not touched. A concurrent duplicate waits on the first insert's row lock and then finds the
 * conflict, so 50 simultaneous deliveries write once. Ids repeated inside one batch are removed
 * before it is sent (see createWebhookEnqueuer).
 *
 * Several new events for one session in a batch become one upsert (Postgres refuses to touch a row
 * twice in one statement), chosen to end as consecutive statements would have: the report that
 * arrived last (each statement would have overwritten the one before), the earliest session_ended
 * (the first one sets session_ended_at). Rows are
 * inserted and upserted in key order, so two batches lock shared keys in the same order.
 *
 * NOTIFY is sent at commit (never for a rolled-back statement) and only when some session's
 * next_attempt_at has passed, i.e. a worker could claim it right now; once per statement, since
 * listeners only need waking (measured: ~5-10% more intake than one per session). The notified CTE is
 * volatile, so Postgres materialises it rather than inlining it away; the final select references
 * it so it runs.
 */
const INPUT_COLUMNS = 'webhook_id, type, call_cid, session_id, attempt, call_type, call_id, created_at';
const INPUT_ARRAYS = '$1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $7::text[], $8::text[], $9::timestamptz[]';
// The bodies travel as one JSON array ($6): joining texts with commas costs nothing, where a text[]
// parameter would have every quote and backslash of every body escaped.
const PAYLOADS = 'jsonb_array_elements($6::jsonb) with ordinality as b(payload, n)';

const INSERT_EVENTS = `
  insert into webhook_events (webhook_id, type, call_cid, session_id, attempt, payload)
  select webhook_id, type, call_cid, session_id, attempt, payload from input order by webhook_id
  on conflict (webhook_id) do nothing
  returning webhook_id, session_id`;

/*
 * An event's created_at is the sender's clock, and a retention estimated from it must not be moved
 * by a wrong one: a created_at far behind would make the guard expire a session Stream still holds,
 * one far ahead would sort it after sessions that expire sooner. Stream sends an event within
 * seconds of it happening and retries for only ~15 s (docs/stream-api.md §5), so a created_at is
 * plausible from 1 day behind the receive time (a generous margin for a slow clock or a delayed
 * delivery; anything older is older than any delivery Stream makes) to 1 hour ahead (clock skew,
 * nothing more: no event describes the future). Outside that band, or absent, the receive time
 * (the statement's now()) stands in. session.ended_at of call.session_ended is Stream's own end and
 * is used as it is, whatever its age.
 */
const CREATED_AT_MAX_BEHIND = `interval '1 day'`;
/** Clock skew, nothing more; also the bound of a report time that can be compared (REPORTED_AT). */
const CREATED_AT_MAX_AHEAD = `interval '1 hour'`;
const PLAUSIBLE_CREATED_AT = (column: string) =>
  `case when ${column} between now() - ${CREATED_AT_MAX_BEHIND} and now() + ${CREATED_AT_MAX_AHEAD} then ${column} else now() end`;

const NOTIFY_AND_REPORT = `
  notified as (
    select ${notifyDue('min(call_session_id)')} from session where due having count(*) > 0
  )
  select e.webhook_id, coalesce(s.due, false) as due, (select count(*) from notified) as notified
    from event e left join session s on s.call_session_id = e.session_id`;

/*
 * Which report a session's archive was last started for: stats_report_ready_at holds its
 * created_at. X-WEBHOOK-ID is not signed (docs/stream-api.md §5), so one captured signed
 * body can be re-sent under any number of fresh ids; the red team's 173 replays in 10 s each reset
 * the session, costing 2,632 Stream calls and 172 fenced-out runs. So a report acts only when it
 * is newer than the one already acted on:
 *   - the session has no report acted on yet (stats_report_ready_at null), or
 *   - its created_at is later than stats_report_ready_at.
 * Equal or earlier is a replay (or a stale copy) and changes nothing, whatever the status: a
 * running archive keeps its lease and cursor, a complete one is not re-archived, a retrying or
 * dead one keeps its schedule and attempts. Its event is still stored in webhook_events.
 *
 * A created_at counts for the comparison only while it is not more than 1 hour ahead of the
 * receive time (the upper edge of PLAUSIBLE_CREATED_AT's band). An absent created_at, or one
 * further ahead, says nothing about order: such a report acts only on a session with no report
 * acted on yet, and then records the receive time. Comparing a far-future created_at as it is
 * would let one bad clock block every later report for ever; recording it but comparing now()
 * would let each replay look newer than the last. A created_at far behind is kept for the
 * comparison (unlike the retention estimate): being old can only make a report look older.
 * A stored stats_report_ready_at itself more than 1 hour ahead (written before this rule) is
 * treated as no report acted on, so one report repairs it.
 */
const REPORTED_AT = (column: string) => `case when ${column} <= now() + ${CREATED_AT_MAX_AHEAD} then ${column} end`;

/*
 * call.stats_report_ready: the report is in, archive now, if it is newer (see REPORTED_AT). Insert
 * or update whatever the current status: a complete, expired or dead session is re-archived from
 * the start (upserts make a re-run safe), a retrying one starts over with a fresh attempt budget,
 * and a running one is taken back: clearing lease_owner fences out the worker that was paging it,
 * since every worker write checks the lease owner. So: status 'pending', next_attempt_at now(),
 * stats_report_ready_at = the event's created_at (REPORTED_AT, else now()), retention_expires_at =
 * session_ended_at + 90 days when the end is known (Stream keeps the detail 90 days from the end),
 * else the plausible created_at (see PLAUSIBLE_CREATED_AT) + 90 days, attempts 0, cursor null,
 * lease cleared. A replay's session is left alone, returns no row, so it is not due and wakes no one.
 * Several reports for one session in a batch: the one with the latest comparable created_at acts
 * (as consecutive statements would end), ties to the one delivered last. The newer-than test is in
 * the update's where, against the row as locked, so concurrent copies in two replicas' batches
 * cannot both reset it.
 */
const STATS_REPORT_READY_SQL = `
  with input as (
    select i.*, b.payload from unnest(${INPUT_ARRAYS}) with ordinality as i(${INPUT_COLUMNS}, n) join ${PAYLOADS} using (n)
  ), event as (${INSERT_EVENTS}
  ), fresh as (
    select distinct on (i.session_id) i.*, ${REPORTED_AT('i.created_at')} as reported_at
      from input i join event e on e.webhook_id = i.webhook_id
     order by i.session_id, ${REPORTED_AT('i.created_at')} desc nulls last, i.n desc
  ), session as (
    insert into call_sessions as s
      (call_session_id, call_type, call_id, call_cid, status, next_attempt_at, stats_report_ready_at, retention_expires_at)
    select f.session_id, f.call_type, f.call_id, f.call_cid, '${STATUS.pending}', now(),
           coalesce(f.reported_at, now()), ${PLAUSIBLE_CREATED_AT('f.created_at')} + ${RETENTION_INTERVAL}
      from fresh f
    on conflict (call_session_id) do update set
      status = '${STATUS.pending}',
      next_attempt_at = now(),
      stats_report_ready_at = excluded.stats_report_ready_at,
      retention_expires_at = coalesce(s.session_ended_at + ${RETENTION_INTERVAL}, excluded.retention_expires_at),
      attempts = 0,
      cursor = null,
      ${RELEASE_LEASE}
    where s.stats_report_ready_at is null
       or s.stats_report_ready_at > now() + ${CREATED_AT_MAX_AHEAD}
       or exists (select from fresh r where r.session_id = excluded.call_session_id and r.reported_at > s.stats_report_ready_at)
    returning call_session_id, next_attempt_at <= now() as due
  ), ${NOTIFY_AND_REPORT}`;

/*
 * call.session_ended: the session exists and its report should follow; make it due in one hour in
 * case the report event never comes. A new row is 'pending' with session_ended_at = the call's
 * session.ended_at (else the event's plausible created_at, see PLAUSIBLE_CREATED_AT) and
 * retention_expires_at = that + 90 days. An existing row keeps its status whatever it is; session_ended_at is filled only if it
 * was null, and then retention_expires_at follows it (the end is what Stream's 90 days count
 * from; a retention derived earlier from the report's time is later than the truth). A pending or
 * retrying session becomes due at least(current, now() + 1 hour), so this event, arriving after
 * stats_report_ready (out of order delivery), never delays a session that is due sooner.
 * $10 holds the sessions' ended_at; it and created_at may be null.
 */
const SESSION_ENDED_SQL = `
  with input as (
    select i.*, b.payload from unnest(${INPUT_ARRAYS}, $10::timestamptz[]) with ordinality as i(${INPUT_COLUMNS}, ended_at, n)
      join ${PAYLOADS} using (n)
  ), event as (${INSERT_EVENTS}
  ), fresh as (
    select distinct on (i.session_id) i.session_id, i.call_type, i.call_id, i.call_cid,
           coalesce(i.ended_at, ${PLAUSIBLE_CREATED_AT('i.created_at')}) as ended_at
      from input i join event e on e.webhook_id = i.webhook_id
     order by i.session_id, i.n
  ), session as (
    insert into call_sessions as s
      (call_session_id, call_type, call_id, call_cid, status, next_attempt_at, session_ended_at, retention_expires_at)
    select f.session_id, f.call_type, f.call_id, f.call_cid, '${STATUS.pending}', now() + interval '1 hour',
           f.ended_at, f.ended_at + ${RETENTION_INTERVAL}
      from fresh f
    on conflict (call_session_id) do update set
      session_ended_at = coalesce(s.session_ended_at, excluded.session_ended_at),
      retention_expires_at = case when s.session_ended_at is null then excluded.retention_expires_at
                                  else s.retention_expires_at end,
      next_attempt_at = case when ${statusIn('s.status', STATUS.pending, STATUS.retrying)} then least(s.next_attempt_at, excluded.next_attempt_at)
                             else s.next_attempt_at end,
      updated_at = now()
    returning call_session_id, ${statusIn('status', STATUS.pending, STATUS.retrying)} and next_attempt_at <= now() as due
  ), ${NOTIFY_AND_REPORT}`;

/**
 * Stores a handled webhook event in `webhook_events` and makes its call session due, in one
 * statement (see the SQL above for the rules). Rejects with EnqueueTimeoutError after
 * `deadlineMs` whatever the pool is doing, so a webhook never waits past Stream's 6 s timeout;
 * database errors are passed on as pg raised them (with their SQLSTATE in `code`).
 * Under concurrent load prefer createWebhookEnqueuer, which shares one commit between requests.
 */
export async function enqueueWebhookEvent(pool: pg.Pool, input: WebhookEventToEnqueue, options: { deadlineMs: number }): Promise<EnqueueResult> {
  // A statement that loses the race may still commit later: a stored event that Stream's retry
  // then finds as a duplicate.
  const results = await withDeadline(storeBatch(pool, [input], options.deadlineMs), options.deadlineMs, () => new EnqueueTimeoutError(options.deadlineMs));
  return results.get(input.webhookId) ?? { stored: false, due: false };
}

export interface WebhookEnqueuerOptions {
  /** Each caller's own limit, from its call to its answer. */
  readonly deadlineMs: number;
  /** Most events in one statement. */
  readonly maxBatch?: number;
  /** Most statements running at once (each holds a pooled connection). */
  readonly maxInFlight?: number;
}

export interface WebhookEnqueuer {
  /** As enqueueWebhookEvent, answered only after the commit of the batch the event went in. */
  enqueue(input: WebhookEventToEnqueue): Promise<EnqueueResult>;
}

export const DEFAULT_MAX_BATCH = 200;
export const DEFAULT_MAX_IN_FLIGHT = 1;

interface Waiting {
  readonly input: WebhookEventToEnqueue;
  /** performance.now() at which its caller stops waiting. */
  readonly expiresAt: number;
  readonly resolve: (result: EnqueueResult) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Group commit for intake. Events wait in a queue while `maxInFlight` statements are running;
 * each statement that finishes takes everything queued (up to `maxBatch`, split by kind) into the
 * next one. At low load the queue is empty, so an event goes out at once, alone: nothing waits
 * on a timer. Under load batches grow by themselves with the time a commit takes.
 *
 * Every caller is answered after the commit of its own batch: stored, or a duplicate (also when
 * its id came twice in one batch: the first copy is stored, the others wait for that commit and
 * answer duplicate). A batch that fails fails each of its callers with the same error (503 for
 * them), except a content error (isContentError: an event Postgres refuses for what it holds):
 * then the batch is split until the offending events stand alone (see
 * storeIsolatingContentErrors), so only they fail and every other event commits.
 */
export function createWebhookEnqueuer(pool: pg.Pool, options: WebhookEnqueuerOptions): WebhookEnqueuer {
  const maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
  const maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  const queue: Waiting[] = [];
  let inFlight = 0;
  let pumpScheduled = false;

  const runBatch = async (batch: Waiting[]): Promise<void> => {
    // Later copies of an id in this batch answer duplicate once the first copy's commit is done;
    // copies of an id share its first copy's fate.
    const firsts = new Map<string, Waiting>();
    for (const waiting of batch) if (!firsts.has(waiting.input.webhookId)) firsts.set(waiting.input.webhookId, waiting);
    const outcomes = await storeIsolatingContentErrors(
      pool,
      [...firsts.values()].map((w) => w.input),
      options.deadlineMs,
    );
    for (const waiting of batch) {
      const outcome = outcomes.get(waiting.input.webhookId);
      if (outcome !== undefined && 'error' in outcome) waiting.reject(outcome.error);
      else waiting.resolve((firsts.get(waiting.input.webhookId) === waiting ? outcome : undefined) ?? { stored: false, due: false });
    }
  };

  const pump = (): void => {
    pumpScheduled = false;
    // Callers already answered 503 at their deadline (the database was stuck) are not sent later:
    // after an outage the queue holds only events someone still waits for.
    const now = performance.now();
    let kept = 0;
    for (const waiting of queue) if (waiting.expiresAt > now) queue[kept++] = waiting;
    queue.length = kept;
    while (inFlight < maxInFlight && queue.length > 0) {
      const batch = takeBatch(queue, maxBatch);
      inFlight += 1;
      void runBatch(batch).finally(() => {
        inFlight -= 1;
        schedulePump();
      });
    }
  };
  // Deferred to the end of this turn of the event loop, so requests read in the same turn share a batch.
  const schedulePump = (): void => {
    if (pumpScheduled || queue.length === 0) return;
    pumpScheduled = true;
    setImmediate(pump);
  };

  return {
    enqueue(input) {
      const answered = new Promise<EnqueueResult>((resolve, reject) => {
        queue.push({ input, expiresAt: performance.now() + options.deadlineMs, resolve, reject });
      });
      schedulePump();
      return withDeadline(answered, options.deadlineMs, () => new EnqueueTimeoutError(options.deadlineMs));
    },
  };
}

/** The next batch: the oldest event's kind, oldest first, up to `max`; the other kind keeps its place. */
function takeBatch(queue: Waiting[], max: number): Waiting[] {
  const kind = queue[0]!.input.event.kind;
  const batch: Waiting[] = [];
  let kept = 0;
  for (let i = 0; i < queue.length; i++) {
    const waiting = queue[i]!;
    if (batch.length < max && waiting.input.event.kind === kind) batch.push(waiting);
    else queue[kept++] = waiting;
  }
  queue.length = kept;
  return batch;
}

type StoreOutcome = EnqueueResult | { readonly error: unknown };

/*
 * One event Postgres refuses for its content used to fail its whole batch: the red team's event
 * nested 100,000 deep raised 54001 and 60 of 61 concurrent webhooks got 503 with it, again on each
 * of Stream's retries. The failed batch is halved and each half sent again, one after the other
 * (one connection, as the batch had), until the events at fault are alone: n events with one bad
 * one cost about 2·log2(n) more statements (16 for a batch of 200) rather than n, and a batch
 * rarely holds more than one. The halves keep the batch's order. A failure that is not about
 * content (the database went away meanwhile) fails the events of the part that raised it and of
 * every part not yet sent; parts already committed keep their results.
 */
async function storeIsolatingContentErrors(pool: pg.Pool, inputs: readonly WebhookEventToEnqueue[], timeoutMs: number): Promise<Map<string, StoreOutcome>> {
  const outcomes = new Map<string, StoreOutcome>();
  let unavailable: { error: unknown } | undefined;
  const store = async (part: readonly WebhookEventToEnqueue[]): Promise<void> => {
    if (unavailable !== undefined) {
      for (const input of part) outcomes.set(input.webhookId, unavailable);
      return;
    }
    try {
      const results = await storeBatch(pool, part, timeoutMs);
      for (const input of part) outcomes.set(input.webhookId, results.get(input.webhookId) ?? { stored: false, due: false });
    } catch (error) {
      if (!isContentError(error)) {
        unavailable = { error };
        for (const input of part) outcomes.set(input.webhookId, unavailable);
      } else if (part.length === 1) {
        outcomes.set(part[0]!.webhookId, { error });
      } else {
        const middle = Math.ceil(part.length / 2);
        await store(part.slice(0, middle));
        await store(part.slice(middle));
      }
    }
  };
  await store(inputs);
  return outcomes;
}

/** One statement for events of one kind; the result per inserted webhook id (absent: duplicate). */
async function storeBatch(pool: pg.Pool, inputs: readonly WebhookEventToEnqueue[], timeoutMs: number): Promise<Map<string, EnqueueResult>> {
  const kind = inputs[0]!.event.kind;
  const columns: unknown[][] = [[], [], [], [], [], [], [], [], [], []];
  const payloads: string[] = [];
  for (const input of inputs) {
    const { event } = input;
    if (event.kind !== kind) throw new Error('a batch holds events of one kind');
    columns[0]!.push(input.webhookId);
    columns[1]!.push(event.type);
    columns[2]!.push(event.callCid);
    columns[3]!.push(event.callSessionId);
    columns[4]!.push(input.attempt);
    // Stored as received, unless it holds a NUL or a lone surrogate (valid JSON that jsonb refuses).
    payloads.push(storableJson(input.bodyText, input.payload));
    columns[6]!.push(event.callType);
    columns[7]!.push(event.callId);
    columns[8]!.push(event.createdAt);
    if (event.kind === 'session_ended') columns[9]!.push(event.sessionEndedAt);
  }
  const values: unknown[] = [...columns];
  values[5] = `[${payloads.join(',')}]`;
  const query = {
    // Named, so each connection parses and plans it once.
    name: kind === 'stats_report_ready' ? 'enqueue-stats-report-ready' : 'enqueue-session-ended',
    text: kind === 'stats_report_ready' ? STATS_REPORT_READY_SQL : SESSION_ENDED_SQL,
    values: kind === 'stats_report_ready' ? values.slice(0, 9) : values,
    // Frees the pooled connection if the server stops answering mid-query (pg reads it per query;
    // @types/pg does not list it).
    query_timeout: timeoutMs,
  } as pg.QueryConfig;
  const result = await pool.query<{ webhook_id: string; due: boolean }>(query);
  return new Map(result.rows.map((row) => [row.webhook_id, { stored: true, due: row.due }]));
}
