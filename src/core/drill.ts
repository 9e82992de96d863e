// `drill`: the full restore test. Fetch a set, verify every object, extract trees into a sandbox and
// load every database into a scratch database on the drill server, note the time (the measured RTO),
// then reconcile: each file against the index, rows per table against the manifest, the config's SQL
// assertions. Everything it creates is removed afterwards; what a killed drill left behind is
// removed by the next one (the job lock is held, so nothing else of this job is using it).
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { finished, pipeline } from 'node:stream/promises';
import type { DrillConfig, DrillServerConfig, JobConfig } from '../config/schema.js';
import { messageOf } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { readSecret } from '../lib/secrets.js';
import { formatBytes } from '../lib/units.js';
import { compareWithIndex } from '../restore/compare-tree.js';
import { compareRows, createDatabaseLoader, databaseOfComponent } from '../restore/databases/index.js';
import { checkSqliteFile } from '../restore/databases/sqlite.js';
import type { DatabaseLoader } from '../restore/databases/types.js';
import { type ExtractSummary, extractTar } from '../restore/extract.js';
import type { ManifestComponent } from '../set/manifest.js';
import type { Target } from '../targets/types.js';
import { type LocatedSet, locateSet } from './locate-set.js';
import { readIndex } from './restore.js';
import { type SetDecoding, setDecoding } from './set-decoding.js';
import { fetchVerified, isTreeComponent, openRaw, rawFileName } from './set-objects.js';

export const DRILL_DATABASE_PREFIX = 'backproof_drill_';

/** What a drill reads of the config's `drill` section (all of it optional but the assertions). */
type DrillSettings = Pick<DrillConfig, 'mariadb' | 'postgres' | 'workDir' | 'assertions'>;

export type DrillStatus = 'success' | 'warning' | 'failure';

export interface DrillCheck {
  /** What was checked: `object`, `raw`, `extract`, `files`, `load`, `rows`, `integrity`, `assertion`. */
  check: string;
  ok: boolean;
  /** What was found, in words; on failure, what differs and what to do. */
  detail: string;
}

export interface DrilledComponent {
  name: string;
  kind: string;
  /** How it was proven: extracted as a tree, loaded into a database, opened as SQLite, or hash-checked only. */
  restoredAs: 'tree' | 'database' | 'sqlite' | 'file';
  /** Scratch database it was loaded into (dropped afterwards). */
  database?: string;
  checks: DrillCheck[];
  /** Not a failure, but the drill proved less than it could (e.g. no drill server configured). */
  warnings: string[];
}

export interface DrillReport {
  job: string;
  setId: string;
  /** Target the objects were read from (the first holder; another one only if an object was damaged). */
  target: string;
  /** The set was encrypted: a successful drill proved the private key opens it. */
  encrypted: boolean;
  startedAt: string;
  /** When every component was restored (trees extracted, databases loaded): the measured RTO ends here. */
  restoredAt: string | null;
  finishedAt: string;
  rtoMs: number | null;
  rtoObjectiveMs: number | null;
  status: DrillStatus;
  components: DrilledComponent[];
  /** Failed checks, one line each: what failed and where. */
  problems: string[];
  warnings: string[];
  /** Leftovers of earlier, killed drills that this one removed. */
  cleanedUp: string[];
}

export interface DrillInput {
  config: JobConfig;
  targets: Target[];
  set: string;
  signal: AbortSignal;
  log: Logger;
  /** Scratch databases recorded by drills that never finished (from the state database). */
  abandonedDatabases?: readonly string[];
  /** Told each scratch database before it is created, so a kill leaves a record. */
  onScratchDatabase?: (server: 'mariadb' | 'postgres', database: string) => void;
  now?: () => Date;
  /** The age private key file, instead of the config's encryption.identityFile. */
  identityFile?: string;
}

/** A drill under way: its input and how the located set's objects decode. */
type DrillRun = DrillInput & { decoding: SetDecoding };

interface Sandbox {
  dir: string;
  tree: string;
  objects: string;
}

/** Runs one drill. Never throws for a failed check (that is a `failure` report); throws for usage errors. */
export async function runDrill(input: DrillInput): Promise<DrillReport> {
  const { config, signal, log } = input;
  const now = input.now ?? (() => new Date());
  const started = now();
  const located = await locateSet(config, input.targets, input.set, signal, log);
  const encrypted = located.manifest.encryption !== null;
  let run: DrillRun;
  try {
    run = { ...input, decoding: await setDecoding(located.manifest, config.encryption, input.identityFile) };
  } catch (error) {
    // A missing or wrong key is what drills exist to find: a failed drill, recorded like any other.
    signal.throwIfAborted();
    const at = now().toISOString();
    return {
      job: config.job,
      setId: located.setId,
      target: located.holders[0]?.target.name ?? '',
      encrypted,
      startedAt: started.toISOString(),
      restoredAt: null,
      finishedAt: at,
      rtoMs: null,
      rtoObjectiveMs: config.objectives?.rto ?? null,
      status: 'failure',
      components: [],
      problems: [`key: ${messageOf(error)}`],
      warnings: [],
      cleanedUp: [],
    };
  }
  const drill: DrillSettings = config.drill ?? { assertions: [] };
  const workDir = drill.workDir ?? join(config.stateDir, 'drill');
  const loaders = await openLoaders(drill, signal);
  const cleanedUp = [
    ...(await removeStaleWorkDirs(workDir, config.job)),
    ...(await dropLeftoverDatabases(loaders, located, input.abandonedDatabases ?? [], signal, log)),
  ];

  await mkdir(workDir, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(join(workDir, `${config.job}--${located.setId}-`));
  const sandbox: Sandbox = { dir, tree: join(dir, 'tree'), objects: join(dir, 'objects') };
  await mkdir(sandbox.tree);
  await mkdir(sandbox.objects);

  const components: DrilledComponent[] = [];
  const databases = new Map<string, { loader: DatabaseLoader; database: string }>();
  const sqliteFiles = new Map<string, string>();
  const summaries = new Map<string, ExtractSummary>();
  const warnings = located.passedOverSuspect.map((id) => `newer suspect set ${id} was passed over`);
  let restoredAt: Date | null = null;
  try {
    // Phase 1, timed: bring everything back.
    for (const component of located.manifest.components) {
      components.push(await restoreOne(run, located, component, sandbox, loaders, databases, sqliteFiles, summaries));
    }
    if (components.every((c) => c.checks.every((check) => check.ok))) restoredAt = now();
    // Phase 2: reconcile what came back with what was backed up.
    for (const drilled of components) {
      const component = located.manifest.components.find((c) => c.name === drilled.name);
      if (!component || drilled.checks.some((c) => !c.ok)) continue;
      drilled.checks.push(...(await reconcile(run, located, component, sandbox, databases, sqliteFiles, summaries)));
    }
    for (const assertion of drill.assertions) {
      const owner = components.find((c) => c.name === assertion.component);
      const check = await runAssertion(assertion, databases, sqliteFiles, signal);
      if (owner) owner.checks.push(check);
      else
        components.push({
          name: assertion.component,
          kind: 'missing',
          restoredAs: 'file',
          checks: [check],
          warnings: [],
        });
    }
  } finally {
    for (const { loader, database } of databases.values()) {
      await loader.dropIfExists(database, AbortSignal.timeout(60_000)).catch((error: unknown) => {
        warnings.push(`could not drop scratch database ${database} on ${loader.describe()}: ${messageOf(error)}`);
      });
    }
    await rm(dir, { recursive: true, force: true }).catch((error: unknown) => {
      warnings.push(`could not remove the drill directory ${dir}: ${messageOf(error)}`);
    });
  }

  const finished = now();
  const problems = components.flatMap((c) =>
    c.checks.filter((k) => !k.ok).map((k) => `${c.name}: ${k.check}: ${k.detail}`),
  );
  warnings.push(...components.flatMap((c) => c.warnings.map((w) => `${c.name}: ${w}`)));
  const rtoMs = restoredAt ? restoredAt.getTime() - started.getTime() : null;
  const rtoObjectiveMs = config.objectives?.rto ?? null;
  const overRto = rtoMs !== null && rtoObjectiveMs !== null && rtoMs > rtoObjectiveMs;
  if (overRto) warnings.push(`the restore took ${rtoMs} ms, over the RTO objective of ${rtoObjectiveMs} ms`);
  return {
    job: config.job,
    setId: located.setId,
    target: located.holders[0]?.target.name ?? '',
    encrypted,
    startedAt: started.toISOString(),
    restoredAt: restoredAt?.toISOString() ?? null,
    finishedAt: finished.toISOString(),
    rtoMs,
    rtoObjectiveMs,
    status: problems.length > 0 ? 'failure' : warnings.length > 0 ? 'warning' : 'success',
    components,
    problems,
    warnings,
    cleanedUp,
  };
}

// ── phase 1: restore ─────────────────────────────────────────────────────────────────────────

async function restoreOne(
  input: DrillRun,
  located: LocatedSet,
  component: ManifestComponent,
  sandbox: Sandbox,
  loaders: Loaders,
  databases: Map<string, { loader: DatabaseLoader; database: string }>,
  sqliteFiles: Map<string, string>,
  summaries: Map<string, ExtractSummary>,
): Promise<DrilledComponent> {
  const { config, signal, log } = input;
  const drilled: DrilledComponent = {
    name: component.name,
    kind: component.kind,
    restoredAs: 'file',
    checks: [],
    warnings: [],
  };
  const objectFile = join(sandbox.objects, component.object);
  const fail = (check: string, error: unknown): DrilledComponent => {
    signal.throwIfAborted();
    drilled.checks.push({ check, ok: false, detail: messageOf(error) });
    return drilled;
  };
  try {
    const from = await fetchVerified(located, config.job, component.object, objectFile, signal, log);
    drilled.checks.push({
      check: 'object',
      ok: true,
      detail: `${component.object}: size and SHA-256 match (from ${from})`,
    });
  } catch (error) {
    return fail('object', error);
  }
  const raw = openRaw(objectFile, input.decoding, component, signal);
  const stage = isTreeComponent(component)
    ? 'extract'
    : isDatabaseDump(component)
      ? 'load'
      : component.kind === 'sqlite'
        ? 'sqlite'
        : 'raw';
  try {
    if (isTreeComponent(component)) {
      drilled.restoredAs = 'tree';
      const root = join(sandbox.tree, component.name);
      await mkdir(root);
      // In the sandbox, what a real restore would refuse by default is created (never followed), so
      // the tree can be compared with the index whole; devices only where mknod is allowed (root).
      const summary = await extractTar(raw.stream, root, {
        signal,
        allowDevices: process.getuid?.() === 0,
        allowOutsideSymlinks: true,
        preserveOwners: process.getuid?.() === 0,
      });
      summaries.set(component.name, summary);
      raw.check();
      drilled.checks.push({
        check: 'extract',
        ok: true,
        detail: `${summary.entries.length} entries, ${formatBytes(summary.bytes)}`,
      });
    } else if (isDatabaseDump(component)) {
      const kind = component.kind as 'mariadb' | 'postgres';
      const loader = loaders[kind];
      if (!loader) {
        raw.stream.resume();
        await finished(raw.stream);
        raw.check();
        drilled.checks.push({ check: 'raw', ok: true, detail: 'decompressed; size and SHA-256 match' });
        drilled.warnings.push(
          `not loaded: no drill.${kind} server in the config, so rows and assertions were not checked`,
        );
        return drilled;
      }
      const database = scratchName(located.setId, databases.size + 1);
      input.onScratchDatabase?.(kind, database);
      await loader.dropIfExists(database, signal);
      await loader.create(database, signal);
      databases.set(component.name, { loader, database });
      drilled.restoredAs = 'database';
      drilled.database = database;
      const report = await loader.load(database, raw.stream, { signal, tolerateMissingRoles: true });
      raw.check();
      // Skipped ownership and privilege statements are expected on a drill server: noted, not warned.
      const skipped =
        report.skipped.length > 0
          ? `; skipped ${report.skipped.length} statement(s) for roles the drill server lacks: ${report.skipped
              .slice(0, 3)
              .join('; ')}`
          : '';
      drilled.checks.push({
        check: 'load',
        ok: true,
        detail: `loaded into ${database} on ${loader.describe()}${skipped}`,
      });
      drilled.warnings.push(...report.warnings);
    } else {
      const file = join(sandbox.tree, rawFileName(component));
      await pipeline(raw.stream, createWriteStream(file, { flags: 'wx', mode: 0o600 }), { signal });
      raw.check();
      const serverWide = component.kind === 'mariadb' || component.kind === 'postgres-globals';
      drilled.checks.push({
        check: 'raw',
        ok: true,
        detail: `decompressed; size and SHA-256 match${serverWide ? ' (users and roles are server-wide: not loaded)' : ''}`,
      });
      if (component.kind === 'sqlite') {
        drilled.restoredAs = 'sqlite';
        sqliteFiles.set(component.name, file);
      }
    }
  } catch (error) {
    return fail(stage, error);
  } finally {
    await rm(objectFile, { force: true });
  }
  return drilled;
}

function isDatabaseDump(component: ManifestComponent): boolean {
  return (component.kind === 'mariadb' || component.kind === 'postgres') && component.tables !== undefined;
}

/** `backproof_drill_<setId>_<n>`: one scratch database per database component of the set. */
export function scratchName(setId: string, n: number): string {
  return `${DRILL_DATABASE_PREFIX}${setId}_${n}`;
}

// ── phase 2: reconcile ───────────────────────────────────────────────────────────────────────

async function reconcile(
  input: DrillRun,
  located: LocatedSet,
  component: ManifestComponent,
  sandbox: Sandbox,
  databases: Map<string, { loader: DatabaseLoader; database: string }>,
  sqliteFiles: Map<string, string>,
  summaries: Map<string, ExtractSummary>,
): Promise<DrillCheck[]> {
  const { config, signal, log } = input;
  try {
    const summary = summaries.get(component.name);
    if (isTreeComponent(component) && component.index !== undefined && summary) {
      const indexFile = join(sandbox.objects, component.index);
      await fetchVerified(located, config.job, component.index, indexFile, signal, log);
      const differences = await compareWithIndex(
        readIndex(indexFile, input.decoding, signal),
        summary,
        join(sandbox.tree, component.name),
      );
      if (differences.length === 0) return [{ check: 'files', ok: true, detail: 'every entry matches the index' }];
      return [
        {
          check: 'files',
          ok: false,
          detail: `${differences.length} entries differ from the index: ${differences
            .slice(0, 5)
            .map((d) => `${d.path}: ${d.problem}`)
            .join('; ')}`,
        },
      ];
    }
    const loaded = databases.get(component.name);
    if (loaded && component.tables) {
      const actual = await loaded.loader.countRows(loaded.database, signal, databaseOfComponent(component.name));
      return [rowsCheck(component.tables, actual)];
    }
    const sqliteFile = sqliteFiles.get(component.name);
    if (sqliteFile) {
      const found = await checkSqliteFile(sqliteFile, signal);
      const checks: DrillCheck[] = [{ check: 'integrity', ok: true, detail: 'PRAGMA integrity_check: ok' }];
      if (component.tables) checks.push(rowsCheck(component.tables, found.tables));
      return checks;
    }
    return [];
  } catch (error) {
    signal.throwIfAborted();
    return [{ check: isTreeComponent(component) ? 'files' : 'rows', ok: false, detail: messageOf(error) }];
  }
}

function rowsCheck(expected: Record<string, number>, actual: Record<string, number>): DrillCheck {
  const differences = compareRows(expected, actual);
  const tables = Object.keys(expected).length;
  if (differences.length === 0) return { check: 'rows', ok: true, detail: `${tables} tables, rows match the manifest` };
  return {
    check: 'rows',
    ok: false,
    detail: `rows differ from the manifest: ${differences
      .slice(0, 5)
      .map((d) => `${d.table}: expected ${d.expected ?? 'absent'}, found ${d.actual ?? 'absent'}`)
      .join('; ')}`,
  };
}

async function runAssertion(
  assertion: DrillConfig['assertions'][number],
  databases: Map<string, { loader: DatabaseLoader; database: string }>,
  sqliteFiles: Map<string, string>,
  signal: AbortSignal,
): Promise<DrillCheck> {
  const label = `${assertion.sql}`;
  const loaded = databases.get(assertion.component);
  const sqliteFile = sqliteFiles.get(assertion.component);
  let value: string | null;
  try {
    if (loaded) value = await loaded.loader.queryScalar(loaded.database, assertion.sql, signal);
    else if (sqliteFile) value = (await checkSqliteFile(sqliteFile, signal, assertion.sql)).scalar ?? null;
    else
      return {
        check: 'assertion',
        ok: false,
        detail: `${label}: component ${assertion.component} was not restored into a database by this drill`,
      };
  } catch (error) {
    signal.throwIfAborted();
    return { check: 'assertion', ok: false, detail: `${label}: the query failed: ${messageOf(error)}` };
  }
  const failures: string[] = [];
  const number = value === null ? Number.NaN : Number(value);
  if (assertion.min !== undefined && !(number >= assertion.min)) failures.push(`at least ${assertion.min}`);
  if (assertion.max !== undefined && !(number <= assertion.max)) failures.push(`at most ${assertion.max}`);
  if (assertion.equals !== undefined && String(assertion.equals) !== value)
    failures.push(`equal to ${assertion.equals}`);
  return failures.length === 0
    ? { check: 'assertion', ok: true, detail: `${label} = ${value}` }
    : { check: 'assertion', ok: false, detail: `${label} = ${value ?? 'NULL'}, expected ${failures.join(' and ')}` };
}

// ── drill servers and leftovers ──────────────────────────────────────────────────────────────

type Loaders = Partial<Record<'mariadb' | 'postgres', DatabaseLoader>>;

async function openLoaders(drill: DrillSettings, signal: AbortSignal): Promise<Loaders> {
  const loaders: Loaders = {};
  for (const kind of ['mariadb', 'postgres'] as const) {
    const server: DrillServerConfig | undefined = drill[kind];
    if (!server) continue;
    const password = await readSecret(
      { file: server.passwordFile, env: server.passwordEnv },
      `drill.${kind}: ${server.passwordFile ? 'passwordFile' : 'passwordEnv'}`,
    );
    const loader = createDatabaseLoader({
      kind,
      host: server.host,
      port: server.port,
      ...(server.socket ? { socket: server.socket } : {}),
      user: server.user,
      ...(password !== undefined ? { password } : {}),
    });
    await loader.check(signal);
    loaders[kind] = loader;
  }
  return loaders;
}

/** Work directories of this job's earlier drills (killed ones; a finished drill removes its own). */
async function removeStaleWorkDirs(workDir: string, job: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(workDir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names.filter((n) => n.startsWith(`${job}--`))) {
    await rm(join(workDir, name), { recursive: true, force: true });
    removed.push(join(workDir, name));
  }
  return removed;
}

/**
 * Scratch databases of this job's earlier drills: those named in unfinished drill runs, and those
 * named after a set of this job (set ids are unique, so no other job's drill database matches).
 */
async function dropLeftoverDatabases(
  loaders: Loaders,
  located: LocatedSet,
  abandoned: readonly string[],
  signal: AbortSignal,
  log: Logger,
): Promise<string[]> {
  const ours = new Set(located.allSetIds);
  const dropped: string[] = [];
  for (const loader of Object.values(loaders)) {
    for (const database of await loader.listDatabases(DRILL_DATABASE_PREFIX, signal)) {
      const setId = database.slice(DRILL_DATABASE_PREFIX.length).replace(/_\d+$/, '');
      if (!ours.has(setId) && !abandoned.includes(database)) continue;
      log.info(`dropping ${database} on ${loader.describe()}, left by a drill that did not finish`);
      await loader.dropIfExists(database, signal);
      dropped.push(`${database} on ${loader.describe()}`);
    }
  }
  return dropped;
}
