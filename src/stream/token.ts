import { SignJWT, jwtVerify } from 'jose';

/**
 * Stream's server-side auth: a JWT with payload {"server": true}, HS256 under the API secret,
 * sent bare (no "Bearer ") in `Authorization` with `stream-auth-type: jwt` and `api_key` in the
 * query. The SDKs sign it without iat/exp and reuse it for the client's lifetime (stream-api.md §3).
 */
export async function createServerToken(apiSecret: string): Promise<string> {
  return new SignJWT({ server: true }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(secretKey(apiSecret));
}

/**
 * Verifies a server token as Stream would: HS256 signature under one of `secrets`, claim
 * `server: true`, and `exp` (when present) not passed. Returns false rather than throwing.
 */
export async function isValidServerToken(token: string | undefined, secrets: readonly string[]): Promise<boolean> {
  if (!token) return false;
  const bare = token.startsWith('Bearer ') ? token.slice(7) : token;
  for (const secret of secrets) {
    if (secret === '') continue;
    try {
      const { payload } = await jwtVerify(bare, secretKey(secret), { algorithms: ['HS256'] });
      if (payload.server === true) return true;
    } catch {
      // try the next secret
    }
  }
  return false;
}

const keys = new Map<string, Uint8Array>();
function secretKey(secret: string): Uint8Array {
  let key = keys.get(secret);
  if (!key) {
    key = new TextEncoder().encode(secret);
    keys.set(secret, key);
  }
  return key;
}
