/**
 * `npm run bench`: every benchmark of issue 9 in turn, each on its own database, each appending
 * its section to bench/RESULTS.md. bench/sql-views.ts is separate (it loads a million rows).
 * Each is also runnable alone (node bin/run-ts.js bench/intake.ts, archive.ts, paging.ts, scaling.ts, burst.ts).
 * Intake, archive and paging measure each target in three rounds within the run (baseline, then
 * the service) and hold the median against it; the whole run stays under 10 minutes on the 2-core
 * machine of bench/RESULTS.md, about 2.5 of them the burst's wait on the rate limit.
 *
 * BENCH_CPU_PROF=<dir> writes a --cpu-prof profile of every service process they start, and intake,
 * archive and paging record the service's hottest frames over their measured runs.
 * BENCH_QUICK=1 runs intake, archive and paging at a fraction of their size (for trying them out);
 * BENCH_RESULTS=<file> appends the sections there instead of bench/RESULTS.md.
 */
import { runArchiveBench } from './archive.ts';
import { runBurstBench } from './burst.ts';
import { runIntakeBench } from './intake.ts';
import { runPagingBench } from './paging.ts';
import { runScalingBench } from './scaling.ts';

const started = performance.now();
const steps: [string, () => Promise<unknown>][] = [
  ['intake', () => runIntakeBench()],
  ['archive', () => runArchiveBench()],
  ['paging', () => runPagingBench()],
  ['scaling', () => runScalingBench()],
  ['burst', () => runBurstBench()],
];
let failed = 0;
for (const [name, run] of steps) {
  console.log(`\n== ${name}`);
  try {
    await run();
  } catch (error) {
    failed++;
    console.error(`${name} failed:`, error);
  }
}
const seconds = (performance.now() - started) / 1000;
console.log(
  `\n${steps.length - failed} of ${steps.length} benchmarks done in ${seconds.toFixed(0)} s (${(seconds / 60).toFixed(1)} min; the budget is 10); ` +
    `figures appended to ${process.env.BENCH_RESULTS || 'bench/RESULTS.md'}`,
);
process.exitCode = failed > 0 ? 1 : 0;
