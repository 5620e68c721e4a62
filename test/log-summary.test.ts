import { describe, expect, it } from 'vitest';
import { createLogSummary, type SummaryLog } from '../src/log-summary.ts';

interface Line {
  readonly level: 'error' | 'warn' | 'info';
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

function capture(): { log: SummaryLog; lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: Line['level']) => (fields: object, message: string) => lines.push({ level, fields: fields as Record<string, unknown>, message });
  return { log: { error: at('error'), warn: at('warn'), info: at('info') }, lines };
}

const T0 = Date.parse('2026-05-01T12:00:00Z');

describe('createLogSummary', () => {
  it('logs the first failure in full, then at most one summary per interval, then one line on recovery', () => {
    const { log, lines } = capture();
    let now = T0;
    const summary = createLogSummary({ log, message: 'refused', intervalMs: 10_000, now: () => now });
    const error = new Error('connect ECONNREFUSED');
    // 1,000 failures over 25 s, one every 25 ms.
    for (let i = 0; i < 1_000; i++) {
      summary.failure(i % 4 === 0 ? 'ENQUEUE_TIMEOUT' : 'ECONNREFUSED', { err: error, webhookId: `w-${i}` });
      now += 25;
    }
    expect(lines.map((l) => [l.level, l.message])).toEqual([
      ['error', 'refused'],
      ['warn', 'refused (summary)'],
      ['warn', 'refused (summary)'],
    ]);
    expect(lines[0]!.fields).toMatchObject({ err: error, webhookId: 'w-0', reason: 'ENQUEUE_TIMEOUT', summaryEveryMs: 10_000 });
    // Failure 400 is the first at T0 + 10 s, failure 800 the first at T0 + 20 s.
    expect(lines[1]!.fields).toEqual({
      count: 400,
      total: 401,
      firstAt: '2026-05-01T12:00:00.000Z',
      lastAt: '2026-05-01T12:00:10.000Z',
      reasons: { ENQUEUE_TIMEOUT: 101, ECONNREFUSED: 300 },
    });
    expect(lines[2]!.fields).toMatchObject({ count: 400, total: 801, lastAt: '2026-05-01T12:00:20.000Z' });
    // No stack and no per-request ids in a summary.
    expect(JSON.stringify(lines.slice(1))).not.toContain('w-');

    summary.success();
    expect(lines.at(-1)).toEqual({
      level: 'info',
      message: 'refused (recovered)',
      fields: { total: 1_000, firstAt: '2026-05-01T12:00:00.000Z', lastAt: '2026-05-01T12:00:24.975Z', reasons: { ENQUEUE_TIMEOUT: 250, ECONNREFUSED: 750 } },
    });
    summary.success();
    expect(lines).toHaveLength(4);
  });

  it('starts a new spell after recovery, whose first failure is logged in full again', () => {
    const { log, lines } = capture();
    let now = T0;
    const summary = createLogSummary({ log, message: 'refused', intervalMs: 10_000, now: () => now });
    summary.success();
    expect(lines).toEqual([]);
    summary.failure('57P01', { n: 1 });
    summary.success();
    now += 1_000;
    summary.failure('57P01', { n: 2 });
    expect(lines.map((l) => l.level)).toEqual(['error', 'info', 'error']);
    expect(lines[2]!.fields).toMatchObject({ n: 2 });
  });

  it('keeps at most ten reasons, counting the rest as other', () => {
    const { log, lines } = capture();
    const summary = createLogSummary({ log, message: 'refused', intervalMs: 10_000, now: () => T0 });
    for (let i = 0; i < 50; i++) summary.failure(`reason-${i}`, {});
    summary.success();
    const reasons = lines.at(-1)!.fields.reasons as Record<string, number>;
    expect(Object.keys(reasons)).toHaveLength(11);
    expect(reasons.other).toBe(40);
  });
});
