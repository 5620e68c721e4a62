/**
 * The hottest frames of a service's --cpu-prof profile (BENCH_CPU_PROF=<dir>, see service.ts): self
 * time per function and per package or source folder, idle left out. A benchmark that started the
 * service with profiling on summarises the profile once the service has exited and written it.
 *
 *   node bin/run-ts.js bench/lib/cpu-profile.ts <file.cpuprofile> [top]
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount?: number;
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Spans of the monotonic clock in µs (process.hrtime, which V8's sample timestamps share on Linux). */
export type Windows = readonly { readonly fromUs: number; readonly toUs: number }[];

export interface HotFrame {
  readonly name: string;
  readonly ms: number;
  /** Share of the busy (non-idle) samples. */
  readonly share: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly busyMs: number;
  readonly frames: readonly HotFrame[];
  readonly places: readonly HotFrame[];
}

/** Where a frame's code lives: a package, a folder of this repository, or node's own. */
function placeOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return 'node:*';
  const own = /\/((?:src|bin|tools)\/(?:[^/]+\/)?)[^/]+$/.exec(url);
  if (own) return own[1]!;
  return url.replace(/^file:\/\/.*\//, '');
}

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  if (url === '') return functionName || '(anonymous)';
  const file = url.replace(/^file:\/\/.*\/(node_modules\/)?/, '');
  return `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}`;
}

/** Self time per frame and per place; only samples inside `windows` when given (the measured runs, not start-up). */
export function summariseProfile(file: string, profile: Profile, top: number, windows?: Windows): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const counts = new Map<number, number>();
  let at = profile.startTime;
  let kept = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    if (windows && !windows.some((w) => at >= w.fromUs && at <= w.toUs)) continue;
    kept++;
    counts.set(profile.samples[i]!, (counts.get(profile.samples[i]!) ?? 0) + 1);
  }
  // The sampling interval is even on average; the profile's span over its samples gives it.
  const msPerSample = profile.samples.length > 0 ? (profile.endTime - profile.startTime) / 1000 / profile.samples.length : 0;
  if (windows && kept === 0) throw new Error(`no sample of ${file} falls inside the measured windows`);
  const frames = new Map<string, number>();
  const places = new Map<string, number>();
  let busy = 0;
  for (const [id, count] of counts) {
    const node = byId.get(id);
    if (!node || node.callFrame.functionName === '(idle)') continue;
    busy += count;
    const name = frameName(node);
    frames.set(name, (frames.get(name) ?? 0) + count);
    const place = placeOf(node.callFrame.url, node.callFrame.functionName);
    places.set(place, (places.get(place) ?? 0) + count);
  }
  const rank = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, count]) => ({ name, ms: count * msPerSample, share: busy > 0 ? count / busy : 0 }));
  return { file, busyMs: busy * msPerSample, frames: rank(frames), places: rank(places) };
}

/**
 * The main thread's profile node wrote for `pid` in `dir` (CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile),
 * if any; a loader thread (tsx on Node 20) writes one of its own.
 */
export async function summariseProfileOf(dir: string, pid: number, windows?: Windows, top = 8): Promise<ProfileSummary | undefined> {
  const name = (await readdir(dir)).find((f) => {
    const parts = f.split('.');
    return f.endsWith('.cpuprofile') && parts[3] === String(pid) && parts[4] === '0';
  });
  if (name === undefined) return undefined;
  const file = join(dir, name);
  return summariseProfile(name, JSON.parse(await readFile(file, 'utf8')) as Profile, top, windows);
}

/** Lines for bench/RESULTS.md: the top frames and places by self time. */
export function describeProfile(what: string, summary: ProfileSummary, units: number, unit: string): string[] {
  const per = (ms: number) => `${((ms / units) * 1000).toFixed(1)} µs/${unit}`;
  const list = (items: readonly HotFrame[]) => items.map((f) => `\`${f.name}\` ${(f.share * 100).toFixed(1)} % (${per(f.ms)})`).join('; ');
  return [
    `${what}: --cpu-prof of the service (${summary.file}), samples inside the measured runs only: ${summary.busyMs.toFixed(0)} ms busy, ${per(summary.busyMs)} over the ${units.toLocaleString('en-US')} ${unit}s of those runs (the profiler's own overhead included). ` +
      `Self time by place: ${list(summary.places)}. Hottest frames: ${list(summary.frames)}.`,
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [file, top] = process.argv.slice(2);
  if (!file) throw new Error('usage: cpu-profile.ts <file.cpuprofile> [top]');
  const summary = summariseProfile(file, JSON.parse(await readFile(file, 'utf8')) as Profile, Number(top ?? 20));
  console.log(`busy ${summary.busyMs.toFixed(0)} ms`);
  console.log('\nby place:');
  for (const f of summary.places) console.log(`${(f.share * 100).toFixed(1).padStart(5)} %  ${f.ms.toFixed(0).padStart(6)} ms  ${f.name}`);
  console.log('\nby frame:');
  for (const f of summary.frames) console.log(`${(f.share * 100).toFixed(1).padStart(5)} %  ${f.ms.toFixed(0).padStart(6)} ms  ${f.name}`);
}
