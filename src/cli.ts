import { parseArgs } from 'node:util';
import { AppError, ConfigError, UsageError, coerceError } from './errors.ts';
import type { Command, CommandContext } from './commands/types.ts';

/** Each command's module is loaded only when it runs, so `--help` stays fast. */
const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  serve: { summary: 'HTTP server + worker + reconciler (--no-worker: intake only)', load: async () => (await import('./commands/serve.ts')).serveCommand },
  worker: { summary: 'worker + reconciler only', load: async () => (await import('./commands/worker.ts')).workerCommand },
  migrate: { summary: 'apply migrations/ to DATABASE_URL and exit', load: async () => (await import('./commands/migrate.ts')).migrateCommand },
  backfill: { summary: 'enqueue sessions from Stream for a window or one session', load: async () => (await import('./commands/backfill.ts')).backfillCommand },
  status: { summary: 'counts by status, oldest pending, sessions at risk, dead sessions', load: async () => (await import('./commands/status.ts')).statusCommand },
  redrive: { summary: 'move dead sessions back to pending', load: async () => (await import('./commands/redrive.ts')).redriveCommand },
  prune: { summary: 'delete inbox events (and archived attendance, if ARCHIVE_RETENTION_DAYS) past their retention now', load: async () => (await import('./commands/prune.ts')).pruneCommand },
  forget: { summary: "erase one user's attendance and every stored copy of their id (--user <id> [--dry-run])", load: async () => (await import('./commands/forget.ts')).forgetCommand },
  demo: { summary: 'embedded Postgres + local simulator + serve, end to end, then a report', load: async () => (await import('./commands/demo.ts')).demoCommand },
  simulate: { summary: 'run the local Stream simulator alone', load: async () => (await import('./commands/simulate.ts')).simulateCommand },
};

function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `usage: attendance <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun 'attendance <command> --help' for a command's options.\n`;
}

function commandHelp(command: Command): string {
  return `usage: attendance ${command.usage}\n\n${command.summary}\n`;
}

export interface MainOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly stdout?: NodeJS.WritableStream;
  readonly stderr?: NodeJS.WritableStream;
  readonly stopSignal?: AbortSignal;
}

/** Runs one command and returns the process exit code: 0 ok, 1 failure, 2 usage or configuration. */
export async function main(argv: readonly string[], options: MainOptions = {}): Promise<number> {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    stdout.write(mainHelp());
    return name === undefined ? 2 : 0;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    stderr.write(`attendance: unknown command '${name}' (try 'attendance --help')\n`);
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
    let parsed;
    try {
      parsed = parseArgs({ args: [...rest], options: command.options, allowPositionals: true, strict: true });
    } catch (error) {
      throw new UsageError(coerceError(error).message);
    }
    return await command.run(parsed.values, parsed.positionals, ctx);
  } catch (error) {
    const err = coerceError(error);
    if (err instanceof UsageError || err instanceof ConfigError) {
      stderr.write(`attendance ${name}: ${err.message}\n`);
      return 2;
    }
    const code = err instanceof AppError ? ` [${err.code}]` : '';
    stderr.write(`attendance ${name}: ${err.message}${code}\n`);
    return 1;
  } finally {
    release();
  }
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
