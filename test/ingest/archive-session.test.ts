import v8 from 'node:v8';
import vm from 'node:vm';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { archiveSession, WorkerStoppingError, type ArchiveSessionOptions } from '../../src/ingest/archive-session.ts';
import { createMetrics } from '../../src/metrics.ts';
import { claimSessions, leaseOf, type ClaimedSession } from '../../src/queue/claim.ts';
import { pageLockKey } from '../../src/queue/checkpoint-page.ts';
import { LeaseLostError } from '../../src/queue/fence.ts';
import { generateSession, type SimSession } from '../../tools/simulator/generate.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { createStreamClient, type StreamClient } from '../../src/stream/client.ts';
import { StreamApiError } from '../../src/stream/errors.ts';
import type { ParticipantSessionsPage } from '../../src/stream/schemas.ts';
import { DAY_MS, HOUR_MS } from '../../src/time.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { FAST_BACKOFF, FAST_PAGE_RETRY, enqueueSimSession, expectArchiveMatches, quietLogger, waitFor } from './helpers.ts';
import { readSessionRow } from '../helpers/session-rows.ts';

const API_KEY = 'sim-key';
const API_SECRET = 'sim-secret';

const db = useTestDatabase();
const pool = () => db.current.database.pool;
let sim: Simulator;
let stream: StreamClient;
const logger = quietLogger();

beforeAll(async () => {
  sim = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET });
  stream = createStreamClient({ baseUrl: sim.url, apiKey: API_KEY, apiSecret: API_SECRET, timeoutMs: 2_000 });
});

afterAll(async () => {
  await stream.close();
  await sim.close();
});

beforeEach(async () => {
  sim.setOptions({ timestampFormat: 'rfc3339', lastPageNext: 'absent', missingFields: 'omit', notReadyForMs: 0, pageLatencyMs: 0 });
  sim.setFaults(undefined);
  await pool().query('truncate participant_sessions, stream_responses, call_sessions');
});

/** A session of `size` entries, ended at `endedAt`: served by the simulator and due in the queue. */
async function seedSession(seed: number, size: number, endedAt = new Date(Date.now() - HOUR_MS)): Promise<SimSession> {
  const truth = generateSession({ seed, size, endedAt });
  sim.addSession(truth);
  await enqueueSimSession(pool(), truth);
  return truth;
}

async function claimOne(id: string, workerId = 'w1'): Promise<ClaimedSession> {
  const claimed = await claimSessions(pool(), { workerId, limit: 100, leaseSeconds: 30 });
  const session = claimed.find((c) => c.callSessionId === id);
  if (!session) throw new Error(`${id} was not claimable`);
  return session;
}

/** The stream client, calling `before(n)` as its n-th page is requested (n from 1). */
function onPageRequest(before: (n: number) => void): StreamClient {
  let pages = 0;
  return {
    ...stream,
    async queryCallParticipantSessions(params) {
      before(++pages);
      return stream.queryCallParticipantSessions(params);
    },
  };
}

/** The stream client, aborting `controller` with `reason` as its `page`-th page is requested. */
const abortingAtPage = (page: number, controller: AbortController, reason: Error): StreamClient =>
  onPageRequest((n) => {
    if (n === page) controller.abort(reason);
  });

/** The stream client, answering 503 for its `page`-th page request and every one after. */
const failingFromPage = (page: number): StreamClient =>
  onPageRequest((n) => {
    if (n >= page)
      throw new StreamApiError('Stream QueryCallParticipantSessions answered 503', {
        operation: 'QueryCallParticipantSessions',
        status: 503,
        failure: 'server',
      });
  });

function run(session: ClaimedSession, overrides: Partial<ArchiveSessionOptions> = {}) {
  return archiveSession({
    pool: pool(),
    stream,
    logger,
    metrics: createMetrics({ defaultMetrics: false }),
    session,
    signal: new AbortController().signal,
    maxAttempts: 3,
    backoff: FAST_BACKOFF,
    pageRetry: FAST_PAGE_RETRY,
    ...overrides,
  });
}

/** V8's full collection, for a test of what a run still holds (node:v8 turns the flag on at run time). */
function collectGarbage(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

/**
 * The pool, counting the page statements sent with the page before them in flight (the most at
 * once), and holding back by `delayMs` the first one whose own lock is `slowKey` on its way to
 * Postgres.
 */
function inFlightPool(slowKey: string, delayMs: number, beforeDelayedSend = () => {}): { pool: pg.Pool; inFlight: { most: number } } {
  const real = pool();
  const inFlight = { now: 0, most: 0 };
  let delayed = false;
  const wrapped = Object.create(real) as pg.Pool;
  wrapped.connect = (async () => {
    const client = await real.connect();
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    return Object.assign(Object.create(client) as pg.PoolClient, {
      query: (...args: unknown[]) => {
        const config = args[0] as { name?: string; values?: unknown[] };
        if (config.name !== 'write-page-in-flight' || typeof args[1] !== 'function') return query(...args);
        const done = args[1] as (...result: unknown[]) => void;
        inFlight.now += 1;
        inFlight.most = Math.max(inFlight.most, inFlight.now);
        const send = () =>
          query(config, (...result: unknown[]) => {
            inFlight.now -= 1;
            done(...result);
          });
        if (!delayed && config.values?.[8] === slowKey) {
          delayed = true;
          setTimeout(() => {
            beforeDelayedSend();
            send();
          }, delayMs);
        } else send();
        return undefined;
      },
      release: client.release.bind(client),
    });
  }) as typeof real.connect;
  return { pool: wrapped, inFlight };
}

describe('archiveSession', () => {
  it('archives a 2,500-entry session exactly and marks it complete', async () => {
    const truth = await seedSession(1, 2500);
    const metrics = createMetrics({ defaultMetrics: false });

    const result = await run(await claimOne(truth.callSessionId), { metrics });

    expect(result).toMatchObject({ status: 'complete', rows: 2500 });
    await expectArchiveMatches(pool(), truth);
    const row = await readSessionRow(pool(), truth.callSessionId);
    expect(row).toMatchObject({
      status: 'complete',
      attempts: 1,
      total_participant_sessions: 2500,
      total_participant_duration: truth.totalParticipantDuration,
      archived_participant_sessions: 2500,
      cursor: null,
      last_error: null,
      lease_owner: null,
      lease_expires_at: null,
    });
    expect(row.archived_at).toBeInstanceOf(Date);
    expect((await metrics.pagesArchived.get()).values[0]?.value).toBe(25);
    expect((await metrics.rowsArchived.get()).values[0]?.value).toBe(2500);
    expect((await metrics.sessionsFinished.get()).values.find((v) => v.labels.status === 'complete')?.value).toBe(1);
  });

  it('archives nanosecond timestamps, an empty-string last next and null optional fields exactly', async () => {
    sim.setOptions({ timestampFormat: 'nanoseconds', lastPageNext: 'empty', missingFields: 'null' });
    const truth = generateSession({ seed: 2, size: 350, endedAt: new Date(Date.now() - HOUR_MS) });
    expect(truth.participants.some((p) => p.left_at === null || p.duration_in_seconds === null)).toBe(true);
    sim.addSession(truth);
    await enqueueSimSession(pool(), truth);

    expect(await run(await claimOne(truth.callSessionId))).toMatchObject({ status: 'complete', rows: 350 });
    await expectArchiveMatches(pool(), truth, { format: 'nanoseconds', missing: 'null' });
  });

  it('a re-run changes nothing: no row is rewritten', async () => {
    const truth = await seedSession(3, 240);
    await run(await claimOne(truth.callSessionId));
    const versions = async () =>
      (await pool().query<{ v: string }>(`select string_agg(xmin::text || ctid::text, ',' order by user_session_id) as v from participant_sessions`)).rows[0]
        ?.v;
    const before = await versions();

    await pool().query(`update call_sessions set status = 'pending', next_attempt_at = now() where call_session_id = $1`, [truth.callSessionId]);
    expect(await run(await claimOne(truth.callSessionId))).toMatchObject({ status: 'complete' });
    expect(await versions()).toBe(before);
    await expectArchiveMatches(pool(), truth);
  });

  it('holds at most four pages at a time: the two being written, the next one being prepared, and the one prefetched', async () => {
    const truth = await seedSession(4, 1200);
    const metrics = createMetrics({ defaultMetrics: false });
    let received = 0;
    let written = 0;
    let mostHeld = 0;
    // Count writes through the metric the run reports each written page to.
    const count = metrics.pagesArchived.inc.bind(metrics.pagesArchived) as (...args: unknown[]) => void;
    metrics.pagesArchived.inc = ((...args: unknown[]) => {
      written += 1;
      count(...args);
    }) as typeof metrics.pagesArchived.inc;
    const counting: StreamClient = {
      ...stream,
      async queryCallParticipantSessions(params): Promise<ParticipantSessionsPage> {
        const page = await stream.queryCallParticipantSessions(params);
        received += 1;
        mostHeld = Math.max(mostHeld, received - written);
        return page;
      },
    };

    expect(await run(await claimOne(truth.callSessionId), { stream: counting, metrics })).toMatchObject({ status: 'complete' });
    expect(written).toBe(12);
    expect(mostHeld).toBeLessThanOrEqual(4);
    // And the overlap is real: more pages did arrive while pages were still being written (how
    // many depends on which is faster here, Stream or the two writes; see pages-in-flight.test.ts).
    expect(mostHeld).toBeGreaterThanOrEqual(3);
  });

  it('writes two pages at once; a page that overtook the page before it is sent again, and the archive is exact', async () => {
    const truth = await seedSession(14, 1500);
    const metrics = createMetrics({ defaultMetrics: false });
    // Page 1's statement reaches Postgres 300 ms late, so page 2's asks for page 1's lock before
    // page 1 has taken it, and finds page 0's cursor stored rather than page 1's.
    const claimed = await claimOne(truth.callSessionId);
    const { pool: slowed, inFlight } = inFlightPool(pageLockKey(leaseOf(claimed), 1), 300);

    const result = await run(claimed, { pool: slowed, metrics });
    expect(result).toMatchObject({ status: 'complete', rows: 1500 });
    await expectArchiveMatches(pool(), truth);
    expect(inFlight.most).toBe(2);
    expect((await metrics.pagesRewritten.get()).values[0]?.value).toBeGreaterThanOrEqual(1);
    expect((await metrics.pagesArchived.get()).values[0]?.value).toBe(15);
    expect(await readSessionRow(pool(), truth.callSessionId)).toMatchObject({ status: 'complete', archived_participant_sessions: 1500, cursor: null });
  });

  it('holds a page in flight as its statement and counts, not as the page Stream sent', async () => {
    // A parsed page held until its write settles lives through several young-generation
    // collections and is promoted: the old generation then grows by about a page per page
    // (bench/RESULTS.md, peak RSS). Page 0's write is held back while pages 1 and 2 arrive.
    const gc = collectGarbage();
    const truth = await seedSession(16, 300);
    const received: WeakRef<ParticipantSessionsPage>[] = [];
    const recording: StreamClient = {
      ...stream,
      async queryCallParticipantSessions(params) {
        const page = await stream.queryCallParticipantSessions(params);
        received.push(new WeakRef(page));
        return page;
      },
    };
    const claimed = await claimOne(truth.callSessionId);
    let atDelayedSend: { readonly received: number; readonly firstHeld: boolean } | undefined;
    const { pool: slowed } = inFlightPool(pageLockKey(leaseOf(claimed), 0), 300, () => {
      gc();
      atDelayedSend = { received: received.length, firstHeld: received[0]?.deref() !== undefined };
    });

    expect(await run(claimed, { pool: slowed, stream: recording })).toMatchObject({ status: 'complete', rows: 300 });
    // Every page had arrived while page 0 was still to be written, and page 0's was collected.
    expect(atDelayedSend).toEqual({ received: 3, firstHeld: false });
    await expectArchiveMatches(pool(), truth);
  });

  it('resumes from the stored cursor and still verifies against the totals', async () => {
    const truth = await seedSession(5, 450);
    // A first run that gets through two pages and then loses its lease.
    const controller = new AbortController();
    const stopping = abortingAtPage(3, controller, new LeaseLostError(truth.callSessionId));
    const first = await run(await claimOne(truth.callSessionId), { stream: stopping, signal: controller.signal });
    expect(first.status).toBe('lease_lost');
    const stopped = await readSessionRow(pool(), truth.callSessionId);
    expect(stopped.cursor).not.toBeNull();
    const heldAfterFirst = (await pool().query<{ n: number }>('select count(*)::int as n from participant_sessions')).rows[0]?.n;
    expect(heldAfterFirst).toBeGreaterThan(0);
    expect(heldAfterFirst).toBeLessThan(450);

    // The next run (after the lease lapsed) starts at the cursor, not at page one.
    await pool().query(`update call_sessions set lease_expires_at = now() - interval '1 second' where call_session_id = $1`, [truth.callSessionId]);
    const requests: (string | undefined)[] = [];
    const recording: StreamClient = {
      ...stream,
      async queryCallParticipantSessions(params) {
        requests.push(params.next);
        return stream.queryCallParticipantSessions(params);
      },
    };
    const second = await run(await claimOne(truth.callSessionId, 'w2'), { stream: recording });
    expect(second).toMatchObject({ status: 'complete' });
    expect(requests[0]).toBe(stopped.cursor);
    expect(requests.length).toBe(5 - Math.floor(heldAfterFirst! / 100));
    await expectArchiveMatches(pool(), truth);
    expect(await readSessionRow(pool(), truth.callSessionId)).toMatchObject({ attempts: 2, status: 'complete' });
  });

  it('hands the session back, cursor kept and attempt returned, when the worker stops', async () => {
    const truth = await seedSession(6, 600);
    const controller = new AbortController();
    const stopping = abortingAtPage(3, controller, new WorkerStoppingError());
    const result = await run(await claimOne(truth.callSessionId), { stream: stopping, signal: controller.signal });
    expect(result.status).toBe('released');
    const row = await readSessionRow(pool(), truth.callSessionId);
    expect(row).toMatchObject({ status: 'pending', attempts: 0, lease_owner: null });
    expect(row.cursor).not.toBeNull();
  });

  it("notes a summed duration that differs from Stream's total, and still completes", async () => {
    const truth = generateSession({ seed: 7, size: 30, endedAt: new Date(Date.now() - HOUR_MS) });
    const skewed = { ...truth, totalParticipantDuration: truth.totalParticipantDuration + 17 };
    sim.addSession(skewed);
    await enqueueSimSession(pool(), skewed);
    expect(await run(await claimOne(truth.callSessionId))).toMatchObject({ status: 'complete' });
    const row = await readSessionRow(pool(), truth.callSessionId);
    expect(row.status).toBe('complete');
    expect(row.total_participant_duration).toBe(truth.totalParticipantDuration + 17);
    expect(row.last_error).toContain(`${truth.totalParticipantDuration} s`);
    expect(row.last_error).toContain(`${truth.totalParticipantDuration + 17} s`);
  });

  it('a count that does not match is retried from the first page, and dead at the attempt limit', async () => {
    const truth = generateSession({ seed: 8, size: 120, endedAt: new Date(Date.now() - HOUR_MS) });
    // Stream reporting one entry twice: its total says 121, the archive can only ever hold 120.
    const doubled = { ...truth, participants: [...truth.participants, { ...truth.participants[5]! }] };
    sim.addSession(doubled);
    await enqueueSimSession(pool(), doubled);

    const statuses: string[] = [];
    for (let attempt = 1; attempt <= 3; attempt += 1) {
      await pool().query(`update call_sessions set next_attempt_at = now() where call_session_id = $1`, [truth.callSessionId]);
      const result = await run(await claimOne(truth.callSessionId));
      statuses.push(result.status);
      const row = await readSessionRow(pool(), truth.callSessionId);
      expect(row.cursor).toBeNull();
      expect(row.last_error).toContain('holds 120 participant sessions but Stream reports 121 (-1)');
      expect(row.archived_participant_sessions).toBe(120);
      if (attempt < 3) expect(row.next_attempt_at.getTime()).toBeGreaterThan(Date.now() - 1_000);
    }
    expect(statuses).toEqual(['retrying', 'retrying', 'dead']);
    const row = await readSessionRow(pool(), truth.callSessionId);
    expect(row).toMatchObject({ status: 'dead', attempts: 3, total_participant_sessions: 121 });
    expect(row.last_error).toMatch(/^gave up after 3 attempts; last error: holds 120/);
  });

  it('a page lost after it was written (a failover to a replica it had not reached) is archived again from the first page', async () => {
    const truth = await seedSession(22, 700);
    // Page 6 is asked for only after page 2's write has returned (two writes in flight, one page
    // ahead): its rows then vanish, as a page acknowledged by a primary and missing from the
    // replica promoted after it does, while the run goes on writing pages 3 to 7.
    const lost = truth.participants.slice(100, 200).map((p) => p.user_session_id);
    let requests = 0;
    const losing: StreamClient = {
      ...stream,
      async queryCallParticipantSessions(params) {
        requests += 1;
        if (requests === 6) {
          const gone = await pool().query('delete from participant_sessions where call_session_id = $1 and user_session_id = any($2)', [
            truth.callSessionId,
            lost,
          ]);
          expect(gone.rowCount).toBe(100);
        }
        return stream.queryCallParticipantSessions(params);
      },
    };
    const first = await run(await claimOne(truth.callSessionId), { stream: losing });
    expect(first.status).toBe('retrying');
    const after = await readSessionRow(pool(), truth.callSessionId);
    expect(after.cursor).toBeNull();
    expect(after.last_error).toContain('holds 600 participant sessions but Stream reports 700');

    await pool().query(`update call_sessions set next_attempt_at = now() where call_session_id = $1`, [truth.callSessionId]);
    expect(await run(await claimOne(truth.callSessionId))).toMatchObject({ status: 'complete' });
    await expectArchiveMatches(pool(), truth);
  });

  it('a run that archived pages before failing gives its attempt back, even at the limit, and the next resumes', async () => {
    const truth = await seedSession(21, 450);
    // Two attempts spent already: this claim is the third and last of maxAttempts 3.
    await pool().query(`update call_sessions set attempts = 2 where call_session_id = $1`, [truth.callSessionId]);
    const claimed = await claimOne(truth.callSessionId);
    expect(claimed.attempts).toBe(3);

    // Pages 1 and 2 are written; page 3 keeps failing past the page retries.
    expect(await run(claimed, { stream: failingFromPage(3) })).toMatchObject({ status: 'retrying', rows: 200 });
    const after = await readSessionRow(pool(), truth.callSessionId);
    expect(after).toMatchObject({ status: 'retrying', attempts: 2, archived_participant_sessions: 200 });
    expect(after.cursor).not.toBeNull();
    expect(after.last_error).toContain('answered 503');

    await pool().query(`update call_sessions set next_attempt_at = now() where call_session_id = $1`, [truth.callSessionId]);
    const resumed = await claimOne(truth.callSessionId);
    expect(resumed).toMatchObject({ attempts: 3, cursor: after.cursor });
    expect(await run(resumed)).toMatchObject({ status: 'complete', rows: 250 });
    await expectArchiveMatches(pool(), truth);
  });

  it('a run that archived nothing before failing spends its attempt: dead at the limit', async () => {
    const truth = await seedSession(22, 450);
    await pool().query(`update call_sessions set attempts = 2 where call_session_id = $1`, [truth.callSessionId]);
    expect(await run(await claimOne(truth.callSessionId), { stream: failingFromPage(1) })).toMatchObject({ status: 'dead', rows: 0 });
    const row = await readSessionRow(pool(), truth.callSessionId);
    expect(row).toMatchObject({ status: 'dead', attempts: 3 });
    expect(row.last_error).toMatch(/^gave up after 3 attempts; last error: .*answered 503/);
  });

  it('an empty list with a non-zero total after day 90 is expired, not "no attendees"', async () => {
    const truth = await seedSession(9, 40, new Date(Date.now() - 95 * DAY_MS));
    expect(await run(await claimOne(truth.callSessionId))).toMatchObject({ status: 'expired', rows: 0 });
    const row = await readSessionRow(pool(), truth.callSessionId);
    expect(row).toMatchObject({ status: 'expired', total_participant_sessions: 40, archived_participant_sessions: 0, archived_at: null });
    expect(row.last_error).toContain('retention');
  });

  it('an empty session (total 0) is simply complete', async () => {
    const truth = await seedSession(10, 0, new Date(Date.now() - 95 * DAY_MS));
    expect(await run(await claimOne(truth.callSessionId))).toMatchObject({ status: 'complete', rows: 0 });
  });

  it('401 makes the session dead at once, with the reason', async () => {
    const truth = await seedSession(11, 10);
    const wrongSecret = createStreamClient({ baseUrl: sim.url, apiKey: API_KEY, apiSecret: 'not-the-secret' });
    try {
      expect(await run(await claimOne(truth.callSessionId), { stream: wrongSecret })).toMatchObject({ status: 'dead' });
    } finally {
      await wrongSecret.close();
    }
    const row = await readSessionRow(pool(), truth.callSessionId);
    expect(row).toMatchObject({ status: 'dead', attempts: 1 });
    expect(row.last_error).toContain('answered 401');
    expect(row.last_error).not.toContain('not-the-secret');
  });

  it('404 right after the call is retried on the gentler not-ready schedule', async () => {
    sim.setOptions({ notReadyForMs: 60_000 });
    const truth = await seedSession(12, 10, new Date());
    expect(await run(await claimOne(truth.callSessionId), { backoff: { ...FAST_BACKOFF, notReadyBaseMs: 30_000, notReadyCapMs: 30_000 } })).toMatchObject({
      status: 'retrying',
    });
    const row = await readSessionRow(pool(), truth.callSessionId);
    expect(row.last_error).toContain('answered 404');
    // Full jitter between a fifth of the bound and the bound: 6–30 s away.
    const dueIn = row.next_attempt_at.getTime() - Date.now();
    expect(dueIn).toBeGreaterThan(4_000);
    expect(dueIn).toBeLessThanOrEqual(30_000);
  });

  it('a lost lease stops the run without writing anything more', async () => {
    const truth = await seedSession(13, 500);
    const session = await claimOne(truth.callSessionId);
    // Another worker takes the session over after page 1 is written, while page 2 is on its way.
    let pages = 0;
    const takeover: StreamClient = {
      ...stream,
      async queryCallParticipantSessions(params) {
        pages += 1;
        const page = await stream.queryCallParticipantSessions(params);
        if (pages === 2) {
          await waitFor('page 1 written', async () => (await pool().query('select 1 from participant_sessions limit 1')).rowCount === 1);
          await pool().query(`update call_sessions set lease_owner = 'w2' where call_session_id = $1`, [truth.callSessionId]);
        }
        return page;
      },
    };
    const result = await run(session, { stream: takeover });
    expect(result.status).toBe('lease_lost');
    const row = await readSessionRow(pool(), truth.callSessionId);
    expect(row).toMatchObject({ status: 'running', lease_owner: 'w2', attempts: 1 });
    const held = (await pool().query<{ n: number }>('select count(*)::int as n from participant_sessions')).rows[0]?.n;
    expect(held).toBe(100);
  });
});
