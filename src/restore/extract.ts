// Extracts a tar (backproof's pax archives, and GNU/ustar ones) into an empty staging directory,
// restoring contents and metadata, hashing every file while it is written.
//
// Nothing outside the staging directory is ever touched, whatever the archive holds:
// - names are refused when absolute, with a `..` component or a NUL byte;
// - every path is created below the staging directory only through directories this extraction
//   made itself (remembered in memory; the staging directory starts empty), so an entry that goes
//   through a symlink or a file extracted earlier (`a -> /etc`, then `a/passwd`) is refused before
//   anything is created; files are opened with O_CREAT|O_EXCL|O_NOFOLLOW, and no symlink is ever
//   followed: symlinks are data, created as they are;
// - hard links must name an entry extracted earlier (never a directory, never outside);
// - an entry that would replace a directory, or a directory that would replace another entry, is
//   refused; a later file replaces an earlier one of the same name, as tar does;
// - character and block devices only with `allowDevices` (FIFOs always).
//
// Symlinks that point outside the restored tree (an absolute text, or `..` climbing above the
// archive's root) are refused by default, as the issue asks. Real server trees have them, though:
// Debian's /etc/nginx/sites-enabled, /etc/alternatives and /etc/ssl/certs, Laravel's
// `public/storage`. Since they are never followed here, they are harmless to extraction; with
// `allowOutsideSymlinks` they are created as they are. The check is lexical, link by link: a chain of
// links can still lead elsewhere once something follows them, which only matters after the restore.
//
// Metadata: modes (setuid/setgid only with `preserveOwners`; the sticky bit always), owners with
// `preserveOwners` (lchown for symlinks), mtimes (directories after their contents). Node's utimes
// keeps microseconds (not nanoseconds; before 1970, milliseconds): see `utimesValue`.
// The tar is read with tar-stream (pax path/linkpath/size applied by it; mtime, uid and gid taken
// from `header.pax` here, since tar-stream drops their pax values).
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { messageOf } from '../lib/errors.js';
import { runCapture, toCommandError } from '../lib/exec.js';
import { BLOCK_SIZE, paddingSize, type TarEntryType } from '../pipeline/tar.js';
import { RestoreError, UnsafeArchiveError } from './errors.js';

export interface ExtractOptions {
  /** Aborting stops the extraction at once; the staging directory then holds a partial tree. */
  signal: AbortSignal;
  /** Create character and block devices (needs root). Otherwise an archive holding one is refused. */
  allowDevices: boolean;
  /** Restore owners (uid/gid) and setuid/setgid bits (needs root). Otherwise entries belong to the restoring user. */
  preserveOwners: boolean;
  /** Create symlinks whose text is absolute or climbs above the archive's root, instead of refusing them. Default false. */
  allowOutsideSymlinks?: boolean;
  /**
   * Restore only this archive path: a file, or a directory and everything below it, plus the
   * directories above it. A leading `/` is ignored (archive names have none). Matching nothing is an error.
   */
  only?: string;
}

/** One entry as extracted. */
export interface ExtractedEntry {
  /** Archive path, normalized: no leading `./`, no trailing `/`. */
  path: string;
  type: TarEntryType;
  /** Regular files: bytes written. */
  size?: number;
  /** Regular files: SHA-256 of the bytes written, computed while writing them. */
  sha256?: string;
  /** Symlinks: the link text; hard links: the (normalized) path they link to. */
  target?: string;
}

export interface ExtractSummary {
  /** Every entry extracted, in archive order, one per path (a replaced file appears once, as its last version). */
  entries: ExtractedEntry[];
  /** Regular files written (hard links not counted again). */
  files: number;
  /** Bytes of regular-file content written. */
  bytes: number;
  /** Owners and setuid/setgid bits were restored (`preserveOwners`). */
  preservedOwners: boolean;
}

/**
 * The form archive paths are compared in: no leading `/` or `./`, no empty components, no trailing
 * `/`; '' is the archive's root. Throws a RestoreError for a `..` component or a NUL byte.
 */
export function normalizeArchivePath(path: string): string {
  const normalized = normalizeName(path.replace(/^\/+/, ''));
  if (typeof normalized !== 'string')
    throw new RestoreError(`path ${JSON.stringify(path)} is not valid: ${normalized.problem}`);
  return normalized;
}

/**
 * Extracts `tarStream` into `stagingDir`, which must exist and be empty. Rejects with an
 * UnsafeArchiveError naming the first refused entry, a RestoreError when the archive cannot be read
 * or a file cannot be written, or the signal's reason. On failure the staging directory holds a
 * partial tree: the caller discards it.
 */
export async function extractTar(
  tarStream: Readable,
  stagingDir: string,
  options: ExtractOptions,
): Promise<ExtractSummary> {
  const { signal } = options;
  signal.throwIfAborted();
  assertEmptyDirectory(stagingDir);
  const only = options.only === undefined ? undefined : normalizeArchivePath(options.only) || undefined;
  const extraction = new Extraction(stagingDir, { ...options, only });

  const counter = new ByteCounter();
  const extractor = tar.extract();
  const feeding = pipeline(tarStream, counter, extractor, { signal });
  feeding.catch(() => {}); // awaited below; this only keeps an early failure from going unobserved
  try {
    for await (const entry of extractor) {
      signal.throwIfAborted();
      await extraction.extract(entry);
    }
    await feeding;
  } catch (error) {
    tarStream.destroy();
    extractor.destroy();
    await feeding.catch(() => {});
    if (signal.aborted) throw signal.reason;
    if (error instanceof RestoreError) throw error;
    throw new RestoreError(`cannot read the archive${extraction.afterLastEntry()}: ${messageOf(error)}`, {
      cause: error,
    });
  }
  extraction.checkEnd(counter.bytes);
  extraction.checkMatched();
  extraction.finishDirectories();
  return extraction.summary();
}

function assertEmptyDirectory(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    throw new RestoreError(`cannot use staging directory ${dir}: ${messageOf(error)}`, { cause: error });
  }
  if (names.length > 0) {
    throw new RestoreError(
      `staging directory ${dir} is not empty (it holds ${JSON.stringify(names[0])}); extract into an empty directory`,
    );
  }
}

interface Metadata {
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
}

/** One entry of tar-stream's extractor: a readable of its content, with its header. */
type TarEntry = ReturnType<typeof tar.extract> extends AsyncIterable<infer Entry> ? Entry : never;

/** tar-stream's header as it really is at run time (its types leave out or narrow these fields). */
interface Header {
  name: string;
  /** null for a type flag tar-stream does not know (GNU sparse, volume label, …). */
  type: string | null;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  linkname: string | null;
  devmajor: number;
  devminor: number;
  pax: Record<string, string> | null;
  /** Offset in the archive of the entry's content. */
  byteOffset: number;
}

type Scope = 'inside' | 'ancestor' | 'outside';

const SETUID_SETGID = 0o6000;
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
/** A directory this extraction made for an entry below it, not from an entry of its own. */
const PARENT = 'parent';

class Extraction {
  private readonly entries: ExtractedEntry[] = [];
  private readonly entryIndex = new Map<string, number>();
  /** Every path created so far and what it is. */
  private readonly placed = new Map<string, TarEntryType | typeof PARENT>();
  private readonly directoryMetadata = new Map<string, Metadata>();
  private files = 0;
  private bytes = 0;
  private matched = 0;
  /** Offset in the archive just after the last entry's content. */
  private lastEnd = 0;
  private lastName: string | undefined;
  private readonly now = new Date();

  constructor(
    private readonly root: string,
    private readonly options: ExtractOptions & { only: string | undefined },
  ) {}

  async extract(entry: TarEntry): Promise<void> {
    const header = entry.header as unknown as Header;
    this.lastEnd = header.byteOffset + header.size + paddingSize(header.size);
    this.lastName = header.name;
    const type = entryTypeOf(header);
    const path = checkedName(header.name);
    const scope = scopeOf(path, this.options.only);
    if (path === '' || scope === 'outside' || (scope === 'ancestor' && type !== 'directory')) {
      // The archive's root (`./`) is the staging directory itself: nothing to create.
      if (path === '' && type !== 'directory') refuse(header.name, `a ${type} cannot be the archive's root`);
      await drain(entry);
      return;
    }
    if (scope === 'inside') this.matched++;
    const linkTarget = this.checkLink(header, path, type);
    this.checkParents(header.name, path);
    this.checkReplacement(header.name, path, type);
    if (type === 'file') {
      await this.writeFile(entry, path, metadataOf(header));
    } else {
      await drain(entry);
      await this.create(path, type, header, linkTarget);
    }
  }

  /** An archive whose last entry is not followed by the end-of-archive blocks was cut short. */
  checkEnd(totalBytes: number): void {
    if (totalBytes >= this.lastEnd + 2 * BLOCK_SIZE) return;
    throw new RestoreError(
      `the archive ends without its end-of-archive marker${this.afterLastEntry()}: it was cut short; ` +
        'restore from another target or an older set',
    );
  }

  checkMatched(): void {
    if (this.options.only === undefined || this.matched > 0) return;
    throw new RestoreError(
      `path ${this.options.only} is not in this archive; look it up in the component's index ` +
        '(archive paths have no leading /, e.g. var/www/app/.env)',
    );
  }

  /** Directories get their metadata last, deepest first: creating their entries changed their mtimes. */
  finishDirectories(): void {
    const directories = [...this.placed].filter(([, type]) => type === 'directory' || type === PARENT);
    directories.sort(([a], [b]) => depthOf(b) - depthOf(a));
    for (const [path] of directories) {
      const full = join(this.root, path);
      const metadata = this.directoryMetadata.get(path);
      this.attempt(path, 'set the metadata of', () => {
        if (metadata === undefined) {
          chmodSync(full, 0o755);
          return;
        }
        if (this.options.preserveOwners) lchownSync(full, metadata.uid, metadata.gid);
        chmodSync(full, this.modeOf(metadata));
        utimesSync(full, this.now, utimesValue(metadata.mtimeNs));
      });
    }
  }

  summary(): ExtractSummary {
    return {
      entries: this.entries,
      files: this.files,
      bytes: this.bytes,
      preservedOwners: this.options.preserveOwners,
    };
  }

  afterLastEntry(): string {
    return this.lastName === undefined ? '' : ` (after entry ${JSON.stringify(this.lastName)})`;
  }

  /** The normalized target of a hard link or the text of a symlink, refused when it would lead outside. */
  private checkLink(header: Header, path: string, type: TarEntryType): string | undefined {
    const name = header.name;
    if (type === 'symlink') {
      const text = header.linkname ?? '';
      if (text === '') refuse(name, 'it is a symlink without a target');
      if (text.includes('\0')) refuse(name, 'its symlink target contains a NUL byte');
      if (!this.options.allowOutsideSymlinks && symlinkLeavesTree(path, text)) {
        refuse(
          name,
          `it is a symlink to ${JSON.stringify(text)}, outside the restored tree`,
          'restore it with --allow-outside-symlinks (symlinks are created as they are, never followed during extraction)',
        );
      }
      return text;
    }
    if (type === 'char-device' || type === 'block-device') {
      if (!this.options.allowDevices) {
        refuse(name, `it is a ${type}`, 'device files are restored only when asked for (as root)');
      }
      return undefined;
    }
    if (type !== 'hardlink') return undefined;
    const target = normalizeName(header.linkname ?? '');
    if (typeof target !== 'string') refuse(name, `it is a hard link to a path that is not allowed: ${target.problem}`);
    if (target === '' || target === path) refuse(name, `it is a hard link to ${JSON.stringify(header.linkname)}`);
    const linked = this.placed.get(target);
    if (linked === undefined) {
      if (scopeOf(target, this.options.only) !== 'inside') {
        throw new RestoreError(
          `${JSON.stringify(name)} is a hard link to ${JSON.stringify(target)}, which is outside the restored path ` +
            `${this.options.only}: restore a directory that holds both, or the whole component`,
        );
      }
      refuse(name, `it is a hard link to ${JSON.stringify(target)}, which the archive does not hold before it`);
    }
    if (linked === 'directory' || linked === PARENT)
      refuse(name, `it is a hard link to the directory ${JSON.stringify(target)}`);
    return target;
  }

  /** Creates missing parents as real directories; refuses a path through anything that is not one. */
  private checkParents(name: string, path: string): void {
    let at = path.indexOf('/');
    while (at !== -1) {
      const parent = path.slice(0, at);
      const kind = this.placed.get(parent);
      if (kind === undefined) {
        this.attempt(parent, 'create directory', () => mkdirSync(join(this.root, parent), 0o700));
        this.placed.set(parent, PARENT);
      } else if (kind !== 'directory' && kind !== PARENT) {
        refuse(name, `it would be written through ${JSON.stringify(parent)}, a ${kind} extracted earlier`);
      }
      at = path.indexOf('/', at + 1);
    }
  }

  /** A path met again: directories merge, other entries replace other entries; nothing replaces a directory. */
  private checkReplacement(name: string, path: string, type: TarEntryType): void {
    const existing = this.placed.get(path);
    if (existing === undefined) return;
    const existingIsDirectory = existing === 'directory' || existing === PARENT;
    if (existingIsDirectory && type === 'directory') return;
    if (existingIsDirectory) refuse(name, `a ${type} would replace the directory extracted earlier`);
    if (type === 'directory') refuse(name, `a directory would replace the ${existing} extracted earlier`);
    this.attempt(path, 'replace', () => unlinkSync(join(this.root, path)));
    this.placed.delete(path);
    const index = this.entryIndex.get(path);
    const replaced = index === undefined ? undefined : this.entries[index];
    if (replaced?.type === 'file') {
      this.files--;
      this.bytes -= replaced.size ?? 0;
    }
  }

  private async writeFile(entry: TarEntry, path: string, metadata: Metadata): Promise<void> {
    const full = join(this.root, path);
    const fd = this.attempt(path, 'create', () => openSync(full, CREATE_FLAGS, 0o600));
    const hash = createHash('sha256');
    let written = 0;
    try {
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        this.options.signal.throwIfAborted();
        hash.update(chunk);
        this.attempt(path, 'write', () => writeAll(fd, chunk));
        written += chunk.length;
      }
      this.attempt(path, 'set the metadata of', () => {
        if (this.options.preserveOwners) fchownSync(fd, metadata.uid, metadata.gid);
        fchmodSync(fd, this.modeOf(metadata));
        futimesSync(fd, this.now, utimesValue(metadata.mtimeNs));
      });
    } finally {
      closeSync(fd);
    }
    this.placed.set(path, 'file');
    this.files++;
    this.bytes += written;
    this.record({ path, type: 'file', size: written, sha256: hash.digest('hex') });
  }

  private async create(
    path: string,
    type: TarEntryType,
    header: Header,
    linkTarget: string | undefined,
  ): Promise<void> {
    const full = join(this.root, path);
    const metadata = metadataOf(header);
    switch (type) {
      case 'directory':
        if (!this.placed.has(path)) this.attempt(path, 'create directory', () => mkdirSync(full, 0o700));
        this.directoryMetadata.set(path, metadata);
        break;
      case 'symlink':
        this.attempt(path, 'create symlink', () => {
          symlinkSync(linkTarget as string, full);
          if (this.options.preserveOwners) lchownSync(full, metadata.uid, metadata.gid);
          lutimesSync(full, this.now, utimesValue(metadata.mtimeNs));
        });
        break;
      case 'hardlink':
        // The link shares the first path's inode, metadata included.
        this.attempt(path, 'create hard link', () => linkSync(join(this.root, linkTarget as string), full));
        break;
      default:
        await makeNode(full, type, header, this.options.signal).catch((error: unknown) => {
          if (this.options.signal.aborted) throw error;
          throw new RestoreError(`cannot create ${type} ${JSON.stringify(path)}: ${messageOf(error)}`, {
            cause: error,
          });
        });
        this.attempt(path, 'set the metadata of', () => {
          if (this.options.preserveOwners) lchownSync(full, metadata.uid, metadata.gid);
          chmodSync(full, this.modeOf(metadata));
          utimesSync(full, this.now, utimesValue(metadata.mtimeNs));
        });
    }
    this.placed.set(path, type);
    this.record({ path, type, ...(linkTarget !== undefined && { target: linkTarget }) });
  }

  private record(entry: ExtractedEntry): void {
    const index = this.entryIndex.get(entry.path);
    if (index !== undefined) {
      this.entries[index] = entry;
      return;
    }
    this.entryIndex.set(entry.path, this.entries.length);
    this.entries.push(entry);
  }

  private modeOf(metadata: Metadata): number {
    const mode = metadata.mode & 0o7777;
    return this.options.preserveOwners ? mode : mode & ~SETUID_SETGID;
  }

  /** Runs a filesystem step, turning its failure into a RestoreError that names the entry. */
  private attempt<T>(path: string, action: string, step: () => T): T {
    try {
      return step();
    } catch (error) {
      if (error instanceof RestoreError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      const hint =
        code === 'ENOSPC'
          ? ' (the disk is full: free space, or restore elsewhere with --to)'
          : code === 'EPERM' || code === 'EACCES'
            ? ' (restoring owners, devices or other users’ files needs root)'
            : '';
      throw new RestoreError(`cannot ${action} ${JSON.stringify(path)} in ${this.root}: ${messageOf(error)}${hint}`, {
        cause: error,
      });
    }
  }
}

function refuse(name: string, reason: string, advice?: string): never {
  throw new UnsafeArchiveError(name, reason, advice);
}

/** The normalized name, or why it is refused. */
function normalizeName(raw: string): string | { problem: string } {
  if (raw.includes('\0')) return { problem: 'it contains a NUL byte' };
  if (raw.startsWith('/')) return { problem: 'it is an absolute path' };
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') return { problem: 'it has a ".." component' };
    parts.push(part);
  }
  return parts.join('/');
}

function checkedName(raw: string): string {
  const normalized = normalizeName(raw);
  if (typeof normalized !== 'string') refuse(raw, `its name is not allowed: ${normalized.problem}`);
  return normalized;
}

function scopeOf(path: string, only: string | undefined): Scope {
  if (only === undefined || path === only || path.startsWith(`${only}/`)) return 'inside';
  if (path === '' || only.startsWith(`${path}/`)) return 'ancestor';
  return 'outside';
}

/** Whether a symlink at `path` with text `text` points outside the archive's root, read lexically. */
function symlinkLeavesTree(path: string, text: string): boolean {
  if (text.startsWith('/')) return true;
  let depth = path.split('/').length - 1;
  for (const part of text.split('/')) {
    if (part === '' || part === '.') continue;
    depth += part === '..' ? -1 : 1;
    if (depth < 0) return true;
  }
  return false;
}

function entryTypeOf(header: Header): TarEntryType {
  if (header.pax && Object.keys(header.pax).some((key) => key.startsWith('GNU.sparse'))) {
    refuse(header.name, 'it is a GNU sparse file, which backproof does not restore');
  }
  switch (header.type) {
    case 'file':
    case 'contiguous-file':
      return 'file';
    case 'link':
      return 'hardlink';
    case 'character-device':
      return 'char-device';
    case 'symlink':
    case 'block-device':
    case 'directory':
    case 'fifo':
      return header.type;
    default:
      return refuse(header.name, 'its entry type is not one tar restores as a file (sparse, volume label, …)');
  }
}

function metadataOf(header: Header): Metadata {
  const paxMtime = header.pax?.mtime;
  return {
    mode: header.mode,
    uid: paxInteger(header, 'uid') ?? header.uid,
    gid: paxInteger(header, 'gid') ?? header.gid,
    mtimeNs: paxMtime !== undefined ? paxTime(header, paxMtime) : BigInt(header.mtime.getTime()) * 1_000_000n,
  };
}

function paxInteger(header: Header, key: 'uid' | 'gid'): number | undefined {
  const text = header.pax?.[key];
  if (text === undefined) return undefined;
  if (!/^\d{1,15}$/.test(text))
    throw new RestoreError(`entry ${JSON.stringify(header.name)} has an invalid pax ${key}: ${JSON.stringify(text)}`);
  return Number(text);
}

/** pax times are seconds with an optional fraction: `1762225200.123456789`, `-5.3`. */
function paxTime(header: Header, text: string): bigint {
  const match = /^(-?)(\d{1,15})(?:\.(\d+))?$/.exec(text);
  if (!match)
    throw new RestoreError(`entry ${JSON.stringify(header.name)} has an invalid pax mtime: ${JSON.stringify(text)}`);
  const [, sign, whole = '0', fraction = ''] = match;
  const ns = BigInt(whole) * 1_000_000_000n + BigInt(fraction.slice(0, 9).padEnd(9, '0'));
  return sign === '-' ? -ns : ns;
}

/**
 * The mtime argument for Node's utimes: a number of seconds, which libuv cuts to whole microseconds.
 * Aiming at the middle of the microsecond keeps the double's rounding from landing in the one below.
 * Node turns negative numbers into "now", so times before 1970 go as a Date (milliseconds).
 */
export function utimesValue(ns: bigint): number | Date {
  if (ns < 0n) {
    const ms = ns / 1_000_000n - (ns % 1_000_000n === 0n ? 0n : 1n);
    return new Date(Number(ms));
  }
  const micros = (ns % 1_000_000_000n) / 1000n;
  return Number(ns / 1_000_000_000n) + (Number(micros) + 0.5) / 1e6;
}

function depthOf(path: string): number {
  let depth = 0;
  for (const char of path) if (char === '/') depth++;
  return depth;
}

function writeAll(fd: number, chunk: Buffer): void {
  let offset = 0;
  while (offset < chunk.length) offset += writeSync(fd, chunk, offset, chunk.length - offset);
}

/** Reads an entry's content to its end without keeping it (entries other than files have none, normally). */
async function drain(entry: TarEntry): Promise<void> {
  for await (const _chunk of entry as AsyncIterable<Buffer>) {
    // dropped
  }
}

/** FIFOs and devices: Node has no mkfifo or mknod, the coreutils programs do. Created 0600, chmod follows. */
async function makeNode(full: string, type: TarEntryType, header: Header, signal: AbortSignal): Promise<void> {
  const device = [type === 'char-device' ? 'c' : 'b', String(header.devmajor), String(header.devminor)];
  const program = type === 'fifo' ? 'mkfifo' : 'mknod';
  const args = ['-m', '600', '--', full, ...(type === 'fifo' ? [] : device)];
  const result = await runCapture(program, args, { signal });
  signal.throwIfAborted();
  if (result.exitCode !== 0) throw toCommandError(program, result);
}

/** Counts the bytes of the archive, to tell a complete archive from one cut at an entry's end. */
class ByteCounter extends Transform {
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}
