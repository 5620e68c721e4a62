import { randomUUID } from 'node:crypto';
import { startSilentServer } from '../helpers/silent-server.ts';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../src/db/client.ts';
import { EnqueueTimeoutError, createWebhookEnqueuer, type WebhookEventToEnqueue } from '../../src/queue/enqueue.ts';
import { SESSIONS_DUE_CHANNEL } from '../../src/queue/sql.ts';
import { MAX_WEBHOOK_JSON_DEPTH, parseWebhookEvent, type HandledWebhookEvent } from '../../src/stream/webhook-events.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { sessionEndedBody, statsReportReadyBody, createWebhookTestApp, deliverWebhook, listenForNotifications } from '../helpers/webhooks.ts';

const testDb = useTestDatabase();
const DEADLINE_MS = 4_500;
// Events whose webhook id starts with this fail at commit (a deferred trigger, installed below).
const FAIL_AT_COMMIT = 'fail-at-commit-';

function toEnqueue(body: Record<string, unknown>, webhookId: string = randomUUID()): WebhookEventToEnqueue {
  return { webhookId, attempt: 1, event: parseWebhookEvent(body) as HandledWebhookEvent, bodyText: JSON.stringify(body), payload: body };
}

/** The test pool, counting the statements sent through it. */
function countingPool(): { pool: pg.Pool; statements: () => number } {
  const pool = testDb.current.database.pool;
  let statements = 0;
  const counted = new Proxy(pool, {
    get(target, key, receiver) {
      if (key === 'query') {
        return (...args: Parameters<pg.Pool['query']>) => {
          statements += 1;
          return (target.query as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
  return { pool: counted, statements: () => statements };
}

async function count(sql: string, values: unknown[]): Promise<number> {
  const { rows } = await testDb.current.database.pool.query<{ n: number }>(sql, values);
  return rows[0]!.n;
}

beforeAll(async () => {
  await testDb.current.database.pool.query(`
    create function fail_marked_webhook() returns trigger language plpgsql as $$
    begin
      if new.webhook_id like '${FAIL_AT_COMMIT}%' then raise exception 'refused at commit'; end if;
      return null;
    end $$;
    create constraint trigger fail_marked_webhook after insert on webhook_events
      deferrable initially deferred for each row execute function fail_marked_webhook();`);
});

describe('createWebhookEnqueuer: group commit', () => {
  it('stores concurrent distinct events in fewer statements than events, each answered stored and due', async () => {
    const { pool, statements } = countingPool();
    const enqueuer = createWebhookEnqueuer(pool, { deadlineMs: DEADLINE_MS, maxInFlight: 1 });
    const sessionIds = Array.from({ length: 40 }, () => randomUUID());
    const results = await Promise.all(sessionIds.map((sessionId) => enqueuer.enqueue(toEnqueue(statsReportReadyBody({ sessionId })))));
    expect(results).toEqual(Array(40).fill({ stored: true, due: true }));
    expect(statements()).toBeLessThan(40);
    expect(await count('select count(*)::int as n from webhook_events where session_id = any($1)', [sessionIds])).toBe(40);
    expect(await count(`select count(*)::int as n from call_sessions where call_session_id = any($1) and status = 'pending'`, [sessionIds])).toBe(40);
  });

  it('sends one NOTIFY per batch, naming one of the sessions it made due', async () => {
    const enqueuer = createWebhookEnqueuer(testDb.current.database.pool, { deadlineMs: DEADLINE_MS, maxInFlight: 1 });
    const listener = await listenForNotifications(testDb.current.url, SESSIONS_DUE_CHANNEL);
    try {
      const sessionIds = Array.from({ length: 10 }, () => randomUUID());
      await Promise.all(sessionIds.map((sessionId) => enqueuer.enqueue(toEnqueue(statsReportReadyBody({ sessionId })))));
      expect(sessionIds).toContain(await listener.next());
      const later = randomUUID();
      await enqueuer.enqueue(toEnqueue(statsReportReadyBody({ sessionId: later })));
      // Notifications arrive in commit order, so the batch sent no second one.
      expect(await listener.next()).toBe(later);
    } finally {
      await listener.close();
    }
  });

  it('answers every copy of an id repeated in one batch after the commit: one stored, the rest duplicate', async () => {
    const enqueuer = createWebhookEnqueuer(testDb.current.database.pool, { deadlineMs: DEADLINE_MS, maxInFlight: 1 });
    const sessionId = randomUUID();
    const webhookId = randomUUID();
    const body = statsReportReadyBody({ sessionId });
    const others = Array.from({ length: 5 }, () => toEnqueue(statsReportReadyBody()));
    const results = await Promise.all([
      ...Array.from({ length: 10 }, () => enqueuer.enqueue(toEnqueue(body, webhookId))),
      ...others.map((input) => enqueuer.enqueue(input)),
    ]);
    const copies = results.slice(0, 10);
    expect(copies.filter((r) => r.stored)).toHaveLength(1);
    expect(copies.filter((r) => !r.stored && !r.due)).toHaveLength(9);
    expect(results.slice(10).every((r) => r.stored)).toBe(true);
    expect(await count('select count(*)::int as n from webhook_events where webhook_id = $1', [webhookId])).toBe(1);
    expect(await count('select count(*)::int as n from call_sessions where call_session_id = $1', [sessionId])).toBe(1);
  });

  it('answers an id already stored by an earlier batch as a duplicate', async () => {
    const enqueuer = createWebhookEnqueuer(testDb.current.database.pool, { deadlineMs: DEADLINE_MS });
    const input = toEnqueue(statsReportReadyBody());
    expect(await enqueuer.enqueue(input)).toEqual({ stored: true, due: true });
    expect(await Promise.all([enqueuer.enqueue(input), enqueuer.enqueue(input)])).toEqual([
      { stored: false, due: false },
      { stored: false, due: false },
    ]);
  });

  it('folds several events for one session in a batch as consecutive statements would', async () => {
    const enqueuer = createWebhookEnqueuer(testDb.current.database.pool, { deadlineMs: DEADLINE_MS, maxInFlight: 1 });
    const sessionId = randomUUID();
    const reports = ['2026-04-08T14:00:00Z', '2026-04-08T15:00:00Z', '2026-04-08T14:30:00Z'].map((createdAt) =>
      toEnqueue(statsReportReadyBody({ sessionId, createdAt })),
    );
    const ends = ['2026-04-08T13:00:00Z', '2026-04-08T13:30:00Z'].map((endedAt) => toEnqueue(sessionEndedBody({ sessionId, endedAt })));
    const results = await Promise.all([...ends, ...reports].map((input) => enqueuer.enqueue(input)));
    expect(results.every((r) => r.stored)).toBe(true);
    const { rows } = await testDb.current.database.pool.query<{
      status: string;
      stats_report_ready_at: Date;
      session_ended_at: Date;
      retention_expires_at: Date;
      due: boolean;
    }>(
      'select status, stats_report_ready_at, session_ended_at, retention_expires_at, next_attempt_at <= now() as due from call_sessions where call_session_id = $1',
      [sessionId],
    );
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    // The newest report wins (a later delivery of an older one would be a replay); the first
    // session_ended sets the end, and the 90 days count from it.
    expect(row.stats_report_ready_at.toISOString()).toBe('2026-04-08T15:00:00.000Z');
    expect(row.session_ended_at.toISOString()).toBe('2026-04-08T13:00:00.000Z');
    expect(row.retention_expires_at.toISOString()).toBe('2026-07-07T13:00:00.000Z');
    expect(row.status).toBe('pending');
    expect(row.due).toBe(true);
    expect(await count('select count(*)::int as n from webhook_events where session_id = $1', [sessionId])).toBe(5);
  });

  it('fails every event of a batch whose commit fails, and stores none of them', async () => {
    const enqueuer = createWebhookEnqueuer(testDb.current.database.pool, { deadlineMs: DEADLINE_MS, maxInFlight: 1 });
    const failing = toEnqueue(statsReportReadyBody(), `${FAIL_AT_COMMIT}${randomUUID()}`);
    const partners = Array.from({ length: 4 }, () => toEnqueue(statsReportReadyBody()));
    const outcomes = await Promise.allSettled([failing, ...partners].map((input) => enqueuer.enqueue(input)));
    expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
    const ids = [failing, ...partners].map((i) => i.webhookId);
    expect(await count('select count(*)::int as n from webhook_events where webhook_id = any($1)', [ids])).toBe(0);
    // The enqueuer goes on working after a failed batch.
    expect((await enqueuer.enqueue(toEnqueue(statsReportReadyBody()))).stored).toBe(true);
  });

  it('fails only the event Postgres refuses when a batch holds one (retried one by one)', async () => {
    const enqueuer = createWebhookEnqueuer(testDb.current.database.pool, { deadlineMs: DEADLINE_MS, maxInFlight: 1 });
    // A NUL in the session id: valid JSON, refused by Postgres text (SQLSTATE 22021).
    const badInput = toEnqueue(statsReportReadyBody({ sessionId: 'cs-\u0000-bad' }));
    const good = Array.from({ length: 4 }, () => toEnqueue(statsReportReadyBody()));
    const outcomes = await Promise.allSettled([badInput, ...good].map((input) => enqueuer.enqueue(input)));
    expect(outcomes[0]!.status).toBe('rejected');
    expect((outcomes[0] as PromiseRejectedResult).reason).toMatchObject({ code: expect.stringMatching(/^22/) });
    expect(outcomes.slice(1).every((o) => o.status === 'fulfilled' && o.value.stored)).toBe(true);
    expect(await count('select count(*)::int as n from webhook_events where webhook_id = any($1)', [good.map((g) => g.webhookId)])).toBe(4);
  });
});

/** A stats_report_ready input whose stored body nests `depth` arrays: valid JSON that Postgres refuses with 54001 when deep enough. */
function deeplyNested(depth: number): WebhookEventToEnqueue {
  const body = statsReportReadyBody();
  const bodyText = `${JSON.stringify(body).slice(0, -1)},"deep":${'['.repeat(depth)}${']'.repeat(depth)}}`;
  return { webhookId: randomUUID(), attempt: 1, event: parseWebhookEvent(body) as HandledWebhookEvent, bodyText, payload: JSON.parse(bodyText) };
}

describe('createWebhookEnqueuer: an event Postgres refuses for its content fails alone', () => {
  it('answers the other events of the batch stored when one is nested 100,000 deep (54001), splitting rather than one statement each', async () => {
    const { pool, statements } = countingPool();
    const enqueuer = createWebhookEnqueuer(pool, { deadlineMs: DEADLINE_MS, maxInFlight: 1 });
    const deep = deeplyNested(100_000);
    const good = Array.from({ length: 60 }, () => toEnqueue(statsReportReadyBody()));
    // Enqueued in one turn of the event loop, so all 61 share one batch.
    const outcomes = await Promise.allSettled([good[0]!, deep, ...good.slice(1)].map((input) => enqueuer.enqueue(input)));
    expect(outcomes[1]!.status).toBe('rejected');
    expect((outcomes[1] as PromiseRejectedResult).reason).toMatchObject({ code: expect.stringMatching(/^54/) });
    const others = [outcomes[0]!, ...outcomes.slice(2)];
    expect(others.filter((o) => o.status === 'fulfilled' && o.value.stored && o.value.due)).toHaveLength(60);
    expect(await count('select count(*)::int as n from webhook_events where webhook_id = any($1)', [good.map((g) => g.webhookId)])).toBe(60);
    expect(await count('select count(*)::int as n from webhook_events where webhook_id = $1', [deep.webhookId])).toBe(0);
    // The failed batch, then about 2·log2(61) halves, not 61 statements.
    expect(statements()).toBeLessThanOrEqual(1 + 2 * Math.ceil(Math.log2(61)));
  });

  it('fails exactly the two refused events of a batch holding a 54001 and a 22021, and stores the rest', async () => {
    const enqueuer = createWebhookEnqueuer(testDb.current.database.pool, { deadlineMs: DEADLINE_MS, maxInFlight: 1 });
    const first = toEnqueue(statsReportReadyBody());
    const deep = deeplyNested(100_000);
    const nul = toEnqueue(statsReportReadyBody({ sessionId: 'cs-\u0000-bad' }));
    const good = Array.from({ length: 20 }, () => toEnqueue(statsReportReadyBody()));
    const inputs = [first, ...good.slice(0, 7), deep, ...good.slice(7, 15), nul, ...good.slice(15)];
    const outcomes = await Promise.allSettled(inputs.map((input) => enqueuer.enqueue(input)));
    const rejected = inputs.filter((_, i) => outcomes[i]!.status === 'rejected');
    expect(rejected).toEqual([deep, nul]);
    expect(await count('select count(*)::int as n from webhook_events where webhook_id = any($1)', [[first, ...good].map((g) => g.webhookId)])).toBe(21);
  });

  it('accepts an event nested at the intake limit: only deeper nesting is refused', async () => {
    const enqueuer = createWebhookEnqueuer(testDb.current.database.pool, { deadlineMs: DEADLINE_MS });
    expect((await enqueuer.enqueue(deeplyNested(MAX_WEBHOOK_JSON_DEPTH - 1))).stored).toBe(true);
  });
});

describe('createWebhookEnqueuer: failures', () => {
  it('fails every copy of an id when that event is the one Postgres refuses', async () => {
    const enqueuer = createWebhookEnqueuer(testDb.current.database.pool, { deadlineMs: DEADLINE_MS, maxInFlight: 1 });
    const bad = toEnqueue(statsReportReadyBody({ sessionId: 'cs-\u0000-bad' }));
    const good = toEnqueue(statsReportReadyBody());
    const outcomes = await Promise.allSettled([bad, bad, good].map((input) => enqueuer.enqueue(input)));
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
    expect(await count('select count(*)::int as n from webhook_events where webhook_id = any($1)', [[bad.webhookId, good.webhookId]])).toBe(1);
  });

  it('does not send events whose callers gave up while the database was stuck', async () => {
    const silent = await startSilentServer();
    const database = createDatabase(`postgres://postgres@127.0.0.1:${silent.port}/none`, { connectionTimeoutMillis: 400 });
    const statements: Promise<unknown>[] = [];
    const counted = new Proxy(database.pool, {
      get(target, key, receiver) {
        if (key === 'query') {
          return (...args: unknown[]) => {
            const sent = (target.query as (...a: unknown[]) => Promise<unknown>).apply(target, args);
            statements.push(sent.catch(() => undefined));
            return sent;
          };
        }
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    try {
      const enqueuer = createWebhookEnqueuer(counted, { deadlineMs: 150, maxInFlight: 1 });
      const first = enqueuer.enqueue(toEnqueue(statsReportReadyBody()));
      await nextTurn();
      const later = Array.from({ length: 5 }, () => enqueuer.enqueue(toEnqueue(statsReportReadyBody())));
      for (const answer of [first, ...later]) await expect(answer).rejects.toBeInstanceOf(EnqueueTimeoutError);
      expect(statements).toHaveLength(1);
      // The stuck statement fails when the pool gives up connecting; the queue is looked at again then.
      await statements[0];
      await nextTurn();
      await nextTurn();
      expect(statements).toHaveLength(1);
    } finally {
      await silent.close();
      await database.close();
    }
  });
});

describe('POST /webhooks/stream with group commit', () => {
  let app: Awaited<ReturnType<typeof createWebhookTestApp>>['app'];
  beforeAll(async () => {
    ({ app } = await createWebhookTestApp(testDb.current.database));
  });
  afterAll(async () => {
    await app.close();
  });

  it('answers 200 to each of many concurrent distinct deliveries, every one stored', async () => {
    const bodies = Array.from({ length: 60 }, (_, i) => (i % 3 === 0 ? sessionEndedBody() : statsReportReadyBody()));
    const answers = await Promise.all(bodies.map((body) => deliverWebhook(app, body)));
    expect(answers.map((a) => a.statusCode)).toEqual(Array(60).fill(200));
    expect(answers.every((a) => (a.json() as { status: string }).status === 'stored')).toBe(true);
    const sessionIds = bodies.map((b) => b.session_id as string);
    expect(await count('select count(*)::int as n from webhook_events where session_id = any($1)', [sessionIds])).toBe(60);
  });

  it('answers 503 when its batch fails to commit, and stores exactly the deliveries answered 200', async () => {
    const ids = [`${FAIL_AT_COMMIT}${randomUUID()}`, ...Array.from({ length: 5 }, () => randomUUID())];
    // Those sharing the failing one's batch answer 503 with it (Stream retries them); any later batch commits.
    const answers = await Promise.all(ids.map((webhookId) => deliverWebhook(app, statsReportReadyBody(), { webhookId })));
    expect(answers[0]!.statusCode).toBe(503);
    for (const answer of answers) expect([200, 503]).toContain(answer.statusCode);
    const stored = answers.filter((a) => a.statusCode === 200).length;
    expect(await count('select count(*)::int as n from webhook_events where webhook_id = any($1)', [ids])).toBe(stored);
  });
});
