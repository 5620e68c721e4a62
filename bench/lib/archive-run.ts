/**
 * Archiving runs against the simulator: seed sessions (simulator + call_sessions rows that are not
 * yet due), make them due at once, time until all are complete; and the COPY baseline of the very
 * same rows into the same table.
 */
import { spawn } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import { SESSIONS_DUE_CHANNEL } from '../../src/queue/sql.ts';
import type { SimParticipant, SimSession } from '../../tools/simulator/generate.ts';
import type { Simulator } from '../../tools/simulator/server.ts';
import { participantJson } from '../../tools/simulator/wire.ts';

const POLL_MS = 20;

/** Adds the sessions to the simulator and as pending call_sessions rows due only tomorrow. */
export async function seedSessions(pool: pg.Pool, simulator: Simulator, sessions: readonly SimSession[]): Promise<void> {
  for (const session of sessions) simulator.addSession(session);
  for (let i = 0; i < sessions.length; i += 500) {
    const chunk = sessions.slice(i, i + 500);
    await pool.query(
      `insert into call_sessions (call_session_id, call_type, call_id, call_cid, status, next_attempt_at, session_ended_at, retention_expires_at)
       select id, t, c, t || ':' || c, 'pending', now() + interval '1 day', e, e + interval '90 days'
         from unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) as u(id, t, c, e)`,
      [chunk.map((s) => s.callSessionId), chunk.map((s) => s.callType), chunk.map((s) => s.callId), chunk.map((s) => s.endedAt)],
    );
  }
}

export interface ArchiveTiming {
  readonly rows: number;
  /** From the statement that made them due to the last archived_at, both on the database clock. */
  readonly seconds: number;
  readonly rowsPerSecond: number;
}

/**
 * Makes the sessions due now (and notifies, as intake would), waits until every one is complete,
 * and checks that the archive holds exactly their rows. Throws if any ends dead or time runs out.
 */
export async function archiveAndWait(pool: pg.Pool, sessions: readonly SimSession[], timeoutMs: number): Promise<ArchiveTiming> {
  const ids = sessions.map((s) => s.callSessionId);
  const expectedRows = sessions.reduce((sum, s) => sum + s.participants.length, 0);
  const started = await pool.query<{ t0: Date }>(
    `with due as (
       update call_sessions set status = 'pending', next_attempt_at = now(), attempts = 0, cursor = null,
              lease_owner = null, lease_expires_at = null, archived_at = null
        where call_session_id = any($1) returning 1)
     select clock_timestamp() as t0, (select count(*) from due) as n, pg_notify('${SESSIONS_DUE_CHANNEL}', 'bench')`,
    [ids],
  );
  const t0 = started.rows[0]!.t0;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const { rows } = await pool.query<{ complete: number; dead: number; retrying: number; last: Date | null; error: string | null }>(
      `select count(*) filter (where status = 'complete')::int as complete,
              count(*) filter (where status = 'dead')::int as dead,
              count(*) filter (where status = 'retrying')::int as retrying,
              max(archived_at) as last,
              max(last_error) filter (where status in ('dead', 'retrying')) as error
         from call_sessions where call_session_id = any($1)`,
      [ids],
    );
    const r = rows[0]!;
    if (r.dead > 0) throw new Error(`${r.dead} sessions dead: ${r.error}`);
    if (r.complete === ids.length) {
      const held = await pool.query<{ n: number }>('select count(*)::int as n from participant_sessions where call_session_id = any($1)', [ids]);
      if (held.rows[0]!.n !== expectedRows) throw new Error(`archive holds ${held.rows[0]!.n} rows, expected ${expectedRows}`);
      const seconds = (r.last!.getTime() - t0.getTime()) / 1000;
      return { rows: expectedRows, seconds, rowsPerSecond: expectedRows / seconds };
    }
    if (performance.now() > deadline) {
      throw new Error(`archiving did not finish within ${timeoutMs / 1000} s (${r.complete}/${ids.length} complete, ${r.retrying} retrying: ${r.error})`);
    }
    await delay(POLL_MS);
  }
}

const COPY_COLUMNS = 'call_session_id, user_session_id, call_type, call_id, user_id, joined_at, left_at, duration_in_seconds, publisher_type, roles, raw';

/**
 * The ceiling: COPY of the same rows (the raw jsonb is the very text the simulator serves) into
 * participant_sessions, through psql's COPY FROM STDIN. psql's own start and connect, timed
 * separately on an empty COPY, is subtracted.
 */
export async function copyBaseline(databaseUrl: string, sessions: readonly SimSession[]): Promise<ArchiveTiming> {
  const csv: string[] = [];
  for (const s of sessions) for (const p of s.participants) csv.push(csvRow(s, p));
  const data = `${csv.join('\n')}\n`;
  const overhead = await timedPsqlCopy(databaseUrl, '');
  const seconds = (await timedPsqlCopy(databaseUrl, data)) - overhead;
  return { rows: csv.length, seconds, rowsPerSecond: csv.length / seconds };
}

async function timedPsqlCopy(databaseUrl: string, data: string): Promise<number> {
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(
      'psql',
      [databaseUrl, '-v', 'ON_ERROR_STOP=1', '-q', '-c', `copy participant_sessions (${COPY_COLUMNS}) from stdin with (format csv)`],
      {
        stdio: ['pipe', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`psql COPY failed (${code}): ${stderr.slice(0, 500)}`))));
    child.stdin.end(data);
  });
  return (performance.now() - started) / 1000;
}

function csvRow(s: SimSession, p: SimParticipant): string {
  const roles = `{${p.roles.map((r) => `"${r.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`).join(',')}}`;
  return [
    s.callSessionId,
    p.user_session_id,
    s.callType,
    s.callId,
    p.user_id,
    p.joined_at?.toISOString() ?? null,
    p.left_at?.toISOString() ?? null,
    p.duration_in_seconds === null ? null : String(p.duration_in_seconds),
    p.publisher_type,
    roles,
    participantJson(p, 'rfc3339', 'omit'),
  ]
    .map((v) => (v === null ? '' : `"${v.replaceAll('"', '""')}"`))
    .join(',');
}

/**
 * Empties the archive between a baseline and a run, so each starts from the same empty table, and
 * checkpoints, so each starts just after one (the first write to a page after a checkpoint logs
 * the whole page, which would otherwise favour whichever ran later).
 */
export async function emptyArchive(pool: pg.Pool): Promise<void> {
  await pool.query('truncate participant_sessions');
  await pool.query('vacuum analyze call_sessions');
  await pool.query('checkpoint');
}
