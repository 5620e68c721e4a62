/**
 * Scaling (issue 9, item 4).
 *
 *   node bin/run-ts.js bench/scaling.ts
 *
 * 200 sessions of 500 entries, archived with WORKER_CONCURRENCY 1, 4 and 16 (one `attendance
 * worker` process each time), then by two `worker` processes (concurrency 4 each) sharing the queue
 * through SKIP LOCKED. Each run starts from an emptied table; COPY of the same rows is the ceiling.
 */
import { generateSession, type SimSession } from '../tools/simulator/generate.ts';
import { startSimulator } from '../tools/simulator/server.ts';
import { archiveAndWait, copyBaseline, emptyArchive, seedSessions, type ArchiveTiming } from './lib/archive-run.ts';
import { appendResults, describeMachine, fmt, ratio, withBenchDatabase, withTimeout } from './lib/bench-env.ts';
import { startServiceProcess, type ServiceProcess } from './lib/service.ts';
import { HOUR_MS, MINUTE_MS } from '../src/time.ts';

const API_KEY = 'bench-key';
const API_SECRET = 'bench-secret';
const SESSIONS = 200;
const ENTRIES = 500;

export interface ScalingRun {
  readonly name: string;
  readonly archive: ArchiveTiming;
}

export interface ScalingBenchResult {
  readonly copy: ArchiveTiming;
  readonly runs: readonly ScalingRun[];
}

export async function runScalingBench(): Promise<ScalingBenchResult> {
  return withTimeout(
    'scaling benchmark',
    5 * MINUTE_MS,
    withBenchDatabase(async (db) => {
      const endedAt = new Date(Math.floor(Date.now() / 1000) * 1000 - HOUR_MS);
      const sessions: SimSession[] = [];
      for (let i = 0; i < SESSIONS; i++) sessions.push(generateSession({ seed: `bench-scale-${i}`, size: ENTRIES, endedAt }));
      const simulator = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET });
      try {
        await seedSessions(db.pool, simulator, sessions);
        const copy = await copyBaseline(db.url, sessions);
        console.log(`COPY: ${fmt(copy.rowsPerSecond)} rows/s`);
        const base = { databaseUrl: db.url, apiKey: API_KEY, apiSecret: API_SECRET, streamBaseUrl: simulator.url };
        const setups: { name: string; processes: number; concurrency: number }[] = [
          { name: 'WORKER_CONCURRENCY 1', processes: 1, concurrency: 1 },
          { name: 'WORKER_CONCURRENCY 4', processes: 1, concurrency: 4 },
          { name: 'WORKER_CONCURRENCY 16', processes: 1, concurrency: 16 },
          { name: 'two worker processes, WORKER_CONCURRENCY 4 each', processes: 2, concurrency: 4 },
        ];
        const runs: ScalingRun[] = [];
        for (const setup of setups) {
          await emptyArchive(db.pool);
          const workers: ServiceProcess[] = [];
          try {
            for (let i = 0; i < setup.processes; i++) workers.push(await startServiceProcess({ ...base, command: 'worker', concurrency: setup.concurrency }));
            const archive = await archiveAndWait(db.pool, sessions, 120_000);
            runs.push({ name: setup.name, archive });
            console.log(`${setup.name}: ${fmt(archive.rowsPerSecond)} rows/s (${ratio(archive.rowsPerSecond, copy.rowsPerSecond)} COPY)`);
          } finally {
            await Promise.all(workers.map((w) => w.stop()));
          }
        }
        const single = runs[0]!.archive.rowsPerSecond;
        await appendResults({
          title: 'Scaling (bench/scaling.ts)',
          command: 'node bin/run-ts.js bench/scaling.ts',
          machine: await describeMachine(db.pool),
          notes: [
            `${SESSIONS} sessions × ${ENTRIES} entries (${fmt(copy.rows)} rows), simulator with no added latency, \`attendance worker\` child processes. ` +
              'Rows/s from making all due to the last `archived_at`; each run starts from an emptied table. Baseline: COPY of the same rows.',
          ],
          table: {
            header: ['run', 'seconds', 'rows/s', 'ratio to COPY', 'ratio to concurrency 1'],
            rows: [
              ['COPY (baseline)', copy.seconds.toFixed(2), fmt(copy.rowsPerSecond), '1.00 ×', ''],
              ...runs.map((r) => [
                r.name,
                r.archive.seconds.toFixed(2),
                fmt(r.archive.rowsPerSecond),
                ratio(r.archive.rowsPerSecond, copy.rowsPerSecond),
                ratio(r.archive.rowsPerSecond, single),
              ]),
            ],
          },
          verdicts: [
            'No target: two cores are shared by the simulator, the workers and Postgres, so past a few sessions in flight the cores, not the concurrency, set the pace.',
          ],
        });
        return { copy, runs };
      } finally {
        await simulator.close();
      }
    }),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await runScalingBench();
