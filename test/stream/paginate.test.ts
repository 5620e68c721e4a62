import { describe, expect, it } from 'vitest';
import { StreamApiError } from '../../src/stream/errors.ts';
import { paginate } from '../../src/stream/paginate.ts';

interface FakePage {
  readonly n: number;
  readonly next: string | null;
}

/** A fetcher over `total` pages that records which cursors were asked for and how many are in flight. */
function fakeSource(total: number) {
  const asked: (string | null)[] = [];
  const fetchPage = async (cursor: string | null): Promise<FakePage> => {
    asked.push(cursor);
    const n = cursor === null ? 0 : Number(cursor.slice(1));
    await Promise.resolve();
    return { n, next: n + 1 < total ? `c${n + 1}` : null };
  };
  return { asked, fetchPage };
}

describe('paginate', () => {
  it('yields every page once, in order, with the cursor each was fetched with', async () => {
    const source = fakeSource(4);
    const got: string[] = [];
    for await (const { page, cursor } of paginate(source.fetchPage)) got.push(`${page.n}@${cursor}`);
    expect(got).toEqual(['0@null', '1@c1', '2@c2', '3@c3']);
    expect(source.asked).toEqual([null, 'c1', 'c2', 'c3']);
  });

  it('resumes from a stored cursor', async () => {
    const source = fakeSource(4);
    const got: number[] = [];
    for await (const { page } of paginate(source.fetchPage, { start: 'c2' })) got.push(page.n);
    expect(got).toEqual([2, 3]);
    expect(source.asked).toEqual(['c2', 'c3']);
  });

  it('prefetches exactly one page: never more than two pages are held', async () => {
    const source = fakeSource(50);
    let consumed = 0;
    for await (const _ of paginate(source.fetchPage)) {
      consumed += 1;
      // Give any eager fetching every chance to run ahead while the caller "writes" this page.
      for (let i = 0; i < 20; i += 1) await new Promise((resolve) => setImmediate(resolve));
      // Fetched so far = the pages handed out + at most the one in flight.
      expect(source.asked.length).toBeLessThanOrEqual(consumed + 1);
      if (consumed < 50) expect(source.asked.length).toBe(consumed + 1);
    }
    expect(consumed).toBe(50);
  });

  it('stops fetching when the caller stops', async () => {
    const source = fakeSource(50);
    for await (const { page } of paginate(source.fetchPage)) if (page.n === 2) break;
    expect(source.asked).toEqual([null, 'c1', 'c2', 'c3']);
  });

  it('raises a failed prefetch when that page is asked for, not before', async () => {
    const asked: (string | null)[] = [];
    const fetchPage = async (cursor: string | null): Promise<FakePage> => {
      asked.push(cursor);
      if (cursor === 'c1') throw new Error('boom on page 1');
      return { n: 0, next: 'c1' };
    };
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const { page } of paginate(fetchPage)) seen.push(page.n);
      })(),
    ).rejects.toThrow('boom on page 1');
    expect(seen).toEqual([0]);
  });

  it('refuses a cursor that does not advance', async () => {
    const fetchPage = async (): Promise<FakePage> => ({ n: 0, next: 'same' });
    const run = async () => {
      for await (const _ of paginate(fetchPage, { start: 'same' })) {
        // drain
      }
    };
    await expect(run()).rejects.toBeInstanceOf(StreamApiError);
  });
});
