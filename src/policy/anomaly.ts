// The anomaly engine: compares the set a run is about to commit with the recent history of
// committed, non-suspect sets, component by component, and says what looks wrong. A pure function
// over data: no I/O, no clock. Arithmetic is BigInt inside (sizes up to 2^53 - 1, changes in basis
// points), so a size near 2^50 compares exactly and no message ever shows an exponent.
import { formatBytes, formatCount } from '../lib/units.js';

/** One component of one set, as its manifest records it. */
export interface ComponentSample {
  /** `<source>` or `<source>.<database>`. */
  name: string;
  /** Size of the stored object (compressed, then encrypted when configured). */
  bytes: number;
  /** Size before compression. */
  rawBytes: number;
  /** Entries of a files component. */
  files?: number;
  /** Rows per table (`<schema>.<table>`) of a database component, empty tables included. */
  tables?: Record<string, number>;
}

/** One set: the one about to be committed, or one committed, non-suspect set of history. */
export interface SetSample {
  /** `20251104T030000Z-abc123`: starts with the UTC start time, so string order is time order. */
  setId: string;
  components: ComponentSample[];
}

/** All changes in basis points (1% = 100). */
export interface AnomalyThresholds {
  /** How many of the newest history sets holding a component make its baseline. Default 7. */
  window: number;
  /** Below this many history sets, a metric is not judged at all (no false alarms on first runs). Default 3. */
  minHistory: number;
  /** A drop of at least this much warns. Default 2000 (20%). */
  dropWarnBp: number;
  /** A drop of at least this much fails (the set is committed as suspect). Default 5000 (50%). Above 10000: never. */
  dropFailBp: number;
  /** Growth of at least this much warns. Default 10000 (100%). */
  growthWarnBp: number;
  /** A compression ratio (rawBytes / bytes) that falls by at least this much warns. Default 3000 (30%). */
  ratioJumpWarnBp: number;
}

/**
 * Why 30% for the compression ratio: its run-to-run noise is a few percent, while data that turns
 * incompressible (encrypted by ransomware) drags it towards 1.00x. If a share f of the raw bytes
 * becomes incompressible, a ratio r falls by 1 - 1 / (1 - f + f·r): 30% is reached when about 21%
 * of text that compressed 3x, or 11% of a dump that compressed 5x, is encrypted.
 */
export const defaultThresholds: AnomalyThresholds = {
  window: 7,
  minHistory: 3,
  dropWarnBp: 2000,
  dropFailBp: 5000,
  growthWarnBp: 10000,
  ratioJumpWarnBp: 3000,
};

export type FindingMetric = 'bytes' | 'rawBytes' | 'ratio' | 'files' | 'rows' | 'table-vanished' | 'component-vanished';
export type FindingLevel = 'warning' | 'failure';

export interface Finding {
  /** `${component}:${metric}` or `${component}:${metric}:${table}`: stable across runs, what `ack` names. */
  id: string;
  component: string;
  metric: FindingMetric;
  table?: string;
  level: FindingLevel;
  /**
   * Median of the metric over the baseline sets: bytes, a count, or for `ratio` the compression
   * ratio in basis points (30000 = 3.00x). For vanished things: median bytes (component) or rows
   * (table). Capped at Number.MAX_SAFE_INTEGER (only a ratio can get there).
   */
  baseline: number;
  /** The metric in the new set (0 for vanished things), in the same unit as `baseline`. */
  value: number;
  /** How many history sets the baseline is the median of. */
  baselineSets: number;
  /**
   * (value - baseline) / baseline in basis points, rounded toward zero: -6000 for a 60% drop;
   * -10000 for vanished things. null when the baseline is 0 (growth from nothing has no
   * percentage). Capped at ±Number.MAX_SAFE_INTEGER.
   */
  changeBp: number | null;
  /** One sentence for humans, numbers formatted (`41.2 MB`, `1,000`), never an exponent. */
  message: string;
}

/** A human accepted a finding: from `setId` on, its value is the normal one. */
export interface Ack {
  findingId: string;
  /** The set whose value became the baseline (usually the set the finding was raised on). */
  setId: string;
}

export function findingId(component: string, metric: FindingMetric, table?: string): string {
  return table === undefined ? `${component}:${metric}` : `${component}:${metric}:${table}`;
}

/**
 * What in `current` departs from `history` (newest first). For each component and metric:
 * - baseline: the median over the newest `window` history sets holding the component; with an
 *   even count, the mean of the two middle values rounded down. A metric with fewer than
 *   `minHistory` values is not judged.
 * - bytes, rawBytes, files, rows per table: a drop ≥ dropFailBp fails, ≥ dropWarnBp warns;
 *   growth ≥ growthWarnBp warns; any growth from a baseline of 0 warns.
 * - ratio (rawBytes / bytes): a fall ≥ ratioJumpWarnBp warns. Sets with 0 bytes have no ratio.
 * - a table in every window set that recorded tables, but absent now, fails; so does a component
 *   in every one of the newest `window` history sets but absent now.
 * - an ack of a finding id at set S: for that id only, history older than S is ignored. S itself
 *   is used when history holds it; when it does not (a suspect set is not history), set ids order
 *   the sets. While an ack applies, one set is enough for a baseline: a human chose the new normal.
 * Findings come in a stable order: current components as given (bytes, rawBytes, ratio, files,
 * then tables by name), then vanished components by name. Throws a RangeError for a size or count
 * that is not a non-negative safe integer, or for thresholds that are not positive integers.
 */
export function detectAnomalies(
  current: SetSample,
  history: readonly SetSample[],
  thresholds: AnomalyThresholds,
  acks: readonly Ack[],
): Finding[] {
  checkThresholds(thresholds);
  for (const set of [current, ...history]) checkSet(set);
  const context: Context = { history, thresholds, acks };
  const findings: Finding[] = [];
  for (const component of current.components) findings.push(...componentFindings(component, context));
  findings.push(...vanishedComponents(current, context));
  return findings;
}

interface Context {
  history: readonly SetSample[];
  thresholds: AnomalyThresholds;
  acks: readonly Ack[];
}

const BP = 10_000n;

/** The history that counts for one finding id, and how many values a baseline needs. */
function historyFor(
  id: string,
  { history, thresholds, acks }: Context,
): { sets: readonly SetSample[]; needed: number } {
  let keep = history.length;
  let acked = false;
  for (const ack of acks) {
    if (ack.findingId !== id) continue;
    acked = true;
    const at = history.findIndex((set) => set.setId === ack.setId);
    const firstOlder = history.findIndex((set) => set.setId < ack.setId);
    const kept = at >= 0 ? at + 1 : firstOlder >= 0 ? firstOlder : history.length;
    keep = Math.min(keep, kept);
  }
  return { sets: history.slice(0, keep), needed: acked ? 1 : thresholds.minHistory };
}

/** The component as recorded by each of the newest `window` sets holding it, newest first. */
function windowOf(sets: readonly SetSample[], name: string, window: number): ComponentSample[] {
  const found: ComponentSample[] = [];
  for (const set of sets) {
    const component = set.components.find((c) => c.name === name);
    if (component === undefined) continue;
    found.push(component);
    if (found.length === window) break;
  }
  return found;
}

function rowsOf(component: ComponentSample, table: string): bigint | undefined {
  // hasOwn: a table may be called `constructor`.
  const tables = component.tables;
  return tables !== undefined && Object.hasOwn(tables, table) ? BigInt(tables[table] as number) : undefined;
}

function ratioOf(component: ComponentSample): bigint | undefined {
  return component.bytes > 0 ? (BigInt(component.rawBytes) * BP) / BigInt(component.bytes) : undefined;
}

type Reader = (component: ComponentSample) => bigint | undefined;

/** The baseline values of one metric, or undefined when there are too few to judge. */
function baselineValues(id: string, name: string, read: Reader, context: Context): bigint[] | undefined {
  const { sets, needed } = historyFor(id, context);
  const values: bigint[] = [];
  for (const component of windowOf(sets, name, context.thresholds.window)) {
    const value = read(component);
    if (value !== undefined) values.push(value);
  }
  return values.length >= needed ? values : undefined;
}

function componentFindings(component: ComponentSample, context: Context): Finding[] {
  const { name } = component;
  const findings: Finding[] = [];
  const judge = (subject: Subject, read: Reader): void => {
    const value = read(component);
    if (value === undefined) return;
    const id = findingId(name, subject.metric, subject.table);
    const values = baselineValues(id, name, read, context);
    if (values === undefined) return;
    const finding = judgeChange({ ...subject, id, component: name }, median(values), values.length, value, context);
    if (finding !== undefined) findings.push(finding);
  };
  judge({ metric: 'bytes' }, (c) => BigInt(c.bytes));
  judge({ metric: 'rawBytes' }, (c) => BigInt(c.rawBytes));
  judge({ metric: 'ratio' }, ratioOf);
  judge({ metric: 'files' }, (c) => (c.files === undefined ? undefined : BigInt(c.files)));
  if (component.tables !== undefined) {
    const tablesNow = Object.keys(component.tables);
    for (const table of sorted(tablesNow)) judge({ metric: 'rows', table }, (c) => rowsOf(c, table));
    findings.push(...vanishedTables(component, new Set(tablesNow), context));
  }
  return findings;
}

function vanishedTables(component: ComponentSample, tablesNow: ReadonlySet<string>, context: Context): Finding[] {
  const { name } = component;
  const candidates = new Set<string>();
  for (const set of context.history) {
    for (const c of set.components) {
      if (c.name === name) for (const table of Object.keys(c.tables ?? {})) candidates.add(table);
    }
  }
  const findings: Finding[] = [];
  for (const table of sorted([...candidates].filter((t) => !tablesNow.has(t)))) {
    const id = findingId(name, 'table-vanished', table);
    const { sets, needed } = historyFor(id, context);
    // Only sets that counted tables are evidence either way.
    const counted = windowOf(sets, name, context.thresholds.window).filter((c) => c.tables !== undefined);
    const rows = counted.map((c) => rowsOf(c, table));
    if (counted.length < needed || !rows.every((r) => r !== undefined)) continue;
    const baseline = median(rows);
    findings.push({
      id,
      component: name,
      metric: 'table-vanished',
      table,
      level: 'failure',
      baseline: safeNumber(baseline),
      value: 0,
      baselineSets: rows.length,
      changeBp: -10000,
      message: `${name}: table ${table} is missing; it was in ${inSets(rows.length)} (${medianWords(rows.length)}${formatCount(Number(baseline))} rows)`,
    });
  }
  return findings;
}

function vanishedComponents(current: SetSample, context: Context): Finding[] {
  const namesNow = new Set(current.components.map((c) => c.name));
  const candidates = new Set<string>();
  for (const set of context.history) for (const c of set.components) if (!namesNow.has(c.name)) candidates.add(c.name);
  const findings: Finding[] = [];
  for (const name of sorted([...candidates])) {
    const id = findingId(name, 'component-vanished');
    const { sets, needed } = historyFor(id, context);
    const window = sets.slice(0, context.thresholds.window);
    const held = windowOf(window, name, context.thresholds.window);
    if (window.length < needed || held.length < window.length) continue;
    const baseline = median(held.map((c) => BigInt(c.bytes)));
    findings.push({
      id,
      component: name,
      metric: 'component-vanished',
      level: 'failure',
      baseline: safeNumber(baseline),
      value: 0,
      baselineSets: held.length,
      changeBp: -10000,
      message: `${name}: component is missing; it was in ${inSets(held.length)} (${medianWords(held.length)}${formatBytes(Number(baseline))} compressed)`,
    });
  }
  return findings;
}

interface Subject {
  metric: 'bytes' | 'rawBytes' | 'ratio' | 'files' | 'rows';
  table?: string;
}

function judgeChange(
  subject: Subject & { id: string; component: string },
  baseline: bigint,
  baselineSets: number,
  value: bigint,
  { thresholds }: Context,
): Finding | undefined {
  const level =
    subject.metric === 'ratio' ? ratioLevel(baseline, value, thresholds) : changeLevel(baseline, value, thresholds);
  if (level === undefined) return undefined;
  const exactChange = baseline === 0n ? undefined : ((value - baseline) * BP) / baseline;
  return {
    id: subject.id,
    component: subject.component,
    metric: subject.metric,
    ...(subject.table === undefined ? {} : { table: subject.table }),
    level,
    baseline: safeNumber(baseline),
    value: safeNumber(value),
    baselineSets,
    changeBp: exactChange === undefined ? null : safeNumber(exactChange),
    message: changeMessage(subject, baseline, baselineSets, value, exactChange),
  };
}

/** Level of a change in bytes, rawBytes, files or rows; the comparisons are exact (no rounding). */
function changeLevel(baseline: bigint, value: bigint, t: AnomalyThresholds): FindingLevel | undefined {
  if (value < baseline) {
    const drop = (baseline - value) * BP;
    if (drop >= BigInt(t.dropFailBp) * baseline) return 'failure';
    if (drop >= BigInt(t.dropWarnBp) * baseline) return 'warning';
    return undefined;
  }
  // Growth from 0 has no percentage: it is larger than any threshold.
  if (value > baseline && (baseline === 0n || (value - baseline) * BP >= BigInt(t.growthWarnBp) * baseline)) {
    return 'warning';
  }
  return undefined;
}

/** Only a falling ratio matters: data that stops compressing. A rising one is not a threat. */
function ratioLevel(baseline: bigint, value: bigint, t: AnomalyThresholds): FindingLevel | undefined {
  return value < baseline && (baseline - value) * BP >= BigInt(t.ratioJumpWarnBp) * baseline ? 'warning' : undefined;
}

const WORDS: Record<Subject['metric'], { noun: string; less: string; more: string; show: (n: bigint) => string }> = {
  bytes: { noun: 'compressed size', less: 'smaller', more: 'larger', show: (n) => formatBytes(Number(n)) },
  rawBytes: { noun: 'uncompressed size', less: 'smaller', more: 'larger', show: (n) => formatBytes(Number(n)) },
  ratio: { noun: 'compression ratio', less: 'lower', more: 'higher', show: ratioText },
  files: { noun: 'file count', less: 'lower', more: 'higher', show: (n) => formatCount(Number(n)) },
  rows: { noun: 'row count', less: 'lower', more: 'higher', show: (n) => formatCount(Number(n)) },
};

function changeMessage(
  subject: Subject & { component: string },
  baseline: bigint,
  baselineSets: number,
  value: bigint,
  exactChange: bigint | undefined,
): string {
  const words = WORDS[subject.metric];
  const what = `${subject.component}: ${words.noun}${subject.table === undefined ? '' : ` of ${subject.table}`}`;
  const base = `${baselineWords(baselineSets)} ${words.show(baseline)}`;
  if (exactChange === undefined) return `${what} is ${words.show(value)}, up from ${words.show(baseline)} (${base})`;
  const direction = exactChange < 0n ? words.less : words.more;
  const why = subject.metric === 'ratio' ? '; data that stops compressing may have been encrypted (ransomware?)' : '';
  return `${what} is ${percentText(exactChange)} ${direction} than usual (${words.show(value)}, ${base})${why}`;
}

/** `median of the last 7 sets` or, for a single set, `last set`. */
function baselineWords(sets: number): string {
  return sets === 1 ? 'last set' : `median of the last ${sets} sets`;
}

/** `median ` before a median of several sets; nothing before a single set's value. */
function medianWords(sets: number): string {
  return sets === 1 ? '' : 'median ';
}

function inSets(sets: number): string {
  return sets === 1 ? 'the last set' : `each of the last ${sets} sets`;
}

/** The middle value; with an even count, the mean of the two middle values rounded down. */
function median(values: readonly bigint[]): bigint {
  const ordered = [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const upper = ordered[Math.floor(ordered.length / 2)];
  const lower = ordered[Math.floor((ordered.length - 1) / 2)];
  if (upper === undefined || lower === undefined) throw new Error('median of no values');
  return (lower + upper) / 2n;
}

/** |bp| as a percentage, rounded toward zero to a tenth: 6000 → `60%`, 3333 → `33.3%`. */
function percentText(bp: bigint): string {
  const magnitude = bp < 0n ? -bp : bp;
  const tenths = (magnitude % 100n) / 10n;
  return `${groupDigits(magnitude / 100n)}${tenths === 0n ? '' : `.${tenths}`}%`;
}

/** A ratio in basis points as `3.02x`, rounded down. */
function ratioText(bp: bigint): string {
  return `${groupDigits(bp / BP)}.${((bp % BP) / 100n).toString().padStart(2, '0')}x`;
}

/** formatCount for a BigInt, which may pass 2^53 (a growth percentage from a tiny baseline). */
function groupDigits(n: bigint): string {
  return n.toString().replace(/\B(?=(\d{3})+$)/g, ',');
}

function safeNumber(n: bigint): number {
  const max = BigInt(Number.MAX_SAFE_INTEGER);
  return Number(n > max ? max : n < -max ? -max : n);
}

function sorted(names: Iterable<string>): string[] {
  return [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function checkCount(value: unknown, where: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`anomaly check: ${where} must be a non-negative safe integer, got ${String(value)}`);
  }
}

function checkSet(set: SetSample): void {
  for (const c of set.components) {
    const where = `set ${set.setId}, component ${c.name}`;
    checkCount(c.bytes, `${where}: bytes`);
    checkCount(c.rawBytes, `${where}: rawBytes`);
    if (c.files !== undefined) checkCount(c.files, `${where}: files`);
    for (const [table, rows] of Object.entries(c.tables ?? {})) checkCount(rows, `${where}: rows of ${table}`);
  }
}

function checkThresholds(t: AnomalyThresholds): void {
  for (const key of ['window', 'minHistory', 'dropWarnBp', 'dropFailBp', 'growthWarnBp', 'ratioJumpWarnBp'] as const) {
    const value = t[key];
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`anomaly thresholds: ${key} must be a positive integer, got ${String(value)}`);
    }
  }
  if (t.minHistory > t.window) {
    throw new RangeError(
      `anomaly thresholds: minHistory (${t.minHistory}) exceeds window (${t.window}), so no baseline could ever form; lower minHistory or raise window`,
    );
  }
}
