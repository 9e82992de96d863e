// The `files` source: configured trees as one pax tar stream plus a JSONL index of every entry.
// Small files cost a few synchronous syscalls each (the thread pool's round trips would cost ten
// times more); contents are read straight into large output batches, pushed with backpressure.

import { createHash, type Hash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { accessSync, closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, readSync } from 'node:fs';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { messageOf, SourceError } from '../lib/errors.js';
import { encodeHeader, endOfArchive, paddingSize, type TarEntryType } from '../pipeline/tar.js';
import { MissingPathError, normalizeRoots, type WalkEntry, walkTree } from '../pipeline/walk.js';
import type { ComponentFacts, ComponentStream, PreflightFinding, Source, SourceContext } from './types.js';

export interface FilesSourceOptions {
  /** Source name, also the component name. */
  name: string;
  /** Absolute paths (resolved by the config loader). Overlapping paths are stored once. */
  paths: string[];
  /** Globs (picomatch, dotfiles included) against the path relative to its configured path; `/…` globs against the absolute path. */
  exclude: string[];
  /** Do not descend into directories on another device than their configured path. */
  oneFileSystem: boolean;
  /**
   * Store entries relative to this directory instead of `/`, and match relative globs against the
   * path relative to it (the system source: relative to its root). Default: none.
   */
  base?: string;
}

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

/** Output batches: large enough for few, large writes; small enough to keep memory flat. */
const BATCH_BYTES = 1 << 20;
// O_NOFOLLOW: a file replaced by a symlink is not followed; O_NONBLOCK: one replaced by a FIFO cannot hang the run.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

export function createFilesSource(options: FilesSourceOptions): Source {
  return {
    name: options.name,
    type: 'files',
    check: async () => checkPaths(options),
    estimateRawBytes: async (ctx) => estimateRawBytes(options, ctx.signal),
    async *components(ctx: SourceContext): AsyncIterable<ComponentStream> {
      yield startComponent(options, ctx.signal);
    },
  };
}

function checkPaths(options: FilesSourceOptions): PreflightFinding[] {
  const findings: PreflightFinding[] = [];
  const prefix = `source ${options.name}:`;
  for (const path of normalizeRoots(options.paths)) {
    let stats: BigIntStats | undefined;
    try {
      stats = lstatSync(path, { bigint: true, throwIfNoEntry: false });
    } catch (error) {
      findings.push({ fatal: true, message: `${prefix} cannot look at path ${path}: ${messageOf(error)}` });
      continue;
    }
    if (stats === undefined) {
      findings.push({ fatal: true, message: `${prefix} path ${path} does not exist` });
    } else if (stats.isSymbolicLink()) {
      findings.push({
        fatal: false,
        message: `${prefix} path ${path} is a symlink (to ${readlinkSync(path)}): only the link will be stored; configure the path it points to in order to back up its contents`,
      });
    } else if (stats.isDirectory() && !canList(path)) {
      findings.push({
        fatal: true,
        message: `${prefix} cannot read directory ${path} (permission denied); run backproof as a user that can read it`,
      });
    }
  }
  return findings;
}

function canList(path: string): boolean {
  try {
    accessSync(path, constants.R_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Sum of the sizes of the regular files that would be stored (hard links once), without reading them. */
async function estimateRawBytes(options: FilesSourceOptions, signal: AbortSignal): Promise<number> {
  let total = 0;
  const seen = new Set<string>();
  let seenEntries = 0;
  for (const path of normalizeRoots(options.paths)) {
    try {
      for (const { entry } of walkTree({ ...options, paths: [path], signal })) {
        if (++seenEntries % 1024 === 0) await yieldToEventLoop(); // lets an abort arrive
        if (!entry?.stats.isFile()) continue;
        if (entry.stats.nlink > 1n) {
          const key = `${entry.stats.dev}:${entry.stats.ino}`;
          if (seen.has(key)) continue;
          seen.add(key);
        }
        total += Number(entry.stats.size);
      }
    } catch (error) {
      if (error instanceof MissingPathError) continue; // check() reports it
      if (signal.aborted) throw error;
      throw new SourceError(options.name, `cannot estimate the size: ${messageOf(error)}`, { cause: error });
    }
  }
  return total;
}

/** The data stream was closed by its consumer before the archive was complete. */
class StoppedError extends Error {
  override readonly name = 'StoppedError';
}

/**
 * Where the archive goes: entries are written into `batch` at `used`; a full batch is pushed to
 * `data` (waiting while the consumer is behind) together with the index lines of its entries.
 */
class ArchiveOutput {
  readonly data: Readable;
  readonly index: Readable;
  batch = Buffer.allocUnsafe(BATCH_BYTES);
  used = 0;
  /** Batches pushed so far: bytes written since a given count are still in `batch`. */
  flushes = 0;
  private indexLines: string[] = [];
  private demand = false;
  private wake: (() => void) | undefined;

  constructor(onFirstRead: () => void) {
    let started = false;
    this.data = new Readable({
      highWaterMark: 2 * BATCH_BYTES,
      read: () => {
        this.demand = true;
        this.wake?.();
        if (!started) {
          started = true;
          onFirstRead();
        }
      },
      destroy: (error, callback) => {
        this.wake?.();
        callback(error);
      },
    });
    // Index lines are small: they are never held back, so a consumer may read `data` first.
    this.index = new Readable({ read() {} });
    // A failure still reaches every consumer (pipeline, finished, iteration, `facts`); these only keep
    // a stream that nobody listens to yet (or any more) from crashing the process with its error.
    this.data.on('error', () => {});
    this.index.on('error', () => {});
  }

  get free(): number {
    return this.batch.length - this.used;
  }

  async write(bytes: Buffer): Promise<void> {
    if (bytes.length > this.free) {
      await this.flush();
      if (bytes.length > this.batch.length) this.batch = Buffer.allocUnsafe(bytes.length);
    }
    bytes.copy(this.batch, this.used);
    this.used += bytes.length;
  }

  async writeZeros(count: number): Promise<void> {
    if (count > this.free) await this.flush();
    this.batch.fill(0, this.used, this.used + count);
    this.used += count;
  }

  addIndexEntry(entry: IndexEntry): void {
    this.indexLines.push(JSON.stringify(entry));
  }

  async flush(): Promise<void> {
    if (this.used === 0) return;
    const chunk = this.batch.subarray(0, this.used);
    this.batch = Buffer.allocUnsafe(BATCH_BYTES);
    this.used = 0;
    this.flushes++;
    this.pushIndex();
    await this.push(chunk);
    // A consumer that never pushes back would otherwise keep signals and timers waiting until the end.
    if (this.flushes % 16 === 0) await yieldToEventLoop();
  }

  async end(): Promise<void> {
    await this.write(endOfArchive());
    await this.flush();
    this.pushIndex();
    this.index.push(null);
    this.data.push(null);
  }

  fail(error: unknown): void {
    this.data.destroy(error as Error);
    this.index.destroy(error as Error);
  }

  private pushIndex(): void {
    if (this.indexLines.length === 0 || this.index.destroyed) return;
    this.index.push(`${this.indexLines.join('\n')}\n`);
    this.indexLines = [];
  }

  private async push(chunk: Buffer): Promise<void> {
    if (this.data.destroyed) throw new StoppedError('the data stream was closed');
    this.demand = false;
    if (this.data.push(chunk)) return;
    while (!this.demand && !this.data.destroyed) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
    this.wake = undefined;
    if (this.data.destroyed) throw new StoppedError('the data stream was closed');
  }
}

interface ArchiveState {
  output: ArchiveOutput;
  signal: AbortSignal;
  warnings: string[];
  entries: number;
  /** `dev:ino` → archive name of the first path stored, for files with more than one link. */
  hardLinks: Map<string, string>;
}

/** The one component: streams start producing when `data` is first read. */
function startComponent(options: FilesSourceOptions, signal: AbortSignal): ComponentStream {
  let resolveFacts: (facts: ComponentFacts) => void = () => {};
  let rejectFacts: (error: unknown) => void = () => {};
  const facts = new Promise<ComponentFacts>((resolve, reject) => {
    resolveFacts = resolve;
    rejectFacts = reject;
  });
  // The core awaits facts only after the streams; a rejection before that must not crash the process.
  facts.catch(() => {});

  const fail = (error: unknown): void => {
    const failure = describeFailure(options.name, signal, error);
    output.fail(failure);
    rejectFacts(failure);
  };
  const onAbort = (): void => fail(signal.reason);
  const output = new ArchiveOutput(() => {
    const state: ArchiveState = { output, signal, warnings: [], entries: 0, hardLinks: new Map() };
    writeArchive(options, state)
      .then(() => Promise.all([finished(output.data), finished(output.index)]))
      .then(() => resolveFacts({ files: state.entries, warnings: state.warnings }))
      .catch(fail)
      .finally(() => signal.removeEventListener('abort', onAbort));
  });
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return { name: options.name, kind: 'files', extension: 'tar', data: output.data, index: output.index, facts };
}

function describeFailure(source: string, signal: AbortSignal, error: unknown): unknown {
  if (signal.aborted) return signal.reason;
  if (error instanceof SourceError) return error;
  if (error instanceof StoppedError) {
    return new SourceError(source, 'the archive was not read to the end: its data stream was closed', {
      cause: error,
    });
  }
  return new SourceError(source, messageOf(error), { cause: error });
}

async function writeArchive(options: FilesSourceOptions, state: ArchiveState): Promise<void> {
  state.signal.throwIfAborted();
  for (const event of walkTree({ ...options, signal: state.signal })) {
    if (event.warning !== undefined) state.warnings.push(event.warning);
    else await archiveEntry(event.entry, state);
  }
  await state.output.end();
}

async function archiveEntry(entry: WalkEntry, state: ArchiveState): Promise<void> {
  const { stats } = entry;
  if (stats.isSocket()) {
    // tar has no socket type; the index still lists it (a server recreates it when it starts).
    addIndexEntry(state, entry, 'socket', {});
    return;
  }
  const linkKey = stats.nlink > 1n && !stats.isDirectory() ? `${stats.dev}:${stats.ino}` : undefined;
  const firstPath = linkKey === undefined ? undefined : state.hardLinks.get(linkKey);
  if (firstPath !== undefined) {
    await writeHeader(state, entry, 'hardlink', { linkName: firstPath });
    addIndexEntry(state, entry, 'hardlink', { target: firstPath });
    return;
  }
  const stored = await archiveByType(entry, state);
  if (stored && linkKey !== undefined) state.hardLinks.set(linkKey, entry.name);
}

/** Stores one entry that is not a second link; false when it was skipped (with a warning). */
async function archiveByType(entry: WalkEntry, state: ArchiveState): Promise<boolean> {
  const { stats } = entry;
  if (stats.isFile()) return archiveFile(entry, state);
  if (stats.isDirectory()) {
    await writeHeader(state, entry, 'directory', {});
    addIndexEntry(state, entry, 'directory', {});
    return true;
  }
  if (stats.isSymbolicLink()) {
    const target = readLink(entry.path);
    if (target === undefined) {
      state.warnings.push(`${entry.path} vanished or was replaced during the walk and was skipped.`);
      return false;
    }
    await writeHeader(state, entry, 'symlink', { linkName: target });
    addIndexEntry(state, entry, 'symlink', { target });
    return true;
  }
  const type: TarEntryType = stats.isFIFO() ? 'fifo' : stats.isCharacterDevice() ? 'char-device' : 'block-device';
  // Never opened: a FIFO or a device is stored as what it is, not what reading it would give.
  const device = type === 'fifo' ? undefined : splitDevice(stats.rdev);
  await writeHeader(state, entry, type, device ?? {});
  addIndexEntry(state, entry, type, device ? { devmajor: device.devMajor, devminor: device.devMinor } : {});
  return true;
}

async function writeHeader(
  state: ArchiveState,
  entry: WalkEntry,
  type: TarEntryType,
  extra: { linkName?: string; devMajor?: number; devMinor?: number; size?: number },
): Promise<number> {
  const { stats } = entry;
  const name = type === 'directory' ? `${entry.name}/` : entry.name;
  const header = encodeHeader({
    name,
    type,
    mode: Number(stats.mode),
    uid: Number(stats.uid),
    gid: Number(stats.gid),
    size: extra.size ?? 0,
    mtimeNs: stats.mtimeNs,
    ...extra,
  });
  await state.output.write(header);
  return header.length;
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
 * Stores a regular file: exactly its lstat size, read into the output batches. A file that shrinks
 * is padded with zeros, one that grows is cut; both are flagged, and the tar stays valid.
 */
async function archiveFile(entry: WalkEntry, state: ArchiveState): Promise<boolean> {
  const opened = openRegularFile(entry.path);
  if ('skipped' in opened) {
    state.warnings.push(opened.skipped);
    return false;
  }
  const { fd } = opened;
  const output = state.output;
  try {
    const size = Number(entry.stats.size);
    const headerLength = await writeHeader(state, entry, 'file', { size });
    const headerAt = output.used - headerLength;
    const flushesAtHeader = output.flushes;
    const hash = createHash('sha256');
    let outcome: ReadOutcome;
    try {
      outcome = size < output.free ? readSmallFile(fd, size, output, hash) : await readLargeFile(fd, size, state, hash);
    } catch (error) {
      if (!isSystemError(error)) throw error; // stopped or aborted
      if (!isPermissionError(error) || output.flushes !== flushesAtHeader) {
        throw new Error(`cannot read ${entry.path}: ${messageOf(error)}`, { cause: error });
      }
      output.used = headerAt; // nothing of it was sent yet: leave it out
      state.warnings.push(unreadableWarning(entry.path));
      return false;
    }
    await output.writeZeros(paddingSize(size));
    // A small file read whole in one call needs no second look; anything else is checked again.
    const after = outcome === 'whole' ? opened.stats : fstatSync(fd, { bigint: true });
    const change = describeChange(entry.stats, opened.stats, after, outcome);
    if (change !== undefined) state.warnings.push(`changed while read: ${entry.name} (${change})`);
    addIndexEntry(state, entry, 'file', {
      size,
      sha256: hash.digest('hex'),
      ...(change !== undefined && { changed: true as const }),
    });
    return true;
  } finally {
    closeSync(fd);
  }
}

/** `whole`: read in one call, no more and no less; `read`: read in parts; `short`: it ended early; `long`: it has more. */
type ReadOutcome = 'whole' | 'read' | 'short' | 'long';

/** A file that fits in the current batch, with one byte to spare: one read shows whether it grew. */
function readSmallFile(fd: number, size: number, output: ArchiveOutput, hash: Hash): ReadOutcome {
  const start = output.used;
  let got = readSync(fd, output.batch, start, size + 1, 0);
  let outcome: ReadOutcome = got === size ? 'whole' : 'long';
  if (got < size) {
    got += readFully(fd, output.batch, start + got, size - got, got);
    outcome = got < size ? 'short' : 'read';
    output.batch.fill(0, start + got, start + size);
  }
  const content = output.batch.subarray(start, start + size);
  hash.update(content);
  output.used += size;
  return outcome;
}

/** A file larger than the batch: read in batch-sized parts, with backpressure between them. */
async function readLargeFile(fd: number, size: number, state: ArchiveState, hash: Hash): Promise<ReadOutcome> {
  const output = state.output;
  let position = 0;
  let ended = false;
  while (position < size) {
    if (output.free === 0) {
      await output.flush();
      state.signal.throwIfAborted();
    }
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

export type OpenedFile = { fd: number; stats: BigIntStats } | { skipped: string };

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

/** An error of a system call (it names the call), as opposed to an abort or a closed stream. */
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

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function isoTime(ns: bigint): string {
  let ms = ns / 1_000_000n;
  if (ns < 0n && ns % 1_000_000n !== 0n) ms -= 1n;
  return new Date(Number(ms)).toISOString();
}
