import { loadConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import { SESSION_STATUSES } from '../db/schema.ts';
import { AT_RISK_DAYS, readQueueStats, type QueueStats } from '../queue/stats.ts';
import { withDatabase } from './database.ts';
import type { Command } from './types.ts';

export const statusCommand: Command = {
  name: 'status',
  summary: 'counts by status, oldest pending, sessions at risk of expiry, dead sessions with their errors',
  usage: 'status [--json] [--limit <n>]\n\n  --json        one JSON object, for scripts\n  --limit <n>   how many at-risk and dead sessions to list (default 20)',
  options: { json: { type: 'boolean' }, limit: { type: 'string' } },
  async run(values, _positionals, ctx) {
    const config = loadConfig(ctx.env, { requireStreamCredentials: false });
    const limit = values.limit === undefined ? 20 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 0 || limit > 10_000) {
      throw new UsageError(`--limit must be a whole number from 0 to 10000 (got ${JSON.stringify(values.limit)})`);
    }
    return withDatabase(config, async ({ database }) => {
      const stats = await readQueueStats(database.pool, { listLimit: limit });
      ctx.stdout.write(values.json ? `${JSON.stringify(stats, null, 2)}\n` : formatStatus(stats));
      return 0;
    });
  },
};

export function formatStatus(stats: QueueStats, now: Date = new Date()): string {
  const lines: string[] = ['sessions by status:'];
  for (const status of SESSION_STATUSES) lines.push(`  ${status.padEnd(9)} ${String(stats.counts[status]).padStart(8)}`);
  lines.push('');
  lines.push(`oldest due session waiting: ${stats.oldestDueSeconds === null ? 'none' : formatAge(stats.oldestDueSeconds)}`);
  lines.push(
    `oldest pending since:       ${stats.oldestPendingSince ? `${stats.oldestPendingSince.toISOString()} (${formatAge((now.getTime() - stats.oldestPendingSince.getTime()) / 1000)} ago)` : 'none'}`,
  );
  lines.push('');
  lines.push(`at risk (not complete, expiring within ${AT_RISK_DAYS} days): ${stats.atRiskCount}`);
  for (const s of stats.atRisk) {
    lines.push(`  ${s.callSessionId}  ${s.callCid}  ${s.status}  expires ${s.retentionExpiresAt.toISOString()}${s.lastError ? `  last error: ${s.lastError}` : ''}`);
  }
  lines.push(`dead: ${stats.deadCount}${stats.deadCount > 0 ? " (retry with 'attendance redrive')" : ''}`);
  for (const s of stats.dead) {
    lines.push(`  ${s.callSessionId}  ${s.callCid}  attempts ${s.attempts}  ${s.lastError ?? '(no error recorded)'}`);
  }
  return `${lines.join('\n')}\n`;
}

function formatAge(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} days`;
}
