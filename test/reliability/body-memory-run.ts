import { readFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import type { ServeSupervisor } from './serve-process.ts';
import type { UploadPlan, UploadReport } from './upload-flood.ts';

const RUN_TS = fileURLToPath(new URL('../../bin/run-ts.js', import.meta.url));
const UPLOAD_SCRIPT = fileURLToPath(new URL('./upload-flood.ts', import.meta.url));

export interface ProcessMemory {
  readonly rssMiB: number;
  /** VmHWM: the highest RSS the process has had. */
  readonly peakMiB: number;
}

export async function readProcessMemory(pid: number): Promise<ProcessMemory> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
}

/** Runs the uploads in a child process (so this event loop, which times /healthz, writes none of it). */
function runUploads(plan: UploadPlan): Promise<UploadReport> {
  const child = spawn(process.execPath, [RUN_TS, UPLOAD_SCRIPT, JSON.stringify(plan)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  return new Promise((resolve, reject) =>
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(output) as UploadReport) : reject(new Error(`upload flood exited ${code}`)))),
  );
}

export interface BodyMemoryPlan {
  readonly serve: ServeSupervisor;
  readonly apiKey: string;
  readonly uploads: number;
  readonly bytes: number;
  readonly holdLastByteMs: number;
  /** How long after the uploads the "after" RSS is read. */
  readonly settleMs: number;
}

export interface BodyMemoryReport {
  readonly uploads: UploadReport;
  readonly idle: ProcessMemory;
  readonly peak: ProcessMemory;
  readonly after: ProcessMemory;
  /** /healthz, every 100 ms during the uploads. */
  readonly health: readonly { readonly status: number; readonly ms: number }[];
}

/** Concurrent unsigned uploads against a running serve, measuring its memory and /healthz meanwhile. */
export async function runBodyMemoryScenario(plan: BodyMemoryPlan): Promise<BodyMemoryReport> {
  const { serve } = plan;
  const pid = serve.processes.at(-1)!.child.pid!;
  await delay(500);
  const idle = await readProcessMemory(pid);
  const health: { status: number; ms: number }[] = [];
  let uploading = true;
  const healthCheck = (async () => {
    while (uploading) {
      const started = performance.now();
      try {
        const response = await fetch(`${serve.url}/healthz`);
        await response.arrayBuffer();
        health.push({ status: response.status, ms: performance.now() - started });
      } catch {
        health.push({ status: 0, ms: performance.now() - started });
      }
      await delay(100);
    }
  })();
  let uploads: UploadReport;
  try {
    uploads = await runUploads({
      port: Number(new URL(serve.url).port),
      uploads: plan.uploads,
      bytes: plan.bytes,
      apiKey: plan.apiKey,
      holdLastByteMs: plan.holdLastByteMs,
    });
  } finally {
    uploading = false;
    await healthCheck;
  }
  const peak = await readProcessMemory(pid);
  await delay(plan.settleMs);
  const after = await readProcessMemory(pid);
  return { uploads, idle, peak, after, health };
}

/** One line, for the test log and `npm run chaos`. */
export function formatBodyMemory(plan: Pick<BodyMemoryPlan, 'uploads' | 'bytes' | 'settleMs'>, report: BodyMemoryReport): string {
  return (
    `${plan.uploads} × ${plan.bytes} B in ${report.uploads.seconds.toFixed(1)} s, answers ${JSON.stringify(report.uploads.statuses)}; ` +
    `RSS idle ${report.idle.rssMiB.toFixed(0)} MiB, peak (VmHWM) ${report.peak.peakMiB.toFixed(0)} MiB, ${plan.settleMs / 1000} s after ${report.after.rssMiB.toFixed(0)} MiB; ` +
    `/healthz ${report.health.length} answers, ${report.health.filter((h) => h.status !== 200).length} not 200, slowest ${Math.max(...report.health.map((h) => h.ms)).toFixed(0)} ms`
  );
}
