/**
 * Latency-bound paging (issue 9, item 3; issue 19, item 3).
 *
 *   node bin/run-ts.js bench/paging.ts [--rounds 3]
 *
 * The simulator adds 20 ms to every participant_sessions answer; one session of 200 pages
 * (20,000 entries) is archived by `attendance serve` in a child process. With one page of
 * prefetch the writes hide behind the fetches, so the wall time should stay near 200 × 20 ms.
 * Three rounds within one run, each: the same pages fetched back to back by the product's own
 * client writing nothing (what fetching alone costs on this machine right then), then the service
 * archives them into the emptied table. The median of the rounds is held against the target. Each
 * archive is split into CPU of the service, of Postgres and of the simulator per page
 * (lib/cpu-account.ts); with BENCH_CPU_PROF the service's hottest frames are recorded.
 */
import { generateSession } from '../tools/simulator/generate.ts';
import { startSimulator } from '../tools/simulator/server.ts';
import { createStreamClient } from '../src/stream/client.ts';
import { paginateParticipantSessions } from '../src/stream/paginate.ts';
import { archiveAndWait, emptyArchive, seedSessions, type ArchiveTiming } from './lib/archive-run.ts';
import { appendResults, describeMachine, fmt, median, passMiss, parseRounds, QUICK, withBenchDatabase, withTimeout } from './lib/bench-env.ts';
import { type CpuSplit, PER_UNIT_HEADER, perUnitRow, startCpuWindow } from './lib/cpu-account.ts';
import { describeProfile, summariseProfileOf } from './lib/cpu-profile.ts';
import { startServiceProcess } from './lib/service.ts';
import { HOUR_MS, MINUTE_MS } from '../src/time.ts';

const API_KEY = 'bench-key';
const API_SECRET = 'bench-secret';
const PAGE_LATENCY_MS = 20;
const TARGET_RATIO = 1.1;
const WARM_UP_PAGES = 20;
// A shared VM's scheduling noise moves one round by a few percent; the median of three is reported.
const ROUNDS = 3;

export interface PagingRound {
  readonly archive: ArchiveTiming;
  /** The same pages fetched back to back by the product's own client, writing nothing, right before. */
  readonly fetchOnlySeconds: number;
  readonly cpu: CpuSplit;
}

export interface PagingBenchResult {
  readonly rounds: readonly PagingRound[];
  readonly pages: number;
  readonly floorSeconds: number;
  /** Median over the rounds of archive seconds ÷ the floor. */
  readonly ratio: number;
  /** Median over the rounds of archive seconds ÷ that round's fetching alone. */
  readonly ratioToFetching: number;
}

export async function runPagingBench(options: { rounds?: number } = {}): Promise<PagingBenchResult> {
  const roundCount = options.rounds ?? ROUNDS;
  const pages = QUICK ? 50 : 200;
  return withTimeout(
    'paging benchmark',
    MINUTE_MS + roundCount * MINUTE_MS,
    withBenchDatabase(async (db) => {
      const session = generateSession({ seed: 'bench-paging', size: pages * 100, endedAt: new Date(Date.now() - HOUR_MS) });
      // A running service has compiled its hot paths and opened its connections; a fresh child has
      // not, so a short session goes through it first and only the later ones are timed.
      const warmUp = generateSession({ seed: 'bench-paging-warm-up', size: WARM_UP_PAGES * 100, endedAt: new Date(Date.now() - HOUR_MS) });
      const simulator = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET, pageLatencyMs: PAGE_LATENCY_MS });
      try {
        await seedSessions(db.pool, simulator, [warmUp, session]);
        const client = createStreamClient({ baseUrl: simulator.url, apiKey: API_KEY, apiSecret: API_SECRET });
        // What fetching alone costs on this machine, right now: the chain of requests is serial
        // (each cursor comes from the page before), so this is the floor the archive run can reach.
        const fetchAlone = async (): Promise<number> => {
          const fetchStarted = performance.now();
          let fetched = 0;
          for await (const { page } of paginateParticipantSessions(client, { type: session.callType, id: session.callId, session: session.callSessionId }))
            fetched += page.entries.length;
          if (fetched !== session.participants.length) throw new Error(`fetched ${fetched} entries, expected ${session.participants.length}`);
          return (performance.now() - fetchStarted) / 1000;
        };
        const service = await startServiceProcess({
          command: 'serve',
          databaseUrl: db.url,
          apiKey: API_KEY,
          apiSecret: API_SECRET,
          streamBaseUrl: simulator.url,
        });
        const rounds: PagingRound[] = [];
        try {
          await archiveAndWait(db.pool, [warmUp], 60_000);
          for (let round = 1; round <= roundCount; round++) {
            const fetchOnlySeconds = await fetchAlone();
            // Each round starts from an empty table, so each writes every row.
            await emptyArchive(db.pool);
            const window = await startCpuWindow(db.name, service.pid);
            const archive = await archiveAndWait(db.pool, [session], 60_000);
            const cpu = await window.stop();
            rounds.push({ archive, fetchOnlySeconds, cpu });
            console.log(
              `round ${round}: fetching alone ${fetchOnlySeconds.toFixed(2)} s, archiving ${archive.seconds.toFixed(2)} s ` +
                `(${(archive.seconds / ((pages * PAGE_LATENCY_MS) / 1000)).toFixed(3)} × floor, ${(archive.seconds / fetchOnlySeconds).toFixed(3)} × fetching alone)`,
            );
          }
        } finally {
          await service.stop();
          await client.close();
        }
        const floorSeconds = (pages * PAGE_LATENCY_MS) / 1000;
        const result: PagingBenchResult = {
          rounds,
          pages,
          floorSeconds,
          ratio: median(rounds.map((r) => r.archive.seconds / floorSeconds)),
          ratioToFetching: median(rounds.map((r) => r.archive.seconds / r.fetchOnlySeconds)),
        };
        const rows = rounds.map((r, i) => perUnitRow(`round ${i + 1}, archiving (per page)`, r.cpu, pages, (r.archive.seconds * 1000) / pages));
        console.log(`median ${result.ratio.toFixed(3)} × floor, ${result.ratioToFetching.toFixed(3)} × fetching alone`);
        console.log(`\nwhere the time goes, ms per page:\n${PER_UNIT_HEADER.join(' | ')}`);
        for (const row of rows) console.log(row.join(' | '));
        const profile = process.env.BENCH_CPU_PROF
          ? await summariseProfileOf(
              process.env.BENCH_CPU_PROF,
              service.pid,
              rounds.map((r) => r.cpu),
            )
          : undefined;
        const medianSeconds = median(rounds.map((r) => r.archive.seconds));
        await appendResults({
          title: 'Latency-bound paging (bench/paging.ts)',
          command: `node bin/run-ts.js bench/paging.ts${QUICK ? ' (BENCH_QUICK=1: 50 pages)' : ''}`,
          machine: await describeMachine(db.pool),
          notes: [
            `Simulator adding ${PAGE_LATENCY_MS} ms to every page; one session of ${fmt(session.participants.length)} entries (${pages} pages of 100), archived by \`attendance serve\` in a child process, timed after a ${WARM_UP_PAGES}-page session has warmed it up. ` +
              `Wall time from the statement that makes it due to its \`archived_at\`; baseline (the floor): ${pages} × ${PAGE_LATENCY_MS} ms. ` +
              `${rounds.length} rounds in this one run, each: the same pages fetched back to back by the product's own client writing nothing (what the timer and wake-up delays of a shared VM add to every hop, right then), then the archive. ` +
              'The target is held against the median of the rounds.',
          ],
          table: {
            header: ['run', 'pages', 'seconds', `ratio to ${pages} × ${PAGE_LATENCY_MS} ms`, 'ratio to fetching alone (same round)'],
            rows: [
              [`${pages} × ${PAGE_LATENCY_MS} ms (baseline)`, String(pages), floorSeconds.toFixed(2), '1.000 ×', ''],
              ...rounds.flatMap((r, i) => [
                [
                  `round ${i + 1}: fetching alone (client, no writes)`,
                  String(pages),
                  r.fetchOnlySeconds.toFixed(2),
                  `${(r.fetchOnlySeconds / floorSeconds).toFixed(3)} ×`,
                  '1.000 ×',
                ],
                [
                  `round ${i + 1}: archiving 1 session × ${fmt(session.participants.length)} entries${r.archive.seconds === medianSeconds ? ' (median)' : ''}`,
                  String(pages),
                  r.archive.seconds.toFixed(2),
                  `${(r.archive.seconds / floorSeconds).toFixed(3)} ×`,
                  `${(r.archive.seconds / r.fetchOnlySeconds).toFixed(3)} ×`,
                ],
              ]),
            ],
          },
          verdicts: [
            `paging ≤ ${TARGET_RATIO} × the floor (${pages} × ${PAGE_LATENCY_MS} ms), median of ${rounds.length} rounds: ${result.ratio.toFixed(3)} × (${passMiss(result.ratio <= TARGET_RATIO)})`,
            `writes hidden behind fetches (archiving ≤ ${TARGET_RATIO} × fetching alone in the same round), median: ${result.ratioToFetching.toFixed(3)} × (${passMiss(result.ratioToFetching <= TARGET_RATIO)})`,
          ],
          moreTables: [
            {
              title:
                "Where the time goes, ms per page, from /proc: CPU of the service process, of the bench database's Postgres backends, of Postgres's WAL writer, checkpointer and background writer, " +
                "of the bench process (the simulator), of every other process on the machine, and idle core time. The pages are serial: the wall time over the pages is one page's latency, " +
                `and what of it is not CPU in the service or Postgres is waiting, the simulator's ${PAGE_LATENCY_MS} ms included.`,
              header: [...PER_UNIT_HEADER],
              rows,
            },
          ],
          footnotes: profile ? describeProfile('Profile', profile, pages * rounds.length, 'page') : [],
        });
        return result;
      } finally {
        await simulator.close();
      }
    }),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await runPagingBench({ rounds: parseRounds(process.argv.slice(2), 'paging.ts') });
