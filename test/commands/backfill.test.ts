import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseBackfillArgs } from '../../src/commands/backfill.ts';
import { claimSessions } from '../../src/queue/claim.ts';
import { generateSession, type SimSession } from '../../tools/simulator/generate.ts';
import { retentionExpiresAt } from '../../src/stream/retention.ts';
import { runCli } from '../helpers/cli.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { insertSessionRows } from '../helpers/session-rows.ts';
import { API_KEY, API_SECRET, endedSession, startStreamHarness, type StreamHarness } from '../reconcile/harness.ts';
import { DAY_MS, HOUR_MS } from '../../src/time.ts';

describe('attendance backfill', () => {
  const test = useTestDatabase();
  const pool = () => test.current.database.pool;
  const now = Date.now();
  let harness: StreamHarness;
  const at: Record<string, SimSession> = {};
  const env = () => ({
    DATABASE_URL: test.current.url,
    STREAM_API_KEY: API_KEY,
    STREAM_API_SECRET: API_SECRET,
    STREAM_BASE_URL: harness.sim.url,
    LOG_LEVEL: 'warn',
  });

  beforeAll(async () => {
    for (const hours of [1, 5, 10, 20, 30, 40, 100, 24 * 87]) at[`${hours}h`] = endedSession(`backfill-${hours}`, hours, now);
    harness = await startStreamHarness(Object.values(at));
  });
  afterAll(async () => {
    await harness?.close();
  });
  beforeEach(async () => {
    await pool().query('delete from call_sessions');
  });

  const storedIds = async () => (await pool().query<{ id: string }>('select call_session_id as id from call_sessions order by 1')).rows.map((r) => r.id);
  const s = (key: string): SimSession => at[key]!;

  describe('flags', () => {
    const usage = async (argv: string[], message: RegExp | string) => {
      const { code, stdout, stderr } = await runCli(['backfill', ...argv], env());
      expect(code).toBe(2);
      expect(stdout).toBe('');
      expect(stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(stderr).toMatch(message);
    };

    it('refuses missing, mixed and malformed flags with exit 2 and one line', async () => {
      await usage([], /--since .* or --call/);
      await usage(['--since', '7d', '--call', 'default:a', '--session', 's'], 'not both');
      await usage(['--until', '1d'], '--until needs --since');
      await usage(['--since', 'yesterday'], '--since must be an ISO date');
      await usage(['--since', '2026-02-30'], '--since must be an ISO date');
      await usage(['--since', '2026-03-01T10:00:00'], '--since must be an ISO date');
      await usage(['--since', '2d', '--until', '3d'], 'must be after --since');
      await usage(['--since', '91d'], 'more than 90 days back');
      await usage(['--call', 'default-a', '--session', 's'], '--call must be <type>:<id>');
      await usage(['--call', 'default:', '--session', 's'], '--call must be <type>:<id>');
      await usage(['--call', 'default:a'], '--call needs --session');
      await usage(['--session', 's'], '--session needs --call');
      await usage(['--since', '1d', 'extra'], 'unexpected argument');
      await usage(['--window', '1d'], /window/);
    });

    it('needs the Stream credentials, naming the variable', async () => {
      const { code, stderr } = await runCli(['backfill', '--since', '1d'], { DATABASE_URL: test.current.url });
      expect(code).toBe(2);
      expect(stderr).toContain('STREAM_API_KEY is required');
    });

    it('reads Nd, dates and date-times', () => {
      const when = new Date('2026-05-10T12:00:00Z');
      expect(parseBackfillArgs({ since: '3d' }, when)).toEqual({ kind: 'window', since: new Date('2026-05-07T12:00:00Z'), until: when });
      expect(parseBackfillArgs({ since: '2026-05-01', until: '2026-05-02T06:30:00+02:00' }, when)).toEqual({
        kind: 'window',
        since: new Date('2026-05-01T00:00:00Z'),
        until: new Date('2026-05-02T04:30:00Z'),
      });
      expect(parseBackfillArgs({ call: 'livestream:a:b', session: 'x' }, when)).toEqual({
        kind: 'session',
        callType: 'livestream',
        callId: 'a:b',
        callSessionId: 'x',
      });
    });
  });

  it('--since/--until enqueues exactly the sessions that ended in the window, once, without touching the watermark', async () => {
    // Came by webhook already: listed by Stream, but not enqueued again.
    await insertSessionRows(pool(), [{ call_session_id: s('20h').callSessionId, call_type: s('20h').callType, call_id: s('20h').callId, status: 'complete' }]);
    const since = s('30h').endedAt.toISOString();
    const until = s('10h').endedAt.toISOString();
    const { code, stdout, stderr } = await runCli(['backfill', '--since', since, '--until', until], env());
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines.slice(0, -1).sort()).toEqual(
      [s('30h'), s('10h')].map((x) => `enqueued  ${x.callSessionId}  ${x.callType}:${x.callId}  ended ${x.endedAt.toISOString()}`).sort(),
    );
    expect(lines.at(-1)).toBe(
      `backfill: 2 session(s) enqueued, 1 already known, of 3 ended between ${since} and ${until}; ` +
        '0 without an end time (retention estimated), 1 end time(s) filled in, 0 unusable (not enqueued)',
    );
    expect(await storedIds()).toEqual([s('10h'), s('20h'), s('30h')].map((x) => x.callSessionId).sort());
    const { rows } = await pool().query<{ n: number }>('select count(*)::int as n from reconcile_state');
    expect(rows[0]?.n).toBe(0);

    const again = await runCli(['backfill', '--since', since, '--until', until], env());
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(
      `backfill: 0 session(s) enqueued, 3 already known, of 3 ended between ${since} and ${until}; ` +
        '0 without an end time (retention estimated), 0 end time(s) filled in, 0 unusable (not enqueued)\n',
    );
  });

  it('--call/--session enqueues one session with its end time from call_stats, and is idempotent', async () => {
    const one = s('5h');
    const argv = ['backfill', '--call', `${one.callType}:${one.callId}`, '--session', one.callSessionId];
    const first = await runCli(argv, env());
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(
      `enqueued  ${one.callSessionId}  ${one.callType}:${one.callId}  ended ${one.endedAt.toISOString()}\nbackfill: 1 session(s) enqueued\n`,
    );
    const { rows } = await pool().query('select status, session_ended_at, retention_expires_at from call_sessions where call_session_id = $1', [
      one.callSessionId,
    ]);
    expect(rows).toEqual([{ status: 'pending', session_ended_at: one.endedAt, retention_expires_at: new Date(one.endedAt.getTime() + 90 * DAY_MS) }]);

    await pool().query("update call_sessions set status = 'complete' where call_session_id = $1", [one.callSessionId]);
    const second = await runCli(argv, env());
    expect(second.code).toBe(0);
    expect(second.stdout).toContain(`already known  ${one.callSessionId}  ${one.callType}:${one.callId}  complete; nothing changed`);
    expect((await pool().query('select status from call_sessions where call_session_id = $1', [one.callSessionId])).rows).toEqual([{ status: 'complete' }]);
  });

  it('--call/--session sends dead sessions to redrive, says expired ones are gone, and refuses the wrong call', async () => {
    await insertSessionRows(pool(), [
      { call_session_id: 'dead-one', status: 'dead', last_error: 'HTTP 403' },
      { call_session_id: 'expired-one', status: 'expired' },
    ]);
    const dead = await runCli(['backfill', '--call', 'default:call-dead-one', '--session', 'dead-one'], env());
    expect(dead.code).toBe(1);
    expect(dead.stderr).toContain("run 'attendance redrive --session dead-one'");
    const expired = await runCli(['backfill', '--call', 'default:call-expired-one', '--session', 'expired-one'], env());
    expect(expired.code).toBe(1);
    expect(expired.stderr).toContain('is expired');
    expect((await pool().query("select status from call_sessions where call_session_id in ('dead-one', 'expired-one') order by 1")).rows).toEqual([
      { status: 'dead' },
      { status: 'expired' },
    ]);

    const wrong = await runCli(['backfill', '--call', 'default:not-this-call', '--session', s('1h').callSessionId], env());
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`under call ${s('1h').callType}:${s('1h').callId}`);
    expect(await storedIds()).not.toContain(s('1h').callSessionId);
  });

  it('--call/--session enqueues a session call_stats does not list, without a retention date', async () => {
    const { code, stdout } = await runCli(['backfill', '--call', 'default:unlisted', '--session', 'unlisted-session'], env());
    expect(code).toBe(0);
    expect(stdout).toContain('enqueued  unlisted-session  default:unlisted  ended unknown');
    expect(stdout).toContain('call_stats does not list this session');
    expect((await pool().query("select status, retention_expires_at from call_sessions where call_session_id = 'unlisted-session'")).rows).toEqual([
      { status: 'pending', retention_expires_at: null },
    ]);
  });

  it('a backfilled session 3 days from expiry is claimed before fresher ones and shows at risk in status', async () => {
    const { code } = await runCli(['backfill', '--since', '88d'], env());
    expect(code).toBe(0);
    expect(await storedIds()).toHaveLength(Object.keys(at).length);
    const near = s(`${24 * 87}h`);

    const status = await runCli(['status', '--json'], env());
    expect(status.code).toBe(0);
    const stats = JSON.parse(status.stdout) as { atRiskCount: number; atRisk: { callSessionId: string }[] };
    expect(stats.atRiskCount).toBe(1);
    expect(stats.atRisk.map((x) => x.callSessionId)).toEqual([near.callSessionId]);

    const claimed = await claimSessions(pool(), { workerId: 'test-worker', limit: 1, leaseSeconds: 30 });
    expect(claimed.map((c) => c.callSessionId)).toEqual([near.callSessionId]);
  });
  // Last: it adds sessions to the simulator that the window tests above do not expect.
  it('--since/--until enqueues sessions listed without an end, fills in known ones, and prints and counts unusable rows', async () => {
    const day = 24;
    const quirky = (seed: string, hoursAgo: number, statsRow: SimSession['statsRow']) =>
      generateSession({ seed, size: 2, endedAt: new Date(Math.floor((now - hoursAgo * HOUR_MS) / 1000) * 1000), statsRow });
    const noEnd = quirky('bf-no-end', 60 * day, { omit: ['call_ended_at'] });
    const noId = quirky('bf-no-id', 60 * day + 1, { unusable: 'no_call_session_id' });
    const fromWebhook = quirky('bf-webhook', 60 * day + 2, undefined);
    for (const session of [noEnd, noId, fromWebhook]) harness.sim.addSession(session);
    // Known from a report webhook only: no end, retention from the report's time.
    await insertSessionRows(pool(), [
      {
        call_session_id: fromWebhook.callSessionId,
        call_type: fromWebhook.callType,
        call_id: fromWebhook.callId,
        status: 'retrying',
        retention_expires_at: new Date(now + 90 * DAY_MS),
      },
    ]);

    const since = new Date(now - 61 * DAY_MS).toISOString();
    const until = new Date(now - 59 * DAY_MS).toISOString();
    const { code, stdout, stderr } = await runCli(['backfill', '--since', since, '--until', until], env());
    expect(code).toBe(0);
    expect(stdout.trimEnd().split('\n')).toEqual([
      `enqueued  ${noEnd.callSessionId}  ${noEnd.callType}:${noEnd.callId}  ended unknown (retention from its start: ${retentionExpiresAt(noEnd.startedAt).toISOString()})`,
      `backfill: 1 session(s) enqueued, 1 already known, of 3 ended between ${since} and ${until}; ` +
        '1 without an end time (retention estimated), 1 end time(s) filled in, 1 unusable (not enqueued)',
    ]);
    expect(stderr).toBe(
      `unusable  call_stats row 1: call_session_id: expected a non-empty string, received undefined (call ${noId.callType}:${noId.callId})\n`,
    );

    const { rows } = await pool().query('select call_session_id, status, session_ended_at, retention_expires_at from call_sessions order by call_session_id');
    expect(rows).toEqual(
      [
        { call_session_id: noEnd.callSessionId, status: 'pending', session_ended_at: null, retention_expires_at: retentionExpiresAt(noEnd.startedAt) },
        {
          call_session_id: fromWebhook.callSessionId,
          status: 'retrying',
          session_ended_at: fromWebhook.endedAt,
          retention_expires_at: retentionExpiresAt(fromWebhook.endedAt),
        },
      ].sort((a, b) => a.call_session_id.localeCompare(b.call_session_id)),
    );
    // Counted for status and /metrics, without touching the sweep's watermark.
    const state = await pool().query('select unusable_total, watermark, sweep_unusable from reconcile_state');
    expect(state.rows).toEqual([{ unusable_total: 1, watermark: null, sweep_unusable: 0 }]);
  });
});
