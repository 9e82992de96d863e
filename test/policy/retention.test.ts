import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decideRetention,
  type RetentionCandidate,
  type RetentionDecision,
  type RetentionRules,
} from '../../src/policy/retention.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function set(setId: string, startedAt: string, extra: Partial<RetentionCandidate> = {}): RetentionCandidate {
  return { setId, startedAt, suspect: false, valid: true, ...extra };
}

function keptIds(decisions: readonly RetentionDecision[]): string[] {
  return decisions.filter((d) => d.keep).map((d) => d.setId);
}

function decisionOf(decisions: readonly RetentionDecision[], setId: string): RetentionDecision {
  const decision = decisions.find((d) => d.setId === setId);
  assert.ok(decision, `no decision for ${setId}`);
  return decision;
}

/** One set a day at 03:00 UTC from `first`, ids d1, d2, … oldest first. */
function nightly(first: string, days: number): RetentionCandidate[] {
  const start = Date.parse(`${first}T03:00:00Z`);
  return Array.from({ length: days }, (_, i) => set(`d${i + 1}`, new Date(start + i * DAY).toISOString()));
}

describe('decideRetention without rules', () => {
  it('keeps every set when no rule is given, or every rule is 0', () => {
    const sets = nightly('2025-11-01', 4);
    for (const rules of [{}, { last: 0, daily: 0, yearly: 0 }] satisfies RetentionRules[]) {
      const decisions = decideRetention(sets, rules, {});
      assert.deepEqual(
        decisions,
        ['d4', 'd3', 'd2', 'd1'].map((setId) => ({
          setId,
          keep: true,
          reasons: ['no retention rules: everything is kept'],
        })),
      );
    }
  });

  it('returns no decision for no sets', () => {
    assert.deepEqual(decideRetention([], { last: 3 }, {}), []);
  });
});

describe('decideRetention: last', () => {
  it('keeps the n newest sets and says why the others go', () => {
    const decisions = decideRetention(nightly('2025-11-01', 5), { last: 3 }, {});
    assert.deepEqual(decisions, [
      { setId: 'd5', keep: true, reasons: ['last 1 of 3'] },
      { setId: 'd4', keep: true, reasons: ['last 2 of 3'] },
      { setId: 'd3', keep: true, reasons: ['last 3 of 3'] },
      { setId: 'd2', keep: false, reasons: ['last: beyond the 3 newest'] },
      { setId: 'd1', keep: false, reasons: ['last: beyond the 3 newest'] },
    ]);
  });

  it('keeps everything with -1 (unlimited) or with more room than sets', () => {
    const sets = nightly('2025-11-01', 3);
    assert.deepEqual(
      decideRetention(sets, { last: -1 }, {}).map((d) => d.reasons),
      [['last 1 of unlimited'], ['last 2 of unlimited'], ['last 3 of unlimited']],
    );
    assert.deepEqual(keptIds(decideRetention(sets, { last: 10 }, {})), ['d3', 'd2', 'd1']);
  });
});

describe('decideRetention: hourly', () => {
  it('keeps the newest set of each of the n newest hours that have sets', () => {
    const sets = [
      set('a', '2025-11-04T03:05:00Z'),
      set('b', '2025-11-04T03:40:00Z'),
      set('c', '2025-11-04T04:10:00Z'),
      set('d', '2025-11-04T04:50:00Z'),
      set('e', '2025-11-04T06:00:00Z'),
    ];
    assert.deepEqual(decideRetention(sets, { hourly: 2 }, {}), [
      { setId: 'e', keep: true, reasons: ['hourly 2025-11-04T06'] },
      { setId: 'd', keep: true, reasons: ['hourly 2025-11-04T04'] },
      { setId: 'c', keep: false, reasons: ['hourly 2025-11-04T04: a newer set is kept for this hour'] },
      { setId: 'b', keep: false, reasons: ['hourly 2025-11-04T03: beyond the 2 newest hours with sets'] },
      { setId: 'a', keep: false, reasons: ['hourly 2025-11-04T03: beyond the 2 newest hours with sets'] },
    ]);
  });
});

describe('decideRetention: daily', () => {
  it('counts only days that have sets (a gap costs nothing) and keeps the newest run of each', () => {
    const sets = [
      set('nov1', '2025-11-01T03:00:00Z'),
      set('nov2', '2025-11-02T03:00:00Z'),
      set('nov5', '2025-11-05T03:00:00Z'),
      set('nov6-early', '2025-11-06T03:00:00Z'),
      set('nov6-noon', '2025-11-06T12:00:00Z'),
      set('nov6-late', '2025-11-06T23:59:59Z'),
    ];
    const decisions = decideRetention(sets, { daily: 3 }, {});
    assert.deepEqual(keptIds(decisions), ['nov6-late', 'nov5', 'nov2']);
    assert.deepEqual(decisionOf(decisions, 'nov6-noon').reasons, [
      'daily 2025-11-06: a newer set is kept for this day',
    ]);
    assert.deepEqual(decisionOf(decisions, 'nov1').reasons, ['daily 2025-11-01: beyond the 3 newest days with sets']);
  });

  it('like restic since 0.17, also keeps the oldest set while the rule has room left', () => {
    const sets = [
      set('nov1-a', '2025-11-01T01:00:00Z'),
      set('nov1-b', '2025-11-01T02:00:00Z'),
      set('nov2', '2025-11-02T03:00:00Z'),
    ];
    assert.deepEqual(decideRetention(sets, { daily: 7 }, {}), [
      { setId: 'nov2', keep: true, reasons: ['daily 2025-11-02'] },
      { setId: 'nov1-b', keep: true, reasons: ['daily 2025-11-01'] },
      { setId: 'nov1-a', keep: true, reasons: ['oldest daily 2025-11-01'] },
    ]);
    assert.deepEqual(
      decisionOf(decideRetention(sets, { daily: -1 }, {}), 'nov1-a').reasons,
      ['oldest daily 2025-11-01'],
      'unlimited always has room',
    );
    // With exactly as many days as the rule allows, the budget is spent before the oldest set.
    assert.deepEqual(decisionOf(decideRetention(sets, { daily: 2 }, {}), 'nov1-a'), {
      setId: 'nov1-a',
      keep: false,
      reasons: ['daily 2025-11-01: a newer set is kept for this day'],
    });
  });

  it("matches restic's documented example: one backup every Sunday for 12 weeks, keep-daily 4", () => {
    const sundays = Array.from({ length: 12 }, (_, i) => {
      const startedAt = new Date(Date.parse('2019-09-01T11:00:00Z') + i * 7 * DAY).toISOString();
      return set(startedAt.slice(0, 10), startedAt);
    });
    assert.deepEqual(keptIds(decideRetention(sundays, { daily: 4 }, {})), [
      '2019-11-17',
      '2019-11-10',
      '2019-11-03',
      '2019-10-27',
    ]);
  });
});

describe('decideRetention: weekly', () => {
  it('uses ISO weeks, Monday to Sunday', () => {
    const sets = [
      set('sat', '2025-11-08T12:00:00Z'),
      set('sun', '2025-11-09T12:00:00Z'),
      set('mon', '2025-11-10T12:00:00Z'),
    ];
    assert.deepEqual(decideRetention(sets, { weekly: 2 }, {}), [
      { setId: 'mon', keep: true, reasons: ['weekly 2025-W46'] },
      { setId: 'sun', keep: true, reasons: ['weekly 2025-W45'] },
      { setId: 'sat', keep: false, reasons: ['weekly 2025-W45: a newer set is kept for this week'] },
    ]);
  });

  it('numbers weeks by the ISO week-numbering year across New Year', () => {
    const sets = [
      set('2021-01-03', '2021-01-03T12:00:00Z'),
      set('2021-01-04', '2021-01-04T12:00:00Z'),
      set('2024-12-29', '2024-12-29T12:00:00Z'),
      set('2024-12-30', '2024-12-30T12:00:00Z'),
      set('2025-01-03', '2025-01-03T12:00:00Z'),
    ];
    assert.deepEqual(decideRetention(sets, { weekly: -1 }, {}), [
      { setId: '2025-01-03', keep: true, reasons: ['weekly 2025-W01'] },
      { setId: '2024-12-30', keep: false, reasons: ['weekly 2025-W01: a newer set is kept for this week'] },
      { setId: '2024-12-29', keep: true, reasons: ['weekly 2024-W52'] },
      { setId: '2021-01-04', keep: true, reasons: ['weekly 2021-W01'] },
      { setId: '2021-01-03', keep: true, reasons: ['weekly 2020-W53'] },
    ]);
  });
});

describe('decideRetention: monthly and yearly', () => {
  it('keeps the newest set of each of the n newest months', () => {
    const sets = [
      set('sep30', '2025-09-30T23:00:00Z'),
      set('oct1', '2025-10-01T00:30:00Z'),
      set('oct31', '2025-10-31T12:00:00Z'),
      set('nov1', '2025-11-01T00:00:00Z'),
    ];
    assert.deepEqual(decideRetention(sets, { monthly: 2 }, {}), [
      { setId: 'nov1', keep: true, reasons: ['monthly 2025-11'] },
      { setId: 'oct31', keep: true, reasons: ['monthly 2025-10'] },
      { setId: 'oct1', keep: false, reasons: ['monthly 2025-10: a newer set is kept for this month'] },
      { setId: 'sep30', keep: false, reasons: ['monthly 2025-09: beyond the 2 newest months with sets'] },
    ]);
  });

  it('keeps the newest set of each year, and the oldest while years are missing', () => {
    const sets = [
      set('2023-05', '2023-05-01T03:00:00Z'),
      set('2023-07', '2023-07-01T03:00:00Z'),
      set('2024-02', '2024-02-01T03:00:00Z'),
      set('2024-03', '2024-03-01T03:00:00Z'),
    ];
    assert.deepEqual(decideRetention(sets, { yearly: 5 }, {}), [
      { setId: '2024-03', keep: true, reasons: ['yearly 2024'] },
      { setId: '2024-02', keep: false, reasons: ['yearly 2024: a newer set is kept for this year'] },
      { setId: '2023-07', keep: true, reasons: ['yearly 2023'] },
      { setId: '2023-05', keep: true, reasons: ['oldest yearly 2023'] },
    ]);
    assert.deepEqual(keptIds(decideRetention(sets, { yearly: 2 }, {})), ['2024-03', '2023-07']);
  });
});

describe('decideRetention: several rules', () => {
  it('keeps a set that any rule keeps, naming every rule that does', () => {
    const sets = [
      set('oct31', '2025-10-31T03:00:00Z'),
      set('nov3', '2025-11-03T03:00:00Z'),
      set('nov4-a', '2025-11-04T03:00:00Z'),
      set('nov4-b', '2025-11-04T15:00:00Z'),
    ];
    assert.deepEqual(decideRetention(sets, { last: 1, daily: 2, monthly: 2 }, {}), [
      { setId: 'nov4-b', keep: true, reasons: ['last 1 of 1', 'daily 2025-11-04', 'monthly 2025-11'] },
      {
        setId: 'nov4-a',
        keep: false,
        reasons: [
          'last: beyond the 1 newest',
          'daily 2025-11-04: a newer set is kept for this day',
          'monthly 2025-11: a newer set is kept for this month',
        ],
      },
      {
        setId: 'nov3',
        keep: true,
        reasons: ['daily 2025-11-03'],
      },
      {
        setId: 'oct31',
        keep: true,
        reasons: ['monthly 2025-10'],
      },
    ]);
  });
});

describe('decideRetention: suspect and corrupt sets', () => {
  it('keeps a suspect set for inspection and lets the next valid set take its place in the rules', () => {
    const sets = [...nightly('2025-11-01', 3), set('suspect', '2025-11-04T03:00:00Z', { suspect: true })];
    assert.deepEqual(decideRetention(sets, { last: 1 }, {}), [
      { setId: 'suspect', keep: true, reasons: ['suspect: kept for inspection'] },
      { setId: 'd3', keep: true, reasons: ['last 1 of 1'] },
      { setId: 'd2', keep: false, reasons: ['last: beyond the 1 newest'] },
      { setId: 'd1', keep: false, reasons: ['last: beyond the 1 newest'] },
    ]);
  });

  it('does not let a day that holds only a suspect set use up a daily slot', () => {
    const sets = [...nightly('2025-11-01', 3), set('nov4-suspect', '2025-11-04T03:00:00Z', { suspect: true })];
    const decisions = decideRetention(sets, { daily: 2 }, {});
    assert.deepEqual(keptIds(decisions), ['nov4-suspect', 'd3', 'd2']);
    assert.deepEqual(decisionOf(decisions, 'd1').reasons, ['daily 2025-11-01: beyond the 2 newest days with sets']);
  });

  it('keeps a set whose manifest is corrupt, whatever else it says, and never counts it', () => {
    const sets = [
      ...nightly('2025-11-01', 2),
      set('corrupt', '2025-11-03T03:00:00Z', { valid: false }),
      set('corrupt-suspect', '2025-11-05T03:00:00Z', { valid: false, suspect: true }),
      set('corrupt-no-time', '', { valid: false }),
    ];
    assert.deepEqual(decideRetention(sets, { last: 1 }, {}), [
      { setId: 'corrupt-suspect', keep: true, reasons: ['corrupt manifest: kept, run verify'] },
      { setId: 'corrupt', keep: true, reasons: ['corrupt manifest: kept, run verify'] },
      { setId: 'd2', keep: true, reasons: ['last 1 of 1'] },
      { setId: 'd1', keep: false, reasons: ['last: beyond the 1 newest'] },
      { setId: 'corrupt-no-time', keep: true, reasons: ['corrupt manifest: kept, run verify'] },
    ]);
  });

  it('keeps, uncounted and listed last, a set whose startedAt is not an instant (no zone, or not a date)', () => {
    const sets = [
      ...nightly('2025-11-01', 2),
      set('no-zone', '2025-11-09T03:00:00'),
      set('date-only', '2025-11-09'),
      set('words', 'yesterday'),
      set('feb-30', '2025-02-30T03:00:00Z'),
    ];
    const decisions = decideRetention(sets, { last: 1 }, {});
    assert.deepEqual(
      decisions.map((d) => d.setId),
      ['d2', 'd1', 'words', 'no-zone', 'feb-30', 'date-only'],
    );
    assert.deepEqual(decisionOf(decisions, 'd2').reasons, ['last 1 of 1']);
    assert.deepEqual(decisionOf(decisions, 'no-zone'), {
      setId: 'no-zone',
      keep: true,
      reasons: ['startedAt "2025-11-09T03:00:00" is not a UTC ISO-8601 time: kept, run verify'],
    });
    assert.equal(decisionOf(decisions, 'words').keep, true);
    assert.equal(decisionOf(decisions, 'date-only').keep, true);
    assert.match(decisionOf(decisions, 'feb-30').reasons.join(), /^startedAt "2025-02-30T03:00:00Z" is not a UTC/);
  });

  it('keeps everything when no set is valid and non-suspect', () => {
    const sets = nightly('2025-11-01', 3).map((s) => ({ ...s, suspect: true }));
    assert.deepEqual(keptIds(decideRetention(sets, { last: 1 }, {})), ['d3', 'd2', 'd1']);
  });
});

describe('decideRetention: order and purity', () => {
  it('answers newest first whatever the input order, and leaves the input untouched', () => {
    const sets = [
      set('b', '2025-11-02T03:00:00Z'),
      set('c', '2025-11-03T03:00:00+01:00'),
      set('a', '2025-11-01T03:00:00Z'),
    ];
    const copy = structuredClone(sets);
    const decisions = decideRetention(sets, { last: 2 }, {});
    assert.deepEqual(
      decisions.map((d) => d.setId),
      ['c', 'b', 'a'],
    );
    assert.deepEqual(sets, copy);
    assert.deepEqual(decideRetention([...sets].reverse(), { last: 2 }, {}), decisions);
  });

  it('orders sets that started at the same instant by setId, descending, so the choice is stable', () => {
    const sets = [
      set('20251104T030000Z-aaaaaa', '2025-11-04T03:00:00Z'),
      set('20251104T030000Z-zzzzzz', '2025-11-04T03:00:00.000Z'),
    ];
    for (const input of [sets, [...sets].reverse()]) {
      assert.deepEqual(decideRetention(input, { daily: 1 }, {}), [
        { setId: '20251104T030000Z-zzzzzz', keep: true, reasons: ['daily 2025-11-04'] },
        {
          setId: '20251104T030000Z-aaaaaa',
          keep: false,
          reasons: ['daily 2025-11-04: a newer set is kept for this day'],
        },
      ]);
    }
  });
});

describe('decideRetention: refusals', () => {
  it('refuses a rule that is not a whole number >= -1, naming the rule', () => {
    const sets = nightly('2025-11-01', 2);
    for (const daily of [1.5, -2, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => decideRetention(sets, { daily }, {}), {
        name: 'RangeError',
        message: new RegExp(`^retention\\.daily must be a whole number .*got ${String(daily)}$`),
      });
    }
    assert.throws(() => decideRetention(sets, { last: '3' as unknown as number }, {}), /retention\.last/);
  });

  it('refuses an unknown time zone', () => {
    assert.throws(() => decideRetention(nightly('2025-11-01', 1), { daily: 1 }, { timeZone: 'Mars/Olympus' }), {
      name: 'RangeError',
      message: /time zone "Mars\/Olympus" is unknown: use an IANA name/,
    });
  });

  it('refuses a list that names a set twice', () => {
    const sets = [set('x', '2025-11-01T03:00:00Z'), set('x', '2025-11-02T03:00:00Z')];
    assert.throws(() => decideRetention(sets, { last: 1 }, {}), /set x is listed twice/);
  });
});

describe('decideRetention: time zones', () => {
  it('uses UTC by default', () => {
    const sets = [set('a', '2025-11-04T23:30:00Z'), set('b', '2025-11-05T00:30:00Z')];
    const utc = decideRetention(sets, { daily: 5 }, { timeZone: 'UTC' });
    assert.deepEqual(decideRetention(sets, { daily: 5 }, {}), utc);
    assert.deepEqual(
      utc.map((d) => d.reasons),
      [['daily 2025-11-05'], ['daily 2025-11-04']],
    );
  });

  it('Europe/Berlin, clocks back: the repeated hour 02:00-03:00 is one hourly bucket', () => {
    const sets = [
      set('0130cest', '2025-10-25T23:30:00Z'),
      set('0230cest', '2025-10-26T00:30:00Z'),
      set('0230cet', '2025-10-26T01:30:00Z'),
      set('0330cet', '2025-10-26T02:30:00Z'),
    ];
    assert.deepEqual(decideRetention(sets, { hourly: -1 }, { timeZone: 'Europe/Berlin' }), [
      { setId: '0330cet', keep: true, reasons: ['hourly 2025-10-26T03'] },
      { setId: '0230cet', keep: true, reasons: ['hourly 2025-10-26T02'] },
      { setId: '0230cest', keep: false, reasons: ['hourly 2025-10-26T02: a newer set is kept for this hour'] },
      { setId: '0130cest', keep: true, reasons: ['hourly 2025-10-26T01'] },
    ]);
    assert.deepEqual(keptIds(decideRetention(sets, { hourly: -1 }, {})), [
      '0330cet',
      '0230cet',
      '0230cest',
      '0130cest',
    ]);
  });

  it('Europe/Berlin, clocks forward: 01:xx CET is followed by 03:xx CEST, and days begin at local midnight', () => {
    const sets = [
      set('29th-2330', '2025-03-29T22:30:00Z'),
      set('30th-0030', '2025-03-29T23:30:00Z'),
      set('30th-0130', '2025-03-30T00:30:00Z'),
      set('30th-0330', '2025-03-30T01:30:00Z'),
      set('30th-2330', '2025-03-30T21:30:00Z'),
      set('31st-0030', '2025-03-30T22:30:00Z'),
    ];
    const berlin = { timeZone: 'Europe/Berlin' };
    assert.deepEqual(
      decideRetention(sets, { hourly: 3 }, berlin).map((d) => d.reasons[0]),
      [
        'hourly 2025-03-31T00',
        'hourly 2025-03-30T23',
        'hourly 2025-03-30T03',
        'hourly 2025-03-30T01: beyond the 3 newest hours with sets',
        'hourly 2025-03-30T00: beyond the 3 newest hours with sets',
        'hourly 2025-03-29T23: beyond the 3 newest hours with sets',
      ],
    );
    assert.deepEqual(decideRetention(sets, { daily: 2 }, berlin), [
      { setId: '31st-0030', keep: true, reasons: ['daily 2025-03-31'] },
      { setId: '30th-2330', keep: true, reasons: ['daily 2025-03-30'] },
      { setId: '30th-0330', keep: false, reasons: ['daily 2025-03-30: a newer set is kept for this day'] },
      { setId: '30th-0130', keep: false, reasons: ['daily 2025-03-30: a newer set is kept for this day'] },
      { setId: '30th-0030', keep: false, reasons: ['daily 2025-03-30: a newer set is kept for this day'] },
      { setId: '29th-2330', keep: false, reasons: ['daily 2025-03-29: beyond the 2 newest days with sets'] },
    ]);
    // The same sets in UTC fall on other days: 2025-03-30 and 2025-03-29.
    assert.deepEqual(keptIds(decideRetention(sets, { daily: 2 }, {})), ['31st-0030', '30th-0030']);
  });

  it('Europe/Berlin: weeks and years begin at local midnight too', () => {
    const sets = [
      set('sunday', '2025-11-09T22:30:00Z'),
      set('monday-0030', '2025-11-09T23:30:00Z'),
      set('new-year-0030', '2025-12-31T23:30:00Z'),
    ];
    assert.deepEqual(
      decideRetention(sets, { weekly: -1, yearly: -1 }, { timeZone: 'Europe/Berlin' }).map((d) => d.reasons),
      [
        ['weekly 2026-W01', 'yearly 2026'],
        ['weekly 2025-W46', 'yearly 2025'],
        ['weekly 2025-W45', 'oldest yearly 2025'],
      ],
    );
    assert.deepEqual(
      decideRetention(sets, { weekly: -1, yearly: -1 }, {}).map((d) => d.reasons),
      [['weekly 2026-W01', 'yearly 2025'], ['weekly 2025-W45'], ['oldest weekly 2025-W45', 'oldest yearly 2025']],
    );
  });

  it('Asia/Kolkata: a half-hour offset splits one UTC hour into two local hours', () => {
    const sets = [set('a', '2025-11-04T03:20:00Z'), set('b', '2025-11-04T03:40:00Z')];
    assert.deepEqual(
      decideRetention(sets, { hourly: 1 }, { timeZone: 'Asia/Kolkata' }).map((d) => d.reasons),
      [['hourly 2025-11-04T09'], ['hourly 2025-11-04T08: beyond the 1 newest hours with sets']],
    );
    assert.deepEqual(keptIds(decideRetention(sets, { hourly: 1 }, {})), ['b']);
  });
});

// ---------------------------------------------------------------------------------------------
// 400 simulated days, checked against a reference written the obvious way: group the counted
// sets by bucket, take the newest set of each of the n newest buckets, plus the oldest set when
// the rule has more room than there are buckets. Local time comes from hand-written zone rules,
// not from Intl, and ISO weeks from a different derivation than the implementation's.

interface Zone {
  timeZone: string;
  offsetMs: (utcMs: number) => number;
}

/** 01:00 UTC on the last Sunday of a month: when EU clocks change. */
function euChangeMs(year: number, monthIndex: number): number {
  const lastDay = new Date(Date.UTC(year, monthIndex + 1, 0));
  return Date.UTC(year, monthIndex, lastDay.getUTCDate() - lastDay.getUTCDay(), 1);
}

const ZONES: readonly Zone[] = [
  { timeZone: 'UTC', offsetMs: () => 0 },
  {
    timeZone: 'Europe/Berlin',
    offsetMs: (ms) => {
      const year = new Date(ms).getUTCFullYear();
      return ms >= euChangeMs(year, 2) && ms < euChangeMs(year, 9) ? 2 * HOUR : HOUR;
    },
  },
  { timeZone: 'Asia/Kolkata', offsetMs: () => 5.5 * HOUR },
];

const two = (n: number) => String(n).padStart(2, '0');

/** Days since 1970-01-01 (a Thursday) of a calendar date. */
const epochDay = (y: number, m: number, d: number) => Date.UTC(y, m - 1, d) / DAY;

/** ISO week: week 1 starts on the Monday on or before 4 January. */
function referenceIsoWeek(y: number, m: number, d: number): string {
  const day = epochDay(y, m, d);
  const weekOneMonday = (year: number) => {
    const january4 = epochDay(year, 1, 4);
    return january4 - ((january4 + 3) % 7);
  };
  let weekYear = y + 1;
  while (day < weekOneMonday(weekYear)) weekYear--;
  return `${weekYear}-W${two(Math.floor((day - weekOneMonday(weekYear)) / 7) + 1)}`;
}

function referenceBucket(rule: string, utcMs: number, zone: Zone): string {
  const local = new Date(utcMs + zone.offsetMs(utcMs));
  const [y, m, d, h] = [local.getUTCFullYear(), local.getUTCMonth() + 1, local.getUTCDate(), local.getUTCHours()];
  if (rule === 'hourly') return `${y}-${two(m)}-${two(d)}T${two(h)}`;
  if (rule === 'daily') return `${y}-${two(m)}-${two(d)}`;
  if (rule === 'weekly') return referenceIsoWeek(y, m, d);
  if (rule === 'monthly') return `${y}-${two(m)}`;
  return String(y);
}

const RULE_ORDER = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;

/** setId → the reasons that keep it; absent = goes. */
function referenceKeep(sets: readonly RetentionCandidate[], rules: RetentionRules, zone: Zone): Map<string, string[]> {
  const kept = new Map<string, string[]>();
  const keep = (setId: string, reason: string) => kept.set(setId, [...(kept.get(setId) ?? []), reason]);
  const readable = (s: RetentionCandidate) => !Number.isNaN(Date.parse(s.startedAt));
  for (const s of sets) if (!s.valid || s.suspect || !readable(s)) keep(s.setId, 'uncounted');
  const counted = sets
    .filter((s) => s.valid && !s.suspect && readable(s))
    .map((s) => ({ setId: s.setId, ms: Date.parse(s.startedAt) }))
    .sort((a, b) => b.ms - a.ms || (a.setId < b.setId ? 1 : -1));
  const active = RULE_ORDER.filter((name) => (rules[name] ?? 0) !== 0);
  if (active.length === 0) for (const s of counted) keep(s.setId, 'no rules');
  for (const name of active) {
    const n = rules[name] ?? 0;
    const room = (length: number) => (n === -1 ? length : Math.min(n, length));
    const limit = n === -1 ? 'unlimited' : String(n);
    if (name === 'last') {
      for (const [i, s] of counted.slice(0, room(counted.length)).entries()) keep(s.setId, `last ${i + 1} of ${limit}`);
      continue;
    }
    const buckets = new Map<string, string[]>(); // insertion order: newest bucket first
    for (const s of counted) {
      const bucket = referenceBucket(name, s.ms, zone);
      buckets.set(bucket, [...(buckets.get(bucket) ?? []), s.setId]);
    }
    const chosen = [...buckets].slice(0, room(buckets.size));
    for (const [bucket, members] of chosen) keep(members[0] as string, `${name} ${bucket}`);
    const oldest = counted.at(-1);
    const oldestChosen = chosen.some(([, members]) => members[0] === oldest?.setId);
    if (oldest && (n === -1 || n > buckets.size) && !oldestChosen) {
      keep(oldest.setId, `oldest ${name} ${referenceBucket(name, oldest.ms, zone)}`);
    }
  }
  return kept;
}

/** A small seeded generator (mulberry32), so every run simulates the same history. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * 400 days from 2024-03-01 (two EU clock changes each way, a leap year's end, an ISO week-year
 * boundary): most nights one run near 03:00 UTC, some nights up to four at any time, missed
 * nights, a nine-day outage, suspect and corrupt sets, unreadable start times, identical ones.
 */
function simulateHistory(seed: number): RetentionCandidate[] {
  const random = seeded(seed);
  const start = Date.UTC(2024, 2, 1);
  const sets: RetentionCandidate[] = [];
  const add = (ms: number) => {
    const roll = random();
    const candidate = set(`sim${seed}-${String(sets.length).padStart(4, '0')}`, new Date(ms).toISOString());
    if (roll < 0.07) candidate.suspect = true;
    else if (roll < 0.1) candidate.valid = false;
    else if (roll < 0.11) candidate.startedAt = 'not-a-time';
    if (!candidate.valid && random() < 0.3) candidate.startedAt = '';
    sets.push(candidate);
    if (random() < 0.02) sets.push(set(`sim${seed}-${String(sets.length).padStart(4, '0')}`, candidate.startedAt));
  };
  for (let day = 0; day < 400; day++) {
    if (day >= 200 && day < 209) continue;
    if (random() < 0.12) continue;
    const runs = 1 + Math.floor(random() ** 2 * 4);
    for (let run = 0; run < runs; run++) {
      const minute = run === 0 ? 180 + Math.floor(random() * 20) : Math.floor(random() * 1440);
      add(start + day * DAY + minute * 60_000 + Math.floor(random() * 60) * 1000);
    }
  }
  const edges = [
    '2024-10-27T00:15:00Z', // 02:15 CEST
    '2024-10-27T00:45:00Z',
    '2024-10-27T01:15:00Z', // 02:15 CET, the same wall-clock hour again
    '2024-10-27T01:45:00Z',
    '2025-03-30T00:30:00Z', // 01:30 CET, then 03:30 CEST
    '2025-03-30T01:30:00Z',
    '2024-12-29T23:30:00Z', // Sunday in UTC, Monday of 2025-W01 in Berlin
    '2024-12-31T23:30:00Z', // New Year in Berlin and Kolkata, not in UTC
    '2024-06-30T18:45:00Z', // July in Kolkata
  ];
  for (const edge of edges) add(Date.parse(edge));
  sets.push(set(`sim${seed}-unreadable`, 'not-a-time'));
  // Shuffle: the order a target lists sets in must not matter.
  for (let i = sets.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [sets[i], sets[j]] = [sets[j] as RetentionCandidate, sets[i] as RetentionCandidate];
  }
  return sets;
}

const FIXED_RULES: readonly RetentionRules[] = [
  { last: 3, daily: 7 },
  { last: 3, daily: 7, weekly: 4, monthly: 12 },
  { daily: 30, monthly: 24 },
  { hourly: 36, yearly: -1 },
  { weekly: -1 },
  { monthly: 6, yearly: 3 },
  { last: -1 },
  { daily: 500 },
  { hourly: 5, daily: 5, weekly: 5, monthly: 5, yearly: 5 },
  { last: 0, daily: 0 },
  {},
];

function randomRules(random: () => number): RetentionRules {
  const rules: RetentionRules = {};
  for (const name of RULE_ORDER) {
    const roll = random();
    if (roll < 0.4) continue;
    rules[name] = roll < 0.5 ? 0 : roll < 0.6 ? -1 : 1 + Math.floor(random() * 60);
  }
  return rules;
}

const SEEDS = [1, 2, 3];
const scenarios = SEEDS.flatMap((seed) => {
  const sets = simulateHistory(seed);
  const random = seeded(seed * 7919);
  const rules = [...FIXED_RULES, ...Array.from({ length: 4 }, () => randomRules(random))];
  return ZONES.flatMap((zone) => rules.map((r) => ({ seed, sets, zone, rules: r })));
});

const label = (s: { seed: number; zone: Zone; rules: RetentionRules }) =>
  `seed ${s.seed}, ${s.zone.timeZone}, ${JSON.stringify(s.rules)}`;

describe('decideRetention over 400 simulated days', () => {
  it('simulates the history it claims to (gaps, several runs a day, suspect, corrupt, ties)', () => {
    const sets = simulateHistory(1);
    const days = new Set(sets.map((s) => s.startedAt.slice(0, 10)));
    assert.ok(sets.length > 400, `${sets.length} sets`);
    assert.ok(days.size < 400 && days.size > 300, `${days.size} days with sets`);
    assert.ok(sets.filter((s) => s.suspect).length >= 20);
    assert.ok(sets.filter((s) => !s.valid).length >= 10);
    assert.ok(sets.some((s) => s.valid && s.startedAt === 'not-a-time'));
    const times = sets.map((s) => s.startedAt).filter((t) => t.includes('T'));
    assert.ok(new Set(times).size < times.length, 'some sets share a start time');
    const runsPerDay = new Map<string, number>();
    for (const t of times) runsPerDay.set(t.slice(0, 10), (runsPerDay.get(t.slice(0, 10)) ?? 0) + 1);
    assert.ok([...runsPerDay.values()].filter((n) => n >= 3).length >= 10, 'some days hold several runs');
  });

  it('keeps exactly the sets the reference keeps, for the same reasons', () => {
    for (const scenario of scenarios) {
      const { sets, rules, zone } = scenario;
      const decisions = decideRetention(sets, rules, { timeZone: zone.timeZone });
      const expected = referenceKeep(sets, rules, zone);
      assert.equal(decisions.length, sets.length, label(scenario));
      assert.deepEqual(new Set(decisions.map((d) => d.setId)), new Set(sets.map((s) => s.setId)), label(scenario));
      assert.deepEqual(new Set(keptIds(decisions)), new Set(expected.keys()), label(scenario));
      for (const decision of decisions) {
        const reasons = expected.get(decision.setId);
        if (reasons === undefined || reasons[0] === 'uncounted' || reasons[0] === 'no rules') continue;
        assert.deepEqual(decision.reasons, reasons, `${label(scenario)}: ${decision.setId}`);
      }
    }
  });

  it('exercises both outcomes: something is dropped and something is kept by an "oldest" rule', () => {
    const all = scenarios.flatMap((s) => decideRetention(s.sets, s.rules, { timeZone: s.zone.timeZone }));
    assert.ok(all.some((d) => !d.keep));
    assert.ok(all.some((d) => d.reasons.some((r) => r.startsWith('oldest '))));
  });

  it('never deletes the newest valid, non-suspect set, nor any suspect or corrupt set', () => {
    for (const scenario of scenarios) {
      const decisions = decideRetention(scenario.sets, scenario.rules, { timeZone: scenario.zone.timeZone });
      const keep = new Set(keptIds(decisions));
      const counted = scenario.sets.filter((s) => s.valid && !s.suspect && !Number.isNaN(Date.parse(s.startedAt)));
      const newestMs = Math.max(...counted.map((s) => Date.parse(s.startedAt)));
      const newest = counted.filter((s) => Date.parse(s.startedAt) === newestMs);
      assert.ok(
        newest.some((s) => keep.has(s.setId)),
        label(scenario),
      );
      for (const s of scenario.sets) if (s.suspect || !s.valid) assert.ok(keep.has(s.setId), label(scenario));
    }
  });

  it('is idempotent: deciding again over what it kept keeps all of it, for the same reasons', () => {
    for (const scenario of scenarios) {
      const options = { timeZone: scenario.zone.timeZone };
      const first = decideRetention(scenario.sets, scenario.rules, options);
      const survivors = scenario.sets.filter((s) => first.find((d) => d.setId === s.setId)?.keep);
      const second = decideRetention(survivors, scenario.rules, options);
      assert.deepEqual(
        second,
        first.filter((d) => d.keep),
        label(scenario),
      );
    }
  });

  it('never deletes more when a rule is added or raised (an empty policy keeps everything, so it is left out)', () => {
    const random = seeded(42);
    for (const scenario of scenarios) {
      const { sets, rules, zone } = scenario;
      if (RULE_ORDER.every((name) => (rules[name] ?? 0) === 0)) continue;
      const options = { timeZone: zone.timeZone };
      const before = new Set(keptIds(decideRetention(sets, rules, options)));
      for (const name of RULE_ORDER) {
        const current = rules[name] ?? 0;
        if (current === -1) continue;
        const wider = { ...rules, [name]: random() < 0.2 ? -1 : current + 1 + Math.floor(random() * 10) };
        const after = new Set(keptIds(decideRetention(sets, wider, options)));
        const lost = [...before].filter((id) => !after.has(id));
        assert.deepEqual(lost, [], `${label(scenario)} → ${JSON.stringify(wider)}`);
      }
    }
  });

  it('does not depend on the order the sets are listed in', () => {
    for (const scenario of scenarios.filter((_, i) => i % 5 === 0)) {
      const options = { timeZone: scenario.zone.timeZone };
      const reversed = [...scenario.sets].reverse();
      assert.deepEqual(
        decideRetention(reversed, scenario.rules, options),
        decideRetention(scenario.sets, scenario.rules, options),
        label(scenario),
      );
    }
  });
});
