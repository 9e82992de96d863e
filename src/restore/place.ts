// Moving a staged tree into its destination. The restore stages everything inside the destination
// (`<destination>/.backproof-staging-<random>`, so the same filesystem) and only then places it:
// every conflict is found before anything moves, each move is a rename, and a failure part-way puts
// back everything moved so far, so a failed restore leaves the destination as it was.
//
// Placing never follows a symlink in the destination: a directory is merged into only when lstat
// shows a real directory on the same filesystem; a symlink (or file) where the staged tree has a
// directory is replaced with `force`, never written through. Nothing replaces a directory.
// Node has no renameat: a destination that an untrusted user can write to while the restore runs
// could swap a checked directory for a symlink before the rename (as with tar). Restore into
// directories only trusted users can write to.
//
// placeTree also combines staged trees inside one staging directory (each component extracted into
// its own empty directory, then placed into a common one): conflicts between them are reported.
import { randomBytes } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import {
  chmod,
  lchown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  realpath,
  rename,
  rm,
  rmdir,
  stat,
  utimes,
} from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { messageOf } from '../lib/errors.js';
import { RestoreError } from './errors.js';
import { utimesValue } from './extract.js';

/** Names starting with this are staging directories: never counted as content, never placed over. */
export const STAGING_PREFIX = '.backproof-staging-';

export interface PreparedDestination {
  /** The destination did not exist and was created (with any missing parents). */
  created: boolean;
  /** An empty directory inside the destination, on its filesystem: stage everything here. */
  stagingDir: string;
}

export interface PlaceResult {
  /** Entries moved in whole (a directory counts once, with everything below it). */
  moved: number;
  /** Existing non-directories replaced (only with force). */
  replaced: number;
  /** Existing directories merged into (they take the staged directory's mode, owner and mtime). */
  merged: number;
}

/** What prepareDestination knew of a destination, for discardStaging to put it back. */
interface Preparation {
  /** The top-most directory prepareDestination created (the destination or a missing parent). */
  createdTop: string | undefined;
  /** The destination's own metadata before the staging directory was made in it. */
  before: BigIntStats | undefined;
  /** placeTree moved something in: the destination's mtime is rightly new. */
  placed: boolean;
}

const preparations = new Map<string, Preparation>();

/**
 * Makes `destination` ready: creates it when missing, refuses a non-empty one without `force`
 * (leftover staging directories do not count), and makes the staging directory inside it.
 */
export async function prepareDestination(
  destination: string,
  options: { force: boolean },
): Promise<PreparedDestination> {
  const absolute = resolve(destination);
  const info = await stat(absolute, { bigint: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw new RestoreError(`cannot use destination ${absolute}: ${messageOf(error)}`, { cause: error });
  });
  let createdTop: string | undefined;
  if (info === undefined) {
    try {
      createdTop = await mkdir(absolute, { recursive: true });
    } catch (error) {
      throw new RestoreError(`cannot create destination ${absolute}: ${messageOf(error)}; choose another --to`, {
        cause: error,
      });
    }
  } else if (!info.isDirectory()) {
    throw new RestoreError(`destination ${absolute} exists and is not a directory; choose another --to`);
  } else if (!options.force) {
    const content = (await readdir(absolute)).filter((name) => !name.startsWith(STAGING_PREFIX));
    if (content.length > 0) {
      throw new RestoreError(
        `destination ${absolute} is not empty (it holds ${content.length} entries, e.g. ${JSON.stringify(content[0])}); ` +
          'restore into a new or empty directory with another --to, or pass --force to merge into it, ' +
          'replacing files of the same name',
      );
    }
  }
  let stagingDir: string;
  try {
    stagingDir = await mkdtemp(join(await realpath(absolute), STAGING_PREFIX));
  } catch (error) {
    if (createdTop !== undefined) await removeCreated(absolute, createdTop);
    throw new RestoreError(`cannot make a staging directory in ${absolute}: ${messageOf(error)}`, { cause: error });
  }
  preparations.set(stagingDir, { createdTop, before: info, placed: false });
  return { created: createdTop !== undefined, stagingDir };
}

/**
 * Removes the staging directory. After a failure (`created` as prepareDestination said) it also
 * removes the destination it created, and gives an existing destination back its own mtime, so the
 * destination is as it was. After placeTree succeeded, call it with `created` false: it then only
 * removes what is left of the staging directory.
 */
export async function discardStaging(destination: string, stagingDir: string, created: boolean): Promise<void> {
  if (!basename(stagingDir).startsWith(STAGING_PREFIX)) {
    throw new Error(`refusing to remove ${stagingDir}: it is not a staging directory`);
  }
  const preparation = preparations.get(stagingDir);
  preparations.delete(stagingDir);
  await removeTree(stagingDir);
  const absolute = resolve(destination);
  if (created) {
    await removeCreated(absolute, preparation?.createdTop ?? absolute);
  } else if (preparation?.before !== undefined && !preparation.placed) {
    await restoreMetadata(absolute, preparation.before).catch(() => {});
  }
}

type Action =
  /** `to` does not exist: rename. */
  | { kind: 'move'; from: string; to: string }
  /** `to` is not a directory (force): set it aside, rename `from` over. */
  | { kind: 'replace'; from: string; to: string }
  /** Both are directories: after the entries below, `to` takes the staged directory's metadata, read before anything moved. */
  | { kind: 'merge'; from: string; to: string; staged: BigIntStats };

/**
 * Moves the contents of `stagingTree` into `destination` (both on one filesystem): missing entries
 * are renamed in, existing directories merged, existing files replaced only with `force`. Every
 * conflict is reported before anything moves; a failure while moving undoes what was done.
 */
export async function placeTree(
  stagingTree: string,
  destination: string,
  options: { force: boolean },
): Promise<PlaceResult> {
  const staged = await realpath(stagingTree);
  const target = await realpath(destination);
  const conflicts: string[] = [];
  const actions: Action[] = [];
  await planDirectory(staged, target, { force: options.force, staged, actions, conflicts, relative: '' });
  if (conflicts.length > 0) {
    const shown = conflicts.slice(0, 10).map((line) => `\n  - ${line}`);
    const more = conflicts.length > 10 ? `\n  … and ${conflicts.length - 10} more` : '';
    throw new RestoreError(
      `cannot place the restored tree in ${target}: ${conflicts.length} entries are in the way; nothing was changed${shown.join('')}${more}`,
    );
  }
  const result = await execute(actions, staged, target);
  // Moving from a staging directory into its destination (not between its own subdirectories).
  const inside = (path: string, dir: string): boolean => path === dir || path.startsWith(dir + sep);
  for (const [stagingDir, preparation] of preparations) {
    if (inside(staged, stagingDir) && !inside(target, stagingDir)) preparation.placed = true;
  }
  return result;
}

interface Planning {
  force: boolean;
  /** The staging tree: nothing may be placed over it or a directory holding it. */
  staged: string;
  actions: Action[];
  conflicts: string[];
  relative: string;
}

async function planDirectory(fromDir: string, toDir: string, planning: Planning): Promise<void> {
  for (const name of (await readdir(fromDir)).sort()) {
    const from = join(fromDir, name);
    const to = join(toDir, name);
    const relative = planning.relative === '' ? name : `${planning.relative}/${name}`;
    if (to === planning.staged || planning.staged.startsWith(to + sep)) {
      planning.conflicts.push(`${relative}: it would replace the staging directory itself`);
      continue;
    }
    const fromInfo = await lstat(from, { bigint: true });
    const toInfo = await lstat(to, { bigint: true }).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw new RestoreError(`cannot look at ${to}: ${messageOf(error)}`, { cause: error });
    });
    if (toInfo === undefined) {
      planning.actions.push({ kind: 'move', from, to });
    } else if (fromInfo.isDirectory() && toInfo.isDirectory()) {
      if (toInfo.dev !== fromInfo.dev) {
        planning.conflicts.push(
          `${relative}: it is on another filesystem (a mount point); restore elsewhere with --to`,
        );
        continue;
      }
      await planDirectory(from, to, { ...planning, relative });
      planning.actions.push({ kind: 'merge', from, to, staged: fromInfo });
    } else if (toInfo.isDirectory()) {
      planning.conflicts.push(`${relative}: a directory is there, and nothing replaces a directory (not even --force)`);
    } else if (!planning.force) {
      planning.conflicts.push(`${relative}: it exists (--force replaces it)`);
    } else {
      planning.actions.push({ kind: 'replace', from, to });
    }
  }
}

async function execute(actions: Action[], staged: string, target: string): Promise<PlaceResult> {
  const result: PlaceResult = { moved: 0, replaced: 0, merged: 0 };
  const undo: (() => Promise<void>)[] = [];
  /** Directories whose entries or metadata this changes, with their metadata before. */
  const touched = new Map<string, BigIntStats>();
  const remember = async (dir: string): Promise<void> => {
    if (!touched.has(dir)) touched.set(dir, await lstat(dir, { bigint: true }));
  };
  let aside: string | undefined;
  let current: Action | undefined;
  try {
    for (const action of actions) {
      current = action;
      const { from, to } = action;
      if (action.kind === 'merge') {
        await remember(to);
        await restoreMetadata(to, action.staged);
        result.merged++;
        continue;
      }
      await remember(dirname(to));
      if (action.kind === 'replace') {
        aside ??= await mkdtemp(join(staged, '.backproof-aside-'));
        const old = join(aside, randomBytes(8).toString('hex'));
        await rename(to, old);
        undo.push(() => rename(old, to));
        result.replaced++;
      } else {
        result.moved++;
      }
      await rename(from, to);
      undo.push(() => rename(to, from));
    }
  } catch (error) {
    const failures = await rollBack(undo, touched);
    const where = current ? ` at ${current.to}` : '';
    const outcome =
      failures.length === 0
        ? 'everything moved so far was put back; the destination is as it was'
        : `putting back what was moved failed too, check the destination by hand: ${failures.join('; ')}`;
    throw new RestoreError(`placing the restored tree in ${target} failed${where}: ${messageOf(error)}; ${outcome}`, {
      cause: error,
    });
  }
  // The replaced entries: gone, as --force asked.
  if (aside !== undefined) await removeTree(aside);
  return result;
}

/** Undoes the moves, newest first, then gives every touched directory its metadata back. */
async function rollBack(undo: (() => Promise<void>)[], touched: Map<string, BigIntStats>): Promise<string[]> {
  const failures: string[] = [];
  for (const step of undo.reverse()) {
    await step().catch((error: unknown) => failures.push(messageOf(error)));
  }
  const deepestFirst = [...touched].sort(([a], [b]) => b.length - a.length);
  for (const [dir, before] of deepestFirst) {
    await restoreMetadata(dir, before).catch((error: unknown) => failures.push(messageOf(error)));
  }
  return failures;
}

/** Gives `path` (a directory) the mode, owner (as root) and times of `like`, touching only what differs. */
async function restoreMetadata(path: string, like: BigIntStats): Promise<void> {
  const now = await lstat(path, { bigint: true });
  if ((now.uid !== like.uid || now.gid !== like.gid) && process.getuid?.() === 0) {
    await lchown(path, Number(like.uid), Number(like.gid));
  }
  if ((now.mode & 0o7777n) !== (like.mode & 0o7777n)) await chmod(path, Number(like.mode & 0o7777n));
  // utimes keeps microseconds: compare at that precision.
  if (now.mtimeNs / 1000n !== like.mtimeNs / 1000n || now.atimeNs / 1000n !== like.atimeNs / 1000n) {
    await utimes(path, utimesValue(like.atimeNs), utimesValue(like.mtimeNs));
  }
}

/** Removes the created destination and the parents created with it, as far as they are empty. */
async function removeCreated(destination: string, createdTop: string): Promise<void> {
  let current = destination;
  while (current === createdTop || current.startsWith(createdTop + sep)) {
    try {
      await rmdir(current);
    } catch {
      return; // not empty: something else is there now
    }
    current = dirname(current);
  }
}

/** rm -rf, also of trees a non-root user cannot empty as they are (read-only directories). */
async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw error;
    await makeWritable(path);
    await rm(path, { recursive: true, force: true });
  }
}

async function makeWritable(dir: string): Promise<void> {
  const info = await lstat(dir).catch(() => undefined);
  if (!info?.isDirectory()) return;
  await chmod(dir, 0o700).catch(() => {});
  for (const name of await readdir(dir).catch(() => [])) await makeWritable(join(dir, name));
}
