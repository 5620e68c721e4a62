import { afterAll, beforeAll } from 'vitest';

/**
 * Loaded before every test file (vitest.config.ts setupFiles): fails the file when it leaves a
 * listening TCP server behind (an app, simulator or proxy never closed), which would otherwise
 * keep its worker alive or surface as a hang in a later file. Its afterAll, registered before the
 * file's own hooks, runs after them.
 */

// A closed server leaves the active-resource list on a later turn of the event loop.
const SERVER_WAIT_MS = 2_000;
const SERVER_POLL_MS = 20;

const listeningServers = (): number => process.getActiveResourcesInfo().filter((name) => name === 'TCPServerWrap').length;

let before = 0;
beforeAll(() => {
  before = listeningServers();
});

afterAll(async () => {
  const deadline = Date.now() + SERVER_WAIT_MS;
  while (listeningServers() > before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, SERVER_POLL_MS));
  const left = listeningServers() - before;
  if (left > 0) throw new Error(`${left} listening TCP server(s) left open by this test file: close every server it starts`);
});
