import { userInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { describeDatabaseTarget, formatTarget, classifyDatabaseError } from '../../src/db/verify.ts';
import { AppError, ConfigError } from '../../src/errors.ts';
import { SQLSTATE, isDataError, isSchemaMissing } from '../../src/db/sqlstate.ts';

describe('describeDatabaseTarget: what errors may show of DATABASE_URL', () => {
  it.each([
    ['postgres://app:s3cr%40t@db.internal:6543/archive?sslmode=require', 'DATABASE_URL (db.internal:6543, database "archive", user "app")'],
    ['postgresql://app@10.0.0.5/archive', 'DATABASE_URL (10.0.0.5:5432, database "archive", user "app")'],
    ['postgres://127.0.0.1', `DATABASE_URL (127.0.0.1:5432, database "${userInfo().username}", user "${userInfo().username}")`],
    ['postgres://app:pw@[::1]:5433/a%20b', 'DATABASE_URL (::1:5433, database "a b", user "app")'],
    ['postgres://app@/archive?host=/var/run/postgresql', 'DATABASE_URL (/var/run/postgresql:5432, database "archive", user "app")'],
    ['postgres:///archive?host=/var/run/postgresql', `DATABASE_URL (/var/run/postgresql:5432, database "archive", user "${userInfo().username}")`],
    ['postgres://app:pw@bad host/x', 'DATABASE_URL (unknown host:5432, database "unknown", user "unknown")'],
  ])('%s', (url, expected) => {
    const text = formatTarget(describeDatabaseTarget(url));
    expect(text).toBe(expected);
    expect(text).not.toMatch(/s3cr|pw/);
  });
});

describe('classifyDatabaseError: errors raised while a command runs', () => {
  const target = describeDatabaseTarget('postgres://app:pw@db:5432/archive');

  it('a missing table or column is the migrate hint (exit 2)', () => {
    for (const code of [SQLSTATE.undefinedTable, SQLSTATE.undefinedColumn]) {
      const error = Object.assign(new Error('relation "call_sessions" does not exist'), { code });
      const classified = classifyDatabaseError(error, target);
      expect(classified).toBeInstanceOf(ConfigError);
      expect((classified as Error).message).toMatch(/run 'attendance migrate' first, with the same DATABASE_URL$/);
    }
  });

  it('a lost connection to this server names it; the same code from another host is left alone', () => {
    const shutdown = Object.assign(new Error('terminating connection due to administrator command'), { code: SQLSTATE.adminShutdown });
    const lost = classifyDatabaseError(shutdown, target);
    expect(lost).toBeInstanceOf(AppError);
    expect((lost as AppError).code).toBe('DATABASE_UNAVAILABLE');
    expect((lost as Error).message).toContain('lost the connection to DATABASE_URL (db:5432, database "archive", user "app")');

    const streamRefused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED', port: 9 });
    expect(classifyDatabaseError(streamRefused, target)).toBe(streamRefused);
    const other = new Error('something else');
    expect(classifyDatabaseError(other, target)).toBe(other);
  });

  it('isDataError and isSchemaMissing read the SQLSTATE, not node error codes', () => {
    expect(isDataError({ code: '23505' })).toBe(true);
    expect(isDataError({ code: '22P02' })).toBe(true);
    expect(isDataError({ code: '42P01' })).toBe(false);
    expect(isDataError({ code: 'ECONNREFUSED' })).toBe(false);
    expect(isSchemaMissing({ code: '42P01' })).toBe(true);
    expect(isSchemaMissing({ code: '23505' })).toBe(false);
  });
});
