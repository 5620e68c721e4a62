import { loadConfig } from '../config.ts';
import { forgetUser } from '../lifecycle/forget.ts';
import { booleanOption, requiredTextOption } from './args.ts';
import { withDatabase } from './database.ts';
import type { Command } from './types.ts';

export const forgetCommand: Command = {
  name: 'forget',
  summary: "erase one user's attendance and every stored copy of their id; idempotent; leaves an audit row",
  usage:
    'forget --user <id> [--dry-run]\n\n' +
    '  --user <id>   the Stream user id, exactly (ids are case-sensitive)\n' +
    '  --dry-run     count what would be removed; change nothing\n\n' +
    "  Deletes the user's participant_sessions, recounts call_sessions.archived_participant_sessions of their\n" +
    '  sessions (Stream\'s totals stay as Stream reported them), replaces the id with "[erased]" wherever it is\n' +
    '  a string or key in webhook_events.payload and stream_responses.response, and writes an erasure_log row\n' +
    '  (the SHA-256 of the id, never the id), in one transaction.',
  options: { user: { type: 'string' }, 'dry-run': { type: 'boolean' } },
  async run(values, _positionals, ctx) {
    const userId = requiredTextOption(values.user, '--user', 'id');
    const dryRun = booleanOption(values['dry-run']);
    const config = loadConfig(ctx.env, { requireStreamCredentials: false });
    return withDatabase(
      config,
      async ({ database }) => {
        const client = await database.pool.connect();
        let result;
        try {
          result = await forgetUser(client, userId, { dryRun });
        } finally {
          client.release();
        }
        // The id is not echoed: the output, like the audit row, names the user by digest.
        const line = (table: string, n: number, what: string) => ctx.stdout.write(`  ${table.padEnd(21)} ${n} ${dryRun ? `would be ${what}` : what}\n`);
        ctx.stdout.write(`${dryRun ? 'forget (dry run, nothing changed)' : 'forget'}: user sha256 ${result.userIdSha256}\n`);
        line('participant_sessions', result.participantSessions, 'deleted');
        line('call_sessions', result.callSessions, 'recounted (archived_participant_sessions)');
        line('webhook_events', result.webhookEvents, 'scrubbed');
        line('stream_responses', result.streamResponses, 'scrubbed');
        if (dryRun) ctx.stdout.write('  erasure_log           nothing written (dry run)\n');
        else ctx.stdout.write(`  erasure_log           ${result.logged ? '1 row written' : 'nothing written: nothing of this user was stored'}\n`);
        return 0;
      },
      { stderr: ctx.stderr, max: 1 },
    );
  },
};
