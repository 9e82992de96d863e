// The tree walker of the files source: depth-first, parents before children, names in byte order,
// symlinks never followed. It reports what it met (entries and warnings); reading files is not its job.
// With `skipFileStats`, regular files come without stats: their reader takes them from what it opens.
// Synchronous on purpose, like the file reads: a thread-pool round trip per lstat or directory read
// made a 30,000-file tree several times slower. Callers yield to the event loop between batches.
import type { BigIntStats } from 'node:fs';
import { lstatSync, readdirSync } from 'node:fs';
import { relative as relativePath, resolve } from 'node:path';
import picomatch from 'picomatch';

export interface WalkOptions {
  /** Absolute paths; duplicates and paths inside another one are walked once. */
  paths: string[];
  /** Globs against the path relative to its configured path; globs starting with `/` against the absolute path. */
  exclude: string[];
  /** Do not descend into directories on another device than their configured path. */
  oneFileSystem: boolean;
  /**
   * A directory holding every path: archive names and relative globs are then relative to it (so
   * `tar -x -C <base>` puts entries back in place), instead of names relative to `/` and globs
   * relative to each configured path. Default: none.
   */
  base?: string;
  /**
   * Do not look at regular files found in directories: they come as `file` events, without stats
   * (the directory listing tells their type), for a reader that opens them anyway and takes the
   * stats of what it opened: one system call less per file. Configured paths are always looked at.
   * Default: false.
   */
  skipFileStats?: boolean;
  signal?: AbortSignal;
}

export interface WalkEntry {
  /** Absolute path on disk. */
  path: string;
  /** Archive name: the absolute path without its leading `/` (GNU tar's convention), or relative to `base`. */
  name: string;
  stats: BigIntStats;
}

/** A regular file (as its directory listing said) that was not looked at: `skipFileStats`. */
export interface WalkFile {
  path: string;
  name: string;
}

export type WalkEvent =
  | { entry: WalkEntry; file?: undefined; warning?: undefined }
  | { file: WalkFile; entry?: undefined; warning?: undefined }
  | { warning: string; entry?: undefined; file?: undefined };

/** A configured path that is not there: the component cannot be complete. */
export class MissingPathError extends Error {
  override readonly name = 'MissingPathError';
  readonly path: string;
  constructor(path: string) {
    super(`path ${path} does not exist`);
    this.path = path;
  }
}

interface DirectoryFrame {
  path: string;
  /** Relative to the configured path, for the exclude globs; '' for the configured path itself. */
  relative: string;
  children: Child[];
  next: number;
}

/** A directory entry as listed: its name, and whether the listing says it is a regular file. */
interface Child {
  name: string;
  isFile: boolean;
}

/** Walks every configured path in byte order of its absolute path. Throws on errors other than a vanished or unreadable entry. */
export function* walkTree(options: WalkOptions): Generator<WalkEvent> {
  const isExcluded = createExcludeMatcher(options.exclude);
  const base = options.base === undefined ? undefined : resolve(options.base);
  const archiveName = (path: string): string => archiveNameOf(path, base);
  for (const root of normalizeRoots(options.paths)) {
    options.signal?.throwIfAborted();
    const stats = lstatSync(root, { bigint: true, throwIfNoEntry: false });
    if (stats === undefined) throw new MissingPathError(root);
    if (stats.isSymbolicLink()) {
      yield { warning: `${root} is a symlink: only the link was stored, not what it points to.` };
    }
    yield { entry: { path: root, name: archiveName(root), stats } };
    if (!stats.isDirectory()) continue;

    const rootDevice = stats.dev;
    const stack: DirectoryFrame[] = [];
    const first = readChildren(root);
    const rootRelative = base === undefined ? '' : relativeToBase(root, base);
    if (typeof first === 'string') yield { warning: first };
    else stack.push({ path: root, relative: rootRelative, children: first, next: 0 });

    while (stack.length > 0) {
      options.signal?.throwIfAborted();
      const frame = stack[stack.length - 1] as DirectoryFrame;
      const child = frame.children[frame.next++];
      if (child === undefined) {
        stack.pop();
        continue;
      }
      const { name } = child;
      const path = frame.path === '/' ? `/${name}` : `${frame.path}/${name}`;
      const relative = frame.relative === '' ? name : `${frame.relative}/${name}`;
      if (isExcluded(relative, path)) continue;
      if (child.isFile && options.skipFileStats) {
        yield { file: { path, name: archiveName(path) } };
        continue;
      }
      const entryStats = lstatEntry(path);
      if (typeof entryStats === 'string') {
        yield { warning: entryStats };
        continue;
      }
      yield { entry: { path, name: archiveName(path), stats: entryStats } };
      if (!entryStats.isDirectory()) continue;
      if (options.oneFileSystem && entryStats.dev !== rootDevice) continue;
      const children = readChildren(path);
      if (typeof children === 'string') yield { warning: children };
      else stack.push({ path, relative, children, next: 0 });
    }
  }
}

/** Resolved, sorted, and without duplicates or paths inside another configured path. */
export function normalizeRoots(paths: string[]): string[] {
  const sorted = [...new Set(paths.map((p) => resolve(p)))].sort(compareBytes);
  const roots: string[] = [];
  for (const path of sorted) {
    const inside = roots.some((root) => root === '/' || path.startsWith(`${root}/`));
    if (!inside) roots.push(path);
  }
  return roots;
}

/** A predicate for the exclude globs (picomatch, dotfiles included). */
export function createExcludeMatcher(exclude: string[]): (relative: string, absolute: string) => boolean {
  const absoluteGlobs = exclude.filter((glob) => glob.startsWith('/'));
  const relativeGlobs = exclude.filter((glob) => !glob.startsWith('/'));
  const matchAbsolute = absoluteGlobs.length > 0 ? picomatch(absoluteGlobs, { dot: true }) : () => false;
  const matchRelative = relativeGlobs.length > 0 ? picomatch(relativeGlobs, { dot: true }) : () => false;
  return (relative, absolute) => matchRelative(relative) || matchAbsolute(absolute);
}

/** Order of the UTF-8 bytes of two strings (JS compares UTF-16 units, which differs above U+D7FF). */
export function compareBytes(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return utf8Rank(x) - utf8Rank(y);
  }
  return a.length - b.length;
}

/** Surrogates (U+D800–DFFF) start 4-byte sequences, so they sort after U+E000–FFFF. */
function utf8Rank(unit: number): number {
  if (unit >= 0xd800 && unit < 0xe000) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

function archiveNameOf(path: string, base: string | undefined): string {
  if (base !== undefined) return relativeToBase(path, base) || '.';
  return path === '/' ? '.' : path.slice(1);
}

/** `path` relative to `base` ('' for base itself); a path outside base is a caller's bug. */
function relativeToBase(path: string, base: string): string {
  const relative = relativePath(base, path);
  if (relative === '..' || relative.startsWith('../')) throw new Error(`${path} is not inside ${base}`);
  return relative;
}

/** The entry's lstat, or a warning when it vanished or cannot be looked at. */
function lstatEntry(path: string): BigIntStats | string {
  try {
    const stats = lstatSync(path, { bigint: true, throwIfNoEntry: false });
    return stats ?? `${path} vanished during the walk and was skipped.`;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // ENOTDIR: a directory on the way was replaced by a file; EACCES: a directory that can be listed but not entered.
    if (code === 'ENOTDIR') return `${path} vanished during the walk and was skipped.`;
    if (code === 'EACCES') return `cannot read ${path} (permission denied): it was left out of the backup.`;
    throw new Error(`cannot look at ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** Entries sorted by name, or a warning when the directory cannot be read (it is still stored, without children). */
function readChildren(path: string): Child[] | string {
  let children: Child[];
  try {
    // One call per directory (scandir): twice as fast as reading it in parts through opendir.
    // Node looks at entries whose type the filesystem does not report (DT_UNKNOWN), so isFile() is right.
    children = readdirSync(path, { withFileTypes: true }).map((entry) => ({
      name: entry.name,
      isFile: entry.isFile(),
    }));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      return `cannot read directory ${path} (permission denied): it was stored without its contents.`;
    }
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return `directory ${path} vanished or was replaced during the walk: it was stored without its contents.`;
    }
    throw new Error(`cannot read directory ${path}: ${(error as Error).message}`, { cause: error });
  }
  return children.sort((a, b) => compareBytes(a.name, b.name));
}
