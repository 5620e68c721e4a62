import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { spawnCommand } from '../helpers/child.ts';
import { useTestDatabase } from '../helpers/db.ts';

const API_KEY = 'serve-start-key';
const API_SECRET = 'serve-start-secret';
const WRONG_SECRET = 'serve-start-wrong-secret-never-printed';

describe('serve and worker check the credentials at start', () => {
  const test = useTestDatabase();
  let simulator: Simulator;

  beforeAll(async () => {
    simulator = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET });
  });
  afterAll(async () => {
    await simulator?.close();
  });

  it.each(['serve', 'worker', 'serve --no-worker'])('`%s` with a wrong secret exits 2 within 15 s, one line naming both variables', async (command) => {
    const started = Date.now();
    const child = spawnCommand(command.split(' '), {
      DATABASE_URL: test.current.url,
      STREAM_API_KEY: API_KEY,
      STREAM_API_SECRET: WRONG_SECRET,
      STREAM_BASE_URL: simulator.url,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
    });
    expect(await child.exited).toBe(2);
    expect(Date.now() - started).toBeLessThan(15_000);
    const output = child.output().trim().split('\n');
    expect(output).toHaveLength(1);
    expect(output[0]).toMatch(/^attendance (serve|worker): .*Stream refused the API credentials.*check STREAM_API_KEY and STREAM_API_SECRET$/);
    expect(child.output()).not.toContain(WRONG_SECRET);
  });
});
