// Sizes, durations, percentages and counts: parsed from config text, formatted for humans.
// Everything is integer arithmetic (BigInt where a product could pass 2^53), so no result is ever
// a float and no output ever contains an exponent like `2.9094e+08`.

const SIZE_FORMS = 'write it like 600MB, 1GiB or 1048576 (bytes)';
const DURATION_FORMS = 'write it like 850ms, 30s, 10m, 1h30m, 26h or 7d (units: ms, s, m, h, d, w)';
const PERCENT_FORMS = 'write it like 20%, 12.5% or 0%';

const KILO = 1000n;
const KIBI = 1024n;

/** Multiplier of each size unit, keyed by its lowercase spelling. */
const SIZE_UNITS: Readonly<Record<string, bigint>> = {
  '': 1n,
  b: 1n,
  kb: KILO,
  mb: KILO ** 2n,
  gb: KILO ** 3n,
  tb: KILO ** 4n,
  pb: KILO ** 5n,
  kib: KIBI,
  mib: KIBI ** 2n,
  gib: KIBI ** 3n,
  tib: KIBI ** 4n,
  pib: KIBI ** 5n,
};

/** Bare prefixes (`1G`, `1Mi`): tools disagree whether `G` means 10^9 or 2^30, so they are refused. */
const BARE_PREFIXES = new Set(['k', 'm', 'g', 't', 'p', 'ki', 'mi', 'gi', 'ti', 'pi']);

/** A non-negative decimal number as an exact fraction: `12.5` → { numerator: 125n, denominator: 10n }. */
interface Decimal {
  numerator: bigint;
  denominator: bigint;
}

function decimal(whole: string, fraction: string | undefined): Decimal {
  const digits = fraction ?? '';
  return { numerator: BigInt(whole + digits), denominator: 10n ** BigInt(digits.length) };
}

/** `value × multiplier`, rounded down, or undefined when it is not a safe integer. */
function scaled(value: Decimal, multiplier: bigint): number | undefined {
  const result = (value.numerator * multiplier) / value.denominator;
  return result <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(result) : undefined;
}

/**
 * Bytes in a size. `B` = 1; `KB` `MB` `GB` `TB` `PB` are powers of 1000; `KiB` `MiB` `GiB` `TiB` `PiB`
 * powers of 1024; a plain integer is bytes. Decimals are allowed (`1.5GB`) and the result is
 * rounded down to whole bytes. Units are case-insensitive (`mb`, `kB`, `GIB`) with two exceptions,
 * refused because they are ambiguous:
 * - a lowercase `b` after an uppercase letter (`Mb`, `GiB` is fine but `Gib` is not) reads as bits;
 * - a bare prefix (`1G`, `1Mi`) means 10^9 to some tools and 2^30 to others.
 * No signs, no exponents, and the result must be a safe integer.
 */
export function parseSize(text: string): number {
  const match = /^\s*(\d+)(?:\.(\d+))?\s*([A-Za-z]*)\s*$/.exec(text);
  const whole = match?.[1];
  const unit = match?.[3] ?? '';
  if (match === null || whole === undefined) throw new Error(`"${text}" is not a size; ${SIZE_FORMS}`);
  const lower = unit.toLowerCase();
  if (BARE_PREFIXES.has(lower)) {
    const prefix = unit.charAt(0).toUpperCase();
    throw new Error(
      `"${text}" is ambiguous: write ${whole}${match[2] ? `.${match[2]}` : ''}${prefix}B for powers of 1000 ` +
        `or ${whole}${match[2] ? `.${match[2]}` : ''}${prefix}iB for powers of 1024`,
    );
  }
  const multiplier = SIZE_UNITS[lower];
  if (multiplier === undefined) throw new Error(`"${text}" is not a size; ${SIZE_FORMS}`);
  if (/[A-Z]/.test(unit) && unit.endsWith('b')) {
    throw new Error(`"${text}" reads as bits (lowercase b); write ${unit.slice(0, -1)}B for bytes`);
  }
  const bytes = scaled(decimal(whole, match[2]), multiplier);
  if (bytes === undefined) {
    throw new Error(`"${text}" is too large: the limit is ${Number.MAX_SAFE_INTEGER} bytes (about 9PB)`);
  }
  return bytes;
}

/** Milliseconds per duration unit, largest first: the order parts must come in. */
const DURATION_UNITS: ReadonlyArray<readonly [string, bigint]> = [
  ['w', 7n * 24n * 3_600_000n],
  ['d', 24n * 3_600_000n],
  ['h', 3_600_000n],
  ['m', 60_000n],
  ['s', 1000n],
  ['ms', 1n],
];

/**
 * Milliseconds in a duration: `850ms`, `30s`, `10m`, `1h30m`, `1.5h`, `7d`, `2w`. Units are
 * lowercase (`M` could be read as months), each at most once and largest first; a number alone
 * is refused because its unit would be a guess. Fractions of a millisecond are rounded down.
 */
export function parseDuration(text: string): number {
  const body = text.trim();
  const partPattern = /(\d+)(?:\.(\d+))?\s*(ms|s|m|h|d|w)\s*/y;
  let total = 0n;
  let lastRank = -1;
  let offset = 0;
  while (offset < body.length) {
    partPattern.lastIndex = offset;
    const part = partPattern.exec(body);
    const whole = part?.[1];
    const unit = part?.[3];
    const rank = DURATION_UNITS.findIndex(([name]) => name === unit);
    const perUnit = DURATION_UNITS[rank]?.[1];
    if (part === null || whole === undefined || perUnit === undefined) {
      throw new Error(`"${text}" is not a duration; ${DURATION_FORMS}`);
    }
    if (rank <= lastRank) {
      throw new Error(`"${text}" is not a duration: write each unit once, largest first (like 1h30m)`);
    }
    const value = decimal(whole, part[2]);
    total += (value.numerator * perUnit) / value.denominator;
    lastRank = rank;
    offset = partPattern.lastIndex;
  }
  if (lastRank === -1) throw new Error(`"${text}" is not a duration; ${DURATION_FORMS}`);
  if (total > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`"${text}" is too long a duration`);
  return Number(total);
}

/**
 * Basis points (1% = 100) in a percentage: `20%` → 2000, `12.5%` → 1250; a number (`10`) or a
 * string without `%` means percent too. Finer than a basis point is rounded down; no negatives.
 */
export function parsePercent(text: string | number): number {
  const source = typeof text === 'number' ? String(text) : text;
  const match = /^\s*(\d+)(?:\.(\d+))?\s*%?\s*$/.exec(source);
  const whole = match?.[1];
  if (match === null || whole === undefined) throw new Error(`"${source}" is not a percentage; ${PERCENT_FORMS}`);
  const basisPoints = scaled(decimal(whole, match[2]), 100n);
  if (basisPoints === undefined) throw new Error(`"${source}" is too large a percentage`);
  return basisPoints;
}

/** An integer as a BigInt: rounds a stray fraction, refuses NaN and Infinity. */
function integerOf(value: number, what: string): bigint {
  if (!Number.isFinite(value)) throw new RangeError(`${what} must be a finite number, got ${value}`);
  return BigInt(Math.round(value));
}

/** `n / d` rounded half up, for non-negative operands. */
function roundedDivision(n: bigint, d: bigint): bigint {
  return (2n * n + d) / (2n * d);
}

const BYTE_UNITS = ['kB', 'MB', 'GB', 'TB', 'PB'] as const;

/** A size for humans, in decimal units with one decimal: `0 B`, `999 B`, `1.0 kB`, `290.9 MB`, `4.3 GB`. */
export function formatBytes(bytes: number): string {
  const value = integerOf(bytes, 'a size');
  if (value < 0n) return `-${formatBytes(-Number(value))}`;
  if (value < KILO) return `${value} B`;
  let exponent = 1;
  while (exponent < BYTE_UNITS.length && value >= KILO ** BigInt(exponent + 1)) exponent++;
  let tenths = roundedDivision(value * 10n, KILO ** BigInt(exponent));
  // 999_950 bytes rounds to 1000.0 kB: say 1.0 MB instead.
  if (tenths >= 10_000n && exponent < BYTE_UNITS.length) {
    exponent++;
    tenths = roundedDivision(value * 10n, KILO ** BigInt(exponent));
  }
  return `${tenths / 10n}.${tenths % 10n} ${BYTE_UNITS[exponent - 1]}`;
}

const twoDigits = (n: bigint): string => n.toString().padStart(2, '0');

/**
 * A duration for humans: `850ms`, `12.3s`, `4m05s`, `26h00m` (under two days), `3d04h`.
 * Rounded down at the shown precision, so 59.99s never shows as `60.0s`.
 */
export function formatDuration(ms: number): string {
  const value = integerOf(ms, 'a duration');
  if (value < 0n) return `-${formatDuration(-Number(value))}`;
  if (value < 1000n) return `${value}ms`;
  if (value < 60_000n) return `${value / 1000n}.${(value % 1000n) / 100n}s`;
  const seconds = value / 1000n;
  if (seconds < 3600n) return `${seconds / 60n}m${twoDigits(seconds % 60n)}s`;
  const minutes = seconds / 60n;
  if (minutes < 48n * 60n) return `${minutes / 60n}h${twoDigits(minutes % 60n)}m`;
  const hours = minutes / 60n;
  return `${hours / 24n}d${twoDigits(hours % 24n)}h`;
}

/** A count with thousands separators: `1,000,000`. */
export function formatCount(n: number): string {
  const value = integerOf(n, 'a count');
  const sign = value < 0n ? '-' : '';
  const digits = (value < 0n ? -value : value).toString();
  return sign + digits.replace(/\B(?=(\d{3})+$)/g, ',');
}
