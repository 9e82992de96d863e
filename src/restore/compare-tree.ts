// The drill's reconciliation of a restored tree with its component's index: every entry the index
// lists must be there with the same type, size, SHA-256, link target, device numbers, mode, owner
// (when owners were restored) and mtime (to the millisecond, the index's precision). File hashes come
// from the extraction summary (computed while writing), so nothing is read twice.
// Sockets are listed in the index but cannot be archived: a server recreates them, so they are
// skipped. Entries restored but absent from the index are reported as unexpected.
import type { BigIntStats } from 'node:fs';
import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { messageOf } from '../lib/errors.js';
import type { TarEntryType } from '../pipeline/tar.js';
import type { IndexEntry } from '../sources/files.js';
import { RestoreError } from './errors.js';
import { type ExtractedEntry, type ExtractSummary, normalizeArchivePath } from './extract.js';

export type DifferenceKind =
  | 'missing'
  | 'unexpected'
  | 'type'
  | 'size'
  | 'sha256'
  | 'target'
  | 'hardlink'
  | 'device'
  | 'mode'
  | 'owner'
  | 'mtime';

export interface TreeDifference {
  /** Archive path (as in the index). */
  path: string;
  kind: DifferenceKind;
  /** What the index says and what was restored, when both exist. */
  expected?: string;
  actual?: string;
  /** For humans: `sha256 is 9f00… in the restored tree, 3a7b… in the index`. */
  problem: string;
}

const SETUID_SETGID = 0o6000;

/**
 * Compares the tree extracted under `root` (the directory archive paths are relative to) with the
 * index: a decompressed JSONL stream or parsed entries. `only` limits the comparison to one path
 * (and the directories above it), as extracted with the same `only`. Returns [] when they agree.
 */
export async function compareWithIndex(
  index: AsyncIterable<IndexEntry> | Readable,
  extracted: ExtractSummary,
  root: string,
  options: { only?: string } = {},
): Promise<TreeDifference[]> {
  const only = options.only === undefined ? undefined : normalizeArchivePath(options.only) || undefined;
  const remaining = new Map(extracted.entries.map((entry) => [entry.path, entry]));
  const differences: TreeDifference[] = [];
  const entries = index instanceof Readable ? parseIndex(index) : index;
  for await (const entry of entries) {
    if (entry.type === 'socket' || !inScope(entry.path, only)) continue;
    const restored = remaining.get(entry.path);
    remaining.delete(entry.path);
    differences.push(...(await compareEntry(entry, restored, root, extracted.preservedOwners)));
  }
  for (const entry of remaining.values()) {
    differences.push({
      path: entry.path,
      kind: 'unexpected',
      problem: `a ${entry.type} was restored that the index does not list`,
    });
  }
  return differences;
}

/** The entries of a JSONL index, one line at a time. */
async function* parseIndex(stream: Readable): AsyncGenerator<IndexEntry> {
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  let number = 0;
  for await (const line of lines) {
    number++;
    if (line === '') continue;
    let entry: IndexEntry;
    try {
      entry = JSON.parse(line) as IndexEntry;
    } catch (error) {
      throw new RestoreError(`index line ${number} is not valid JSON (${messageOf(error)}); the index is damaged`);
    }
    if (typeof entry?.path !== 'string' || typeof entry.type !== 'string' || typeof entry.mode !== 'string') {
      throw new RestoreError(`index line ${number} is not an index entry (path, type and mode are required)`);
    }
    yield entry;
  }
}

function inScope(path: string, only: string | undefined): boolean {
  return only === undefined || path === only || path.startsWith(`${only}/`) || only.startsWith(`${path}/`);
}

async function compareEntry(
  entry: IndexEntry,
  restored: ExtractedEntry | undefined,
  root: string,
  preservedOwners: boolean,
): Promise<TreeDifference[]> {
  const { path } = entry;
  if (restored === undefined) {
    return [{ path, kind: 'missing', problem: `the index lists a ${entry.type} that was not restored` }];
  }
  const info = await lstat(join(root, path), { bigint: true }).catch(() => undefined);
  if (info === undefined) {
    return [{ path, kind: 'missing', problem: `the ${entry.type} was extracted but is not in the restored tree` }];
  }
  const differences: TreeDifference[] = [];
  const differ = (
    kind: DifferenceKind,
    expected: string | undefined,
    actual: string | undefined,
    what: string = kind,
  ): void => {
    if (expected === actual) return;
    differences.push({
      path,
      kind,
      expected,
      actual,
      problem: `${what} is ${actual ?? 'absent'} in the restored tree, ${expected ?? 'absent'} in the index`,
    });
  };
  if (restored.type !== entry.type) {
    const problem = `the archive holds a ${restored.type} where the index lists a ${entry.type}`;
    return [{ path, kind: 'type', expected: entry.type, actual: restored.type, problem }];
  }
  if (entry.type === 'hardlink') {
    const first = await lstat(join(root, entry.target ?? ''), { bigint: true }).catch(() => undefined);
    const same = first !== undefined && first.ino === info.ino && first.dev === info.dev;
    if (!same) {
      differences.push({
        path,
        kind: 'hardlink',
        expected: entry.target,
        problem: `it should be a hard link to ${JSON.stringify(entry.target)}, but is not the same file`,
      });
    }
    return differences; // everything else belongs to the first path's inode
  }
  differ('type', entry.type, typeOf(info), 'type');
  if (differences.length > 0) return differences;
  if (entry.type === 'file') {
    differ('size', String(entry.size), String(info.size), 'size');
    differ('sha256', entry.sha256, restored.sha256, 'SHA-256');
  }
  if (entry.type === 'symlink') differ('target', entry.target, await readlink(join(root, path)), 'link target');
  if (entry.type === 'char-device' || entry.type === 'block-device') {
    const { major, minor } = splitDevice(info.rdev);
    differ('device', `${entry.devmajor},${entry.devminor}`, `${major},${minor}`, 'device number');
  }
  if (entry.type !== 'symlink') {
    const archived = Number.parseInt(entry.mode, 8);
    const expected = preservedOwners ? archived : archived & ~SETUID_SETGID;
    differ('mode', octal(expected), octal(Number(info.mode) & 0o7777), 'mode');
  }
  if (preservedOwners) differ('owner', `${entry.uid}:${entry.gid}`, `${info.uid}:${info.gid}`, 'owner');
  differ('mtime', entry.mtime, isoMilliseconds(info.mtimeNs), 'mtime');
  return differences;
}

function typeOf(info: BigIntStats): TarEntryType | 'socket' {
  if (info.isFile()) return 'file';
  if (info.isDirectory()) return 'directory';
  if (info.isSymbolicLink()) return 'symlink';
  if (info.isFIFO()) return 'fifo';
  if (info.isCharacterDevice()) return 'char-device';
  if (info.isBlockDevice()) return 'block-device';
  return 'socket';
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

/** The index's mtime format: UTC ISO-8601, milliseconds rounded down (before 1970 too). */
function isoMilliseconds(ns: bigint): string {
  const ms = ns / 1_000_000n - (ns < 0n && ns % 1_000_000n !== 0n ? 1n : 0n);
  return new Date(Number(ms)).toISOString();
}

/** Linux's encoding of a device number (glibc's gnu_dev_major/gnu_dev_minor). */
function splitDevice(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}
