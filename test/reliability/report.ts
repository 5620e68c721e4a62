import type { FaultRunReport } from './fault-run.ts';

/** The run's figures as plain text, for the test log, `npm run chaos` and docs/reliability.md. */
export function formatFaultReport(report: FaultRunReport): string {
  const api = report.api;
  const status = (codes: string[]) => codes.reduce((sum, code) => sum + (api.byStatus[code] ?? 0), 0);
  const d = report.deliveries;
  const lines = [
    `fault run: ${report.sessions} sessions, ${report.entries} entries, ${report.check.rows} rows archived, settled=${report.settled} in ${(report.archiveMs / 1000).toFixed(1)} s (whole run ${(report.elapsedMs / 1000).toFixed(1)} s)`,
    `  statuses: ${JSON.stringify(report.check.statuses)}; differences from Stream: ${report.check.problems.length}`,
    `  webhooks: ${d.webhooks} ids, ${d.deliveries} deliveries, ${d.attempts} attempts, ${d.retried} retried, ${d.acknowledged} acknowledged, ${d.lost} given up, ${d.eventsLost} events lost entirely; acknowledged but not stored: ${report.ackedNotStored}`,
    `  API: ${api.requests} requests (a fault-free run needs ${report.minimumPageRequests} participant_sessions pages); 429: ${status(['429'])}, 5xx: ${status(['500', '502', '503'])}, faults injected ${JSON.stringify(api.faults)}`,
    `  service: ${report.restarts} SIGKILL restarts, ${report.terminatedBackends} database backends terminated, final SIGTERM exit ${report.finalExit}`,
    `  from the logs: ${Object.entries(report.fromLogs)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `  secrets in logs: ${report.secretLeaks.length === 0 ? 'none' : report.secretLeaks.join('; ')}`,
  ];
  for (const problem of report.check.problems) lines.push(`  ! ${problem}`);
  return lines.join('\n');
}
