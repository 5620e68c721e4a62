/*
 * npm run chaos [-- --sessions 200 --max-size 20000 --delivery-seconds 120 --slow-ms 11000 --settle-minutes 20 --seed chaos]
 *
 * The full-size fault run (test/reliability/fault-run.ts): serve as a child process, the simulator
 * and a Postgres database of its own, on loopback only. Slow API answers take longer than the
 * stream client's 10 s timeout here. Exits 0 when the archive equals the simulator's sessions
 * exactly, 1 otherwise (then the database is kept for inspection and its name printed).
 * DATABASE_URL names the server (any database on it; default postgres://postgres@127.0.0.1:5432/postgres).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runFaultScenario } from '../test/reliability/fault-run.ts';
import { formatFaultReport } from '../test/reliability/report.ts';
import { withBenchDatabase } from './lib/bench-env.ts';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '200' },
    'max-size': { type: 'string', default: '20000' },
    'delivery-seconds': { type: 'string', default: '120' },
    'slow-ms': { type: 'string', default: '11000' },
    'settle-minutes': { type: 'string', default: '20' },
    seed: { type: 'string', default: 'chaos' },
    /** Write every serve process's log lines here. */
    logs: { type: 'string' },
  },
});
const number = (name: keyof typeof values): number => {
  const value = Number(values[name]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
};

const ok = await withBenchDatabase(
  async ({ url }) => {
    const started = new Date();
    const report = await runFaultScenario({
      databaseUrl: url,
      seed: String(values.seed),
      sessions: number('sessions'),
      maxSize: number('max-size'),
      deliveryPhaseMs: number('delivery-seconds') * 1000,
      slowMs: number('slow-ms'),
      settleTimeoutMs: number('settle-minutes') * 60_000,
      progress: (message) => console.log(`[${((Date.now() - started.getTime()) / 1000).toFixed(1)} s] ${message}`),
    });
    console.log(`\n${started.toISOString()}, seed ${String(values.seed)}, slow answers ${number('slow-ms')} ms`);
    console.log(formatFaultReport(report));
    if (values.logs !== undefined) writeFileSync(values.logs, report.output);
    const passed =
      report.settled &&
      report.check.problems.length === 0 &&
      report.ackedNotStored === 0 &&
      report.secretLeaks.length === 0 &&
      report.finalExit === 0 &&
      report.restarts === 3;
    // A failed run keeps its database: withBenchDatabase keeps it when this throws.
    if (!passed) throw new Error('FAIL');
    console.log('\nPASS: the archive equals Stream exactly');
    return true;
  },
  { prefix: 'attendance_chaos', keepOnFailure: true },
).catch((error: unknown) => {
  console.log(`\n${error instanceof Error ? error.message : String(error)}`);
  return false;
});
process.exit(ok ? 0 : 1);
