import { createRequire } from 'node:module';

/*
 * drizzle-orm, loaded through require (its CommonJS build) rather than import. Its ESM build is
 * a tree of `export *` modules (pg-core alone re-exports 20), and linking those costs Node 24 about
 * 200 MiB that it keeps for the life of the process: importing `drizzle-orm/pg-core` leaves a
 * 270 MiB RSS on Node 24.21 against 61 MiB through require (52 MiB either way on Node 20). Every
 * value the product takes from drizzle comes from here; types are imported as usual.
 */
const require = createRequire(import.meta.url);

const orm = require('drizzle-orm') as typeof import('drizzle-orm');
export const { and, asc, desc, eq, gt, gte, inArray, lt, lte, sql } = orm;

const pgCore = require('drizzle-orm/pg-core') as typeof import('drizzle-orm/pg-core');
export const { bigint, check, foreignKey, index, integer, jsonb, pgTable, primaryKey, text, timestamp } = pgCore;

export const { drizzle } = require('drizzle-orm/node-postgres') as typeof import('drizzle-orm/node-postgres');
export const { migrate } = require('drizzle-orm/node-postgres/migrator') as typeof import('drizzle-orm/node-postgres/migrator');
