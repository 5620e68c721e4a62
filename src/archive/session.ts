import { and, eq, sql } from '../db/drizzle.ts';
import type { Db } from '../db/client.ts';
import { callSessions, SESSION_STATUS, streamResponses, type SessionStatus } from '../db/schema.ts';

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
  /**
   * The fields of Stream's last stored answer (stream_responses) that the archive does not compute
   * itself (`session`, and any top-level field Stream adds), as a JSON object's text printed by
   * jsonb, so integers come digit for digit; null when no answer was stored (a session archived
   * before stream_responses existed, or not yet through its last page).
   */
  readonly envelopeJson: string | null;
}

/**
 * Fields of the answer the archive computes (its ids, Stream's totals from call_sessions, its own
 * entries, cursors and duration): they win over the stored answer's, which are left out.
 */
const COMPUTED_RESPONSE_FIELDS = [
  'call_type',
  'call_id',
  'call_session_id',
  'total_participant_sessions',
  'total_participant_duration',
  'participants_sessions',
  'next',
  'prev',
  'duration',
] as const;

const COMPUTED_FIELDS_SQL = sql.raw(`array[${COMPUTED_RESPONSE_FIELDS.map((f) => `'${f}'`).join(', ')}]::text[]`);

// Statuses of a session being archived (again): rows held while it runs may already be verified.
const REARCHIVING: readonly SessionStatus[] = [SESSION_STATUS.pending, SESSION_STATUS.running, SESSION_STATUS.retrying];

/** The call session if the archive knows it under this call, else undefined (the route's 404). */
export async function findArchivedSession(db: Db, ids: { callType: string; callId: string; callSessionId: string }): Promise<ArchivedSession | undefined> {
  const [session] = await db
    .select({
      status: callSessions.status,
      totalParticipantSessions: callSessions.totalParticipantSessions,
      totalParticipantDuration: callSessions.totalParticipantDuration,
      archivedParticipantSessions: callSessions.archivedParticipantSessions,
      archivedAt: callSessions.archivedAt,
      envelopeJson: sql<
        string | null
      >`case when jsonb_typeof(${streamResponses.response}) = 'object' then (${streamResponses.response} - ${COMPUTED_FIELDS_SQL})::text end`,
    })
    .from(callSessions)
    .leftJoin(streamResponses, eq(streamResponses.callSessionId, callSessions.callSessionId))
    .where(and(eq(callSessions.callSessionId, ids.callSessionId), eq(callSessions.callType, ids.callType), eq(callSessions.callId, ids.callId)));
  if (!session) return undefined;
  const totalsKnown = session.totalParticipantSessions !== null && session.totalParticipantDuration !== null;
  const verifiedBefore =
    session.archivedAt !== null && REARCHIVING.includes(session.status) && session.archivedParticipantSessions === session.totalParticipantSessions;
  return {
    ...ids,
    status: session.status,
    totalParticipantSessions: session.totalParticipantSessions,
    totalParticipantDuration: session.totalParticipantDuration,
    archivedParticipantSessions: session.archivedParticipantSessions,
    whole: totalsKnown && (session.status === SESSION_STATUS.complete || verifiedBefore),
    envelopeJson: session.envelopeJson,
  };
}
