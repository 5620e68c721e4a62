/**
 * Concurrent uploads from their own process (so the test's own event loop, which measures
 * /healthz, is not the one writing hundreds of megabytes). Each upload has its own connection and
 * sends `bytes` bytes with a Content-Length to POST /webhooks/stream, unsigned, holding the last byte back.
 * `node bin/run-ts.js test/reliability/upload-flood.ts '<json UploadPlan>'`; prints one JSON UploadReport line.
 */
import { connect } from 'node:net';

export interface UploadPlan {
  readonly port: number;
  readonly uploads: number;
  readonly bytes: number;
  readonly apiKey: string;
  /**
   * The last byte of each body goes out this long after the rest was handed to the kernel, so every
   * upload the server reads is held in its memory at the same time (a sender can do that for up
   * to the 10 s request timeout).
   */
  readonly holdLastByteMs: number;
}

export interface UploadReport {
  /** Answers by status; 'reset' when the connection went before any answer. */
  readonly statuses: Record<string, number>;
  /** 503s without `Retry-After: 1`. */
  readonly withoutRetryAfter: number;
  readonly seconds: number;
}

function upload(plan: UploadPlan, body: Buffer): Promise<{ status: string; retryAfter: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(plan.port, '127.0.0.1');
    let received = '';
    const done = () => {
      resolve({ status: /^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 'reset', retryAfter: /\r\nretry-after: 1\r\n/i.test(received) });
      socket.destroy();
    };
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.includes('\r\n\r\n')) done();
    });
    socket.on('close', done);
    socket.on('error', () => undefined);
    socket.write(
      `POST /webhooks/stream HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\nx-api-key: ${plan.apiKey}\r\ncontent-length: ${body.length}\r\n\r\n`,
    );
    socket.write(body.subarray(0, body.length - 1), () => {
      setTimeout(() => {
        if (!socket.destroyed) socket.write(body.subarray(body.length - 1));
      }, plan.holdLastByteMs);
    });
  });
}

const plan = JSON.parse(process.argv[2] ?? '{}') as UploadPlan;
const body = Buffer.alloc(plan.bytes, 0x20);
const started = performance.now();
const answers = await Promise.all(Array.from({ length: plan.uploads }, () => upload(plan, body)));
const statuses: Record<string, number> = {};
for (const { status } of answers) statuses[status] = (statuses[status] ?? 0) + 1;
const report: UploadReport = {
  statuses,
  withoutRetryAfter: answers.filter((a) => a.status === '503' && !a.retryAfter).length,
  seconds: (performance.now() - started) / 1000,
};
process.stdout.write(`${JSON.stringify(report)}\n`);
