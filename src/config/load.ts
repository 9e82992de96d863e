// Finding, reading and validating the config file. Every problem is reported at once, each as
// `<file>:<line>: <key.path>: <what is wrong>; <how to fix>`, in one ConfigError.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { type Document, isAlias, isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { ConfigError, messageOf } from '../lib/errors.js';
import { type ConfigProblem, formatKeyPath, markGenerated, problemsOf } from './errors.js';
import { type JobConfig, jobConfigSchema, resolveConfigPaths } from './schema.js';

export interface LoadedConfig {
  /** Absolute path of the file read. */
  path: string;
  config: JobConfig;
  /** The file's text as read (for `config.redacted.yml` beside each set). */
  raw: string;
}

const DEFAULT_FILE = 'backproof.yml';

/** The config file to use: `--config`, else $BACKPROOF_CONFIG, else ./backproof.yml if it exists. */
export function resolveConfigPath(
  flag?: string,
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): string {
  if (flag !== undefined && flag !== '') return resolve(cwd, flag);
  const fromEnv = env.BACKPROOF_CONFIG;
  if (fromEnv !== undefined && fromEnv !== '') return resolve(cwd, fromEnv);
  const local = join(cwd, DEFAULT_FILE);
  if (existsSync(local)) return local;
  throw new ConfigError(
    `no config file: pass --config FILE, set BACKPROOF_CONFIG=FILE, or create ${DEFAULT_FILE} in ${cwd} ` +
      '(sample/backproof.example.yml is a complete example)',
  );
}

/** Reads and validates a config file; relative paths in it are taken from the file's directory. */
export async function loadConfig(path: string): Promise<LoadedConfig> {
  const absolute = resolve(path);
  let raw: string;
  try {
    raw = await readFile(absolute, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${absolute}: ${readFailure(error)}`);
  }
  return { path: absolute, config: parseConfigText(raw, absolute, dirname(absolute)), raw };
}

function readFailure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'it does not exist; check --config or $BACKPROOF_CONFIG';
  if (code === 'EACCES') return 'permission denied; run as a user who may read it';
  if (code === 'EISDIR') return 'it is a directory; point to the YAML file itself';
  return messageOf(error);
}

/** Parses and validates config text. `fileName` is used in messages; relative paths resolve from `baseDir`. */
export function parseConfigText(text: string, fileName: string, baseDir: string): JobConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      `${fileName} is not valid YAML; fix the syntax at the place shown`,
      doc.errors.map((error) => {
        const { line, col } = lineCounter.linePos(error.pos[0]);
        return `${fileName}:${line}:${col}: ${error.message}`;
      }),
    );
  }
  let input: unknown;
  try {
    input = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    throw new ConfigError(`${fileName} is not valid YAML: ${messageOf(error)}`);
  }
  if (input === null || input === undefined) {
    throw new ConfigError(`${fileName} is empty; fix and run again`, [
      `${fileName}:1: (top level): the file is empty; start from the example in sample/backproof.example.yml`,
    ]);
  }
  const result = jobConfigSchema.safeParse(input, { error: markGenerated });
  if (!result.success) {
    const problems = problemsOf(result.error.issues, input)
      .map((problem) => ({ problem, line: lineOf(doc, lineCounter, problem) }))
      .sort((a, b) => a.line - b.line)
      .map(({ problem, line }) => `${fileName}:${line}: ${formatKeyPath(problem.path)}: ${problem.message}`);
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
    throw new ConfigError(`${fileName} is not a valid backproof config (${count}); fix and run again`, problems);
  }
  return resolveConfigPaths(result.data, baseDir);
}

/**
 * The line a problem is on: the unknown key itself, the offending value, or for a missing key the
 * map it is missing from (the nearest node of the path that exists).
 */
function lineOf(doc: Document, lineCounter: LineCounter, problem: ConfigProblem): number {
  let node: unknown = doc.contents;
  let start = (node as Node | null)?.range?.[0] ?? 0;
  for (const key of problem.path) {
    if (isAlias(node)) node = node.resolve(doc);
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => isPair(item) && isScalar(item.key) && String(item.key.value) === String(key),
      );
      if (pair === undefined) break;
      // An unknown key points at the key; everything else at the value (or the key when it has none).
      const keyStart = (pair.key as Node).range?.[0];
      const valueStart = (pair.value as Node | null)?.range?.[0];
      if (problem.unknownKey && key === problem.path.at(-1)) {
        start = keyStart ?? start;
        break;
      }
      next = pair.value;
      start = valueStart ?? keyStart ?? start;
    } else if (isSeq(node) && typeof key === 'number') {
      next = node.items[key];
      if (next === undefined) break;
      start = (next as Node).range?.[0] ?? start;
    } else {
      break;
    }
    node = next;
  }
  return lineCounter.linePos(start).line;
}
