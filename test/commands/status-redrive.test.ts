import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/db.ts';
import { runCli } from '../helpers/cli.ts';
import { daysFromNow, insertSessionRows } from '../helpers/session-rows.ts';
import { HOUR_MS } from '../../src/time.ts';

describe('attendance status and redrive', () => {
  const test = useTestDatabase();
  const env = () => ({ DATABASE_URL: test.current.url });

  beforeAll(async () => {
    await insertSessionRows(test.current.database.pool, [
      { call_session_id: 'fresh', status: 'pending', retention_expires_at: daysFromNow(89) },
      {
        call_session_id: 'waiting',
        status: 'pending',
        retention_expires_at: daysFromNow(80),
        next_attempt_at: new Date(Date.now() - 600_000),
        created_at: new Date(Date.now() - HOUR_MS),
      },
      { call_session_id: 'near-expiry', status: 'retrying', retention_expires_at: daysFromNow(3), last_error: 'HTTP 503', next_attempt_at: daysFromNow(1) },
      { call_session_id: 'done', status: 'complete', retention_expires_at: daysFromNow(2) },
      { call_session_id: 'dead-1', status: 'dead', attempts: 10, last_error: 'HTTP 401: invalid token', retention_expires_at: daysFromNow(60) },
      { call_session_id: 'dead-2', status: 'dead', attempts: 3, last_error: 'totals mismatch: 98 of 100', retention_expires_at: daysFromNow(1) },
    ]);
  });

  it('counts sessions by status, the oldest due age, at-risk and dead sessions (--json)', async () => {
    const { code, stdout } = await runCli(['status', '--json'], env());
    expect(code).toBe(0);
    const stats = JSON.parse(stdout);
    expect(stats.counts).toEqual({ pending: 2, running: 0, complete: 1, retrying: 1, dead: 2, expired: 0 });
    expect(stats.oldestDueSeconds).toBeGreaterThanOrEqual(590);
    expect(stats.oldestDueSeconds).toBeLessThan(3600);
    // complete sessions are never at risk, however close their expiry
    expect(stats.atRisk.map((s: { callSessionId: string }) => s.callSessionId)).toEqual(['dead-2', 'near-expiry']);
    expect(stats.atRiskCount).toBe(2);
    expect(stats.dead.map((s: { callSessionId: string; lastError: string }) => [s.callSessionId, s.lastError]).sort()).toEqual([
      ['dead-1', 'HTTP 401: invalid token'],
      ['dead-2', 'totals mismatch: 98 of 100'],
    ]);
  });

  it('prints a readable summary by default', async () => {
    const { code, stdout } = await runCli(['status'], env());
    expect(code).toBe(0);
    expect(stdout).toMatch(/^ {2}pending +2$/m);
    expect(stdout).toMatch(/^ {2}dead +2$/m);
    expect(stdout).toContain('at risk (not complete, expiring within 7 days): 2');
    expect(stdout).toContain('near-expiry');
    expect(stdout).toContain('totals mismatch: 98 of 100');
  });

  it('refuses a bad --limit with exit 2', async () => {
    const { code, stderr } = await runCli(['status', '--limit', 'lots'], env());
    expect(code).toBe(2);
    expect(stderr).toContain('--limit');
  });

  it('redrive --session moves one dead session back to pending, attempts reset', async () => {
    const { code, stdout } = await runCli(['redrive', '--session', 'dead-1'], env());
    expect(code).toBe(0);
    expect(stdout).toContain('redriven: 1');
    const { rows } = await test.current.database.pool.query(
      "select call_session_id, status, attempts, cursor from call_sessions where call_session_id in ('dead-1', 'dead-2') order by 1",
    );
    expect(rows).toEqual([
      { call_session_id: 'dead-1', status: 'pending', attempts: 0, cursor: null },
      { call_session_id: 'dead-2', status: 'dead', attempts: 3, cursor: null },
    ]);
  });

  it('redrive --session refuses a session that is not dead, saying why', async () => {
    const notDead = await runCli(['redrive', '--session', 'done'], env());
    expect(notDead.code).toBe(1);
    expect(notDead.stderr).toContain('it is complete, not dead');
    const unknown = await runCli(['redrive', '--session', 'nope'], env());
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no such session');
  });

  it('redrive without --session moves every dead session', async () => {
    const { code, stdout } = await runCli(['redrive'], env());
    expect(code).toBe(0);
    expect(stdout).toContain('redriven: 1');
    const { rows } = await test.current.database.pool.query<{ n: number }>("select count(*)::int as n from call_sessions where status = 'dead'");
    expect(rows[0]?.n).toBe(0);
  });
});
