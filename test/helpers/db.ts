import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, inject } from 'vitest';
import { createDatabase, type Database } from '../../src/db/client.ts';
import { databaseUrl } from './urls.ts';

/**
 * One Postgres database per test file, cloned from the run's migrated template, and two checks when
 * it goes:
 * - a leak guard: once the file's own pool is closed, no connection may remain to its database.
 *   `drop database … with (force)` would end them silently, hiding a pool or client that the code
 *   under test opened and never closed; instead the file's afterAll fails, naming them.
 * - KEEP_TEST_DATABASE=on-failure keeps the database of a file whose tests failed, for inspection,
 *   and prints one line with its name and a `psql` command; it is not dropped, even by later runs
 *   (drop such databases by hand: their names start with `attendance_test_`).
 */

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  readonly database: Database;
  /** Closes the pool, checks that no connection is left, and drops the database. */
  drop(): Promise<void>;
  /** Closes the pool and leaves the database for inspection. */
  keep(): Promise<void>;
}

// A pool's connections leave pg_stat_activity a moment after `end()` resolves (the backend exits
// after the client's Terminate message): polls until then; 2 s is far above what a local server needs.
const LEAK_WAIT_MS = 2_000;
const LEAK_POLL_MS = 50;

/** A fresh, migrated database cloned from the run's template. */
export async function createTestDatabase(options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const adminUrl = inject('adminUrl');
  const name = `attendance_test_${randomBytes(6).toString('hex')}`;
  const template = options.migrated === false ? 'template0' : inject('templateDatabase');
  await withAdmin(adminUrl, (admin) => admin.query(`create database ${name} template ${template}`));
  const url = databaseUrl(adminUrl, name);
  const database = createDatabase(url, { max: 10 });
  return {
    url,
    name,
    database,
    async drop() {
      await database.close();
      await withAdmin(adminUrl, async (admin) => {
        const left = await connectionsLeft(admin, name);
        await admin.query(`drop database if exists ${name} with (force)`);
        if (left.length > 0) {
          const total = left.reduce((sum, c) => sum + c.count, 0);
          const which = left.map((c) => `${c.count} × application_name=${c.application_name} state=${c.state}`).join(', ');
          throw new Error(
            `test database ${name}: ${total} connection(s) still open after the test file's pool closed (${which}); ` +
              'a pool or client opened by the code under test was never closed',
          );
        }
      });
    },
    async keep() {
      await database.close();
      console.log(`kept test database ${name} (KEEP_TEST_DATABASE=on-failure): psql '${printableUrl(url)}'`);
    },
  };
}

/**
 * One database for the calling test file: created before its tests, dropped after them (kept
 * instead when KEEP_TEST_DATABASE=on-failure and a test failed). Access `.current` inside tests.
 */
export function useTestDatabase(options: { migrated?: boolean } = {}): { readonly current: TestDatabase } {
  const keepOnFailure = readKeepOption(process.env.KEEP_TEST_DATABASE);
  const holder: { current: TestDatabase | undefined; failed: boolean } = { current: undefined, failed: false };
  beforeAll(async () => {
    holder.current = await createTestDatabase(options);
  });
  if (keepOnFailure) {
    beforeEach(({ onTestFailed }) => {
      onTestFailed(() => {
        holder.failed = true;
      });
    });
  }
  afterAll(async () => {
    if (!holder.current) return;
    if (holder.failed) await holder.current.keep();
    else await holder.current.drop();
  });
  return {
    get current() {
      if (!holder.current) throw new Error('test database used outside a test');
      return holder.current;
    },
  };
}

function readKeepOption(value: string | undefined): boolean {
  if (value === undefined || value === '') return false;
  if (value === 'on-failure') return true;
  throw new Error(`KEEP_TEST_DATABASE=${value} is not understood: set it to on-failure, or leave it unset`);
}

interface ConnectionGroup {
  application_name: string;
  state: string;
  count: number;
}

async function connectionsLeft(admin: pg.Client, name: string): Promise<ConnectionGroup[]> {
  const deadline = Date.now() + LEAK_WAIT_MS;
  for (;;) {
    const { rows } = await admin.query<ConnectionGroup>(
      `select coalesce(nullif(application_name, ''), '(none)') as application_name, coalesce(state, '(none)') as state,
              count(*)::int as count
         from pg_stat_activity where datname = $1 group by 1, 2 order by 1, 2`,
      [name],
    );
    if (rows.length === 0 || Date.now() > deadline) return rows;
    await new Promise((resolve) => setTimeout(resolve, LEAK_POLL_MS));
  }
}

async function withAdmin<T>(adminUrl: string, use: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client(adminUrl);
  await admin.connect();
  try {
    return await use(admin);
  } finally {
    await admin.end();
  }
}

function printableUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}
