import { setTimeout as delay } from 'node:timers/promises';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { RETRY_POLICIES, retryDelayMs, type DelayPolicy } from '../policy/retry.ts';
import type { StreamClient } from '../stream/client.ts';
import { StreamApiError } from '../stream/errors.ts';
import { healthOfOutcome, type StreamHealthVerdict } from '../stream/health.ts';

/** The endpoints the archive uses; GetRateLimits reports their windows (docs/stream-api.md §4). */
export const PROBED_ENDPOINTS = ['QueryCallParticipantSessions', 'QueryCallSessionStats'] as const;

export interface StreamProbe {
  /** The first probe's verdict: `ok`, `unauthorized`, or `unreachable` (then it keeps trying). */
  readonly first: Promise<StreamHealthVerdict>;
  /** Resolves with the first verdict that is not `unreachable` (or never, while Stream stays away). */
  readonly settled: Promise<StreamHealthVerdict>;
  stop(): Promise<void>;
}

export interface StreamProbeOptions {
  readonly stream: StreamClient;
  readonly logger: Logger;
  /**
   * While Stream is unreachable the probe is repeated (default RETRY_POLICIES.streamProbe: 5 s,
   * 10 s, 20 s … up to 5 minutes apart). The worker and the sweep also report every exchange, so
   * the state recovers as soon as any of them gets through; the probe matters for intake-only
   * replicas and idle times.
   */
  readonly backoff?: DelayPolicy;
}

/**
 * Checks the credentials and STREAM_BASE_URL with one cheap authenticated call (GetRateLimits),
 * then, while Stream cannot be reached, again with backoff until it answers. The verdicts reach
 * the shared record through the stream client's onOutcome, like every other exchange.
 */
export function startStreamProbe(options: StreamProbeOptions): StreamProbe {
  const log = options.logger.child({ component: 'stream-probe' });
  const controller = new AbortController();
  let resolveFirst!: (verdict: StreamHealthVerdict) => void;
  let resolveSettled!: (verdict: StreamHealthVerdict) => void;
  const first = new Promise<StreamHealthVerdict>((resolve) => (resolveFirst = resolve));
  const settled = new Promise<StreamHealthVerdict>((resolve) => (resolveSettled = resolve));

  const probeOnce = async (): Promise<StreamHealthVerdict> => {
    // No deadline of our own: the request core's (10 s) ends a probe well inside the 15 s a wrong
    // secret has to exit in, and its timeout reaches the health record like any other exchange.
    try {
      const limits = await options.stream.getRateLimits({ endpoints: PROBED_ENDPOINTS, signal: controller.signal });
      const window = limits.QueryCallParticipantSessions;
      if (window) log.info({ endpoint: 'QueryCallParticipantSessions', limit: window.limit, remaining: window.remaining }, 'Stream credentials accepted');
      else log.info('Stream credentials accepted');
      return 'ok';
    } catch (error) {
      if (controller.signal.aborted) throw error;
      if (error instanceof StreamApiError) return healthOfOutcome({ status: error.status, error }) ?? 'ok';
      throw error;
    }
  };

  const loop = (async () => {
    for (let attempt = 1; ; attempt += 1) {
      const verdict = await probeOnce();
      if (attempt === 1) resolveFirst(verdict);
      if (verdict !== 'unreachable') {
        resolveSettled(verdict);
        return;
      }
      await delay(retryDelayMs(options.backoff ?? RETRY_POLICIES.streamProbe, attempt), undefined, { signal: controller.signal });
    }
  })().catch((error: unknown) => {
    if (!controller.signal.aborted) log.error({ err: coerceError(error) }, 'Stream probe stopped');
  });

  return {
    first,
    settled,
    async stop() {
      controller.abort();
      await loop;
    },
  };
}
