/**
 * Operational errors carry a stable `code` and whether retrying can help. Every error class in
 * src/ extends this (directly or through ConfigError or UsageError), so the CLI, the logs and the
 * HTTP handlers can tell an expected failure by its code from a bug.
 * Anything else is a bug or an unknown and goes through `coerceError`.
 */
export class AppError extends Error {
  readonly code: string;
  readonly retryable: boolean;

  constructor(code: string, message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/**
 * Bad or missing configuration: the message names every variable at fault. The CLI exits 2 for
 * these. `message` and `code` replace the generic wording where a setting is well-formed but
 * unusable (DATABASE_URL pointing at a server that refuses us, or at an unmigrated database).
 */
export class ConfigError extends AppError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[], options: { code?: string; message?: string; cause?: unknown } = {}) {
    super(options.code ?? 'CONFIG_INVALID', options.message ?? `invalid configuration: ${problems.join('; ')}`, { cause: options.cause });
    this.problems = problems;
  }
}

/** Bad command-line usage: the CLI prints the message and exits 2. */
export class UsageError extends AppError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

export function coerceError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === 'string' ? value : `non-error thrown: ${safeStringify(value)}`);
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
