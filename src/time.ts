/**
 * Durations in milliseconds, the unit of Date arithmetic and of every timer. Calendar-free on
 * purpose: a day is 24 hours, as Stream's 90-day retention counts it, never a local calendar day.
 */
export const SECOND_MS = 1_000;
export const MINUTE_MS = 60 * SECOND_MS;
export const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;
