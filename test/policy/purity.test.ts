import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const dir = new URL('../../src/policy/', import.meta.url);

describe('src/policy', () => {
  it('does no I/O: only type imports of the database and the queue, no node or driver modules', () => {
    const offending: string[] = [];
    for (const file of readdirSync(dir).filter((name) => name.endsWith('.ts'))) {
      const source = readFileSync(new URL(file, dir), 'utf8');
      for (const [line] of source.matchAll(/^import (?!type ).*from '([^']+)';$/gm)) {
        if (/from '(node:|pg|undici|fastify|\.\.\/(db|queue|http|ingest|reconcile|commands)\/)/.test(line)) offending.push(`${file}: ${line}`);
      }
    }
    expect(offending).toEqual([]);
  });
});
