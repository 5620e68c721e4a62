/**
 * `npm run bench`: every benchmark of issue 9 in turn, each on its own database, each appending
 * its section to bench/RESULTS.md. bench/sql-views.ts is separate (it loads a million rows).
 * Each is also runnable alone (node bin/run-ts.js bench/intake.ts, archive.ts, paging.ts, scaling.ts, burst.ts).
 * BENCH_CPU_PROF=<dir> writes a --cpu-prof profile of every service process they start.
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
console.log(
  `\n${steps.length - failed} of ${steps.length} benchmarks done in ${((performance.now() - started) / 1000).toFixed(0)} s; figures appended to bench/RESULTS.md`,
);
process.exitCode = failed > 0 ? 1 : 0;
