import { readFileSync } from 'node:fs';
import { AppError, ConfigError, UsageError, coerceError } from './errors.ts';
import { parseCommandLine } from './commands/args.ts';
import type { Command, CommandContext, CommandEntry } from './commands/types.ts';

/** Each command's module is loaded only when it runs, so `--help` stays fast. */
const COMMANDS: Readonly<Record<string, CommandEntry>> = {
  serve: { summary: 'HTTP server + worker + reconciler (--no-worker: intake only)', load: async () => (await import('./commands/serve.ts')).serveCommand },
  worker: { summary: 'worker + reconciler only', load: async () => (await import('./commands/worker.ts')).workerCommand },
  migrate: { summary: 'apply migrations/ to DATABASE_URL and exit', load: async () => (await import('./commands/migrate.ts')).migrateCommand },
  backfill: { summary: 'enqueue sessions from Stream for a window or one session', load: async () => (await import('./commands/backfill.ts')).backfillCommand },
  status: {
    summary: 'counts by status, oldest pending, sessions at risk, dead sessions',
    load: async () => (await import('./commands/status.ts')).statusCommand,
  },
  redrive: { summary: 'move dead sessions back to pending', load: async () => (await import('./commands/redrive.ts')).redriveCommand },
  prune: {
    summary: 'delete inbox events (and archived attendance, if ARCHIVE_RETENTION_DAYS) past their retention now',
    load: async () => (await import('./commands/prune.ts')).pruneCommand,
  },
  forget: {
    summary: "erase one user's attendance and every stored copy of their id (--user <id> [--dry-run])",
    load: async () => (await import('./commands/forget.ts')).forgetCommand,
  },
};

/**
 * Commands that live beside src/ in tools/ (the simulator, the embedded-Postgres demo) and ship
 * only in a clone of the repository; the entry point passes them in as `developmentCommands`
 * when they are there, since the product never imports tools/.
 */
export const DEVELOPMENT_COMMAND_NAMES = ['demo', 'simulate'] as const;

function developmentCommandMissing(name: string): string {
  return `attendance: '${name}' is a development command: run it from a clone of the repository after 'npm install'`;
}

let packageVersion: string | undefined;

/** The version in package.json, found beside src/ rather than in the working directory. */
function readVersion(): string {
  packageVersion ??= (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  return packageVersion;
}

function mainHelp(development: Readonly<Record<string, CommandEntry>>): string {
  const developmentNames = [...new Set([...DEVELOPMENT_COMMAND_NAMES, ...Object.keys(development)])].filter((name) => !Object.hasOwn(COMMANDS, name));
  const width = Math.max(...[...Object.keys(COMMANDS), ...developmentNames].map((name) => name.length));
  const line = (name: string, summary: string) => `  ${name.padEnd(width)}  ${summary}`;
  const product = Object.entries(COMMANDS).map(([name, c]) => line(name, c.summary));
  const extra = developmentNames.map((name) => line(name, development[name]?.summary ?? 'not in this install (needs a clone of the repository)'));
  return (
    `usage: attendance <command> [options]\n       attendance --version\n\ncommands:\n${product.join('\n')}\n\n` +
    `development commands (from a clone of the repository):\n${extra.join('\n')}\n\n` +
    "Run 'attendance <command> --help' for a command's options.\n" +
    'Exit codes: 0 done, 1 runtime failure, 2 usage or configuration error.\n'
  );
}

function commandHelp(command: Command): string {
  return `usage: attendance ${command.usage}\n\n${command.summary}\n`;
}

export interface MainOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly stdout?: NodeJS.WritableStream;
  readonly stderr?: NodeJS.WritableStream;
  readonly stopSignal?: AbortSignal;
  /** Commands from outside src/ (demo, simulate from tools/), listed and run like the others. */
  readonly developmentCommands?: Readonly<Record<string, CommandEntry>>;
}

/** Runs one command and returns the process exit code: 0 ok, 1 failure, 2 usage or configuration. */
export async function main(argv: readonly string[], options: MainOptions = {}): Promise<number> {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const development = options.developmentCommands ?? {};
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    stdout.write(mainHelp(development));
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    stdout.write(`${readVersion()}\n`);
    return 0;
  }
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : Object.hasOwn(development, name) ? development[name] : undefined;
  if (!entry) {
    const developmentOnly = (DEVELOPMENT_COMMAND_NAMES as readonly string[]).includes(name);
    stderr.write(developmentOnly ? `${developmentCommandMissing(name)}\n` : `attendance: unknown command '${name}' (try 'attendance --help')\n`);
    return 2;
  }
  const env = options.env ?? process.env;
  let stopSignal = options.stopSignal;
  let release = (): void => undefined;
  if (!stopSignal) {
    const controller = new AbortController();
    release = listenForStop(controller, env);
    stopSignal = controller.signal;
  }
  const ctx: CommandContext = { env, stdout, stderr, stopSignal };
  try {
    const command = await entry.load();
    if (rest.includes('--help') || rest.includes('-h')) {
      stdout.write(commandHelp(command));
      return 0;
    }
    const parsed = parseCommandLine(rest, command.options, { positionals: command.positionals });
    return await command.run(parsed.values, parsed.positionals, ctx);
  } catch (error) {
    const err = coerceError(error);
    if (err instanceof UsageError || err instanceof ConfigError) {
      stderr.write(`attendance ${name}: ${oneLine(err.message)}\n`);
      return 2;
    }
    const code = err instanceof AppError ? ` [${err.code}]` : '';
    stderr.write(`attendance ${name}: ${oneLine(err.message)}${code}\n`);
    return 1;
  } finally {
    release();
  }
}

/** Users and scripts read one line per error; a message carrying newlines (a driver's) is folded into it. */
function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}

/** How often a process started by npm checks that its parent is still there. */
const PARENT_CHECK_INTERVAL_MS = 250;

/**
 * Aborts `controller` on SIGINT or SIGTERM, and also when the npm wrapper we were started by goes
 * away. `npm start` and `npx attendance …` run us through `sh -c '<script>'`; npm forwards
 * SIGTERM to that shell only, and dash (Debian's and Ubuntu's /bin/sh, and the node images')
 * neither execs the one command nor passes the signal on: the shell dies, npm exits, and we are
 * orphaned, still holding the port (seen with npm 11.19 and dash 0.5.12). `npm start` avoids the
 * shell with `exec` in package.json; npx builds its own command line, so for it we notice the
 * orphaning instead: our parent pid changes (to init or a subreaper) and we stop as if signalled.
 * Only under npm, which sets npm_lifecycle_event for run scripts and npx, so that
 * `nohup attendance serve &` still survives the shell it was started from.
 * Returns the function that removes the listeners.
 */
function listenForStop(controller: AbortController, env: Readonly<Record<string, string | undefined>>): () => void {
  const stop = () => controller.abort();
  // `on`, not `once`: Ctrl-C under `npm start` delivers SIGINT twice (the terminal's, and npm's
  // forwarded copy), and a second signal with no listener left would kill the process mid-shutdown.
  // The shutdown is bounded (SHUTDOWN_DEADLINE_MS), so repeated signals only wait for it.
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  let timer: NodeJS.Timeout | undefined;
  if (env.npm_lifecycle_event !== undefined) {
    const parent = process.ppid;
    timer = setInterval(() => {
      if (process.ppid !== parent) stop();
    }, PARENT_CHECK_INTERVAL_MS).unref();
  }
  return () => {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
    clearInterval(timer);
  };
}
