import { loadConfig } from '../config.ts';
import { redriveDeadSessions } from '../queue/redrive.ts';
import { textOption } from './args.ts';
import { withDatabase } from './database.ts';
import type { Command } from './types.ts';

export const redriveCommand: Command = {
  name: 'redrive',
  summary: 'move dead sessions back to pending (attempts reset)',
  usage: 'redrive [--session <call_session_id>]\n\n  --session <id>   only this session (it must be dead)',
  options: { session: { type: 'string' } },
  async run(values, _positionals, ctx) {
    const callSessionId = textOption(values.session, '--session');
    const config = loadConfig(ctx.env, { requireStreamCredentials: false });
    return withDatabase(
      config,
      async ({ database }) => {
        const { redriven } = await redriveDeadSessions(database.pool, { callSessionId });
        if (callSessionId !== undefined && redriven.length === 0) {
          const { rows } = await database.pool.query<{ status: string }>('select status from call_sessions where call_session_id = $1', [callSessionId]);
          const reason = rows[0] ? `it is ${rows[0].status}, not dead` : 'no such session';
          ctx.stderr.write(`attendance redrive: session ${JSON.stringify(callSessionId)} not moved: ${reason}\n`);
          return 1;
        }
        ctx.stdout.write(`redriven: ${redriven.length} session(s) back to pending\n`);
        for (const id of redriven) ctx.stdout.write(`  ${id}\n`);
        return 0;
      },
      { stderr: ctx.stderr },
    );
  },
};
