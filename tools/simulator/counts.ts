import type { SimSession } from './generate.ts';

/** CallStatsParticipantCounts (docs/stream-api.md §6), as call_stats rows and report events carry it. */
export interface CallStatsCounts {
  participants: number;
  sessions: number;
  live_sessions: number;
  publishers: number;
  peak_concurrent_users: number;
  peak_concurrent_sessions: number;
  sfus_used: number;
  total_participant_duration: number;
}

const cache = new WeakMap<SimSession, CallStatsCounts>();

/**
 * Counts derived from the entries: distinct users, entries, entries still live, users who
 * published anything, and peak concurrency by a sweep over join/leave times (an entry without
 * `left_at` lasts to the session's end). Cached per session object; sessions are not mutated.
 */
export function callStatsCounts(session: SimSession): CallStatsCounts {
  const cached = cache.get(session);
  if (cached) return cached;
  const users = new Set<string>();
  const publishers = new Set<string>();
  let live = 0;
  const events: { at: number; delta: 1 | -1; user: string }[] = [];
  for (const p of session.participants) {
    users.add(p.user_id);
    if (p.published_tracks.length > 0) publishers.add(p.user_id);
    if (p.is_live) live++;
    if (p.joined_at === null) continue;
    events.push({ at: p.joined_at.getTime(), delta: 1, user: p.user_id });
    events.push({ at: (p.left_at ?? session.endedAt).getTime(), delta: -1, user: p.user_id });
  }
  // Leaves sort before joins at the same instant: a handover is not an overlap.
  events.sort((a, b) => a.at - b.at || a.delta - b.delta);
  const active = new Map<string, number>();
  let sessions = 0;
  let peakSessions = 0;
  let peakUsers = 0;
  for (const e of events) {
    sessions += e.delta;
    const before = active.get(e.user) ?? 0;
    const after = before + e.delta;
    if (after === 0) active.delete(e.user);
    else active.set(e.user, after);
    peakSessions = Math.max(peakSessions, sessions);
    peakUsers = Math.max(peakUsers, active.size);
  }
  const counts: CallStatsCounts = {
    participants: users.size,
    sessions: session.participants.length,
    live_sessions: live,
    publishers: publishers.size,
    peak_concurrent_users: peakUsers,
    peak_concurrent_sessions: peakSessions,
    // One SFU per thousand concurrent connections is a rough, plausible figure.
    sfus_used: Math.max(1, Math.ceil(peakSessions / 1000)),
    total_participant_duration: session.totalParticipantDuration,
  };
  cache.set(session, counts);
  return counts;
}
