import { StreamClient } from '@stream-io/node-sdk';
import { describe, expect, it } from 'vitest';
import { createWebhookSignatureVerifier, isValidWebhookSignature, signWebhook } from '../../src/stream/signature.ts';

const SECRET = 'current-secret';
const OLD_SECRET = 'previous-secret';
const BODY = Buffer.from('{"type":"call.stats_report_ready","call_cid":"default:abc","session_id":"s-1"}');

describe('signWebhook', () => {
  it('is HMAC-SHA256 in lowercase hex (RFC 4231 test case 2)', () => {
    expect(signWebhook('what do ya want for nothing?', 'Jefe')).toBe('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
  });

  it('signs bytes and the same text alike', () => {
    expect(signWebhook(BODY, SECRET)).toBe(signWebhook(BODY.toString('utf8'), SECRET));
  });
});

describe('isValidWebhookSignature', () => {
  const valid = signWebhook(BODY, SECRET);

  it('accepts the signature under the current secret', () => {
    expect(isValidWebhookSignature(BODY, valid, [SECRET])).toBe(true);
  });

  it('accepts a signature under a previous secret (rotation)', () => {
    expect(isValidWebhookSignature(BODY, signWebhook(BODY, OLD_SECRET), [SECRET, OLD_SECRET])).toBe(true);
  });

  it('refuses a signature under a secret not in the list', () => {
    expect(isValidWebhookSignature(BODY, signWebhook(BODY, 'someone-else'), [SECRET, OLD_SECRET])).toBe(false);
  });

  it('refuses a body changed by one byte', () => {
    const changed = Buffer.from(BODY);
    const at = changed.length - 2;
    changed.writeUInt8(changed.readUInt8(at) ^ 1, at);
    expect(isValidWebhookSignature(changed, valid, [SECRET])).toBe(false);
  });

  it('refuses re-serialised JSON with the same meaning (the raw bytes are signed)', () => {
    const reformatted = Buffer.from(JSON.stringify(JSON.parse(BODY.toString()), null, 2));
    expect(isValidWebhookSignature(reformatted, valid, [SECRET])).toBe(false);
  });

  it('refuses a missing signature', () => {
    expect(isValidWebhookSignature(BODY, undefined, [SECRET])).toBe(false);
  });

  it('refuses an empty signature', () => {
    expect(isValidWebhookSignature(BODY, '', [SECRET])).toBe(false);
  });

  it('refuses upper-case hex, as Stream does', () => {
    expect(isValidWebhookSignature(BODY, valid.toUpperCase(), [SECRET])).toBe(false);
  });

  it('refuses a truncated signature', () => {
    expect(isValidWebhookSignature(BODY, valid.slice(0, 63), [SECRET])).toBe(false);
  });

  it('refuses a signature with extra characters', () => {
    expect(isValidWebhookSignature(BODY, `${valid}0`, [SECRET])).toBe(false);
    expect(isValidWebhookSignature(BODY, ` ${valid}`, [SECRET])).toBe(false);
  });

  it('refuses non-hex text of the right length', () => {
    expect(isValidWebhookSignature(BODY, 'g'.repeat(64), [SECRET])).toBe(false);
  });

  it('refuses the base64 form of the right digest', () => {
    expect(isValidWebhookSignature(BODY, Buffer.from(valid, 'hex').toString('base64'), [SECRET])).toBe(false);
  });

  it('never verifies with no secrets or an empty secret', () => {
    expect(isValidWebhookSignature(BODY, valid, [])).toBe(false);
    expect(isValidWebhookSignature(BODY, signWebhook(BODY, ''), [''])).toBe(false);
  });

  it('gives the same answers through a prebuilt verifier', () => {
    const verify = createWebhookSignatureVerifier([SECRET, OLD_SECRET]);
    expect(verify(BODY, valid)).toBe(true);
    expect(verify(BODY, signWebhook(BODY, OLD_SECRET))).toBe(true);
    expect(verify(BODY, signWebhook(BODY, 'other'))).toBe(false);
  });
});

describe('agreement with @stream-io/node-sdk StreamClient#verifyWebhook', () => {
  // The SDK only builds HTTP clients in its constructor; verifyWebhook is a local HMAC check.
  const client = new StreamClient('api-key', SECRET);
  const unicode = Buffer.from('{"type":"call.ended","call_cid":"default:été","user":{"name":"Zoë 🎉"}}');
  const spaced = Buffer.from('{\n  "session_id" : "s-2",\t"type":"call.session_ended" ,"call_cid":"a:b"\r\n}');
  const cases: Array<[string, Buffer, string]> = [
    ['valid', BODY, signWebhook(BODY, SECRET)],
    ['valid, non-ASCII body', unicode, signWebhook(unicode, SECRET)],
    ['valid, odd whitespace and key order', spaced, signWebhook(spaced, SECRET)],
    ['valid, empty body', Buffer.alloc(0), signWebhook(Buffer.alloc(0), SECRET)],
    ['wrong secret', BODY, signWebhook(BODY, OLD_SECRET)],
    ['tampered body', spaced, signWebhook(unicode, SECRET)],
    ['upper case', BODY, signWebhook(BODY, SECRET).toUpperCase()],
    ['truncated', BODY, signWebhook(BODY, SECRET).slice(0, 40)],
    ['too long', BODY, `${signWebhook(BODY, SECRET)}ab`],
    ['empty', BODY, ''],
    ['non-hex', BODY, 'z'.repeat(64)],
    ['non-ASCII signature', BODY, 'é'.repeat(32)],
    ['base64 digest', BODY, Buffer.from(signWebhook(BODY, SECRET), 'hex').toString('base64')],
  ];

  it.each(cases)('%s', (_name, body, signature) => {
    const ours = isValidWebhookSignature(body, signature, [SECRET]);
    expect(ours).toBe(client.verifyWebhook(body, signature));
    expect(ours).toBe(_name.startsWith('valid'));
  });
});
