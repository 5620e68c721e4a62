import { loadConfig } from '../config.ts';
import { SESSION_STATUS } from '../db/schema.ts';
import { UsageError } from '../errors.ts';
import { createLogger } from '../logger.ts';
import { createMetrics } from '../metrics.ts';
import { BACKFILL_MAX_DAYS, backfillSession, backfillWindow } from '../reconcile/backfill.ts';
import type { FoundSession } from '../reconcile/enqueue-found.ts';
import { createStreamClient, streamConnection } from '../stream/client.ts';
import { withDatabase } from './database.ts';
import { textOption, whenOption } from './args.ts';
import type { Command, OptionValues } from './types.ts';
import type { RetentionBasis } from '../stream/retention.ts';
import { DAY_MS } from '../time.ts';
import type { UnusableCallStatsRow } from '../stream/schemas.ts';

export type BackfillRequest =
  | { readonly kind: 'window'; readonly since: Date; readonly until: Date }
  | { readonly kind: 'session'; readonly callType: string; readonly callId: string; readonly callSessionId: string };

/** Turns the flags into one of the two forms; throws UsageError with a one-line reason otherwise. */
export function parseBackfillArgs(values: OptionValues, now: Date = new Date()): BackfillRequest {
  const since = textOption(values.since, '--since');
  const until = textOption(values.until, '--until');
  const call = textOption(values.call, '--call');
  const session = textOption(values.session, '--session');
  const windowForm = since !== undefined || until !== undefined;
  const sessionForm = call !== undefined || session !== undefined;
  if (windowForm && sessionForm) throw new UsageError('use either --since/--until (a window) or --call/--session (one session), not both');

  if (sessionForm) {
    if (call === undefined) throw new UsageError('--session needs --call <type>:<id>');
    if (session === undefined) throw new UsageError('--call needs --session <call_session_id>');
    const colon = call.indexOf(':');
    if (colon <= 0 || colon === call.length - 1) throw new UsageError(`--call must be <type>:<id> (got ${JSON.stringify(call)})`);
    return { kind: 'session', callType: call.slice(0, colon), callId: call.slice(colon + 1), callSessionId: session };
  }

  if (since === undefined) {
    throw new UsageError(
      until === undefined ? 'give --since <ISO date or Nd> for a window, or --call <type>:<id> --session <id> for one session' : '--until needs --since',
    );
  }
  const sinceAt = whenOption(since, '--since', now)!;
  const untilAt = whenOption(until, '--until', now) ?? now;
  const oldest = now.getTime() - BACKFILL_MAX_DAYS * DAY_MS;
  if (sinceAt.getTime() < oldest) {
    throw new UsageError(
      `--since ${since} is more than ${BACKFILL_MAX_DAYS} days back; Stream keeps call sessions for ${BACKFILL_MAX_DAYS} days, so nothing older can be archived`,
    );
  }
  if (untilAt.getTime() <= sinceAt.getTime()) throw new UsageError(`--until (${untilAt.toISOString()}) must be after --since (${sinceAt.toISOString()})`);
  return { kind: 'window', since: sinceAt, until: untilAt };
}

export const backfillCommand: Command = {
  name: 'backfill',
  summary: 'enqueue every session Stream lists as ended in a window, or one session',
  usage: [
    'backfill --since <ISO date or Nd> [--until <ISO date or Nd>]',
    '       attendance backfill --call <type>:<id> --session <call_session_id>',
    '',
    `  --since, --until   the window of session end times (--until defaults to now); at most ${BACKFILL_MAX_DAYS} days back`,
    '  --call, --session  one call session',
    '',
    'Sessions already in the archive are left as they are; running a backfill twice changes nothing.',
  ].join('\n'),
  options: { since: { type: 'string' }, until: { type: 'string' }, call: { type: 'string' }, session: { type: 'string' } },
  async run(values, _positionals, ctx) {
    const request = parseBackfillArgs(values);
    const config = loadConfig(ctx.env);
    // Diagnostics (retries) go to stderr so stdout stays the list of what was enqueued.
    const logger = createLogger({ level: config.logLevel, destination: ctx.stderr });
    const metrics = createMetrics({ defaultMetrics: false });
    const stream = createStreamClient({
      ...streamConnection(config.stream),
      metrics,
      logger,
    });
    try {
      return await withDatabase(
        config,
        async ({ database }) => {
          if (request.kind === 'window') {
            const result = await backfillWindow({
              database,
              stream,
              window: { from: request.since, until: request.until },
              signal: ctx.stopSignal,
              metrics,
              onEnqueued: (sessions) => {
                for (const s of sessions) ctx.stdout.write(`enqueued  ${describeSession(s)}\n`);
              },
              // Not enqueued, so not on stdout's list: one line each on stderr, with whatever ids the row had.
              onRowProblems: (unusable) => {
                for (const row of unusable) ctx.stderr.write(`unusable  call_stats row ${row.index}: ${row.reason}${describeIds(row.ids)}\n`);
              },
            });
            const known = result.seen - result.enqueued - result.unusable;
            ctx.stdout.write(
              `backfill: ${result.enqueued} session(s) enqueued, ${known} already known, ` +
                `of ${result.seen} ended between ${request.since.toISOString()} and ${request.until.toISOString()}; ` +
                `${result.withoutEnd} without an end time (retention estimated), ${result.corrected} end time(s) filled in, ` +
                `${result.unusable} unusable (not enqueued)\n`,
            );
            return 0;
          }

          const result = await backfillSession({ database, stream, ...request, signal: ctx.stopSignal });
          const id = request.callSessionId;
          if (result.outcome === 'enqueued') {
            ctx.stdout.write(`enqueued  ${describeSession(result.session)}\n`);
            if (result.lookupNote) {
              const retention = result.session.retentionExpiresAt
                ? `retention estimated from its ${BASIS_TEXT[result.session.retentionBasis ?? 'listed']}: ${result.session.retentionExpiresAt.toISOString()}`
                : 'no retention date set';
              ctx.stdout.write(`  end time unknown (${result.lookupNote}); ${retention}\n`);
            }
            ctx.stdout.write('backfill: 1 session(s) enqueued\n');
            return 0;
          }
          if (result.status === SESSION_STATUS.dead) {
            ctx.stderr.write(`attendance backfill: session ${id} (${result.callCid}) is dead; to archive it again run 'attendance redrive --session ${id}'\n`);
            return 1;
          }
          if (result.status === SESSION_STATUS.expired) {
            ctx.stderr.write(
              `attendance backfill: session ${id} (${result.callCid}) is expired: it passed Stream's ${BACKFILL_MAX_DAYS}-day retention unarchived, so Stream no longer holds its detail\n`,
            );
            return 1;
          }
          ctx.stdout.write(`already known  ${id}  ${result.callCid}  ${result.status}; nothing changed\n`);
          ctx.stdout.write('backfill: 0 session(s) enqueued\n');
          return 0;
        },
        { stderr: ctx.stderr },
      );
    } finally {
      await stream.close();
    }
  },
};

const BASIS_TEXT: Record<RetentionBasis, string> = {
  ended: 'end',
  started: 'start',
  generated: 'report time',
  listed: 'listing time',
};

function describeSession(s: FoundSession): string {
  if (s.sessionEndedAt) return `${s.callSessionId}  ${s.callType}:${s.callId}  ended ${s.sessionEndedAt.toISOString()}`;
  const retention = s.retentionExpiresAt ? ` (retention from its ${BASIS_TEXT[s.retentionBasis ?? 'listed']}: ${s.retentionExpiresAt.toISOString()})` : '';
  return `${s.callSessionId}  ${s.callType}:${s.callId}  ended unknown${retention}`;
}

function describeIds(ids: UnusableCallStatsRow['ids']): string {
  const parts = [
    ids.callType !== undefined || ids.callId !== undefined ? `call ${ids.callType ?? '?'}:${ids.callId ?? '?'}` : '',
    ids.callSessionId !== undefined ? `session ${ids.callSessionId}` : '',
  ].filter((p) => p !== '');
  return parts.length > 0 ? ` (${parts.join(', ')})` : ' (no ids)';
}
