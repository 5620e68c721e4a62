/**
 * The SQLSTATEs this service acts on, by name, so no code compares against a bare literal.
 * https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export const SQLSTATE = {
  /** 28000: no pg_hba.conf entry, or the role in DATABASE_URL does not exist. */
  invalidAuthorization: '28000',
  /** 28P01: wrong password. */
  invalidPassword: '28P01',
  /** 3D000: the database named in DATABASE_URL does not exist. */
  invalidCatalogName: '3D000',
  /** 42P01: a table this version uses is missing: the database is not (fully) migrated. */
  undefinedTable: '42P01',
  /** 42703: a column this version uses is missing: a later migration has not been applied. */
  undefinedColumn: '42703',
  /** 42501: the role may connect but lacks a privilege (create schema, select on a table). */
  insufficientPrivilege: '42501',
  /** 53300: max_connections reached. */
  tooManyConnections: '53300',
  /** 57P01: the server was shut down (or this backend terminated) under us. */
  adminShutdown: '57P01',
  /** 57P03: starting up, shutting down, or in recovery. */
  cannotConnectNow: '57P03',
  /** 40P01: this transaction was chosen to break a deadlock; it rolled back. */
  deadlockDetected: '40P01',
  /** SA001 (this service's own, migration 0008): a page sent with the page before it in flight found that page's cursor not stored; queue/checkpoint-page.ts. */
  pageOutOfOrder: 'SA001',
  /** SA002 (this service's own, migration 0008): such a page found the lease gone; queue/checkpoint-page.ts. */
  pageLeaseLost: 'SA002',
} as const;

export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * SQLSTATE classes 22 (data exception) and 23 (integrity violation): Postgres refused the data
 * itself, so sending the same values again fails the same way. Anything else (connection lost,
 * timeout, serialization failure) may pass on a retry.
 */
export function isDataError(error: unknown): boolean {
  const code = sqlState(error);
  return code !== undefined && /^2[23]/.test(code);
}

/** A table or column this version needs is missing: `attendance migrate` fixes it. */
export function isSchemaMissing(error: unknown): boolean {
  const code = sqlState(error);
  return code === SQLSTATE.undefinedTable || code === SQLSTATE.undefinedColumn;
}

/**
 * Postgres refused what a statement carried, not the statement or the server: classes 22 (data
 * exception: a NUL in text, a malformed value), 23 (integrity violation) and 54 (program limit
 * exceeded: 54001, stack depth exceeded or statement too complex, which a jsonb nested thousands
 * deep raises; 54000, a value over a size limit). The same values fail the same way on every
 * retry, and in a batch they fail their neighbours too, so a batch that raises one is split to
 * find the event at fault. Connection loss, timeouts, lock and serialization failures are not.
 */
export function isContentError(error: unknown): boolean {
  const code = sqlState(error);
  return code !== undefined && /^(2[23]|54)/.test(code);
}
