import { createRandom, type Random } from './random.ts';

/** Shares (0–1) of API requests that fail on purpose; their sum must not exceed 1. */
export interface SimulatorFaults {
  /** Same seed, same sequence of faults (one draw per API request, in arrival order). */
  seed?: number | string;
  /** 500 (an APIError body), 502 or 503 (a load balancer's plain-text body). */
  serverErrorRate?: number;
  /** 429 with an APIError body (code 9) although the window is not used up: Stream lowers limits under load. */
  rateLimitRate?: number;
  /** The normal answer, after `slowMs`. */
  slowRate?: number;
  /** Defaults to 5000 ms, longer than stream-node's 3 s client timeout. */
  slowMs?: number;
  /** The connection is destroyed without an answer. */
  resetRate?: number;
  /** The normal status and headers, but only the first half of the body. */
  truncatedRate?: number;
}

export type FaultKind = 'serverError' | 'rateLimit' | 'slow' | 'reset' | 'truncated';

export type FaultDecision = { readonly kind: 'serverError'; readonly status: 500 | 502 | 503 } | { readonly kind: Exclude<FaultKind, 'serverError'> };

export interface FaultPicker {
  readonly slowMs: number;
  /** undefined when this request is served normally. */
  draw(): FaultDecision | undefined;
}

export const DEFAULT_SLOW_MS = 5_000;
const SERVER_ERROR_STATUSES = [500, 502, 503] as const;
const KINDS = [
  ['serverError', 'serverErrorRate'],
  ['rateLimit', 'rateLimitRate'],
  ['slow', 'slowRate'],
  ['reset', 'resetRate'],
  ['truncated', 'truncatedRate'],
] as const;

/** Throws RangeError for a share outside 0–1, shares adding up past 1, or a negative slowMs. */
export function createFaultPicker(faults: SimulatorFaults | undefined): FaultPicker {
  const bounds: { kind: FaultKind; upTo: number; from: number }[] = [];
  let total = 0;
  for (const [kind, key] of KINDS) {
    const rate = faults?.[key] ?? 0;
    if (!(rate >= 0 && rate <= 1)) throw new RangeError(`${key} must be between 0 and 1`);
    if (rate > 0) bounds.push({ kind, from: total, upTo: total + rate });
    total += rate;
  }
  if (total > 1 + 1e-9) throw new RangeError('fault rates add up to more than 1');
  const slowMs = faults?.slowMs ?? DEFAULT_SLOW_MS;
  if (!(slowMs >= 0)) throw new RangeError('slowMs must not be negative');
  const random: Random | undefined = bounds.length > 0 ? createRandom(`faults:${faults?.seed ?? 0}`) : undefined;

  return {
    slowMs,
    draw() {
      if (!random) return undefined;
      // One draw per request whatever the outcome, so the sequence depends on the seed alone.
      const roll = random.next();
      const hit = bounds.find((b) => roll < b.upTo);
      if (!hit) return undefined;
      if (hit.kind === 'serverError') {
        const within = (roll - hit.from) / (hit.upTo - hit.from);
        const status = SERVER_ERROR_STATUSES[Math.min(2, Math.floor(within * 3))] as 500 | 502 | 503;
        return { kind: 'serverError', status };
      }
      return { kind: hit.kind };
    },
  };
}
