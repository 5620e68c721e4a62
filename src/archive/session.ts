import { and, eq } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { callSessions, type SessionStatus } from '../db/schema.ts';

export interface ArchivedSession {
  readonly callType: string;
  readonly callId: string;
  readonly callSessionId: string;
  readonly status: SessionStatus;
  /** Stream's totals for the whole session, as its last page reported them; null until the worker has read one. */
  readonly totalParticipantSessions: number | null;
  readonly totalParticipantDuration: number | null;
  /** Rows held, as counted when the last run ended. */
  readonly archivedParticipantSessions: number;
  /**
   * The rows held are every entry of the session, verified against Stream's total: the session is
   * complete, or it was verified complete before and is being archived again (upserts only add or
   * refresh rows, so a verified set stays whole while the run goes on).
   */
  readonly whole: boolean;
}

/** The call session if the archive knows it under this call, else undefined (the route's 404). */
export async function findArchivedSession(
  db: Db,
  ids: { callType: string; callId: string; callSessionId: string },
): Promise<ArchivedSession | undefined> {
  const [session] = await db
    .select({
      status: callSessions.status,
      totalParticipantSessions: callSessions.totalParticipantSessions,
      totalParticipantDuration: callSessions.totalParticipantDuration,
      archivedParticipantSessions: callSessions.archivedParticipantSessions,
      archivedAt: callSessions.archivedAt,
    })
    .from(callSessions)
    .where(
      and(eq(callSessions.callSessionId, ids.callSessionId), eq(callSessions.callType, ids.callType), eq(callSessions.callId, ids.callId)),
    );
  if (!session) return undefined;
  const totalsKnown = session.totalParticipantSessions !== null && session.totalParticipantDuration !== null;
  const verifiedBefore =
    session.archivedAt !== null &&
    ['pending', 'running', 'retrying'].includes(session.status) &&
    session.archivedParticipantSessions === session.totalParticipantSessions;
  return {
    ...ids,
    status: session.status,
    totalParticipantSessions: session.totalParticipantSessions,
    totalParticipantDuration: session.totalParticipantDuration,
    archivedParticipantSessions: session.archivedParticipantSessions,
    whole: totalsKnown && (session.status === 'complete' || verifiedBefore),
  };
}
