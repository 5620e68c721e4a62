import { createHash } from 'node:crypto';

/**
 * Opaque cursors: base64url of a small JSON object. Clients must treat them as opaque, as they
 * must with Stream's; the `scope` hash ties a cursor to the session and filter it was made for,
 * so reusing it elsewhere is a 400 instead of a silently wrong page.
 */
export function encodeCursor(payload: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(payload)).toString('base64url');
}

/** The cursor's object, or undefined when it is not one of ours. */
export function decodeCursor(raw: string): Record<string, unknown> | undefined {
  if (!/^[A-Za-z0-9_-]{1,2048}$/.test(raw)) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A short, stable digest of what a cursor belongs to. */
export function cursorScope(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('base64url').slice(0, 12);
}
