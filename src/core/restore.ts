// `restore`: a set (or one component, or one path) from the targets to a directory, or one database
// component into a database. Every object is fetched whole and verified before its contents are read;
// a restore to a directory stages everything inside the destination first and moves it into place
// only when all of it succeeded, so a failed restore leaves the destination as it was.
import { createWriteStream } from 'node:fs';
import { mkdir, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import type { JobConfig } from '../config/schema.js';
import { messageOf, UsageError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { formatBytes } from '../lib/units.js';
import { extractTar } from '../restore/extract.js';
import { discardStaging, placeTree, prepareDestination } from '../restore/place.js';
import type { Manifest, ManifestComponent } from '../set/manifest.js';
import type { IndexEntry } from '../sources/files.js';
import type { Target } from '../targets/types.js';
import { type LocatedSet, locateSet } from './locate-set.js';
import { openDecoded, type SetDecoding, setDecoding } from './set-decoding.js';
import { fetchVerified, isTreeComponent, objectEntry, openRaw, rawFileName } from './set-objects.js';

export interface RestoreRequest {
  /** `latest` or a set id. */
  set: string;
  component?: string;
  /** A path inside a files component (as stored: relative to `/` or to the system source's root). */
  path?: string;
  /** Destination directory. */
  to: string;
  force: boolean;
  /** Create device files found in archives (refused by default). */
  allowDevices: boolean;
  /** Create symlinks that point outside the restored tree (refused by default; never followed either way). */
  allowOutsideSymlinks: boolean;
}

export interface RestoredComponent {
  name: string;
  kind: string;
  /** The target the object came from. */
  target: string;
  /** Where it went: a directory for trees, a file for the rest. */
  restoredTo: string;
  /** Bytes written (raw). */
  bytes: number;
  /** Entries written, for trees. */
  entries?: number;
}

export interface RestoreReport {
  job: string;
  setId: string;
  startedAt: string;
  finishedAt: string;
  destination: string;
  components: RestoredComponent[];
  warnings: string[];
}

/** What reading one located set needs: the run's signal and log, and how its objects decode. */
export interface SetContext {
  signal: AbortSignal;
  log: Logger;
  decoding: SetDecoding;
}

/** Restores to a directory. Throws (destination untouched) on any failure. */
export async function runRestore(
  config: JobConfig,
  targets: Target[],
  request: RestoreRequest,
  options: { signal: AbortSignal; log: Logger; identityFile?: string },
): Promise<RestoreReport> {
  const startedAt = new Date().toISOString();
  const located = await locateSet(config, targets, request.set, options.signal, options.log);
  // The key is checked against the set before anything is fetched or the destination is touched.
  const ctx: SetContext = {
    signal: options.signal,
    log: options.log,
    decoding: await setDecoding(located.manifest, config.encryption, options.identityFile),
  };
  const warnings = located.passedOverSuspect.map((id) => `newer suspect set ${id} was passed over`);
  const wanted = pathInArchive(request.path);
  const { stagingDir, created } = await prepareDestination(request.to, { force: request.force });
  const restored: RestoredComponent[] = [];
  try {
    const tree = join(stagingDir, 'tree');
    const objects = join(stagingDir, 'objects');
    await mkdir(tree);
    await mkdir(objects);
    const components = await chooseComponents(config, located, request.component, wanted, objects, ctx);
    await checkRoom(request.to, located.manifest, components);
    for (const component of components) {
      restored.push(await restoreComponent(config, located, component, { tree, objects, wanted, request }, ctx));
    }
    await rm(objects, { recursive: true, force: true });
    await placeTree(tree, request.to, { force: request.force });
  } catch (error) {
    await discardStaging(request.to, stagingDir, created).catch((cleanup: unknown) =>
      ctx.log.warn(`could not remove the staging directory ${stagingDir}: ${messageOf(cleanup)}`),
    );
    throw error;
  }
  await discardStaging(request.to, stagingDir, false);
  return {
    job: config.job,
    setId: located.setId,
    startedAt,
    finishedAt: new Date().toISOString(),
    destination: request.to,
    components: restored,
    warnings,
  };
}

async function restoreComponent(
  config: JobConfig,
  located: LocatedSet,
  component: ManifestComponent,
  dirs: { tree: string; objects: string; wanted: string | undefined; request: RestoreRequest },
  ctx: SetContext,
): Promise<RestoredComponent> {
  const objectFile = join(dirs.objects, component.object);
  ctx.log.info(`fetching ${component.object} (${formatBytes(component.bytes)})`);
  const target = await fetchVerified(located, config.job, component.object, objectFile, ctx.signal, ctx.log);
  const raw = openRaw(objectFile, ctx.decoding, component, ctx.signal);
  if (isTreeComponent(component)) {
    ctx.log.info(`extracting ${component.name}`);
    // Each component into its own empty directory, then merged into the staged tree (clashes refused).
    const own = join(dirs.objects, `${component.name}.tree`);
    await mkdir(own);
    const summary = await extractTar(raw.stream, own, {
      signal: ctx.signal,
      allowDevices: dirs.request.allowDevices,
      allowOutsideSymlinks: dirs.request.allowOutsideSymlinks,
      preserveOwners: process.getuid?.() === 0,
      ...(dirs.wanted !== undefined ? { only: dirs.wanted } : {}),
    });
    // With `only`, extraction may stop reading early; the object itself was verified whole.
    if (dirs.wanted === undefined) raw.check();
    await rm(objectFile, { force: true });
    await placeTree(own, dirs.tree, { force: false });
    await rm(own, { recursive: true, force: true });
    return {
      name: component.name,
      kind: component.kind,
      target,
      restoredTo: dirs.request.to,
      bytes: summary.bytes,
      entries: summary.entries.length,
    };
  }
  const file = join(dirs.tree, rawFileName(component));
  await pipeline(raw.stream, createWriteStream(file, { flags: 'wx', mode: 0o600 }), { signal: ctx.signal });
  raw.check();
  await rm(objectFile, { force: true });
  return {
    name: component.name,
    kind: component.kind,
    target,
    restoredTo: join(dirs.request.to, rawFileName(component)),
    bytes: component.rawBytes,
  };
}

/** `--path /var/www/app/` → `var/www/app` (archives store paths without the leading `/`). */
function pathInArchive(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  const trimmed = path.replace(/^\/+/, '').replace(/\/+$/, '');
  if (trimmed === '' || trimmed.split('/').some((part) => part === '..' || part === '.')) {
    throw new UsageError(`--path ${JSON.stringify(path)} is not a path inside an archive (like var/www/app/.env)`);
  }
  return trimmed;
}

async function chooseComponents(
  config: JobConfig,
  located: LocatedSet,
  name: string | undefined,
  wanted: string | undefined,
  scratch: string,
  ctx: SetContext,
): Promise<ManifestComponent[]> {
  const all = located.manifest.components;
  if (name !== undefined) {
    const component = all.find((c) => c.name === name);
    if (!component) {
      throw new UsageError(
        `set ${located.setId} has no component ${JSON.stringify(name)}; it has: ${all.map((c) => c.name).join(', ')}`,
      );
    }
    if (wanted !== undefined && !isTreeComponent(component)) {
      throw new UsageError(`--path needs a files component; ${name} is a ${component.kind} component`);
    }
    if (wanted !== undefined && !(await indexHolds(config, located, component, wanted, scratch, ctx))) {
      throw new UsageError(
        `${wanted} is not in component ${name} of set ${located.setId} (its index lists every path)`,
      );
    }
    return [component];
  }
  if (wanted === undefined) return all;
  // --path without --component: the tree component whose index lists it.
  const trees = all.filter(isTreeComponent);
  for (const component of trees) {
    if (await indexHolds(config, located, component, wanted, scratch, ctx)) return [component];
  }
  throw new UsageError(
    `${wanted} is in no files component of set ${located.setId} (searched the indexes of ${
      trees.map((c) => c.name).join(', ') || 'no component'
    }); paths are stored without the leading "/"`,
  );
}

/** Whether a tree component's index lists `wanted` or anything below it. */
async function indexHolds(
  config: JobConfig,
  located: LocatedSet,
  component: ManifestComponent,
  wanted: string,
  scratch: string,
  ctx: SetContext,
): Promise<boolean> {
  if (component.index === undefined) return false;
  const file = join(scratch, component.index);
  try {
    await fetchVerified(located, config.job, component.index, file, ctx.signal, ctx.log);
    for await (const entry of readIndex(file, ctx.decoding, ctx.signal)) {
      if (entry.path === wanted || entry.path.startsWith(`${wanted}/`)) return true;
    }
    return false;
  } finally {
    await rm(file, { force: true });
  }
}

/** The entries of a verified index object, one parsed line at a time. */
export async function* readIndex(file: string, decoding: SetDecoding, signal: AbortSignal): AsyncGenerator<IndexEntry> {
  const decompressed = openDecoded(file, decoding, signal);
  const lines = createInterface({ input: decompressed, crlfDelay: Number.POSITIVE_INFINITY });
  let number = 0;
  for await (const line of lines) {
    number++;
    if (line === '') continue;
    try {
      yield JSON.parse(line) as IndexEntry;
    } catch (error) {
      throw new Error(`index line ${number} is not JSON: ${messageOf(error)}`);
    }
  }
}

/** Refuses a restore that cannot fit: the staged object and its contents must both fit at once. */
async function checkRoom(destination: string, manifest: Manifest, components: ManifestComponent[]): Promise<void> {
  let probe = destination;
  let stats: Awaited<ReturnType<typeof statfs>> | undefined;
  while (stats === undefined) {
    try {
      stats = await statfs(probe, { bigint: true });
    } catch {
      const parent = join(probe, '..');
      if (parent === probe) return;
      probe = parent;
    }
  }
  const largestObject = Math.max(0, ...components.map((c) => objectEntry(manifest, c.object).bytes));
  const needed = BigInt(components.reduce((sum, c) => sum + c.rawBytes, 0) + largestObject);
  const free = BigInt(stats.bavail) * BigInt(stats.bsize);
  if (free < needed) {
    throw new Error(
      `${destination} has ${formatBytes(Number(free))} free, but this restore needs about ${formatBytes(Number(needed))} ` +
        '(the contents plus the largest object while it is verified); free space or restore elsewhere with --to',
    );
  }
}
