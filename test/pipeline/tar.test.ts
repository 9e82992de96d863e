// The pax header encoder against GNU tar 1.34: archives written with it are listed and extracted
// by the real tool, and what comes out is checked with lstat.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { lstat, mkdir, open, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  BLOCK_SIZE,
  encodeHeader,
  endOfArchive,
  paddingSize,
  planHeader,
  type TarHeader,
  writeHeader,
} from '../../src/pipeline/tar.js';
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

describe('encodeHeader writes the bytes of a plain string-based encoder', () => {
  // The encoder writes byte by byte for speed; this reference is the straightforward version it
  // replaced (string writes into a zeroed buffer, then a checksum loop), which GNU tar was tested with.
  const USTAR_SAFE = /^[\x20-\x7e]*$/;
  const standIn = (text: string, max: number) => text.replace(/[^\x20-\x7e]/g, '_').slice(0, max);
  function referenceBlock(out: Buffer, at: number, f: Record<string, string | number | undefined>): void {
    const octal = (offset: number, length: number, value: number) => {
      out.write(value.toString(8).padStart(length - 1, '0'), at + offset, length - 1, 'latin1');
      out[at + offset + length - 1] = 0;
    };
    out.write(standIn(String(f.name), 100), at, 100, 'latin1');
    octal(100, 8, Number(f.mode));
    octal(108, 8, Number(f.uid ?? 0));
    octal(116, 8, Number(f.gid ?? 0));
    octal(124, 12, Number(f.size));
    octal(136, 12, Number(f.mtime));
    out.write(String(f.typeFlag), at + 156, 'latin1');
    out.write(standIn(String(f.linkName ?? ''), 100), at + 157, 100, 'latin1');
    out.write('ustar\u000000', at + 257, 'latin1');
    octal(329, 8, Number(f.devMajor ?? 0));
    octal(337, 8, Number(f.devMinor ?? 0));
    out.write(String(f.prefix ?? ''), at + 345, 155, 'latin1');
    out.fill(0x20, at + 148, at + 156);
    let sum = 0;
    for (let i = at; i < at + BLOCK_SIZE; i++) sum += out[i] ?? 0;
    out.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, at + 148, 8, 'latin1');
  }
  function reference(h: TarHeader): Buffer {
    const flags = {
      file: '0',
      hardlink: '1',
      symlink: '2',
      'char-device': '3',
      'block-device': '4',
      directory: '5',
      fifo: '6',
    };
    const pax: string[] = [];
    const record = (key: string, value: string) => {
      const rest = Buffer.byteLength(` ${key}=${value}\n`, 'utf8');
      let length = rest + String(rest).length;
      if (String(length).length !== String(rest).length) length = rest + String(length).length;
      pax.push(`${length} ${key}=${value}\n`);
    };
    let name: string | undefined;
    let prefix = '';
    if (USTAR_SAFE.test(h.name)) {
      if (h.name.length <= 100) name = h.name;
      else
        for (let slash = Math.min(155, h.name.length - 2); slash > 0; slash--) {
          if (h.name[slash] !== '/') continue;
          if (h.name.length - slash - 1 > 100) break;
          name = h.name.slice(slash + 1);
          prefix = h.name.slice(0, slash);
          break;
        }
    }
    if (name === undefined) record('path', h.name);
    const linkName = h.linkName ?? '';
    if (!(USTAR_SAFE.test(linkName) && linkName.length <= 100)) record('linkpath', linkName);
    if (h.size > 0o77777777777) record('size', String(h.size));
    if (h.uid > 0o7777777) record('uid', String(h.uid));
    if (h.gid > 0o7777777) record('gid', String(h.gid));
    const q = h.mtimeNs / NS;
    const seconds = h.mtimeNs % NS !== 0n && h.mtimeNs < 0n ? q - 1n : q;
    const mtime = seconds >= 0n && seconds <= 0o77777777777n ? Number(seconds) : 0;
    if (h.mtimeNs % NS !== 0n || BigInt(mtime) !== seconds) {
      const abs = h.mtimeNs < 0n ? -h.mtimeNs : h.mtimeNs;
      const fraction = (abs % NS).toString().padStart(9, '0').replace(/0+$/, '');
      record('mtime', `${h.mtimeNs < 0n ? '-' : ''}${abs / NS}${fraction ? `.${fraction}` : ''}`);
    }
    const records = pax.length > 0 ? Buffer.from(pax.join(''), 'utf8') : null;
    const paxBytes = records ? BLOCK_SIZE + records.length + paddingSize(records.length) : 0;
    const out = Buffer.alloc(paxBytes + BLOCK_SIZE);
    if (records) {
      const base = h.name.replace(/\/$/, '').split('/').pop() ?? '';
      referenceBlock(out, 0, { name: `PaxHeaders/${base}`, mode: 0o644, size: records.length, mtime, typeFlag: 'x' });
      records.copy(out, BLOCK_SIZE);
    }
    referenceBlock(out, paxBytes, {
      name: name ?? h.name,
      prefix,
      mode: h.mode & 0o7777,
      uid: h.uid <= 0o7777777 ? h.uid : 0,
      gid: h.gid <= 0o7777777 ? h.gid : 0,
      size: h.size <= 0o77777777777 ? h.size : 0,
      mtime,
      typeFlag: flags[h.type],
      linkName,
      devMajor: h.devMajor,
      devMinor: h.devMinor,
    });
    return out;
  }

  /** A deterministic spread of headers: names short, long, non-ASCII, with newlines; every type; edge numbers. */
  function* headers(): Generator<TarHeader> {
    const names = [
      'a',
      'dir/',
      'srv/app/public/index.php',
      `${'d'.repeat(150)}/${'f'.repeat(99)}`,
      `${'d'.repeat(160)}/f`,
      `x/${'y'.repeat(120)}`,
      'caf\u00e9/cr\u00e8me br\u00fbl\u00e9e.txt',
      'line\nbreak',
      'emoji \u{1f600}/tab\there',
      'lone \ud800 surrogate',
      `${'\u00e9'.repeat(60)}/`,
    ];
    const types: TarHeader['type'][] = [
      'file',
      'hardlink',
      'symlink',
      'char-device',
      'block-device',
      'directory',
      'fifo',
    ];
    const times = [0n, 1_700_000_000n * NS, 1_700_000_000_123_456_789n, -1_500_000_000n, 2n ** 40n * NS, 1n];
    let i = 0;
    for (const name of names)
      for (const type of types) {
        i++;
        yield {
          name,
          type,
          mode: [0o644, 0o4755, 0o177777, 0o1777][i % 4] as number,
          uid: [0, 1000, 0o7777777, 0o10000000, 4_294_967_294][i % 5] as number,
          gid: [0, 33, 0o10000000][i % 3] as number,
          size: type === 'file' ? ([0, 1, 0o77777777777, 0o100000000000, 9 * 2 ** 30][i % 5] as number) : 0,
          mtimeNs: times[i % times.length] as bigint,
          ...(type === 'symlink' || type === 'hardlink'
            ? { linkName: [`target-${i}`, `${'l'.repeat(101)}`, 'l\u00efnk', ''][i % 4] as string }
            : {}),
          ...(type.endsWith('device')
            ? { devMajor: [0, 8, 259, 4095][i % 4] as number, devMinor: [0, 1, 65535, 1048575][i % 4] as number }
            : {}),
        };
      }
  }

  test('for every type, name shape, id, size and time', () => {
    let count = 0;
    for (const header of headers()) {
      const expected = reference(header);
      assert.deepEqual(
        encodeHeader(header),
        expected,
        JSON.stringify(header, (_k, v) => (typeof v === 'bigint' ? String(v) : v)),
      );
      // Written in place, among other bytes, it is the same.
      const plan = planHeader(header);
      assert.equal(plan.length, expected.length);
      const batch = Buffer.alloc(plan.length + 700, 0xa5);
      writeHeader(batch, 333, plan);
      assert.deepEqual(batch.subarray(333, 333 + plan.length), expected);
      assert.ok(
        batch.subarray(0, 333).every((b) => b === 0xa5) && batch.subarray(333 + plan.length).every((b) => b === 0xa5),
      );
      count++;
    }
    assert.equal(count, 77);
  });
});
