/**
 * How the product starts under each way of running its TypeScript: tsx (the loader it used to ship
 * with) on Node 20 and 24, Node 24's own type stripping (what bin/attendance.js does now), and
 * Node 24 running the output of `tsc`. For each: cold start of `serve` to the first 200 on
 * /healthz and the resident set once idle, and `serve --help` wall time and peak RSS. Runs are
 * interleaved across the variants, so a machine that slows down mid-run slows them all.
 *
 * `node bin/run-ts.js bench/startup.ts` (DATABASE_URL: the server to make a throwaway database on).
 * Node 24 is BENCH_NODE24 or the one .ci/run installs; Node 20 is BENCH_NODE20 or this process when
 * it is a Node 20. A variant whose Node is missing is left out. BENCH_STARTUP_RUNS: runs each (5).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startSimulator } from '../tools/simulator/server.ts';
import { appendResults, describeMachine, fmt, withBenchDatabase, withTimeout } from './lib/bench-env.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const WORK = fileURLToPath(new URL('.tmp/startup/', import.meta.url));
const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 5);
/** Idle means: no request and no sweep for this long after the first 200. */
const SETTLE_MS = 3_000;
const POLL_MS = 5;
const START_TIMEOUT_MS = 30_000;
const API_KEY = 'startup-key';
const API_SECRET = 'startup-secret';

interface Variant {
  readonly name: string;
  readonly node: string;
  readonly args: readonly string[];
  /** tsx keeps its transform cache in TMPDIR; each variant gets its own, warm after the first run. */
  readonly tmpdir: string;
}

interface Sample {
  readonly startMs: number;
  readonly startCpuMs: number;
  readonly idleRssMiB: number;
  readonly helpMs: number;
  readonly helpCpuMs: number;
  readonly helpMaxRssMiB: number;
}

function nodeMajor(node: string): number {
  return Number(execFileSync(node, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).trim());
}

function findNode(envName: string, major: number, fallbacks: readonly string[]): string | undefined {
  const candidates = [process.env[envName], ...fallbacks].filter((c): c is string => c !== undefined && c !== '');
  return candidates.find((candidate) => existsSync(candidate) && nodeMajor(candidate) === major);
}

/** The entry point as it was before: tsx registered, then the sources imported through it. */
const TSX_ENTRY = `import { register } from 'tsx/esm/api';
register();
const { main } = await import('../../../src/cli.ts');
const code = await main(process.argv.slice(2));
process.exitCode = code;
setTimeout(() => process.exit(code), 2_000).unref();
`;

const COMPILED_ENTRY = `const { main } = await import('./src/cli.js');
const code = await main(process.argv.slice(2));
process.exitCode = code;
setTimeout(() => process.exit(code), 2_000).unref();
`;

/** src/ compiled by tsc the way a build step would (.ts specifiers rewritten to .js), beside package.json and migrations/. */
async function compile(): Promise<string> {
  const out = `${WORK}compiled/`;
  await rm(out, { recursive: true, force: true });
  await writeFile(
    `${WORK}tsconfig.json`,
    JSON.stringify({
      extends: '../../../tsconfig.json',
      compilerOptions: { noEmit: false, outDir: 'compiled', rootDir: '../../..', rewriteRelativeImportExtensions: true, sourceMap: false },
      include: ['../../../src'],
    }),
  );
  try {
    execFileSync(process.execPath, [`${REPO}node_modules/typescript/bin/tsc`, '-p', `${WORK}tsconfig.json`], { stdio: 'pipe' });
  } catch {
    // Type errors do not stop tsc emitting; a missing entry point below does.
  }
  if (!existsSync(`${out}src/cli.js`)) throw new Error('tsc emitted no src/cli.js');
  await writeFile(`${out}package.json`, await readFile(`${REPO}package.json`));
  await symlink(`${REPO}migrations`, `${out}migrations`);
  await symlink(`${REPO}node_modules`, `${out}node_modules`);
  await writeFile(`${out}entry.mjs`, COMPILED_ENTRY);
  return `${out}entry.mjs`;
}

async function variants(): Promise<Variant[]> {
  await mkdir(WORK, { recursive: true });
  await writeFile(`${WORK}tsx-entry.mjs`, TSX_ENTRY);
  const node20 = findNode('BENCH_NODE20', 20, [process.execPath]);
  const node24 = findNode('BENCH_NODE24', 24, [`${REPO}.ci/node24/node_modules/.bin/node`, process.execPath]);
  const list: Omit<Variant, 'tmpdir'>[] = [];
  if (node20) list.push({ name: 'tsx, Node 20', node: node20, args: [`${WORK}tsx-entry.mjs`] });
  if (node24) {
    list.push({ name: 'tsx, Node 24', node: node24, args: [`${WORK}tsx-entry.mjs`] });
    list.push({ name: 'type stripping, Node 24 (bin/attendance.js)', node: node24, args: [`${REPO}bin/attendance.js`] });
    list.push({ name: 'compiled by tsc, Node 24', node: node24, args: [await compile()] });
  }
  const result: Variant[] = [];
  for (const [i, v] of list.entries()) {
    const tmpdir = `${WORK}tmp-${i}`;
    await mkdir(tmpdir, { recursive: true });
    result.push({ ...v, tmpdir });
  }
  return result;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** CPU time (user + system, every thread) the process has used so far; unlike wall time, barely moved by other load on the machine. */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line, in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function rssMiB(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]);
  return kb / 1024;
}

/** Spawn to the first 200 on /healthz, then the resident set after SETTLE_MS of idling. */
async function measureServe(v: Variant, env: Record<string, string>): Promise<{ startMs: number; startCpuMs: number; idleRssMiB: number }> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(v.node, [...v.args, 'serve'], { env: { ...env, TMPDIR: v.tmpdir, PORT: String(port) }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const startMs = await withTimeout(
      `${v.name}: serve`,
      START_TIMEOUT_MS,
      firstHealthy(
        port,
        () => child.exitCode !== null,
        () => stderr,
      ),
    );
    const startCpuMs = await cpuMs(child.pid!);
    await delay(SETTLE_MS);
    return { startMs: startMs - started, startCpuMs, idleRssMiB: await rssMiB(child.pid!, 'VmRSS') };
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

async function firstHealthy(port: number, gone: () => boolean, stderr: () => string): Promise<number> {
  for (;;) {
    if (gone()) throw new Error(`serve exited before answering: ${stderr()}`);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      if (response.status === 200) return performance.now();
    } catch {
      // not listening yet
    }
    await delay(POLL_MS);
  }
}

/** `serve --help` under /usr/bin/time, for the child's own peak RSS. */
async function measureHelp(v: Variant, env: Record<string, string>): Promise<{ helpMs: number; helpCpuMs: number; helpMaxRssMiB: number }> {
  const started = performance.now();
  const child = spawn('/usr/bin/time', ['-f', 'maxrss_kb=%M cpu_s=%U+%S', v.node, ...v.args, 'serve', '--help'], {
    env: { ...env, TMPDIR: v.tmpdir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const helpMs = performance.now() - started;
  const m = /maxrss_kb=(\d+) cpu_s=([\d.]+)\+([\d.]+)/.exec(stderr);
  if (code !== 0 || !m) throw new Error(`${v.name}: serve --help failed (${code}): ${stderr}`);
  return { helpMs, helpCpuMs: (Number(m[2]) + Number(m[3])) * 1000, helpMaxRssMiB: Number(m[1]) / 1024 };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export async function runStartupBench(): Promise<void> {
  const list = await variants();
  if (list.length === 0) throw new Error('no Node 20 or 24 found (set BENCH_NODE20 / BENCH_NODE24)');
  const sim = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET });
  try {
    await withBenchDatabase(
      async (db) => {
        const env = {
          PATH: process.env.PATH ?? '',
          DATABASE_URL: db.url,
          STREAM_API_KEY: API_KEY,
          STREAM_API_SECRET: API_SECRET,
          STREAM_BASE_URL: sim.url,
          HOST: '127.0.0.1',
          LOG_LEVEL: 'warn',
          RECONCILE_INTERVAL_MINUTES: '0',
        };
        const samples = new Map<string, Sample[]>(list.map((v) => [v.name, []]));
        // One unrecorded round first: it fills the page cache and tsx's transform cache.
        for (const v of list) {
          await measureServe(v, env);
          await measureHelp(v, env);
        }
        for (let run = 1; run <= RUNS; run++) {
          for (const v of list) {
            const serve = await measureServe(v, env);
            const help = await measureHelp(v, env);
            samples.get(v.name)!.push({ ...serve, ...help });
            console.log(
              `run ${run} ${v.name}: start ${fmt(serve.startMs)} ms (cpu ${fmt(serve.startCpuMs)}), idle ${fmt(serve.idleRssMiB, 1)} MiB; ` +
                `--help ${fmt(help.helpMs)} ms (cpu ${fmt(help.helpCpuMs)}), ${fmt(help.helpMaxRssMiB, 1)} MiB`,
            );
          }
        }
        const rows = list.map((v) => {
          const s = samples.get(v.name)!;
          return [
            v.name,
            fmt(median(s.map((x) => x.startMs))),
            fmt(median(s.map((x) => x.startCpuMs))),
            fmt(median(s.map((x) => x.idleRssMiB)), 1),
            fmt(median(s.map((x) => x.helpMs))),
            fmt(median(s.map((x) => x.helpCpuMs))),
            fmt(median(s.map((x) => x.helpMaxRssMiB)), 1),
          ];
        });
        await appendResults({
          title: 'Start-up (bench/startup.ts)',
          command: 'node bin/run-ts.js bench/startup.ts',
          machine: await describeMachine(db.pool),
          notes: [
            `Medians of ${RUNS} runs per variant, interleaved, after one unrecorded round (page cache and tsx's transform cache warm). ` +
              `"start": spawn to the first 200 on /healthz of \`serve\` (migrated database, a local Stream simulator, RECONCILE_INTERVAL_MINUTES=0); ` +
              `"idle RSS": its VmRSS ${SETTLE_MS / 1000} s later; \`serve --help\`: wall time and peak RSS (/usr/bin/time). ` +
              'CPU: user + system time of the process (to the first 200, or in all), which other load on a shared machine moves far less than wall time.',
          ],
          table: { header: ['variant', 'start (ms)', 'start CPU (ms)', 'idle RSS (MiB)', '--help (ms)', '--help CPU (ms)', '--help peak RSS (MiB)'], rows },
          verdicts: [],
        });
      },
      { prefix: 'attendance_bench_startup' },
    );
  } finally {
    await sim.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runStartupBench();
