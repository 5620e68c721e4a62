import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';
import { createDatabase, type Database } from '../../src/db/client.ts';
import { databaseUrl } from './urls.ts';

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  readonly database: Database;
  drop(): Promise<void>;
}

/** A fresh, migrated database cloned from the run's template. */
export async function createTestDatabase(options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const adminUrl = inject('adminUrl');
  const name = `attendance_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client(adminUrl);
  await admin.connect();
  try {
    const template = options.migrated === false ? 'template0' : inject('templateDatabase');
    await admin.query(`create database ${name} template ${template}`);
  } finally {
    await admin.end();
  }
  const url = databaseUrl(adminUrl, name);
  const database = createDatabase(url, { max: 10 });
  return {
    url,
    name,
    database,
    async drop() {
      await database.close();
      const dropper = new pg.Client(adminUrl);
      await dropper.connect();
      try {
        await dropper.query(`drop database if exists ${name} with (force)`);
      } finally {
        await dropper.end();
      }
    },
  };
}

/**
 * One database for the calling test file: created before its tests, dropped after them.
 * Access `.current` inside tests.
 */
export function useTestDatabase(options: { migrated?: boolean } = {}): { readonly current: TestDatabase } {
  const holder: { current: TestDatabase | undefined } = { current: undefined };
  beforeAll(async () => {
    holder.current = await createTestDatabase(options);
  });
  afterAll(async () => {
    await holder.current?.drop();
  });
  return {
    get current() {
      if (!holder.current) throw new Error('test database used outside a test');
      return holder.current;
    },
  };
}
