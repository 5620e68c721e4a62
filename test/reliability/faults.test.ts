import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/db.ts';
import { runFaultScenario } from './fault-run.ts';
import { formatFaultReport } from './report.ts';

/*
 * The CI-sized fault run (about 55 s on two cores): 40 sessions of 1 to 2,000 entries, 9,856 in
 * all with this seed. What bounds its time is not the data but the faults: every 429 pauses the
 * whole process, and sessions held by a SIGKILLed process wait out their 30 s lease. Slow answers
 * take 1.5 s here, under the client's 10 s timeout, for the same reason; `npm run chaos` runs 200
 * sessions of up to 20,000 entries with slow answers past the timeout.
 */
describe('archive under faults, end to end', () => {
  const test = useTestDatabase();

  it('ends equal to Stream: duplicates, reordering, API failures, three SIGKILLs and a cut database connection', async () => {
    const report = await runFaultScenario({
      databaseUrl: test.current.url,
      seed: 'ci-faults-6',
      sessions: 40,
      maxSize: 2_000,
      deliveryPhaseMs: 8_000,
      slowMs: 1_500,
      // Generous: alone the archive settles about 40 s after the last webhook; beside other test files, later.
      settleTimeoutMs: 150_000,
    });
    console.log(formatFaultReport(report));

    expect(report.check.problems).toEqual([]);
    expect(report.settled).toBe(true);
    expect(report.check.statuses).toEqual({ complete: 40 });
    expect(report.check.rows).toBe(report.entries);
    // Ack only what is durable: every 200 has its webhook_events row, SIGKILLs notwithstanding.
    expect(report.ackedNotStored).toBe(0);
    expect(report.restarts).toBe(3);
    expect(report.terminatedBackends).toBeGreaterThan(0);
    expect(report.finalExit).toBe(0);
    expect(report.secretLeaks).toEqual([]);
    // The faults really happened.
    expect(report.api.byStatus['429'] ?? 0).toBeGreaterThan(0);
    expect((report.api.byStatus['500'] ?? 0) + (report.api.byStatus['502'] ?? 0) + (report.api.byStatus['503'] ?? 0)).toBeGreaterThan(0);
    expect(report.api.faults.truncated).toBeGreaterThan(0);
    expect(report.deliveries.deliveries).toBeGreaterThan(80);
  }, 240_000);
});
