import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { createStreamClient } from '../../src/stream/client.ts';
import { StreamApiError } from '../../src/stream/errors.ts';
import { paginate, paginateParticipantSessions } from '../../src/stream/paginate.ts';

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

  it('names the operation whose cursor did not advance', async () => {
    const fetchPage = async (): Promise<FakePage> => ({ n: 0, next: 'same' });
    const error = await (async () => {
      for await (const _ of paginate(fetchPage, { start: 'same', operation: 'QueryCallSessionStats' })) {
        // drain
      }
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamApiError);
    expect(error).toMatchObject({ operation: 'QueryCallSessionStats', failure: 'invalid_response' });
  });

  it('without prefetch, asks for the next page only when the caller comes back for it', async () => {
    const source = fakeSource(4);
    const seen: string[] = [];
    for await (const { page } of paginate(source.fetchPage, { prefetch: false })) {
      for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
      seen.push(`${page.n}:${source.asked.length}`);
    }
    // Page n was in hand while only n + 1 requests had been made: nothing fetched ahead.
    expect(seen).toEqual(['0:1', '1:2', '2:3', '3:4']);
  });

  it('checks the signal before each request', async () => {
    const source = fakeSource(4);
    const controller = new AbortController();
    const run = async () => {
      for await (const { page } of paginate(source.fetchPage, { prefetch: false, signal: controller.signal })) {
        if (page.n === 1) controller.abort(new Error('stopping'));
      }
    };
    await expect(run()).rejects.toThrow('stopping');
    expect(source.asked).toEqual([null, 'c1']);
  });

  it('sends the request for the next page before the caller works on this one', async () => {
    // A server in another process, so it notes each request's arrival while this process is busy:
    // three pages, answered at once, each arrival printed with the wall clock.
    const server = `
      const pages = 3;
      require('node:http').createServer((req, res) => {
        const cursor = new URL(req.url, 'http://x').searchParams.get('next');
        const n = cursor ? Number(cursor.slice(1)) : 0;
        console.log('arrived ' + n + ' ' + Date.now());
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ call_type: 'default', call_id: 'c', call_session_id: 's', duration: '1ms',
          total_participant_sessions: pages, total_participant_duration: 0,
          participants_sessions: [{ user_id: 'u' + n, user_session_id: 'us' + n }],
          next: n + 1 < pages ? 'c' + (n + 1) : '' }));
      }).listen(0, '127.0.0.1', function () { console.log('port ' + this.address().port); });`;
    const child = spawn(process.execPath, ['-e', server], { stdio: ['ignore', 'pipe', 'inherit'] });
    const arrivals: number[] = [];
    const lines = createInterface({ input: child.stdout! });
    const port = await new Promise<number>((resolve) =>
      lines.on('line', (line) => {
        const [what, a, b] = line.split(' ');
        if (what === 'port') resolve(Number(a));
        else arrivals[Number(a)] = Number(b);
      }),
    );
    const client = createStreamClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: 'k', apiSecret: 's' });
    try {
      // Once through, so the keep-alive connections are open, as they are in steady work.
      for await (const _ of paginateParticipantSessions(client, { type: 'default', id: 'c', session: 's' })) {
        // drain
      }
      const workDone: number[] = [];
      for await (const { page } of paginateParticipantSessions(client, { type: 'default', id: 'c', session: 's' })) {
        expect(page.entries).toHaveLength(1);
        // The caller's synchronous work on this page (the worker serialises it for Postgres).
        const until = Date.now() + 250;
        while (Date.now() < until) {
          // busy
        }
        workDone.push(Date.now());
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(workDone).toHaveLength(3);
      // Page n + 1 was asked for while page n was being worked on, not after.
      expect(arrivals[1]).toBeLessThan(workDone[0]!);
      expect(arrivals[2]).toBeLessThan(workDone[1]!);
    } finally {
      await client.close();
      child.kill();
    }
  });
});
