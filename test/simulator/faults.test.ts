import { afterEach, describe, expect, it } from 'vitest';
import { createFaultPicker } from '../../tools/simulator/faults.ts';
import { generateSession } from '../../tools/simulator/generate.ts';
import { startSimulator, type Simulator, type SimulatorFaults } from '../../tools/simulator/server.ts';
import { createServerToken } from '../../src/stream/token.ts';
import { participantSessionsPath } from './helpers.ts';
import { HOUR_MS } from '../../src/time.ts';

const session = generateSession({ seed: 'faults', size: 120, endedAt: new Date(Date.now() - HOUR_MS) });
const running: Simulator[] = [];
afterEach(async () => {
  for (const sim of running.splice(0)) await sim.close();
});

async function start(faults: SimulatorFaults | undefined): Promise<Simulator> {
  const sim = await startSimulator({ apiKey: 'fk', apiSecret: 'fs', faults });
  sim.addSession(session);
  running.push(sim);
  return sim;
}

type Outcome = 'ok' | 'serverError' | 'rateLimit' | 'reset' | 'truncated' | 'timeout';

/** What a client sees: the kind of failure, judged from the outside only. */
async function observe(sim: Simulator, token: string, timeoutMs = 10_000): Promise<{ outcome: Outcome; status?: number; text?: string; headers?: Headers }> {
  try {
    const response = await fetch(`${sim.url}${participantSessionsPath(session)}?api_key=fk&limit=50`, {
      headers: { authorization: token, 'stream-auth-type': 'jwt' },
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    const { status, headers } = response;
    if (status >= 500) return { outcome: 'serverError', status, text, headers };
    if (status === 429) return { outcome: 'rateLimit', status, text, headers };
    try {
      JSON.parse(text);
    } catch {
      return { outcome: 'truncated', status, text, headers };
    }
    return { outcome: 'ok', status, text, headers };
  } catch (error) {
    return { outcome: (error as Error).name === 'TimeoutError' ? 'timeout' : 'reset' };
  }
}

describe('simulator: seeded faults', () => {
  it('injects each fault at its share (2,000 requests, within tolerance) and counts them', async () => {
    const faults = { seed: 7, serverErrorRate: 0.2, rateLimitRate: 0.1, slowRate: 0.1, slowMs: 1, resetRate: 0.1, truncatedRate: 0.1 };
    const sim = await start(faults);
    const token = await createServerToken('fs');
    const total = 2_000;
    const seen: Record<Outcome, number> = { ok: 0, serverError: 0, rateLimit: 0, reset: 0, truncated: 0, timeout: 0 };
    const statuses = new Set<number>();
    let issued = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (issued < total) {
          issued++;
          const seenNow = await observe(sim, token);
          seen[seenNow.outcome]++;
          if (seenNow.outcome === 'serverError') statuses.add(seenNow.status as number);
          if (seenNow.outcome === 'rateLimit') {
            expect(JSON.parse(seenNow.text as string)).toMatchObject({ code: 9, StatusCode: 429 });
            expect(seenNow.headers?.get('x-ratelimit-reset')).toMatch(/^\d+$/);
          }
        }
      }),
    );
    expect(sim.stats.requests).toBe(total);
    expect(Math.abs(seen.serverError / total - 0.2)).toBeLessThanOrEqual(0.04);
    for (const kind of ['rateLimit', 'reset', 'truncated'] as const) expect(Math.abs(seen[kind] / total - 0.1), kind).toBeLessThanOrEqual(0.03);
    expect(Math.abs((sim.stats.faults.slow as number) / total - 0.1)).toBeLessThanOrEqual(0.03);
    expect(seen.timeout).toBe(0);
    // What the client saw is what the simulator says it injected.
    expect(sim.stats.faults).toMatchObject({ serverError: seen.serverError, rateLimit: seen.rateLimit, reset: seen.reset, truncated: seen.truncated });
    expect(seen.ok).toBe(total - seen.serverError - seen.rateLimit - seen.reset - seen.truncated);
    expect([...statuses].sort()).toEqual([500, 502, 503]);
  });

  it('repeats the same sequence of faults for the same seed, and another for another seed', async () => {
    const faults = { serverErrorRate: 0.15, rateLimitRate: 0.1, resetRate: 0.1, truncatedRate: 0.1 };
    const token = await createServerToken('fs');
    const sequence = async (seed: number) => {
      const sim = await start({ ...faults, seed });
      const outcomes: string[] = [];
      for (let i = 0; i < 150; i++) {
        const seen = await observe(sim, token);
        outcomes.push(seen.status ? `${seen.outcome}:${seen.status}` : seen.outcome);
      }
      return outcomes;
    };
    const first = await sequence(11);
    expect(await sequence(11)).toEqual(first);
    expect(await sequence(12)).not.toEqual(first);
    expect(new Set(first).size).toBeGreaterThanOrEqual(5);
  });

  it('answers 500 with an APIError body and 502/503 with a load balancer text body', async () => {
    const sim = await start({ seed: 3, serverErrorRate: 1 });
    const token = await createServerToken('fs');
    const seen = new Map<number, string>();
    for (let i = 0; i < 60 && seen.size < 3; i++) {
      const reply = await observe(sim, token);
      seen.set(reply.status as number, reply.text as string);
    }
    expect(JSON.parse(seen.get(500) as string)).toMatchObject({ code: -1, StatusCode: 500 });
    expect(seen.get(502)).toMatch(/Bad Gateway/);
    expect(seen.get(503)).toMatch(/Service Unavailable/);
  });

  it('truncates a body to its first half, with a matching Content-Length', async () => {
    const clean = await start(undefined);
    const token = await createServerToken('fs');
    const whole = (await observe(clean, token)).text as string;
    const sim = await start({ seed: 1, truncatedRate: 1 });
    const cut = await observe(sim, token);
    expect(cut.outcome).toBe('truncated');
    expect(cut.status).toBe(200);
    expect(cut.headers?.get('content-length')).toBe(String(Buffer.byteLength(cut.text as string)));
    // The duration field at the very end may differ by a digit; the first half is the same bytes.
    expect(whole.startsWith(cut.text as string)).toBe(true);
    expect(Math.abs(Buffer.byteLength(cut.text as string) - Buffer.byteLength(whole) / 2)).toBeLessThanOrEqual(2);
  });

  it('holds a slow answer past a client timeout, and close() does not wait for it', async () => {
    const sim = await start({ seed: 1, slowRate: 1, slowMs: 60_000 });
    const token = await createServerToken('fs');
    expect((await observe(sim, token, 100)).outcome).toBe('timeout');
    expect(sim.stats.faults.slow).toBe(1);
    running.splice(running.indexOf(sim), 1);
    await sim.close();

    const slowish = await start({ seed: 1, slowRate: 1, slowMs: 20 });
    const reply = await observe(slowish, token);
    expect(reply.outcome).toBe('ok');
    expect(JSON.parse(reply.text as string).participants_sessions).toHaveLength(50);
  });

  it('turns faults off and on while running', async () => {
    const sim = await start({ seed: 5, resetRate: 1 });
    const token = await createServerToken('fs');
    expect((await observe(sim, token)).outcome).toBe('reset');
    sim.setFaults(undefined);
    for (let i = 0; i < 20; i++) expect((await observe(sim, token)).outcome).toBe('ok');
    sim.setFaults({ seed: 5, rateLimitRate: 1 });
    expect((await observe(sim, token)).outcome).toBe('rateLimit');
  });

  it('refuses impossible fault settings', () => {
    expect(() => createFaultPicker({ serverErrorRate: 0.6, resetRate: 0.6 })).toThrow(RangeError);
    expect(() => createFaultPicker({ slowRate: -0.1 })).toThrow(RangeError);
    expect(() => createFaultPicker({ truncatedRate: 2 })).toThrow(RangeError);
    expect(() => createFaultPicker({ slowRate: 0.1, slowMs: -5 })).toThrow(RangeError);
    expect(createFaultPicker(undefined).draw()).toBeUndefined();
  });
});
