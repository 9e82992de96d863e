// The pax header encoder against GNU tar 1.34: archives written with it are listed and extracted
// by the real tool, and what comes out is checked with lstat.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { lstat, mkdir, open, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BLOCK_SIZE, encodeHeader, endOfArchive, paddingSize, type TarHeader } from '../../src/pipeline/tar.js';
import { makeTempDir } from '../helpers/tree.js';

const NS = 1_000_000_000n;

interface Member {
  header: TarHeader;
  content?: Buffer;
}

function file(name: string, content: string | Buffer, extra: Partial<TarHeader> = {}): Member {
  const bytes = typeof content === 'string' ? Buffer.from(content) : content;
  return {
    header: {
      name,
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: bytes.length,
      mtimeNs: 1_700_000_000n * NS,
      ...extra,
    },
    content: bytes,
  };
}

function entry(name: string, type: TarHeader['type'], extra: Partial<TarHeader> = {}): Member {
  return { header: { name, type, mode: 0o755, uid: 0, gid: 0, size: 0, mtimeNs: 1_700_000_000n * NS, ...extra } };
}

function archive(members: Member[]): Buffer {
  const parts: Buffer[] = [];
  for (const { header, content } of members) {
    parts.push(encodeHeader(header));
    if (content) parts.push(content, Buffer.alloc(paddingSize(content.length)));
  }
  parts.push(endOfArchive());
  return Buffer.concat(parts);
}

/** The records of the pax header in front of an entry (empty when there is none). */
function paxRecords(encoded: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  if (encoded.length === BLOCK_SIZE) return records;
  assert.equal(String.fromCharCode(encoded[156] as number), 'x');
  const size = Number.parseInt(encoded.subarray(124, 135).toString('latin1'), 8);
  const body = encoded.subarray(BLOCK_SIZE, BLOCK_SIZE + size);
  let at = 0;
  while (at < body.length) {
    const space = body.indexOf(0x20, at);
    const length = Number(body.subarray(at, space).toString('latin1'));
    const record = body.subarray(at, at + length);
    assert.equal(record[record.length - 1], 0x0a, 'a record ends with a newline');
    const text = record.subarray(space - at + 1, record.length - 1).toString('utf8');
    const equals = text.indexOf('=');
    records.set(text.slice(0, equals), text.slice(equals + 1));
    at += length;
  }
  assert.equal(at, body.length, 'record lengths add up to the body');
  return records;
}

/** A non-ASCII path (so it always needs pax) of exactly `bytes` UTF-8 bytes, in components short enough for Linux. */
function nameOfBytes(bytes: number): string {
  let name = 'é';
  while (Buffer.byteLength(name) < bytes) {
    const slash = name.length % 200 === 199 && Buffer.byteLength(name) < bytes - 1;
    name += slash ? '/' : 'a';
  }
  return name;
}

describe('pax tar headers', () => {
  let work: string;
  before(async () => {
    work = await makeTempDir();
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('GNU tar extracts every entry type with its metadata', async () => {
    const longUnicodeTarget = `../${'ü'.repeat(80)}/目标`;
    const members = [
      entry('root/', 'directory', { mode: 0o2775, mtimeNs: 1_600_000_000n * NS + 987_654_321n }),
      file('root/file.txt', 'hello\n', {
        mode: 0o640,
        uid: 1234,
        gid: 5678,
        mtimeNs: 1_700_000_000n * NS + 123_456_789n,
      }),
      file('root/setuid', '#!/bin/sh\n', { mode: 0o4755 }),
      file('root/ünïcødé 日本語\nnewline.txt', 'unicode\n'),
      file('root/big-ids', 'ids\n', { uid: 3_000_000, gid: 4_000_000 }),
      file('root/empty', ''),
      file('root/exact-block', Buffer.alloc(512, 1)),
      entry('root/link', 'symlink', { mode: 0o777, linkName: 'file.txt' }),
      entry('root/unicode-link', 'symlink', { mode: 0o777, linkName: longUnicodeTarget }),
      entry('root/hard', 'hardlink', { mode: 0o640, linkName: 'root/file.txt' }),
      entry('root/fifo', 'fifo', { mode: 0o600 }),
      entry('root/null', 'char-device', { mode: 0o666, devMajor: 1, devMinor: 3 }),
      entry('root/disk', 'block-device', { mode: 0o660, devMajor: 259, devMinor: 70000 }),
      entry('root/sticky/', 'directory', { mode: 0o1777 }),
    ];
    const tarPath = join(work, 'types.tar');
    await writeFile(tarPath, archive(members));
    const into = join(work, 'types');
    await mkdir(into);
    const run = spawnSync('tar', ['--numeric-owner', '-xpf', tarPath, '-C', into], { encoding: 'utf8' });
    assert.equal(run.stderr, '');
    assert.equal(run.status, 0);

    const at = (name: string) => lstat(join(into, name), { bigint: true });
    const dir = await at('root');
    assert.ok(dir.isDirectory());
    assert.equal(dir.mode & 0o7777n, 0o2775n);
    assert.equal(dir.mtimeNs, 1_600_000_000n * NS + 987_654_321n);
    const plain = await at('root/file.txt');
    assert.deepEqual(
      [plain.mode & 0o7777n, plain.uid, plain.gid, plain.mtimeNs, plain.nlink],
      [0o640n, 1234n, 5678n, 1_700_000_000n * NS + 123_456_789n, 2n],
    );
    assert.equal(await readFile(join(into, 'root/file.txt'), 'utf8'), 'hello\n');
    assert.equal((await at('root/setuid')).mode & 0o7777n, 0o4755n);
    assert.equal(await readFile(join(into, 'root/ünïcødé 日本語\nnewline.txt'), 'utf8'), 'unicode\n');
    const ids = await at('root/big-ids');
    assert.deepEqual([ids.uid, ids.gid], [3_000_000n, 4_000_000n]);
    assert.equal((await at('root/empty')).size, 0n);
    assert.ok((await readFile(join(into, 'root/exact-block'))).equals(Buffer.alloc(512, 1)));
    assert.equal(await readlink(join(into, 'root/link')), 'file.txt');
    assert.equal(await readlink(join(into, 'root/unicode-link')), longUnicodeTarget);
    assert.equal((await at('root/hard')).ino, plain.ino);
    assert.ok((await at('root/fifo')).isFIFO());
    const nullDevice = await at('root/null');
    assert.ok(nullDevice.isCharacterDevice());
    assert.equal(nullDevice.rdev, 0x103n);
    const disk = await at('root/disk');
    assert.ok(disk.isBlockDevice());
    // glibc makedev(259, 70000): minor's low byte, major, then the minor's higher bits.
    assert.equal(disk.rdev, (259n << 8n) | (70000n & 0xffn) | ((70000n & ~0xffn) << 12n));
    assert.equal((await at('root/sticky')).mode & 0o7777n, 0o1777n);
  });

  test('a time before 1970 is written as GNU tar writes it (mtime=-1.5) and restored exactly', async () => {
    const tarPath = join(work, 'old.tar');
    await writeFile(tarPath, archive([file('old', 'before 1970\n', { mtimeNs: -1_500_000_000n })]));
    const into = join(work, 'old');
    await mkdir(into);
    const run = spawnSync('tar', ['-xf', tarPath, '-C', into], { encoding: 'utf8' });
    assert.equal(run.status, 0);
    // GNU tar warns about any time before 1970 (and prints it wrongly), but sets it right.
    assert.match(run.stderr, /^tar: old: implausibly old time stamp [^\n]*\n$/);
    assert.equal((await lstat(join(into, 'old'), { bigint: true })).mtimeNs, -1_500_000_000n);
  });

  test('plain ASCII names up to 255 bytes use the ustar prefix; longer or non-ASCII ones a pax path', async () => {
    const split = `${'p'.repeat(120)}/${'n'.repeat(90)}`;
    const splitHeader = encodeHeader(file(split, 'x').header);
    assert.equal(splitHeader.length, BLOCK_SIZE, 'no pax header needed');
    assert.equal(splitHeader.subarray(345, 345 + 120).toString('latin1'), 'p'.repeat(120));

    const longComponent = `dir/${'c'.repeat(150)}`;
    assert.equal(paxRecords(encodeHeader(file(longComponent, 'x').header)).get('path'), longComponent);
    const deep = `${'d'.repeat(200)}/${'e'.repeat(200)}/f`;
    assert.equal(paxRecords(encodeHeader(file(deep, 'x').header)).get('path'), deep);
    const unicode = 'é.txt';
    assert.equal(paxRecords(encodeHeader(file(unicode, 'x').header)).get('path'), unicode);

    const tarPath = join(work, 'names.tar');
    await writeFile(tarPath, archive([file(split, 'split\n'), file(longComponent, 'long\n'), file(deep, 'deep\n')]));
    const into = join(work, 'names');
    await mkdir(into);
    execFileSync('tar', ['-xf', tarPath, '-C', into]);
    assert.equal(await readFile(join(into, split), 'utf8'), 'split\n');
    assert.equal(await readFile(join(into, longComponent), 'utf8'), 'long\n');
    assert.equal(await readFile(join(into, deep), 'utf8'), 'deep\n');
  });

  test('pax record lengths count their own digits, across the 2→3 and 3→4 digit boundaries', async () => {
    const names: string[] = [];
    // A path of L bytes makes a record of L + 7 bytes plus its length's digits: 99 → 101 at L = 91, 999 → 1001 at L = 990.
    for (const length of [88, 89, 90, 91, 92, 93, 987, 988, 989, 990, 991, 992]) {
      const name = nameOfBytes(length);
      assert.equal(Buffer.byteLength(name), length);
      names.push(name);
      const records = paxRecords(encodeHeader(file(name, 'x').header));
      assert.equal(records.get('path'), name);
    }
    const tarPath = join(work, 'lengths.tar');
    await writeFile(tarPath, archive(names.map((name) => file(name, name))));
    const listed = execFileSync('tar', ['--quoting-style=literal', '-tf', tarPath], { encoding: 'utf8' });
    assert.deepEqual(listed.trimEnd().split('\n'), names);
  });

  test('an entry needs no pax header when ustar holds everything (whole-second mtime, small ids)', () => {
    assert.equal(encodeHeader(file('plain.txt', 'x').header).length, BLOCK_SIZE);
    const subSecond = encodeHeader(file('plain.txt', 'x', { mtimeNs: 1_700_000_000n * NS + 500_000_000n }).header);
    assert.deepEqual([...paxRecords(subSecond)], [['mtime', '1700000000.5']]);
    const negative = encodeHeader(file('old.txt', 'x', { mtimeNs: -1_500_000_000n }).header);
    assert.deepEqual([...paxRecords(negative)], [['mtime', '-1.5']]);
    const uid = encodeHeader(file('ids.txt', 'x', { uid: 2_097_152, gid: 2_097_151 }).header);
    assert.deepEqual([...paxRecords(uid)], [['uid', '2097152']]);
  });

  test('a 9 GiB file gets a pax size that GNU tar reads (sparse archive, listed without reading it all)', async () => {
    const size = 9 * 1024 ** 3;
    const header = encodeHeader(file('huge.bin', Buffer.alloc(0), { size }).header);
    assert.equal(paxRecords(header).get('size'), String(size));
    const after = Buffer.concat([encodeHeader(file('after.txt', 'after\n').header), Buffer.from('after\n')]);
    const tarPath = join(work, 'huge.tar');
    const handle = await open(tarPath, 'w');
    await handle.write(header, 0, header.length, 0);
    const afterAt = header.length + size + paddingSize(size);
    await handle.write(after, 0, after.length, afterAt);
    const end = Buffer.concat([Buffer.alloc(paddingSize(6)), endOfArchive()]);
    await handle.write(end, 0, end.length, afterAt + after.length);
    await handle.close();
    const listing = execFileSync('tar', ['--numeric-owner', '-tvf', tarPath], { encoding: 'utf8' })
      .trimEnd()
      .split('\n');
    assert.deepEqual(
      listing.map((line) => line.split(/\s+/).slice(2, 3).concat(line.split(/\s+/).slice(-1))),
      [
        [String(size), 'huge.bin'],
        ['6', 'after.txt'],
      ],
    );
  });

  test('padding and the end of the archive', () => {
    assert.deepEqual([0, 1, 511, 512, 513].map(paddingSize), [0, 511, 1, 0, 511]);
    const end = endOfArchive();
    assert.equal(end.length, 1024);
    assert.ok(end.equals(Buffer.alloc(1024)));
  });

  test('a damaged header is refused by GNU tar (the checksum is real)', async () => {
    const good = archive([file('ok.txt', 'ok\n')]);
    const bad = Buffer.from(good);
    bad[10] = 0x5a; // inside the name, after the checksum was computed
    const tarPath = join(work, 'bad.tar');
    await writeFile(tarPath, bad);
    const run = spawnSync('tar', ['-tf', tarPath], { encoding: 'utf8' });
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /checksum|does not look like a tar archive|Skipping to next header/);
    await writeFile(tarPath, good);
    assert.equal(execFileSync('tar', ['-tf', tarPath], { encoding: 'utf8' }), 'ok.txt\n');
  });
});
