import { describe, expect, it } from 'vitest';
import { StreamApiError } from '../../src/stream/errors.ts';
import { withStreamRetries, type RetryPolicy } from '../../src/reconcile/retry.ts';

const policy: RetryPolicy = { attempts: 4, baseDelayMs: 100, maxDelayMs: 250 };
const serverError = () =>
  new StreamApiError('Stream QueryCallSessionStats answered 503', { operation: 'QueryCallSessionStats', status: 503, failure: 'server' });
const clientError = () =>
  new StreamApiError('Stream QueryCallSessionStats answered 400', { operation: 'QueryCallSessionStats', status: 400, failure: 'client' });

describe('withStreamRetries', () => {
  it('backs off exponentially up to the cap, with jitter in the upper half', async () => {
    const waitsWith = async (random: () => number): Promise<number[]> => {
      const waits: number[] = [];
      const failing = async (): Promise<never> => {
        throw serverError();
      };
      await withStreamRetries(failing, { policy: { ...policy, attempts: 5 }, random, sleep: async (ms) => void waits.push(ms) }).catch(() => undefined);
      return waits;
    };
    expect(await waitsWith(() => 1)).toEqual([100, 200, 250, 250]);
    expect(await waitsWith(() => 0)).toEqual([50, 100, 125, 125]);
  });

  it('retries retryable Stream errors until one succeeds', async () => {
    const waits: number[] = [];
    let calls = 0;
    const result = await withStreamRetries(
      async () => {
        calls += 1;
        if (calls < 3) throw serverError();
        return 'page';
      },
      { policy, random: () => 1, sleep: async (ms) => void waits.push(ms) },
    );
    expect(result).toBe('page');
    expect(calls).toBe(3);
    expect(waits).toEqual([100, 200]);
  });

  it('gives up after the last attempt with the last error', async () => {
    let calls = 0;
    const error = await withStreamRetries(
      async () => {
        calls += 1;
        throw serverError();
      },
      { policy, sleep: async () => undefined },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamApiError);
    expect(calls).toBe(4);
  });

  it('does not retry errors that are not retryable', async () => {
    for (const make of [clientError, () => new Error('bug')]) {
      let calls = 0;
      await expect(
        withStreamRetries(
          async () => {
            calls += 1;
            throw make();
          },
          { policy, sleep: async () => undefined },
        ),
      ).rejects.toThrow();
      expect(calls).toBe(1);
    }
  });

  it('stops waiting when aborted', async () => {
    const controller = new AbortController();
    const run = withStreamRetries(
      async () => {
        throw serverError();
      },
      { policy: { attempts: 3, baseDelayMs: 60_000, maxDelayMs: 60_000 }, signal: controller.signal },
    );
    controller.abort(new Error('stopping'));
    await expect(run).rejects.toThrow();
  });
});
