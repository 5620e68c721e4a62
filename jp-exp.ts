import { buildStatsReportReadyEvent } from './src/simulator/webhooks.ts';
import { generateSession } from './src/simulator/generate.ts';
import { parseWebhookEvent } from './src/stream/webhook-events.ts';
const session = generateSession({ seed: 'x', size: 3, endedAt: new Date() });
const text = JSON.stringify(buildStatsReportReadyEvent(session, { createdAt: new Date() }));
const buf = Buffer.from(text);
console.log(text.length, text.slice(0, 300));
const N = 50000;
for (let r = 0; r < 3; r++) {
  let t = performance.now(); for (let i = 0; i < N; i++) JSON.parse(buf.toString('utf8'));
  const a = (performance.now() - t) / N * 1000;
  t = performance.now(); const o = JSON.parse(text); for (let i = 0; i < N; i++) parseWebhookEvent(o);
  const b = (performance.now() - t) / N * 1000;
  console.log(`toString+JSON.parse ${a.toFixed(2)} µs, parseWebhookEvent ${b.toFixed(2)} µs`);
}
