/**
 * The bare-Fastify baseline for the intake benchmark: one POST route that parses the JSON body and
 * answers, nothing else. Run as its own process, as the service is; prints its URL on stdout.
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.post('/webhooks/stream', async (request) => ({ status: 'stored', bytes: JSON.stringify(request.body).length > 0 }));
const url = await app.listen({ port: 0, host: '127.0.0.1' });
console.log(url);
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
