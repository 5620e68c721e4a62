import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

// Every way a statement can write call_sessions, in SQL text or through drizzle.
const WRITES = [
  /update\s+call_sessions\b/i,
  /insert\s+into\s+call_sessions\b/i,
  /delete\s+from\s+call_sessions\b/i,
  /\.(update|insert|delete)\(\s*callSessions\b/i,
];

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return sourceFiles(path);
      return Promise.resolve(entry.name.endsWith('.ts') ? [path] : []);
    }),
  );
  return nested.flat();
}

describe('call_sessions has one writer', () => {
  it('no statement outside src/queue/ writes call_sessions', async () => {
    const files = await sourceFiles(SRC);
    expect(files.length).toBeGreaterThan(20);
    const writers: string[] = [];
    for (const file of files) {
      const path = relative(SRC, file);
      if (path.startsWith('queue/')) continue;
      const text = await readFile(file, 'utf8');
      for (const pattern of WRITES) if (pattern.test(text)) writers.push(`${path}: ${pattern.source}`);
    }
    expect(writers).toEqual([]);
  });

  it("the scan finds the queue's own writes (so a pattern that matched nothing would fail)", async () => {
    const text = (await Promise.all(['queue/finish.ts', 'queue/enqueue.ts', 'queue/recount.ts'].map((f) => readFile(join(SRC, f), 'utf8')))).join('\n');
    expect(WRITES.slice(0, 2).every((pattern) => pattern.test(text))).toBe(true);
    expect(WRITES[3]!.test('db.update(callSessions)')).toBe(true);
    expect(WRITES[2]!.test('DELETE FROM call_sessions where')).toBe(true);
  });
});
