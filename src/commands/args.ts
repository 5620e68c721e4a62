import { parseArgs } from 'node:util';
import { coerceError, UsageError } from '../errors.ts';
import { DAY_MS } from '../time.ts';
import type { OptionSpec, OptionValues } from './types.ts';

/**
 * The one place command-line flags become typed values. Every refusal is a UsageError (exit 2)
 * whose one-line message names the flag and what it takes, so each command reads the same way.
 */

export interface ParsedCommandLine {
  readonly values: OptionValues;
  readonly positionals: string[];
}

/**
 * Parses `args` against a command's declared options. Unknown flags and, unless the command reads
 * them, positional arguments are refused: a stray word is more often a typo than an intent
 * (`redrive abc` meaning `redrive --session abc`), and ignoring it would act on everything.
 */
export function parseCommandLine(args: readonly string[], options: OptionSpec, rules: { readonly positionals?: boolean } = {}): ParsedCommandLine {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(coerceError(error).message);
  }
  if (!rules.positionals) verifyNoPositionals(parsed.positionals);
  return { values: parsed.values, positionals: parsed.positionals };
}

/** Refuses any positional argument, naming the first. */
export function verifyNoPositionals(positionals: readonly string[]): void {
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])} (options are given as --name value)`);
}

export interface WholeNumberRange {
  readonly min: number;
  readonly max: number;
  readonly default: number;
}

// Digits only: Number() would also take '', ' ', '1e3', '0x10' and '2.0', which nobody means as a count.
const WHOLE_NUMBER = /^\d{1,15}$/;

/** Absent → `range.default`; otherwise a whole number from `range.min` to `range.max`. */
export function wholeNumberOption(value: unknown, flag: string, range: WholeNumberRange): number {
  if (value === undefined) return range.default;
  const text = typeof value === 'string' ? value.trim() : '';
  const number = Number(text);
  if (!WHOLE_NUMBER.test(text) || number < range.min || number > range.max) {
    throw new UsageError(`${flagName(flag)} must be a whole number from ${range.min} to ${range.max} (got ${JSON.stringify(value)})`);
  }
  return number;
}

/**
 * Absent → undefined; otherwise the value exactly as given, which must not be blank. Never trimmed:
 * these are ids (users, sessions), and `forget --user ' x'` must not erase user `x`.
 */
export function textOption(value: unknown, flag: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '') throw new UsageError(`${flagName(flag)} needs a value`);
  return value;
}

/** Like textOption, but absent is refused too: `--user <id> is required`. */
export function requiredTextOption(value: unknown, flag: string, placeholder: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw new UsageError(`${flagName(flag)} <${placeholder}> is required`);
  return value;
}

/** A boolean flag: present → true. */
export function booleanOption(value: unknown): boolean {
  return value === true;
}

const DAYS_AGO = /^(\d{1,4})d$/;
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Absent → undefined; otherwise `7d` (that many days before `now`), `2026-03-01` (midnight UTC) or
 * an ISO date-time with a zone. A date-time without a zone is refused: the server's zone and the
 * user's would silently disagree.
 */
export function whenOption(value: unknown, flag: string, now: Date): Date | undefined {
  const text = textOption(value, flag);
  if (text === undefined) return undefined;
  const daysAgo = DAYS_AGO.exec(text);
  if (daysAgo) return new Date(now.getTime() - Number(daysAgo[1]) * DAY_MS);
  let ms = Number.NaN;
  if (DATE_ONLY.test(text)) ms = Date.parse(`${text}T00:00:00Z`);
  else if (DATE_TIME.test(text)) ms = Date.parse(text);
  // Date.parse rolls 2026-02-30 over to March; a date that does not print back as itself is refused.
  if (Number.isNaN(ms) || (DATE_ONLY.test(text) && new Date(ms).toISOString().slice(0, 10) !== text)) {
    throw new UsageError(
      `${flagName(flag)} must be an ISO date (2026-03-01), an ISO date-time with a zone (2026-03-01T12:00:00Z) or Nd (7d); got ${JSON.stringify(text)}`,
    );
  }
  return new Date(ms);
}

/** Callers may pass `limit` or `--limit`; messages always show the flag as typed on the command line. */
function flagName(flag: string): string {
  return flag.startsWith('-') ? flag : `--${flag}`;
}
