// The files source against real trees: what it writes is extracted with GNU tar and compared with
// the original, the index is checked against sha256sum, and the failure paths (missing paths,
// changing files, vanishing entries, unreadable files, I/O errors, aborts) are provoked for real.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import {
  appendFile,
  chmod,
  mkdir,
  open,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  truncate,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import tar from 'tar-stream';
import { SourceError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/log.js';
import type { Measured } from '../../src/pipeline/measure.js';
import {
  createFilesSource,
  type FilesSourceOptions,
  type IndexEntry,
  openRegularFile,
} from '../../src/sources/files.js';
import type { ComponentFacts, ComponentStream, SourceContext } from '../../src/sources/types.js';
import { buildFullTree, describeTree, type FullTree, makeTempDir, sha256sum } from '../helpers/tree.js';

function context(signal = new AbortController().signal): SourceContext {
  return { signal, log: silentLogger, scratchDir: '/nonexistent' };
}

function source(options: Partial<FilesSourceOptions> & { paths: string[] }) {
  return createFilesSource({ name: 'app', exclude: [], oneFileSystem: false, ...options });
}

async function onlyComponent(options: Partial<FilesSourceOptions> & { paths: string[] }, ctx = context()) {
  const components: ComponentStream[] = [];
  for await (const component of source(options).components(ctx)) components.push(component);
  assert.equal(components.length, 1);
  const component = components[0] as ComponentStream;
  assert.equal(component.name, 'app');
  assert.equal(component.kind, 'files');
  assert.equal(component.extension, 'tar');
  assert.ok(component.index);
  return component as ComponentStream & { index: Readable };
}

interface Archived {
  tarPath: string;
  index: IndexEntry[];
  facts: ComponentFacts;
  raw: Measured | undefined;
}

/** Runs the source to a tar file in `dir`; `onChunk` may pause the consumer (by returning a promise). */
async function archive(
  dir: string,
  options: Partial<FilesSourceOptions> & { paths: string[] },
  onChunk?: (receivedBytes: number) => Promise<void> | undefined,
): Promise<Archived> {
  const component = await onlyComponent(options);
  const tarPath = join(dir, `archive-${Math.random().toString(36).slice(2)}.tar`);
  const indexText = readAll(component.index);
  let received = 0;
  const data = onChunk
    ? Readable.from(
        (async function* () {
          for await (const chunk of component.data) {
            received += (chunk as Buffer).length;
            yield chunk;
            await onChunk(received);
          }
        })(),
      )
    : component.data;
  await pipeline(data, createWriteStream(tarPath));
  const text = await indexText;
  const facts = await component.facts;
  const raw = await component.rawMeasured;
  const index =
    text === ''
      ? []
      : text
          .trimEnd()
          .split('\n')
          .map((line) => JSON.parse(line) as IndexEntry);
  return { tarPath, index, facts, raw };
}

/** Threads of this process: the archive worker is one while it runs. */
async function threadCount(): Promise<number> {
  return (await readdir('/proc/self/task')).length;
}

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Extracts with GNU tar as a restore would, failing on any complaint. */
function extract(tarPath: string, into: string): void {
  const result = spawnSync('tar', ['--numeric-owner', '-xpf', tarPath, '-C', into], { encoding: 'utf8' });
  assert.equal(result.stderr, '', 'GNU tar complained');
  assert.equal(result.status, 0);
}

/** Entry names and types in tar order, read with an independent parser (tar-stream). */
async function listTar(tarPath: string): Promise<{ name: string; type: string; size: number }[]> {
  const entries: { name: string; type: string; size: number }[] = [];
  const extractor = tar.extract();
  extractor.on('entry', (header, stream, next) => {
    entries.push({ name: header.name, type: header.type ?? '', size: header.size ?? 0 });
    stream.on('end', next);
    stream.resume();
  });
  await pipeline(Readable.from(await readFile(tarPath)), extractor);
  return entries;
}

function archiveName(path: string): string {
  return path.slice(1);
}

describe('files source: a tree with every kind of entry', () => {
  let tree: FullTree;
  let work: string;
  let archived: Archived;
  let restoredRoot: string;

  before(async () => {
    work = await makeTempDir();
    tree = await buildFullTree();
    archived = await archive(work, { paths: [tree.root] });
    const restored = join(work, 'restored');
    await mkdir(restored);
    extract(archived.tarPath, restored);
    restoredRoot = join(restored, tree.root);
  });

  after(async () => {
    await tree?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  test('GNU tar restores the tree exactly: types, contents, modes, owners, nanosecond mtimes, links, devices', async () => {
    const original = await describeTree(tree.root, { skipSockets: true });
    const restored = await describeTree(restoredRoot);
    assert.deepEqual([...restored.keys()], [...original.keys()]);
    for (const [path, entry] of original) assert.deepEqual(restored.get(path), entry, path);
    // The root itself too (describeTree covers what is under it).
    const [rootBefore, rootAfter] = await Promise.all([
      stat(tree.root, { bigint: true }),
      stat(restoredRoot, { bigint: true }),
    ]);
    assert.equal(rootAfter.mtimeNs, rootBefore.mtimeNs);
    assert.equal(rootAfter.mode, rootBefore.mode);
  });

  test('hard links come back as one file, and the second and later paths are hard-link entries', async () => {
    const [first, ...others] = tree.paths.hardLinks.map((p) => join(restoredRoot, p));
    const inode = (await stat(first as string)).ino;
    for (const other of others) assert.equal((await stat(other)).ino, inode);
    const byPath = new Map(archived.index.map((e) => [e.path, e]));
    const firstName = archiveName(join(tree.root, tree.paths.hardLinks[0] as string));
    assert.equal(byPath.get(firstName)?.type, 'file');
    for (const other of tree.paths.hardLinks.slice(1)) {
      const entry = byPath.get(archiveName(join(tree.root, other)));
      assert.deepEqual(
        { type: entry?.type, target: entry?.target, size: entry?.size, sha256: entry?.sha256 },
        { type: 'hardlink', target: firstName, size: undefined, sha256: undefined },
      );
    }
  });

  test('the index has one line per tar entry, in tar order, plus the socket, which the tar cannot hold', async () => {
    const entries = await listTar(archived.tarPath);
    const indexWithoutSockets = archived.index.filter((e) => e.type !== 'socket');
    assert.deepEqual(
      entries.map((e) => e.name.replace(/\/$/, '')),
      indexWithoutSockets.map((e) => e.path),
    );
    const sockets = archived.index.filter((e) => e.type === 'socket');
    assert.deepEqual(
      sockets.map((e) => e.path),
      [archiveName(join(tree.root, tree.paths.socket))],
    );
    assert.equal(archived.facts.files, archived.index.length);
    assert.deepEqual(archived.facts.warnings, []);
  });

  test('rawMeasured is the size and SHA-256 of the whole data stream, as sha256sum gives them for the tar', async () => {
    assert.deepEqual(archived.raw, { bytes: (await stat(archived.tarPath)).size, sha256: sha256sum(archived.tarPath) });
  });

  test('walk order is depth-first, parents before children, names in byte order', () => {
    const paths = archived.index.map((e) => e.path);
    assert.equal(paths[0], archiveName(tree.root));
    const seen = new Set<string>();
    for (const path of paths) {
      const parent = path.slice(0, path.lastIndexOf('/'));
      if (path !== archiveName(tree.root)) assert.ok(seen.has(parent), `${path} before its parent`);
      seen.add(path);
    }
    // Within each directory, names come in the byte order of their UTF-8 encoding.
    const children = new Map<string, string[]>();
    for (const path of paths) {
      const parent = path.slice(0, path.lastIndexOf('/'));
      children.set(parent, [...(children.get(parent) ?? []), path.slice(path.lastIndexOf('/') + 1)]);
    }
    for (const names of children.values()) {
      const sorted = [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      assert.deepEqual(names, sorted);
    }
  });

  test('every file in the index has the size and SHA-256 that sha256sum gives for the original', () => {
    const files = archived.index.filter((e) => e.type === 'file');
    assert.ok(files.length >= 15);
    for (const entry of files) {
      const original = `/${entry.path}`;
      assert.equal(entry.sha256, sha256sum(original), entry.path);
    }
  });

  test('index lines carry the documented fields, with 4-digit octal modes and UTC millisecond mtimes', () => {
    const byPath = new Map(archived.index.map((e) => [e.path, e]));
    const entry = (relative: string) => byPath.get(archiveName(join(tree.root, relative)));
    assert.deepEqual(Object.keys(entry(tree.paths.readme) ?? {}), [
      'path',
      'type',
      'size',
      'mode',
      'uid',
      'gid',
      'mtime',
      'sha256',
    ]);
    assert.deepEqual(entry(tree.paths.readme), {
      path: archiveName(join(tree.root, tree.paths.readme)),
      type: 'file',
      size: 9,
      mode: '0644',
      uid: 0,
      gid: 0,
      mtime: '2001-02-03T04:05:06.789Z',
      sha256: sha256sum(join(tree.root, tree.paths.readme)),
    });
    assert.equal(entry(tree.paths.nanoFile)?.mtime, '2009-02-13T23:31:30.123Z');
    assert.equal(entry(tree.paths.setuid)?.mode, '4755');
    assert.equal(entry(tree.paths.setgidDir)?.mode, '2775');
    assert.equal(entry(tree.paths.stickyDir)?.mode, '1777');
    assert.equal(entry('data/no-permissions')?.mode, '0000');
    assert.deepEqual(
      { ...entry(tree.paths.owned), sha256: undefined, mtime: undefined, path: undefined },
      {
        type: 'file',
        size: 6,
        mode: '0644',
        uid: 1234,
        gid: 5678,
        sha256: undefined,
        mtime: undefined,
        path: undefined,
      },
    );
    assert.equal(entry(tree.paths.bigUid)?.uid, 3_000_000);
    assert.equal(entry(tree.paths.bigUid)?.gid, 3_000_001);
    assert.deepEqual(entry(tree.paths.empty)?.size, 0);
    assert.equal(entry(tree.paths.empty)?.sha256, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    assert.deepEqual(
      { type: entry(tree.paths.emptyDir)?.type, size: entry(tree.paths.emptyDir)?.size },
      { type: 'directory', size: undefined },
    );
    assert.deepEqual(
      { type: entry(tree.paths.relativeLink)?.type, target: entry(tree.paths.relativeLink)?.target },
      { type: 'symlink', target: '../docs/readme.txt' },
    );
    assert.equal(entry(tree.paths.unicodeLink)?.target, '../names/ünïcødé-日本語.txt');
    assert.equal(entry(tree.paths.danglingLink)?.target, 'does-not-exist');
    assert.equal(entry(tree.paths.fifo)?.type, 'fifo');
    const char = entry(tree.paths.charDevice);
    assert.deepEqual(
      { type: char?.type, devmajor: char?.devmajor, devminor: char?.devminor },
      { type: 'char-device', devmajor: 1, devminor: 3 },
    );
    const block = entry(tree.paths.blockDevice);
    assert.deepEqual(
      { type: block?.type, devmajor: block?.devmajor, devminor: block?.devminor },
      { type: 'block-device', devmajor: 259, devminor: 70000 },
    );
    assert.equal(entry(tree.paths.newline)?.path, archiveName(join(tree.root, tree.paths.newline)));
    assert.equal(entry(tree.paths.longName)?.type, 'file');
    assert.equal(entry(tree.paths.deepFile)?.type, 'file');
    for (const line of archived.index) assert.equal(line.changed, undefined, line.path);
  });
});

describe('files source: choosing what to store', () => {
  let work: string;
  before(async () => {
    work = await makeTempDir();
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  async function writeTree(root: string, files: string[]): Promise<void> {
    for (const file of files) {
      await mkdir(join(root, file, '..'), { recursive: true });
      await writeFile(join(root, file), `${file}\n`);
    }
  }

  test('exclude globs match relative to the configured path, and "/" globs the absolute path', async () => {
    const app = join(work, 'exclude', 'app');
    await writeTree(app, [
      'index.php',
      '.env',
      'node_modules/left-pad/index.js',
      'packages/ui/node_modules/react/index.js',
      'packages/ui/src/App.tsx',
      'storage/framework/cache/data/aa/bb',
      'storage/framework/views/compiled.php',
      'storage/logs/laravel.log',
      'storage/logs/keep.txt',
    ]);
    const { tarPath, index } = await archive(work, {
      paths: [app],
      exclude: ['**/node_modules', 'storage/framework/cache/**', `${app}/storage/logs/*.log`],
    });
    const relative = index.map((e) => e.path.slice(archiveName(app).length + 1));
    assert.deepEqual(relative, [
      '',
      '.env',
      'index.php',
      'packages',
      'packages/ui',
      'packages/ui/src',
      'packages/ui/src/App.tsx',
      'storage',
      'storage/framework',
      'storage/framework/views',
      'storage/framework/views/compiled.php',
      'storage/logs',
      'storage/logs/keep.txt',
    ]);
    assert.equal((await listTar(tarPath)).length, index.length);
  });

  test('duplicate and nested configured paths are stored once, in byte order', async () => {
    const base = join(work, 'overlap');
    await writeTree(base, ['b/inner/x.txt', 'b/y.txt', 'a/z.txt']);
    const { index, tarPath } = await archive(work, {
      paths: [join(base, 'b'), join(base, 'b', 'inner'), `${join(base, 'b')}/`, join(base, 'a'), join(base, 'b')],
    });
    const relative = index.map((e) => e.path.slice(archiveName(base).length + 1));
    assert.deepEqual(relative, ['a', 'a/z.txt', 'b', 'b/inner', 'b/inner/x.txt', 'b/y.txt']);
    assert.equal((await listTar(tarPath)).length, 6);
  });

  test('oneFileSystem stores a mount point but not what is mounted on it', async (t) => {
    const root = join(work, 'onefs');
    await writeTree(root, ['a.txt']);
    const mountPoint = join(root, 'mnt');
    await mkdir(mountPoint);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]);
    t.after(() => {
      execFileSync('umount', [mountPoint]);
    });
    await writeFile(join(mountPoint, 'inside.txt'), 'on another filesystem\n');
    const names = (index: IndexEntry[]) => index.map((e) => e.path.slice(archiveName(root).length + 1));

    const oneFs = await archive(work, { paths: [root], oneFileSystem: true });
    assert.deepEqual(names(oneFs.index), ['', 'a.txt', 'mnt']);
    assert.equal(oneFs.index[2]?.type, 'directory');

    const crossing = await archive(work, { paths: [root], oneFileSystem: false });
    assert.deepEqual(names(crossing.index), ['', 'a.txt', 'mnt', 'mnt/inside.txt']);
  });

  test('a configured path that is a symlink is stored as the link alone, with a warning', async () => {
    const base = join(work, 'symlink-root');
    await writeTree(base, ['releases/5/index.php']);
    await symlink('releases/5', join(base, 'current'));
    const current = join(base, 'current');
    const { index, facts, tarPath } = await archive(work, { paths: [current] });
    assert.deepEqual(
      index.map((e) => [e.path, e.type, e.target]),
      [[archiveName(current), 'symlink', 'releases/5']],
    );
    assert.equal(facts.warnings.length, 1);
    assert.match(facts.warnings[0] as string, /current is a symlink: only the link was stored/);
    assert.deepEqual(await listTar(tarPath), [{ name: archiveName(current), type: 'symlink', size: 0 }]);
    const findings = await source({ paths: [current] }).check(context());
    assert.equal(findings.length, 1);
    assert.equal(findings[0]?.fatal, false);
    assert.match(
      findings[0]?.message ?? '',
      /^source app: path .*current is a symlink \(to releases\/5\): only the link will be stored/,
    );
  });

  test('a configured path that is a single file is stored as that file', async () => {
    const base = join(work, 'single-file');
    await writeTree(base, ['etc/app.conf']);
    const { index } = await archive(work, { paths: [join(base, 'etc/app.conf')] });
    assert.deepEqual(
      index.map((e) => e.type),
      ['file'],
    );
  });

  test('estimateRawBytes is the sum of the regular files that would be stored, hard links once', async () => {
    const tree = await buildFullTree(join(work));
    try {
      const described = await describeTree(tree.root);
      let expected = 0;
      for (const entry of described.values())
        if (entry.type === 'file' && entry.sameAs === undefined) expected += entry.size ?? 0;
      assert.equal(await source({ paths: [tree.root] }).estimateRawBytes(context()), expected);
      const large = described.get(tree.paths.large)?.size ?? 0;
      assert.ok(large > 0);
      const withoutLarge = await source({ paths: [tree.root], exclude: [tree.paths.large] }).estimateRawBytes(
        context(),
      );
      assert.equal(withoutLarge, expected - large);
      assert.equal(await source({ paths: [join(work, 'no-such-dir')] }).estimateRawBytes(context()), 0);
    } finally {
      await tree.cleanup();
    }
  });
});

describe('files source: as an unprivileged user', () => {
  let work: string;
  before(async () => {
    work = await makeTempDir();
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('an unreadable file is left out and an unreadable directory is stored empty, each with a warning', async () => {
    const root = join(work, 'tree');
    await mkdir(join(root, 'locked'), { recursive: true, mode: 0o755 });
    await mkdir(join(root, 'open'), { mode: 0o755 });
    await writeFile(join(root, 'locked', 'inner.txt'), 'hidden\n');
    await chmod(join(root, 'locked'), 0o700);
    await writeFile(join(root, 'open', 'file.txt'), 'open\n', { mode: 0o644 });
    await writeFile(join(root, 'public.txt'), 'public\n', { mode: 0o644 });
    await writeFile(join(root, 'secret.txt'), 'secret\n', { mode: 0o600 });
    // Listable but not enterable: names can be read, the entries cannot be looked at.
    await mkdir(join(root, 'listable'), { mode: 0o755 });
    await writeFile(join(root, 'listable', 'inner.txt'), 'unreachable\n');
    await chmod(join(root, 'listable'), 0o744);
    const result = await runAsNobody({ paths: [root], checkPaths: [join(root, 'locked')] });

    const names = result.index.map((e) => e.path.slice(archiveName(root).length + 1));
    assert.deepEqual(names, ['', 'listable', 'locked', 'open', 'open/file.txt', 'public.txt']);
    assert.deepEqual(result.facts.warnings, [
      `cannot read ${join(root, 'listable', 'inner.txt')} (permission denied): it was left out of the backup.`,
      `cannot read directory ${join(root, 'locked')} (permission denied): it was stored without its contents.`,
      `cannot read ${join(root, 'secret.txt')} (permission denied): it was left out of the backup.`,
    ]);
    assert.equal(result.facts.files, 6);
    const tarPath = join(work, 'nobody.tar');
    await writeFile(tarPath, result.tar);
    const restored = join(work, 'restored');
    await mkdir(restored);
    extract(tarPath, restored);
    assert.deepEqual((await readdir(join(restored, root))).sort(), ['listable', 'locked', 'open', 'public.txt']);
    assert.deepEqual(await readdir(join(restored, root, 'listable')), []);
    assert.deepEqual(await readdir(join(restored, root, 'locked')), []);
    assert.deepEqual(result.findings, [
      {
        fatal: true,
        message: `source app: cannot read directory ${join(root, 'locked')} (permission denied); run backproof as a user that can read it`,
      },
    ]);
  });

  /** Runs the source as `nobody` (root reads everything) and returns what it produced. */
  async function runAsNobody(input: { paths: string[]; checkPaths: string[] }) {
    const script = join(work, 'run-as-nobody.mjs');
    const sourceModule = new URL('../../src/sources/files.ts', import.meta.url).href;
    await writeFile(
      script,
      `const { createFilesSource } = await import(${JSON.stringify(sourceModule)});
const input = JSON.parse(process.argv[2]);
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const ctx = { signal: new AbortController().signal, log: quiet, scratchDir: '/nonexistent' };
const options = { name: 'app', exclude: [], oneFileSystem: false };
const findings = await createFilesSource({ ...options, paths: input.checkPaths }).check(ctx);
const collect = async (stream) => { const chunks = []; for await (const c of stream) chunks.push(c); return Buffer.concat(chunks); };
for await (const c of createFilesSource({ ...options, paths: input.paths }).components(ctx)) {
  const [data, index] = await Promise.all([collect(c.data), collect(c.index)]);
  const facts = await c.facts;
  process.stdout.write(JSON.stringify({ tar: data.toString('base64'), index: index.toString('utf8'), facts, findings }));
}
`,
    );
    // tsx is resolved from the repository, which `nobody` may read.
    const repository = new URL('../..', import.meta.url).pathname;
    const command = [process.execPath, '--import', 'tsx', script, JSON.stringify(input)];
    const run = spawnSync('runuser', ['-u', 'nobody', '--', ...command], { cwd: repository, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const output = JSON.parse(run.stdout) as { tar: string; index: string; facts: ComponentFacts; findings: unknown };
    const index = output.index.trimEnd().split('\n');
    return {
      tar: Buffer.from(output.tar, 'base64'),
      index: index.map((line) => JSON.parse(line) as IndexEntry),
      facts: output.facts,
      findings: output.findings,
    };
  }
});

describe('files source: a file over 8 GiB', () => {
  let work: string;
  let mounted: string | undefined;
  before(async () => {
    work = await makeTempDir();
  });
  after(async () => {
    if (mounted) execFileSync('umount', [mounted]);
    await rm(work, { recursive: true, force: true });
  });

  test('a 9 GiB sparse file is stored whole, with its size in a pax header', async () => {
    const dir = join(work, 'huge');
    await mkdir(dir);
    // On tmpfs a hole reads as the shared zero page; on ext4 the first read of a fresh sparse file
    // fills gigabytes of page cache first (seconds of system time that prove nothing more).
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
    mounted = dir;
    const size = 9 * 1024 ** 3;
    execFileSync('truncate', ['-s', '9G', join(dir, 'huge.sparse')]);
    await writeFile(join(dir, 'z-after.txt'), 'after the huge file\n');
    const component = await onlyComponent({ paths: [dir] });
    const indexText = readAll(component.index);
    // Keep the head and the tail of the stream; everything between them is the file's zeros.
    const keep = 64 * 1024;
    let head = Buffer.alloc(0);
    let tail = Buffer.alloc(0);
    let total = 0;
    const rssBefore = process.memoryUsage.rss();
    let rssPeak = rssBefore;
    for await (const chunk of component.data as AsyncIterable<Buffer>) {
      if (head.length < keep) head = Buffer.concat([head, chunk.subarray(0, keep - head.length)]);
      tail = Buffer.concat([tail, chunk]).subarray(-keep);
      total += chunk.length;
      if (total % (256 * 1024 * 1024) < chunk.length) rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
    }
    // Memory stays flat: the file is streamed, never held.
    assert.ok(rssPeak - rssBefore < 256 * 1024 * 1024, `memory grew by ${rssPeak - rssBefore} bytes`);
    const index = (await indexText)
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as IndexEntry);
    const facts = await component.facts;
    assert.deepEqual(facts.warnings, []);
    const huge = index.find((e) => e.path.endsWith('huge.sparse'));
    assert.equal(huge?.size, size);
    // SHA-256 of 9 GiB of zeros (head -c 9663676416 /dev/zero | sha256sum).
    assert.equal(huge?.sha256, 'cfbee1b311082090f6417b1026f9f83b2b3db46bc20ec64dff238d202c3782a6');
    assert.ok(total > size && total < size + 16 * 1024, `stream of ${total} bytes`);
    assert.equal(total % 512, 0);

    // The same bytes as a sparse file on disk, listed by GNU tar (which seeks over the content).
    const tarPath = join(work, 'huge.tar');
    const handle = await open(tarPath, 'w');
    await handle.write(head, 0, head.length, 0);
    await handle.write(tail, 0, tail.length, total - tail.length);
    await handle.close();
    const listing = execFileSync('tar', ['--numeric-owner', '-tvf', tarPath], { encoding: 'utf8' });
    const sizes = listing
      .trimEnd()
      .split('\n')
      .map((line) => line.split(/\s+/)[2]);
    assert.deepEqual(sizes, ['0', String(size), '20']);
    assert.match(listing, /huge\.sparse\n.*z-after\.txt\n$/);
  });
});

describe('files source: failures', () => {
  let work: string;
  before(async () => {
    work = await makeTempDir();
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('a missing path is a fatal preflight finding and fails the component with a SourceError', async () => {
    const missing = join(work, 'does-not-exist');
    const findings = await source({ paths: [missing] }).check(context());
    assert.deepEqual(findings, [{ fatal: true, message: `source app: path ${missing} does not exist` }]);

    const component = await onlyComponent({ paths: [missing] });
    const expected = { name: 'SourceError', message: `source app: path ${missing} does not exist` };
    await assert.rejects(readAll(component.data), expected);
    await assert.rejects(component.facts, (error) => error instanceof SourceError && error.source === 'app');
    await assert.rejects(component.facts, expected);
    assert.ok(component.index.destroyed);
  });

  test('check() accepts existing paths and refuses a directory it cannot list', async () => {
    const ok = join(work, 'check-ok');
    await mkdir(ok);
    assert.deepEqual(await source({ paths: [ok] }).check(context()), []);
  });

  test('a file that grows while read is cut at its header size and flagged', async () => {
    const { path, original } = await bigFile('grows');
    const result = await archive(work, { paths: [path] }, (received) => {
      if (received < 2 * MiB || paused.has('grows')) return undefined;
      paused.add('grows');
      return appendFile(path, Buffer.alloc(MiB, 1));
    });
    const entry = onlyFile(result.index);
    assert.equal(entry.size, original.length);
    assert.equal(entry.changed, true);
    assert.deepEqual(result.facts.warnings, [
      `changed while read: ${archiveName(path)} (size ${original.length} -> ${original.length + MiB}, mtime ${entry.mtime} -> ${await mtimeIso(path)})`,
    ]);
    const restored = await restoreFile(result.tarPath, path);
    assert.ok(restored.equals(original));
    assert.equal(entry.sha256, sha256sum(restoredPath(path)));
  });

  test('a file that shrinks while read is padded with zeros to its header size and flagged', async () => {
    const { path, original } = await bigFile('shrinks');
    const kept = 24 * MiB;
    const result = await archive(work, { paths: [path] }, (received) => {
      if (received < 2 * MiB || paused.has('shrinks')) return undefined;
      paused.add('shrinks');
      return truncate(path, kept);
    });
    const entry = onlyFile(result.index);
    assert.equal(entry.size, original.length);
    assert.equal(entry.changed, true);
    assert.equal(result.facts.warnings.length, 1);
    assert.match(
      result.facts.warnings[0] as string,
      new RegExp(
        `^changed while read: ${escapeRegExp(archiveName(path))} \\(size ${original.length} -> ${kept}, mtime `,
      ),
    );
    const restored = await restoreFile(result.tarPath, path);
    assert.equal(restored.length, original.length);
    assert.ok(restored.subarray(0, kept).equals(original.subarray(0, kept)));
    assert.ok(restored.subarray(kept).equals(Buffer.alloc(original.length - kept)));
    assert.equal(entry.sha256, sha256sum(restoredPath(path)));
  });

  test('a file rewritten in place while read (same size, new mtime) is flagged', async () => {
    const { path, original } = await bigFile('rewritten');
    const result = await archive(work, { paths: [path] }, (received) => {
      if (received < 2 * MiB || paused.has('rewritten')) return undefined;
      paused.add('rewritten');
      return (async () => {
        const handle = await open(path, 'r+');
        await handle.write(Buffer.from('CHANGED'), 0, 7, 40 * MiB);
        await handle.close();
        await utimes(path, new Date(), new Date('2030-01-01T00:00:00.000Z'));
      })();
    });
    const entry = onlyFile(result.index);
    assert.equal(entry.changed, true);
    assert.deepEqual(result.facts.warnings, [
      `changed while read: ${archiveName(path)} (mtime ${entry.mtime} -> 2030-01-01T00:00:00.000Z)`,
    ]);
    const restored = await restoreFile(result.tarPath, path);
    assert.equal(restored.length, original.length);
    assert.equal(restored.subarray(40 * MiB, 40 * MiB + 7).toString(), 'CHANGED');
  });

  test('entries that vanish during the walk are skipped with a warning naming them', async () => {
    const dir = join(work, 'vanish');
    await mkdir(join(dir, 'c-dir'), { recursive: true });
    await writeFile(join(dir, 'a-large.bin'), Buffer.alloc(8 * MiB, 7));
    await writeFile(join(dir, 'b-file.txt'), 'soon gone\n');
    await writeFile(join(dir, 'c-dir', 'inner.txt'), 'soon gone too\n');
    await writeFile(join(dir, 'd-stays.txt'), 'stays\n');
    let deleted = false;
    const result = await archive(work, { paths: [dir] }, (received) => {
      if (received < MiB || deleted) return undefined;
      deleted = true;
      return (async () => {
        await rm(join(dir, 'b-file.txt'));
        await rm(join(dir, 'c-dir'), { recursive: true });
      })();
    });
    assert.deepEqual(
      result.index.map((e) => e.path.slice(archiveName(dir).length + 1)),
      ['', 'a-large.bin', 'd-stays.txt'],
    );
    assert.deepEqual(result.facts.warnings, [
      `${join(dir, 'b-file.txt')} vanished during the walk and was skipped.`,
      `${join(dir, 'c-dir')} vanished during the walk and was skipped.`,
    ]);
    const restored = join(work, 'vanish-restored');
    await mkdir(restored);
    extract(result.tarPath, restored);
    assert.deepEqual((await readdir(join(restored, dir))).sort(), ['a-large.bin', 'd-stays.txt']);
  });

  test('a FIFO that no one writes is stored without being opened, and a run does not hang on it', async () => {
    const dir = join(work, 'fifo');
    await mkdir(dir);
    execFileSync('mkfifo', [join(dir, 'pipe')]);
    const { index, tarPath } = await archive(work, { paths: [dir] });
    assert.deepEqual(
      index.map((e) => e.type),
      ['directory', 'fifo'],
    );
    assert.deepEqual(
      (await listTar(tarPath)).map((e) => e.type),
      ['directory', 'fifo'],
    );
  });

  test('openRegularFile skips, without blocking, a FIFO or a symlink found where a file was', async () => {
    const dir = join(work, 'replaced');
    await mkdir(dir);
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    await writeFile(join(dir, 'real'), 'real\n');
    await symlink('real', join(dir, 'link'));
    assert.deepEqual(openRegularFile(join(dir, 'fifo')), {
      skipped: `${join(dir, 'fifo')} was replaced by something that is not a regular file during the walk and was skipped.`,
    });
    assert.deepEqual(openRegularFile(join(dir, 'link')), {
      skipped: `${join(dir, 'link')} was replaced by a symlink during the walk and was skipped.`,
    });
    assert.deepEqual(openRegularFile(join(dir, 'gone')), {
      skipped: `${join(dir, 'gone')} vanished during the walk and was skipped.`,
    });
  });

  test('an I/O error other than a permission problem fails the component and destroys its streams', async () => {
    // Reading /proc/self/mem at offset 0 fails with EIO: a real I/O error on a "regular file".
    const component = await onlyComponent({ paths: ['/proc/self/mem'] });
    const indexText = readAll(component.index);
    const expected = { name: 'SourceError', message: /^source app: cannot read \/proc\/self\/mem: EIO/ };
    await assert.rejects(readAll(component.data), expected);
    await assert.rejects(component.facts, expected);
    await assert.rejects(indexText, expected);
    await assert.rejects(component.rawMeasured as Promise<Measured>, expected);
  });

  test('a consumer that closes the data stream early makes facts and rawMeasured reject, and the worker stops', async () => {
    const dir = join(work, 'closed');
    await mkdir(dir);
    await writeFile(join(dir, 'large.bin'), Buffer.alloc(16 * MiB));
    const threadsBefore = await threadCount();
    const component = await onlyComponent({ paths: [dir] });
    component.index.resume();
    let threadsWhileReading = 0;
    for await (const _chunk of component.data) {
      threadsWhileReading = await threadCount();
      break; // closes it
    }
    const expected = {
      name: 'SourceError',
      message: 'source app: the archive was not read to the end: its data stream was closed',
    };
    await assert.rejects(component.facts, expected);
    await assert.rejects(component.rawMeasured as Promise<Measured>, expected);
    // The worker (and, under tsx, the loader-hooks thread it starts) runs beside this thread.
    assert.ok(threadsWhileReading > threadsBefore, 'the archive is written by a worker thread');
    assert.equal(await threadCount(), threadsBefore, 'the worker thread was left behind');
  });

  test('an abort stops the walk, closes the open file and destroys both streams with the reason', async () => {
    const dir = join(work, 'abort');
    await mkdir(dir);
    await writeFile(join(dir, 'a-large.bin'), Buffer.alloc(32 * MiB, 3));
    for (let i = 0; i < 50; i++) await writeFile(join(dir, `b-${i}.txt`), `${i}\n`);
    const openFdsBefore = (await readdir('/proc/self/fd')).length;
    const threadsBefore = await threadCount();
    const controller = new AbortController();
    const component = await onlyComponent({ paths: [dir] }, context(controller.signal));
    const indexText = readAll(component.index);
    const reason = new Error('stop now');
    let received = 0;
    await assert.rejects(
      (async () => {
        for await (const chunk of component.data) {
          received += (chunk as Buffer).length;
          controller.abort(reason);
        }
      })(),
      (error) => error === reason,
    );
    await assert.rejects(component.facts, (error) => error === reason);
    await assert.rejects(indexText, (error) => error === reason);
    assert.ok(received < 32 * MiB, `read ${received} bytes after the abort`);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal((await readdir('/proc/self/fd')).length, openFdsBefore, 'a file descriptor was left open');
    assert.equal(await threadCount(), threadsBefore, 'the worker thread was left behind');
  });

  test('a signal aborted before the start fails the component at once', async () => {
    const controller = new AbortController();
    const reason = new Error('already stopped');
    controller.abort(reason);
    const component = await onlyComponent({ paths: [work] }, context(controller.signal));
    await assert.rejects(readAll(component.data), (error) => error === reason);
    await assert.rejects(component.facts, (error) => error === reason);
  });

  const MiB = 1024 * 1024;
  const paused = new Set<string>();

  async function bigFile(name: string): Promise<{ path: string; original: Buffer }> {
    const dir = join(work, name);
    await mkdir(dir);
    const path = join(dir, 'app.log');
    const original = Buffer.alloc(48 * MiB);
    for (let i = 0; i < original.length; i += 4096) original.writeUInt32BE(i, i);
    await writeFile(path, original);
    await utimes(path, new Date(), new Date('2025-11-04T03:00:00.123Z'));
    return { path, original };
  }

  function onlyFile(index: IndexEntry[]): IndexEntry {
    const files = index.filter((e) => e.type === 'file');
    assert.equal(files.length, 1);
    return files[0] as IndexEntry;
  }

  function restoredPath(path: string): string {
    return join(work, 'restored-files', path);
  }

  async function restoreFile(tarPath: string, path: string): Promise<Buffer> {
    await mkdir(join(work, 'restored-files'), { recursive: true });
    extract(tarPath, join(work, 'restored-files'));
    return readFile(restoredPath(path));
  }

  async function mtimeIso(path: string): Promise<string> {
    const stats = await stat(path, { bigint: true });
    return new Date(Number(stats.mtimeNs / 1_000_000n)).toISOString();
  }

  function escapeRegExp(text: string): string {
    return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
});

describe('files source: a worker booted ahead of need (warmUp)', () => {
  let work: string;
  before(async () => {
    work = await makeTempDir();
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  /** Polls the thread count until `done` holds (threads start and end asynchronously). */
  async function threadsOnceThey(done: (count: number) => boolean): Promise<number> {
    let count = await threadCount();
    for (let i = 0; i < 800 && !done(count); i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      count = await threadCount();
    }
    return count;
  }

  test('boots one worker before any read, which the next component takes: no second worker, none left after', async () => {
    const dir = join(work, 'warm');
    await mkdir(dir);
    for (let i = 0; i < 20; i++) await writeFile(join(dir, `file-${i}.txt`), `${i}\n`.repeat(i));
    await writeFile(join(dir, 'large.bin'), Buffer.alloc(4 * 1024 * 1024, 7));
    const threadsBefore = await threadCount();
    // What one worker adds (under tsx, with its loader thread), seen while a component without warm-up is read.
    let oneWorker = 0;
    await archive(work, { paths: [dir] }, async () => {
      oneWorker = Math.max(oneWorker, (await threadCount()) - threadsBefore);
      return undefined;
    });
    assert.ok(oneWorker > 0, 'the archive is written by a worker thread');
    await threadsOnceThey((count) => count === threadsBefore);

    const warmed = source({ paths: [dir] });
    warmed.warmUp?.();
    warmed.warmUp?.(); // a second call boots no second worker
    const threadsWarm = threadsBefore + oneWorker;
    await threadsOnceThey((count) => count >= threadsWarm);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(await threadCount(), threadsWarm, 'warmUp should boot exactly one worker, once');

    const threadsWhileReading: number[] = [];
    const result = await archive(work, { paths: [dir] }, async (received) => {
      if (received > 0) threadsWhileReading.push(await threadCount());
      return undefined;
    });
    assert.ok(threadsWhileReading.length > 0);
    assert.ok(
      threadsWhileReading.every((count) => count === threadsWarm),
      `threads while reading: ${threadsWhileReading.join(', ')}, with the warmed-up worker: ${threadsWarm}`,
    );
    assert.equal(result.index.filter((entry) => entry.type === 'file').length, 21);
    const large = result.index.find((entry) => entry.path.endsWith('/large.bin'));
    assert.equal(large?.sha256, sha256sum(join(dir, 'large.bin')));
    assert.equal(await threadsOnceThey((count) => count === threadsBefore), threadsBefore, 'a worker was left behind');
  });

  test('an unused warmed-up worker does not keep the process alive', async () => {
    const moduleUrl = new URL('../../src/sources/files.ts', import.meta.url).href;
    // The child boots the worker, shows it runs, then has nothing left to do: it must exit at once,
    // not when the spare's idle limit (a minute) lets the worker go.
    const script = `
      import { readdirSync } from 'node:fs';
      const { warmUpArchiveWorker } = await import(${JSON.stringify(moduleUrl)});
      const before = readdirSync('/proc/self/task').length;
      warmUpArchiveWorker();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      console.log(readdirSync('/proc/self/task').length > before ? 'worker running' : 'no worker');
      console.error(String(Date.now()));
    `;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 55_000,
    });
    assert.equal(child.signal, null, 'the process was still alive after 55 s: the idle worker kept it alive');
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout.trim(), 'worker running');
    const printedAt = Number(child.stderr.trim().split('\n').at(-1));
    const exitedAfter = Date.now() - printedAt;
    assert.ok(exitedAfter < 20_000, `the process lingered ${exitedAfter} ms after its work`);
  });
});
