import { loadConfig } from '../config.ts';
import { inboxRetentionDays, pruningEnabled, runPrune } from '../lifecycle/prune.ts';
import { withDatabase } from './database.ts';
import type { Command } from './types.ts';

export const pruneCommand: Command = {
  name: 'prune',
  summary: 'delete inbox events and archived attendance past their retention now (the service also does it hourly)',
  usage:
    'prune\n\n' +
    '  Deletes webhook_events older than WEBHOOK_EVENTS_RETENTION_DAYS (default 30; 0 keeps them) and, when\n' +
    '  ARCHIVE_RETENTION_DAYS is set, the participant_sessions and stream_responses of sessions that ended\n' +
    '  longer ago (their call_sessions rows stay). Prints how many rows went.',
  options: {},
  async run(_values, _positionals, ctx) {
    const config = loadConfig(ctx.env, { requireStreamCredentials: false });
    const retention = config.retention;
    if (!pruningEnabled(retention)) {
      ctx.stdout.write('prune: nothing to do: WEBHOOK_EVENTS_RETENTION_DAYS is 0 and ARCHIVE_RETENTION_DAYS is unset (keep everything)\n');
      return 0;
    }
    return withDatabase(
      config,
      async ({ database }) => {
        const result = await runPrune(database, { retention, signal: ctx.stopSignal });
        if (!result.ran) {
          ctx.stderr.write('attendance prune: another process (a serve or worker replica) is pruning right now: nothing done, try again later\n');
          return 1;
        }
        ctx.stdout.write(`webhook_events:        ${result.webhookEvents} deleted (received more than ${inboxRetentionDays(retention)} days ago)\n`);
        if (retention.archiveDays !== undefined) {
          ctx.stdout.write(`participant_sessions:  ${result.participantSessions} deleted (sessions that ended more than ${retention.archiveDays} days ago)\n`);
          ctx.stdout.write(`stream_responses:      ${result.streamResponses} deleted\n`);
          ctx.stdout.write(`call_sessions:         ${result.callSessions} kept with archived_participant_sessions recounted\n`);
        }
        if (result.interrupted) {
          ctx.stderr.write('attendance prune: stopped before the end; what was deleted stays deleted, run it again to finish\n');
          return 1;
        }
        return 0;
      },
      { stderr: ctx.stderr, max: 1 },
    );
  },
};
