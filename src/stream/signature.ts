import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Stream's webhook signature: lowercase hex HMAC-SHA256 of the exact request bytes (after gunzip
 * when compressed), keyed with the app's API secret. No timestamp is signed, so X-WEBHOOK-ID
 * dedupe is the replay guard (stream-api.md §5).
 */
export function signWebhook(body: Buffer | string, secret: string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

/**
 * True when `signature` matches `body` under any of `secrets` (current first, then older ones
 * during a rotation). Constant time per comparison; a signature of the wrong length or form never
 * matches. Case-sensitive like Stream's SDK: the hex must be lowercase.
 */
export function isValidWebhookSignature(body: Buffer, signature: string | undefined, secrets: readonly string[]): boolean {
  if (signature === undefined || !/^[0-9a-f]{64}$/.test(signature)) return false;
  const given = Buffer.from(signature, 'hex');
  let valid = false;
  for (const secret of secrets) {
    if (secret === '') continue;
    const expected = createHmac('sha256', secret).update(body).digest();
    // Every secret is tried so the time taken does not tell which one matched.
    if (expected.length === given.length && timingSafeEqual(expected, given)) valid = true;
  }
  return valid;
}
