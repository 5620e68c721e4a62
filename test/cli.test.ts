import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli.ts';
import { useTestDatabase } from './helpers/db.ts';

function capture() {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: '', err: '' };
  out.on('data', (c) => (chunks.out += String(c)));
  err.on('data', (c) => (chunks.err += String(c)));
  return { out, err, chunks };
}

async function run(argv: string[], env: Record<string, string | undefined> = {}) {
  const io = capture();
  const code = await main(argv, { env, stdout: io.out, stderr: io.err, stopSignal: new AbortController().signal });
  return { code, stdout: io.chunks.out, stderr: io.chunks.err };
}

describe('attendance CLI', () => {
  const test = useTestDatabase({ migrated: false });

  it('lists every command of the design with --help', async () => {
    const { code, stdout } = await run(['--help']);
    expect(code).toBe(0);
    for (const name of ['serve', 'worker', 'migrate', 'backfill', 'status', 'redrive', 'demo', 'simulate']) {
      expect(stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
    }
  });

  it('refuses an unknown command with exit 2 and one line', async () => {
    const { code, stderr } = await run(['frobnicate']);
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain("unknown command 'frobnicate'");
  });

  it('refuses an unknown flag with exit 2', async () => {
    const { code, stderr } = await run(['migrate', '--bogus']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/attendance migrate: .*--bogus/);
  });

  it.each(['serve', 'worker', 'migrate', 'backfill', 'status', 'redrive', 'demo', 'simulate'])(
    '%s: --help prints its usage; an unknown flag exits 2 with one line',
    async (name) => {
      const help = await run([name, '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^usage: attendance ${name}`));
      const bad = await run([name, '--no-such-flag'], { DATABASE_URL: 'postgres://127.0.0.1:1/none' });
      expect(bad.code).toBe(2);
      expect(bad.stderr.trim().split('\n')).toHaveLength(1);
      expect(bad.stderr).toMatch(new RegExp(`^attendance ${name}: .*--no-such-flag`));
    },
  );

  it('names the variable when configuration is bad', async () => {
    const { code, stderr } = await run(['migrate'], { DATABASE_URL: 'mysql://nope' });
    expect(code).toBe(2);
    expect(stderr).toContain('DATABASE_URL');
  });

  it('migrate applies the migrations, then reports nothing to do', async () => {
    const env = { DATABASE_URL: test.current.url };
    const first = await run(['migrate'], env);
    expect(first).toMatchObject({ code: 0, stdout: expect.stringMatching(/applied \d+/) });
    const second = await run(['migrate'], env);
    expect(second).toMatchObject({ code: 0, stdout: 'migrations: already up to date\n' });
  });
});
