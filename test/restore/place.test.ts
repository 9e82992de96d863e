// Placing a staged tree into a real destination: created, empty or non-empty destinations, merges
// into existing directories, --force, conflicts found before anything moves, a rename that fails
// part-way (an immutable directory) rolled back, another filesystem inside the destination, and the
// whole prepare → extract → place/discard flow with the files source's archive of a full tree.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { silentLogger } from '../../src/lib/log.js';
import { encodeHeader, endOfArchive, paddingSize } from '../../src/pipeline/tar.js';
import { RestoreError, UnsafeArchiveError } from '../../src/restore/errors.js';
import { extractTar } from '../../src/restore/extract.js';
import { discardStaging, placeTree, prepareDestination, STAGING_PREFIX } from '../../src/restore/place.js';
import { createFilesSource } from '../../src/sources/files.js';
import { compareTrees } from '../helpers/compare.js';
import { buildFullTree, describeTree, makeTempDir } from '../helpers/tree.js';

const never = new AbortController().signal;
const T1 = 1_100_000_000;
const T2 = 1_200_000_000;

/** Everything observable about a directory: its entries (mtimes to the microsecond) and its own metadata. */
async function snapshot(dir: string): Promise<unknown> {
  const entries = [...(await describeTree(dir))].map(([path, entry]) => [
    path,
    { ...entry, mtime: (BigInt(entry.mtime) / 1000n).toString() },
  ]);
  const own = await lstat(dir, { bigint: true });
  return { entries, mode: own.mode, uid: own.uid, mtimeUs: own.mtimeNs / 1000n };
}

describe('prepareDestination and discardStaging', () => {
  let work: string;

  beforeEach(async () => {
    work = await makeTempDir();
  });

  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('a missing destination is created (parents too) with the staging directory inside; discarding removes all of it', async () => {
    const destination = join(work, 'new-parent', 'restore');
    const prepared = await prepareDestination(destination, { force: false });
    assert.equal(prepared.created, true);
    assert.equal(dirname(prepared.stagingDir), destination);
    assert.ok(basename(prepared.stagingDir).startsWith(STAGING_PREFIX));
    assert.equal((await stat(prepared.stagingDir)).mode & 0o777, 0o700);
    await writeFile(join(prepared.stagingDir, 'partial'), 'x');
    await discardStaging(destination, prepared.stagingDir, prepared.created);
    assert.deepEqual(await readdir(work), []);
  });

  test('an existing empty destination is used, and after a failure it is as it was, its own mtime included', async () => {
    const destination = join(work, 'empty');
    await mkdir(destination);
    await utimes(destination, T1, T1);
    const before = await snapshot(destination);
    const prepared = await prepareDestination(destination, { force: false });
    assert.equal(prepared.created, false);
    await discardStaging(destination, prepared.stagingDir, prepared.created);
    assert.deepEqual(await snapshot(destination), before);
  });

  test('a non-empty destination is refused without force, saying what to do, and nothing is created in it', async () => {
    const destination = join(work, 'full');
    await mkdir(destination);
    await writeFile(join(destination, 'precious.txt'), 'keep me\n');
    const before = await snapshot(destination);
    await assert.rejects(prepareDestination(destination, { force: false }), (error: unknown) => {
      assert.ok(error instanceof RestoreError);
      assert.match(error.message, /is not empty \(it holds 1 entries, e\.g\. "precious\.txt"\)/);
      assert.match(error.message, /another --to/);
      assert.match(error.message, /--force/);
      return true;
    });
    assert.deepEqual(await snapshot(destination), before);
    const prepared = await prepareDestination(destination, { force: true });
    assert.equal(prepared.created, false);
    await discardStaging(destination, prepared.stagingDir, false);
    assert.deepEqual(await readdir(destination), ['precious.txt']);
  });

  test('a leftover staging directory of a killed restore does not make the destination non-empty', async () => {
    const destination = join(work, 'leftover');
    await mkdir(join(destination, `${STAGING_PREFIX}old`), { recursive: true });
    const prepared = await prepareDestination(destination, { force: false });
    await discardStaging(destination, prepared.stagingDir, false);
    assert.deepEqual(await readdir(destination), [`${STAGING_PREFIX}old`]);
  });

  test('a destination that is a file is refused', async () => {
    const destination = join(work, 'a-file');
    await writeFile(destination, 'x');
    await assert.rejects(
      prepareDestination(destination, { force: true }),
      /exists and is not a directory; choose another --to/,
    );
  });

  test('discardStaging refuses a directory that is not a staging directory', async () => {
    await assert.rejects(discardStaging(work, work, false), /not a staging directory/);
    assert.ok((await stat(work)).isDirectory());
  });

  test('a staged tree with read-only directories is still removed', async () => {
    const destination = join(work, 'ro');
    const prepared = await prepareDestination(destination, { force: false });
    await mkdir(join(prepared.stagingDir, 'locked', 'inner'), { recursive: true });
    await writeFile(join(prepared.stagingDir, 'locked', 'inner', 'f'), 'x');
    execFileSync('chmod', ['-R', 'a-w', join(prepared.stagingDir, 'locked')]);
    await discardStaging(destination, prepared.stagingDir, prepared.created);
    assert.deepEqual(await readdir(work), []);
  });
});

describe('placeTree', () => {
  let work: string;
  let staged: string;
  let destination: string;

  /** staged: a/ (0750, T1) with new.txt and sub/ (T2) holding deep.txt; b.txt; link -> a */
  async function stage(): Promise<void> {
    await mkdir(join(staged, 'a', 'sub'), { recursive: true });
    await writeFile(join(staged, 'a', 'new.txt'), 'new\n');
    await writeFile(join(staged, 'a', 'sub', 'deep.txt'), 'deep\n');
    await writeFile(join(staged, 'b.txt'), 'restored b\n');
    await symlink('a', join(staged, 'link'));
    execFileSync('chmod', ['0750', join(staged, 'a')]);
    await utimes(join(staged, 'a', 'sub'), T2, T2);
    await utimes(join(staged, 'a'), T1, T1);
  }

  beforeEach(async () => {
    work = await makeTempDir();
    staged = join(work, 'staged');
    destination = join(work, 'destination');
    await mkdir(staged);
    await mkdir(destination);
    await stage();
  });

  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('into an empty destination: everything moved by rename, directory mtimes kept', async () => {
    const stagedBefore = await describeTree(staged);
    const result = await placeTree(staged, destination, { force: false });
    assert.deepEqual(result, { moved: 3, replaced: 0, merged: 0 });
    assert.deepEqual(await describeTree(destination), stagedBefore);
    assert.deepEqual(await readdir(staged), []);
    assert.equal((await stat(join(destination, 'a'))).mtimeMs, T1 * 1000);
    assert.equal((await stat(join(destination, 'a', 'sub'))).mtimeMs, T2 * 1000);
  });

  test('merging into existing directories keeps what is there and gives them the staged metadata', async () => {
    await mkdir(join(destination, 'a'), { mode: 0o700 });
    await writeFile(join(destination, 'a', 'old.txt'), 'old\n');
    const result = await placeTree(staged, destination, { force: false });
    assert.deepEqual(result, { moved: 4, replaced: 0, merged: 1 });
    assert.deepEqual((await readdir(join(destination, 'a'))).sort(), ['new.txt', 'old.txt', 'sub']);
    const a = await stat(join(destination, 'a'));
    assert.equal(a.mode & 0o7777, 0o750);
    assert.equal(a.mtimeMs, T1 * 1000, 'the merged directory’s mtime is set after entries were moved into it');
    assert.equal((await stat(join(destination, 'a', 'sub'))).mtimeMs, T2 * 1000);
    assert.equal(await readFile(join(destination, 'a', 'sub', 'deep.txt'), 'utf8'), 'deep\n');
  });

  test('an existing file is a conflict without force: reported before anything moved', async () => {
    await writeFile(join(destination, 'b.txt'), 'old b\n');
    await mkdir(join(destination, 'a'));
    const before = await snapshot(destination);
    await assert.rejects(placeTree(staged, destination, { force: false }), (error: unknown) => {
      assert.ok(error instanceof RestoreError);
      assert.match(error.message, /1 entries are in the way; nothing was changed/);
      assert.match(error.message, /b\.txt: it exists \(--force replaces it\)/);
      return true;
    });
    assert.deepEqual(await snapshot(destination), before);
    assert.deepEqual((await readdir(staged)).sort(), ['a', 'b.txt', 'link']);
  });

  test('with force, existing files and symlinks are replaced', async () => {
    await writeFile(join(destination, 'b.txt'), 'old b\n');
    await symlink('elsewhere', join(destination, 'link'));
    const result = await placeTree(staged, destination, { force: true });
    assert.deepEqual(result, { moved: 1, replaced: 2, merged: 0 });
    assert.equal(await readFile(join(destination, 'b.txt'), 'utf8'), 'restored b\n');
    assert.equal(await readlink(join(destination, 'link')), 'a');
    assert.deepEqual(await readdir(staged), [], 'replaced entries are not left behind');
  });

  test('nothing replaces a directory, not even with force', async () => {
    await mkdir(join(destination, 'b.txt'));
    await writeFile(join(destination, 'b.txt', 'inside'), 'x');
    const before = await snapshot(destination);
    await assert.rejects(
      placeTree(staged, destination, { force: true }),
      /b\.txt: a directory is there, and nothing replaces a directory/,
    );
    assert.deepEqual(await snapshot(destination), before);
  });

  test('a symlink in the destination where the staged tree has a directory is never followed', async () => {
    const outside = join(work, 'outside');
    await mkdir(outside);
    await symlink(outside, join(destination, 'a'));
    await assert.rejects(placeTree(staged, destination, { force: false }), /a: it exists \(--force replaces it\)/);
    const result = await placeTree(staged, destination, { force: true });
    assert.equal(result.replaced, 1);
    assert.ok((await lstat(join(destination, 'a'))).isDirectory());
    assert.deepEqual(await readdir(outside), []);
  });

  test('a rename that fails part-way is undone: the destination is as it was', async () => {
    await mkdir(join(destination, 'a'), { mode: 0o700 });
    await writeFile(join(destination, 'a', 'old.txt'), 'old\n');
    // `z` sorts after everything else: `a` is merged and `b.txt` moved before the move into `z` fails.
    await mkdir(join(staged, 'z'));
    await writeFile(join(staged, 'z', 'new.txt'), 'x');
    await mkdir(join(destination, 'z'));
    await utimes(join(destination, 'a'), T2, T2);
    execFileSync('chattr', ['+i', join(destination, 'z')]);
    try {
      const before = await snapshot(destination);
      const stagedBefore = await describeTree(staged);
      await assert.rejects(placeTree(staged, destination, { force: false }), (error: unknown) => {
        assert.ok(error instanceof RestoreError);
        assert.match(error.message, /failed at .*\/z\/new\.txt: .*EPERM/);
        assert.match(error.message, /everything moved so far was put back; the destination is as it was/);
        return true;
      });
      assert.deepEqual(await snapshot(destination), before);
      assert.deepEqual([...(await describeTree(staged)).keys()], [...stagedBefore.keys()]);
    } finally {
      execFileSync('chattr', ['-i', join(destination, 'z')]);
    }
  });

  test('a directory on another filesystem inside the destination is a conflict, not a failed rename', async () => {
    await mkdir(join(destination, 'a'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', join(destination, 'a')]);
    try {
      const before = await snapshot(destination);
      await assert.rejects(
        placeTree(staged, destination, { force: true }),
        /a: it is on another filesystem \(a mount point\)/,
      );
      assert.deepEqual(await snapshot(destination), before);
    } finally {
      execFileSync('umount', [join(destination, 'a')]);
    }
  });

  test('components staged apart are combined inside the staging directory; a clash between them leaves the destination as it was', async () => {
    await utimes(destination, T1, T1);
    const before = await snapshot(destination);
    const prepared = await prepareDestination(destination, { force: false });
    const [first, second, tree] = ['c1', 'c2', 'tree'].map((name) => join(prepared.stagingDir, name)) as [
      string,
      string,
      string,
    ];
    for (const dir of [first, second, tree]) await mkdir(dir);
    await mkdir(join(first, 'etc'));
    await writeFile(join(first, 'etc', 'app.conf'), 'first\n');
    await writeFile(join(first, 'main.app.sql'), 'dump\n');
    await mkdir(join(second, 'etc'));
    await writeFile(join(second, 'etc', 'app.conf'), 'second\n');
    await placeTree(first, tree, { force: false });
    await assert.rejects(placeTree(second, tree, { force: false }), /etc\/app\.conf: it exists/);
    await discardStaging(destination, prepared.stagingDir, prepared.created);
    assert.deepEqual(await snapshot(destination), before);
  });

  test('a staged entry that would land on the staging directory itself is a conflict', async () => {
    const prepared = await prepareDestination(destination, { force: true });
    const tree = join(prepared.stagingDir, 'tree');
    await mkdir(join(tree, basename(prepared.stagingDir)), { recursive: true });
    await assert.rejects(
      placeTree(tree, destination, { force: true }),
      /it would replace the staging directory itself/,
    );
    await discardStaging(destination, prepared.stagingDir, false);
    assert.deepEqual(await readdir(destination), []);
  });
});

describe('prepare → extract → place, with the files source archive of a full tree', () => {
  let work: string;

  beforeEach(async () => {
    work = await makeTempDir();
  });

  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  async function archive(root: string): Promise<string> {
    const source = createFilesSource({ name: 'app', paths: [root], exclude: [], oneFileSystem: false });
    const tarPath = join(work, 'app.tar');
    for await (const component of source.components({ signal: never, log: silentLogger, scratchDir: work })) {
      component.index?.resume();
      await pipeline(component.data, createWriteStream(tarPath));
      await component.facts;
    }
    return tarPath;
  }

  test('the placed tree equals the original, directory mtimes included, and no staging directory is left', async () => {
    const tree = await buildFullTree(await makeTempDir());
    try {
      const tarPath = await archive(tree.root);
      const destination = join(work, 'restore');
      const prepared = await prepareDestination(destination, { force: false });
      const stagedTree = join(prepared.stagingDir, 'tree');
      await mkdir(stagedTree);
      await extractTar(Readable.from(await readFile(tarPath)), stagedTree, {
        signal: never,
        allowDevices: true,
        preserveOwners: true,
        allowOutsideSymlinks: true,
      });
      await placeTree(stagedTree, destination, { force: false });
      await discardStaging(destination, prepared.stagingDir, false);
      const restoredRoot = join(destination, tree.root.slice(1));
      assert.deepEqual(await compareTrees(tree.root, restoredRoot, { ignore: (p) => p === tree.paths.socket }), []);
      assert.deepEqual(await readdir(destination), [tree.root.split('/')[1]]);
    } finally {
      await tree.cleanup();
      await rm(dirname(tree.root), { recursive: true, force: true });
    }
  });

  test('a hostile archive fails the extraction and discarding leaves a non-empty destination as it was', async () => {
    const destination = join(work, 'live');
    await mkdir(join(destination, 'etc'), { recursive: true });
    await writeFile(join(destination, 'etc', 'config'), 'live config\n');
    await utimes(destination, T1, T1);
    const before = await snapshot(destination);
    const prepared = await prepareDestination(destination, { force: true });
    const content = Buffer.from('evil\n');
    const hostile = Buffer.concat([
      encodeHeader({ name: 'etc/', type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtimeNs: 0n }),
      encodeHeader({ name: 'root', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, mtimeNs: 0n, linkName: '/' }),
      encodeHeader({
        name: 'root/etc/evil',
        type: 'file',
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: content.length,
        mtimeNs: 0n,
      }),
      content,
      Buffer.alloc(paddingSize(content.length)),
      endOfArchive(),
    ]);
    await assert.rejects(
      extractTar(Readable.from([hostile]), prepared.stagingDir, {
        signal: never,
        allowDevices: false,
        preserveOwners: true,
        allowOutsideSymlinks: true,
      }),
      UnsafeArchiveError,
    );
    await discardStaging(destination, prepared.stagingDir, prepared.created);
    assert.deepEqual(await snapshot(destination), before);
    await assert.rejects(lstat('/etc/evil'), { code: 'ENOENT' });
  });
});
