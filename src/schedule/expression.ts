// Schedule expressions: one text in the config must mean the same time to systemd (OnCalendar=),
// cron and the daemon (croner). So the accepted language is their common ground: the nicknames
// hourly/daily/weekly/monthly and cron expressions (5 fields, or 6 with seconds first), with
// numbers, names, `*`, lists, ranges and steps. Every field is expanded to its exact set of values
// and written out canonically for each consumer, so no consumer's own extensions or quirks matter.
// Refused: @nicknames (cron's @weekly is Sunday, systemd's weekly is Monday), `?`, `L`, `W`, `#`,
// and a day of month together with a day of week (cron fires on either, systemd only on both).

export interface Schedule {
  /** What the config says, e.g. `daily` or `30 2 * * *`. */
  readonly text: string;
  readonly seconds: readonly number[];
  readonly minutes: readonly number[];
  readonly hours: readonly number[];
  /** Days of the month, 1-31. */
  readonly days: readonly number[];
  /** Months, 1-12. */
  readonly months: readonly number[];
  /** Days of the week, 0 (Sunday) to 6. */
  readonly weekdays: readonly number[];
}

interface FieldRule {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const SECOND: FieldRule = { name: 'second', min: 0, max: 59 };
const MINUTE: FieldRule = { name: 'minute', min: 0, max: 59 };
const HOUR: FieldRule = { name: 'hour', min: 0, max: 23 };
const DAY: FieldRule = { name: 'day of month', min: 1, max: 31 };
const MONTH_NAMES = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'] as const;
const MONTH: FieldRule = { name: 'month', min: 1, max: 12, names: MONTH_NAMES };
const WEEKDAY_NAMES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] as const;
/** As written: 7 is Sunday too, as in cron. */
const WEEKDAY_INPUT: FieldRule = { name: 'day of week', min: 0, max: 7, names: WEEKDAY_NAMES };
/** As stored: 0 (Sunday) to 6. */
const WEEKDAY: FieldRule = { ...WEEKDAY_INPUT, max: 6 };
const SYSTEMD_WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;

/** The nicknames, with systemd's meaning (weekly is Monday 00:00). */
export const NICKNAMES: Readonly<Record<string, string>> = {
  hourly: '0 * * * *',
  daily: '0 0 * * *',
  weekly: '0 0 * * 1',
  monthly: '0 0 1 * *',
};

const FORMS =
  'write hourly, daily, weekly, monthly or a cron expression like "30 2 * * *" (minute hour day month weekday; ' +
  'a 6th field in front is seconds)';

/** Parses a schedule; throws an Error whose message says what is wrong and how to write it. */
export function parseSchedule(text: string): Schedule {
  const trimmed = text.trim();
  if (trimmed.startsWith('@')) {
    throw new Error(
      `"${text}": write ${trimmed.slice(1)} without "@" (cron's @weekly is Sunday but systemd's weekly is Monday, ` +
        'so backproof has its own: weekly means Monday 00:00)',
    );
  }
  const expression = NICKNAMES[trimmed.toLowerCase()] ?? trimmed;
  const fields = expression.split(/\s+/).filter(Boolean);
  if (fields.length !== 5 && fields.length !== 6) {
    throw new Error(`"${text}" is not a schedule (${fields.length} fields); ${FORMS}`);
  }
  const [second, minute, hour, day, month, weekday] = (fields.length === 5 ? ['0', ...fields] : fields) as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const parse = (field: string, rule: FieldRule): number[] => {
    try {
      return parseField(field, rule);
    } catch (error) {
      throw new Error(`"${text}": ${(error as Error).message}; ${FORMS}`);
    }
  };
  const schedule: Schedule = {
    text,
    seconds: parse(second, SECOND),
    minutes: parse(minute, MINUTE),
    hours: parse(hour, HOUR),
    days: parse(day, DAY),
    months: parse(month, MONTH),
    weekdays: [...new Set(parse(weekday, WEEKDAY_INPUT).map((d) => d % 7))].sort((a, b) => a - b),
  };
  if (!isEvery(schedule.days, DAY) && !isEvery(schedule.weekdays, WEEKDAY)) {
    throw new Error(
      `"${text}" restricts both the day of the month and the day of the week; cron runs when either matches and ` +
        'systemd only when both do, so write one of them as *',
    );
  }
  return schedule;
}

function parseField(field: string, rule: FieldRule): number[] {
  const values = new Set<number>();
  for (const item of field.split(',')) {
    const match = /^(\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:\/(\d+))?$/.exec(item);
    if (!match) throw new Error(`${rule.name} "${item}" is not a number, name, *, range a-b or step /n`);
    const [, span = '', stepText] = match;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1) throw new Error(`${rule.name} step "/${stepText}" must be at least 1`);
    let low: number;
    let high: number;
    if (span === '*') {
      low = rule.min;
      high = rule.max;
    } else {
      const [from = '', to] = span.split('-');
      low = fieldValue(from, rule);
      // `5/15` means from 5 to the end, every 15 (as croner and systemd read it).
      high = to === undefined ? (stepText === undefined ? low : rule.max) : fieldValue(to, rule);
      if (high < low) throw new Error(`${rule.name} range "${span}" runs backwards; write the smaller value first`);
    }
    for (let value = low; value <= high; value += step) values.add(value);
  }
  return [...values].sort((a, b) => a - b);
}

function fieldValue(text: string, rule: FieldRule): number {
  if (/^\d+$/.test(text)) {
    const value = Number(text);
    if (value < rule.min || value > rule.max)
      throw new Error(`${rule.name} ${value} is out of range (${rule.min} to ${rule.max})`);
    return value;
  }
  const index = rule.names?.indexOf(text.toUpperCase() as never) ?? -1;
  if (index < 0) throw new Error(`${rule.name} "${text}" is not a number${rule.names ? ' or a name' : ''}`);
  return rule.min + index;
}

function isEvery(values: readonly number[], rule: FieldRule): boolean {
  return values.length === rule.max - rule.min + 1;
}

/** Consecutive runs of values: [1,2,3,5] → [[1,3],[5,5]]. */
function runs(values: readonly number[]): [number, number][] {
  const result: [number, number][] = [];
  for (const value of values) {
    const last = result.at(-1);
    if (last && last[1] === value - 1) last[1] = value;
    else result.push([value, value]);
  }
  return result;
}

function listOf(values: readonly number[], rule: FieldRule, range: string, show: (n: number) => string): string {
  if (isEvery(values, rule)) return '*';
  return runs(values)
    .map(([a, b]) => (a === b ? show(a) : b === a + 1 ? `${show(a)},${show(b)}` : `${show(a)}${range}${show(b)}`))
    .join(',');
}

const pad = (n: number) => String(n).padStart(2, '0');

/** systemd's OnCalendar= form, e.g. `Mon *-*-* 00:00:00`. */
export function toOnCalendar(schedule: Schedule): string {
  const weekdays = isEvery(schedule.weekdays, WEEKDAY)
    ? ''
    : `${listOf(schedule.weekdays, WEEKDAY, '..', (d) => SYSTEMD_WEEKDAYS[d] ?? '')} `;
  const month = listOf(schedule.months, MONTH, '..', pad);
  const day = listOf(schedule.days, DAY, '..', pad);
  const hour = listOf(schedule.hours, HOUR, '..', pad);
  const minute = listOf(schedule.minutes, MINUTE, '..', pad);
  const second = listOf(schedule.seconds, SECOND, '..', pad);
  return `${weekdays}*-${month}-${day} ${hour}:${minute}:${second}`;
}

/** Whether cron can express it: cron has no seconds, so only schedules at second 0. */
export function cronCanExpress(schedule: Schedule): boolean {
  return schedule.seconds.length === 1 && schedule.seconds[0] === 0;
}

/** The five cron fields (minute hour day month weekday), plain numbers only. Throws for a schedule with seconds. */
export function toCronFields(schedule: Schedule): string {
  if (!cronCanExpress(schedule)) {
    throw new Error(
      `schedule "${schedule.text}" fires at seconds other than 0, which cron cannot express; ` +
        'use systemd timers or the daemon, or write it with 5 fields',
    );
  }
  return cronBody(schedule);
}

function cronBody(schedule: Schedule): string {
  return [
    listOf(schedule.minutes, MINUTE, '-', String),
    listOf(schedule.hours, HOUR, '-', String),
    listOf(schedule.days, DAY, '-', String),
    listOf(schedule.months, MONTH, '-', String),
    listOf(schedule.weekdays, WEEKDAY, '-', String),
  ].join(' ');
}

/** The six-field pattern (seconds first) croner runs. */
export function toCronerPattern(schedule: Schedule): string {
  return `${listOf(schedule.seconds, SECOND, '-', String)} ${cronBody(schedule)}`;
}
