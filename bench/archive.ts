/**
 * Archiving throughput and memory (issue 9, item 2; issue 19, item 3).
 *
 *   node bin/run-ts.js bench/archive.ts [--rounds 3]
 *
 * The simulator (no added latency) serves one session of 100,000 entries, 100 sessions of 1,000
 * and one of 10,000; `attendance serve` runs as a child process. Three rounds within one run, each:
 *   - a fresh service archives the 10,000-entry session: its peak RSS (VmHWM) is the reference;
 *   - COPY of the 100,000 rows into the emptied table (the baseline), then a fresh service archives
 *     the 100,000-entry session into the emptied table: rows/s against that COPY, and its peak RSS;
 *   - the same service: COPY of the 100 × 1,000 rows, then it archives them.
 * Every service first archives a 1,000-entry session, so the JIT is warm for what is measured (the
 * reference and the large session pay for it alike). The median of the rounds is held against each
 * target, since the machine is shared. Each archive is also split into CPU of the service, of
 * Postgres and of the simulator per page (lib/cpu-account.ts); with BENCH_CPU_PROF the service's
 * hottest frames are recorded. After each archive the bench runs the rollup sweep the service would
 * run within 15 s (rollup/refresh.ts) and times it: the rest of what the archived rows cost.
 */
import { generateSession, type SimSession } from '../tools/simulator/generate.ts';
import { startSimulator } from '../tools/simulator/server.ts';
import { PAGE_LIMIT } from '../src/stream/paginate.ts';
import { archiveAndWait, copyBaseline, emptyArchive, seedSessions, type ArchiveTiming } from './lib/archive-run.ts';
import {
  appendResults,
  type BenchDatabase,
  describeMachine,
  fmt,
  type MachineInfo,
  median,
  medianIndex,
  passMiss,
  parseRounds,
  QUICK,
  ratio,
  withBenchDatabase,
  withTimeout,
} from './lib/bench-env.ts';
import { type CpuSplit, PER_UNIT_HEADER, perUnitRow, startCpuWindow } from './lib/cpu-account.ts';
import { describeProfile, type ProfileSummary, summariseProfileOf } from './lib/cpu-profile.ts';
import { startServiceProcess, type ServiceProcess } from './lib/service.ts';
import { sweepPendingRollups } from '../src/rollup/refresh.ts';
import { HOUR_MS, MINUTE_MS } from '../src/time.ts';

const API_KEY = 'bench-key';
const API_SECRET = 'bench-secret';
const RUN_TIMEOUT_MS = 120_000;
const ROUNDS = 3;
const THROUGHPUT_TARGET = 0.6;
const RSS_TARGET_MIB = 180;
const RSS_GROWTH_TARGET = 0.1;

export interface ArchiveRound {
  readonly reference: { readonly archive: ArchiveTiming; readonly peakRssMiB: number; readonly liveHeapMB: number | null };
  readonly large: {
    readonly archive: ArchiveTiming;
    readonly copy: ArchiveTiming;
    readonly peakRssMiB: number;
    readonly liveHeapMB: number | null;
    readonly cpu: CpuSplit;
    readonly copyCpu: CpuSplit;
    readonly rollupSeconds: number;
    /** Pages the service sent a second time (attendance_pages_rewritten_total over the run). */
    readonly pagesSentAgain: number;
  };
  readonly many: {
    readonly archive: ArchiveTiming;
    readonly copy: ArchiveTiming;
    readonly cpu: CpuSplit;
    readonly copyCpu: CpuSplit;
    readonly rollupSeconds: number;
    readonly pagesSentAgain: number;
  };
}

export interface ArchiveBenchResult {
  readonly rounds: readonly ArchiveRound[];
  readonly largeRatio: number;
  readonly manyRatio: number;
  readonly largePeakRssMiB: number;
  readonly referencePeakRssMiB: number;
  readonly sizes: { readonly large: number; readonly many: number; readonly manyEach: number; readonly reference: number };
}

export async function runArchiveBench(options: { rounds?: number } = {}): Promise<ArchiveBenchResult> {
  const roundCount = options.rounds ?? ROUNDS;
  // BENCH_QUICK: a tenth of the sizes, to try the bench out; not the targets' figures.
  const sizes = QUICK ? { large: 10_000, many: 10, manyEach: 1_000, reference: 1_000 } : { large: 100_000, many: 100, manyEach: 1_000, reference: 10_000 };
  return withTimeout(
    'archive benchmark',
    2 * MINUTE_MS + roundCount * 2 * MINUTE_MS,
    withBenchDatabase(async (db) => {
      const endedAt = new Date(Math.floor(Date.now() / 1000) * 1000 - HOUR_MS);
      const warmUp = [generateSession({ seed: 'bench-warm-up', size: 1_000, endedAt })];
      const reference = [generateSession({ seed: 'bench-10k', size: sizes.reference, endedAt })];
      const large = [generateSession({ seed: 'bench-100k', size: sizes.large, endedAt })];
      const many: SimSession[] = [];
      for (let i = 0; i < sizes.many; i++) many.push(generateSession({ seed: `bench-1k-${i}`, size: sizes.manyEach, endedAt }));
      const simulator = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET });
      const profiles: (ProfileSummary | undefined)[] = [];
      try {
        await seedSessions(db.pool, simulator, [...warmUp, ...reference, ...large, ...many]);
        // --trace-gc only prints a line per collection; it tells a heap that grows with the session
        // from garbage that is merely collected late.
        const start = () =>
          startServiceProcess({
            command: 'serve',
            databaseUrl: db.url,
            apiKey: API_KEY,
            apiSecret: API_SECRET,
            streamBaseUrl: simulator.url,
            nodeArgs: ['--trace-gc'],
          });
        const warm = () => archiveAndWait(db.pool, warmUp, RUN_TIMEOUT_MS);

        const rounds: ArchiveRound[] = [];
        for (let round = 1; round <= roundCount; round++) {
          // The reference, in a service of its own so its peak is its alone.
          await emptyArchive(db.pool);
          const first = await start();
          let referenceResult: ArchiveRound['reference'];
          try {
            await warm();
            const archive = await archiveAndWait(db.pool, reference, RUN_TIMEOUT_MS);
            referenceResult = { archive, peakRssMiB: await first.peakRssMiB(), liveHeapMB: first.liveHeapAfterFullGcMB() };
          } finally {
            await first.stop();
          }

          await emptyArchive(db.pool);
          const largeCopy = await timedCopy(db, large);
          await emptyArchive(db.pool);
          const service = await start();
          try {
            await warm();
            const beforeLarge = await pagesSentAgain(service);
            const largeRun = await timedArchive(db, service, large);
            const afterLarge = await pagesSentAgain(service);
            const largePeak = await service.peakRssMiB();
            const largeLive = service.liveHeapAfterFullGcMB();

            await emptyArchive(db.pool);
            const manyCopy = await timedCopy(db, many);
            await emptyArchive(db.pool);
            const manyRun = await timedArchive(db, service, many);
            const manySentAgain = (await pagesSentAgain(service)) - afterLarge;
            const largeSentAgain = afterLarge - beforeLarge;
            if (service.problems.length > 0) console.log(`service warnings:\n${service.problems.slice(0, 5).join('\n')}`);
            rounds.push({
              reference: referenceResult,
              large: {
                archive: largeRun.archive,
                copy: largeCopy.copy,
                peakRssMiB: largePeak,
                liveHeapMB: largeLive,
                cpu: largeRun.cpu,
                copyCpu: largeCopy.cpu,
                rollupSeconds: largeRun.rollupSeconds,
                pagesSentAgain: largeSentAgain,
              },
              many: {
                archive: manyRun.archive,
                copy: manyCopy.copy,
                cpu: manyRun.cpu,
                copyCpu: manyCopy.cpu,
                rollupSeconds: manyRun.rollupSeconds,
                pagesSentAgain: manySentAgain,
              },
            });
            console.log(
              `round ${round}: ${fmt(sizes.reference)} entries: peak RSS ${referenceResult.peakRssMiB.toFixed(1)} MiB; ` +
                `${fmt(sizes.large)} entries: ${fmt(largeRun.archive.rowsPerSecond)} rows/s vs COPY ${fmt(largeCopy.copy.rowsPerSecond)} (${ratio(largeRun.archive.rowsPerSecond, largeCopy.copy.rowsPerSecond)}), peak RSS ${largePeak.toFixed(1)} MiB; ` +
                `${sizes.many} × ${fmt(sizes.manyEach)}: ${fmt(manyRun.archive.rowsPerSecond)} rows/s vs COPY ${fmt(manyCopy.copy.rowsPerSecond)} (${ratio(manyRun.archive.rowsPerSecond, manyCopy.copy.rowsPerSecond)}); ` +
                `then the rollup sweep ${largeRun.rollupSeconds.toFixed(2)} s / ${manyRun.rollupSeconds.toFixed(2)} s; ` +
                `pages sent again ${largeSentAgain} / ${manySentAgain}`,
            );
          } finally {
            await service.stop();
          }
          const measured = rounds.at(-1);
          if (process.env.BENCH_CPU_PROF && measured) {
            profiles.push(await summariseProfileOf(process.env.BENCH_CPU_PROF, service.pid, [measured.large.cpu, measured.many.cpu]));
          }
        }

        const result: ArchiveBenchResult = {
          rounds,
          largeRatio: median(rounds.map((r) => r.large.archive.rowsPerSecond / r.large.copy.rowsPerSecond)),
          manyRatio: median(rounds.map((r) => r.many.archive.rowsPerSecond / r.many.copy.rowsPerSecond)),
          largePeakRssMiB: median(rounds.map((r) => r.large.peakRssMiB)),
          referencePeakRssMiB: median(rounds.map((r) => r.reference.peakRssMiB)),
          sizes,
        };
        const rows = timeSplitRows(result);
        console.log(`\nwhere the time goes, ms per page of ${PAGE_LIMIT}:\n${PER_UNIT_HEADER.join(' | ')}`);
        for (const row of rows) console.log(row.join(' | '));
        console.log(
          `median: ${result.largeRatio.toFixed(2)} × COPY (${fmt(sizes.large)}), ${result.manyRatio.toFixed(2)} × COPY (${sizes.many} × ${fmt(sizes.manyEach)}); ` +
            `peak RSS ${result.largePeakRssMiB.toFixed(1)} MiB vs ${result.referencePeakRssMiB.toFixed(1)} MiB, Node ${process.version}`,
        );
        const medianRound = medianIndex(rounds.map((r) => r.large.archive.rowsPerSecond / r.large.copy.rowsPerSecond));
        await record(result, await describeMachine(db.pool), profiles[medianRound]);
        return result;
      } finally {
        await simulator.close();
      }
    }),
  );
}

/** attendance_pages_rewritten_total as the service's /metrics gives it now. */
async function pagesSentAgain(service: ServiceProcess): Promise<number> {
  const text = await (await fetch(new URL('/metrics', service.url))).text();
  const value = /^attendance_pages_rewritten_total (\d+)/m.exec(text)?.[1];
  if (value === undefined) throw new Error("the service's /metrics has no attendance_pages_rewritten_total (src/metrics.ts)");
  return Number(value);
}

/**
 * Archives `sessions` (already seeded, table emptied) while accounting CPU, then brings their
 * rollups up to date as the service's sweep would (the service's own sweep may have taken some
 * of them already; the one left is timed, on the wall clock: one backend working alone).
 */
async function timedArchive(
  db: BenchDatabase,
  service: ServiceProcess,
  sessions: readonly SimSession[],
): Promise<{ archive: ArchiveTiming; cpu: CpuSplit; rollupSeconds: number }> {
  const window = await startCpuWindow(db.name, service.pid);
  const archive = await archiveAndWait(db.pool, sessions, RUN_TIMEOUT_MS);
  const cpu = await window.stop();
  const startedAt = performance.now();
  await sweepPendingRollups(db.pool);
  const rollupSeconds = (performance.now() - startedAt) / 1000;
  const left = (await db.pool.query<{ n: number }>('select count(*)::int as n from rollup_pending')).rows[0]!.n;
  if (left !== 0) throw new Error(`${left} sessions still marked after the rollup sweep`);
  return { archive, cpu, rollupSeconds };
}

/** The COPY baseline while accounting CPU (psql's backend is one of the bench database's). */
async function timedCopy(db: BenchDatabase, sessions: readonly SimSession[]): Promise<{ copy: ArchiveTiming; cpu: CpuSplit }> {
  const window = await startCpuWindow(db.name);
  const copy = await copyBaseline(db.url, sessions);
  return { copy, cpu: await window.stop() };
}

function pagesOf(rows: number, sessions: number): number {
  return sessions * Math.ceil(rows / sessions / PAGE_LIMIT);
}

function timeSplitRows(r: ArchiveBenchResult): string[][] {
  return r.rounds.flatMap((round, i) => {
    const largePages = pagesOf(round.large.archive.rows, 1);
    const manyPages = pagesOf(round.many.archive.rows, r.sizes.many);
    return [
      // COPY of the same rows, per 100 of them: Postgres's cost of the rows alone.
      perUnitRow(`round ${i + 1}, COPY of the ${fmt(r.sizes.large)} rows (per ${PAGE_LIMIT} rows)`, round.large.copyCpu, largePages, undefined),
      // One session's pages are written two at a time: the wall time over its pages is the
      // interval between pages, not one page's latency.
      perUnitRow(`round ${i + 1}, 1 × ${fmt(r.sizes.large)} (per page; 2 pages in flight)`, round.large.cpu, largePages, undefined),
      perUnitRow(
        `round ${i + 1}, COPY of the ${r.sizes.many} × ${fmt(r.sizes.manyEach)} rows (per ${PAGE_LIMIT} rows)`,
        round.many.copyCpu,
        manyPages,
        undefined,
      ),
      perUnitRow(`round ${i + 1}, ${r.sizes.many} × ${fmt(r.sizes.manyEach)} (per page; 4 sessions in flight)`, round.many.cpu, manyPages, undefined),
    ];
  });
}

async function record(r: ArchiveBenchResult, machine: MachineInfo, profile: ProfileSummary | undefined): Promise<void> {
  const rssGrowth = r.largePeakRssMiB / r.referencePeakRssMiB - 1;
  const row = (name: string, a: ArchiveTiming, c: ArchiveTiming | null, rss: number | null, live: number | null, rollup: number | null): string[] => [
    name,
    fmt(a.rows),
    a.seconds.toFixed(2),
    fmt(a.rowsPerSecond),
    c ? fmt(c.rowsPerSecond) : '',
    c ? ratio(a.rowsPerSecond, c.rowsPerSecond) : '',
    rollup === null ? '' : `${rollup.toFixed(2)} (${((rollup * 1e6) / a.rows).toFixed(0)} µs)`,
    c && rollup !== null ? ratio(a.rows / (a.seconds + rollup), c.rowsPerSecond) : '',
    rss === null ? '' : rss.toFixed(1),
    live === null ? '' : String(live),
  ];
  const s = r.sizes;
  await appendResults({
    title: 'Archiving throughput and memory (bench/archive.ts)',
    command: `node bin/run-ts.js bench/archive.ts${QUICK ? ' (BENCH_QUICK=1: a tenth of the sizes)' : ''}`,
    machine,
    notes: [
      '`attendance serve` as a child process (WORKER_CONCURRENCY 4, reconciler off) against the simulator with no added latency; every service first archives a 1,000-entry session (JIT warm-up). ' +
        'Rows/s from the statement that makes the sessions due to the last `archived_at` (database clock); every run verified complete with exactly the expected rows. ' +
        'Baseline: `COPY participant_sessions FROM STDIN` (psql, start-up subtracted) of the same rows, same raw jsonb text, into the same emptied table, right before each run. ' +
        `${r.rounds.length} rounds in this one run; in each, the ${fmt(s.reference)}-entry reference and the ${fmt(s.large)}-entry session are archived by fresh services, ` +
        `and the ${fmt(s.large)}-entry one's service then archives the ${s.many} × ${fmt(s.manyEach)}. ` +
        `Peak RSS is VmHWM of the service process, on the Node the bench runs on (${process.version}); live heap is the largest heap left after a full GC (--trace-gc). ` +
        'Each target is held against the median of the rounds.',
    ],
    table: {
      header: [
        'run',
        'rows',
        'seconds',
        'rows/s',
        'COPY rows/s (baseline)',
        'ratio to COPY',
        'then the rollup sweep: s (per entry)',
        'archiving and rollups, ratio to COPY',
        'peak RSS MiB',
        'live heap MB',
      ],
      rows: r.rounds.flatMap((x, i) => [
        row(
          `round ${i + 1}: 1 session × ${fmt(s.large)} entries`,
          x.large.archive,
          x.large.copy,
          x.large.peakRssMiB,
          x.large.liveHeapMB,
          x.large.rollupSeconds,
        ),
        row(`round ${i + 1}: ${s.many} sessions × ${fmt(s.manyEach)} entries`, x.many.archive, x.many.copy, null, null, x.many.rollupSeconds),
        row(
          `round ${i + 1}: 1 session × ${fmt(s.reference)} entries (memory reference)`,
          x.reference.archive,
          null,
          x.reference.peakRssMiB,
          x.reference.liveHeapMB,
          null,
        ),
      ]),
    },
    verdicts: [
      `archiving ≥ ${THROUGHPUT_TARGET} × COPY, median of ${r.rounds.length} rounds: 1 × ${fmt(s.large)} ${r.largeRatio.toFixed(2)} × (${passMiss(r.largeRatio >= THROUGHPUT_TARGET)}), ` +
        `${s.many} × ${fmt(s.manyEach)} ${r.manyRatio.toFixed(2)} × (${passMiss(r.manyRatio >= THROUGHPUT_TARGET)})`,
      `peak RSS (Node ${process.version}), median of ${r.rounds.length} rounds: ${r.largePeakRssMiB.toFixed(1)} MiB for the ${fmt(s.large)}-entry session (< ${RSS_TARGET_MIB} MiB: ${passMiss(r.largePeakRssMiB < RSS_TARGET_MIB)}), ` +
        `${r.referencePeakRssMiB.toFixed(1)} MiB for the ${fmt(s.reference)}-entry one: ${(rssGrowth * 100).toFixed(1)} % more (≤ ${RSS_GROWTH_TARGET * 100} %: ${passMiss(rssGrowth <= RSS_GROWTH_TARGET)})`,
    ],
    moreTables: [
      {
        title:
          `Where the time goes, ms per page of ${PAGE_LIMIT} entries, from /proc: CPU of the service process, of the bench database's Postgres backends, ` +
          "of Postgres's WAL writer, checkpointer and background writer (shared with the server's other databases), of the bench process (the simulator, serving the pages), " +
          `of every other process on the machine (psql for COPY), and idle core time (${machine.cores} cores × wall). A session's pages are written two at a time (each on its own connection), so wall ÷ pages is the interval between pages, not one page's latency. ` +
          "The COPY rows put Postgres's CPU for the same rows loaded by COPY beside the service's page statements.",
        header: [...PER_UNIT_HEADER],
        rows: timeSplitRows(r),
      },
    ],
    footnotes: [
      `Pages the service sent a second time (attendance_pages_rewritten_total: a page that asked for the lock of the page before it before that page had taken it), 1 × ${fmt(s.large)} / ${s.many} × ${fmt(s.manyEach)}: ` +
        r.rounds
          .map(
            (x, i) =>
              `round ${i + 1} ${x.large.pagesSentAgain} of ${fmt(pagesOf(s.large, 1))} / ${x.many.pagesSentAgain} of ${fmt(pagesOf(s.many * s.manyEach, s.many))}`,
          )
          .join('; '),
      ...(profile ? describeProfile('Profile (median round)', profile, pagesOf(s.large, 1) + pagesOf(s.many * s.manyEach, s.many), 'page') : []),
    ],
  });
}

if (import.meta.url === `file://${process.argv[1]}`) await runArchiveBench({ rounds: parseRounds(process.argv.slice(2), 'archive.ts') });
