// Schedule expressions mean the same time everywhere: the OnCalendar= form is run through the real
// `systemd-analyze calendar`, the cron and croner forms through croner, and their next elapses must
// be identical.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { Cron } from 'croner';
import {
  cronCanExpress,
  parseSchedule,
  toCronerPattern,
  toCronFields,
  toOnCalendar,
} from '../../src/schedule/expression.js';

/** No case fires at this second, so "after the base" means the same to systemd and croner. */
const BASE = '2025-01-01T00:00:30Z';
const ITERATIONS = 12;

/** The next elapses systemd computes for an OnCalendar= expression, in UTC. */
function systemdElapses(onCalendar: string): string[] {
  const out = execFileSync(
    'systemd-analyze',
    [
      'calendar',
      `--iterations=${ITERATIONS}`,
      `--base-time=${BASE.replace('T', ' ').replace('Z', ' UTC')}`,
      onCalendar,
    ],
    { encoding: 'utf8', env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' } },
  );
  return [...out.matchAll(/(?:Next elapse|Iter\. #\d+): \w{3} (\S+ \S+) UTC/g)].map(
    (m) => `${(m[1] ?? '').replace(' ', 'T')}.000Z`,
  );
}

function cronerElapses(pattern: string): string[] {
  return new Cron(pattern, { timezone: 'UTC', paused: true })
    .nextRuns(ITERATIONS, new Date(BASE))
    .map((d) => d.toISOString());
}

describe('schedule expressions', () => {
  const cases: [string, string, string][] = [
    // text, OnCalendar, cron fields
    ['daily', '*-*-* 00:00:00', '0 0 * * *'],
    ['hourly', '*-*-* *:00:00', '0 * * * *'],
    ['weekly', 'Mon *-*-* 00:00:00', '0 0 * * 1'],
    ['Monthly', '*-*-01 00:00:00', '0 0 1 * *'],
    ['30 2 * * *', '*-*-* 02:30:00', '30 2 * * *'],
    ['*/15 2-4 * * MON-FRI', 'Mon..Fri *-*-* 02..04:00,15,30,45:00', '0,15,30,45 2-4 * * 1-5'],
    ['0 7 * * 0', 'Sun *-*-* 07:00:00', '0 7 * * 0'],
    ['0 7 * * 7', 'Sun *-*-* 07:00:00', '0 7 * * 0'],
    ['0 12 1,15 jan-mar,dec *', '*-01..03,12-01,15 12:00:00', '0 12 1,15 1-3,12 *'],
    ['5/20 1 * * sat,sun', 'Sun,Sat *-*-* 01:05,25,45:00', '5,25,45 1 * * 0,6'],
    ['0 0 * * 1-7', '*-*-* 00:00:00', '0 0 * * *'],
    ['0 0 1-31 * MON', 'Mon *-*-* 00:00:00', '0 0 * * 1'],
    ['*/20 * * * * *', '*-*-* *:*:00,20,40', ''],
  ];
  for (const [text, onCalendar, cron] of cases) {
    it(`"${text}" → ${onCalendar}; systemd, cron and croner agree on the next ${ITERATIONS} runs`, () => {
      const schedule = parseSchedule(text);
      assert.equal(toOnCalendar(schedule), onCalendar);
      const expected = cronerElapses(toCronerPattern(schedule));
      assert.equal(expected.length, ITERATIONS);
      assert.deepEqual(systemdElapses(toOnCalendar(schedule)), expected);
      if (cron) {
        assert.equal(toCronFields(schedule), cron);
        // The cron line, read by a cron parser (croner in 5-field mode), fires at the same times.
        assert.deepEqual(cronerElapses(toCronFields(schedule)), expected);
      } else {
        assert.equal(cronCanExpress(schedule), false);
        assert.throws(() => toCronFields(schedule), /seconds other than 0, which cron cannot express/);
      }
    });
  }

  const refusals: [string, RegExp][] = [
    ['@daily', /write daily without "@"/],
    ['0 0 1 * 1', /restricts both the day of the month and the day of the week/],
    ['61 * * * *', /minute 61 is out of range \(0 to 59\)/],
    ['0 24 * * *', /hour 24 is out of range/],
    ['0 0 0 * *', /day of month 0 is out of range/],
    ['0 0 * 13 *', /month 13 is out of range/],
    ['0 0 * * 8', /day of week 8 is out of range/],
    ['0 0 * * 5-1', /runs backwards/],
    ['*/0 * * * *', /step "\/0" must be at least 1/],
    ['0 0 L * *', /not a number/],
    ['0 0 * * FRI#2', /not a number, name/],
    ['0 0 ? * *', /not a number, name/],
    ['0 0 * * funday', /"funday" is not a number or a name/],
    ['0 0 * *', /4 fields/],
    ['1 2 3 4 5 6 7', /7 fields/],
    ['Mon *-*-* 00:00:00', /is not a schedule|not a number/],
    ['', /0 fields/],
  ];
  for (const [text, message] of refusals) {
    it(`refuses ${JSON.stringify(text)} and says how to write it`, () => {
      assert.throws(
        () => parseSchedule(text),
        (error: Error) => {
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }
});
