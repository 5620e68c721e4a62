import { describe, expect, it } from 'vitest';
import { storableJson, storableString } from '../../src/db/storable-json.ts';
import { useTestDatabase } from '../helpers/db.ts';

const testDb = useTestDatabase();

describe('storableJson', () => {
  it('returns the very text it was given when Postgres can store it, pairs and escapes included', () => {
    const value = { a: 'plain', emoji: '\ud83d\ude00', quote: 'say "hi"\n', n: [1, null, true] };
    const text = JSON.stringify(value);
    expect(storableJson(text, value)).toBe(text);
    const escapedPair = '{"e":"\\ud83d\\ude00"}';
    expect(storableJson(escapedPair, JSON.parse(escapedPair))).toBe('{"e":"😀"}');
  });

  it('drops NULs and replaces lone surrogates, in keys and nested values alike, and nothing else', () => {
    const value = { 'k\u0000ey': ['a\u0000b', { deep: 'x\ud800y', pair: '\ud83d\ude00', lowFirst: '\udc00\ud800' }], '\udfffk': 1.5, keep: null };
    const stored = JSON.parse(storableJson(JSON.stringify(value), value));
    expect(stored).toEqual({ key: ['ab', { deep: 'x\ufffdy', pair: '\ud83d\ude00', lowFirst: '\ufffd\ufffd' }], '\ufffdk': 1.5, keep: null });
  });

  it('gives text that Postgres jsonb accepts where the original is refused', async () => {
    const pool = testDb.current.database.pool;
    const value = { note: 'half \ud83d', nul: 'a\u0000b', '\ud800': 'key' };
    const text = JSON.stringify(value);
    await expect(pool.query('select $1::jsonb', [text])).rejects.toMatchObject({ code: expect.stringMatching(/^22/) });
    const { rows } = await pool.query<{ j: Record<string, string> }>('select $1::jsonb as j', [storableJson(text, value)]);
    expect(rows[0]?.j).toEqual({ note: 'half \ufffd', nul: 'ab', '\ufffd': 'key' });
  });
});

describe('storableString', () => {
  it('keeps well-formed strings as they are', () => {
    for (const s of ['', 'plain', 'é', '\ud83d\ude00', 'tab\tnew\nline']) expect(storableString(s)).toBe(s);
    expect(storableString('\ud83d')).toBe('\ufffd');
  });
});
