import { describe, expect, it } from 'vitest';
import { SESSION_STATUS, SESSION_STATUSES } from '../../src/db/schema.ts';
import { useTestDatabase } from '../helpers/db.ts';

// The public interface (the README's Tables section, docs/sql.md): users' SQL relies on these names, types and nullability.
const EXPECTED: Record<string, Record<string, [type: string, nullable: boolean]>> = {
  call_sessions: {
    call_session_id: ['text', false],
    call_type: ['text', false],
    call_id: ['text', false],
    call_cid: ['text', false],
    status: ['text', false],
    total_participant_sessions: ['integer', true],
    total_participant_duration: ['bigint', true],
    archived_participant_sessions: ['integer', false],
    session_ended_at: ['timestamp with time zone', true],
    stats_report_ready_at: ['timestamp with time zone', true],
    retention_expires_at: ['timestamp with time zone', true],
    attempts: ['integer', false],
    next_attempt_at: ['timestamp with time zone', false],
    lease_owner: ['text', true],
    lease_expires_at: ['timestamp with time zone', true],
    cursor: ['text', true],
    last_error: ['text', true],
    created_at: ['timestamp with time zone', false],
    updated_at: ['timestamp with time zone', false],
    archived_at: ['timestamp with time zone', true],
  },
  participant_sessions: {
    call_session_id: ['text', false],
    user_session_id: ['text', false],
    call_type: ['text', false],
    call_id: ['text', false],
    user_id: ['text', false],
    joined_at: ['timestamp with time zone', true],
    left_at: ['timestamp with time zone', true],
    duration_in_seconds: ['integer', true],
    publisher_type: ['text', false],
    roles: ['ARRAY', false],
    raw: ['jsonb', false],
    archived_at: ['timestamp with time zone', false],
  },
  webhook_events: {
    webhook_id: ['text', false],
    type: ['text', false],
    call_cid: ['text', true],
    session_id: ['text', true],
    attempt: ['integer', true],
    received_at: ['timestamp with time zone', false],
    payload: ['jsonb', false],
  },
};

const PRIMARY_KEYS: Record<string, string[]> = {
  call_sessions: ['call_session_id'],
  participant_sessions: ['call_session_id', 'user_session_id'],
  webhook_events: ['webhook_id'],
};

describe('schema', () => {
  const test = useTestDatabase();

  it.each(Object.keys(EXPECTED))('%s has exactly the columns, types and nullability of the design', async (table) => {
    const { rows } = await test.current.database.pool.query<{ column_name: string; data_type: string; is_nullable: string }>(
      'select column_name, data_type, is_nullable from information_schema.columns where table_schema = $1 and table_name = $2',
      ['public', table],
    );
    const actual = Object.fromEntries(rows.map((r) => [r.column_name, [r.data_type, r.is_nullable === 'YES']]));
    expect(actual).toEqual(EXPECTED[table]);
  });

  it.each(Object.keys(PRIMARY_KEYS))('%s has the primary key of the design', async (table) => {
    const { rows } = await test.current.database.pool.query<{ column_name: string }>(
      `select a.attname as column_name
         from pg_index i
         join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
        where i.indrelid = $1::regclass and i.indisprimary
        order by array_position(i.indkey::int2[], a.attnum)`,
      [table],
    );
    expect(rows.map((r) => r.column_name)).toEqual(PRIMARY_KEYS[table]);
  });

  it('has the indexes the claim and the users queries need', async () => {
    const { rows } = await test.current.database.pool.query<{ indexdef: string }>("select indexdef from pg_indexes where schemaname = 'public'");
    const defs = rows.map((r) => r.indexdef.replace(/"/g, ''));
    expect(defs).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/ON public\.call_sessions USING btree \(status, next_attempt_at, retention_expires_at\)/),
        expect.stringMatching(/ON public\.participant_sessions USING btree \(user_id\)/),
        expect.stringMatching(/ON public\.participant_sessions USING btree \(joined_at\)/),
        // Filters on the call go through call_sessions and the rollups (migration 0006).
        expect.stringMatching(/ON public\.call_sessions USING btree \(call_type, call_id\)/),
        expect.stringMatching(/ON public\.attendance_rollup USING btree \(user_id, session_started_at\)/),
      ]),
    );
    expect(defs.filter((d) => d.includes('ON public.participant_sessions '))).toHaveLength(3);
  });

  it('refuses a status outside the design and a call_cid that does not match type and id', async () => {
    const { pool } = test.current.database;
    await expect(
      pool.query("insert into call_sessions (call_session_id, call_type, call_id, call_cid, status) values ('s1', 'default', 'c1', 'default:c1', 'weird')"),
    ).rejects.toThrow(/call_sessions_status_check/);
    await expect(
      pool.query("insert into call_sessions (call_session_id, call_type, call_id, call_cid) values ('s2', 'default', 'c1', 'default:c2')"),
    ).rejects.toThrow(/call_sessions_cid_check/);
  });

  it('allows exactly the statuses of SESSION_STATUSES, the constant every statement takes its status names from', async () => {
    const { rows } = await test.current.database.pool.query<{ def: string }>(
      "select pg_get_constraintdef(oid) as def from pg_constraint where conrelid = 'call_sessions'::regclass and conname = 'call_sessions_status_check'",
    );
    expect(rows).toHaveLength(1);
    // Postgres prints the list as = ANY (ARRAY['pending'::text, …]).
    const allowed = [...rows[0]!.def.matchAll(/'([^']*)'::text/g)].map((m) => m[1]);
    expect(allowed.sort()).toEqual([...SESSION_STATUSES].sort());
    expect(Object.values(SESSION_STATUS).sort()).toEqual([...SESSION_STATUSES].sort());
    expect(Object.isFrozen(SESSION_STATUS) && Object.isFrozen(SESSION_STATUSES)).toBe(true);
  });

  it('refuses participant rows for an unknown call session', async () => {
    await expect(
      test.current.database.pool.query(
        "insert into participant_sessions (call_session_id, user_session_id, call_type, call_id, user_id, publisher_type, raw) values ('nope', 'u', 'default', 'c', 'alice', 'webrtc', '{}')",
      ),
    ).rejects.toThrow(/participant_sessions_call_session_fk/);
  });
});
