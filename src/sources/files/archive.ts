// Writes the files source's pax tar and its index, synchronously: small files cost a few system
// calls each (the thread pool's round trips would cost ten times more). It runs in a worker thread
// (see worker.ts), so blocking reads, even a hung network filesystem, never hold up the main thread.
// Contents are read straight into large batches, which `ArchiveSink.send` hands on whole.

import * as nodeCrypto from 'node:crypto';
import { createHash, type Hash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { closeSync, constants, fstatSync, openSync, readlinkSync, readSync } from 'node:fs';
import { messageOf } from '../../lib/errors.js';
import {
  endOfArchive,
  type HeaderPlan,
  paddingSize,
  planHeader,
  type TarEntryType,
  writeHeader as writeTarHeader,
  zeroFill,
} from '../../pipeline/tar.js';
import { type WalkEntry, type WalkFile, type WalkOptions, walkTree } from '../../pipeline/walk.js';

export type IndexEntryType = TarEntryType | 'socket';

/** One line of the JSONL index. */
export interface IndexEntry {
  path: string;
  type: IndexEntryType;
  size?: number;
  /** Four octal digits, setuid/setgid/sticky included: `"0644"`. */
  mode: string;
  uid: number;
  gid: number;
  /** UTC ISO-8601 with milliseconds. */
  mtime: string;
  /** Symlink text, or the first path of a hard link. */
  target?: string;
  devmajor?: number;
  devminor?: number;
  /** SHA-256 of the bytes stored in the tar. */
  sha256?: string;
  /** The file changed while it was read: the stored bytes are not a consistent snapshot. */
  changed?: true;
}

/** Where the archive goes. */
export interface ArchiveSink {
  /**
   * Takes `batch` (ownership passes: the writer never touches it again) and the index lines of the
   * entries it holds or precedes. May block while the consumer is behind; throws to stop the archive.
   */
  send(batch: Buffer, length: number, indexText: string): void;
  /** Throws when the archive must stop (the consumer is gone or the run was aborted). Cheap. */
  throwIfStopped(): void;
}

export interface ArchiveResult {
  /** Entries in the index (tar entries and sockets). */
  entries: number;
  warnings: string[];
}

// O_NOFOLLOW: a file replaced by a symlink is not followed; O_NONBLOCK: one replaced by a FIFO cannot hang the run.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

/** Writes the whole archive to `sink`, ending with the end-of-archive blocks. Throws what stops it. */
export function writeArchive(options: WalkOptions, sink: ArchiveSink, batchBytes: number): ArchiveResult {
  const state: ArchiveState = {
    output: new BatchWriter(sink, batchBytes),
    warnings: [],
    entries: 0,
    hardLinks: new Map(),
  };
  for (const event of walkTree({ ...options, skipFileStats: true })) {
    sink.throwIfStopped();
    if (event.warning !== undefined) state.warnings.push(event.warning);
    else if (event.file !== undefined) archiveListedFile(event.file, state);
    else archiveEntry(event.entry, state);
  }
  state.output.end();
  return { entries: state.entries, warnings: state.warnings };
}

/** The batch being filled: entries are written at `used`; a full batch goes to the sink with its index lines. */
class BatchWriter {
  batch: Buffer;
  used = 0;
  /** Batches sent so far: bytes written since a given count are still in `batch`. */
  sent = 0;
  private indexLines: string[] = [];

  constructor(
    private readonly sink: ArchiveSink,
    private readonly batchBytes: number,
  ) {
    this.batch = Buffer.allocUnsafeSlow(batchBytes);
  }

  get free(): number {
    return this.batch.length - this.used;
  }

  write(bytes: Buffer): void {
    this.makeRoom(bytes.length);
    bytes.copy(this.batch, this.used);
    this.used += bytes.length;
  }

  /** A tar header, written straight into the batch. */
  writeHeader(plan: HeaderPlan): void {
    this.makeRoom(plan.length);
    writeTarHeader(this.batch, this.used, plan);
    this.used += plan.length;
  }

  private makeRoom(length: number): void {
    if (length <= this.free) return;
    this.flush();
    if (length > this.batch.length) this.batch = Buffer.allocUnsafeSlow(length);
  }

  writeZeros(count: number): void {
    if (count > this.free) this.flush();
    zeroFill(this.batch, this.used, this.used + count);
    this.used += count;
  }

  addIndexEntry(entry: IndexEntry): void {
    this.indexLines.push(JSON.stringify(entry));
  }

  flush(): void {
    if (this.used === 0) return;
    const full = this.batch;
    const length = this.used;
    // Unpooled, so that its whole ArrayBuffer can change hands.
    this.batch = Buffer.allocUnsafeSlow(this.batchBytes);
    this.used = 0;
    this.sent++;
    this.sink.send(full, length, this.takeIndexText());
  }

  end(): void {
    this.write(endOfArchive());
    this.flush();
  }

  private takeIndexText(): string {
    if (this.indexLines.length === 0) return '';
    const text = `${this.indexLines.join('\n')}\n`;
    this.indexLines = [];
    return text;
  }
}

interface ArchiveState {
  output: BatchWriter;
  warnings: string[];
  entries: number;
  /** `dev:ino` → archive name of the first path stored, for files with more than one link. */
  hardLinks: Map<string, string>;
}

function archiveEntry(entry: WalkEntry, state: ArchiveState): void {
  const { stats } = entry;
  if (stats.isSocket()) {
    // tar has no socket type; the index still lists it (a server recreates it when it starts).
    addIndexEntry(state, entry, 'socket', {});
    return;
  }
  if (stats.isFile()) {
    const opened = openRegularFile(entry.path);
    if ('skipped' in opened) state.warnings.push(opened.skipped);
    else archiveOpenedFile(entry, opened, state);
    return;
  }
  if (stats.nlink > 1n && !stats.isDirectory()) {
    // A FIFO or a device with several names: stored once, then as links to the first name.
    const key = `${stats.dev}:${stats.ino}`;
    const firstPath = state.hardLinks.get(key);
    if (firstPath !== undefined) {
      writeHardLink(state, entry, firstPath);
      return;
    }
    if (archiveByType(entry, state)) state.hardLinks.set(key, entry.name);
    return;
  }
  archiveByType(entry, state);
}

/** A regular file as its directory listed it: its stats are those of what is opened. */
function archiveListedFile(file: WalkFile, state: ArchiveState): void {
  const opened = openRegularFile(file.path);
  if ('skipped' in opened) {
    state.warnings.push(opened.skipped);
    return;
  }
  archiveOpenedFile({ ...file, stats: opened.stats }, opened, state);
}

/** A regular file, open: stored with its content, or as a hard link to a path stored before. */
function archiveOpenedFile(entry: WalkEntry, opened: OpenFile, state: ArchiveState): void {
  const { stats } = opened;
  const linkKey = stats.nlink > 1n ? `${stats.dev}:${stats.ino}` : undefined;
  const firstPath = linkKey === undefined ? undefined : state.hardLinks.get(linkKey);
  try {
    if (firstPath !== undefined) writeHardLink(state, entry, firstPath);
    else if (archiveFile(entry, opened, state) && linkKey !== undefined) state.hardLinks.set(linkKey, entry.name);
  } finally {
    closeSync(opened.fd);
  }
}

function writeHardLink(state: ArchiveState, entry: WalkEntry, firstPath: string): void {
  writeHeader(state, entry, 'hardlink', { linkName: firstPath });
  addIndexEntry(state, entry, 'hardlink', { target: firstPath });
}

/** Stores an entry that is neither a regular file nor a second link; false when it was skipped (with a warning). */
function archiveByType(entry: WalkEntry, state: ArchiveState): boolean {
  const { stats } = entry;
  if (stats.isDirectory()) {
    writeHeader(state, entry, 'directory', {});
    addIndexEntry(state, entry, 'directory', {});
    return true;
  }
  if (stats.isSymbolicLink()) {
    const target = readLink(entry.path);
    if (target === undefined) {
      state.warnings.push(`${entry.path} vanished or was replaced during the walk and was skipped.`);
      return false;
    }
    writeHeader(state, entry, 'symlink', { linkName: target });
    addIndexEntry(state, entry, 'symlink', { target });
    return true;
  }
  const type: TarEntryType = stats.isFIFO() ? 'fifo' : stats.isCharacterDevice() ? 'char-device' : 'block-device';
  // Never opened: a FIFO or a device is stored as what it is, not what reading it would give.
  const device = type === 'fifo' ? undefined : splitDevice(stats.rdev);
  writeHeader(state, entry, type, device ?? {});
  addIndexEntry(state, entry, type, device ? { devmajor: device.devMajor, devminor: device.devMinor } : {});
  return true;
}

function writeHeader(
  state: ArchiveState,
  entry: WalkEntry,
  type: TarEntryType,
  extra: { linkName?: string; devMajor?: number; devMinor?: number; size?: number },
): number {
  const { stats } = entry;
  const name = type === 'directory' ? `${entry.name}/` : entry.name;
  const plan = planHeader({
    name,
    type,
    mode: Number(stats.mode),
    uid: Number(stats.uid),
    gid: Number(stats.gid),
    size: extra.size ?? 0,
    mtimeNs: stats.mtimeNs,
    ...extra,
  });
  state.output.writeHeader(plan);
  return plan.length;
}

function addIndexEntry(
  state: ArchiveState,
  entry: WalkEntry,
  type: IndexEntryType,
  extra: Omit<Partial<IndexEntry>, 'path' | 'type' | 'mode' | 'uid' | 'gid' | 'mtime'>,
): void {
  const { stats } = entry;
  state.output.addIndexEntry({
    path: entry.name,
    type,
    size: extra.size,
    mode: (Number(stats.mode) & 0o7777).toString(8).padStart(4, '0'),
    uid: Number(stats.uid),
    gid: Number(stats.gid),
    mtime: isoTime(stats.mtimeNs),
    target: extra.target,
    devmajor: extra.devmajor,
    devminor: extra.devminor,
    sha256: extra.sha256,
    changed: extra.changed,
  });
  state.entries++;
}

/**
 * Stores an open regular file: exactly the size it had when opened, read into the batches. A file
 * that shrinks is padded with zeros, one that grows is cut; both are flagged, and the tar stays valid.
 * `entry.stats` is what the walk saw (the same as the opened stats for a file it did not look at).
 */
function archiveFile(entry: WalkEntry, opened: OpenFile, state: ArchiveState): boolean {
  const { fd } = opened;
  const output = state.output;
  const size = Number(entry.stats.size);
  const headerLength = writeHeader(state, entry, 'file', { size });
  const headerAt = output.used - headerLength;
  const sentAtHeader = output.sent;
  let outcome: ReadOutcome;
  let sha256: string;
  try {
    if (size < output.free) {
      outcome = readSmallFile(fd, size, output);
      sha256 = sha256Of(output.batch.subarray(output.used - size, output.used));
    } else {
      const hash = createHash('sha256');
      outcome = readLargeFile(fd, size, output, hash);
      sha256 = hash.digest('hex');
    }
  } catch (error) {
    if (!isSystemError(error)) throw error; // stopped
    if (!isPermissionError(error) || output.sent !== sentAtHeader) {
      throw new Error(`cannot read ${entry.path}: ${messageOf(error)}`, { cause: error });
    }
    output.used = headerAt; // nothing of it was sent yet: leave it out
    state.warnings.push(unreadableWarning(entry.path));
    return false;
  }
  output.writeZeros(paddingSize(size));
  // A small file read whole in one call needs no second look; anything else is checked again.
  const after = outcome === 'whole' ? opened.stats : fstatSync(fd, { bigint: true });
  const change = describeChange(entry.stats, opened.stats, after, outcome);
  if (change !== undefined) state.warnings.push(`changed while read: ${entry.name} (${change})`);
  addIndexEntry(state, entry, 'file', {
    size,
    sha256,
    ...(change !== undefined && { changed: true as const }),
  });
  return true;
}

/**
 * SHA-256 of bytes in memory in one call where node has it (20.12 and later): for the many small
 * files of a tree, a third of the cost of a Hash object each.
 */
const sha256Of: (data: Buffer) => string =
  typeof nodeCrypto.hash === 'function'
    ? (data) => nodeCrypto.hash('sha256', data, 'hex')
    : (data) => createHash('sha256').update(data).digest('hex');

/** `whole`: read in one call, no more and no less; `read`: read in parts; `short`: it ended early; `long`: it has more. */
type ReadOutcome = 'whole' | 'read' | 'short' | 'long';

/** A file that fits in the current batch, with one byte to spare: one read shows whether it grew. */
function readSmallFile(fd: number, size: number, output: BatchWriter): ReadOutcome {
  const start = output.used;
  let got = readSync(fd, output.batch, start, size + 1, 0);
  let outcome: ReadOutcome = got === size ? 'whole' : 'long';
  if (got < size) {
    got += readFully(fd, output.batch, start + got, size - got, got);
    outcome = got < size ? 'short' : 'read';
    output.batch.fill(0, start + got, start + size);
  }
  output.used += size;
  return outcome;
}

/** A file larger than what is left of the batch: read in batch-sized parts, each batch sent when full. */
function readLargeFile(fd: number, size: number, output: BatchWriter, hash: Hash): ReadOutcome {
  let position = 0;
  let ended = false;
  while (position < size) {
    if (output.free === 0) output.flush(); // also where a stop request arrives
    const want = Math.min(size - position, output.free);
    const got = ended ? 0 : readFully(fd, output.batch, output.used, want, position);
    if (got < want) {
      ended = true;
      output.batch.fill(0, output.used + got, output.used + want);
    }
    hash.update(output.batch.subarray(output.used, output.used + want));
    output.used += want;
    position += want;
  }
  return ended ? 'short' : 'read';
}

export interface OpenFile {
  fd: number;
  stats: BigIntStats;
}

export type OpenedFile = OpenFile | { skipped: string };

/**
 * Opens what lstat saw as a regular file, without following a symlink or blocking on a FIFO that
 * replaced it since; anything but a regular file is closed again and skipped, with the reason.
 */
export function openRegularFile(path: string): OpenedFile {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (isPermissionError(error)) return { skipped: unreadableWarning(path) };
    if (code === 'ENOENT') return { skipped: `${path} vanished during the walk and was skipped.` };
    if (code === 'ELOOP') return { skipped: `${path} was replaced by a symlink during the walk and was skipped.` };
    if (code === 'ENXIO') return { skipped: `${path} was replaced by a socket during the walk and was skipped.` };
    throw new Error(`cannot open ${path}: ${messageOf(error)}`, { cause: error });
  }
  const stats = fstatSync(fd, { bigint: true });
  if (stats.isFile()) return { fd, stats };
  closeSync(fd);
  return { skipped: `${path} was replaced by something that is not a regular file during the walk and was skipped.` };
}

/** What changed between lstat and the end of the read, or undefined when nothing did. */
function describeChange(
  before: BigIntStats,
  opened: BigIntStats,
  after: BigIntStats,
  outcome: ReadOutcome,
): string | undefined {
  const changes: string[] = [];
  if (opened.ino !== before.ino || opened.dev !== before.dev) changes.push('replaced by another file');
  if (after.size !== before.size) changes.push(`size ${before.size} -> ${after.size}`);
  if (after.mtimeNs !== before.mtimeNs) changes.push(`mtime ${isoTime(before.mtimeNs)} -> ${isoTime(after.mtimeNs)}`);
  if (changes.length === 0 && outcome === 'short') changes.push(`ended before its size of ${before.size} bytes`);
  if (changes.length === 0 && outcome === 'long') changes.push(`grew past its size of ${before.size} bytes`);
  return changes.length > 0 ? changes.join(', ') : undefined;
}

/** Reads until `length` bytes or the end of the file; returns the bytes read. */
function readFully(fd: number, buffer: Buffer, offset: number, length: number, position: number): number {
  let total = 0;
  while (total < length) {
    const got = readSync(fd, buffer, offset + total, length - total, position + total);
    if (got === 0) break;
    total += got;
  }
  return total;
}

function readLink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EINVAL') return undefined;
    throw new Error(`cannot read symlink ${path}: ${messageOf(error)}`, { cause: error });
  }
}

/** An error of a system call (it names the call), as opposed to a stop request. */
function isSystemError(error: unknown): boolean {
  return typeof (error as NodeJS.ErrnoException).syscall === 'string';
}

function isPermissionError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EPERM';
}

function unreadableWarning(path: string): string {
  return `cannot read ${path} (permission denied): it was left out of the backup.`;
}

/** Linux's encoding of a device number (glibc's gnu_dev_major/gnu_dev_minor). */
function splitDevice(rdev: bigint): { devMajor: number; devMinor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { devMajor: Number(major), devMinor: Number(minor) };
}

function isoTime(ns: bigint): string {
  let ms = ns / 1_000_000n;
  if (ns < 0n && ns % 1_000_000n !== 0n) ms -= 1n;
  return new Date(Number(ms)).toISOString();
}
