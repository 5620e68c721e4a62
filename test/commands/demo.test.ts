import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { spawnCommand } from '../helpers/child.ts';
import { useTestDatabase } from '../helpers/db.ts';

describe('attendance demo as a child process', () => {
  const test = useTestDatabase();

  it('archives every seeded session, verifies each against Stream, prints the report and exits 0', async () => {
    const demo = spawnCommand(['demo'], { DATABASE_URL: test.current.url });
    const code = await demo.exited;
    const output = demo.output();
    expect(code, output).toBe(0);
    expect(output).toMatch(/20 call sessions, [\d,]+ participant sessions/);
    expect(output).toContain("Every session verified against Stream's totals.");
    const verified = output.match(/yes \(\d+ = Stream's total\)/g) ?? [];
    expect(verified).toHaveLength(20);

    // what the report claims is what the database holds
    const { rows } = await test.current.database.pool.query<{ complete: number; rows: number; total: number }>(
      `select count(*) filter (where status = 'complete')::int as complete,
              (select count(*)::int from participant_sessions) as rows,
              sum(total_participant_sessions)::int as total
         from call_sessions`,
    );
    expect(rows[0]).toMatchObject({ complete: 20 });
    expect(rows[0]!.rows).toBe(rows[0]!.total);
    expect(rows[0]!.rows).toBeGreaterThanOrEqual(10_000);

    // the hand-over: the data stays in DATABASE_URL, which is never echoed; how to go live
    expect(output).toContain('npx attendance status');
    expect(output).toContain(`psql "$DATABASE_URL" -c "select user_id`);
    expect(output).not.toContain(test.current.url);
    for (const needed of ['STREAM_API_KEY', 'STREAM_API_SECRET', 'DATABASE_URL', 'npx attendance migrate', 'npx attendance serve', '/webhooks/stream']) {
      expect(output).toContain(needed);
    }
  });

  it('refuses bad flags with exit 2 and one line', async () => {
    const demo = spawnCommand(['demo', '--sessions', 'many'], { DATABASE_URL: test.current.url });
    expect(await demo.exited).toBe(2);
    expect(demo.output().trim()).toBe('attendance demo: --sessions must be a whole number from 1 to 20 (got "many")');
  });
});

describe('attendance demo --keep on the embedded Postgres', () => {
  it('says it falls back, then hands over a connection string and a status line that work after it exits', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attendance-demo-keep-'));
    const pidFile = join(dir, '.attendance', 'pg', 'postmaster.pid');
    try {
      const demo = spawnCommand(['demo', '--keep', '--sessions', '3'], {}, { cwd: dir });
      const code = await demo.exited;
      const output = demo.output();
      expect(code, output).toBe(0);
      expect(demo.stderr().split('\n')[0]).toBe(
        `attendance: DATABASE_URL is not set: using the embedded Postgres in ${join(dir, '.attendance')} (set DATABASE_URL to use your own database)`,
      );

      const url = /^ {4}connection string: (\S+)$/m.exec(output)?.[1];
      const status = /^ {4}status: +DATABASE_URL='([^']+)' npx attendance status$/m.exec(output)?.[1];
      const query = /^ {4}query: +psql '([^']+)' -c "([^"]+)"$/m.exec(output);
      expect(url, output).toMatch(/^postgres:\/\/postgres:postgres@127\.0\.0\.1:\d+\/attendance_demo$/);
      expect(status).toBe(url);
      expect(query?.[1]).toBe(url);

      // the demo process is gone; its database is not
      const after = spawnCommand(['status', '--json'], { DATABASE_URL: status! });
      expect(await after.exited, after.output()).toBe(0);
      expect(JSON.parse(after.output()).counts).toMatchObject({ complete: 3 });
      const client = new pg.Client(url);
      await client.connect();
      try {
        const { rows } = await client.query(query![2]!);
        expect(rows.length).toBeGreaterThan(0);
        expect(Object.keys(rows[0]!)).toEqual(['user_id', 'sessions', 'attended_minutes']);
      } finally {
        await client.end();
      }

      // a command without DATABASE_URL in that folder uses the kept server instead of failing on its lock
      const fallback = spawnCommand(['status'], {}, { cwd: dir });
      expect(await fallback.exited, fallback.output()).toBe(0);
      expect(fallback.stderr().split('\n')[0]).toContain(`using the embedded Postgres in ${join(dir, '.attendance')}`);

      // the kept server checks passwords (scram), so the authentication messages can be seen for real
      const wrong = spawnCommand(['status'], { DATABASE_URL: url!.replace('postgres:postgres@', 'postgres:not-the-password@') });
      expect(await wrong.exited).toBe(2);
      expect(wrong.stderr()).toMatch(
        /^attendance status: cannot connect to DATABASE_URL \(127\.0\.0\.1:\d+, database "attendance_demo", user "postgres"\): authentication failed: wrong password for user "postgres"; fix the user or password in DATABASE_URL\n$/,
      );
      expect(wrong.output()).not.toContain('not-the-password');
      const none = spawnCommand(['status'], { DATABASE_URL: url!.replace('postgres:postgres@', 'postgres@') });
      expect(await none.exited).toBe(2);
      expect(none.stderr()).toContain('authentication failed: the server asks for a password for user "postgres" and DATABASE_URL has none');

      // and the printed stop command stops it
      const stop = /^ {4}stop it: +(.+)$/m.exec(output)?.[1];
      expect(stop).toBeDefined();
      execFileSync('sh', ['-c', stop!]);
      await waitUntil(() => !existsSync(pidFile), 15_000);
    } finally {
      if (existsSync(pidFile)) execFileSync('sh', ['-c', `kill -INT $(head -1 '${pidFile}') || true`]);
      await waitUntil(() => !existsSync(pidFile), 15_000).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
