import type { ParseArgsConfig } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** Flag values as node:util parseArgs returns them; read them through args.ts. */
export type OptionValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

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
  /** True when `run` reads positional arguments; otherwise the CLI refuses any (exit 2). */
  readonly positionals?: boolean;
  /** Returns the exit code. */
  run(values: OptionValues, positionals: string[], ctx: CommandContext): Promise<number>;
}

/**
 * A command the CLI can list and load without importing it first, so `--help` stays fast and a
 * command's dependencies load only when it runs.
 */
export interface CommandEntry {
  readonly summary: string;
  load(): Promise<Command>;
}
