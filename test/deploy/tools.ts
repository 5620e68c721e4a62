import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ToolResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a command-line tool with only PATH and HOME in its environment, so variables of the test
 * run cannot leak into what it resolves. Never throws for a non-zero exit; `code` says.
 */
export async function runTool(file: string, args: readonly string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<ToolResult> {
  try {
    const { stdout, stderr } = await run(file, [...args], {
      cwd: options.cwd,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
      timeout: options.timeoutMs ?? 30_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code?: number | string; stdout?: string; stderr?: string };
    if (failure.code === 'ENOENT') return { code: 127, stdout: '', stderr: `${file}: not found` };
    return { code: typeof failure.code === 'number' ? failure.code : 1, stdout: failure.stdout ?? '', stderr: failure.stderr ?? String(error) };
  }
}

/** The first of `candidates` (each a command and the arguments that make it the tool) that answers `versionArgs`. */
export async function findTool(
  candidates: readonly (readonly string[])[],
  versionArgs: readonly string[] = ['version'],
): Promise<readonly string[] | undefined> {
  for (const candidate of candidates) {
    const [file, ...prefix] = candidate;
    if ((await runTool(file!, [...prefix, ...versionArgs], { timeoutMs: 10_000 })).code === 0) return candidate;
  }
  return undefined;
}
