import { describe, expect, it } from 'vitest';
import { isPastRetention } from '../../src/policy/retention.ts';
import { DAY_MS } from '../../src/time.ts';

const now = Date.UTC(2026, 5, 1);
const at = (days: number) => new Date(now + days * DAY_MS);

describe('isPastRetention', () => {
  // [name, retention_expires_at, session end, expected]
  const rows: [string, Date | null, Date | null, boolean][] = [
    ['stored retention passed', at(-1), null, true],
    ['stored retention ahead', at(1), null, false],
    ['no retention stored, ended 91 days ago', null, at(-91), true],
    ['no retention stored, ended 89 days ago', null, at(-89), false],
    ['a stored retention ahead, yet an end over 90 days ago', at(1), at(-91), true],
    ['nothing known', null, null, false],
  ];
  it.each(rows)('%s', (_name, retentionExpiresAt, sessionEndedAt, expected) => {
    expect(isPastRetention({ retentionExpiresAt, sessionEndedAt }, now)).toBe(expected);
  });
});
