import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.ts';

/** Paths whose values never reach a log line, wherever they appear in a logged object. */
export const REDACT_PATHS = [
  'authorization',
  'Authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers["x-signature"]',
  'headers["x-signature"]',
  'signature',
  'secret',
  'apiSecret',
  'api_secret',
  'token',
  '*.authorization',
  '*.signature',
  '*.secret',
  '*.apiSecret',
  '*.token',
  'stream.apiSecret',
  'stream.previousApiSecrets',
] as const;

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Pretty output for people; JSON lines otherwise. Defaults to "stdout is a TTY". */
  readonly pretty?: boolean;
  /** Where to write (tests capture logs here); defaults to stdout. */
  readonly destination?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const pretty = options.pretty ?? Boolean(process.stdout.isTTY);
  const base = {
    level: options.level,
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    base: undefined,
  };
  if (options.destination) return pino(base, options.destination as pino.DestinationStream);
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } });
  }
  return pino(base);
}

export type { Logger };
