import { createServer } from 'node:net';
import { spawnCommand, type RunningCommand } from '../helpers/child.ts';

/** A port that was free a moment ago; serve is restarted on it, so webhook senders keep one URL. */
export async function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = address !== null && typeof address === 'object' ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface ServeSupervisor {
  readonly url: string;
  /** Processes started so far, the current one last. */
  readonly processes: readonly RunningCommand[];
  /** SIGKILL the running process (no shutdown of any kind), wait for it to die. */
  kill(): Promise<void>;
  /** Start a new process on the same port and wait for its 'listening' line. */
  start(): Promise<void>;
  /** SIGTERM and wait; resolves with the exit code (0 for a clean, bounded shutdown). */
  stop(): Promise<number | string>;
  /** Everything every process wrote, in start order. */
  output(): string;
}

/** `attendance serve` as a child process, on one fixed loopback port across restarts. */
export async function createServeSupervisor(env: Record<string, string>): Promise<ServeSupervisor> {
  const port = await findFreePort();
  const processes: RunningCommand[] = [];
  const current = () => processes.at(-1);
  const fullEnv = { ...env, HOST: '127.0.0.1', PORT: String(port) };
  return {
    url: `http://127.0.0.1:${port}`,
    processes,
    async start() {
      const serve = spawnCommand(['serve'], fullEnv);
      processes.push(serve);
      await serve.waitForLog((line) => line.msg === 'listening', 30_000);
    },
    async kill() {
      const serve = current();
      if (!serve || serve.child.exitCode !== null || serve.child.signalCode !== null) return;
      serve.child.kill('SIGKILL');
      await serve.exited;
    },
    async stop() {
      const serve = current();
      if (!serve) return 'not started';
      if (serve.child.exitCode === null && serve.child.signalCode === null) serve.child.kill('SIGTERM');
      return serve.exited;
    },
    output: () => processes.map((p) => p.output()).join('\n'),
  };
}

/** Every JSON log line of `output` (other lines, and lines cut short by SIGKILL, are skipped). */
export function parseLogLines(output: string): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // cut short by SIGKILL
    }
  }
  return lines;
}

const JWT_PATTERN = /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/;

/** Problems found in logs or answers: the secret itself, or anything shaped like a JWT. */
export function findSecretLeaks(text: string, secret: string): string[] {
  const problems: string[] = [];
  if (text.includes(secret)) problems.push('the API secret appears');
  const jwt = JWT_PATTERN.exec(text);
  if (jwt) problems.push(`a JWT appears: …${text.slice(Math.max(0, jwt.index - 80), jwt.index)}<JWT>`);
  return problems;
}
