import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/db.ts';
import { findFreePort } from '../reliability/serve-process.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

// The three ways users start the service. npm and npx run it through `sh -c`, which is where a
// SIGTERM used to stop: the shell died and the service was orphaned, still holding the port.
// The last field: whether the started process outlives the service (so a supervisor, or Docker
// with npm as PID 1, sees the port free once it exits). npx's shell cannot be made to wait.
const FORMS: [string, string, string[], boolean][] = [
  ['npm start', 'npm', ['start'], true],
  ['npx attendance serve', 'npx', ['attendance', 'serve'], false],
  ['node bin/attendance.js serve', process.execPath, ['bin/attendance.js', 'serve'], true],
];

describe('SIGTERM to the started process stops the whole service', () => {
  const test = useTestDatabase();

  it.each(FORMS)(
    '%s: the port is released and no process of its group remains',
    async (_form, command, args, waitsForService) => {
      const port = await findFreePort();
      // Its own process group, so what it leaves behind can be found (and cleaned up) by group id.
      const child = spawn(command, args, {
        cwd: ROOT,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '',
          DATABASE_URL: test.current.url,
          STREAM_API_KEY: 'k',
          STREAM_API_SECRET: 's',
          STREAM_BASE_URL: 'http://127.0.0.1:9',
          HOST: '127.0.0.1',
          PORT: String(port),
          RECONCILE_INTERVAL_MINUTES: '0',
          LOG_LEVEL: 'warn',
        },
      });
      let output = '';
      child.stdout!.on('data', (c) => (output += String(c)));
      child.stderr!.on('data', (c) => (output += String(c)));
      const group = child.pid!;
      try {
        await waitFor(
          () => isListening(port),
          40_000,
          () => `never listened on ${port}:\n${output}`,
        );
        const exited = new Promise((resolve) => child.once('exit', resolve));

        process.kill(child.pid!, 'SIGTERM');

        await exited;
        if (waitsForService) expect(await isListening(port), 'still listening when the started process exited').toBe(false);
        await waitFor(
          async () => !(await isListening(port)) && !groupAlive(group),
          15_000,
          () => `15 s after SIGTERM, port ${port} is still listening or group ${group} (alive: ${groupAlive(group)}) remains:\n${output}`,
        );
        expect(groupAlive(group)).toBe(false);
        expect(await isListening(port)).toBe(false);
      } finally {
        killGroup(group, child);
      }
    },
    90_000,
  );
});

function groupAlive(group: number): boolean {
  try {
    process.kill(-group, 0);
    return true;
  } catch {
    return false;
  }
}

function killGroup(group: number, child: ChildProcess): void {
  try {
    process.kill(-group, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, explain: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(explain());
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
