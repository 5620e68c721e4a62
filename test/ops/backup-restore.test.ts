import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { migrationsApplied, runMigrations } from '../../src/db/migrate.ts';
import { generateAttendanceDataset, insertCallSession, insertDataset, insertEntries } from '../helpers/attendance-data.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { databaseUrl } from '../helpers/urls.ts';

// The backup and restore of docs/operations.md, run for real: pg_dump of a populated archive,
// pg_restore into a fresh database, then every table, view, index and sequence compared.
const run = promisify(execFile);

async function toolMajor(tool: string): Promise<number | undefined> {
  try {
    const { stdout } = await run(tool, ['--version']);
    return Number(/(\d+)(?:\.\d+)?/.exec(stdout)?.[1]);
  } catch {
    return undefined;
  }
}

interface Fingerprint {
  readonly rows: number;
  readonly md5: string;
}

/** Row count and a hash of every row's text (jsonb included), in a stable order. */
async function fingerprint(pool: pg.Pool, relation: string): Promise<Fingerprint> {
  const { rows } = await pool.query<{ rows: number; md5: string }>(
    `select count(*)::int as rows, coalesce(md5(string_agg(t::text, E'\\n' order by t::text)), '') as md5 from ${relation} t`,
  );
  return rows[0]!;
}

async function catalogue(pool: pg.Pool) {
  const tables = await pool.query<{ name: string }>(
    `select table_schema || '.' || table_name as name from information_schema.tables
      where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema') order by 1`,
  );
  const views = await pool.query<{ name: string }>(
    `select table_schema || '.' || table_name as name from information_schema.views
      where table_schema not in ('pg_catalog', 'information_schema') order by 1`,
  );
  const indexes = await pool.query<{ def: string }>(
    `select indexdef as def from pg_indexes where schemaname not in ('pg_catalog', 'information_schema') order by 1`,
  );
  const constraints = await pool.query<{ def: string }>(
    `select conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) as def from pg_constraint
      where connamespace::regnamespace::text in ('public', 'drizzle') order by 1`,
  );
  const sequences = await pool.query<{ name: string; last_value: string | null }>(
    `select schemaname || '.' || sequencename as name, last_value::text from pg_sequences order by 1`,
  );
  return {
    tables: tables.rows.map((r) => r.name),
    views: views.rows.map((r) => r.name),
    indexes: indexes.rows.map((r) => r.def),
    constraints: constraints.rows.map((r) => r.def),
    sequences: sequences.rows,
  };
}

describe('backup and restore with pg_dump / pg_restore', () => {
  const source = useTestDatabase();
  let skip: string | undefined;
  let dir: string;
  let target: { name: string; url: string; pool: pg.Pool } | undefined;
  const adminUrl = () => inject('adminUrl');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'attendance-backup-'));
    const pool = source.current.database.pool;
    const server = Number((await pool.query<{ v: string }>('show server_version_num')).rows[0]!.v) / 10_000;
    const dump = await toolMajor('pg_dump');
    const restore = await toolMajor('pg_restore');
    if (dump === undefined || restore === undefined) skip = 'pg_dump and pg_restore are not installed (Debian: apt-get install -y postgresql-client)';
    else if (dump < Math.floor(server))
      skip = `pg_dump ${dump} cannot dump a PostgreSQL ${Math.floor(server)} server; install client tools of version ${Math.floor(server)} or newer`;
    if (skip) console.warn(`backup and restore skipped: ${skip}`);
  });
  afterAll(async () => {
    if (target) {
      await target.pool.end();
      const admin = new pg.Client(adminUrl());
      await admin.connect();
      await admin.query(`drop database if exists ${target.name} with (force)`);
      await admin.end();
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('restores every table, view, index, constraint and the migrations bookkeeping exactly', async (context) => {
    if (skip) return context.skip();
    const pool = source.current.database.pool;

    // The archive: the SQL cookbook's dataset (every status, rejoins, entries without left_at), an
    // entry with fields Stream may add later and awkward text, webhooks, the reconciler's state.
    await insertDataset(pool, generateAttendanceDataset(18, Date.parse('2026-04-10T00:00:00Z')));
    await insertCallSession(pool, { call_session_id: 'backup-odd', call_type: 'default', call_id: 'odd', status: 'complete' });
    await insertEntries(pool, { call_session_id: 'backup-odd', call_type: 'default', call_id: 'odd' }, [
      {
        user_id: '👩🏽‍💻 o"brien\\d\'arcy 名前',
        user_session_id: 'us-odd-1',
        publisher_type: 'webrtc',
        roles: [],
        joined_at: '2026-03-01T10:00:00.123Z',
        left_at: null,
        future_field: { nested: [1, 2.5, null, 'x'], flag: true },
      },
    ]);
    await pool.query(
      `insert into webhook_events (webhook_id, type, call_cid, session_id, attempt, payload)
       values ('wh-1', 'call.stats_report_ready', 'default:odd', 'backup-odd', 1, $1), ('wh-2', 'call.session_ended', 'default:odd', 'backup-odd', 2, $2)`,
      [
        JSON.stringify({ type: 'call.stats_report_ready', counts: { participants: 1 }, text: 'ünïcødé \u0001' }),
        JSON.stringify({ type: 'call.session_ended' }),
      ],
    );
    await pool.query(`insert into reconcile_state (name, watermark, cursor, unusable_total) values ('call_stats', now(), 'cursor-1', 3)`);
    await pool.query(
      `insert into service_health (name, state, checked_at) values ('stream', 'ok', now()) on conflict (name) do update set state = excluded.state`,
    );

    const before = await catalogue(pool);
    expect(before.tables).toEqual(
      expect.arrayContaining(['drizzle.__drizzle_migrations', 'public.call_sessions', 'public.participant_sessions', 'public.webhook_events']),
    );
    expect(before.views).toEqual(expect.arrayContaining(['public.attendance', 'public.attendance_stretches', 'public.call_session_attendance']));

    // The commands of docs/operations.md.
    const file = join(dir, 'attendance.dump');
    await run('pg_dump', ['--format=custom', '--no-owner', '--no-privileges', `--file=${file}`, source.current.url]);
    const name = `attendance_restore_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client(adminUrl());
    await admin.connect();
    try {
      await admin.query(`create database ${name} template template0`);
    } finally {
      await admin.end();
    }
    target = { name, url: databaseUrl(adminUrl(), name), pool: new pg.Pool({ connectionString: databaseUrl(adminUrl(), name), max: 2 }) };
    await run('pg_restore', ['--exit-on-error', '--no-owner', '--no-privileges', `--dbname=${target.url}`, file]);

    const after = await catalogue(target.pool);
    expect(after).toEqual(before);
    for (const relation of [...before.tables, ...before.views]) {
      const [a, b] = await Promise.all([fingerprint(pool, relation), fingerprint(target.pool, relation)]);
      expect(b, relation).toEqual(a);
    }
    const entries = await fingerprint(target.pool, 'participant_sessions');
    expect(entries.rows).toBeGreaterThan(100);
    const odd = await target.pool.query<{ raw: unknown }>(`select raw from participant_sessions where user_session_id = 'us-odd-1'`);
    expect(odd.rows[0]!.raw).toMatchObject({ future_field: { nested: [1, 2.5, null, 'x'], flag: true }, left_at: null });

    // The restored archive is a working one: migrated as far as this build, nothing left to apply.
    expect(await migrationsApplied(target.pool)).toBe(true);
    expect(await runMigrations(target.pool)).toBe(0);

    // The comparison can fail: one changed key inside one raw entry changes the hash.
    await target.pool.query(`update participant_sessions set raw = raw || '{"x":1}' where user_session_id = 'us-odd-1'`);
    expect((await fingerprint(target.pool, 'participant_sessions')).md5).not.toBe((await fingerprint(pool, 'participant_sessions')).md5);
  });
});
