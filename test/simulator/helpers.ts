import { createServerToken } from '../../src/stream/token.ts';
import type { Simulator } from '../../tools/simulator/server.ts';
import type { SimSession } from '../../tools/simulator/generate.ts';

export interface SimReply {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

/** Requests to a simulator, signed like an SDK would, with ways to break each part of the auth. */
export async function createSimClient(sim: Simulator, secret = sim.apiSecret) {
  const token = await createServerToken(secret);
  const request = async (
    method: 'GET' | 'POST',
    path: string,
    options: { query?: Record<string, string | undefined>; body?: unknown; rawBody?: string; headers?: Record<string, string>; apiKey?: string | null } = {},
  ): Promise<SimReply> => {
    const params = new URLSearchParams();
    if (options.apiKey !== null) params.set('api_key', options.apiKey ?? sim.apiKey);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) params.set(k, v);
    const response = await fetch(`${sim.url}${path}?${params}`, {
      method,
      headers: { authorization: token, 'stream-auth-type': 'jwt', ...options.headers },
      body: options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body)),
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.status, headers: response.headers, text, json };
  };
  const participantSessions = (
    session: Pick<SimSession, 'callType' | 'callId' | 'callSessionId'>,
    query: Record<string, string | undefined> = {},
    options: { headers?: Record<string, string>; apiKey?: string | null } = {},
  ) => request('GET', participantSessionsPath(session), { ...options, query });
  /** Every page, following `next` (or `prev` when `backwards` and a starting cursor is given). */
  const readAll = async (session: SimSession, query: Record<string, string | undefined> = {}) => {
    const entries: any[] = [];
    const replies: SimReply[] = [];
    let next: string | undefined;
    do {
      const reply = await participantSessions(session, { ...query, next });
      if (reply.status !== 200) throw new Error(`status ${reply.status}: ${reply.text}`);
      replies.push(reply);
      entries.push(...reply.json.participants_sessions);
      next = reply.json.next || undefined;
      if (replies.length > 100_000) throw new Error('paging does not end');
    } while (next);
    return { entries, replies };
  };
  return {
    token,
    request,
    participantSessions,
    readAll,
    callStats: (body: unknown, options: { headers?: Record<string, string> } = {}) => request('POST', '/api/v2/video/call_stats', { ...options, body }),
  };
}

export function participantSessionsPath(session: Pick<SimSession, 'callType' | 'callId' | 'callSessionId'>): string {
  const seg = encodeURIComponent;
  return `/api/v2/video/call/${seg(session.callType)}/${seg(session.callId)}/session/${seg(session.callSessionId)}/participant_sessions`;
}
