import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { createCursorScope, CursorError, encodeArchiveCursor, parseArchiveCursor, type ArchiveCursor } from '../archive/cursor.ts';
import { readParticipantPage } from '../archive/page.ts';
import { findArchivedSession, type ArchivedSession } from '../archive/session.ts';
import { summarizeParticipantSessions } from '../archive/summary.ts';
import { apiErrorBody, STREAM_ERROR_CODES } from '../stream/api-error.ts';
import { FilterError, parseParticipantFilter, type ParticipantFilter } from '../stream/filters.ts';
import { isValidServerToken } from '../stream/token.ts';
import { isDataError } from '../db/sqlstate.ts';
import type { AppDeps } from './app.ts';

/**
 * The archive in Stream's own API: QueryCallParticipantSessions (stream-api.md §1–2) answered from
 * participant_sessions, so an SDK pointed here with `basePath` reads what the archive holds, and
 * `/summary` on the same path gives the filtered subset's totals that Stream's API cannot.
 */

/** The page size when `limit` is absent or 0; Stream documents none, its docs example uses 25 (stream-api.md §1). */
export const DEFAULT_PAGE_LIMIT = 25;
export const MAX_PAGE_LIMIT = 100;

const BASE_PATH = '/api/v2/video/call/:type/:id/session/:session/participant_sessions';

interface ArchiveRoute {
  Params: { type: string; id: string; session: string };
  Querystring: Record<string, unknown>;
}

/** A 4xx this route answers in Stream's APIError shape. */
class ArchiveRequestError extends Error {
  readonly status: number;
  readonly code: number;
  readonly field: string | undefined;

  constructor(status: number, code: number, message: string, field?: string) {
    super(message);
    this.name = 'ArchiveRequestError';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export const archivePlugin: FastifyPluginAsync<AppDeps> = async (app, deps) => {
  const { db } = deps.database;
  // The current secret alone: STREAM_PREVIOUS_API_SECRETS keeps webhooks verifying while Stream
  // switches over, but a secret rotated out (perhaps because it leaked) must not read the archive.
  const secrets = [deps.config.stream.apiSecret];
  // Stream's `duration` counts from the request's arrival.
  const started = new WeakMap<FastifyRequest, number>();
  const elapsedMs = (request: FastifyRequest) => performance.now() - (started.get(request) ?? performance.now());
  const startedAt = (request: FastifyRequest) => started.get(request);

  app.addHook('onRequest', async (request) => {
    started.set(request, performance.now());
  });

  // Scoped to this plugin: SDKs parse Stream's error body, not the app's generic one.
  app.setErrorHandler((error: Error & { statusCode?: number }, request, reply) => {
    if (error instanceof ArchiveRequestError) {
      const exceptionFields = error.field ? { [error.field]: error.message } : undefined;
      return reply
        .code(error.status)
        .send(apiErrorBody(error.status, error.code, error.message, { startedAt: startedAt(request), exceptionFields }));
    }
    // A value Postgres refuses for its content (SQLSTATE class 22, e.g. a NUL in text) is the
    // caller's input, not our failure: refuseNul catches the known paths first; this is the backstop.
    const dataError = isDataError(error);
    const status = dataError ? 400 : error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status < 500) {
      return reply.code(status).send(apiErrorBody(status, STREAM_ERROR_CODES.input, error.message, { startedAt: startedAt(request) }));
    }
    request.log.error({ err: error }, 'archive request failed');
    return reply.code(500).send(apiErrorBody(500, STREAM_ERROR_CODES.internal, 'internal error', { startedAt: startedAt(request) }));
  });

  async function findSession(request: FastifyRequest<ArchiveRoute>): Promise<ArchivedSession> {
    const session = await findArchivedSession(db, {
      callType: request.params.type,
      callId: request.params.id,
      callSessionId: request.params.session,
    });
    if (!session) throw new ArchiveRequestError(404, STREAM_ERROR_CODES.notFound, 'call session not found');
    return session;
  }

  // Auth before anything else, so an unauthenticated caller learns nothing about the archive;
  // then the input; the session last.
  app.get<ArchiveRoute>(BASE_PATH, async (request, reply) => {
    await verifyStreamAuth(request, deps.config.stream.apiKey, secrets);
    refuseNul(request.params);
    const filters = parseFilter(request.query.filter_conditions);
    const limit = parseLimit(request.query.limit);
    const scope = createCursorScope(request.params.session, filters);
    const cursor = parseCursorParams(request.query, scope);
    if (cursor) refuseNul({ [cursor.direction]: cursor.key });
    const session = await findSession(request);
    const page = await readParticipantPage(db, { callSessionId: session.callSessionId, filters, limit, cursor });

    const body: Record<string, unknown> = { ...sessionFields(session), participants_sessions: page.entries };
    const first = page.entries[0];
    const last = page.entries.at(-1);
    if (last && page.hasAfter) body.next = encodeArchiveCursor({ direction: 'next', key: last.user_session_id, scope });
    if (first && page.hasBefore) body.prev = encodeArchiveCursor({ direction: 'prev', key: first.user_session_id, scope });
    body.duration = Math.round(elapsedMs(request));
    return reply.send(body);
  });

  app.get<ArchiveRoute>(`${BASE_PATH}/summary`, async (request, reply) => {
    await verifyStreamAuth(request, deps.config.stream.apiKey, secrets);
    refuseNul(request.params);
    const filters = parseFilter(request.query.filter_conditions);
    const session = await findSession(request);
    const summary = await summarizeParticipantSessions(db, { callSessionId: session.callSessionId, filters });
    return reply.send({ ...sessionFields(session), ...summary, duration: Math.round(elapsedMs(request)) });
  });
};

function sessionFields(session: ArchivedSession) {
  return {
    call_type: session.callType,
    call_id: session.callId,
    call_session_id: session.callSessionId,
    total_participant_sessions: session.totalParticipantSessions,
    total_participant_duration: session.totalParticipantDuration,
  };
}

/**
 * Postgres text cannot hold U+0000, so an id or value carrying one would fail its query with a 500;
 * it names nothing the archive can hold, so it is refused as input (400 in Stream's shape),
 * naming where it was found. Walks strings, arrays and plain objects.
 */
function refuseNul(values: Record<string, unknown>): void {
  for (const [field, value] of Object.entries(values)) {
    if (holdsNul(value)) throw new ArchiveRequestError(400, STREAM_ERROR_CODES.input, `${field} holds a NUL character (U+0000), which no stored value can contain`, field);
  }
}

function holdsNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (Array.isArray(value)) return value.some(holdsNul);
  if (value !== null && typeof value === 'object') return Object.entries(value).some(([key, inner]) => key.includes('\u0000') || holdsNul(inner));
  return false;
}

/**
 * Stream's server-side auth (stream-api.md §3): `api_key` in the query, a server JWT (HS256 under
 * the current API secret only) bare in Authorization, `stream-auth-type: jwt`. Messages never
 * echo the token or the key.
 */
async function verifyStreamAuth(request: FastifyRequest<ArchiveRoute>, apiKey: string, secrets: readonly string[]): Promise<void> {
  const fail = (message: string) => new ArchiveRequestError(401, STREAM_ERROR_CODES.auth, message);
  const key = request.query.api_key;
  if (typeof key !== 'string' || key === '') throw fail('api_key query parameter is missing');
  if (apiKey === '' || key !== apiKey) throw fail('api_key is not valid');
  const authType = request.headers['stream-auth-type'];
  if (typeof authType !== 'string' || authType.toLowerCase() !== 'jwt') throw fail('Stream-Auth-Type header must be "jwt"');
  const token = request.headers.authorization;
  if (!token) throw fail('Authorization header is missing');
  if (!(await isValidServerToken(token, secrets))) throw fail('JWT token is not valid');
}

function parseFilter(raw: unknown): ParticipantFilter[] {
  if (raw !== undefined && typeof raw !== 'string') {
    throw new ArchiveRequestError(400, STREAM_ERROR_CODES.input, 'filter_conditions must be given once, as URL-encoded JSON', 'filter_conditions');
  }
  try {
    const filters = parseParticipantFilter(raw);
    refuseNul({ filter_conditions: filters });
    return filters;
  } catch (error) {
    if (error instanceof FilterError) throw new ArchiveRequestError(400, STREAM_ERROR_CODES.input, error.message, 'filter_conditions');
    throw error;
  }
}

function parseLimit(raw: unknown): number {
  if (raw === undefined || raw === '') return DEFAULT_PAGE_LIMIT;
  if (typeof raw !== 'string' || !/^\d{1,4}$/.test(raw) || Number(raw) > MAX_PAGE_LIMIT) {
    throw new ArchiveRequestError(400, STREAM_ERROR_CODES.input, `limit must be a whole number from 0 to ${MAX_PAGE_LIMIT}`, 'limit');
  }
  // 0 is what clients that always send the field send for "unset"; the simulator reads it the same way.
  return Number(raw) === 0 ? DEFAULT_PAGE_LIMIT : Number(raw);
}

function parseCursorParams(query: Record<string, unknown>, scope: string): ArchiveCursor | undefined {
  const next = query.next;
  const prev = query.prev;
  for (const [name, value] of [['next', next], ['prev', prev]] as const) {
    if (value !== undefined && typeof value !== 'string') {
      throw new ArchiveRequestError(400, STREAM_ERROR_CODES.input, `${name} must be given once`, name);
    }
  }
  // An empty cursor is how some clients say "first page" (and how Stream may end a list).
  const nextRaw = next === '' ? undefined : (next as string | undefined);
  const prevRaw = prev === '' ? undefined : (prev as string | undefined);
  if (nextRaw !== undefined && prevRaw !== undefined) {
    throw new ArchiveRequestError(400, STREAM_ERROR_CODES.input, 'pass either next or prev, not both');
  }
  const direction = prevRaw !== undefined ? 'prev' : 'next';
  const raw = nextRaw ?? prevRaw;
  if (raw === undefined) return undefined;
  try {
    return parseArchiveCursor(raw, { direction, scope });
  } catch (error) {
    if (error instanceof CursorError) throw new ArchiveRequestError(400, STREAM_ERROR_CODES.input, error.message, direction);
    throw error;
  }
}
