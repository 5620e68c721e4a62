import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { findTool, runTool } from './tools.ts';

// No Docker engine runs where the tests run: the compose file is checked by reading it and, where
// docker-compose (or the compose plugin) is installed, by `config`, which resolves it against an
// .env without an engine.
const root = new URL('../../', import.meta.url);
const composeFile = fileURLToPath(new URL('docker-compose.yml', root));
const read = (name: string) => readFile(new URL(name, root), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  env_file?: unknown;
  environment?: Record<string, string>;
  ports?: string[];
  healthcheck?: { test?: string[]; disable?: boolean };
  mem_limit?: string;
  logging?: { driver: string; options: Record<string, string> };
  depends_on?: Record<string, { condition: string }>;
  restart?: string;
  read_only?: boolean;
}

const loadCompose = async () => parse(await read('docker-compose.yml')) as { services: Record<string, Service> };
const configVariables = async () => new Set([...(await read('src/config.ts')).matchAll(/(?:text|integer)\('([A-Z_]+)'/g)].map((m) => m[1]!));

describe('docker-compose.yml', () => {
  it('starts Postgres with a health check, runs migrate once, then serve', async () => {
    const { postgres, migrate, attendance } = (await loadCompose()).services;
    expect(postgres!.image).toMatch(/^postgres:/);
    expect(postgres!.healthcheck!.test!.join(' ')).toContain('pg_isready');
    expect(migrate!.command).toEqual(['migrate']);
    expect(migrate!.restart).toBe('no');
    expect(migrate!.depends_on!.postgres!.condition).toBe('service_healthy');
    expect(attendance!.command).toEqual(['serve']);
    expect(attendance!.depends_on!.migrate!.condition).toBe('service_completed_successfully');
    expect(attendance!.depends_on!.postgres!.condition).toBe('service_healthy');
  });

  it('builds the image once and runs it for migrate and serve', async () => {
    const { services } = await loadCompose();
    const built = Object.entries(services).filter(([, s]) => s.build !== undefined);
    expect(built.map(([name]) => name)).toEqual(['attendance']);
    expect(services.attendance!.image).toBeTruthy();
    expect(services.migrate!.image).toBe(services.attendance!.image);
  });

  it('runs the image on a read-only root filesystem: the service writes no files', async () => {
    const { migrate, attendance } = (await loadCompose()).services;
    for (const service of [migrate!, attendance!]) expect(service.read_only).toBe(true);
  });

  it('fixes the container port at 8080 and maps HOST_PORT to it, which the health check follows', async () => {
    const { attendance } = (await loadCompose()).services;
    expect(attendance!.environment!.PORT).toBe('8080');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: compose's own variable syntax, compared as text
    expect(attendance!.ports).toEqual(['${HOST_PORT:-8080}:8080']);
    // bin/healthcheck.js reads PORT from the container's environment, which compose fixes above
    expect(attendance!.healthcheck!.test).toEqual(['CMD', 'node', 'bin/healthcheck.js']);
    expect(await read('bin/healthcheck.js')).toMatch(/process\.env\.PORT/);
  });

  it('hands each service only the variables it needs, none through env_file', async () => {
    const { services } = await loadCompose();
    for (const service of Object.values(services)) expect(service.env_file).toBeUndefined();
    const { postgres, migrate, attendance } = services;
    expect(Object.keys(postgres!.environment!).sort()).toEqual(['POSTGRES_DB', 'POSTGRES_PASSWORD', 'POSTGRES_USER']);
    expect(Object.keys(migrate!.environment!)).toEqual(['DATABASE_URL']);
    for (const service of [migrate!, attendance!]) {
      expect(service.environment!.DATABASE_URL).toMatch(/^postgres:\/\/attendance:\$\{POSTGRES_PASSWORD[^}]*\}@postgres:5432\/attendance$/);
    }
    const known = await configVariables();
    for (const name of Object.keys(attendance!.environment!)) expect(known, `${name} is read by src/config.ts`).toContain(name);
    for (const name of ['STREAM_API_KEY', 'STREAM_API_SECRET', 'STREAM_PREVIOUS_API_SECRETS', 'STREAM_BASE_URL', 'DATABASE_POOL_SIZE']) {
      expect(Object.keys(attendance!.environment!)).toContain(name);
    }
  });

  it('gives every service rotated logs, a memory limit and a health check (or says why not)', async () => {
    const { services } = await loadCompose();
    expect(Object.keys(services).length).toBe(3);
    for (const [name, service] of Object.entries(services)) {
      expect(service.logging?.driver, name).toBe('json-file');
      expect(service.logging?.options['max-size'], name).toMatch(/^\d+m$/);
      expect(Number(service.logging?.options['max-file']), name).toBeGreaterThan(1);
      expect(service.mem_limit, name).toMatch(/^\d+[mg]$/);
      const hasTest = (service.healthcheck?.test?.length ?? 0) > 0;
      expect(hasTest || (name === 'migrate' && service.healthcheck?.disable === true), name).toBe(true);
    }
  });

  it('interpolates only variables .env.example documents', async () => {
    const text = await read('docker-compose.yml');
    const example = await read('.env.example');
    const used = new Set([...text.matchAll(/\$\{([A-Z_]+)/g)].map((m) => m[1]!));
    expect(used.size).toBeGreaterThan(5);
    for (const name of used) expect(example, `${name} in .env.example`).toMatch(new RegExp(`^#?\\s*${name}=`, 'm'));
  });
});

describe('docker-compose config', () => {
  let tool: readonly string[] | undefined;
  let dir: string;
  beforeAll(async () => {
    tool = await findTool([['docker-compose'], ['docker', 'compose']]);
    if (!tool)
      console.warn(
        'docker-compose config skipped: neither docker-compose nor the docker compose plugin is installed (Debian: apt-get install -y docker-compose)',
      );
    dir = await mkdtemp(join(tmpdir(), 'attendance-compose-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const config = async (env: string) => {
    const envFile = join(dir, `${Math.random().toString(36).slice(2)}.env`);
    await writeFile(envFile, env);
    const [file, ...prefix] = tool!;
    return runTool(file!, [...prefix, '--env-file', envFile, '-f', composeFile, 'config']);
  };

  it('resolves with a sample .env: PORT in .env moves neither the container port nor the mapping; HOST_PORT moves the host side', async (context) => {
    if (!tool) return context.skip();
    const result = await config(
      [
        'STREAM_API_KEY=sample-key',
        'STREAM_API_SECRET=sample-secret',
        'POSTGRES_PASSWORD=sample-password',
        'PORT=9090',
        'HOST_PORT=9191',
        'DATABASE_POOL_SIZE=24',
        '',
      ].join('\n'),
    );
    expect(result.code, result.stderr).toBe(0);
    const resolved = parse(result.stdout) as { services: Record<string, Service & { ports: unknown[] }> };
    const { postgres, migrate, attendance } = resolved.services;
    expect(String(attendance!.environment!.PORT)).toBe('8080');
    expect(String(attendance!.environment!.DATABASE_POOL_SIZE)).toBe('24');
    expect(attendance!.environment!.STREAM_API_SECRET).toBe('sample-secret');
    expect(attendance!.environment!.DATABASE_URL).toBe('postgres://attendance:sample-password@postgres:5432/attendance');
    const port = attendance!.ports[0] as string | { published: number | string; target: number | string };
    const [published, target] = typeof port === 'string' ? port.split(':').map((p) => p.replace(/\/tcp$/, '')) : [port.published, port.target];
    expect(String(published)).toBe('9191');
    expect(String(target)).toBe('8080');
    // secrets stay where they are needed
    expect(JSON.stringify(postgres)).not.toContain('sample-secret');
    expect(JSON.stringify(migrate)).not.toContain('sample-secret');
    expect(JSON.stringify(postgres)).not.toContain('sample-key');
    expect(migrate!.environment).toEqual({ DATABASE_URL: 'postgres://attendance:sample-password@postgres:5432/attendance' });
  });

  it('refuses to resolve without POSTGRES_PASSWORD, naming it', async (context) => {
    if (!tool) return context.skip();
    const result = await config('STREAM_API_KEY=sample-key\nSTREAM_API_SECRET=sample-secret\n');
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('POSTGRES_PASSWORD');
  });
});
