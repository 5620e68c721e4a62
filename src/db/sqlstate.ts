/**
 * SQLSTATE classes 22 (data exception) and 23 (integrity violation): Postgres refused the data
 * itself, so sending the same values again fails the same way. Anything else (connection lost,
 * timeout, serialization failure) may pass on a retry.
 */
export function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^2[23][0-9A-Z]{3}$/.test(code);
}
