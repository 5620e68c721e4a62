/**
 * Where the time of a measured window goes, from the kernel's own accounting (no instrumentation in
 * the service): CPU of the service process (/proc/<pid>/stat), of the bench database's Postgres
 * backends (pids from pg_stat_activity, CPU from /proc/<pid>/stat), of Postgres's background
 * processes (WAL writer, checkpointer, …: shared by every database of the server), of this process
 * (the load generator, the simulator), and of the whole machine (/proc/stat), so what other
 * processes on the shared cores took is visible too. pg_stat_statements would split Postgres's share
 * by statement, but it needs shared_preload_libraries, so it is not relied on.
 *
 * Postgres backends come and go (pgbench's, a pool that grows), so their CPU is sampled every
 * SAMPLE_MS through a connection to the admin database (so the sampling itself is not counted): a
 * backend first seen after the start counts from zero, one that exits counts to its last sample.
 * The bench's own connections (polling for completion, bookkeeping) carry BENCH_APPLICATION_NAME
 * and are left out.
 */
import { readFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import pg from 'pg';
import { ADMIN_URL, BENCH_APPLICATION_NAME } from './bench-env.ts';

const SAMPLE_MS = 200;
// USER_HZ: the unit of /proc's CPU times on every Linux the project runs on.
const MS_PER_TICK = 10;

export interface CpuSplit {
  readonly wallMs: number;
  /** The window on the monotonic clock, in µs (what --cpu-prof timestamps its samples with). */
  readonly fromUs: number;
  readonly toUs: number;
  readonly cores: number;
  /** The service child process; 0 when no pid was given. */
  readonly serviceMs: number;
  /** Client backends (and autovacuum workers) of the bench database, but for the bench's own bookkeeping connections. */
  readonly postgresMs: number;
  /** WAL writer, checkpointer, background writer, postmaster: shared by the whole server. */
  readonly postgresBackgroundMs: number;
  /** This process: the load generator or the simulator, and the bench's bookkeeping. */
  readonly benchMs: number;
  /** All processes on the machine together (user, system, irq, steal). */
  readonly machineBusyMs: number;
}

export interface CpuWindow {
  stop(): Promise<CpuSplit>;
}

async function processTicks(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses: the fields counted from the last ')' are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

async function machineBusyTicks(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0]!;
  const [, user, nice, system, _idle, _iowait, irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  return user! + nice! + system! + irq! + softirq! + steal!;
}

interface Tracked {
  first: number;
  last: number;
}

/** Starts accounting now; stop() ends the window and returns the split in CPU milliseconds. */
export async function startCpuWindow(databaseName: string, servicePid?: number): Promise<CpuWindow> {
  const admin = new pg.Client(ADMIN_URL);
  await admin.connect();
  const backends = new Map<number, Tracked>();
  const background = new Map<number, Tracked>();
  let postmaster: number | undefined;

  const sample = async (initial: boolean): Promise<void> => {
    const { rows } = await admin.query<{ pid: number; ours: boolean }>(
      `select pid, datname is not distinct from $1 as ours from pg_stat_activity
        where (datname = $1 and application_name is distinct from $2)
           or (datname is null and backend_type in ('walwriter', 'checkpointer', 'background writer'))`,
      [databaseName, BENCH_APPLICATION_NAME],
    );
    await Promise.all(
      rows.map(async ({ pid, ours }) => {
        const ticks = await processTicks(pid);
        if (ticks === undefined) return;
        const into = ours ? backends : background;
        const tracked = into.get(pid);
        if (tracked) tracked.last = ticks;
        else into.set(pid, { first: initial ? ticks : 0, last: ticks });
        if (postmaster === undefined && !ours) {
          const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
          const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
          if (Number.isInteger(ppid) && ppid > 1) postmaster = ppid;
        }
      }),
    );
  };

  const started = performance.now();
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const bench0 = process.cpuUsage();
  const service0 = servicePid === undefined ? 0 : ((await processTicks(servicePid)) ?? 0);
  const machine0 = await machineBusyTicks();
  await sample(true);
  const postmaster0 = postmaster === undefined ? 0 : ((await processTicks(postmaster)) ?? 0);
  let sampling = Promise.resolve();
  const timer = setInterval(() => {
    sampling = sampling.then(() => sample(false)).catch(() => undefined);
  }, SAMPLE_MS);

  return {
    async stop() {
      clearInterval(timer);
      await sampling;
      const wallMs = performance.now() - started;
      const toUs = Number(process.hrtime.bigint() / 1000n);
      const bench = process.cpuUsage(bench0);
      const service = servicePid === undefined ? 0 : ((await processTicks(servicePid)) ?? service0) - service0;
      const machine = (await machineBusyTicks()) - machine0;
      await sample(false);
      const postmasterTicks = postmaster === undefined ? 0 : ((await processTicks(postmaster)) ?? postmaster0) - postmaster0;
      await admin.end();
      const sum = (m: Map<number, Tracked>) => [...m.values()].reduce((s, t) => s + t.last - t.first, 0);
      return {
        wallMs,
        fromUs,
        toUs,
        cores: cpus().length,
        serviceMs: service * MS_PER_TICK,
        postgresMs: sum(backends) * MS_PER_TICK,
        postgresBackgroundMs: (sum(background) + postmasterTicks) * MS_PER_TICK,
        benchMs: (bench.user + bench.system) / 1000,
        machineBusyMs: machine * MS_PER_TICK,
      };
    },
  };
}

/**
 * One row of a "where the time goes" table, per unit of work (webhook, page). The core time the
 * window offered (cores × wall ÷ units) is split into the service, Postgres, this process, other
 * processes on the machine, and idle. `latencyMs` is how long one unit took from its own start to
 * its end (a webhook's mean latency; for serial pages, wall ÷ pages): what of it was not CPU in the
 * service or in Postgres is waiting (network, commit flush, queueing, the simulator's delay).
 * Undefined where units overlap in ways the bench cannot see (several sessions in flight).
 */
export function perUnitRow(name: string, split: CpuSplit, units: number, latencyMs: number | undefined): string[] {
  const per = (ms: number) => (units > 0 ? (ms / units).toFixed(3) : 'n/a');
  const ours = split.serviceMs + split.postgresMs + split.postgresBackgroundMs + split.benchMs;
  const others = Math.max(0, split.machineBusyMs - ours);
  const idle = Math.max(0, split.cores * split.wallMs - split.machineBusyMs);
  const cpuPerUnit = units > 0 ? (split.serviceMs + split.postgresMs + split.postgresBackgroundMs) / units : 0;
  return [
    name,
    fixed(units),
    per(split.wallMs),
    per(split.serviceMs),
    per(split.postgresMs),
    per(split.postgresBackgroundMs),
    per(split.benchMs),
    per(others),
    per(idle),
    latencyMs === undefined ? 'n/a' : latencyMs.toFixed(3),
    latencyMs === undefined ? 'n/a' : Math.max(0, latencyMs - cpuPerUnit).toFixed(3),
  ];
}

function fixed(n: number): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: 0 });
}

export const PER_UNIT_HEADER = [
  'window',
  'units',
  'wall ÷ units',
  'service CPU',
  'Postgres CPU, bench db backends',
  'Postgres CPU, WAL writer / checkpointer / bgwriter',
  'bench process CPU',
  'other processes CPU',
  'idle core time',
  'latency of one unit',
  'waiting (latency − service − Postgres CPU)',
] as const;
