// Retention: which committed sets of one target to keep, as a pure function (no I/O, no clock).
//
// The rules mean what restic's `forget --keep-*` means (internal/restic/snapshot_policy.go):
// - sets are taken newest first; `last n` keeps the n newest;
// - `hourly|daily|weekly|monthly|yearly n` keeps the newest set of each of the n newest hours,
//   days, ISO weeks (Monday to Sunday, ISO week-numbering year), months or years that hold a set;
// - `-1` means unlimited; `0` or absent means the rule is off; a set may be kept by several rules;
// - when a rule still has room after every bucket is used, the oldest set is kept too ("oldest …"),
//   as restic does since 0.17, so a young history is not trimmed to less than the rules allow;
// - no rule at all keeps everything.
// Where backproof differs, on purpose:
// - suspect sets and sets whose manifest is corrupt never count toward a rule and are never deleted
//   here: they are kept for a human to inspect or verify (restic has no such notion);
// - buckets are taken in one configured IANA time zone (default UTC) from each set's `startedAt`,
//   not in the zone each timestamp was written in. As with restic's local time, the repeated hour
//   when clocks go back is one hourly bucket;
// - sets that started at the same instant are ordered by setId, descending (restic: listing order);
// - the newest valid, non-suspect set is always kept, whatever the rules say;
// - there is no keep-within or keep-tag.
// When retention runs (only after a verified, non-suspect new set; never for append-only targets)
// is the caller's business.

export interface RetentionRules {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
}

export interface RetentionCandidate {
  setId: string;
  /** UTC ISO-8601, from the manifest. */
  startedAt: string;
  suspect: boolean;
  /** False when the manifest failed validation. */
  valid: boolean;
}

export interface RetentionDecision {
  setId: string;
  keep: boolean;
  /** Every rule that keeps the set (`last 1 of 3`, `daily 2025-11-04`), or why each rule lets it go. */
  reasons: string[];
}

export interface RetentionOptions {
  /** IANA time zone in which hours, days, weeks, months and years begin. Default: UTC. */
  timeZone?: string;
}

const RULE_NAMES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
type RuleName = (typeof RULE_NAMES)[number];

interface LocalTime {
  year: number;
  month: number;
  day: number;
  hour: number;
}

const BUCKET_RULES = {
  hourly: { unit: 'hour', bucket: (t: LocalTime) => `${ymd(t)}T${pad(t.hour, 2)}` },
  daily: { unit: 'day', bucket: ymd },
  weekly: { unit: 'week', bucket: isoWeek },
  monthly: { unit: 'month', bucket: (t: LocalTime) => `${pad(t.year, 4)}-${pad(t.month, 2)}` },
  yearly: { unit: 'year', bucket: (t: LocalTime) => pad(t.year, 4) },
} as const satisfies Record<Exclude<RuleName, 'last'>, { unit: string; bucket: (t: LocalTime) => string }>;

const ISO_INSTANT = /^(\d{4})-(\d{2})-(\d{2})T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Decide, for every set of one target, whether retention keeps it and why.
 * Decisions come newest first (sets without a readable start time last).
 * Throws on a rule that is not a whole number >= -1, an unknown time zone, or a repeated setId.
 */
export function decideRetention(
  sets: readonly RetentionCandidate[],
  rules: RetentionRules,
  options: RetentionOptions = {},
): RetentionDecision[] {
  const active = activeRules(rules);
  const localTime = localTimeReader(options.timeZone ?? 'UTC');
  assertUniqueIds(sets);

  const ordered = sets
    .map((set) => ({ set, ms: startedAtMs(set.startedAt) }))
    .sort((a, b) => newestFirst(a.ms, b.ms) || compareDescending(a.set.setId, b.set.setId));

  const decisions = new Map<string, RetentionDecision>();
  const counted: { setId: string; time: LocalTime }[] = [];
  for (const { set, ms } of ordered) {
    if (!set.valid) decisions.set(set.setId, kept(set.setId, 'corrupt manifest: kept, run verify'));
    else if (ms === null) {
      const why = `startedAt ${JSON.stringify(set.startedAt)} is not a UTC ISO-8601 time: kept, run verify`;
      decisions.set(set.setId, kept(set.setId, why));
    } else if (set.suspect) decisions.set(set.setId, kept(set.setId, 'suspect: kept for inspection'));
    else if (active.length === 0) decisions.set(set.setId, kept(set.setId, 'no retention rules: everything is kept'));
    else counted.push({ setId: set.setId, time: localTime(ms) });
  }

  for (const decision of applyRules(counted, active)) decisions.set(decision.setId, decision);
  return ordered.map(({ set }) => decisions.get(set.setId) as RetentionDecision);
}

interface ActiveRule {
  name: RuleName;
  /** How many buckets the rule may keep; -1 = unlimited. */
  count: number;
}

function activeRules(rules: RetentionRules): ActiveRule[] {
  const active: ActiveRule[] = [];
  for (const name of RULE_NAMES) {
    const count = rules[name];
    if (count === undefined) continue;
    if (!Number.isInteger(count) || count < -1) {
      throw new RangeError(
        `retention.${name} must be a whole number of ${name === 'last' ? 'sets' : 'buckets'} (0 = off, -1 = unlimited), got ${String(count)}`,
      );
    }
    if (count !== 0) active.push({ name, count });
  }
  return active;
}

/** restic's single pass over the counted sets, newest first, with a budget per rule. */
function applyRules(counted: readonly { setId: string; time: LocalTime }[], active: readonly ActiveRule[]) {
  // restic compares with the last kept bucket only; a set of kept buckets means the same wherever
  // local time never revisits an earlier bucket, and stays right where it does (a zone that once
  // turned its clocks back across midnight).
  const state = active.map((rule) => ({ ...rule, left: rule.count, keptBuckets: new Set<string>() }));
  return counted.map(({ setId, time }, position): RetentionDecision => {
    const isOldest = position === counted.length - 1;
    const keeps: string[] = [];
    const drops: string[] = [];
    for (const rule of state) {
      const limit = rule.count === -1 ? 'unlimited' : String(rule.count);
      if (rule.name === 'last') {
        if (rule.left === 0) drops.push(`last: beyond the ${limit} newest`);
        else {
          keeps.push(`last ${position + 1} of ${limit}`);
          if (rule.left > 0) rule.left--;
        }
        continue;
      }
      const { unit, bucket: bucketOf } = BUCKET_RULES[rule.name];
      const bucket = bucketOf(time);
      const taken = rule.keptBuckets.has(bucket);
      if (!taken && rule.left !== 0) {
        keeps.push(`${rule.name} ${bucket}`);
        rule.keptBuckets.add(bucket);
        if (rule.left > 0) rule.left--;
      } else if (taken && isOldest && rule.left !== 0) keeps.push(`oldest ${rule.name} ${bucket}`);
      else if (taken) drops.push(`${rule.name} ${bucket}: a newer set is kept for this ${unit}`);
      else drops.push(`${rule.name} ${bucket}: beyond the ${limit} newest ${unit}s with sets`);
    }
    // Valid rules always keep the newest set; this makes Principle 2 independent of the rule code.
    if (position === 0 && keeps.length === 0) keeps.push('newest valid set: always kept');
    return keeps.length > 0 ? { setId, keep: true, reasons: keeps } : { setId, keep: false, reasons: drops };
  });
}

function kept(setId: string, reason: string): RetentionDecision {
  return { setId, keep: true, reasons: [reason] };
}

function assertUniqueIds(sets: readonly RetentionCandidate[]): void {
  const seen = new Set<string>();
  for (const { setId } of sets) {
    if (seen.has(setId)) throw new Error(`retention: set ${setId} is listed twice; list each set of a target once`);
    seen.add(setId);
  }
}

function startedAtMs(startedAt: string): number | null {
  const match = ISO_INSTANT.exec(startedAt);
  if (!match) return null;
  // Date.parse rolls 2025-02-30 over into March; such a date is not a time a run started at.
  const [year, month, day] = [match[1], match[2], match[3]].map(Number) as [number, number, number];
  const calendar = new Date(0);
  calendar.setUTCFullYear(year, month - 1, day);
  if (calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day) return null;
  const ms = Date.parse(startedAt);
  return Number.isFinite(ms) ? ms : null;
}

function newestFirst(a: number | null, b: number | null): number {
  if (a === null || b === null) return (a === null ? 1 : 0) - (b === null ? 1 : 0);
  return b - a;
}

function compareDescending(a: string, b: string): number {
  return a < b ? 1 : a > b ? -1 : 0;
}

/** Wall-clock fields of an instant in a time zone, by Intl (no dependency). */
function localTimeReader(timeZone: string): (ms: number) => LocalTime {
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      hourCycle: 'h23',
    });
  } catch (error) {
    const message = `retention time zone ${JSON.stringify(timeZone)} is unknown: use an IANA name such as UTC or Europe/Berlin`;
    throw new RangeError(message, { cause: error });
  }
  return (ms) => {
    const fields: Record<string, number> = {};
    for (const part of format.formatToParts(ms)) fields[part.type] = Number(part.value);
    return {
      year: fields.year ?? Number.NaN,
      month: fields.month ?? Number.NaN,
      day: fields.day ?? Number.NaN,
      hour: fields.hour ?? Number.NaN,
    };
  };
}

function ymd(t: LocalTime): string {
  return `${pad(t.year, 4)}-${pad(t.month, 2)}-${pad(t.day, 2)}`;
}

/** ISO 8601 week `YYYY-Www`: weeks start on Monday; week 1 holds the year's first Thursday. */
function isoWeek(t: LocalTime): string {
  const DAY_MS = 86_400_000;
  const date = new Date(0);
  date.setUTCFullYear(t.year, t.month - 1, t.day);
  const mondayBased = (date.getUTCDay() + 6) % 7;
  const thursday = new Date(date.getTime() + (3 - mondayBased) * DAY_MS);
  const weekYear = thursday.getUTCFullYear();
  const januaryFirst = new Date(0);
  januaryFirst.setUTCFullYear(weekYear, 0, 1);
  const week = Math.floor((thursday.getTime() - januaryFirst.getTime()) / DAY_MS / 7) + 1;
  return `${pad(weekYear, 4)}-W${pad(week, 2)}`;
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}
