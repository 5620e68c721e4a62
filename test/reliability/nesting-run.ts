import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { generateSession } from '../../tools/simulator/generate.ts';
import { buildSessionEndedEvent } from '../../tools/simulator/webhooks.ts';
import type { HostileKeys } from './hostile-requests.ts';
import { countStatuses, postSignedWebhook } from './signed-post.ts';

export interface NestingPlan {
  readonly serveUrl: string;
  readonly keys: HostileKeys;
  /** The service's database, to see what was stored. */
  readonly pool: pg.Pool;
  /** Legitimate webhooks sent at the same moment as the deep one. */
  readonly legitimate: number;
  /** Array nesting of the hostile event's extra field. */
  readonly depth: number;
}

export interface NestingReport {
  readonly legitimateStatuses: Record<string, number>;
  readonly deepStatus: number;
  readonly legitimateStored: number;
  readonly deepStored: boolean;
  readonly seconds: number;
}

/**
 * One signed event nested `depth` deep among `legitimate` concurrent signed webhooks. Postgres
 * refuses jsonb that deep (54001); before issue 15 it failed its whole group-commit batch with 503
 * (the red team: 60 of 61). The legitimate events are call.session_ended, so they enqueue sessions
 * that wait for their report and cost no Stream call while other scenarios count them.
 */
export async function runNestingScenario(plan: NestingPlan): Promise<NestingReport> {
  const legitimate = Array.from({ length: plan.legitimate }, (_, i) => ({
    id: randomUUID(),
    body: Buffer.from(JSON.stringify(buildSessionEndedEvent(generateSession({ seed: `nesting-${i}`, size: 1 + (i % 5) })))),
  }));
  const deepEvent = JSON.stringify(buildSessionEndedEvent(generateSession({ seed: 'nesting-deep', size: 1 })));
  const deep = { id: randomUUID(), body: Buffer.from(`${deepEvent.slice(0, -1)},"deep":${'['.repeat(plan.depth)}${']'.repeat(plan.depth)}}`) };
  // The deep one in the middle, so it lands inside a batch rather than first or last.
  const half = Math.floor(plan.legitimate / 2);
  const all = [...legitimate.slice(0, half), deep, ...legitimate.slice(half)];
  const started = performance.now();
  const statuses = await Promise.all(all.map((w) => postSignedWebhook(plan.serveUrl, plan.keys, w.body, w.id)));
  const seconds = (performance.now() - started) / 1000;
  const stored = new Set(
    (await plan.pool.query<{ id: string }>('select webhook_id as id from webhook_events where webhook_id = any($1)', [all.map((w) => w.id)])).rows.map(
      (r) => r.id,
    ),
  );
  return {
    legitimateStatuses: countStatuses(statuses.filter((_, i) => all[i] !== deep)),
    deepStatus: statuses[all.indexOf(deep)]!,
    legitimateStored: legitimate.filter((w) => stored.has(w.id)).length,
    deepStored: stored.has(deep.id),
    seconds,
  };
}
