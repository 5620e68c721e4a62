import { describe, expect, it } from 'vitest';
import { FilterError, matchesParticipantFilter, parseFilterConditionsQuery, parseParticipantFilter, type FilterableEntry } from '../../src/stream/filters.ts';

const alice: FilterableEntry = {
  user_id: 'alice',
  user_session_id: 's-1',
  publisher_type: 'webrtc',
  published_tracks: ['audio', 'video'],
  is_live: false,
  is_tech_user: false,
};
const bot: FilterableEntry = { user_id: 'egress bot', user_session_id: 's-2', publisher_type: 'rtmp', published_tracks: [], is_live: true, is_tech_user: true };
const bare: FilterableEntry = { user_id: 'bob', user_session_id: 's-3', publisher_type: 'srt' };

const matches = (raw: string, entry: FilterableEntry) => matchesParticipantFilter(entry, parseParticipantFilter(raw));

describe('participant filter_conditions', () => {
  it('reads no filter as no conditions', () => {
    expect(parseParticipantFilter(undefined)).toEqual([]);
    expect(parseParticipantFilter('')).toEqual([]);
    expect(parseParticipantFilter('{}')).toEqual([]);
    expect(matchesParticipantFilter(alice, [])).toBe(true);
  });

  it('parses $eq, $in and the bare-value shorthand for $eq', () => {
    expect(parseParticipantFilter('{"user_id":"alice"}')).toEqual([{ field: 'user_id', op: '$eq', values: ['alice'] }]);
    expect(parseParticipantFilter('{"user_id":{"$eq":"alice"}}')).toEqual([{ field: 'user_id', op: '$eq', values: ['alice'] }]);
    expect(parseParticipantFilter('{"publisher_type":{"$in":["rtmp","srt"]}}')).toEqual([{ field: 'publisher_type', op: '$in', values: ['rtmp', 'srt'] }]);
    expect(parseParticipantFilter('{"is_live":{"$eq":true},"user_id":{"$eq":"a","$in":["a","b"]}}')).toHaveLength(3);
  });

  it('matches each field as documented', () => {
    expect(matches('{"user_id":"alice"}', alice)).toBe(true);
    expect(matches('{"user_id":"alice"}', bot)).toBe(false);
    expect(matches('{"user_id":{"$in":["egress bot","carol"]}}', bot)).toBe(true);
    // session_id is read as the entry's user_session_id.
    expect(matches('{"session_id":"s-2"}', bot)).toBe(true);
    expect(matches('{"session_id":{"$in":["s-1","s-3"]}}', bot)).toBe(false);
    expect(matches('{"publisher_type":{"$in":["rtmp","srt"]}}', bare)).toBe(true);
    // published_tracks matches when the entry published that kind among others.
    expect(matches('{"published_tracks":"video"}', alice)).toBe(true);
    expect(matches('{"published_tracks":{"$in":["screenshare","audio"]}}', alice)).toBe(true);
    expect(matches('{"published_tracks":"video"}', bot)).toBe(false);
    expect(matches('{"published_tracks":"audio"}', bare)).toBe(false);
    expect(matches('{"is_live":true}', bot)).toBe(true);
    expect(matches('{"is_tech_user":{"$eq":false}}', alice)).toBe(true);
    // Absent booleans count as false.
    expect(matches('{"is_live":false,"is_tech_user":false}', bare)).toBe(true);
  });

  it('ANDs conditions across fields and operators', () => {
    expect(matches('{"publisher_type":"rtmp","is_tech_user":true}', bot)).toBe(true);
    expect(matches('{"publisher_type":"rtmp","is_tech_user":false}', bot)).toBe(false);
    expect(matches('{"user_id":{"$eq":"alice","$in":["bob"]}}', alice)).toBe(false);
  });

  it('refuses anything outside the allowed fields, operators and types', () => {
    const refused = [
      '{"user_id":',
      'null',
      '[]',
      '"alice"',
      '{"name":"alice"}',
      '{"toString":"x"}',
      '{"__proto__":{"$eq":"x"}}',
      '{"$and":[{"user_id":"a"}]}',
      '{"user_id":{"$ne":"alice"}}',
      '{"user_id":{}}',
      '{"user_id":{"$in":[]}}',
      '{"user_id":{"$in":"alice"}}',
      '{"user_id":{"$in":["a",1]}}',
      '{"user_id":["a","b"]}',
      '{"user_id":null}',
      '{"user_id":7}',
      '{"is_live":"true"}',
      '{"is_live":{"$in":[true]}}',
      '{"is_tech_user":{"$eq":1}}',
    ];
    for (const raw of refused) expect(() => parseParticipantFilter(raw), raw).toThrow(FilterError);
  });

  it('names the field and the allowed choices in its messages', () => {
    expect(() => parseParticipantFilter('{"name":"x"}')).toThrow(/"name".*user_id/);
    expect(() => parseParticipantFilter('{"is_live":{"$in":[true]}}')).toThrow(/\$in.*is_live.*\$eq/);
  });

  describe('the bracket form, read from the whole query string', () => {
    const q = (query: string) => parseFilterConditionsQuery(new URLSearchParams(query));

    it('gives the same conditions as the JSON form', () => {
      const same: [string, string][] = [
        ['filter_conditions%5Buser_id%5D%5B%24eq%5D=alice', '{"user_id":{"$eq":"alice"}}'],
        ['filter_conditions[user_id]=alice', '{"user_id":"alice"}'],
        ['filter_conditions[user_id][$in][]=a&filter_conditions[user_id][$in][]=b', '{"user_id":{"$in":["a","b"]}}'],
        ['filter_conditions[user_id][$in][1]=b&filter_conditions[user_id][$in][0]=a', '{"user_id":{"$in":["a","b"]}}'],
        ['filter_conditions[user_id][$in]=a', '{"user_id":{"$in":["a"]}}'],
        ['filter_conditions[is_live][$eq]=true&filter_conditions[publisher_type]=rtmp', '{"is_live":{"$eq":true},"publisher_type":"rtmp"}'],
        ['filter_conditions[is_tech_user]=false', '{"is_tech_user":false}'],
        ['filter_conditions[user_id]=a%2Cb%20c', '{"user_id":"a,b c"}'],
        ['', '{}'],
        ['limit=10', '{}'],
      ];
      for (const [bracket, json] of same) expect(q(bracket), bracket).toEqual(parseParticipantFilter(json));
      expect(q(`filter_conditions=${encodeURIComponent('{"user_id":"alice"}')}`)).toEqual([{ field: 'user_id', op: '$eq', values: ['alice'] }]);
    });

    it('refuses what the JSON form refuses, mixed forms, and keys it cannot read', () => {
      const refused = [
        'filter_conditions={}&filter_conditions={}',
        'filter_conditions={}&filter_conditions[user_id]=a',
        'filter_conditions[name]=a',
        'filter_conditions[__proto__][$eq]=a',
        'filter_conditions[constructor]=a',
        'filter_conditions[user_id][$ne]=a',
        'filter_conditions[user_id][__proto__]=a',
        'filter_conditions[is_live]=yes',
        'filter_conditions[is_live][$in][]=true',
        'filter_conditions[user_id][$eq][0]=a',
        'filter_conditions[user_id][$eq]=a&filter_conditions[user_id][$eq]=b',
        'filter_conditions[user_id][$in][x]=a',
        'filter_conditions[]=a',
        'filter_conditions[user_id]x=a',
      ];
      for (const query of refused) expect(() => q(query), query).toThrow(FilterError);
      expect(({} as Record<string, unknown>).$eq).toBeUndefined();
    });
  });
});
