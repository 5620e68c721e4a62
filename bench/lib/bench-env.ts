/**
 * What every benchmark shares: a throwaway database on the server of DATABASE_URL, a description
 * of the machine for the record, and the append to bench/RESULTS.md.
 */
import { appendFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import pg from 'pg';
import { withDatabaseName } from '../../src/db/client.ts';
import { runMigrations } from '../../src/db/migrate.ts';

export const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** application_name of the bench's own connections (polling, setup), not the service's or a baseline's. */
export const BENCH_APPLICATION_NAME = 'attendance-bench';

export interface BenchDatabase {
  readonly name: string;
  readonly url: string;
  /** A small pool for the benchmark's own bookkeeping queries. */
  readonly pool: pg.Pool;
}

export interface BenchDatabaseOptions {
  /** Start of the database's name (default `attendance_bench`). */
  readonly prefix?: string;
  /** Connections in `db.pool` (default 4; 1 when session settings such as statement_timeout must hold). */
  readonly poolMax?: number;
  /** After this long every connection to the database is cut, so `fn` fails and the database is still dropped. */
  readonly deadlineMs?: number;
  /** When `fn` throws, keep the database and print its name, for inspection. */
  readonly keepOnFailure?: boolean;
  /** Keep the database whatever happens and print its name (bench/sql-views.ts --keep). */
  readonly keep?: boolean;
}

/** A fresh migrated database for the length of `fn`, dropped afterwards whatever happens (unless kept on failure). */
export async function withBenchDatabase<T>(fn: (db: BenchDatabase) => Promise<T>, options: BenchDatabaseOptions = {}): Promise<T> {
  const name = `${options.prefix ?? 'attendance_bench'}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client(ADMIN_URL);
  await admin.connect();
  await admin.query(`create database ${name}`);
  const url = withDatabaseName(ADMIN_URL, name);
  // Named, so the CPU accounting (cpu-account.ts) can leave the bench's own queries out.
  const pool = new pg.Pool({ connectionString: url, max: options.poolMax ?? 4, application_name: BENCH_APPLICATION_NAME });
  // The forced drop at the end (or the deadline) may cut a connection the pool is still using.
  pool.on('error', () => undefined);
  const deadline =
    options.deadlineMs === undefined
      ? undefined
      : setTimeout(() => {
          console.error(`deadline of ${options.deadlineMs! / 1000} s passed; cutting the benchmark's connections`);
          void admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
        }, options.deadlineMs);
  let failed = true;
  try {
    await runMigrations(pool);
    const result = await fn({ name, url, pool });
    failed = false;
    return result;
  } finally {
    clearTimeout(deadline);
    await pool.end();
    if ((failed && options.keepOnFailure) || options.keep) console.log(`database kept for inspection: ${name}`);
    else await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}

export interface MachineInfo {
  readonly cores: number;
  readonly memoryGiB: number;
  readonly cpuModel: string;
  readonly node: string;
  readonly postgres: string;
}

export async function describeMachine(pool: pg.Pool): Promise<MachineInfo> {
  const version = (await pool.query<{ server_version: string }>('show server_version')).rows[0]?.server_version ?? '?';
  return {
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    cpuModel: cpus()[0]?.model.trim() ?? '?',
    node: process.version,
    postgres: version,
  };
}

export interface ResultSection {
  readonly title: string;
  readonly command: string;
  readonly machine: MachineInfo;
  /** Free text under the heading: setup, what the baseline is. */
  readonly notes: readonly string[];
  readonly table: { readonly header: readonly string[]; readonly rows: readonly (readonly string[])[] };
  /** Lines after the table: targets and verdicts. */
  readonly verdicts: readonly string[];
  /** Further tables after the verdicts (where the time goes), each under a line of its own. */
  readonly moreTables?: readonly { readonly title: string; readonly header: readonly string[]; readonly rows: readonly (readonly string[])[] }[];
  /** Lines at the very end (profiles). */
  readonly footnotes?: readonly string[];
}

/** Appends one dated section to bench/RESULTS.md (or to the file BENCH_RESULTS names, for trial runs). */
export async function appendResults(section: ResultSection): Promise<void> {
  const m = section.machine;
  const lines = [
    '',
    `## ${section.title}, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `\`${section.command}\` — ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB, Node ${m.node}, PostgreSQL ${m.postgres}; ` +
      'client, service, simulator and Postgres on the same cores, loopback only.',
    '',
    ...section.notes.map((note) => `${note}`),
    ...(section.notes.length > 0 ? [''] : []),
    `| ${section.table.header.join(' | ')} |`,
    `| ${section.table.header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...section.table.rows.map((row) => `| ${row.join(' | ')} |`),
    '',
    ...section.verdicts.map((v) => `- ${v}`),
    '',
    ...(section.moreTables ?? []).flatMap((t) => [
      t.title,
      '',
      `| ${t.header.join(' | ')} |`,
      `| ${t.header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
      ...t.rows.map((row) => `| ${row.join(' | ')} |`),
      '',
    ]),
    ...(section.footnotes ?? []).flatMap((note) => [note, '']),
  ];
  await appendFile(process.env.BENCH_RESULTS || new URL('../RESULTS.md', import.meta.url), lines.join('\n'));
}

/** Rejects after `ms`, so no benchmark step can hang the run. */
export async function withTimeout<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * BENCH_QUICK=1: every benchmark of `npm run bench` at a fraction of its size (seconds, entries,
 * pages), for trying the benchmarks themselves out; its figures are not the targets' figures.
 */
export const QUICK = process.env.BENCH_QUICK === '1';

/** `flag N`, a whole number from 1 to `max`, of a benchmark run on its own; undefined without it, so its default holds. */
export function parseCountFlag(argv: readonly string[], flag: string, max: number, usage: string): number | undefined {
  const i = argv.indexOf(flag);
  if (i === -1) return undefined;
  const value = Number(argv[i + 1]);
  if (!Number.isInteger(value) || value < 1 || value > max) throw new Error(usage);
  return value;
}

/** `--rounds N` (1 to 9). */
export function parseRounds(argv: readonly string[], script: string): number | undefined {
  return parseCountFlag(argv, '--rounds', 9, `usage: ${script} [--rounds 1..9]`);
}

/** The median (the middle one of an odd count, the lower middle of an even one). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[(sorted.length - 1) >> 1] ?? Number.NaN;
}

/** The index of the median value in `values` (which round was the median one). */
export function medianIndex(values: readonly number[]): number {
  const m = median(values);
  return values.indexOf(m);
}

export function ratio(value: number, baseline: number): string {
  return baseline > 0 ? `${(value / baseline).toFixed(2)} ×` : 'n/a';
}

export function fmt(value: number, digits = 0): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function pass(ok: boolean): string {
  return ok ? 'met' : 'MISSED';
}

/** The verdict against an issue's target. */
export function passMiss(ok: boolean): string {
  return ok ? 'PASS' : 'MISS';
}
