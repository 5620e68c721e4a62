import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';

// No Docker engine runs where the tests run, so the image is checked by reading its Dockerfile
// (docker-compose.yml: compose.test.ts; bin/healthcheck.js at work: healthcheck.test.ts).
const root = new URL('../../', import.meta.url);
const read = (name: string) => readFile(new URL(name, root), 'utf8');

interface Stage {
  from: string;
  name: string | undefined;
  instructions: { op: string; args: string }[];
}

function parseDockerfile(text: string): Stage[] {
  const logical = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of logical) {
    const [op = '', ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (op.toUpperCase() === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(args);
      stages.push({ from: m?.[1] ?? '', name: m?.[2], instructions: [] });
    } else {
      stages.at(-1)?.instructions.push({ op: op.toUpperCase(), args });
    }
  }
  return stages;
}

describe('Dockerfile', () => {
  it('is multi-stage on one pinned Node 24 slim, production dependencies only, with nothing deleted by hand', async () => {
    const stages = parseDockerfile(await read('Dockerfile'));
    expect(stages.length).toBeGreaterThanOrEqual(2);
    // An exact version, so a rebuild runs the Node the suite ran on (.ci/run tests Node 24 too).
    for (const stage of stages) expect(stage.from).toMatch(/^node:24\.\d+\.\d+-bookworm-slim$/);
    expect(new Set(stages.map((s) => s.from)).size).toBe(1);
    const installs = stages.flatMap((s) => s.instructions.filter((i) => i.op === 'RUN' && /npm (ci|install)/.test(i.args)));
    expect(installs.length).toBeGreaterThan(0);
    for (const install of installs) {
      expect(install.args).toMatch(/npm ci --omit=dev/);
      // what the image must not hold is kept out by package.json (test/deploy/production-install.test.ts)
      expect(install.args).not.toMatch(/rm -rf/);
    }
  });

  it('runs as a non-root user that cannot rewrite the application, serving by default', async () => {
    const stages = parseDockerfile(await read('Dockerfile'));
    const final = stages.at(-1)!;
    const users = final.instructions.filter((i) => i.op === 'USER');
    expect(users.length).toBe(1);
    expect(users[0]!.args).not.toMatch(/^(root|0)$/);
    expect(final.instructions.find((i) => i.op === 'CMD')?.args).toContain('serve');
    const entrypoint = final.instructions.find((i) => i.op === 'ENTRYPOINT')?.args;
    expect(entrypoint).toContain('bin/attendance.js');
    // V8's young generation capped, which keeps peak RSS archiving a large session under 180 MiB
    // (the benches start the service with the same flags: bench/lib/service.ts).
    expect(entrypoint).toMatch(/^\["node", "--max-semi-space-size=4", "bin\/attendance\.js"\]$/);
    // the image must carry the migrations and the sources it runs, copied as root: read-only for `node`
    const copies = final.instructions.filter((i) => i.op === 'COPY');
    for (const path of ['migrations', 'src', 'bin', 'node_modules']) expect(copies.map((c) => c.args).join('\n')).toContain(path);
    // development tools (the simulator, demo, simulate) stay out of the image
    expect(copies.map((c) => c.args).join('\n')).not.toMatch(/\btools\b|\btest\b|\bbench\b/);
    for (const copy of copies) expect(copy.args).not.toMatch(/--chown|--chmod/);
    const userIndex = final.instructions.findIndex((i) => i.op === 'USER');
    const lastCopy = final.instructions.map((i) => i.op).lastIndexOf('COPY');
    expect(lastCopy).toBeLessThan(userIndex);
  });

  it('has one HEALTHCHECK for every command: bin/healthcheck.js, which probes /healthz for serve and the process and its leases for worker', async () => {
    const final = parseDockerfile(await read('Dockerfile')).at(-1)!;
    const healthcheck = final.instructions.find((i) => i.op === 'HEALTHCHECK');
    expect(healthcheck?.args).toMatch(/CMD \["node", "bin\/healthcheck\.js"\]/);
    const script = await read('bin/healthcheck.js');
    expect(script).toContain('/healthz');
    expect(script).toMatch(/command === 'serve'/);
    expect(script).toMatch(/command === 'worker'/);
    expect(script).toContain('/proc/');
    // bin/ is in the image and the script needs no TypeScript loader
    expect(final.instructions.some((i) => i.op === 'COPY' && /^bin\b/.test(i.args))).toBe(true);
    expect(script).not.toMatch(/from '\.\.\/src\//);
  });

  it('keeps secrets, local data and dev folders out of the build context', async () => {
    const ignored = (await read('.dockerignore')).split('\n').map((l) => l.trim());
    expect(ignored).toEqual(expect.arrayContaining(['.env', '.attendance', 'node_modules', '.git']));
  });
});

describe('.env.example', () => {
  it('lists every variable of the configuration, each with a comment', async () => {
    const text = await read('.env.example');
    const config = await read('src/config.ts');
    const variables = [...new Set([...config.matchAll(/(?:text|integer)\('([A-Z_]+)'/g)].map((m) => m[1]!))];
    expect(variables.length).toBeGreaterThanOrEqual(10);
    const lines = text.split('\n');
    for (const variable of variables) {
      const index = lines.findIndex((l) => new RegExp(`^#?\\s*${variable}=`).test(l));
      expect(index, `${variable} in .env.example`).toBeGreaterThan(0);
      expect(
        lines
          .slice(0, index)
          .reverse()
          .find((l) => !/^#?\s*[A-Z_]+=/.test(l)) ?? '',
        `comment above ${variable}`,
      ).toMatch(/^# /);
    }
  });

  it('names the host port for docker compose apart from the container port', async () => {
    const lines = (await read('.env.example')).split('\n');
    expect(lines).toContain('HOST_PORT=8080');
    expect(lines).toContain('POSTGRES_PASSWORD=attendance');
  });
});
