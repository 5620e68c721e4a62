import type { SimParticipant, SimSession } from './generate.ts';
import { cursorScope } from './cursor.ts';
import { participantJson, type MissingFieldStyle, type TimestampFormat } from './wire.ts';

/** A session plus what the simulator precomputes to keep each request small. */
export interface StoredSession {
  readonly session: SimSession;
  /** Ties cursors to this session. */
  readonly scope: string;
  /**
   * The JSON text of the entries at `indices` for one wire variant. Each entry's text is built the
   * first time it is served and kept, so no request pays for a whole 100,000-entry session.
   */
  entriesJson(format: TimestampFormat, missing: MissingFieldStyle, indices: Iterable<number>): string[];
  /** Indices of the entries a filter keeps, remembered for the last few filters. */
  filteredIndices(key: string, compute: () => number[]): readonly number[];
}

export interface SessionStore {
  readonly sessions: ReadonlyMap<string, SimSession>;
  /** Bumped by every add, so views derived from the whole set know to rebuild. */
  readonly version: number;
  add(session: SimSession): void;
  get(callSessionId: string): StoredSession | undefined;
  all(): Iterable<StoredSession>;
}

const FILTERS_REMEMBERED = 16;

/** Sessions by call session id; adding one with a known id replaces it. Sessions must not be mutated once added. */
export function createSessionStore(): SessionStore {
  const sessions = new Map<string, SimSession>();
  const stored = new Map<string, StoredSession>();
  let version = 0;
  return {
    sessions,
    get version() {
      return version;
    },
    add(session) {
      sessions.set(session.callSessionId, session);
      stored.set(session.callSessionId, storeSession(session));
      version++;
    },
    get: (callSessionId) => stored.get(callSessionId),
    all: () => stored.values(),
  };
}

function storeSession(session: SimSession): StoredSession {
  const wire = new Map<string, string[]>();
  const filtered = new Map<string, number[]>();
  return {
    session,
    scope: cursorScope('participant_sessions', session.callSessionId),
    entriesJson(format, missing, indices) {
      const key = `${format}/${missing}`;
      let entries = wire.get(key);
      if (!entries) {
        entries = new Array<string>(session.participants.length);
        wire.set(key, entries);
      }
      const out: string[] = [];
      for (const i of indices) {
        let json = entries[i];
        if (json === undefined) {
          json = participantJson(session.participants[i] as SimParticipant, format, missing);
          entries[i] = json;
        }
        out.push(json);
      }
      return out;
    },
    filteredIndices(key, compute) {
      let indices = filtered.get(key);
      if (indices) {
        // Re-inserting keeps Map order as least-recently-used first.
        filtered.delete(key);
      } else {
        indices = compute();
        if (filtered.size >= FILTERS_REMEMBERED) filtered.delete(filtered.keys().next().value as string);
      }
      filtered.set(key, indices);
      return indices;
    },
  };
}
