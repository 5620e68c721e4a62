import { describe, expect, it } from 'vitest';
import { generateDataset, generateSession, pickSessionSizes, type SimParticipant, type SimSession } from '../../tools/simulator/generate.ts';

const ENDED_AT = new Date('2026-04-01T16:00:00Z');

/** Plain checks collected into one assertion: a 100,000-entry session would be slow with an expect per entry. */
function checkInvariants(session: SimSession): void {
  const problems: string[] = [];
  const ids = new Set(session.participants.map((p) => p.user_session_id));
  if (ids.size !== session.participants.length) problems.push('user_session_id repeats');
  let total = 0;
  let previousJoin = -Infinity;
  session.participants.forEach((p, i) => {
    const join = (p.joined_at as Date).getTime();
    if (join < session.startedAt.getTime()) problems.push(`${i}: joined before the start`);
    if (join < previousJoin) problems.push(`${i}: not sorted by joined_at`);
    previousJoin = join;
    if (p.left_at && (p.left_at.getTime() < join || p.left_at.getTime() > session.endedAt.getTime())) problems.push(`${i}: left_at out of range`);
    if (p.duration_in_seconds !== null && p.duration_in_seconds !== Math.round(((p.left_at as Date).getTime() - join) / 1000)) {
      problems.push(`${i}: duration does not match the times`);
    }
    if (p.is_live !== (p.left_at === null)) problems.push(`${i}: is_live disagrees with left_at`);
    total += p.duration_in_seconds ?? 0;
  });
  if (session.totalParticipantDuration !== total) problems.push('totalParticipantDuration is not the sum');
  expect(problems).toEqual([]);
}

function overlaps(a: SimParticipant, b: SimParticipant): boolean {
  const end = (p: SimParticipant) => (p.left_at ?? new Date(8.64e15)).getTime();
  return (a.joined_at as Date).getTime() < end(b) && (b.joined_at as Date).getTime() < end(a);
}

describe('simulator: generator', () => {
  it('is deterministic for a seed and differs between seeds', () => {
    const a = generateSession({ seed: 42, size: 300, endedAt: ENDED_AT });
    const b = generateSession({ seed: 42, size: 300, endedAt: ENDED_AT });
    const c = generateSession({ seed: 43, size: 300, endedAt: ENDED_AT });
    expect(b).toEqual(a);
    expect(c.callSessionId).not.toBe(a.callSessionId);
    expect(c.participants.map((p) => p.user_session_id)).not.toEqual(a.participants.map((p) => p.user_session_id));
    // Numbers and their string form are the same seed.
    expect(generateSession({ seed: '42', size: 300, endedAt: ENDED_AT })).toEqual(a);
  });

  it('keeps the attendance when ids are given explicitly', () => {
    const plain = generateSession({ seed: 'ids', size: 50, endedAt: ENDED_AT });
    const named = generateSession({ seed: 'ids', size: 50, endedAt: ENDED_AT, callType: 'x', callId: 'y', callSessionId: 'z' });
    expect(named).toMatchObject({ callType: 'x', callId: 'y', callSessionId: 'z' });
    expect(named.participants).toEqual(plain.participants);
  });

  it('makes exactly the requested number of entries, with consistent totals', () => {
    for (const size of [0, 1, 2, 17, 1_000]) {
      const session = generateSession({ seed: `size-${size}`, size, endedAt: ENDED_AT });
      expect(session.participants).toHaveLength(size);
      expect(session.endedAt).toEqual(ENDED_AT);
      expect(session.startedAt.getTime()).toBeLessThan(ENDED_AT.getTime());
      checkInvariants(session);
    }
    for (const size of [-1, 1.5, Number.NaN, 2_000_000]) expect(() => generateSession({ seed: 1, size })).toThrow(RangeError);
  });

  it('makes a 100,000-entry session', () => {
    const session = generateSession({ seed: 'huge', size: 100_000, endedAt: ENDED_AT });
    expect(session.participants).toHaveLength(100_000);
    checkInvariants(session);
  });

  it('has rejoins, second devices, every publisher type, no-role users, odd ids, bots and incomplete entries', () => {
    const session = generateSession({ seed: 'realistic', size: 400, endedAt: ENDED_AT });
    const byUser = new Map<string, SimParticipant[]>();
    for (const p of session.participants) byUser.set(p.user_id, [...(byUser.get(p.user_id) ?? []), p]);
    const multi = [...byUser.values()].filter((entries) => entries.length >= 2);
    expect(multi.some((entries) => entries.some((a, i) => entries.slice(i + 1).some((b) => !overlaps(a, b))))).toBe(true);
    expect(multi.some((entries) => entries.some((a, i) => entries.slice(i + 1).some((b) => overlaps(a, b))))).toBe(true);
    const types = new Set(session.participants.map((p) => p.publisher_type));
    expect([...types].sort()).toEqual(['rtmp', 'srt', 'webrtc']);
    expect(session.participants.some((p) => p.roles.length === 0)).toBe(true);
    expect(session.participants.some((p) => p.roles.length > 1)).toBe(true);
    const ids = [...byUser.keys()];
    expect(ids.some((id) => id.includes(' '))).toBe(true);
    expect(ids.some((id) => id.includes('/'))).toBe(true);
    expect(ids.some((id) => id.includes('"'))).toBe(true);
    expect(ids.some((id) => id.includes("'"))).toBe(true);
    expect(ids.some((id) => /\p{Extended_Pictographic}/u.test(id))).toBe(true);
    expect(session.participants.some((p) => p.is_tech_user)).toBe(true);
    expect(session.participants.some((p) => p.left_at === null && p.duration_in_seconds === null)).toBe(true);
    expect(session.participants.some((p) => p.left_at !== null && p.duration_in_seconds === null)).toBe(true);
    expect(session.participants.some((p) => p.published_tracks.length === 0)).toBe(true);
    expect(session.participants.some((p) => p.published_tracks.includes('video'))).toBe(true);
    // "A few": incomplete entries stay rare.
    expect(session.participants.filter((p) => p.duration_in_seconds === null).length).toBeLessThan(20);
  });

  it('makes datasets newest first, without overlap, some sessions sharing a call', () => {
    const sizes = pickSessionSizes({ seed: 7, count: 30 });
    expect(sizes).toHaveLength(30);
    expect(sizes[0]).toBe(1);
    expect(pickSessionSizes({ seed: 7, count: 30 })).toEqual(sizes);
    const dataset = generateDataset({ seed: 7, sizes, endedAt: ENDED_AT });
    expect(generateDataset({ seed: 7, sizes, endedAt: ENDED_AT })).toEqual(dataset);
    expect(dataset.map((s) => s.participants.length)).toEqual(sizes);
    expect(dataset[0]?.endedAt).toEqual(ENDED_AT);
    for (let i = 1; i < dataset.length; i++) {
      expect((dataset[i] as SimSession).endedAt.getTime()).toBeLessThan((dataset[i - 1] as SimSession).startedAt.getTime());
    }
    expect(new Set(dataset.map((s) => s.callSessionId)).size).toBe(30);
    expect(new Set(dataset.map((s) => `${s.callType}:${s.callId}`)).size).toBeLessThan(30);
    for (const session of dataset) checkInvariants(session);
  });

  it('adds nanoseconds past the millisecond to a seeded share of a dataset, changing nothing else', () => {
    const sizes = Array.from({ length: 40 }, () => 12);
    const plain = generateDataset({ seed: 'sub-ms', sizes, endedAt: ENDED_AT });
    const precise = generateDataset({ seed: 'sub-ms', sizes, endedAt: ENDED_AT, subMillisecondShare: 0.5 });
    const strip = ({ startedAtSubMsNs: _s, endedAtSubMsNs: _e, ...s }: SimSession) => ({
      ...s,
      participants: s.participants.map(({ joined_at_sub_ms_ns: _j, left_at_sub_ms_ns: _l, ...rest }) => rest),
    });
    expect(precise.map(strip)).toEqual(plain);
    const withDigits = precise.filter((s) => s.participants.some((p) => (p.joined_at_sub_ms_ns ?? 0) > 0));
    expect(withDigits.length).toBeGreaterThan(10);
    expect(withDigits.length).toBeLessThan(30);
    for (const session of withDigits) {
      for (const p of session.participants) {
        expect(p.joined_at_sub_ms_ns).toBeGreaterThanOrEqual(0);
        expect(p.joined_at_sub_ms_ns).toBeLessThan(1_000_000);
        // An entry without left_at has no digits to add to it.
        if (p.left_at === null) expect(p.left_at_sub_ms_ns).toBeUndefined();
      }
    }
    expect(plain.every((s) => s.participants.every((p) => p.joined_at_sub_ms_ns === undefined))).toBe(true);
    // The session's own start and end carry digits too (its `session` object), never zero, so a
    // rounded value would show.
    for (const session of withDigits) {
      expect(session.startedAtSubMsNs).toBeGreaterThan(0);
      expect(session.endedAtSubMsNs).toBeGreaterThan(0);
    }
    expect(plain.every((s) => s.startedAtSubMsNs === undefined && s.endedAtSubMsNs === undefined)).toBe(true);
  });

  it('adds a top-level field Stream might add to a seeded share of a dataset, changing nothing else', () => {
    const sizes = Array.from({ length: 40 }, () => 5);
    const plain = generateDataset({ seed: 'extra', sizes, endedAt: ENDED_AT });
    const extra = generateDataset({ seed: 'extra', sizes, endedAt: ENDED_AT, extraFieldsShare: 0.5 });
    expect(extra.map(({ extraFieldsJson: _x, ...s }) => s)).toEqual(plain);
    const withExtra = extra.filter((s) => s.extraFieldsJson !== undefined);
    expect(withExtra.length).toBeGreaterThan(10);
    expect(withExtra.length).toBeLessThan(30);
    for (const session of withExtra) {
      // Valid JSON members, with a 19-digit integer a JS number would round.
      const digits = /"checked_at":(\d+)/.exec(session.extraFieldsJson!)?.[1];
      expect(JSON.parse(`{${session.extraFieldsJson}}`)).toMatchObject({ something_new: { a: 1 } });
      expect(digits).toHaveLength(19);
      expect(String(Number(digits))).not.toBe(digits);
    }
    expect(plain.every((s) => s.extraFieldsJson === undefined)).toBe(true);
  });
});
