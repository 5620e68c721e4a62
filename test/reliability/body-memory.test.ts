import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { formatBodyMemory, runBodyMemoryScenario } from './body-memory-run.ts';
import { createServeSupervisor, type ServeSupervisor } from './serve-process.ts';

const API_KEY = 'memory-key';
const API_SECRET = 'memory-secret-0123456789';
// The red-team run (issue 15): 800 connections each sending 1 MiB − 1 byte, unauthenticated,
// took RSS from 416 to 923 MiB and left it at 945 MiB. Already the size; `npm run chaos` runs it too.
const UPLOADS = 800;
const UPLOAD_BYTES = 1024 * 1024 - 1;
const PEAK_LIMIT_MIB = 300;
// /healthz must answer inside the liveness probe's timeout of the shipped manifest, or an
// orchestrator would restart a service that is only busy refusing uploads. Seen here: 250–300 ms on
// a quiet machine, up to 2.1 s with another test file's load on both cores.
const HEALTH_LIMIT_MS = livenessTimeoutMs();

function livenessTimeoutMs(): number {
  const manifest = parse(readFileSync(new URL('../../deploy/kubernetes/serve-deployment.yaml', import.meta.url), 'utf8'));
  const seconds = manifest.spec.template.spec.containers[0].livenessProbe.timeoutSeconds;
  if (typeof seconds !== 'number') throw new Error('serve-deployment.yaml has no livenessProbe.timeoutSeconds');
  return seconds * 1_000;
}
// Every body the server accepts is in its memory at once, as with the red team's senders.
const HOLD_LAST_BYTE_MS = 2_000;
const SETTLE_MS = 2_000;

describe('request bodies in memory are bounded', () => {
  const test = useTestDatabase();
  let sim: Simulator;
  let serve: ServeSupervisor;

  beforeAll(async () => {
    sim = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET });
    serve = await createServeSupervisor({
      DATABASE_URL: test.current.url,
      STREAM_API_KEY: API_KEY,
      STREAM_API_SECRET: API_SECRET,
      STREAM_BASE_URL: sim.url,
      LOG_LEVEL: 'info',
      RECONCILE_INTERVAL_MINUTES: '0',
    });
    await serve.start();
  }, 60_000);

  afterAll(async () => {
    await serve?.stop();
    await sim?.close();
  });

  it(`800 concurrent 1 MiB uploads keep peak RSS under ${PEAK_LIMIT_MIB} MiB, /healthz answers throughout, memory returns near idle`, async () => {
    const plan = { serve, apiKey: API_KEY, uploads: UPLOADS, bytes: UPLOAD_BYTES, holdLastByteMs: HOLD_LAST_BYTE_MS, settleMs: SETTLE_MS };
    const report = await runBodyMemoryScenario(plan);
    const { idle, peak, after, health } = report;
    const byStatus = report.uploads.statuses;
    console.log(`body memory: ${formatBodyMemory(plan, report)}`);

    expect(peak.peakMiB).toBeLessThan(PEAK_LIMIT_MIB);
    // An unsigned upload is read and refused with 401, or refused unread with 503 and Retry-After.
    expect(Object.keys(byStatus).filter((s) => s !== '401' && s !== '503' && s !== 'reset')).toEqual([]);
    expect(report.uploads.withoutRetryAfter).toBe(0);
    expect(byStatus['503'] ?? 0).toBeGreaterThan(0);
    expect(health.length).toBeGreaterThan(0);
    expect(health.filter((h) => h.status !== 200)).toEqual([]);
    expect(Math.max(...health.map((h) => h.ms))).toBeLessThan(HEALTH_LIMIT_MS);
    // Near idle: what stays is freed heap the allocator keeps;
    // without the budget 430 MiB stayed (idle 134, peak 582, 564 MiB 2 s later).
    expect(after.rssMiB).toBeLessThan(idle.rssMiB + 128);
  }, 120_000);
});
