#!/usr/bin/env node
// The container's health check, for whichever command the container runs (read from PID 1's
// command line, or from the pid given as the first argument). Exit 0 healthy, 1 unhealthy; the
// line printed is what `docker inspect` and `kubectl describe` show.
//
// - serve: GET /healthz on PORT answers 200 (the event loop turns and the listener is up).
// - worker: serves no HTTP and must not grow a port just for this. It is unhealthy when its process
//   is stopped or a zombie, or when it still holds a session whose lease it failed to renew: the
//   heartbeat renews every lease every 10 s for 30 s, so a lease lapsed for another 30 s means the
//   event loop or the heartbeat is stuck. Another replica takes such a session over after the lease
//   lapses, so the archive is safe either way; this only gets the stuck process restarted. A worker
//   that holds no session has nothing to renew and passes. When the database cannot be reached the
//   check passes: restarting does not bring a database back, and the worker retries on its own.
// - anything else (migrate, one-shot commands): nothing to watch, passes.
//
// Plain JavaScript with no TypeScript loader, so a check costs one short node start.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import pg from 'pg';

const TIMEOUT_MS = 3_000;
// Connect and query each get this long, so a hanging database still lets the check finish (and
// pass) inside the image's 5 s HEALTHCHECK timeout.
const DATABASE_TIMEOUT_MS = 2_000;
// The worker's lease is 30 s (src/ingest/worker.ts LEASE_SECONDS); a lease lapsed this much longer
// has missed at least six heartbeats.
const LAPSED_GRACE_SECONDS = 30;
const DEAD_STATES = new Set(['Z', 'T', 't', 'X', 'x']);

const pid = process.argv[2] ?? '1';

function report(healthy, message) {
  console.log(message);
  process.exit(healthy ? 0 : 1);
}

/** The attendance command PID `pid` runs: the argument after bin/attendance.js. */
function commandOf(pidText) {
  const args = readFileSync(`/proc/${pidText}/cmdline`, 'utf8')
    .split('\0')
    .filter((arg) => arg !== '');
  const entry = args.findIndex((arg) => /(^|\/)attendance(\.js)?$/.test(arg));
  return entry === -1 ? undefined : args[entry + 1];
}

/** The one-letter process state from /proc/<pid>/stat (the field after the parenthesised name). */
function processState(pidText) {
  const stat = readFileSync(`/proc/${pidText}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

async function checkServe() {
  const host = process.env.HOST === undefined || ['', '0.0.0.0', '::'].includes(process.env.HOST) ? '127.0.0.1' : process.env.HOST;
  const port = process.env.PORT || '8080';
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/healthz`;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    report(response.ok, `serve: GET ${url} answered ${response.status}`);
  } catch (error) {
    report(false, `serve: GET ${url} failed: ${error?.cause?.code ?? error?.message ?? error}`);
  }
}

async function checkWorker() {
  const state = processState(pid);
  if (DEAD_STATES.has(state)) report(false, `worker: process ${pid} is in state ${state} (stopped or dead)`);
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) report(true, `worker: process ${pid} is running (state ${state}); no DATABASE_URL, lease check skipped`);
  // The worker names its leases `<host>:<pid>:<random>/<claim token>` (src/commands/runtime.ts).
  const owner = `${hostname()}:${pid}:`;
  const client = new pg.Client({
    connectionString: databaseUrl,
    connectionTimeoutMillis: DATABASE_TIMEOUT_MS,
    query_timeout: DATABASE_TIMEOUT_MS,
    application_name: 'attendance-healthcheck',
  });
  client.on('error', () => undefined);
  let rows;
  try {
    await client.connect();
    ({ rows } = await client.query(
      `select count(*)::int as stuck, min(call_session_id) as example
         from call_sessions
        where status = 'running' and left(lease_owner, length($1)) = $1
          and lease_expires_at < now() - make_interval(secs => $2)`,
      [owner, LAPSED_GRACE_SECONDS],
    ));
  } catch (error) {
    report(true, `worker: process ${pid} is running; database unreachable (${error?.code ?? error?.message}), lease check skipped`);
  } finally {
    await client.end().catch(() => undefined);
  }
  const { stuck, example } = rows[0];
  if (stuck > 0)
    report(
      false,
      `worker: ${stuck} session lease(s) of ${owner}* lapsed over ${LAPSED_GRACE_SECONDS} s ago without renewal (e.g. ${example}): heartbeat stuck`,
    );
  report(true, `worker: process ${pid} is running and renews its leases`);
}

let command;
try {
  command = commandOf(pid);
} catch (error) {
  report(false, `cannot read process ${pid}: ${error.message}`);
}
if (command === 'serve') await checkServe();
else if (command === 'worker') await checkWorker();
else report(true, `${command ?? 'no attendance command'}: nothing to check`);
