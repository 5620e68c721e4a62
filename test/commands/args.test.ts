import { describe, expect, it } from 'vitest';
import { parseCommandLine, requiredTextOption, textOption, whenOption, wholeNumberOption } from '../../src/commands/args.ts';
import { UsageError } from '../../src/errors.ts';

const RANGE = { min: 1, max: 100, default: 20 } as const;

describe('wholeNumberOption', () => {
  it.each([
    [undefined, 20],
    ['1', 1],
    ['100', 100],
    [' 7 ', 7],
  ])('%j → %d', (value, expected) => {
    expect(wholeNumberOption(value, '--limit', RANGE)).toBe(expected);
  });

  it.each([[''], ['0'], ['101'], ['1e2'], ['0x10'], ['2.0'], ['-1'], [true]])('%j is refused naming the flag and the range', (value) => {
    expect(() => wholeNumberOption(value, 'limit', RANGE)).toThrow(
      new UsageError(`--limit must be a whole number from 1 to 100 (got ${JSON.stringify(value)})`),
    );
  });
});

describe('text options are ids: kept exactly, blank refused', () => {
  it.each([['u1'], [' u1'], ['u1 '], ['名前']])('%j is returned as given', (value) => {
    expect(textOption(value, '--session')).toBe(value);
    expect(requiredTextOption(value, '--user', 'id')).toBe(value);
  });

  it.each([[''], ['  '], [true]])('%j is refused', (value) => {
    expect(() => textOption(value, '--session')).toThrow('--session needs a value');
    expect(() => requiredTextOption(value, '--user', 'id')).toThrow('--user <id> is required');
  });

  it('an absent optional text is undefined, an absent required one is refused', () => {
    expect(textOption(undefined, '--session')).toBeUndefined();
    expect(() => requiredTextOption(undefined, '--user', 'id')).toThrow(UsageError);
  });
});

describe('whenOption', () => {
  const now = new Date('2026-06-15T12:00:00Z');
  it.each([
    ['7d', '2026-06-08T12:00:00.000Z'],
    ['2026-03-01', '2026-03-01T00:00:00.000Z'],
    ['2026-03-01T10:30:00+02:00', '2026-03-01T08:30:00.000Z'],
  ])('%s → %s', (value, iso) => {
    expect(whenOption(value, '--since', now)?.toISOString()).toBe(iso);
  });

  it.each([['2026-02-30'], ['2026-03-01T10:30:00'], ['yesterday'], ['7 d']])('%j is refused', (value) => {
    expect(() => whenOption(value, '--since', now)).toThrow(UsageError);
  });
});

describe('parseCommandLine', () => {
  const options = { json: { type: 'boolean' }, limit: { type: 'string' } } as const;

  it('reads declared flags', () => {
    expect(parseCommandLine(['--json', '--limit', '5'], options).values).toEqual({ json: true, limit: '5' });
  });

  it('refuses an unknown flag and a stray positional, each as a UsageError', () => {
    expect(() => parseCommandLine(['--jsn'], options)).toThrow(UsageError);
    expect(() => parseCommandLine(['abc'], options)).toThrow('unexpected argument "abc"');
  });

  it('keeps positionals for a command that declares them', () => {
    expect(parseCommandLine(['abc'], options, { positionals: true }).positionals).toEqual(['abc']);
  });
});
