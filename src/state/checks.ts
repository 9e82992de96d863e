// What may go into the state database: integers that survive the round trip, UTC timestamps in
// one sortable form, and JSON. A wrong value is a bug in the caller, reported before any write.

const utcIso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** A UTC ISO-8601 timestamp (`…Z`), normalised to `Date#toISOString` form so that text order is time order. */
export function utcTimestamp(value: string, what: string): string {
  const time = utcIso.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(time)) {
    throw new RangeError(
      `state database: ${what} must be a UTC ISO-8601 timestamp like 2025-11-04T03:00:00.000Z, got ${JSON.stringify(value)}`,
    );
  }
  return new Date(time).toISOString();
}

/** A size or a count: an integer from 0 to 2^53-1. */
export function count(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`state database: ${what} must be an integer from 0 to 2^53-1, got ${String(value)}`);
  }
  return value;
}

export function integer(value: number, what: string): number {
  if (!Number.isSafeInteger(value)) {
    throw new RangeError(`state database: ${what} must be an integer, got ${String(value)}`);
  }
  return value;
}

export function text(value: string, what: string): string {
  if (typeof value !== 'string' || value === '') {
    throw new RangeError(`state database: ${what} must be a non-empty string, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function oneOf<T extends string>(value: T, allowed: readonly T[], what: string): T {
  if (!allowed.includes(value)) {
    throw new RangeError(`state database: ${what} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Rows per table: every value a count. */
export function tableCounts(tables: Record<string, number>, what: string): Record<string, number> {
  for (const [table, rows] of Object.entries(tables)) count(rows, `${what}["${table}"]`);
  return tables;
}

/** JSON text for a JSON column; undefined stores NULL. */
export function toJson(value: unknown, what: string): string | null {
  if (value === undefined) return null;
  try {
    return JSON.stringify(value) ?? null; // functions and symbols have no JSON
  } catch (error) {
    throw new RangeError(`state database: ${what} cannot be stored as JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

export function fromJson(value: string | null): unknown {
  return value === null ? null : JSON.parse(value);
}
