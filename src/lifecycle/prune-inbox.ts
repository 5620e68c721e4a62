import type pg from 'pg';

/**
 * Deletes webhook_events received before now() − `days`, at most `limit` rows: one statement, so
 * one short transaction of its own (autocommit), never holding a lock intake waits on.
 *
 * Driven by webhook_events_received_idx: the oldest rows first, so each batch is an index range
 * scan from the start of the table's history and stops after `limit` rows. Intake only ever
 * inserts new rows (`on conflict (webhook_id) do nothing`), so the rows deleted here are never the
 * ones it locks; SKIP LOCKED only keeps two pruners (a `prune` command beside the service) from
 * queueing on each other's batch. Returns how many rows went.
 */
const PRUNE_INBOX_BATCH_SQL = `
  delete from webhook_events
   where webhook_id in (
     select webhook_id from webhook_events
      where received_at < now() - make_interval(days => $1)
      order by received_at
      limit $2
      for update skip locked)`;

export async function pruneInboxBatch(client: pg.ClientBase, days: number, limit: number): Promise<number> {
  const result = await client.query(PRUNE_INBOX_BATCH_SQL, [days, limit]);
  return result.rowCount ?? 0;
}
