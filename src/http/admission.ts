import { OverloadedError } from './overload.ts';

export interface AdmissionGateOptions {
  /** Requests running at once: the connections of the pool they use, so none waits inside pg-pool. */
  readonly permits: number;
  /** Requests waiting for a permit; one more is refused at once. */
  readonly maxQueued: number;
  /** A waiting request is refused after this; well inside a client's patience. */
  readonly maxWaitMs: number;
}

export interface AdmissionGate {
  /** Resolves with the release function once admitted; rejects with OverloadedError when full. */
  admit(): Promise<() => void>;
  readonly running: () => number;
  readonly queued: () => number;
}

/**
 * A counting semaphore with a bounded, timed queue, in front of the routes that share a small pool
 * (the archive API). A refusal costs nothing: no connection, no query, no body. Without it, 100
 * parallel /summary calls on a 20,000-row session each waited in pg-pool's unbounded queue and 59
 * of them got pg-pool's connect timeout as a 500 (issue 15).
 */
export function createAdmissionGate(options: AdmissionGateOptions): AdmissionGate {
  let running = 0;
  const waiting: { grant: () => void; timer: NodeJS.Timeout }[] = [];

  const release = () => {
    const next = waiting.shift();
    if (next) {
      clearTimeout(next.timer);
      next.grant();
    } else {
      running--;
    }
  };
  const releaseOnce = () => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
    };
  };

  return {
    admit() {
      if (running < options.permits) {
        running++;
        return Promise.resolve(releaseOnce());
      }
      if (waiting.length >= options.maxQueued) return Promise.reject(new OverloadedError('too many requests waiting'));
      return new Promise((resolve, reject) => {
        const entry = {
          // The permit passes straight from the releasing request to this one: `running` is unchanged.
          grant: () => resolve(releaseOnce()),
          timer: setTimeout(() => {
            waiting.splice(waiting.indexOf(entry), 1);
            reject(new OverloadedError(`no capacity within ${options.maxWaitMs} ms`));
          }, options.maxWaitMs),
        };
        waiting.push(entry);
      });
    },
    running: () => running,
    queued: () => waiting.length,
  };
}
