import { SignJWT, jwtVerify } from 'jose';

/**
 * Stream's server-side auth: a JWT with payload {"server": true}, HS256 under the API secret,
 * sent bare (no "Bearer ") in `Authorization` with `stream-auth-type: jwt` and `api_key` in the
 * query. The SDKs sign it without iat/exp and reuse it for the client's lifetime (docs/stream-api.md §3).
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

/** What a request carries for Stream's server-side auth, as read from its query and headers. */
export interface StreamAuthRequest {
  /** The `api_key` query parameter (anything but a non-empty string counts as missing). */
  readonly apiKey: unknown;
  readonly authType: string | string[] | undefined;
  readonly authorization: string | undefined;
}

/**
 * Stream's server-side auth, checked in Stream's order with Stream's messages: `api_key` in the
 * query, `stream-auth-type: jwt`, then the JWT in Authorization. Shared by the archive route and
 * the Stream simulator, so both refuse the same requests the same way. `verifyToken` lets the
 * caller choose the secrets (and the simulator remember tokens it has already verified).
 * Returns the problem, or undefined when the request is authorised; never echoes the token or key.
 */
export async function streamAuthProblem(
  request: StreamAuthRequest,
  expected: { readonly apiKey: string; readonly verifyToken: (token: string) => Promise<boolean> },
): Promise<string | undefined> {
  if (typeof request.apiKey !== 'string' || request.apiKey === '') return 'api_key query parameter is missing';
  if (expected.apiKey === '' || request.apiKey !== expected.apiKey) return 'api_key is not valid';
  if (typeof request.authType !== 'string' || request.authType.toLowerCase() !== 'jwt') return 'Stream-Auth-Type header must be "jwt"';
  if (!request.authorization) return 'Authorization header is missing';
  return (await expected.verifyToken(request.authorization)) ? undefined : 'JWT token is not valid';
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
