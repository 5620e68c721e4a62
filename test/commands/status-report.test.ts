import { beforeAll, describe, expect, it } from 'vitest';
import { recordStreamHealth } from '../../src/health/stream-health.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { runCli } from '../helpers/cli.ts';
import { daysFromNow, insertSessionRows } from '../helpers/session-rows.ts';

describe('attendance status tells the whole story', () => {
  const test = useTestDatabase();
  const env = () => ({ DATABASE_URL: test.current.url });

  it('before anything ran: Stream unknown, no sweep yet, and says so', async () => {
    const { code, stdout } = await runCli(['status', '--json'], env());
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(report.stream).toEqual({ state: 'unknown', checkedAt: null, lastError: null, lastSuccessAt: null });
    expect(report.sweep).toBeNull();
    const text = await runCli(['status'], env());
    expect(text.stdout.split('\n')[0]).toBe('stream: unknown (no replica has talked to Stream yet)');
    expect(text.stdout).toContain('last sweep: none yet');
  });

  describe('with Stream refusing, a sweep cut off and sessions retrying', () => {
    beforeAll(async () => {
      const pool = test.current.database.pool;
      await recordStreamHealth(
        pool,
        'unauthorized',
        'Stream refused the API credentials (Stream GetRateLimits answered 401): check STREAM_API_KEY and STREAM_API_SECRET',
      );
      await insertSessionRows(pool, [
        {
          call_session_id: 'retry-soon',
          status: 'retrying',
          attempts: 2,
          last_error: 'Stream QueryCallParticipantSessions answered 503',
          next_attempt_at: daysFromNow(0.01),
          retention_expires_at: daysFromNow(50),
        },
        {
          call_session_id: 'retry-later',
          status: 'retrying',
          attempts: 4,
          last_error: 'timed out after 10000 ms',
          next_attempt_at: daysFromNow(0.1),
          retention_expires_at: daysFromNow(2),
        },
        { call_session_id: 'gone', status: 'dead', attempts: 10, last_error: 'HTTP 401', retention_expires_at: daysFromNow(30) },
      ]);
      await pool.query(
        `insert into reconcile_state (name, watermark, sweep_until, cursor, last_sweep_at, last_error, sweep_from, sweep_position, covered_from,
                                      sweep_started_at, sweep_seen, sweep_enqueued, sweep_unusable, unusable_total)
         values ('call_stats', '2026-11-01T00:00:00Z', '2026-11-30T00:00:00Z', 'c2', '2026-11-01T00:05:00Z', 'Stream QueryCallSessionStats answered 401',
                 '2026-10-31T23:00:00Z', '2026-11-12T08:00:00Z', '2026-08-03T00:00:00Z', '2026-11-30T00:00:01Z', 200, 17, 2, 5)`,
      );
    });

    it('--json: stream, the sweep with its window, progress and counts, and retrying sessions with their errors', async () => {
      const { code, stdout } = await runCli(['status', '--json'], env());
      expect(code).toBe(0);
      const report = JSON.parse(stdout);
      expect(report.stream.state).toBe('unauthorized');
      expect(report.stream.lastError).toContain('check STREAM_API_KEY and STREAM_API_SECRET');
      expect(typeof report.stream.checkedAt).toBe('string');
      expect(report.sweep).toMatchObject({
        inProgress: true,
        lastFinishedAt: '2026-11-01T00:05:00.000Z',
        lastError: 'Stream QueryCallSessionStats answered 401',
        window: { from: '2026-10-31T23:00:00.000Z', until: '2026-11-30T00:00:00.000Z' },
        position: '2026-11-12T08:00:00.000Z',
        covered: { from: '2026-08-03T00:00:00.000Z', until: '2026-11-01T00:00:00.000Z' },
        seen: 200,
        enqueued: 17,
        unusable: 2,
        unusableTotal: 5,
      });
      expect(report.retryingCount).toBe(2);
      expect(report.retrying.map((s: { callSessionId: string; attempts: number; lastError: string }) => [s.callSessionId, s.attempts, s.lastError])).toEqual([
        ['retry-soon', 2, 'Stream QueryCallParticipantSessions answered 503'],
        ['retry-later', 4, 'timed out after 10000 ms'],
      ]);
      expect(typeof report.retrying[0].nextAttemptAt).toBe('string');
      expect(report.atRisk.map((s: { callSessionId: string }) => s.callSessionId)).toEqual(['retry-later']);
      expect(report.dead.map((s: { callSessionId: string }) => s.callSessionId)).toEqual(['gone']);
    });

    it('text: Stream first, then the sweep, then retrying, at-risk and dead sessions', async () => {
      const { code, stdout } = await runCli(['status'], env());
      expect(code).toBe(0);
      const lines = stdout.split('\n');
      expect(lines[0]).toMatch(/^stream: unauthorized, checked /);
      expect(lines[1]).toContain('check STREAM_API_KEY and STREAM_API_SECRET');
      expect(stdout).toContain('sweep: in progress since 2026-11-30T00:00:01.000Z');
      expect(stdout).toContain('window 2026-10-31T23:00:00.000Z → 2026-11-30T00:00:00.000Z, reached 2026-11-12T08:00:00.000Z');
      expect(stdout).toContain('rows seen 200, enqueued 17, unusable 2 (all time 5)');
      expect(stdout).toContain('covered: sessions that ended 2026-08-03T00:00:00.000Z → 2026-11-01T00:00:00.000Z');
      expect(stdout).toContain('last error: Stream QueryCallSessionStats answered 401');
      expect(stdout).toContain('retrying: 2');
      expect(stdout).toMatch(/retry-later {2}default:call-retry-later {2}attempts 4 {2}next \S+ {2}timed out after 10000 ms/);
      expect(stdout.indexOf('retrying: 2')).toBeLessThan(stdout.indexOf('at risk'));
    });
  });
});
