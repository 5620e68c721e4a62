import { createHash } from 'node:crypto';
import { AppError } from '../errors.ts';
import type { ParticipantFilter } from '../stream/filters.ts';

/**
 * Opaque keyset cursors for the archive's participant_sessions pages. A cursor names a position by
 * `user_session_id` (the page order), not an offset, so rows archived between two requests neither
 * shift nor repeat what the client already has. It also carries a scope (a hash of the call session
 * and the filter) so a cursor cannot be replayed against another session or filter.
 */

export type CursorDirection = 'next' | 'prev';

export interface ArchiveCursor {
  readonly direction: CursorDirection;
  /** `next`: the last user_session_id already served; `prev`: the first one. */
  readonly key: string;
  readonly scope: string;
}

/** A cursor the client sent that this request cannot use; the message is fit for an API error body. */
export class CursorError extends AppError {
  constructor(message: string) {
    super('CURSOR_INVALID', message);
    this.name = 'CursorError';
  }
}

const CURSOR_VERSION = 1;
const SCOPE_CHARS = 16;

/** The same conditions in any order (and `$in` values in any order) give the same scope. */
export function createCursorScope(callSessionId: string, filters: readonly ParticipantFilter[]): string {
  const canonical = filters
    .map((f) => [f.field, f.op, [...f.values].map((v) => JSON.stringify(v)).sort()])
    .map((c) => JSON.stringify(c))
    .sort();
  return createHash('sha256')
    .update(JSON.stringify([callSessionId, canonical]))
    .digest('base64url')
    .slice(0, SCOPE_CHARS);
}

export function encodeArchiveCursor(cursor: ArchiveCursor): string {
  return Buffer.from(JSON.stringify({ v: CURSOR_VERSION, d: cursor.direction, k: cursor.key, s: cursor.scope })).toString('base64url');
}

/**
 * Reads the `next` or `prev` query value. Throws CursorError when it is not one of ours, was issued
 * for the other direction, or for another call session or filter.
 */
export function parseArchiveCursor(raw: string, expected: { direction: CursorDirection; scope: string }): ArchiveCursor {
  let decoded: unknown;
  try {
    decoded = /^[A-Za-z0-9_-]+$/.test(raw) ? JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) : undefined;
  } catch {
    decoded = undefined;
  }
  const fields = decoded as { v?: unknown; d?: unknown; k?: unknown; s?: unknown } | undefined;
  if (
    fields === null ||
    typeof fields !== 'object' ||
    fields.v !== CURSOR_VERSION ||
    (fields.d !== 'next' && fields.d !== 'prev') ||
    typeof fields.k !== 'string' ||
    typeof fields.s !== 'string'
  ) {
    throw new CursorError(`${expected.direction} is not a valid cursor`);
  }
  if (fields.d !== expected.direction) {
    throw new CursorError(`${expected.direction} holds a ${fields.d} cursor; pass it as ${fields.d}`);
  }
  if (fields.s !== expected.scope) {
    throw new CursorError(`${expected.direction} cursor belongs to another call session or filter_conditions`);
  }
  return { direction: fields.d, key: fields.k, scope: fields.s };
}
