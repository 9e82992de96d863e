// Rows per table of a restored database against the manifest's: the reconciliation of a drill.
import type { RowDifference } from './types.js';

/**
 * Every table whose rows differ, sorted by name: a count that differs, a table the manifest lists
 * that the database lacks (`actual` null), or one the database has that the manifest does not
 * list (`expected` null). Empty when they agree exactly.
 */
export function compareRows(expected: Record<string, number>, actual: Record<string, number>): RowDifference[] {
  const names = [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort();
  const differences: RowDifference[] = [];
  for (const table of names) {
    const want = Object.hasOwn(expected, table) ? (expected[table] ?? null) : null;
    const have = Object.hasOwn(actual, table) ? (actual[table] ?? null) : null;
    if (want !== have) differences.push({ table, expected: want, actual: have });
  }
  return differences;
}

/** One line for a difference: `app.users: 1000 rows expected, 998 found`. */
export function describeRowDifference(difference: RowDifference): string {
  const { table, expected, actual } = difference;
  if (actual === null) return `${table}: ${expected} rows expected, but the table is missing`;
  if (expected === null) return `${table}: ${actual} rows found in a table the manifest does not list`;
  return `${table}: ${expected} rows expected, ${actual} found`;
}
