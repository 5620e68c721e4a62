import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DEVELOPMENT_COMMAND_NAMES, main, type MainOptions } from '../src/cli.ts';
import { AppError } from '../src/errors.ts';
import type { Command, CommandEntry } from '../src/commands/types.ts';
import { spawnCommand } from './helpers/child.ts';
import { useTestDatabase } from './helpers/db.ts';

function capture() {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: '', err: '' };
  out.on('data', (c) => (chunks.out += String(c)));
  err.on('data', (c) => (chunks.err += String(c)));
  return { out, err, chunks };
}

async function run(argv: string[], env: Record<string, string | undefined> = {}, options: Pick<MainOptions, 'developmentCommands'> = {}) {
  const io = capture();
  const code = await main(argv, { ...options, env, stdout: io.out, stderr: io.err, stopSignal: new AbortController().signal });
  return { code, stdout: io.chunks.out, stderr: io.chunks.err };
}

const PRODUCT_COMMANDS = ['serve', 'worker', 'migrate', 'backfill', 'status', 'redrive', 'prune', 'forget'];
const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
// Nothing here reaches a database: these fail (or finish) before any command connects.
const NO_DATABASE = { DATABASE_URL: 'postgres://127.0.0.1:1/none' };

/** A development command as tools/ would provide it, recording what it was given. */
function fakeDevelopmentCommand(name: string, calls: { values: unknown; positionals: string[] }[]): CommandEntry {
  const command: Command = {
    name,
    summary: `fake ${name}`,
    usage: `${name} [--rounds <n>]`,
    options: { rounds: { type: 'string' } },
    async run(values, positionals, ctx) {
      calls.push({ values, positionals });
      ctx.stdout.write(`${name} ran\n`);
      return 0;
    },
  };
  return { summary: `fake ${name} for the test`, load: async () => command };
}

describe('attendance CLI', () => {
  const test = useTestDatabase({ migrated: false });

  it('lists every command of the design with --help, the development ones apart', async () => {
    const { code, stdout } = await run(['--help']);
    expect(code).toBe(0);
    for (const name of [...PRODUCT_COMMANDS, ...DEVELOPMENT_COMMAND_NAMES]) {
      expect(stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
    }
    const [product, development] = stdout.split(/^development commands/m);
    for (const name of DEVELOPMENT_COMMAND_NAMES) {
      expect(product).not.toMatch(new RegExp(`^  ${name} `, 'm'));
      expect(development).toMatch(new RegExp(`^  ${name} +not in this install`, 'm'));
    }
  });

  it("shows a provided development command's own summary in --help", async () => {
    const { stdout } = await run(['--help'], {}, { developmentCommands: { demo: fakeDevelopmentCommand('demo', []) } });
    expect(stdout).toMatch(/^ {2}demo +fake demo for the test$/m);
    expect(stdout).toMatch(/^ {2}simulate +not in this install/m);
  });

  it.each<[string, string[], Record<string, string>, number, RegExp]>([
    ['an unknown command', ['frobnicate'], {}, 2, /^attendance: unknown command 'frobnicate'/],
    ['a positional no command takes', ['redrive', 'abc'], NO_DATABASE, 2, /^attendance redrive: unexpected argument "abc"/],
    ['a positional after flags', ['status', '--json', 'extra'], NO_DATABASE, 2, /^attendance status: unexpected argument "extra"/],
    [
      'a number that is not whole',
      ['status', '--limit', '2.5'],
      NO_DATABASE,
      2,
      /^attendance status: --limit must be a whole number from 0 to 10000 \(got "2\.5"\)/,
    ],
    ['a number out of range', ['status', '--limit', '10001'], NO_DATABASE, 2, /--limit must be a whole number from 0 to 10000/],
    ['an empty number', ['status', '--limit', ''], NO_DATABASE, 2, /--limit must be a whole number/],
    ['an empty --session', ['redrive', '--session', ''], NO_DATABASE, 2, /^attendance redrive: --session needs a value$/],
    ['a blank --session', ['redrive', '--session', '  '], NO_DATABASE, 2, /^attendance redrive: --session needs a value$/],
    ['a blank --user', ['forget', '--user', ' '], NO_DATABASE, 2, /^attendance forget: --user <id> is required$/],
    [
      'demo when tools/ is not installed',
      ['demo'],
      {},
      2,
      /^attendance: 'demo' is a development command: run it from a clone of the repository after 'npm install'$/,
    ],
    [
      'simulate when tools/ is not installed',
      ['simulate', '--port', '0'],
      {},
      2,
      /^attendance: 'simulate' is a development command: run it from a clone of the repository after 'npm install'$/,
    ],
    ['a database that cannot be reached', ['status'], NO_DATABASE, 2, /^attendance status: .*DATABASE_URL/],
  ])('%s exits with a one-line reason', async (_what, argv, env, exitCode, message) => {
    const { code, stdout, stderr } = await run(argv, env);
    expect(code).toBe(exitCode);
    expect(stdout).toBe('');
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr.trimEnd()).toMatch(message);
  });

  it('--version prints the version in package.json and exits 0', async () => {
    const { code, stdout, stderr } = await run(['--version']);
    expect(code).toBe(0);
    expect(stdout).toBe(`${PACKAGE_VERSION}\n`);
    expect(stderr).toBe('');
  });

  it('--version answers from any working directory, through the package bin', async () => {
    const command = spawnCommand(['--version'], {}, { cwd: tmpdir() });
    expect(await command.exited).toBe(0);
    expect(command.output()).toBe(`${PACKAGE_VERSION}\n`);
  });

  it('runs a development command when the entry point provides it, with its flags checked like any other', async () => {
    const calls: { values: unknown; positionals: string[] }[] = [];
    const developmentCommands = { demo: fakeDevelopmentCommand('demo', calls) };
    const ok = await run(['demo', '--rounds', '3'], {}, { developmentCommands });
    expect(ok).toEqual({ code: 0, stdout: 'demo ran\n', stderr: '' });
    expect(calls).toEqual([{ values: { rounds: '3' }, positionals: [] }]);

    const help = await run(['demo', '--help'], {}, { developmentCommands });
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: attendance demo \[--rounds <n>\]/);

    const stray = await run(['demo', 'now'], {}, { developmentCommands });
    expect(stray.code).toBe(2);
    expect(stray.stderr).toMatch(/^attendance demo: unexpected argument "now"/);
    expect(calls).toHaveLength(1);
  });

  it('runs a command that declares positionals with them', async () => {
    const calls: { values: unknown; positionals: string[] }[] = [];
    const entry = fakeDevelopmentCommand('simulate', calls);
    const command = { ...(await entry.load()), positionals: true };
    const { code } = await run(['simulate', 'a', 'b'], {}, { developmentCommands: { simulate: { summary: 'x', load: async () => command } } });
    expect(code).toBe(0);
    expect(calls).toEqual([{ values: {}, positionals: ['a', 'b'] }]);
  });

  it('exits 1 on a runtime failure, with the code of an operational error', async () => {
    const failing = (error: Error): CommandEntry => ({
      summary: 'fails',
      load: async () => ({ name: 'demo', summary: 'fails', usage: 'demo', options: {}, run: async () => Promise.reject(error) }),
    });
    const plain = await run(['demo'], {}, { developmentCommands: { demo: failing(new Error('the disk is full\nsecond line')) } });
    expect(plain).toEqual({ code: 1, stdout: '', stderr: 'attendance demo: the disk is full second line\n' });
    const operational = await run(['demo'], {}, { developmentCommands: { demo: failing(new AppError('LEASE_LOST', 'lease lost')) } });
    expect(operational).toEqual({ code: 1, stdout: '', stderr: 'attendance demo: lease lost [LEASE_LOST]\n' });
  });

  it('never lets a development command shadow a product command', async () => {
    const calls: { values: unknown; positionals: string[] }[] = [];
    const { code, stderr } = await run(['migrate', '--rounds', '1'], NO_DATABASE, {
      developmentCommands: { migrate: fakeDevelopmentCommand('migrate', calls) },
    });
    expect(code).toBe(2);
    expect(stderr).toMatch(/--rounds/);
    expect(calls).toHaveLength(0);
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

  it.each(PRODUCT_COMMANDS)('%s: --help prints its usage; an unknown flag exits 2 with one line', async (name) => {
    const help = await run([name, '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(new RegExp(`^usage: attendance ${name}`));
    const bad = await run([name, '--no-such-flag'], { DATABASE_URL: 'postgres://127.0.0.1:1/none' });
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(new RegExp(`^attendance ${name}: .*--no-such-flag`));
  });

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
