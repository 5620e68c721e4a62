import type { ParseArgsConfig } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface CommandContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM); long-running commands await it. */
  readonly stopSignal: AbortSignal;
}

export interface Command {
  readonly name: string;
  readonly summary: string;
  /** Usage text after `attendance <name>`; shown by `--help`. */
  readonly usage: string;
  readonly options: OptionSpec;
  /** Returns the exit code. */
  run(values: Record<string, string | boolean | (string | boolean)[] | undefined>, positionals: string[], ctx: CommandContext): Promise<number>;
}
