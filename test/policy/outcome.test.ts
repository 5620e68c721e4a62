import { describe, expect, it } from 'vitest';
import { decideOutcome, outcomeBeforeRun, outcomeDetail, type RunEnd, type RunFacts, type RunFailure } from '../../src/policy/outcome.ts';
import { RETRY_POLICIES } from '../../src/policy/retry.ts';
import type { SessionOutcome } from '../../src/queue/finish.ts';

const now = Date.UTC(2026, 5, 1);
// The top of every jitter range: the delays below are the bounds of the session schedule.
const policy = { backoff: RETRY_POLICIES.session, random: () => 1 };
const run = (overrides: Partial<RunFacts> = {}): RunFacts => ({
  attempts: 1,
  maxAttempts: 3,
  resumed: false,
  rowsWritten: 0,
  cursorMoved: false,
  now,
  ...overrides,
});
const totals = { participantSessions: 12, participantDuration: 600 };
const paged = (rows: number, overrides: Partial<Extract<RunEnd, { kind: 'paged' }>> = {}): RunEnd => ({
  kind: 'paged',
  held: { rows, durationSeconds: 600 },
  totals,
  entriesSeen: rows,
  pastRetention: false,
  ...overrides,
});
const failed = (failure: Partial<RunFailure> & Pick<RunFailure, 'class'>): RunEnd => ({
  kind: 'failed',
  failure: { message: 'Stream QueryCallParticipantSessions answered 503', resetAt: null, ...failure },
});

describe('decideOutcome', () => {
  // [name, run facts, how it ended, expected outcome]
  const rows: [string, RunFacts, RunEnd, SessionOutcome][] = [
    ['rows held = total: complete', run(), paged(12), { status: 'complete', totals, note: null }],
    [
      'complete with a duration mismatch noted',
      run(),
      paged(12, { held: { rows: 12, durationSeconds: 598 } }),
      { status: 'complete', totals, note: "summed duration_in_seconds is 598 s but Stream's total_participant_duration is 600 s" },
    ],
    [
      'an empty session (total 0) is complete',
      run(),
      paged(0, { totals: { participantSessions: 0, participantDuration: 0 }, held: { rows: 0, durationSeconds: 0 } }),
      { status: 'complete', totals: { participantSessions: 0, participantDuration: 0 }, note: null },
    ],
    [
      'empty list, non-zero total, past day 90: expired',
      run(),
      paged(0, { held: { rows: 0, durationSeconds: 0 }, pastRetention: true }),
      { status: 'expired', totals, note: 'Stream returned no participant sessions but reports 12: its 90-day retention has passed' },
    ],
    ['verified-complete wins over past retention', run(), paged(12, { pastRetention: true }), { status: 'complete', totals, note: null }],
    [
      'empty list before day 90: retried from the first page, not expired',
      run(),
      paged(0, { held: { rows: 0, durationSeconds: 0 } }),
      { status: 'retrying', delayMs: 5_000, error: 'holds 0 participant sessions but Stream reports 12 (-12)', restart: true, totals, refundAttempt: false },
    ],
    [
      'a resumed run seeing nothing past day 90 is not taken for expired',
      run({ resumed: true }),
      paged(3, { entriesSeen: 0, pastRetention: true }),
      { status: 'retrying', delayMs: 5_000, error: 'holds 3 participant sessions but Stream reports 12 (-9)', restart: true, totals, refundAttempt: false },
    ],
    [
      'too many rows: retried from the first page',
      run({ attempts: 2 }),
      paged(13),
      { status: 'retrying', delayMs: 10_000, error: 'holds 13 participant sessions but Stream reports 12 (+1)', restart: true, totals, refundAttempt: false },
    ],
    [
      'a count that does not match at the attempt limit: dead, cursor forgotten',
      run({ attempts: 3, cursorMoved: true }),
      paged(11),
      { status: 'dead', error: 'gave up after 3 attempts; last error: holds 11 participant sessions but Stream reports 12 (-1)', totals, restart: true },
    ],
    [
      '5xx: retried, cursor kept',
      run(),
      failed({ class: 'retryable' }),
      { status: 'retrying', delayMs: 5_000, error: 'Stream QueryCallParticipantSessions answered 503', restart: false, totals: null, refundAttempt: false },
    ],
    [
      '5xx at the attempt limit: dead',
      run({ attempts: 3 }),
      failed({ class: 'retryable' }),
      { status: 'dead', error: 'gave up after 3 attempts; last error: Stream QueryCallParticipantSessions answered 503', totals: null, restart: false },
    ],
    [
      'refund when the cursor moved: retried even at the limit, attempt given back',
      run({ attempts: 3, cursorMoved: true, rowsWritten: 200 }),
      failed({ class: 'retryable' }),
      { status: 'retrying', delayMs: 20_000, error: 'Stream QueryCallParticipantSessions answered 503', restart: false, totals: null, refundAttempt: true },
    ],
    [
      '404 not ready: the gentler schedule',
      run({ attempts: 2 }),
      failed({ class: 'not_ready', message: 'Stream answered 404' }),
      { status: 'retrying', delayMs: 60_000, error: 'Stream answered 404', restart: false, totals: null, refundAttempt: false },
    ],
    [
      '429: until X-RateLimit-Reset plus jitter, when longer than the backoff',
      run(),
      failed({ class: 'rate_limited', message: 'Stream answered 429', resetAt: new Date(now + 30_000) }),
      { status: 'retrying', delayMs: 35_000, error: 'Stream answered 429', restart: false, totals: null, refundAttempt: false },
    ],
    [
      '429 without a reset header: the ordinary backoff',
      run(),
      failed({ class: 'rate_limited', message: 'Stream answered 429' }),
      { status: 'retrying', delayMs: 5_000, error: 'Stream answered 429', restart: false, totals: null, refundAttempt: false },
    ],
    ['401: dead at once', run(), failed({ class: 'fatal', message: 'Stream answered 401' }), { status: 'dead', error: 'Stream answered 401', totals: null }],
    [
      '400 on the first page: dead at once',
      run(),
      failed({ class: 'refused', message: 'Stream answered 400' }),
      { status: 'dead', error: 'Stream answered 400', totals: null },
    ],
    [
      '400 on a stored cursor before anything was written: start over',
      run({ resumed: true }),
      failed({ class: 'refused', message: 'Stream answered 400' }),
      {
        status: 'retrying',
        delayMs: 5_000,
        error: 'Stream answered 400 (on a stored cursor; restarting from the first page)',
        restart: true,
        totals: null,
        refundAttempt: false,
      },
    ],
    [
      'a stale cursor at the attempt limit: dead, cursor forgotten',
      run({ resumed: true, attempts: 3 }),
      failed({ class: 'refused', message: 'Stream answered 400' }),
      {
        status: 'dead',
        error: 'gave up after 3 attempts; last error: Stream answered 400 (on a stored cursor; restarting from the first page)',
        totals: null,
        restart: true,
      },
    ],
    [
      '400 on a later page of a resumed run: dead',
      run({ resumed: true, rowsWritten: 100, cursorMoved: true }),
      failed({ class: 'refused', message: 'Stream answered 400' }),
      { status: 'dead', error: 'Stream answered 400', totals: null },
    ],
  ];
  it.each(rows)('%s', (_name, facts, end, expected) => {
    expect(decideOutcome(facts, end, policy)).toEqual(expected);
  });

  it('draws its jitter from the session schedule', () => {
    const low = decideOutcome(run(), failed({ class: 'retryable' }), { random: () => 0 });
    expect(low).toMatchObject({ status: 'retrying', delayMs: 1_000 });
  });
});

describe('outcomeBeforeRun', () => {
  const rows: [string, number, number, SessionOutcome | null][] = [
    ['within the limit: run', 3, 3, null],
    [
      'a takeover past the limit: dead without paging',
      4,
      3,
      { status: 'dead', error: 'gave up after 3 attempts: runs ended without a result (worker stopped or lost its lease)', totals: null },
    ],
  ];
  it.each(rows)('%s', (_name, attempts, maxAttempts, expected) => {
    expect(outcomeBeforeRun(attempts, maxAttempts)).toEqual(expected);
  });
});

describe('outcomeDetail', () => {
  it('is the error of a retry or a death, else the note', () => {
    expect(outcomeDetail({ status: 'dead', error: 'e', totals: null })).toBe('e');
    expect(outcomeDetail({ status: 'complete', totals, note: null })).toBeNull();
    expect(outcomeDetail({ status: 'expired', totals, note: 'n' })).toBe('n');
  });
});
