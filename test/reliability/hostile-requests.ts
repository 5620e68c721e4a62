import { randomBytes, randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { MAX_WEBHOOK_BODY_BYTES } from '../../src/http/webhooks.ts';
import { MAX_WEBHOOK_JSON_DEPTH } from '../../src/stream/webhook-events.ts';
import type { Random } from '../../tools/simulator/random.ts';
import { signWebhook } from '../../src/stream/signature.ts';

/** One hostile delivery: sent as headers + body, or as raw bytes on a socket when HTTP itself is bent. */
export interface HostileRequest {
  readonly kind: string;
  /** Statuses this kind may be answered with; never a 5xx. */
  readonly expect: readonly number[];
  readonly headers?: Record<string, string>;
  readonly body?: Buffer;
  /** A whole HTTP/1.1 request, written to a fresh connection as is. */
  readonly raw?: Buffer;
}

export interface HostileKeys {
  readonly apiKey: string;
  readonly apiSecret: string;
}

const SQL_IDS = [
  "'; drop table call_sessions; --",
  "x' or '1'='1",
  'a"; delete from webhook_events; --',
  '$$; truncate participant_sessions; $$',
  "\\'; select pg_sleep(10); --",
  "1); notify attendance_sessions_due, 'x'; --",
];
const CONTROL_IDS = ['id\u0000nul', 'line\nbreak', 'tab\tand\rreturn', '\u001b[31mred', '\u202eright-to-left', '\ud800lone-surrogate', '\u0007bell'];

/** A well-formed stats_report_ready body for a session nobody archives. */
function eventBody(random: Random, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: random.chance(0.5) ? 'call.stats_report_ready' : 'call.session_ended',
    created_at: new Date().toISOString(),
    call_cid: `default:hostile-${random.int(0, 1e9)}`,
    session_id: randomUUID(),
    ...overrides,
  };
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

/**
 * At least `count` hostile webhooks, in a shuffled order, covering every way the issue lists:
 * signatures missing, wrong, truncated, upper-case, for another body or another secret; API key
 * missing or wrong; bodies truncated, oversized, not JSON, wrongly typed; gzip bombs; ids with SQL
 * and control characters; signed bodies nested too deep, and ids holding invalid UTF-8 or lone
 * surrogates; and requests that bend HTTP itself. Nothing here may be stored.
 */
export function generateHostileRequests(random: Random, keys: HostileKeys, count: number): HostileRequest[] {
  const sign = (body: Buffer, secret = keys.apiSecret) => signWebhook(body, secret);
  const headers = (body: Buffer, extra: Record<string, string> = {}) => ({
    'content-type': 'application/json',
    'x-api-key': keys.apiKey,
    'x-signature': sign(body),
    'x-webhook-id': randomUUID(),
    'x-webhook-attempt': '1',
    ...extra,
  });
  const withoutHeader = (h: Record<string, string>, name: string) => Object.fromEntries(Object.entries(h).filter(([k]) => k !== name));
  const bomb = gzipSync(Buffer.alloc(16 * MAX_WEBHOOK_BODY_BYTES, 0x20), { level: 9 });
  const oversized = Buffer.concat([Buffer.from('{"type":"call.stats_report_ready","pad":"'), Buffer.alloc(MAX_WEBHOOK_BODY_BYTES, 0x61), Buffer.from('"}')]);

  const makers: [string, number, () => HostileRequest][] = [
    [
      'signature missing',
      1,
      () => {
        const b = json(eventBody(random));
        return { kind: 'signature missing', expect: [401], body: b, headers: withoutHeader(headers(b), 'x-signature') };
      },
    ],
    [
      'signature empty',
      1,
      () => {
        const b = json(eventBody(random));
        return { kind: 'signature empty', expect: [401], body: b, headers: headers(b, { 'x-signature': '' }) };
      },
    ],
    [
      'signature wrong',
      2,
      () => {
        const b = json(eventBody(random));
        return { kind: 'signature wrong', expect: [401], body: b, headers: headers(b, { 'x-signature': randomBytes(32).toString('hex') }) };
      },
    ],
    [
      'signature truncated',
      1,
      () => {
        const b = json(eventBody(random));
        return { kind: 'signature truncated', expect: [401], body: b, headers: headers(b, { 'x-signature': sign(b).slice(0, random.int(1, 63)) }) };
      },
    ],
    [
      'signature upper-case',
      1,
      () => {
        const b = json(eventBody(random));
        return { kind: 'signature upper-case', expect: [401], body: b, headers: headers(b, { 'x-signature': sign(b).toUpperCase() }) };
      },
    ],
    [
      'signature prefixed',
      1,
      () => {
        const b = json(eventBody(random));
        return { kind: 'signature prefixed', expect: [401], body: b, headers: headers(b, { 'x-signature': `sha256=${sign(b)}` }) };
      },
    ],
    [
      'signature of another body',
      2,
      () => {
        const b = json(eventBody(random));
        return { kind: 'signature of another body', expect: [401], body: b, headers: headers(b, { 'x-signature': sign(json(eventBody(random))) }) };
      },
    ],
    [
      'signature with another secret',
      1,
      () => {
        const b = json(eventBody(random));
        return { kind: 'signature with another secret', expect: [401], body: b, headers: headers(b, { 'x-signature': sign(b, `${keys.apiSecret}x`) }) };
      },
    ],
    [
      'signature of the gzipped bytes',
      1,
      () => {
        const b = json(eventBody(random));
        const z = gzipSync(b);
        return { kind: 'signature of the gzipped bytes', expect: [401], body: z, headers: headers(b, { 'x-signature': sign(z), 'content-encoding': 'gzip' }) };
      },
    ],
    [
      'api key missing',
      1,
      () => {
        const b = json(eventBody(random));
        return { kind: 'api key missing', expect: [401], body: b, headers: withoutHeader(headers(b), 'x-api-key') };
      },
    ],
    [
      'api key wrong',
      1,
      () => {
        const b = json(eventBody(random));
        return { kind: 'api key wrong', expect: [401], body: b, headers: headers(b, { 'x-api-key': `${keys.apiKey}-other` }) };
      },
    ],
    [
      'api key in another case',
      1,
      () => {
        const b = json(eventBody(random));
        return { kind: 'api key in another case', expect: [401], body: b, headers: headers(b, { 'x-api-key': keys.apiKey.toUpperCase() }) };
      },
    ],
    [
      'body truncated after signing',
      2,
      () => {
        const full = json(eventBody(random));
        const b = full.subarray(0, random.int(1, full.length - 1));
        return { kind: 'body truncated after signing', expect: [401], body: b, headers: headers(full) };
      },
    ],
    [
      'signed truncated JSON',
      1,
      () => {
        const full = json(eventBody(random));
        const b = full.subarray(0, random.int(1, full.length - 2));
        return { kind: 'signed truncated JSON', expect: [400], body: b, headers: headers(b) };
      },
    ],
    [
      'signed non-JSON',
      1,
      () => {
        const b = random.chance(0.5) ? randomBytes(random.int(1, 2_000)) : Buffer.from(`type=call.stats_report_ready&session_id=${randomUUID()}`);
        return { kind: 'signed non-JSON', expect: [400], body: b, headers: headers(b) };
      },
    ],
    [
      'signed empty body',
      0.3,
      () => {
        const b = Buffer.alloc(0);
        return { kind: 'signed empty body', expect: [400], body: b, headers: headers(b) };
      },
    ],
    [
      'signed wrong types',
      3,
      () => {
        const variants: unknown[] = [
          eventBody(random, { type: 42 }),
          eventBody(random, { type: null }),
          eventBody(random, { type: 'call.stats_report_ready', call_cid: 42 }),
          eventBody(random, { type: 'call.stats_report_ready', call_cid: 'no-colon' }),
          eventBody(random, { type: 'call.session_ended', call_cid: ':only-id' }),
          eventBody(random, { type: 'call.session_ended', call_cid: 'only-type:' }),
          eventBody(random, { type: 'call.stats_report_ready', session_id: { $ne: null } }),
          eventBody(random, { type: 'call.stats_report_ready', session_id: ['a', 'b'] }),
          eventBody(random, { type: 'call.stats_report_ready', session_id: '' }),
          eventBody(random, { type: 'call.session_ended', session_id: 'x'.repeat(300) }),
          eventBody(random, { type: 'call.session_ended', call_cid: `default:${'y'.repeat(300)}` }),
          [eventBody(random)],
          'call.stats_report_ready',
          12345,
          null,
          true,
          JSON.parse('{"__proto__":{"polluted":true},"type":"call.stats_report_ready"}'),
        ];
        const b = Buffer.from(JSON.stringify(random.pick(variants)) ?? 'null');
        return { kind: 'signed wrong types', expect: [400], body: b, headers: headers(b) };
      },
    ],
    [
      'signed unknown event type',
      1,
      () => {
        const b = json(
          eventBody(random, { type: random.pick(['call.created', 'call.stats_report_ready ', 'CALL.SESSION_ENDED', 'call.session_ended\u0000']) }),
        );
        return { kind: 'signed unknown event type', expect: [200], body: b, headers: headers(b) };
      },
    ],
    ['oversized body', 0.05, () => ({ kind: 'oversized body', expect: [413], body: oversized, headers: headers(oversized) })],
    [
      'gzip bomb',
      0.5,
      () => ({ kind: 'gzip bomb', expect: [413], body: bomb, headers: headers(bomb, random.chance(0.5) ? { 'content-encoding': 'gzip' } : {}) }),
    ],
    [
      'corrupt gzip',
      0.5,
      () => {
        const b = Buffer.concat([Buffer.from([0x1f, 0x8b]), randomBytes(random.int(0, 500))]);
        return { kind: 'corrupt gzip', expect: [400], body: b, headers: headers(b, { 'content-encoding': 'gzip' }) };
      },
    ],
    [
      'unsupported encoding',
      0.5,
      () => {
        const b = json(eventBody(random));
        return {
          kind: 'unsupported encoding',
          expect: [415],
          body: b,
          headers: headers(b, { 'content-encoding': random.pick(['br', 'deflate', 'compress', 'gzip, br']) }),
        };
      },
    ],
    [
      'SQL in ids, unsigned',
      2,
      () => {
        const b = json(eventBody(random, { session_id: random.pick(SQL_IDS), call_cid: `default:${random.pick(SQL_IDS)}` }));
        return {
          kind: 'SQL in ids, unsigned',
          expect: [401],
          body: b,
          headers: headers(b, { 'x-signature': randomBytes(32).toString('hex'), 'x-webhook-id': random.pick(SQL_IDS) }),
        };
      },
    ],
    [
      'control characters in ids, unsigned',
      1,
      () => {
        const b = json(eventBody(random, { session_id: random.pick(CONTROL_IDS), call_cid: `default:${random.pick(CONTROL_IDS)}` }));
        return { kind: 'control characters in ids, unsigned', expect: [401], body: b, headers: headers(b, { 'x-signature': sign(b, 'guessed-secret') }) };
      },
    ],
    [
      'signed SQL ids without call_cid',
      1,
      () => {
        const b = json(eventBody(random, { type: 'call.stats_report_ready', session_id: random.pick(SQL_IDS), call_cid: undefined }));
        return { kind: 'signed SQL ids without call_cid', expect: [400], body: b, headers: headers(b, { 'x-webhook-id': random.pick(SQL_IDS) }) };
      },
    ],
    [
      'signed JSON nested 100,000 deep',
      0.3,
      () => {
        // Postgres refuses jsonb this deep (54001); it used to fail every event of its batch with 503.
        const b = Buffer.from(`${JSON.stringify(eventBody(random)).slice(0, -1)},"deep":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
        return { kind: 'signed JSON nested 100,000 deep', expect: [400], body: b, headers: headers(b) };
      },
    ],
    [
      'signed JSON nested one past the limit',
      0.5,
      () => {
        const depth = MAX_WEBHOOK_JSON_DEPTH;
        const b = Buffer.from(`${JSON.stringify(eventBody(random)).slice(0, -1)},"custom":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`);
        return { kind: 'signed JSON nested one past the limit', expect: [400], body: b, headers: headers(b) };
      },
    ],
    [
      'signed invalid UTF-8 in ids',
      1,
      () => {
        // Decoding would put U+FFFD where the bytes were, and the worker would ask Stream about another id.
        const field = random.pick(['session_id', 'call id', 'call type']);
        const body = eventBody(random);
        const marker = 'INVALID-UTF8';
        if (field === 'session_id') body.session_id = `${randomUUID()}-${marker}`;
        else if (field === 'call id') body.call_cid = `default:call-${marker}`;
        else body.call_cid = `${marker}:call-1`;
        const [before, after] = JSON.stringify(body).split(marker) as [string, string];
        const bad = random.pick([[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xe2, 0x82]]);
        const b = Buffer.concat([Buffer.from(before), Buffer.from(bad), Buffer.from(after)]);
        return { kind: 'signed invalid UTF-8 in ids', expect: [400], body: b, headers: headers(b) };
      },
    ],
    [
      'signed lone surrogate in ids',
      0.5,
      () => {
        const body = eventBody(random, random.chance(0.5) ? { session_id: `s-${randomUUID()}-\ud800` } : { call_cid: 'default:\udfff-call' });
        const b = json(body);
        return { kind: 'signed lone surrogate in ids', expect: [400], body: b, headers: headers(b) };
      },
    ],
    [
      'raw: control character in a header',
      0.3,
      () => ({ kind: 'raw: control character in a header', expect: [400], raw: rawRequest(['X-Webhook-Id: abc\u0001def', 'X-Api-Key: k'], '{}') }),
    ],
    ['raw: bad Content-Length', 0.3, () => ({ kind: 'raw: bad Content-Length', expect: [400], raw: rawRequest(['Content-Length: 12abc'], '{}', false) })],
    [
      'raw: Content-Length and chunked',
      0.3,
      () => ({
        kind: 'raw: Content-Length and chunked',
        expect: [400],
        raw: rawRequest(['Content-Length: 4', 'Transfer-Encoding: chunked'], '0\r\n\r\n', false),
      }),
    ],
    ['raw: headers too large', 0.2, () => ({ kind: 'raw: headers too large', expect: [431], raw: rawRequest([`X-Signature: ${'f'.repeat(20_000)}`], '{}') })],
  ];

  const weights = makers.reduce((sum, [, w]) => sum + w, 0);
  const requests: HostileRequest[] = [];
  // Every kind at least a few times, the rest in proportion to its weight.
  for (const [, weight, make] of makers) {
    const n = Math.max(3, Math.round((weight / weights) * count));
    for (let i = 0; i < n; i++) requests.push(make());
  }
  while (requests.length < count) requests.push(random.pick(makers)[2]());
  for (let i = requests.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    [requests[i], requests[j]] = [requests[j]!, requests[i]!];
  }
  return requests;
}

function rawRequest(extraHeaders: string[], body: string, withLength = true): Buffer {
  const lines = ['POST /webhooks/stream HTTP/1.1', 'Host: 127.0.0.1', 'Content-Type: application/json', 'Connection: close', ...extraHeaders];
  if (withLength) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`, 'latin1');
}
