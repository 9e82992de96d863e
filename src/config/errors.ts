// Turns zod's validation issues into one problem per mistake, each saying what is wrong and how to
// fix it. Messages the schema wrote itself (unit forms, name rules, duplicates) are kept as they
// are; zod's generic ones are rewritten here with what the schema knows (descriptions, known keys).
import type { z } from 'zod';
import { schemaAt } from './schema.js';

/** One mistake in the config: where (key path) and what to do. */
export interface ConfigProblem {
  path: PropertyKey[];
  message: string;
  /** Set for an unknown key: the problem is the key itself, not its value. */
  unknownKey?: boolean;
}

/**
 * Pass as zod's per-parse error map (`{ error: markGenerated }`). Messages set on the schema take
 * precedence over it, so every message still equal to GENERATED afterwards is one zod made up.
 */
const GENERATED = '\u0000generated';
export const markGenerated = (): string => GENERATED;

/** `sources[0].paths[2]`; the top level is `(top level)`. */
export function formatKeyPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const key of path) {
    if (typeof key === 'number') text += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) text += text ? `.${key}` : key;
    else text += `[${JSON.stringify(String(key))}]`;
  }
  return text || '(top level)';
}

/** Levenshtein distance: edits (insert, delete, substitute) turning `a` into `b`. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/**
 * The known key a mistyped one most likely meant: within 2 edits ignoring case (and fewer than half
 * its letters, so `abc` does not suggest `job`), or a prefix either way of at least 3 letters.
 */
export function suggestKey(typed: string, known: readonly string[]): string | undefined {
  const lower = typed.toLowerCase();
  let best: { key: string; score: number } | undefined;
  for (const key of known) {
    const candidate = key.toLowerCase();
    const distance = editDistance(lower, candidate);
    const isPrefix = lower.length >= 3 && (candidate.startsWith(lower) || lower.startsWith(candidate));
    const isClose = distance <= 2 && distance * 2 < lower.length;
    if (!isClose && !isPrefix) continue;
    if (best === undefined || distance < best.score) best = { key, score: distance };
  }
  return best?.key;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    value = typeof value === 'object' && value !== null ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  }
  return value;
}

/** True when the last key of `path` is absent from a map that exists. */
function isMissing(input: unknown, path: readonly PropertyKey[]): boolean {
  const key = path.at(-1);
  if (key === undefined) return input === undefined;
  const parent = valueAt(input, path.slice(0, -1));
  return typeof parent === 'object' && parent !== null && !Array.isArray(parent) && !Object.hasOwn(parent, key);
}

/** A value as a human would name it in a message. */
function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map of keys';
  if (typeof value === 'string') return `text ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'number') return `the number ${value}`;
  return String(value);
}

/** zod's expected type names → what to write instead. */
const EXPECTED: Readonly<Record<string, { noun: string; fix: string }>> = {
  string: { noun: 'text', fix: 'write text; quote it if it looks like a number, date or true/false' },
  number: { noun: 'a number', fix: 'write a number' },
  int: { noun: 'a whole number', fix: 'write a whole number, like 3' },
  boolean: { noun: 'true or false', fix: 'write true or false' },
  array: { noun: 'a list', fix: 'write a list: one "- item" line per entry, or [a, b]' },
  object: { noun: 'a map of keys', fix: 'write "key: value" lines' },
};

/** One problem per mistake in a list of zod issues; `input` is the value that was parsed. */
export function problemsOf(issues: readonly z.core.$ZodIssue[], input: unknown): ConfigProblem[] {
  return issues.flatMap((issue) => problemsOfIssue(issue, input));
}

function problemsOfIssue(issue: z.core.$ZodIssue, input: unknown): ConfigProblem[] {
  const path = [...issue.path];
  if (issue.code === 'unrecognized_keys') {
    const known = schemaAt(path, input)?.keys ?? [];
    return issue.keys.map((key) => {
      const suggestion = suggestKey(key, known);
      const fix = suggestion
        ? `did you mean "${suggestion}"?`
        : `the keys allowed here are: ${known.join(', ') || 'none'}`;
      return { path: [...path, key], message: `unknown key; ${fix}`, unknownKey: true };
    });
  }
  if (isMissing(input, path) || (issue.code === 'invalid_type' && valueAt(input, path) === null)) {
    return [{ path, message: missingMessage(issue, path, input) }];
  }
  if (issue.message !== GENERATED) return [{ path, message: issue.message }];
  return [{ path, message: generatedMessage(issue, valueAt(input, path)) }];
}

function missingMessage(issue: z.core.$ZodIssue, path: readonly PropertyKey[], input: unknown): string {
  const key = path.at(-1);
  const what = valueAt(input, path) === null ? 'has no value' : 'is missing';
  const options = discriminatorValues(issue);
  if (options !== undefined) return `${what}; add "${String(key)}" with one of: ${options.join(', ')}`;
  const description = schemaAt(path, input)?.description;
  if (typeof key === 'number') {
    return `is an empty entry; fill it in${description ? ` (${description})` : ''} or remove its "-" line`;
  }
  return `${what}; add "${String(key)}"${description ? `: ${description}` : ''}`;
}

/** The valid values of a discriminated union's tag (`type`), when the issue is about one. */
function discriminatorValues(issue: z.core.$ZodIssue): string[] | undefined {
  if (issue.code !== 'invalid_union') return undefined;
  // zod 4 adds these to a discriminated union's issue without declaring them on the issue type.
  const options = (issue as { options?: unknown }).options;
  return Array.isArray(options) ? options.map(String) : undefined;
}

function generatedMessage(issue: z.core.$ZodIssue, value: unknown): string {
  switch (issue.code) {
    case 'invalid_type': {
      const expected = EXPECTED[issue.expected] ?? { noun: issue.expected, fix: `write ${issue.expected}` };
      return `expected ${expected.noun}, found ${describeValue(value)}; ${expected.fix}`;
    }
    case 'invalid_union': {
      const options = discriminatorValues(issue);
      if (options !== undefined) return `unknown kind ${JSON.stringify(value)}; use one of: ${options.join(', ')}`;
      return `${describeValue(value)} does not fit here; see the example in sample/backproof.example.yml`;
    }
    case 'invalid_value':
      return `${JSON.stringify(value)} is not allowed; use one of: ${issue.values.map(String).join(', ')}`;
    case 'too_small':
      if (issue.origin === 'array') {
        return Number(issue.minimum) === 1
          ? 'is an empty list; add at least one entry'
          : `has ${Array.isArray(value) ? value.length : 0} entries; add at least ${issue.minimum}`;
      }
      if (issue.origin === 'string') return 'is empty; write a value';
      return `${describeValue(value)} is too small; use at least ${issue.minimum}`;
    case 'too_big':
      if (issue.origin === 'array') return `has too many entries; keep at most ${issue.maximum}`;
      if (issue.origin === 'string') return `is too long; keep it to at most ${issue.maximum} characters`;
      return `${describeValue(value)} is too large; use at most ${issue.maximum}`;
    case 'invalid_format':
      return `${describeValue(value)} is not in the expected form${issue.pattern ? ` (${issue.pattern})` : ''}`;
    default:
      return `${describeValue(value)} is not valid here (${issue.code})`;
  }
}
