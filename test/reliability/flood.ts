/**
 * A flood of GET requests from its own process, so the client's own event loop, busy with hundreds
 * of answers, cannot add to the latencies the test measures for the requests it cares about.
 * `node bin/run-ts.js test/reliability/flood.ts '<json FloodPlan>'`; prints one JSON FloodReport line.
 */
import { Pool } from 'undici';

export interface FloodPlan {
  readonly url: string;
  readonly waves: number;
  /** Each wave sends `parallel` copies of each target at once. */
  readonly targets: readonly { readonly path: string; readonly headers?: Record<string, string>; readonly parallel: number }[];
}

/** Per target path: answers by status, and how many 503s lacked Retry-After. */
export type FloodReport = Record<string, { statuses: Record<string, number>; withoutRetryAfter: number; failed: number }>;

const plan = JSON.parse(process.argv[2] ?? '{}') as FloodPlan;
const pool = new Pool(plan.url, { connections: plan.targets.reduce((n, t) => n + t.parallel, 0) });
const report: FloodReport = {};

const get = async (path: string, headers: Record<string, string> = {}) => {
  const key = path.split('?')[0]!;
  report[key] ??= { statuses: {}, withoutRetryAfter: 0, failed: 0 };
  const entry = report[key];
  try {
    const response = await pool.request({ path, method: 'GET', headers });
    await response.body.text();
    entry.statuses[response.statusCode] = (entry.statuses[response.statusCode] ?? 0) + 1;
    if (response.statusCode === 503 && response.headers['retry-after'] === undefined) entry.withoutRetryAfter++;
  } catch {
    entry.failed++;
  }
};

for (let wave = 0; wave < plan.waves; wave++) {
  await Promise.all(plan.targets.flatMap((t) => Array.from({ length: t.parallel }, () => get(t.path, t.headers))));
}
await pool.close();
process.stdout.write(`${JSON.stringify(report)}\n`);
