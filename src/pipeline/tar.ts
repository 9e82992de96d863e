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
// Names and link targets that ustar can carry as they are: printable ASCII.
const USTAR_SAFE = /^[\x20-\x7e]*$/;

/** The header block(s) of one entry: a pax extended header when needed, then the ustar header. */
export function encodeHeader(header: TarHeader): Buffer {
  const pax: [string, string][] = [];
  const { name, prefix } = splitName(header.name);
  if (name === undefined) pax.push(['path', header.name]);
  const linkName = header.linkName ?? '';
  const linkFits = USTAR_SAFE.test(linkName) && linkName.length <= 100;
  if (!linkFits) pax.push(['linkpath', linkName]);
  if (header.size > MAX_OCTAL_11) pax.push(['size', String(header.size)]);
  if (header.uid > MAX_OCTAL_7) pax.push(['uid', String(header.uid)]);
  if (header.gid > MAX_OCTAL_7) pax.push(['gid', String(header.gid)]);
  const seconds = floorDiv(header.mtimeNs, NS_PER_SECOND);
  const mtime = seconds >= 0n && seconds <= BigInt(MAX_OCTAL_11) ? Number(seconds) : 0;
  if (header.mtimeNs % NS_PER_SECOND !== 0n || BigInt(mtime) !== seconds) pax.push(['mtime', paxTime(header.mtimeNs)]);

  // One zeroed allocation for it all: [pax header block, pax records, padding], then the ustar block.
  const records =
    pax.length > 0 ? Buffer.from(pax.map(([key, value]) => paxRecord(key, value)).join(''), 'utf8') : null;
  const paxBytes = records ? BLOCK_SIZE + records.length + paddingSize(records.length) : 0;
  const out = Buffer.alloc(paxBytes + BLOCK_SIZE);
  if (records) {
    // Only tars without pax support ever show this name; keep it recognisable.
    const base = header.name.replace(/\/$/, '').split('/').pop() ?? '';
    writeUstarBlock(out, 0, { name: `PaxHeaders/${base}`, mode: 0o644, size: records.length, mtime, typeFlag: 'x' });
    records.copy(out, BLOCK_SIZE);
  }
  writeUstarBlock(out, paxBytes, {
    name: name ?? header.name,
    prefix,
    mode: header.mode & 0o7777,
    uid: header.uid <= MAX_OCTAL_7 ? header.uid : 0,
    gid: header.gid <= MAX_OCTAL_7 ? header.gid : 0,
    size: header.size <= MAX_OCTAL_11 ? header.size : 0,
    mtime,
    typeFlag: TYPE_FLAGS[header.type],
    linkName,
    devMajor: header.devMajor,
    devMinor: header.devMinor,
  });
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

/** A printable-ASCII, length-limited stand-in for a name that pax carries in full. */
function asciiStandIn(text: string, maxBytes: number): string {
  return text.replace(/[^\x20-\x7e]/g, '_').slice(0, maxBytes);
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

/** One ustar header block at `at` (the buffer is zeroed). Text that ustar cannot hold gets an ASCII stand-in. */
function writeUstarBlock(out: Buffer, at: number, fields: UstarFields): void {
  out.write(asciiStandIn(fields.name, 100), at, 100, 'latin1');
  writeOctal(out, at + 100, 8, fields.mode);
  writeOctal(out, at + 108, 8, fields.uid ?? 0);
  writeOctal(out, at + 116, 8, fields.gid ?? 0);
  writeOctal(out, at + 124, 12, fields.size);
  writeOctal(out, at + 136, 12, fields.mtime);
  out.write(fields.typeFlag, at + 156, 'latin1');
  out.write(asciiStandIn(fields.linkName ?? '', 100), at + 157, 100, 'latin1');
  out.write('ustar\u000000', at + 257, 'latin1');
  writeOctal(out, at + 329, 8, fields.devMajor ?? 0);
  writeOctal(out, at + 337, 8, fields.devMinor ?? 0);
  out.write(fields.prefix ?? '', at + 345, 155, 'latin1');
  writeChecksum(out, at);
}

function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  block.write(value.toString(8).padStart(length - 1, '0'), offset, length - 1, 'latin1');
  block[offset + length - 1] = 0;
}

/** The checksum of the block at `offset`: the sum of its bytes, counting its own field as spaces. */
function writeChecksum(buffer: Buffer, offset: number): void {
  buffer.fill(0x20, offset + 148, offset + 156);
  let sum = 0;
  for (let i = offset; i < offset + BLOCK_SIZE; i++) sum += buffer[i] ?? 0;
  buffer.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, offset + 148, 8, 'latin1');
}
