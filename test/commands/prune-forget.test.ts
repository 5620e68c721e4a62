import { beforeAll, describe, expect, it } from 'vitest';
import { userIdDigest } from '../../src/lifecycle/forget.ts';
import { runCli } from '../helpers/cli.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { seedEntry, seedEvent, seedResponse, seedSession } from '../lifecycle/seed.ts';

const USER = 'cli-user-41c9';

describe('attendance prune and forget', () => {
  const test = useTestDatabase();
  const env = (extra: Record<string, string> = {}) => ({ DATABASE_URL: test.current.url, ...extra });
  const count = async (sql: string) => (await test.current.database.pool.query<{ n: number }>(sql)).rows[0]!.n;

  beforeAll(async () => {
    const p = test.current.database.pool;
    await seedSession(p, { id: 'old', endedDaysAgo: 800, total: 2, archived: 2 });
    await seedSession(p, { id: 'now', endedDaysAgo: 1, total: 2, archived: 2 });
    await seedEntry(p, { session: 'old', user: 'someone', userSession: 'o-1', joinedDaysAgo: 800 });
    await seedEntry(p, { session: 'old', user: 'someone-else', userSession: 'o-2', joinedDaysAgo: 800 });
    await seedEntry(p, { session: 'now', user: USER, userSession: 'n-1', joinedDaysAgo: 1 });
    await seedEntry(p, { session: 'now', user: 'someone', userSession: 'n-2', joinedDaysAgo: 1 });
    await seedResponse(p, 'old', { session: {} });
    await seedResponse(p, 'now', { session: { participants: [{ user: { id: USER } }] } });
    for (let i = 0; i < 3; i++) await seedEvent(p, { id: `expired-${i}`, receivedDaysAgo: 45, payloadText: '{}' });
    await seedEvent(p, { id: 'fresh', receivedDaysAgo: 1, payloadText: `{"user":{"id":"${USER}"}}` });
  });

  it.each([['prune'], ['forget']])('%s --help prints its usage and exits 0', async (name) => {
    const { code, stdout } = await runCli([name, '--help']);
    expect(code).toBe(0);
    expect(stdout).toContain(`usage: attendance ${name}`);
  });

  it('lists both commands in the main help', async () => {
    const { stdout } = await runCli(['--help']);
    expect(stdout).toMatch(/^ {2}prune /m);
    expect(stdout).toMatch(/^ {2}forget /m);
  });

  it.each([
    [['forget'], /--user <id> is required/],
    [['forget', '--user', ''], /--user <id> is required/],
    [['forget', '--user', 'x', '--force'], /--force/],
    [['prune', '--now'], /--now/],
  ])('%j exits 2 with one line', async (argv, message) => {
    const { code, stderr } = await runCli(argv, env());
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(message);
  });

  it('exits 2 with one line naming the variable on a bad retention setting', async () => {
    const { code, stderr } = await runCli(['prune'], env({ WEBHOOK_EVENTS_RETENTION_DAYS: '-3', ARCHIVE_RETENTION_DAYS: 'never' }));
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain('WEBHOOK_EVENTS_RETENTION_DAYS must be a whole number from 0 to 36500');
    expect(stderr).toContain('ARCHIVE_RETENTION_DAYS must be a whole number from 1 to 36500');
  });

  it('says so and changes nothing when every retention is off', async () => {
    const { code, stdout } = await runCli(['prune'], env({ WEBHOOK_EVENTS_RETENTION_DAYS: '0' }));
    expect(code).toBe(0);
    expect(stdout).toContain('nothing to do');
    expect(await count('select count(*)::int as n from webhook_events')).toBe(4);
  });

  it('prune deletes expired inbox events and prints how many', async () => {
    const { code, stdout } = await runCli(['prune'], env());
    expect(code).toBe(0);
    expect(stdout).toMatch(/^webhook_events: +3 deleted \(received more than 30 days ago\)$/m);
    expect(stdout).not.toContain('participant_sessions');
    expect(await count('select count(*)::int as n from webhook_events')).toBe(1);
    expect(await count('select count(*)::int as n from participant_sessions')).toBe(4);
  });

  it('prune with ARCHIVE_RETENTION_DAYS deletes old attendance and keeps the session row', async () => {
    const { code, stdout } = await runCli(['prune'], env({ ARCHIVE_RETENTION_DAYS: '365' }));
    expect(code).toBe(0);
    expect(stdout).toMatch(/^participant_sessions: +2 deleted/m);
    expect(stdout).toMatch(/^stream_responses: +1 deleted/m);
    expect(stdout).toMatch(/^call_sessions: +1 kept/m);
    expect(await count(`select count(*)::int as n from participant_sessions where call_session_id = 'old'`)).toBe(0);
    expect(await count(`select archived_participant_sessions as n from call_sessions where call_session_id = 'old'`)).toBe(0);
    expect(await count(`select count(*)::int as n from participant_sessions where call_session_id = 'now'`)).toBe(2);
  });

  it('forget --dry-run counts and changes nothing; forget erases and prints counts per table; again removes nothing', async () => {
    const dry = await runCli(['forget', '--user', USER, '--dry-run'], env());
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/^ {2}participant_sessions +1 would be deleted$/m);
    expect(dry.stdout).toMatch(/^ {2}webhook_events +1 would be scrubbed$/m);
    expect(dry.stdout).toMatch(/^ {2}stream_responses +1 would be scrubbed$/m);
    expect(await count(`select count(*)::int as n from participant_sessions where user_id = '${USER}'`)).toBe(1);
    expect(await count('select count(*)::int as n from erasure_log')).toBe(0);

    const real = await runCli(['forget', '--user', USER], env());
    expect(real.code).toBe(0);
    // Named by digest, never echoed.
    expect(real.stdout).not.toContain(USER);
    expect(real.stdout).toContain(userIdDigest(USER));
    expect(real.stdout).toMatch(/^ {2}participant_sessions +1 deleted$/m);
    expect(real.stdout).toMatch(/^ {2}call_sessions +1 recounted/m);
    expect(real.stdout).toMatch(/^ {2}webhook_events +1 scrubbed$/m);
    expect(real.stdout).toMatch(/^ {2}stream_responses +1 scrubbed$/m);
    expect(real.stdout).toMatch(/^ {2}erasure_log +1 row written$/m);
    expect(await count(`select count(*)::int as n from participant_sessions where user_id = '${USER}'`)).toBe(0);
    expect(await count(`select count(*)::int as n from webhook_events where payload::text like '%${USER}%'`)).toBe(0);

    const again = await runCli(['forget', '--user', USER], env());
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^ {2}participant_sessions +0 deleted$/m);
    expect(again.stdout).toContain('nothing written');
    expect(await count('select count(*)::int as n from erasure_log')).toBe(1);
  });
});
