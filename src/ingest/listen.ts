import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import type { Logger } from '../logger.ts';
import { RETRY_POLICIES, retryDelayMs } from '../policy/retry.ts';

export interface DueListener {
  close(): Promise<void>;
}

export interface DueListenerOptions {
  /** Connection settings for the dedicated LISTEN connection (a pooled one would be handed back). */
  readonly connection: pg.ClientConfig;
  readonly channel: string;
  readonly logger: Logger;
  /** A notification arrived, or the connection was (re)established and some may have been missed. */
  readonly onWake: () => void;
}

// One listener per process: nothing to spread out, so its schedule waits the bound itself.
const RECONNECT = RETRY_POLICIES.listenerReconnect;

/**
 * LISTEN on one dedicated connection and call `onWake` for every NOTIFY. If the connection drops
 * (a restarted database, a terminated backend) it reconnects with capped backoff; notifications
 * sent meanwhile are lost, so every (re)connect also wakes the worker once, and polling remains
 * the safety net either way.
 */
export function startDueListener(options: DueListenerOptions): DueListener {
  const log = options.logger.child({ channel: options.channel });
  let closed = false;
  let client: pg.Client | null = null;
  const stopWaiting = new AbortController();

  const connectLoop = async (): Promise<void> => {
    let failures = 0;
    while (!closed) {
      const candidate = new pg.Client({ ...options.connection, application_name: 'stream-attendance-listen' });
      const dropped = new Promise<void>((resolve) => {
        candidate.on('error', (error) => {
          log.warn({ err: error }, 'listen connection error');
          resolve();
        });
        candidate.on('end', () => resolve());
      });
      candidate.on('notification', () => options.onWake());
      try {
        await candidate.connect();
        await candidate.query(`listen "${options.channel.replaceAll('"', '""')}"`);
      } catch (error) {
        failures += 1;
        await candidate.end().catch(() => undefined);
        const wait = retryDelayMs(RECONNECT, failures);
        if (!closed) log.warn({ err: error, retryInMs: wait }, 'could not listen for due sessions; retrying');
        await delay(wait, undefined, { signal: stopWaiting.signal }).catch(() => undefined);
        continue;
      }
      if (closed) {
        await candidate.end().catch(() => undefined);
        break;
      }
      if (failures > 0) log.info({ failures }, 'listening for due sessions again');
      failures = 0;
      client = candidate;
      options.onWake();
      await dropped;
      client = null;
      await candidate.end().catch(() => undefined);
      if (!closed) await delay(RECONNECT.baseMs, undefined, { signal: stopWaiting.signal }).catch(() => undefined);
    }
  };
  const running = connectLoop();

  return {
    async close() {
      closed = true;
      stopWaiting.abort();
      await client?.end().catch(() => undefined);
      await running;
    },
  };
}
