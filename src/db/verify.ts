import { userInfo } from 'node:os';
import type pg from 'pg';
import { AppError, ConfigError } from '../errors.ts';
import { migrationProgress } from './migrate.ts';
import { SQLSTATE, isSchemaMissing } from './sqlstate.ts';

/**
 * Where a connection string points, without its password: every database error names these so
 * the reader knows which setting to fix. `source` is what the user would change.
 */
export interface DatabaseTarget {
  readonly source: string;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
}

/** Parses the parts of a connection string that errors may show; the password is never read. */
export function describeDatabaseTarget(url: string, source = 'DATABASE_URL'): DatabaseTarget {
  const parsed = parseConnectionUrl(url);
  if (!parsed) return { source, host: 'unknown host', port: 5432, database: 'unknown', user: 'unknown' };
  const user = decodeURIComponent(parsed.username) || osUser();
  // pg's defaults: the OS user, localhost, 5432, a database named like the user; `?host=` may name a socket folder.
  const host = parsed.searchParams.get('host') ?? (parsed.hostname.replace(/^\[|\]$/g, '') || 'localhost');
  const database = decodeURIComponent(parsed.pathname.slice(1)) || user;
  return { source, host, port: Number(parsed.port || 5432), database, user };
}

function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'postgres';
  }
}

/** libpq accepts `postgres://user@/db?host=/socket/dir` (no host part), which WHATWG URL refuses. */
function parseConnectionUrl(url: string): URL | undefined {
  for (const candidate of [url, url.replace(/^(postgres(?:ql)?:\/\/[^@/?]*@)(?=[/?]|$)/, '$1localhost')]) {
    try {
      return new URL(candidate);
    } catch {
      // try the next form
    }
  }
  return undefined;
}

/** `DATABASE_URL (127.0.0.1:5432, database "attendance", user "postgres")` */
export function formatTarget(target: DatabaseTarget): string {
  return `${target.source} (${target.host}:${target.port}, database "${target.database}", user "${target.user}")`;
}

export interface VerifyConnectionOptions {
  /** `migrate` creates the tables, so a missing database is its first step to fix, not a later one. */
  readonly forMigrate?: boolean;
}

/**
 * One cheap round trip before a command does anything: a server that is down, a wrong password or
 * a missing database becomes a ConfigError naming the setting and the fix, instead of pg's bare
 * `connect ECONNREFUSED 127.0.0.1:5433` at exit 1.
 */
export async function verifyConnection(pool: pg.Pool, target: DatabaseTarget, options: VerifyConnectionOptions = {}): Promise<void> {
  try {
    await pool.query('select 1');
  } catch (error) {
    throw new ConfigError([`${target.source} cannot be used`], {
      code: 'DATABASE_UNAVAILABLE',
      message: `cannot connect to ${formatTarget(target)}: ${connectionProblem(error, target, options)}`,
      cause: error,
    });
  }
}

/**
 * Throws a ConfigError saying to run `attendance migrate` unless every migration this build ships
 * is applied. `where` is the connection string (or its parsed target) the message names. Commands that read or write the tables call it at start, so an unmigrated database
 * reads as a setup step, not as `relation "call_sessions" does not exist`.
 */
export async function verifyMigrated(pool: pg.Pool, where: DatabaseTarget | string): Promise<void> {
  const target = typeof where === 'string' ? describeDatabaseTarget(where) : where;
  const { applied, shipped } = await migrationProgress(pool);
  if (applied >= shipped) return;
  const state = applied === 0 ? 'has no attendance tables yet' : `has ${applied} of the ${shipped} migrations this version needs`;
  throw new ConfigError([`${target.source} is not migrated`], {
    code: 'NOT_MIGRATED',
    message: `${formatTarget(target)} ${state}: run 'attendance migrate' first, with the same ${target.source}`,
  });
}

/**
 * A database error raised while a command runs, reworded when the cause is known and cheap to
 * tell: a missing table or column (a migration not applied, or a database swapped under us) is a
 * setup problem; a lost connection says which server went away. Anything else is returned as is.
 */
export function classifyDatabaseError(error: unknown, target: DatabaseTarget): unknown {
  if (isSchemaMissing(error)) {
    return new ConfigError([`${target.source} is not migrated`], {
      code: 'NOT_MIGRATED',
      message: `${formatTarget(target)} lacks a table or column this version uses (${(error as Error).message}): run 'attendance migrate' first, with the same ${target.source}`,
      cause: error,
    });
  }
  if (isConnectionLoss(error, target)) {
    return new AppError('DATABASE_UNAVAILABLE', `lost the connection to ${formatTarget(target)}: ${(error as Error).message}`, {
      retryable: true,
      cause: error,
    });
  }
  return error;
}

/**
 * Only errors that are surely about this database: a refused or reset socket counts when it names
 * this server's port, since the Stream client raises the same codes for Stream's own host.
 */
function isConnectionLoss(error: unknown, target: DatabaseTarget): boolean {
  const message = error instanceof Error ? error.message : '';
  const code = errorCode(error);
  if (code === SQLSTATE.adminShutdown || code === SQLSTATE.cannotConnectNow) return true;
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT') return (error as { port?: unknown }).port === target.port;
  return /^Connection terminated/.test(message) || /timeout exceeded when trying to connect/.test(message);
}

/** Node reports a refused `localhost` (tried as ::1 then 127.0.0.1) as an AggregateError; its code is on the parts. */
function errorCode(error: unknown): string | undefined {
  const e = error as { code?: unknown; errors?: { code?: unknown }[] } | null;
  if (typeof e?.code === 'string') return e.code;
  const inner = e?.errors?.find((x) => typeof x?.code === 'string')?.code;
  return typeof inner === 'string' ? inner : undefined;
}

/** The cause in words and what to do about it; pg's own text is kept where it says more. */
function connectionProblem(error: unknown, target: DatabaseTarget, options: VerifyConnectionOptions): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = errorCode(error);
  const where = `${target.host}:${target.port}`;
  switch (code) {
    case 'ECONNREFUSED':
      return `connection refused: nothing listens on ${where}; start Postgres, or fix the host or port in ${target.source}`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host "${target.host}" not found; fix the host in ${target.source}`;
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${where} is unreachable (${code}); check the host and port in ${target.source} and the network between`;
    case SQLSTATE.invalidPassword:
      return `authentication failed: wrong password for user "${target.user}"; fix the user or password in ${target.source}`;
    case SQLSTATE.invalidAuthorization:
      return /role .* does not exist/.test(message)
        ? `role "${target.user}" does not exist; use an existing user in ${target.source}, or create it: createuser -h ${target.host} -p ${target.port} -U postgres ${target.user}`
        : `the server refused this connection (${message}); allow it in pg_hba.conf or use another user in ${target.source}`;
    case SQLSTATE.invalidCatalogName: {
      const then = options.forMigrate ? `, then run 'attendance migrate' again` : `, then run 'attendance migrate'`;
      return `database "${target.database}" does not exist; create it: createdb -h ${target.host} -p ${target.port} -U ${target.user} ${target.database} (or in psql: CREATE DATABASE "${target.database}";)${then}`;
    }
    case SQLSTATE.tooManyConnections:
      return `the server has no free connections (max_connections reached); retry later, or lower DATABASE_POOL_SIZE`;
    case SQLSTATE.cannotConnectNow:
      return `the server is starting up or shutting down (${message}); retry in a moment`;
    default:
      break;
  }
  if (/timeout exceeded when trying to connect|connection timeout/i.test(message)) {
    return `timed out: ${where} accepted no Postgres connection in time; check that the host and port in ${target.source} are a Postgres server and that it is not overloaded`;
  }
  // pg's SCRAM client says this when the server asks for a password the URL does not carry.
  if (/client password must be a string|SASL/.test(message)) {
    return `authentication failed: the server asks for a password for user "${target.user}" and ${target.source} has none (or an unusable one)`;
  }
  if (/SSL|TLS|certificate/i.test(message)) {
    return `TLS failed (${message}); check sslmode in ${target.source} and the server's certificate`;
  }
  if (/Connection terminated/.test(message)) {
    return `the server closed the connection at once (${message}); check that ${where} is a Postgres server that accepts this client`;
  }
  return message;
}
