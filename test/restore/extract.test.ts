// extractTar against real archives: the files source's archive of a tree with every kind of entry
// (compared with the original, down to the microsecond), GNU tar's own archives, and hostile
// archives built by hand, each refused with nothing written next to the staging directory.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, beforeEach, describe, test } from 'node:test';
import { silentLogger } from '../../src/lib/log.js';
import { encodeHeader, endOfArchive, paddingSize, type TarHeader } from '../../src/pipeline/tar.js';
import { RestoreError, UnsafeArchiveError } from '../../src/restore/errors.js';
import {
  type ExtractOptions,
  type ExtractSummary,
  extractTar,
  normalizeArchivePath,
  utimesValue,
} from '../../src/restore/extract.js';
import { createFilesSource, type IndexEntry } from '../../src/sources/files.js';
import { compareTrees } from '../helpers/compare.js';
import { buildFullTree, describeTree, type FullTree, makeTempDir, sha256sum } from '../helpers/tree.js';

const NS = 1_000_000_000n;
const never = new AbortController().signal;
const ALL: ExtractOptions = { signal: never, allowDevices: true, preserveOwners: true, allowOutsideSymlinks: true };

/** Runs the real files source over `paths` into `<dir>/<name>.tar`; returns the tar's path and the index. */
async function archiveWithSource(
  dir: string,
  paths: string[],
  name = 'app',
): Promise<{ tarPath: string; index: IndexEntry[] }> {
  const source = createFilesSource({ name, paths, exclude: [], oneFileSystem: false });
  const context = { signal: never, log: silentLogger, scratchDir: dir };
  for await (const component of source.components(context)) {
    const tarPath = join(dir, `${name}.tar`);
    const indexText = (async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of component.index as Readable) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    })();
    await pipeline(component.data, createWriteStream(tarPath));
    await component.facts;
    const lines = (await indexText).split('\n').filter((line) => line !== '');
    return { tarPath, index: lines.map((line) => JSON.parse(line) as IndexEntry) };
  }
  throw new Error('the files source gave no component');
}

interface Member {
  header: TarHeader;
  content?: Buffer;
}

function header(name: string, type: TarHeader['type'], extra: Partial<TarHeader> = {}): TarHeader {
  return { name, type, mode: 0o755, uid: 0, gid: 0, size: 0, mtimeNs: 1_700_000_000n * NS, ...extra };
}

function file(name: string, content: string, extra: Partial<TarHeader> = {}): Member {
  const bytes = Buffer.from(content);
  return { header: header(name, 'file', { mode: 0o644, size: bytes.length, ...extra }), content: bytes };
}

function dir(name: string, extra: Partial<TarHeader> = {}): Member {
  return { header: header(name, 'directory', extra) };
}

function symlink(name: string, target: string): Member {
  return { header: header(name, 'symlink', { mode: 0o777, linkName: target }) };
}

function hardlink(name: string, target: string): Member {
  return { header: header(name, 'hardlink', { mode: 0o644, linkName: target }) };
}

/** A tar built with backproof's own header encoder; `end: false` leaves out the end-of-archive blocks. */
function tarOf(members: Member[], options: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const { header: h, content } of members) {
    parts.push(encodeHeader(h));
    if (content) parts.push(content, Buffer.alloc(paddingSize(content.length)));
  }
  if (options.end !== false) parts.push(endOfArchive());
  return Buffer.concat(parts);
}

/** Streams `bytes` in small chunks, so entries straddle chunk boundaries. */
function streamOf(bytes: Buffer): Readable {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 700) chunks.push(bytes.subarray(at, at + 700));
  return Readable.from(chunks);
}

/** Nanoseconds to whole milliseconds, rounding down (before 1970 too). */
function floorMs(ns: bigint): bigint {
  return ns / 1_000_000n - (ns < 0n && ns % 1_000_000n !== 0n ? 1n : 0n);
}

/** Truncates nanoseconds to microseconds: what Node's utimes can set. */
function toMicroseconds(ns: string): string {
  return ((BigInt(ns) / 1000n) * 1000n).toString();
}

describe('extractTar: the files source archive of a tree with every kind of entry', () => {
  let work: string;
  let tree: FullTree;
  let index: IndexEntry[];
  let staging: string;
  let summary: ExtractSummary;
  let restoredRoot: string;

  before(async () => {
    work = await makeTempDir();
    tree = await buildFullTree();
    const archived = await archiveWithSource(work, [tree.root]);
    index = archived.index;
    staging = join(work, 'staging');
    await mkdir(staging);
    summary = await extractTar(createReadStream(archived.tarPath), staging, ALL);
    restoredRoot = join(staging, tree.root.slice(1));
  });

  after(async () => {
    await tree?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  test('the restored tree equals the original: types, contents, modes, owners, links, devices, mtimes to the microsecond', async () => {
    const original = await describeTree(tree.root, { skipSockets: true });
    const restored = await describeTree(restoredRoot);
    assert.deepEqual([...restored.keys()], [...original.keys()]);
    for (const [path, entry] of original) {
      assert.deepEqual(restored.get(path), { ...entry, mtime: toMicroseconds(entry.mtime) }, path);
    }
    const [rootBefore, rootAfter] = await Promise.all([stat(tree.root), stat(restoredRoot)]);
    assert.equal(rootAfter.mtimeMs, rootBefore.mtimeMs);
    assert.equal(rootAfter.mode, rootBefore.mode);
  });

  test('the independent comparison agrees, hard links included', async () => {
    assert.deepEqual(await compareTrees(tree.root, restoredRoot, { ignore: (p) => p === tree.paths.socket }), []);
    const inodes = await Promise.all(tree.paths.hardLinks.map(async (p) => (await lstat(join(restoredRoot, p))).ino));
    assert.equal(new Set(inodes).size, 1);
  });

  test('the summary lists every archived entry, with the SHA-256 of each file as sha256sum computes it', () => {
    const archived = index.filter((entry) => entry.type !== 'socket');
    assert.deepEqual(
      summary.entries.map((entry) => entry.path),
      archived.map((entry) => entry.path),
    );
    const byPath = new Map(summary.entries.map((entry) => [entry.path, entry]));
    for (const entry of archived) {
      const extracted = byPath.get(entry.path);
      assert.equal(extracted?.type, entry.type, entry.path);
      if (entry.type === 'file') {
        assert.equal(extracted?.sha256, entry.sha256, entry.path);
        assert.equal(extracted?.size, entry.size, entry.path);
      }
      if (entry.type === 'symlink' || entry.type === 'hardlink') assert.equal(extracted?.target, entry.target);
    }
    const large = byPath.get(join(tree.root.slice(1), tree.paths.large));
    assert.equal(large?.sha256, sha256sum(join(tree.root, tree.paths.large)));
    const files = archived.filter((entry) => entry.type === 'file');
    assert.equal(summary.files, files.length);
    assert.equal(
      summary.bytes,
      files.reduce((sum, entry) => sum + (entry.size ?? 0), 0),
    );
    assert.equal(summary.preservedOwners, true);
  });

  test('directories above the tree that the archive does not hold are created as plain 0755 directories', async () => {
    const top = tree.root.split('/')[1] as string;
    const info = await lstat(join(staging, top));
    assert.ok(info.isDirectory());
    assert.equal(info.mode & 0o7777, 0o755);
    assert.deepEqual(await readdir(staging), [top]);
  });
});

describe('extractTar: metadata', () => {
  let work: string;
  let staging: string;

  beforeEach(async () => {
    work ??= await makeTempDir();
    staging = join(work, `staging-${Math.random().toString(36).slice(2)}`);
    await mkdir(staging);
  });

  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  const special = [
    dir('d/', { mode: 0o1777, uid: 1234, gid: 5678, mtimeNs: 1_000_000_000n * NS + 123_456_789n }),
    file('d/tool', '#!/bin/sh\n', { mode: 0o4755, uid: 1234, gid: 5678, mtimeNs: 1_234_567_890n * NS + 987_654_321n }),
    file('d/old', 'from 1969\n', { mode: 0o600, mtimeNs: -5n * NS - 300_000_000n }),
    file('d/big-uid', 'x\n', { uid: 3_000_000, gid: 3_000_001 }),
    symlink('d/link', 'tool'),
    { header: header('d/link-owned', 'symlink', { mode: 0o777, linkName: 'tool', uid: 42, gid: 43 }) },
    dir('ro/', { mode: 0o500 }),
    file('ro/inside', 'written before its directory became read-only\n', { mode: 0 }),
  ];

  test('with preserveOwners: owners (large ones too, lchown for symlinks), setuid and sticky bits, sub-second mtimes', async () => {
    await extractTar(streamOf(tarOf(special)), staging, { ...ALL, allowOutsideSymlinks: false });
    const d = await lstat(join(staging, 'd'), { bigint: true });
    assert.equal(Number(d.mode) & 0o7777, 0o1777);
    assert.deepEqual([Number(d.uid), Number(d.gid)], [1234, 5678]);
    assert.equal(d.mtimeNs, 1_000_000_000n * NS + 123_456_000n, 'directory mtime set after its contents');
    const tool = await lstat(join(staging, 'd/tool'), { bigint: true });
    assert.equal(Number(tool.mode) & 0o7777, 0o4755);
    assert.deepEqual([Number(tool.uid), Number(tool.gid)], [1234, 5678]);
    assert.equal(tool.mtimeNs, 1_234_567_890n * NS + 987_654_000n);
    const old = await lstat(join(staging, 'd/old'), { bigint: true });
    assert.equal(floorMs(old.mtimeNs), -5300n, 'before 1970: to the millisecond');
    const big = await lstat(join(staging, 'd/big-uid'));
    assert.deepEqual([big.uid, big.gid], [3_000_000, 3_000_001]);
    const owned = await lstat(join(staging, 'd/link-owned'));
    assert.deepEqual([owned.uid, owned.gid], [42, 43]);
    assert.equal(await readlink(join(staging, 'd/link-owned')), 'tool');
    const ro = await lstat(join(staging, 'ro'));
    assert.equal(ro.mode & 0o7777, 0o500);
    assert.equal(await readFile(join(staging, 'ro/inside'), 'utf8'), 'written before its directory became read-only\n');
    assert.equal((await lstat(join(staging, 'ro/inside'))).mode & 0o7777, 0);
  });

  test('without preserveOwners: entries belong to the restoring user, setuid/setgid dropped, sticky kept', async () => {
    const summary = await extractTar(streamOf(tarOf(special)), staging, {
      ...ALL,
      preserveOwners: false,
      allowOutsideSymlinks: false,
    });
    assert.equal(summary.preservedOwners, false);
    const me = process.getuid?.() ?? 0;
    for (const path of ['d', 'd/tool', 'd/big-uid', 'd/link-owned']) {
      assert.equal((await lstat(join(staging, path))).uid, me, path);
    }
    assert.equal((await lstat(join(staging, 'd/tool'))).mode & 0o7777, 0o755);
    assert.equal((await lstat(join(staging, 'd'))).mode & 0o7777, 0o1777);
  });

  test('a later file of the same name replaces the earlier one, and a file replacing a symlink never writes through it', async () => {
    const outside = join(work, 'outside-target');
    await rm(outside, { force: true });
    const summary = await extractTar(
      streamOf(
        tarOf([
          file('f', 'first version, longer\n'),
          file('f', 'second\n'),
          symlink('s', outside),
          file('s', 'a file now\n'),
        ]),
      ),
      staging,
      ALL,
    );
    assert.equal(await readFile(join(staging, 'f'), 'utf8'), 'second\n');
    assert.ok((await lstat(join(staging, 's'))).isFile());
    await assert.rejects(lstat(outside), { code: 'ENOENT' });
    assert.deepEqual(
      summary.entries.map((e) => [e.path, e.type, e.size]),
      [
        ['f', 'file', 7],
        ['s', 'file', 11],
      ],
    );
    assert.equal(summary.files, 2);
    assert.equal(summary.bytes, 18);
  });

  test('FIFOs are created without allowDevices; empty files and directories come back', async () => {
    await extractTar(
      streamOf(tarOf([{ header: header('fifo', 'fifo', { mode: 0o640 }) }, file('empty', ''), dir('empty-dir/')])),
      staging,
      { ...ALL, allowDevices: false },
    );
    const fifo = await lstat(join(staging, 'fifo'));
    assert.ok(fifo.isFIFO());
    assert.equal(fifo.mode & 0o7777, 0o640);
    assert.equal((await stat(join(staging, 'empty'))).size, 0);
    assert.deepEqual(await readdir(join(staging, 'empty-dir')), []);
  });

  test('utimesValue lands on the intended microsecond (every millisecond of a second checked), and on the millisecond before 1970', async () => {
    const probe = join(work, 'probe');
    await writeFile(probe, '');
    for (let ms = 0n; ms < 1000n; ms++) {
      const ns = 1_700_000_000n * NS + ms * 1_000_000n + 999n; // sub-microsecond part is dropped
      await utimes(probe, new Date(), utimesValue(ns));
      assert.equal((await stat(probe, { bigint: true })).mtimeNs, ns - 999n);
    }
    await utimes(probe, new Date(), utimesValue(1_234_567_890_123_456_789n));
    assert.equal((await stat(probe, { bigint: true })).mtimeNs, 1_234_567_890_123_456_000n);
    for (const ns of [-1_000_000n, -5_300_000_000n, -5_300_000_001n]) {
      await utimes(probe, new Date(), utimesValue(ns));
      const ms = (await stat(probe, { bigint: true })).mtimeNs;
      assert.equal(floorMs(ms), floorMs(ns), String(ns));
    }
  });
});

describe('extractTar: GNU tar archives', () => {
  let work: string;
  let tree: FullTree;

  before(async () => {
    work = await makeTempDir();
    tree = await buildFullTree();
  });

  after(async () => {
    await tree?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  for (const format of ['posix', 'gnu'] as const) {
    test(`--format=${format}: long names, links and contents come back`, async () => {
      const tarPath = join(work, `${format}.tar`);
      execFileSync('tar', [`--format=${format}`, '--exclude=./special', '-C', tree.root, '-cf', tarPath, '.']);
      const staging = join(work, `staging-${format}`);
      await mkdir(staging);
      await extractTar(createReadStream(tarPath), staging, ALL);
      const ignore = (path: string) => path === 'special' || path.startsWith('special/');
      const problems = await compareTrees(tree.root, staging, { ignore });
      // The gnu format keeps whole seconds only.
      assert.deepEqual(format === 'gnu' ? problems.filter((p) => !p.includes(': mtime ')) : problems, []);
      assert.equal(
        await readFile(join(staging, tree.paths.deepFile), 'utf8'),
        await readFile(join(tree.root, tree.paths.deepFile), 'utf8'),
      );
    });
  }
});

describe('extractTar: hostile archives are refused and nothing outside the staging directory is touched', () => {
  let work: string;
  let staging: string;
  let sentinel: string;

  beforeEach(async () => {
    work = await makeTempDir();
    staging = join(work, 'staging');
    sentinel = join(work, 'sentinel');
    await mkdir(staging);
    await mkdir(sentinel);
  });

  async function refused(
    members: Member[],
    entry: string,
    reason: RegExp,
    options: Partial<ExtractOptions> = {},
  ): Promise<void> {
    try {
      await assert.rejects(extractTar(streamOf(tarOf(members)), staging, { ...ALL, ...options }), (error: unknown) => {
        assert.ok(error instanceof UnsafeArchiveError, `not an UnsafeArchiveError: ${String(error)}`);
        assert.equal(error.entry, entry);
        assert.match(error.message, reason);
        assert.match(error.message, /Nothing was written outside the staging directory/);
        return true;
      });
      assert.deepEqual(await readdir(sentinel), [], 'the sentinel directory stays empty');
      assert.deepEqual((await readdir(work)).sort(), ['sentinel', 'staging']);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  test('an absolute path', async () => {
    await refused([file(`${sentinel}/evil`, 'x')], `${sentinel}/evil`, /absolute path/);
  });

  test('a ".." component, at the start or in the middle', async () => {
    await refused([file('../sentinel/evil', 'x')], '../sentinel/evil', /"\.\." component/);
  });

  test('a ".." component in the middle of a name', async () => {
    await refused([dir('a/'), file('a/../../sentinel/evil', 'x')], 'a/../../sentinel/evil', /"\.\." component/);
  });

  test('a file through a symlink to the outside extracted earlier (created as data when allowed)', async () => {
    await refused([symlink('a', sentinel), file('a/evil', 'x')], 'a/evil', /through "a", a symlink extracted earlier/);
  });

  test('a symlink to / followed by a file through it', async () => {
    await refused([symlink('root', '/'), file('root/etc/evil', 'x')], 'root/etc/evil', /through "root"/);
  });

  test('a symlink whose absolute target is outside, by default', async () => {
    await refused([symlink('a', sentinel), file('a/evil', 'x')], 'a', /symlink to .* outside the restored tree/, {
      allowOutsideSymlinks: false,
    });
  });

  test('a relative symlink that climbs out of the tree, by default', async () => {
    await refused([dir('d/'), symlink('d/up', '../../sentinel')], 'd/up', /outside the restored tree/, {
      allowOutsideSymlinks: false,
    });
  });

  test('a directory through a relative symlink that climbs out, when outside symlinks are allowed', async () => {
    await refused([symlink('up', '../sentinel'), dir('up/sub/')], 'up/sub/', /through "up", a symlink/);
  });

  test('a file through a regular file extracted earlier', async () => {
    await refused([file('f', 'x'), file('f/evil', 'x')], 'f/evil', /through "f", a file extracted earlier/);
  });

  test('a hard link to an absolute path', async () => {
    await refused(
      [hardlink('h', '/etc/passwd')],
      'h',
      /hard link to a path that is not allowed: it is an absolute path/,
    );
  });

  test('a hard link that climbs out', async () => {
    await refused([hardlink('h', '../sentinel/x')], 'h', /hard link .*"\.\." component/);
  });

  test('a hard link to something the archive did not hold before it', async () => {
    await refused([hardlink('h', 'later'), file('later', 'x')], 'h', /does not hold before it/);
  });

  test('a hard link to a directory', async () => {
    await refused([dir('d/'), hardlink('h', 'd')], 'h', /hard link to the directory "d"/);
  });

  test('a character device without allowDevices', async () => {
    await refused(
      [{ header: header('null', 'char-device', { devMajor: 1, devMinor: 3 }) }],
      'null',
      /char-device.*device files are restored only when asked for/,
      { allowDevices: false },
    );
  });

  test('a block device without allowDevices', async () => {
    await refused([{ header: header('disk', 'block-device', { devMajor: 8, devMinor: 0 }) }], 'disk', /block-device/, {
      allowDevices: false,
    });
  });

  test('a NUL byte in a name', async () => {
    await refused([file('a\0b', 'x')], 'a\0b', /NUL byte/);
  });

  test('a file that would replace a directory extracted earlier', async () => {
    await refused([dir('d/'), file('d/inner', 'x'), file('d', 'x')], 'd', /would replace the directory/);
  });

  test('a symlink that would replace a directory made for an earlier entry', async () => {
    await refused([file('d/inner', 'x'), symlink('d', sentinel)], 'd', /would replace the directory/);
  });

  test('a directory that would replace a file extracted earlier', async () => {
    await refused([file('f', 'x'), dir('f/')], 'f/', /a directory would replace the file/);
  });
});

describe('extractTar: archives that cannot be read', () => {
  let work: string;
  let staging: string;

  beforeEach(async () => {
    work ??= await makeTempDir();
    staging = join(work, `staging-${Math.random().toString(36).slice(2)}`);
    await mkdir(staging);
  });

  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  const members = [file('a', 'first\n'), file('b', 'second, a bit longer\n')];

  test('an archive cut at the end of an entry (no end-of-archive blocks)', async () => {
    await assert.rejects(extractTar(streamOf(tarOf(members, { end: false })), staging, ALL), (error: unknown) => {
      assert.ok(error instanceof RestoreError);
      assert.match(error.message, /ends without its end-of-archive marker \(after entry "b"\): it was cut short/);
      return true;
    });
  });

  test('an archive cut in the middle of a file', async () => {
    const whole = tarOf(members);
    await assert.rejects(extractTar(streamOf(whole.subarray(0, 1024 + 512 + 10)), staging, ALL), (error: unknown) => {
      assert.ok(error instanceof RestoreError);
      assert.match(error.message, /cannot read the archive \(after entry "b"\)/);
      return true;
    });
  });

  test('bytes that are not a tar', async () => {
    const garbage = Buffer.alloc(4096, 'not a tar archive at all ');
    await assert.rejects(extractTar(streamOf(garbage), staging, ALL), /RestoreError|cannot read the archive/);
  });

  test('an empty stream', async () => {
    await assert.rejects(extractTar(streamOf(Buffer.alloc(0)), staging, ALL), /end-of-archive marker/);
  });

  test('a stream that fails part-way (a decompressor that gave up) names the failure', async () => {
    const whole = tarOf(members);
    const failing = Readable.from(
      (async function* () {
        yield whole.subarray(0, 600);
        throw new Error('zstd -d exited with code 1: Corrupted block detected');
      })(),
    );
    await assert.rejects(extractTar(failing, staging, ALL), (error: unknown) => {
      assert.ok(error instanceof RestoreError);
      assert.match(error.message, /Corrupted block detected/);
      return true;
    });
  });

  test('a staging directory that is not empty', async () => {
    await writeFile(join(staging, 'leftover'), 'x');
    await assert.rejects(extractTar(streamOf(tarOf(members)), staging, ALL), /is not empty \(it holds "leftover"\)/);
  });

  test('a file that cannot be written names the entry and the cause (a full disk)', async () => {
    const mount = join(work, 'small');
    await mkdir(mount);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mount]);
    try {
      const big = file('big.bin', 'x'.repeat(256 * 1024));
      await assert.rejects(extractTar(streamOf(tarOf([big])), mount, ALL), (error: unknown) => {
        assert.ok(error instanceof RestoreError);
        assert.match(error.message, /cannot write "big\.bin" .*ENOSPC.*the disk is full/);
        return true;
      });
    } finally {
      execFileSync('umount', [mount]);
    }
  });
});

describe('extractTar: only one path', () => {
  let work: string;
  let staging: string;
  const members = [
    dir('srv/', { mode: 0o750, mtimeNs: 1_100_000_000n * NS }),
    dir('srv/app/', { mode: 0o755, mtimeNs: 1_200_000_000n * NS }),
    file('srv/app/.env', 'SECRET=1\n', { mode: 0o600 }),
    dir('srv/app/public/'),
    file('srv/app/public/index.php', '<?php\n'),
    hardlink('srv/app/public/copy.php', 'srv/app/.env'),
    dir('srv/other/'),
    file('srv/other/x', 'x\n'),
    { header: header('srv/other/null', 'char-device', { devMajor: 1, devMinor: 3 }) },
  ];

  beforeEach(async () => {
    work ??= await makeTempDir();
    staging = join(work, `staging-${Math.random().toString(36).slice(2)}`);
    await mkdir(staging);
  });

  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function listing(root: string): Promise<string[]> {
    return (await readdir(root, { recursive: true })).sort();
  }

  test('a single file, with the directories above it and their archived metadata', async () => {
    const summary = await extractTar(streamOf(tarOf(members)), staging, {
      ...ALL,
      allowDevices: false,
      only: '/srv/app/.env',
    });
    assert.deepEqual(await listing(staging), ['srv', 'srv/app', 'srv/app/.env']);
    assert.deepEqual(
      summary.entries.map((e) => e.path),
      ['srv', 'srv/app', 'srv/app/.env'],
    );
    const srv = await stat(join(staging, 'srv'));
    assert.equal(srv.mode & 0o7777, 0o750);
    assert.equal(srv.mtimeMs, 1_100_000_000_000);
    assert.equal(await readFile(join(staging, 'srv/app/.env'), 'utf8'), 'SECRET=1\n');
  });

  test('a directory and everything below it', async () => {
    await extractTar(streamOf(tarOf(members)), staging, { ...ALL, allowDevices: false, only: 'srv/app' });
    assert.deepEqual(await listing(staging), [
      'srv',
      'srv/app',
      'srv/app/.env',
      'srv/app/public',
      'srv/app/public/copy.php',
      'srv/app/public/index.php',
    ]);
    const [a, b] = await Promise.all([
      stat(join(staging, 'srv/app/.env')),
      stat(join(staging, 'srv/app/public/copy.php')),
    ]);
    assert.equal(a.ino, b.ino);
  });

  test('a hard link whose first path is outside the restored path is an error that says so', async () => {
    await assert.rejects(
      extractTar(streamOf(tarOf(members)), staging, { ...ALL, only: 'srv/app/public' }),
      /"srv\/app\/public\/copy\.php" is a hard link to "srv\/app\/\.env", which is outside the restored path srv\/app\/public/,
    );
  });

  test('a path that matches nothing is an error naming it', async () => {
    await assert.rejects(
      extractTar(streamOf(tarOf(members)), staging, { ...ALL, only: 'srv/ap' }),
      (error: unknown) => error instanceof RestoreError && /path srv\/ap is not in this archive/.test(error.message),
    );
  });

  test('a path with ".." is refused before anything is read', async () => {
    await assert.rejects(
      extractTar(streamOf(tarOf(members)), staging, { ...ALL, only: 'srv/../etc' }),
      /is not valid: it has a "\.\." component/,
    );
    assert.deepEqual(await readdir(staging), []);
  });

  test('normalizeArchivePath', () => {
    assert.equal(normalizeArchivePath('/var//www/./app/'), 'var/www/app');
    assert.equal(normalizeArchivePath('/'), '');
    assert.throws(() => normalizeArchivePath('a\0b'), /NUL byte/);
  });
});

describe('extractTar: abort', () => {
  let work: string;

  before(async () => {
    work = await makeTempDir();
  });

  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('aborting stops an extraction that would never end, with the signal’s reason', async () => {
    const staging = join(work, 'staging');
    await mkdir(staging);
    const controller = new AbortController();
    let produced = 0;
    // One endless file: 1 TiB announced, zeros forever. Abort once 4 MiB went through.
    const endless = new Readable({
      read() {
        if (produced === 0) this.push(encodeHeader(header('endless', 'file', { size: 2 ** 40 })));
        const chunk = Buffer.alloc(64 * 1024);
        produced += chunk.length;
        if (produced === 4 * 1024 * 1024) controller.abort(new Error('stop now'));
        this.push(chunk);
      },
    });
    await assert.rejects(extractTar(endless, staging, { ...ALL, signal: controller.signal }), /stop now/);
    assert.ok(endless.destroyed, 'the input was destroyed');
    assert.ok(produced < 64 * 1024 * 1024, `kept reading after the abort (${produced} bytes)`);
  });

  test('an already aborted signal creates nothing', async () => {
    const staging = join(work, 'staging-2');
    await mkdir(staging);
    const controller = new AbortController();
    controller.abort(new Error('too late'));
    await assert.rejects(
      extractTar(streamOf(tarOf([file('a', 'x')])), staging, { ...ALL, signal: controller.signal }),
      /too late/,
    );
    assert.deepEqual(await readdir(staging), []);
  });
});
