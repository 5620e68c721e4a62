import { PassThrough } from 'node:stream';
import { main } from '../../src/cli.ts';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `attendance <argv>` in-process with its own env and captured output. */
export async function runCli(argv: string[], env: Record<string, string | undefined> = {}, stopSignal?: AbortSignal): Promise<CliResult> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (c) => (stdout += String(c)));
  err.on('data', (c) => (stderr += String(c)));
  const code = await main(argv, { env, stdout: out, stderr: err, stopSignal: stopSignal ?? new AbortController().signal });
  return { code, stdout, stderr };
}
