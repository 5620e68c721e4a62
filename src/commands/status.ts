import { loadConfig } from '../config.ts';
import { SESSION_STATUSES } from '../db/schema.ts';
import { readStatusReport, type StatusReport } from '../health/status-report.ts';
import { AT_RISK_DAYS } from '../policy/retention.ts';
import { booleanOption, wholeNumberOption } from './args.ts';
import { withDatabase } from './database.ts';
import type { Command } from './types.ts';

// Enough to read in a terminal; scripts that want every row ask for more.
const STATUS_LIMIT = { min: 0, max: 10_000, default: 20 } as const;

export const statusCommand: Command = {
  name: 'status',
  summary: "Stream's health, the last sweep, counts by status, retrying, at-risk and dead sessions with their errors",
  usage:
    'status [--json] [--limit <n>]\n\n  --json        one JSON object, for scripts (keys: see the README)\n  --limit <n>   how many retrying, at-risk and dead sessions to list (default 20)',
  options: { json: { type: 'boolean' }, limit: { type: 'string' } },
  async run(values, _positionals, ctx) {
    const limit = wholeNumberOption(values.limit, '--limit', STATUS_LIMIT);
    const json = booleanOption(values.json);
    const config = loadConfig(ctx.env, { requireStreamCredentials: false });
    return withDatabase(
      config,
      async ({ database }) => {
        const report = await readStatusReport(database, limit);
        ctx.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
        return 0;
      },
      { stderr: ctx.stderr },
    );
  },
};

export function formatStatus(report: StatusReport, now: Date = new Date()): string {
  const lines: string[] = [];
  const { stream, sweep } = report;
  const at = (date: Date | null) => (date ? `${date.toISOString()} (${formatAge((now.getTime() - date.getTime()) / 1000)} ago)` : 'never');
  lines.push(`stream: ${stream.state}${stream.checkedAt ? `, checked ${at(stream.checkedAt)}` : ' (no replica has talked to Stream yet)'}`);
  if (stream.lastError) lines.push(`  ${stream.lastError}`);
  lines.push(`  last successful call: ${at(stream.lastSuccessAt)}`);
  if (sweep === null) {
    lines.push('last sweep: none yet (serve or worker sweeps call_stats at start)');
  } else {
    const window = `${iso(sweep.window.from)} → ${iso(sweep.window.until)}`;
    if (sweep.inProgress) {
      lines.push(`sweep: in progress since ${at(sweep.startedAt)}, window ${window}, reached ${iso(sweep.position)}`);
    } else {
      lines.push(`last sweep: finished ${at(sweep.lastFinishedAt)}, window ${window}`);
    }
    lines.push(`  rows seen ${sweep.seen}, enqueued ${sweep.enqueued}, unusable ${sweep.unusable} (all time ${sweep.unusableTotal})`);
    lines.push(
      `  covered: sessions that ended ${sweep.covered.from ? `${iso(sweep.covered.from)} → ${iso(sweep.covered.until)}` : 'none yet (no sweep has finished)'}`,
    );
    if (sweep.lastError) lines.push(`  last error: ${sweep.lastError}`);
  }
  lines.push('');
  lines.push('sessions by status:');
  for (const status of SESSION_STATUSES) lines.push(`  ${status.padEnd(9)} ${String(report.counts[status]).padStart(8)}`);
  lines.push('');
  lines.push(`oldest due session waiting: ${report.oldestDueSeconds === null ? 'none' : formatAge(report.oldestDueSeconds)}`);
  lines.push(
    `oldest pending since:       ${report.oldestPendingSince ? `${report.oldestPendingSince.toISOString()} (${formatAge((now.getTime() - report.oldestPendingSince.getTime()) / 1000)} ago)` : 'none'}`,
  );
  lines.push('');
  lines.push(`retrying: ${report.retryingCount}`);
  for (const s of report.retrying) {
    lines.push(`  ${s.callSessionId}  ${s.callCid}  attempts ${s.attempts}  next ${s.nextAttemptAt.toISOString()}  ${s.lastError ?? '(no error recorded)'}`);
  }
  lines.push(`at risk (not complete, expiring within ${AT_RISK_DAYS} days): ${report.atRiskCount}`);
  for (const s of report.atRisk) {
    lines.push(
      `  ${s.callSessionId}  ${s.callCid}  ${s.status}  expires ${s.retentionExpiresAt.toISOString()}${s.lastError ? `  last error: ${s.lastError}` : ''}`,
    );
  }
  lines.push(`dead: ${report.deadCount}${report.deadCount > 0 ? " (retry with 'attendance redrive')" : ''}`);
  for (const s of report.dead) {
    lines.push(`  ${s.callSessionId}  ${s.callCid}  attempts ${s.attempts}  ${s.lastError ?? '(no error recorded)'}`);
  }
  const { rollups } = report;
  lines.push(
    `rollups behind their rows: ${rollups.pending} sessions (${rollups.pending - rollups.waiting} being archived, ${rollups.waiting} waiting for the rollup sweep${
      rollups.oldestWaitingSeconds === null ? '' : `, oldest ${formatAge(rollups.oldestWaitingSeconds)}`
    })`,
  );
  return `${lines.join('\n')}\n`;
}

function iso(date: Date | null): string {
  return date ? date.toISOString() : '?';
}

function formatAge(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} days`;
}
