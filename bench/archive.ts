/**
 * Archiving throughput and memory (issue 9, item 2).
 *
 *   node bin/run-ts.js bench/archive.ts
 *
 * The simulator (no added latency) serves one session of 100,000 entries and 100 sessions of
 * 1,000; `attendance serve` runs as a child process. Rows per second from making the sessions due
 * to all complete, against COPY of the same rows into the same (emptied) table in the same run.
 * Peak RSS (VmHWM) of the service after the 100,000-entry session, against a fresh service that
 * archived one 10,000-entry session.
 */
import { generateSession, type SimSession } from '../tools/simulator/generate.ts';
import { startSimulator } from '../tools/simulator/server.ts';
import { archiveAndWait, copyBaseline, emptyArchive, seedSessions, type ArchiveTiming } from './lib/archive-run.ts';
import { appendResults, describeMachine, fmt, pass, ratio, withBenchDatabase, withTimeout } from './lib/bench-env.ts';
import { startServiceProcess } from './lib/service.ts';
import { HOUR_MS, MINUTE_MS } from '../src/time.ts';

const API_KEY = 'bench-key';
const API_SECRET = 'bench-secret';
const RUN_TIMEOUT_MS = 120_000;
const WHOLE_TIMEOUT_MS = 6 * MINUTE_MS;

export interface ArchiveBenchResult {
  readonly large: { archive: ArchiveTiming; copy: ArchiveTiming; peakRssMiB: number; liveHeapMB: number | null };
  /** Two more COPY-then-archive rounds of the 100,000-entry session (the machine is noisy). */
  readonly largeAgain: readonly { archive: ArchiveTiming; copy: ArchiveTiming }[];
  readonly many: { archive: ArchiveTiming; copy: ArchiveTiming };
  readonly reference: { archive: ArchiveTiming; peakRssMiB: number; liveHeapMB: number | null };
}

export async function runArchiveBench(): Promise<ArchiveBenchResult> {
  return withTimeout(
    'archive benchmark',
    WHOLE_TIMEOUT_MS,
    withBenchDatabase(async (db) => {
      const endedAt = new Date(Math.floor(Date.now() / 1000) * 1000 - HOUR_MS);
      const reference = [generateSession({ seed: 'bench-10k', size: 10_000, endedAt })];
      const large = [generateSession({ seed: 'bench-100k', size: 100_000, endedAt })];
      const many: SimSession[] = [];
      for (let i = 0; i < 100; i++) many.push(generateSession({ seed: `bench-1k-${i}`, size: 1_000, endedAt }));
      const simulator = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET });
      try {
        await seedSessions(db.pool, simulator, [...reference, ...large, ...many]);
        // --trace-gc only prints a line per collection; it tells a heap that grows with the session
        // from garbage that is merely collected late.
        const serviceOptions = {
          command: 'serve' as const,
          databaseUrl: db.url,
          apiKey: API_KEY,
          apiSecret: API_SECRET,
          streamBaseUrl: simulator.url,
          nodeArgs: ['--trace-gc'],
        };

        // The 10,000-entry reference, in a service of its own so its peak is its alone.
        const first = await startServiceProcess(serviceOptions);
        let referenceResult: ArchiveBenchResult['reference'];
        try {
          const archive = await archiveAndWait(db.pool, reference, RUN_TIMEOUT_MS);
          referenceResult = { archive, peakRssMiB: await first.peakRssMiB(), liveHeapMB: first.liveHeapAfterFullGcMB() };
          console.log(
            `10,000 entries: ${fmt(archive.rowsPerSecond)} rows/s, peak RSS ${referenceResult.peakRssMiB.toFixed(1)} MiB, live heap after full GC ${referenceResult.liveHeapMB} MB`,
          );
        } finally {
          await first.stop();
        }

        const service = await startServiceProcess(serviceOptions);
        try {
          await emptyArchive(db.pool);
          const largeCopy = await copyBaseline(db.url, large);
          await emptyArchive(db.pool);
          const largeArchive = await archiveAndWait(db.pool, large, RUN_TIMEOUT_MS);
          const largePeak = await service.peakRssMiB();
          console.log(
            `100,000 entries: ${fmt(largeArchive.rowsPerSecond)} rows/s vs COPY ${fmt(largeCopy.rowsPerSecond)} rows/s, peak RSS ${largePeak.toFixed(1)} MiB, live heap after full GC ${service.liveHeapAfterFullGcMB()} MB`,
          );

          const largeAgain: { archive: ArchiveTiming; copy: ArchiveTiming }[] = [];
          for (let round = 2; round <= 3; round++) {
            await emptyArchive(db.pool);
            const copy = await copyBaseline(db.url, large);
            await emptyArchive(db.pool);
            const archive = await archiveAndWait(db.pool, large, RUN_TIMEOUT_MS);
            largeAgain.push({ archive, copy });
            console.log(`100,000 entries, round ${round}: ${fmt(archive.rowsPerSecond)} rows/s vs COPY ${fmt(copy.rowsPerSecond)} rows/s`);
          }

          await emptyArchive(db.pool);
          const manyCopy = await copyBaseline(db.url, many);
          await emptyArchive(db.pool);
          const manyArchive = await archiveAndWait(db.pool, many, RUN_TIMEOUT_MS);
          console.log(`100 × 1,000 entries: ${fmt(manyArchive.rowsPerSecond)} rows/s vs COPY ${fmt(manyCopy.rowsPerSecond)} rows/s`);
          if (service.problems.length > 0) console.log(`service warnings:\n${service.problems.slice(0, 5).join('\n')}`);

          const result: ArchiveBenchResult = {
            large: { archive: largeArchive, copy: largeCopy, peakRssMiB: largePeak, liveHeapMB: service.liveHeapAfterFullGcMB() },
            largeAgain,
            many: { archive: manyArchive, copy: manyCopy },
            reference: referenceResult,
          };
          await record(result, await describeMachine(db.pool));
          return result;
        } finally {
          await service.stop();
        }
      } finally {
        await simulator.close();
      }
    }),
  );
}

async function record(r: ArchiveBenchResult, machine: Awaited<ReturnType<typeof describeMachine>>): Promise<void> {
  const rssGrowth = r.large.peakRssMiB / r.reference.peakRssMiB - 1;
  const largeRatios = [r.large, ...r.largeAgain].map((x) => x.archive.rowsPerSecond / x.copy.rowsPerSecond).sort((a, b) => a - b);
  const largeMedian = largeRatios[Math.floor(largeRatios.length / 2)]!;
  const row = (name: string, a: ArchiveTiming, c: ArchiveTiming | null): string[] => [
    name,
    fmt(a.rows),
    a.seconds.toFixed(2),
    fmt(a.rowsPerSecond),
    c ? fmt(c.rowsPerSecond) : '',
    c ? ratio(a.rowsPerSecond, c.rowsPerSecond) : '',
  ];
  await appendResults({
    title: 'Archiving throughput (bench/archive.ts)',
    command: 'node bin/run-ts.js bench/archive.ts',
    machine,
    notes: [
      '`attendance serve` as a child process (WORKER_CONCURRENCY 4, reconciler off) against the simulator with no added latency. ' +
        'Rows/s from the statement that makes the sessions due to the last `archived_at` (database clock); every run verified complete with exactly the expected rows. ' +
        'Baseline: `COPY participant_sessions FROM STDIN` (psql, start-up subtracted) of the same rows, same raw jsonb text, into the same emptied table, right before each run. ' +
        'The 100,000-entry session runs three rounds (peak RSS is read after the first).',
    ],
    table: {
      header: ['run', 'rows', 'seconds', 'rows/s', 'COPY rows/s', 'ratio to COPY'],
      rows: [
        row('1 session × 100,000 entries', r.large.archive, r.large.copy),
        ...r.largeAgain.map((again, i) => row(`1 session × 100,000 entries, round ${i + 2}`, again.archive, again.copy)),
        row('100 sessions × 1,000 entries', r.many.archive, r.many.copy),
        row('1 session × 10,000 entries (memory reference)', r.reference.archive, null),
      ],
    },
    verdicts: [
      `≥ 0.5 × COPY: 100,000-entry, median of ${largeRatios.length} rounds ${largeMedian.toFixed(2)} × (${pass(largeMedian >= 0.5)}), ` +
        `100 × 1,000 ${ratio(r.many.archive.rowsPerSecond, r.many.copy.rowsPerSecond)} (${pass(r.many.archive.rowsPerSecond >= 0.5 * r.many.copy.rowsPerSecond)})`,
      `peak RSS of the service: ${r.large.peakRssMiB.toFixed(1)} MiB after the 100,000-entry session (< 200 MiB: ${pass(r.large.peakRssMiB < 200)}), ` +
        `${r.reference.peakRssMiB.toFixed(1)} MiB after a 10,000-entry one: ${(rssGrowth * 100).toFixed(1)} % more (≤ 10 %: ${pass(rssGrowth <= 0.1)}); ` +
        `largest heap live after a full GC: ${r.large.liveHeapMB ?? '?'} MB (100,000) vs ${r.reference.liveHeapMB ?? '?'} MB (10,000)`,
    ],
  });
}

if (import.meta.url === `file://${process.argv[1]}`) await runArchiveBench();
