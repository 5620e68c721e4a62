import { describe, expect, it } from 'vitest';
import { spawnCommand } from '../helpers/child.ts';
import { useTestDatabase } from '../helpers/db.ts';

describe('attendance demo as a child process', () => {
  const test = useTestDatabase();

  it('archives every seeded session, verifies each against Stream, prints the report and exits 0', async () => {
    const demo = spawnCommand(['demo'], { DATABASE_URL: test.current.url });
    const code = await demo.exited;
    const output = demo.output();
    expect(code, output).toBe(0);
    expect(output).toMatch(/20 call sessions, [\d,]+ participant sessions/);
    expect(output).toContain("Every session verified against Stream's totals.");
    const verified = output.match(/yes \(\d+ = Stream's total\)/g) ?? [];
    expect(verified).toHaveLength(20);

    // what the report claims is what the database holds
    const { rows } = await test.current.database.pool.query<{ complete: number; rows: number; total: number }>(
      `select count(*) filter (where status = 'complete')::int as complete,
              (select count(*)::int from participant_sessions) as rows,
              sum(total_participant_sessions)::int as total
         from call_sessions`,
    );
    expect(rows[0]).toMatchObject({ complete: 20 });
    expect(rows[0]!.rows).toBe(rows[0]!.total);
    expect(rows[0]!.rows).toBeGreaterThanOrEqual(10_000);
  });

  it('refuses bad flags with exit 2 and one line', async () => {
    const demo = spawnCommand(['demo', '--sessions', 'many'], { DATABASE_URL: test.current.url });
    expect(await demo.exited).toBe(2);
    expect(demo.output().trim()).toBe('attendance demo: --sessions must be a whole number from 1 to 20 (got "many")');
  });
});
