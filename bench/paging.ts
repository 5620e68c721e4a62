/**
 * Latency-bound paging (issue 9, item 3).
 *
 *   node bin/run-ts.js bench/paging.ts
 *
 * The simulator adds 20 ms to every participant_sessions answer; one session of 200 pages
 * (20,000 entries) is archived by `attendance serve` in a child process. With one page of
 * prefetch the writes hide behind the fetches, so the wall time should stay near 200 × 20 ms.
 */
import { generateSession } from '../tools/simulator/generate.ts';
import { startSimulator } from '../tools/simulator/server.ts';
import { createStreamClient } from '../src/stream/client.ts';
import { paginateParticipantSessions } from '../src/stream/paginate.ts';
import { archiveAndWait, emptyArchive, seedSessions, type ArchiveTiming } from './lib/archive-run.ts';
import { appendResults, describeMachine, fmt, pass, withBenchDatabase, withTimeout } from './lib/bench-env.ts';
import { startServiceProcess } from './lib/service.ts';
import { HOUR_MS, MINUTE_MS } from '../src/time.ts';

const API_KEY = 'bench-key';
const API_SECRET = 'bench-secret';
const PAGE_LATENCY_MS = 20;
const PAGES = 200;
const TARGET_RATIO = 1.1;
const WARM_UP_PAGES = 20;
// A shared VM's scheduling noise moves one round by a few percent; the median of three is reported.
const ROUNDS = 3;

export interface PagingBenchResult {
  /** The median round. */
  readonly archive: ArchiveTiming;
  readonly rounds: readonly ArchiveTiming[];
  readonly floorSeconds: number;
  /** The same pages fetched back to back by the product's own client, writing nothing. */
  readonly fetchOnlySeconds: number;
}

export async function runPagingBench(): Promise<PagingBenchResult> {
  return withTimeout(
    'paging benchmark',
    2 * MINUTE_MS,
    withBenchDatabase(async (db) => {
      const session = generateSession({ seed: 'bench-paging', size: PAGES * 100, endedAt: new Date(Date.now() - HOUR_MS) });
      // A running service has compiled its hot paths and opened its connections; a fresh child has
      // not, so a short session goes through it first and only the second one is timed.
      const warmUp = generateSession({ seed: 'bench-paging-warm-up', size: WARM_UP_PAGES * 100, endedAt: new Date(Date.now() - HOUR_MS) });
      const simulator = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET, pageLatencyMs: PAGE_LATENCY_MS });
      try {
        await seedSessions(db.pool, simulator, [warmUp, session]);
        // What fetching alone costs on this machine, in this run: the chain of 200 requests is serial
        // (each cursor comes from the page before), so this is the floor the archive run can reach.
        const client = createStreamClient({ baseUrl: simulator.url, apiKey: API_KEY, apiSecret: API_SECRET });
        const fetchStarted = performance.now();
        let fetched = 0;
        for await (const { page } of paginateParticipantSessions(client, { type: session.callType, id: session.callId, session: session.callSessionId }))
          fetched += page.entries.length;
        const fetchOnlySeconds = (performance.now() - fetchStarted) / 1000;
        await client.close();
        if (fetched !== session.participants.length) throw new Error(`fetched ${fetched} entries, expected ${session.participants.length}`);
        const service = await startServiceProcess({
          command: 'serve',
          databaseUrl: db.url,
          apiKey: API_KEY,
          apiSecret: API_SECRET,
          streamBaseUrl: simulator.url,
        });
        const rounds: ArchiveTiming[] = [];
        try {
          await archiveAndWait(db.pool, [warmUp], 60_000);
          for (let round = 0; round < ROUNDS; round++) {
            // Each round starts from an empty table, so each writes every row.
            await emptyArchive(db.pool);
            rounds.push(await archiveAndWait(db.pool, [session], 60_000));
          }
        } finally {
          await service.stop();
        }
        const archive = [...rounds].sort((a, b) => a.seconds - b.seconds)[ROUNDS >> 1]!;
        const floorSeconds = (PAGES * PAGE_LATENCY_MS) / 1000;
        const ratio = archive.seconds / floorSeconds;
        console.log(
          `${PAGES} pages at ${PAGE_LATENCY_MS} ms: median ${archive.seconds.toFixed(2)} s, ${ratio.toFixed(3)} × ${floorSeconds} s ` +
            `(rounds ${rounds.map((r) => (r.seconds / floorSeconds).toFixed(3)).join(' / ')}); fetching alone ${fetchOnlySeconds.toFixed(2)} s`,
        );
        await appendResults({
          title: 'Latency-bound paging (bench/paging.ts)',
          command: 'node bin/run-ts.js bench/paging.ts',
          machine: await describeMachine(db.pool),
          notes: [
            `Simulator adding ${PAGE_LATENCY_MS} ms to every page; one session of ${fmt(session.participants.length)} entries (${PAGES} pages of 100), archived by \`attendance serve\` in a child process, timed after a ${WARM_UP_PAGES}-page session has warmed it up. ` +
              `Wall time from the statement that makes it due to its \`archived_at\`; baseline: ${PAGES} × ${PAGE_LATENCY_MS} ms. ` +
              "Also measured in the same run: the same 200 pages fetched back to back by the product's own client writing nothing (the floor on this machine: timer and wake-up delays of a shared VM add to every hop).",
          ],
          table: {
            header: ['run', 'pages', 'seconds', 'ratio to 200 × 20 ms', 'ratio to fetching alone'],
            rows: [
              ['200 × 20 ms (baseline)', String(PAGES), floorSeconds.toFixed(2), '1.000 ×', ''],
              [
                'fetching alone (client, no writes)',
                String(PAGES),
                fetchOnlySeconds.toFixed(2),
                `${(fetchOnlySeconds / floorSeconds).toFixed(3)} ×`,
                '1.000 ×',
              ],
              ...rounds.map((r, i) => [
                `archiving 1 session × 20,000 entries, round ${i + 1}${r === archive ? ' (median)' : ''}`,
                String(PAGES),
                r.seconds.toFixed(2),
                `${(r.seconds / floorSeconds).toFixed(3)} ×`,
                `${(r.seconds / fetchOnlySeconds).toFixed(3)} ×`,
              ]),
            ],
          },
          verdicts: [
            `≤ ${TARGET_RATIO} × ${PAGES} × ${PAGE_LATENCY_MS} ms, median of ${ROUNDS} rounds: ${ratio.toFixed(3)} × (${pass(ratio <= TARGET_RATIO)}); writes hidden behind fetches (archiving ≤ ${TARGET_RATIO} × fetching alone): ${pass(archive.seconds <= TARGET_RATIO * fetchOnlySeconds)}`,
          ],
        });
        return { archive, rounds, floorSeconds, fetchOnlySeconds };
      } finally {
        await simulator.close();
      }
    }),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await runPagingBench();
