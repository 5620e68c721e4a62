import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { createCursorScope, CursorError, encodeArchiveCursor, parseArchiveCursor, type ArchiveCursor } from '../archive/cursor.ts';
import { unevaluableFilter } from '../archive/filter-sql.ts';
import { readParticipantPage } from '../archive/page.ts';
import { findArchivedSession, type ArchivedSession } from '../archive/session.ts';
import { summarizeParticipantSessions } from '../archive/summary.ts';
import { apiErrorBody, STREAM_ERROR_CODES } from '../stream/api-error.ts';
import { FilterError, parseFilterConditionsQuery, type ParticipantFilter } from '../stream/filters.ts';
import { isValidServerToken, streamAuthProblem } from '../stream/token.ts';
import { SESSION_STATUS } from '../db/schema.ts';
import { isDataError } from '../db/sqlstate.ts';
import { AppError } from '../errors.ts';
import type { AppDeps } from './app.ts';

/**
 * The archive in Stream's own API: QueryCallParticipantSessions (docs/stream-api.md §1–2) answered from
 * participant_sessions, with Stream's `session` object and any top-level field it added from
 * stream_responses, so an SDK pointed here with `basePath` reads what the archive holds, and
 * `/summary` on the same path gives the filtered subset's totals that Stream's API cannot.
 */

/** The page size when `limit` is absent or 0; Stream documents none, its docs example uses 25 (docs/stream-api.md §1). */
export const DEFAULT_PAGE_LIMIT = 25;
export const MAX_PAGE_LIMIT = 100;

const BASE_PATH = '/api/v2/video/call/:type/:id/session/:session/participant_sessions';

interface ArchiveRoute {
  Params: { type: string; id: string; session: string };
  Querystring: Record<string, unknown>;
}

/** Says where a session's archive stands on every answer about it (see docs/sql.md). */
export const ARCHIVE_STATUS_HEADER = 'x-attendance-archive-status';

/** A 4xx this route answers in Stream's APIError shape; `streamCode` is Stream's numeric error code. */
class ArchiveRequestError extends AppError {
  readonly status: number;
  readonly streamCode: number;
  readonly field: string | undefined;
  readonly unrecoverable: boolean | undefined;
  readonly headers: Record<string, string>;

  constructor(status: number, code: number, message: string, field?: string, extra: { unrecoverable?: boolean; headers?: Record<string, string> } = {}) {
    super('ARCHIVE_REQUEST_REFUSED', message);
    this.status = status;
    this.streamCode = code;
    this.field = field;
    this.unrecoverable = extra.unrecoverable;
    this.headers = extra.headers ?? {};
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
        .headers(error.headers)
        .send(
          apiErrorBody(error.status, error.streamCode, error.message, { startedAt: startedAt(request), exceptionFields, unrecoverable: error.unrecoverable }),
        );
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
    const filters = parseFilter(request);
    const limit = parseLimit(request.query.limit);
    const scope = createCursorScope(request.params.session, filters);
    const cursor = parseCursorParams(request.query, scope);
    if (cursor) refuseNul({ [cursor.direction]: cursor.key });
    const session = await findSession(request);
    verifyWhole(session);
    const page = await readParticipantPage(db, { callSessionId: session.callSessionId, filters, limit, cursor });

    // Written as text: the entries' nanosecond timestamps exceed 2^53 and must not pass through a
    // JS number (JSON.stringify would print 1775658215879421674 as …879421700). Stream's stored
    // answer (`session`, fields Stream adds) comes as jsonb text, spliced in whole for the same reason.
    let body = `${sessionFieldsJson(session)}${envelopeMembers(session)},"participants_sessions":[${page.entries.map((e) => e.json).join(',')}]`;
    const first = page.entries[0];
    const last = page.entries.at(-1);
    if (last && page.hasAfter) body += `,"next":${JSON.stringify(encodeArchiveCursor({ direction: 'next', key: last.userSessionId, scope }))}`;
    if (first && page.hasBefore) body += `,"prev":${JSON.stringify(encodeArchiveCursor({ direction: 'prev', key: first.userSessionId, scope }))}`;
    body += `,"duration":${Math.round(elapsedMs(request))}}`;
    return reply.header(ARCHIVE_STATUS_HEADER, session.status).type('application/json; charset=utf-8').send(body);
  });

  app.get<ArchiveRoute>(`${BASE_PATH}/summary`, async (request, reply) => {
    await verifyStreamAuth(request, deps.config.stream.apiKey, secrets);
    refuseNul(request.params);
    const filters = parseFilter(request);
    const session = await findSession(request);
    const summary = await summarizeParticipantSessions(db, { callSessionId: session.callSessionId, filters });
    // The summary answers whatever is held, and says how much that is: archive_status, and the
    // rows held next to Stream's totals (null while the worker has not read them).
    const { first_joined_at, last_left_at, ...counts } = summary;
    const body =
      `${sessionFieldsJson(session)},"archive_status":${JSON.stringify(session.status)},` +
      `"archive_complete":${session.whole},"archived_participant_sessions":${session.archivedParticipantSessions},` +
      `${JSON.stringify(counts).slice(1, -1)},"first_joined_at":${first_joined_at ?? 'null'},"last_left_at":${last_left_at ?? 'null'},` +
      `"duration":${Math.round(elapsedMs(request))}}`;
    return reply.header(ARCHIVE_STATUS_HEADER, session.status).type('application/json; charset=utf-8').send(body);
  });
};

/**
 * Stream's totals always describe the whole session (docs/stream-api.md §1), and an SDK user reads the
 * list as all of it: the Go and Python SDKs drop headers and unknown fields, so a 200 for a
 * partial archive would be taken as whole. Until the rows are verified against Stream's total,
 * the list answers as Stream does while its analytics are not ready: 404, code 16, which code
 * written against Stream already treats as "try again later", here with a message, an
 * exception_fields entry and a header saying where the archive stands. An expired session (its
 * detail gone at Stream before it was archived in full) will never be whole: unrecoverable.
 */
function verifyWhole(session: ArchivedSession): void {
  if (session.whole) return;
  const held =
    session.totalParticipantSessions === null
      ? `${session.archivedParticipantSessions} participant sessions archived, Stream's total not read yet`
      : `${session.archivedParticipantSessions} of ${session.totalParticipantSessions} participant sessions archived`;
  const message = `call session archive is not complete (status ${session.status}: ${held}); ${
    session.status === SESSION_STATUS.expired
      ? "Stream's detail expired before the archive was complete; the rows held are in participant_sessions"
      : 'try again once it is complete'
  }`;
  throw new ArchiveRequestError(404, STREAM_ERROR_CODES.notFound, message, 'session', {
    unrecoverable: session.status === SESSION_STATUS.expired,
    headers: { [ARCHIVE_STATUS_HEADER]: session.status },
  });
}

/** The response's opening: ids and Stream's whole-session totals (null only on /summary, before the worker read them). */
function sessionFieldsJson(session: ArchivedSession): string {
  return (
    `{"call_type":${JSON.stringify(session.callType)},"call_id":${JSON.stringify(session.callId)},` +
    `"call_session_id":${JSON.stringify(session.callSessionId)},` +
    `"total_participant_sessions":${session.totalParticipantSessions ?? 'null'},"total_participant_duration":${session.totalParticipantDuration ?? 'null'}`
  );
}

/**
 * The stored answer's own fields as members to follow the opening, or nothing when none was
 * stored. The archive's fields were taken out in SQL (COMPUTED_RESPONSE_FIELDS), so no key repeats.
 */
function envelopeMembers(session: ArchivedSession): string {
  const json = session.envelopeJson;
  if (json === null || json === '{}') return '';
  return `,${json.slice(1, -1)}`;
}

/**
 * Postgres text cannot hold U+0000, so an id or value carrying one would fail its query with a 500;
 * it names nothing the archive can hold, so it is refused as input (400 in Stream's shape),
 * naming where it was found. Walks strings, arrays and plain objects.
 */
function refuseNul(values: Record<string, unknown>): void {
  for (const [field, value] of Object.entries(values)) {
    if (holdsNul(value))
      throw new ArchiveRequestError(400, STREAM_ERROR_CODES.input, `${field} holds a NUL character (U+0000), which no stored value can contain`, field);
  }
}

function holdsNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (Array.isArray(value)) return value.some(holdsNul);
  if (value !== null && typeof value === 'object') return Object.entries(value).some(([key, inner]) => key.includes('\u0000') || holdsNul(inner));
  return false;
}

/**
 * Stream's server-side auth (docs/stream-api.md §3): `api_key` in the query, a server JWT (HS256 under
 * the current API secret only) bare in Authorization, `stream-auth-type: jwt`. Messages never
 * echo the token or the key.
 */
async function verifyStreamAuth(request: FastifyRequest<ArchiveRoute>, apiKey: string, secrets: readonly string[]): Promise<void> {
  const problem = await streamAuthProblem(
    { apiKey: request.query.api_key, authType: request.headers['stream-auth-type'], authorization: request.headers.authorization },
    { apiKey, verifyToken: (token) => isValidServerToken(token, secrets) },
  );
  if (problem !== undefined) throw new ArchiveRequestError(401, STREAM_ERROR_CODES.auth, problem);
}

/**
 * filter_conditions in either encoding (JSON, or the bracket form), read from the raw query string
 * by the same parser as the simulator's; then refused when it names a field the archive cannot
 * evaluate exactly (archive/filter-sql.ts), since answering it would be a wrong 200.
 */
function parseFilter(request: FastifyRequest<ArchiveRoute>): ParticipantFilter[] {
  const url = request.raw.url ?? '';
  const q = url.indexOf('?');
  let filters: ParticipantFilter[];
  try {
    filters = parseFilterConditionsQuery(new URLSearchParams(q === -1 ? '' : url.slice(q + 1)));
  } catch (error) {
    if (error instanceof FilterError) throw new ArchiveRequestError(400, STREAM_ERROR_CODES.input, error.message, 'filter_conditions');
    throw error;
  }
  refuseNul({ filter_conditions: filters });
  const refused = unevaluableFilter(filters);
  if (refused) {
    throw new ArchiveRequestError(
      400,
      STREAM_ERROR_CODES.input,
      `filter field "${refused.field}" cannot be evaluated by the archive: ${refused.why}`,
      'filter_conditions',
    );
  }
  return filters;
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
  for (const [name, value] of [
    ['next', next],
    ['prev', prev],
  ] as const) {
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
