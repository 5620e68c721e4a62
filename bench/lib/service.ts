/**
 * The service as users run it: `attendance serve` (or `worker`) in a child process, so its memory
 * can be read from /proc and its CPU is its own process's, started with the node flags the image
 * starts it with (the Dockerfile's ENTRYPOINT).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/attendance.js', import.meta.url));
const DOCKERFILE = fileURLToPath(new URL('../../Dockerfile', import.meta.url));
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

/** The flags between `node` and `bin/attendance.js` in the Dockerfile's ENTRYPOINT. */
function imageNodeFlags(): string[] {
  const entrypoint = /^ENTRYPOINT (\[.*\])\s*$/m.exec(readFileSync(DOCKERFILE, 'utf8'))?.[1];
  const argv = entrypoint === undefined ? undefined : (JSON.parse(entrypoint) as string[]);
  const bin = argv?.indexOf('bin/attendance.js') ?? -1;
  if (argv?.[0] !== 'node' || bin < 1) throw new Error('the Dockerfile has no ENTRYPOINT ["node", …, "bin/attendance.js"]');
  return argv.slice(1, bin);
}

export interface ServiceProcessOptions {
  readonly command: 'serve' | 'worker';
  readonly args?: readonly string[];
  readonly databaseUrl: string;
  readonly apiKey: string;
  readonly apiSecret: string;
  readonly streamBaseUrl: string;
  readonly concurrency?: number;
  /** Node flags after the image's (imageNodeFlags), e.g. --trace-gc. */
  readonly nodeArgs?: readonly string[];
}

export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Set for `serve`: where it listens. */
  readonly url: string | undefined;
  /** Peak resident set (VmHWM) so far, in MiB. */
  peakRssMiB(): Promise<number>;
  /** Lines logged at warn or above, for the record when something went wrong. */
  readonly problems: string[];
  /** With --trace-gc in nodeArgs: the largest heap left live after a full (mark-compact) GC, in MB. */
  liveHeapAfterFullGcMB(): number | null;
  stop(): Promise<void>;
}

export async function startServiceProcess(options: ServiceProcessOptions): Promise<ServiceProcess> {
  // BENCH_CPU_PROF=<dir> profiles every service process a benchmark starts (node --cpu-prof).
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const node = [...profile, ...imageNodeFlags(), ...(options.nodeArgs ?? [])];
  const child = spawn(process.execPath, [...node, BIN, options.command, ...(options.args ?? [])], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: options.databaseUrl,
      STREAM_API_KEY: options.apiKey,
      STREAM_API_SECRET: options.apiSecret,
      STREAM_BASE_URL: options.streamBaseUrl,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      WORKER_CONCURRENCY: String(options.concurrency ?? 4),
      RECONCILE_INTERVAL_MINUTES: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const problems: string[] = [];
  let liveAfterFullGc: number | null = null;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let buffered = '';
  const ready = new Promise<string | undefined>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${options.command} did not start within ${START_TIMEOUT_MS} ms:\n${problems.join('\n')}`)),
      START_TIMEOUT_MS,
    );
    const onLine = (line: string) => {
      const fullGc = /Mark-Compact [\d.]+ \([\d.]+\) -> ([\d.]+) \(/.exec(line);
      if (fullGc) {
        liveAfterFullGc = Math.max(liveAfterFullGc ?? 0, Number(fullGc[1]));
        return;
      }
      if (line.includes('Scavenge') || line.includes('Mark-Compact')) return;
      if (!line.startsWith('{')) {
        if (line.trim() !== '') problems.push(line);
        return;
      }
      let parsed: { level?: number; msg?: string; url?: string };
      try {
        parsed = JSON.parse(line) as typeof parsed;
      } catch {
        return;
      }
      if ((parsed.level ?? 0) >= 40) problems.push(line);
      const started = options.command === 'serve' ? parsed.msg === 'listening' : parsed.msg === 'worker started';
      if (started) {
        clearTimeout(timer);
        resolve(parsed.url);
      }
    };
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let newline = buffered.indexOf('\n');
      while (newline !== -1) {
        onLine(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${options.command} exited with ${code} before it was ready:\n${problems.join('\n')}`));
    });
  });
  let url: string | undefined;
  try {
    url = await ready;
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const pid = child.pid!;
  return {
    child,
    pid,
    url,
    problems,
    liveHeapAfterFullGcMB: () => liveAfterFullGc,
    async peakRssMiB() {
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      const kb = Number(/VmHWM:\s+(\d+)\s+kB/.exec(status)?.[1] ?? NaN);
      return kb / 1024;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}
