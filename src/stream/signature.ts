import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';

/**
 * Stream's webhook signature: lowercase hex HMAC-SHA256 of the exact request bytes (after gunzip
 * when compressed), keyed with the app's API secret as UTF-8. No timestamp is signed, so
 * X-WEBHOOK-ID dedupe is the replay guard (docs/stream-api.md §5).
 */
export function signWebhook(body: Buffer | string, secret: string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

const SIGNATURE_PATTERN = /^[0-9a-f]{64}$/;

/** Checks a body against a signature; built once per process with the secrets as key objects. */
export type WebhookSignatureVerifier = (body: Buffer, signature: string | undefined) => boolean;

/**
 * Precomputes the keys of `secrets` (current first, then older ones during a rotation) so the
 * hot path only runs the HMACs. Empty secrets are skipped: an unset secret must never verify.
 */
export function createWebhookSignatureVerifier(secrets: readonly string[]): WebhookSignatureVerifier {
  const keys: readonly KeyObject[] = secrets.filter((s) => s !== '').map((s) => createSecretKey(Buffer.from(s, 'utf8')));
  return (body, signature) => {
    // Stream's SDK compares the hex text byte for byte, so upper case or padding never matches there
    // either; rejecting the form first also keeps Buffer.from(…, 'hex') from silently truncating.
    if (signature === undefined || !SIGNATURE_PATTERN.test(signature)) return false;
    const given = Buffer.from(signature, 'hex');
    let valid = false;
    for (const key of keys) {
      const expected = createHmac('sha256', key).update(body).digest();
      // Every key is tried, so the time taken does not tell which one matched.
      if (timingSafeEqual(expected, given)) valid = true;
    }
    return valid;
  };
}

/**
 * True when `signature` matches `body` under any of `secrets`. Constant time per comparison; a
 * signature of the wrong length or form never matches. Case-sensitive like Stream's SDK.
 * Long-lived callers should hold a `createWebhookSignatureVerifier` instead.
 */
export function isValidWebhookSignature(body: Buffer, signature: string | undefined, secrets: readonly string[]): boolean {
  return createWebhookSignatureVerifier(secrets)(body, signature);
}
