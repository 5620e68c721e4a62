import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { apiErrorBody, STREAM_ERROR_CODES } from '../../src/stream/api-error.ts';
import { isValidServerToken, streamAuthProblem } from '../../src/stream/token.ts';
import { createCallStatsQuery } from './call-stats.ts';
import { createFaultPicker, type FaultDecision, type FaultKind, type FaultPicker, type SimulatorFaults } from './faults.ts';
import type { SimSession } from './generate.ts';
import { queryParticipantSessions, type ParticipantSessionsDeps, type SimResponse } from './participant-sessions.ts';
import { createRateWindows, type RateWindow, type RateWindows } from './rate-windows.ts';
import { createSessionStore, type SessionStore } from './session-store.ts';
import type { MissingFieldStyle, TimestampFormat } from './wire.ts';

export type { SimulatorFaults } from './faults.ts';

export interface SimulatorOptions {
  apiKey: string;
  apiSecret: string;
  /** Defaults to 127.0.0.1 and port 0 (any free port). */
  host?: string;
  port?: number;
  /** Per endpoint, per fixed one-minute window; default 100,000 (effectively off). */
  rateLimitPerMinute?: number;
  /** participant_sessions answers 404 "call session not found" this long after a session's endedAt; default 0. */
  notReadyForMs?: number;
  /** Default 'rfc3339'. */
  timestampFormat?: TimestampFormat;
  /** The last page's `next` (and the first page's `prev`): left out (default) or "". */
  lastPageNext?: 'absent' | 'empty';
  /** Entries without left_at / duration_in_seconds: keys left out (default) or set to null. */
  missingFields?: MissingFieldStyle;
  /**
   * How long every participant_sessions answer takes, counted from the request's arrival (as a
   * remote API's latency includes its own work); default 0. The simulator's own work hides inside
   * it, so a latency-bound benchmark measures the client, not the stand-in.
   */
  pageLatencyMs?: number;
  faults?: SimulatorFaults;
  /** Clock for expiry, not-ready and rate windows; default real time. */
  now?: () => Date;
}

export interface SimulatorStats {
  requests: number;
  /** HTTP status → responses sent with it. */
  byStatus: Record<string, number>;
  /** Fault kind (serverError, rateLimit, slow, reset, truncated) → times injected. */
  faults: Record<string, number>;
  /** Endpoint (QueryCallParticipantSessions, …) → requests routed to it, and the 429s its rate window answered. */
  byEndpoint: Record<string, { requests: number; rateLimited: number }>;
}

export type SimulatorLiveOptions = Pick<
  SimulatorOptions,
  'rateLimitPerMinute' | 'notReadyForMs' | 'timestampFormat' | 'lastPageNext' | 'pageLatencyMs' | 'missingFields'
>;

export interface Simulator {
  /** e.g. http://127.0.0.1:54321; use it as STREAM_BASE_URL. */
  readonly url: string;
  readonly apiKey: string;
  readonly apiSecret: string;
  /** Also usable while running; a session with a known callSessionId replaces it. */
  addSession(session: SimSession): void;
  /** Keyed by callSessionId. */
  readonly sessions: ReadonlyMap<string, SimSession>;
  readonly stats: SimulatorStats;
  setFaults(faults: SimulatorFaults | undefined): void;
  setOptions(options: Partial<SimulatorLiveOptions>): void;
  close(): Promise<void>;
}

const PARTICIPANT_SESSIONS_PATH = /^\/api\/v2\/video\/call\/([^/]+)\/([^/]+)\/session\/([^/]+)\/participant_sessions\/?$/;
const CALL_STATS_PATH = /^\/api\/v2\/video\/call_stats\/?$/;
const RATE_LIMITS_PATH = /^\/api\/v2\/rate_limits\/?$/;
const MAX_BODY_BYTES = 1024 * 1024;
const VALID_TOKENS_REMEMBERED = 64;
const FAULT_KINDS: readonly FaultKind[] = ['serverError', 'rateLimit', 'slow', 'reset', 'truncated'];

type Route =
  | { readonly endpoint: 'QueryCallParticipantSessions'; readonly path: { type: string; id: string; session: string } }
  | { readonly endpoint: 'QueryCallSessionStats' }
  | { readonly endpoint: 'GetRateLimits' };

/**
 * A stand-in for Stream's video REST API on plain node:http (it shares the cores with the service
 * in benchmarks, so per-request work is kept to parsing, a token-cache lookup and a slice of
 * precomputed JSON). Faithful to docs/stream-api.md, rough edges included; the choices Stream leaves
 * open (default limit, cursor form, the order of entries) are documented at each handler.
 */
export async function startSimulator(options: SimulatorOptions): Promise<Simulator> {
  if (!options.apiKey || !options.apiSecret) throw new RangeError('the simulator needs an API key and secret');
  const sim = createState(options);
  const { store, live, closing } = sim;
  const server = createServer((req, res) => {
    handle(sim, req, res).catch((error: unknown) => {
      if (closing.signal.aborted || res.headersSent) {
        res.destroy();
        return;
      }
      const message = error instanceof Error ? error.message : 'unexpected error';
      sendError(sim, res, sim.limiter.peek('other'), 500, STREAM_ERROR_CODES.internal, `simulator error: ${message}`, performance.now());
    });
  });
  const url = await listen(server, options);
  return {
    url,
    apiKey: options.apiKey,
    apiSecret: options.apiSecret,
    addSession(session) {
      store.add(session);
      // The entries' JSON for the current wire form is built now rather than on first request: the
      // simulator shares the cores with the service in benchmarks, and this is most of its work.
      store.get(session.callSessionId)?.entriesJson(live.timestampFormat, live.missingFields, session.participants.keys());
    },
    sessions: store.sessions,
    stats: sim.stats,
    setFaults(next) {
      sim.faults = createFaultPicker(next);
    },
    setOptions(next) {
      applyLiveOptions(live, next);
    },
    async close() {
      closing.abort();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** Everything a request reads; `faults` and `live` change while the simulator runs. */
interface SimState {
  readonly live: Required<SimulatorLiveOptions>;
  faults: FaultPicker;
  readonly store: SessionStore;
  readonly limiter: RateWindows;
  readonly stats: SimulatorStats;
  readonly closing: AbortController;
  readonly queryDeps: ParticipantSessionsDeps;
  readonly queryCallStats: (body: unknown, startedAt: number) => SimResponse;
  readonly authProblem: (headers: IncomingHttpHeaders, query: URLSearchParams) => Promise<string | undefined>;
}

function createState(options: SimulatorOptions): SimState {
  const now = options.now ?? (() => new Date());
  const live: Required<SimulatorLiveOptions> = {
    rateLimitPerMinute: 100_000,
    notReadyForMs: 0,
    timestampFormat: 'rfc3339',
    lastPageNext: 'absent',
    pageLatencyMs: 0,
    missingFields: 'omit',
  };
  applyLiveOptions(live, options);
  const faults = createFaultPicker(options.faults);
  const store = createSessionStore();
  const queryDeps: ParticipantSessionsDeps = { store, now, options: () => live };
  return {
    live,
    faults,
    store,
    limiter: createRateWindows({ now, limitPerMinute: () => live.rateLimitPerMinute }),
    stats: { requests: 0, byStatus: {}, faults: Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])), byEndpoint: {} },
    closing: new AbortController(),
    queryDeps,
    queryCallStats: createCallStatsQuery(queryDeps),
    authProblem: createAuthCheck(options),
  };
}

/** Stream's auth check against this simulator's key and secret. */
function createAuthCheck(options: SimulatorOptions): SimState['authProblem'] {
  const validTokens = new Set<string>();
  const verifyToken = async (token: string): Promise<boolean> => {
    if (validTokens.has(token)) return true;
    if (!(await isValidServerToken(token, [options.apiSecret]))) return false;
    // SDK tokens carry no exp and are reused for the client's life: verify once, then remember.
    if (!hasExpiry(token) && validTokens.size < VALID_TOKENS_REMEMBERED) validTokens.add(token);
    return true;
  };
  return (headers, query) =>
    streamAuthProblem(
      { apiKey: query.get('api_key'), authType: headers['stream-auth-type'], authorization: headers.authorization },
      { apiKey: options.apiKey, verifyToken },
    );
}

async function listen(server: Server, options: SimulatorOptions): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

async function handle(sim: SimState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const startedAt = performance.now();
  sim.stats.requests++;
  const rawUrl = req.url ?? '/';
  const q = rawUrl.indexOf('?');
  const pathname = q === -1 ? rawUrl : rawUrl.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : rawUrl.slice(q + 1));
  const route = matchRoute(req.method ?? 'GET', pathname);
  if (route === 'bad-path') {
    req.resume();
    return sendError(sim, res, sim.limiter.peek('other'), 400, STREAM_ERROR_CODES.input, 'path is not valid percent-encoding', startedAt);
  }
  if (!route) {
    req.resume();
    return sendError(sim, res, sim.limiter.peek('other'), 404, STREAM_ERROR_CODES.notFound, `no endpoint ${req.method} ${pathname}`, startedAt);
  }
  const window = sim.limiter.hit(route.endpoint);
  const endpointCounts = sim.stats.byEndpoint[route.endpoint] ?? { requests: 0, rateLimited: 0 };
  sim.stats.byEndpoint[route.endpoint] = endpointCounts;
  endpointCounts.requests++;
  const fault: FaultDecision | undefined = sim.faults.draw();
  if (fault) {
    sim.stats.faults[fault.kind] = (sim.stats.faults[fault.kind] ?? 0) + 1;
    if (answerFault(sim, req, res, window, fault, startedAt)) return;
    if (fault.kind === 'slow') await delay(sim.faults.slowMs, undefined, { signal: sim.closing.signal });
  }
  const truncate = fault?.kind === 'truncated';

  let body: unknown;
  if (route.endpoint === 'QueryCallSessionStats') {
    const read = await readJsonBody(req);
    if ('problem' in read) return sendError(sim, res, window, read.status, STREAM_ERROR_CODES.input, read.problem, startedAt, truncate);
    body = read.body;
  } else {
    req.resume();
  }
  if (window.exceeded) {
    endpointCounts.rateLimited++;
    return sendError(
      sim,
      res,
      window,
      429,
      STREAM_ERROR_CODES.rateLimited,
      'Too many requests, check response headers for more information.',
      startedAt,
      truncate,
    );
  }
  const authProblem = await sim.authProblem(req.headers, query);
  if (authProblem) return sendError(sim, res, window, 401, STREAM_ERROR_CODES.auth, authProblem, startedAt, truncate);
  const result = await answerRoute(sim, route, query, body, startedAt);
  send(sim, res, window, result.status, result.body, 'application/json; charset=utf-8', truncate);
}

/** Answers a reset, server error or rate-limit fault; false for the faults that still get a normal answer. */
function answerFault(sim: SimState, req: IncomingMessage, res: ServerResponse, window: RateWindow, fault: FaultDecision, startedAt: number): boolean {
  if (fault.kind === 'reset') {
    req.socket.destroy();
    return true;
  }
  if (fault.kind === 'serverError') {
    req.resume();
    if (fault.status === 500) sendError(sim, res, window, 500, STREAM_ERROR_CODES.internal, 'internal server error', startedAt);
    // Bad gateway / unavailable come from the load balancer in front, not from the API: no APIError body.
    else send(sim, res, window, fault.status, `${fault.status} ${fault.status === 502 ? 'Bad Gateway' : 'Service Unavailable'}\n`, 'text/plain', false);
    return true;
  }
  if (fault.kind === 'rateLimit') {
    req.resume();
    sendError(sim, res, window, 429, STREAM_ERROR_CODES.rateLimited, 'Too many requests, check response headers for more information.', startedAt);
    return true;
  }
  return false;
}

async function answerRoute(sim: SimState, route: Route, query: URLSearchParams, body: unknown, startedAt: number): Promise<SimResponse> {
  if (route.endpoint === 'GetRateLimits') return { status: 200, body: rateLimitsBody(sim.limiter, query, startedAt) };
  if (route.endpoint === 'QueryCallSessionStats') return sim.queryCallStats(body, startedAt);
  const result = queryParticipantSessions(sim.queryDeps, route.path, query, startedAt);
  const { pageLatencyMs } = sim.live;
  const wait = pageLatencyMs - (performance.now() - startedAt);
  if (pageLatencyMs > 0 && result.status === 200 && wait > 0) await delay(wait, undefined, { signal: sim.closing.signal });
  return result;
}

function send(sim: SimState, res: ServerResponse, window: RateWindow, status: number, body: string, contentType: string, truncate: boolean): void {
  sim.stats.byStatus[String(status)] = (sim.stats.byStatus[String(status)] ?? 0) + 1;
  if (res.destroyed) return;
  let bytes = Buffer.from(body);
  if (truncate) bytes = bytes.subarray(0, Math.floor(bytes.length / 2));
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': bytes.length,
    'x-ratelimit-limit': String(window.limit),
    'x-ratelimit-remaining': String(window.remaining),
    'x-ratelimit-reset': String(window.resetSeconds),
  });
  res.end(bytes);
}

function sendError(
  sim: SimState,
  res: ServerResponse,
  window: RateWindow,
  status: number,
  code: number,
  message: string,
  startedAt: number,
  truncate = false,
): void {
  send(sim, res, window, status, JSON.stringify(apiErrorBody(status, code, message, { startedAt })), 'application/json; charset=utf-8', truncate);
}

function matchRoute(method: string, pathname: string): Route | 'bad-path' | undefined {
  if (method === 'GET' && RATE_LIMITS_PATH.test(pathname)) return { endpoint: 'GetRateLimits' };
  if (method === 'GET') {
    const match = PARTICIPANT_SESSIONS_PATH.exec(pathname);
    if (!match) return undefined;
    try {
      // Segments are split before decoding, so an encoded "/" stays inside its id.
      const [type, id, session] = match.slice(1).map((segment) => decodeURIComponent(segment)) as [string, string, string];
      return { endpoint: 'QueryCallParticipantSessions', path: { type, id, session } };
    } catch {
      return 'bad-path';
    }
  }
  if (method === 'POST' && CALL_STATS_PATH.test(pathname)) return { endpoint: 'QueryCallSessionStats' };
  return undefined;
}

/**
 * GetRateLimits (docs/stream-api.md §4): `{server_side: {<Endpoint>: {limit, remaining, reset}}, duration}`
 * for the endpoints named in `endpoints` (comma-separated), read without counting against them.
 */
function rateLimitsBody(limiter: RateWindows, query: URLSearchParams, startedAt: number): string {
  const names = (query.get('endpoints') ?? 'QueryCallParticipantSessions,QueryCallSessionStats')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  const serverSide: Record<string, { limit: number; remaining: number; reset: number }> = {};
  for (const name of names) {
    const window = limiter.peek(name);
    serverSide[name] = { limit: window.limit, remaining: window.remaining, reset: window.resetSeconds };
  }
  return JSON.stringify({ server_side: serverSide, duration: `${(performance.now() - startedAt).toFixed(2)}ms` });
}

/** The body parsed as JSON (an empty body as {}), or why it cannot be. */
async function readJsonBody(req: IncomingMessage): Promise<{ body: unknown } | { status: 400 | 413; problem: string }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return { status: 413, problem: 'request body is too large' };
    chunks.push(chunk);
  }
  const raw = Buffer.concat(chunks);
  try {
    return { body: raw.length === 0 ? {} : JSON.parse(raw.toString('utf8')) };
  } catch {
    return { status: 400, problem: 'request body is not valid JSON' };
  }
}

function hasExpiry(token: string): boolean {
  try {
    const payload: unknown = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return payload !== null && typeof payload === 'object' && 'exp' in payload;
  } catch {
    return true;
  }
}

function applyLiveOptions(target: Required<SimulatorLiveOptions>, source: Partial<SimulatorLiveOptions>): void {
  const nonNegative = (name: string, value: number | undefined): number | undefined => {
    if (value === undefined) return undefined;
    if (!(Number.isFinite(value) && value >= 0)) throw new RangeError(`${name} must be a non-negative number`);
    return value;
  };
  const rate = nonNegative('rateLimitPerMinute', source.rateLimitPerMinute);
  if (rate !== undefined) target.rateLimitPerMinute = Math.floor(rate);
  const notReady = nonNegative('notReadyForMs', source.notReadyForMs);
  if (notReady !== undefined) target.notReadyForMs = notReady;
  const latency = nonNegative('pageLatencyMs', source.pageLatencyMs);
  if (latency !== undefined) target.pageLatencyMs = latency;
  if (source.timestampFormat !== undefined) {
    if (source.timestampFormat !== 'rfc3339' && source.timestampFormat !== 'nanoseconds')
      throw new RangeError('timestampFormat must be rfc3339 or nanoseconds');
    target.timestampFormat = source.timestampFormat;
  }
  if (source.lastPageNext !== undefined) {
    if (source.lastPageNext !== 'absent' && source.lastPageNext !== 'empty') throw new RangeError('lastPageNext must be absent or empty');
    target.lastPageNext = source.lastPageNext;
  }
  if (source.missingFields !== undefined) {
    if (source.missingFields !== 'omit' && source.missingFields !== 'null') throw new RangeError('missingFields must be omit or null');
    target.missingFields = source.missingFields;
  }
}
