import { and, count, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { callSessions, participantSessions } from '../db/schema.ts';

export interface ArchivedSession {
  readonly callType: string;
  readonly callId: string;
  readonly callSessionId: string;
  /** For the whole session whatever the filter: Stream's totals, or what the archive holds when Stream's are not known yet. */
  readonly totalParticipantSessions: number;
  readonly totalParticipantDuration: number;
}

/** The call session if the archive knows it under this call, else undefined (the route's 404). */
export async function findArchivedSession(
  db: Db,
  ids: { callType: string; callId: string; callSessionId: string },
): Promise<ArchivedSession | undefined> {
  const [session] = await db
    .select({
      totalParticipantSessions: callSessions.totalParticipantSessions,
      totalParticipantDuration: callSessions.totalParticipantDuration,
    })
    .from(callSessions)
    .where(
      and(eq(callSessions.callSessionId, ids.callSessionId), eq(callSessions.callType, ids.callType), eq(callSessions.callId, ids.callId)),
    );
  if (!session) return undefined;
  let { totalParticipantSessions, totalParticipantDuration } = session;
  if (totalParticipantSessions === null || totalParticipantDuration === null) {
    const [held] = await db
      .select({ rows: count(), seconds: sql<number>`coalesce(sum(${participantSessions.durationInSeconds}), 0)::bigint` })
      .from(participantSessions)
      .where(eq(participantSessions.callSessionId, ids.callSessionId));
    totalParticipantSessions ??= held?.rows ?? 0;
    totalParticipantDuration ??= Number(held?.seconds ?? 0);
  }
  return { ...ids, totalParticipantSessions, totalParticipantDuration };
}
