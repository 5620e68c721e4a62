/**
 * The part of a pino logger a summary writes to (object first, constant message second).
 */
export interface SummaryLog {
  error(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
}

export interface LogSummaryOptions {
  readonly log: SummaryLog;
  /** The constant message of every line this summary writes, e.g. 'webhooks refused: database unavailable'. */
  readonly message: string;
  /** At most one summary line per this many milliseconds while failures continue. */
  readonly intervalMs: number;
  /** Milliseconds, for tests; defaults to Date.now. */
  readonly now?: () => number;
}

export interface LogSummary {
  /**
   * One failure. The first of a spell is logged at error with its fields (the error with its
   * stack); the rest are counted, and summarised at warn at most once per interval.
   */
  failure(reason: string, fields: object): void;
  /** One success: ends a spell of failures with one info line, if there was one. Costs a branch otherwise. */
  success(): void;
}

// Reasons come from error codes, so a handful at most; the cap keeps a stream of odd messages from growing the map.
const MAX_REASONS = 10;

/*
 * A spell of identical failures is one story, not one line each: in one database outage intake
 * used to log an error line with a stack per refused webhook, 8,732 lines (5.4 MB). With this,
 * the same outage writes the first failure in full, one summary line per interval (count, first
 * and last time, reasons) and one line when it ends. No timer: a summary is written by the
 * failure that finds the interval passed, and the end of the spell by the next success, whose
 * line carries the totals, so nothing counted is ever left unsaid once traffic flows again.
 */
export function createLogSummary(options: LogSummaryOptions): LogSummary {
  const now = options.now ?? Date.now;
  let spell: { firstAt: number; lastAt: number; total: number; sinceSummary: number; summarisedAt: number; reasons: Map<string, number> } | undefined;

  return {
    failure(reason, fields) {
      const at = now();
      if (spell === undefined) {
        spell = { firstAt: at, lastAt: at, total: 1, sinceSummary: 0, summarisedAt: at, reasons: new Map([[reason, 1]]) };
        options.log.error({ ...fields, reason, summaryEveryMs: options.intervalMs }, options.message);
        return;
      }
      spell.total += 1;
      spell.sinceSummary += 1;
      spell.lastAt = at;
      const key = spell.reasons.has(reason) || spell.reasons.size < MAX_REASONS ? reason : 'other';
      spell.reasons.set(key, (spell.reasons.get(key) ?? 0) + 1);
      if (at - spell.summarisedAt < options.intervalMs) return;
      options.log.warn(
        {
          count: spell.sinceSummary,
          total: spell.total,
          firstAt: new Date(spell.firstAt).toISOString(),
          lastAt: new Date(spell.lastAt).toISOString(),
          reasons: Object.fromEntries(spell.reasons),
        },
        `${options.message} (summary)`,
      );
      spell.sinceSummary = 0;
      spell.summarisedAt = at;
    },
    success() {
      if (spell === undefined) return;
      options.log.info(
        {
          total: spell.total,
          firstAt: new Date(spell.firstAt).toISOString(),
          lastAt: new Date(spell.lastAt).toISOString(),
          reasons: Object.fromEntries(spell.reasons),
        },
        `${options.message} (recovered)`,
      );
      spell = undefined;
    },
  };
}
