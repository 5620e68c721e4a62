import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { runMigrations } from '../../src/db/migrate.ts';
import { acquireDatabaseSource } from './database-source.ts';
import { databaseUrl } from './urls.ts';

/**
 * Once per run: find a Postgres, migrate a template database, and hand its name to the test
 * files, each of which clones its own database from it (fast, isolated, no cleanup between tests).
 */
export default async function setup(project: TestProject) {
  const source = await acquireDatabaseSource(process.env);
  const template = `attendance_template_${process.pid}`;
  const admin = new pg.Client(source.adminUrl);
  try {
    await admin.connect();
    await admin.query(`drop database if exists ${template} with (force)`);
    await admin.query(`create database ${template}`);
    const pool = new pg.Pool({ connectionString: databaseUrl(source.adminUrl, template), max: 1 });
    try {
      await runMigrations(pool);
    } finally {
      await pool.end();
    }
  } catch (error) {
    await admin.end().catch(() => undefined);
    await source.stop();
    throw error;
  }
  project.provide('adminUrl', source.adminUrl);
  project.provide('templateDatabase', template);
  project.provide('databaseSource', source.kind);

  return async () => {
    await admin.query(`drop database if exists ${template} with (force)`).catch(() => undefined);
    await admin.end();
    await source.stop();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
    templateDatabase: string;
    databaseSource: 'DATABASE_URL' | 'testcontainers' | 'embedded';
  }
}
