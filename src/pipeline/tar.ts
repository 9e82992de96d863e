// pax (POSIX.1-2001) tar headers, written by hand: tar-stream drops sub-second mtimes, needs ASCII
// names for ustar and has small uid fields. What does not fit a ustar field goes into a pax extended
// header ('x') before the entry, which GNU tar reads (see test/pipeline/tar.test.ts).

export const BLOCK_SIZE = 512;

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'char-device' | 'block-device' | 'directory' | 'fifo';

export interface TarHeader {
  /** Relative path in the archive; a directory's name ends with `/`. */
  name: string;
  type: TarEntryType;
  /** Permission bits, setuid/setgid/sticky included (higher bits are ignored). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of content that follow the header: regular files only, 0 for every other type. */
  size: number;
  /** Modification time in nanoseconds since the epoch. */
  mtimeNs: bigint;
  /** Symlink text, or the archive name of the first path of a hard link. */
  linkName?: string;
  devMajor?: number;
  devMinor?: number;
}

const TYPE_FLAGS: Record<TarEntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  'char-device': '3',
  'block-device': '4',
  directory: '5',
  fifo: '6',
};

const NS_PER_SECOND = 1_000_000_000n;
// Largest value of a ustar numeric field: n-1 octal digits and a NUL.
const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;
const MAX_OCTAL_11_BIG = BigInt(MAX_OCTAL_11);
// Names and link targets that ustar can carry as they are: printable ASCII.
const USTAR_SAFE = /^[\x20-\x7e]*$/;

/** An entry's header, worked out: `length` bytes, written by `writeHeader`. */
export interface HeaderPlan {
  /** Bytes of the header: a multiple of BLOCK_SIZE (pax header, its records and padding, then ustar). */
  length: number;
  header: TarHeader;
  /** The pax records (UTF-8), or undefined when ustar holds everything. */
  paxText: string | undefined;
  paxBytes: number;
  ustarName: string | undefined;
  prefix: string;
  linkName: string;
  mtime: number;
}

/** Works out an entry's header: what needs pax records, and how many bytes it takes. */
export function planHeader(header: TarHeader): HeaderPlan {
  let paxText: string | undefined;
  const addPax = (key: string, value: string) => {
    paxText = (paxText ?? '') + paxRecord(key, value);
  };
  const { name, prefix } = splitName(header.name);
  if (name === undefined) addPax('path', header.name);
  const linkName = header.linkName ?? '';
  const linkFits = linkName.length <= 100 && USTAR_SAFE.test(linkName);
  if (!linkFits) addPax('linkpath', linkName);
  if (header.size > MAX_OCTAL_11) addPax('size', String(header.size));
  if (header.uid > MAX_OCTAL_7) addPax('uid', String(header.uid));
  if (header.gid > MAX_OCTAL_7) addPax('gid', String(header.gid));
  const seconds = floorDiv(header.mtimeNs, NS_PER_SECOND);
  const mtime = seconds >= 0n && seconds <= MAX_OCTAL_11_BIG ? Number(seconds) : 0;
  if (header.mtimeNs % NS_PER_SECOND !== 0n || BigInt(mtime) !== seconds) addPax('mtime', paxTime(header.mtimeNs));
  const paxBytes = paxText === undefined ? 0 : Buffer.byteLength(paxText, 'utf8');
  const length = (paxText === undefined ? 0 : BLOCK_SIZE + paxBytes + paddingSize(paxBytes)) + BLOCK_SIZE;
  return { length, header, paxText, paxBytes, ustarName: name, prefix, linkName, mtime };
}

/** Writes a planned header at `offset` of `out`, which must have `plan.length` bytes of room there. */
export function writeHeader(out: Buffer, offset: number, plan: HeaderPlan): void {
  const { header, paxText, paxBytes, mtime } = plan;
  let at = offset;
  if (paxText !== undefined) {
    // Only tars without pax support ever show this name; keep it recognisable.
    const base = baseName(header.name);
    writeUstarBlock(out, at, { name: `PaxHeaders/${base}`, mode: 0o644, size: paxBytes, mtime, typeFlag: 'x' });
    at += BLOCK_SIZE;
    out.write(paxText, at, paxBytes, 'utf8');
    zeroFill(out, at + paxBytes, at + paxBytes + paddingSize(paxBytes));
    at += paxBytes + paddingSize(paxBytes);
  }
  writeUstarBlock(out, at, {
    name: plan.ustarName ?? header.name,
    prefix: plan.prefix,
    mode: header.mode & 0o7777,
    uid: header.uid <= MAX_OCTAL_7 ? header.uid : 0,
    gid: header.gid <= MAX_OCTAL_7 ? header.gid : 0,
    size: header.size <= MAX_OCTAL_11 ? header.size : 0,
    mtime,
    typeFlag: TYPE_FLAGS[header.type],
    linkName: plan.linkName,
    devMajor: header.devMajor,
    devMinor: header.devMinor,
  });
}

/** The header block(s) of one entry: a pax extended header when needed, then the ustar header. */
export function encodeHeader(header: TarHeader): Buffer {
  const plan = planHeader(header);
  const out = Buffer.allocUnsafe(plan.length);
  writeHeader(out, 0, plan);
  return out;
}

/** Zero bytes that follow `size` bytes of content to reach the next block boundary. */
export function paddingSize(size: number): number {
  const rest = size % BLOCK_SIZE;
  return rest === 0 ? 0 : BLOCK_SIZE - rest;
}

/** The end of an archive: two zero blocks. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK_SIZE);
}

/** ustar keeps a path in `name` (100 bytes) or in `prefix` (155) + `/` + `name`; undefined name: it needs pax. */
function splitName(path: string): { name: string | undefined; prefix: string } {
  if (!USTAR_SAFE.test(path)) return { name: undefined, prefix: '' };
  if (path.length <= 100) return { name: path, prefix: '' };
  for (let slash = Math.min(155, path.length - 2); slash > 0; slash--) {
    if (path[slash] !== '/') continue;
    if (path.length - slash - 1 > 100) break;
    return { name: path.slice(slash + 1), prefix: path.slice(0, slash) };
  }
  return { name: undefined, prefix: '' };
}

/** `"<length> <key>=<value>\n"`, where length counts the whole record in bytes, its own digits included. */
function paxRecord(key: string, value: string): string {
  const rest = Buffer.byteLength(` ${key}=${value}\n`, 'utf8');
  let length = rest + String(rest).length;
  if (String(length).length !== String(rest).length) length = rest + String(length).length;
  return `${length} ${key}=${value}\n`;
}

/** Seconds with up to nine decimals and no trailing zeros: `1762225200.123`. */
function paxTime(ns: bigint): string {
  const sign = ns < 0n ? '-' : '';
  const abs = ns < 0n ? -ns : ns;
  const fraction = (abs % NS_PER_SECOND).toString().padStart(9, '0').replace(/0+$/, '');
  return `${sign}${abs / NS_PER_SECOND}${fraction ? `.${fraction}` : ''}`;
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n ? q - 1n : q;
}

interface UstarFields {
  name: string;
  prefix?: string;
  mode: number;
  uid?: number;
  gid?: number;
  size: number;
  mtime: number;
  typeFlag: string;
  linkName?: string;
  devMajor?: number | undefined;
  devMinor?: number | undefined;
}

/**
 * One ustar header block at `at`. Text that ustar cannot hold gets a printable-ASCII stand-in ('_'
 * for every other UTF-16 unit; pax carries it in full). Written byte by byte, summing as it goes
 * for the checksum: a header per file, so this runs 30,000 times for a web app's tree.
 */
function writeUstarBlock(out: Buffer, at: number, fields: UstarFields): void {
  zeroFill(out, at, at + BLOCK_SIZE);
  let sum = putAscii(out, at, fields.name, 100);
  sum += putOctal(out, at + 100, 8, fields.mode);
  sum += putOctal(out, at + 108, 8, fields.uid ?? 0);
  sum += putOctal(out, at + 116, 8, fields.gid ?? 0);
  sum += putOctal(out, at + 124, 12, fields.size);
  sum += putOctal(out, at + 136, 12, fields.mtime);
  sum += putAscii(out, at + 156, fields.typeFlag, 1);
  sum += putAscii(out, at + 157, fields.linkName ?? '', 100);
  sum += putBytes(out, at + 257, USTAR_MAGIC);
  sum += putOctal(out, at + 329, 8, fields.devMajor ?? 0);
  sum += putOctal(out, at + 337, 8, fields.devMinor ?? 0);
  sum += putAscii(out, at + 345, fields.prefix ?? '', 155);
  // The checksum counts its own field as eight spaces; it is six octal digits, a NUL and a space.
  sum += 8 * 0x20;
  putOctal(out, at + 148, 7, sum);
  out[at + 155] = 0x20;
}

/** "ustar", NUL, version "00". */
const USTAR_MAGIC = Buffer.from('ustar\u000000', 'latin1');

function putBytes(out: Buffer, at: number, bytes: Buffer): number {
  bytes.copy(out, at);
  let sum = 0;
  for (const byte of bytes) sum += byte;
  return sum;
}

/** Up to `max` UTF-16 units of `text`, each outside printable ASCII as '_'; returns the sum of the bytes. */
function putAscii(out: Buffer, at: number, text: string, max: number): number {
  const length = Math.min(text.length, max);
  let sum = 0;
  for (let i = 0; i < length; i++) {
    let code = text.charCodeAt(i);
    if (code < 0x20 || code > 0x7e) code = 0x5f;
    out[at + i] = code;
    sum += code;
  }
  return sum;
}

/** The last path element, without a directory's trailing `/`. */
function baseName(path: string): string {
  const end = path.endsWith('/') ? path.length - 1 : path.length;
  return path.slice(path.lastIndexOf('/', end - 1) + 1, end);
}

/**
 * Zeroes `out` from `start` to `end` with the typed-array fill: Buffer's own fill checks its
 * arguments for encodings first, which costs more than the fill itself for a 512-byte block.
 */
export function zeroFill(out: Buffer, start: number, end: number): void {
  Uint8Array.prototype.fill.call(out, 0, start, end);
}

/** 8 ** digits for the ustar field widths (computed once: Math.pow per field showed in profiles). */
const OCTAL_LIMITS = Array.from({ length: 12 }, (_, digits) => 8 ** digits);

/** `value` in octal, zero-padded to `length - 1` digits, then a NUL; returns the sum of the bytes. */
function putOctal(out: Buffer, at: number, length: number, value: number): number {
  const digits = length - 1;
  out[at + digits] = 0;
  if (!(value >= 0 && value < (OCTAL_LIMITS[digits] ?? 8 ** digits))) {
    // Does not fit (a caller's bug): the leading digits, as a string write would give them.
    return putAscii(out, at, value.toString(8).padStart(digits, '0'), digits);
  }
  let sum = 0;
  let rest = value;
  for (let i = digits - 1; i >= 0; i--) {
    const code = 0x30 + (rest % 8);
    out[at + i] = code;
    sum += code;
    rest = Math.floor(rest / 8);
  }
  return sum;
}
