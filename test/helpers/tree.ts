// Fixture trees for the files source and for restores: every kind of entry a server's disk holds,
// and a strict description of a tree (type, content, mode, owner, mtime to the nanosecond, link
// text, device numbers, hard-link groups) to compare an original with what came back.
// Needs root: it chowns, makes device nodes and a socket.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmod,
  lchown,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A temporary directory that every user may enter (mkdtemp makes it 0700), for tests that run parts as `nobody`. */
export async function makeTempDir(prefix = 'backproof-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await chmod(dir, 0o755);
  return dir;
}

export interface FullTree {
  /** The directory to back up. */
  root: string;
  /** Paths (relative to root) of the entries tests look at. */
  paths: {
    readme: string;
    nanoFile: string;
    empty: string;
    emptyDir: string;
    setuid: string;
    setgidDir: string;
    stickyDir: string;
    relativeLink: string;
    unicodeLink: string;
    longLink: string;
    danglingLink: string;
    hardLinks: string[];
    large: string;
    space: string;
    unicode: string;
    newline: string;
    longName: string;
    deepFile: string;
    fifo: string;
    charDevice: string;
    blockDevice: string;
    socket: string;
    owned: string;
    bigUid: string;
  };
  /** Stops the socket's server (which removes the socket) and deletes the tree. */
  cleanup(): Promise<void>;
}

/** 2001-02-03T04:05:06.789Z, the millisecond mtime most entries get. */
export const FIXTURE_MTIME_SECONDS = 981173106.789;
/** A mtime with all nine decimals, set on `paths.nanoFile`. */
export const FIXTURE_NANO_MTIME = '1234567890.123456789';

/**
 * Builds, under a new directory in `parent` (default: a fresh temp dir), a tree with every kind of
 * entry: files of several sizes (one larger than 1 MiB), an empty file and directory, setuid,
 * setgid and sticky modes, relative/unicode/long/dangling symlinks, three hard links to one file,
 * names with a space, unicode and a newline, a 150-character name, a path over 255 bytes, a FIFO, a
 * character and a block device, a listening unix socket, and files owned by 1234:5678 and by a uid
 * too large for ustar. Mtimes are old, with milliseconds (one has nanoseconds); directories' last.
 */
export async function buildFullTree(parent?: string): Promise<FullTree> {
  const base = parent ?? (await makeTempDir());
  const root = join(base, 'tree');
  const longName = `${'n'.repeat(146)}.txt`;
  const deepDir = join('deep', 'd'.repeat(90), 'e'.repeat(90), 'f'.repeat(90));
  const paths: FullTree['paths'] = {
    readme: 'docs/readme.txt',
    nanoFile: 'docs/nanoseconds.txt',
    empty: 'docs/empty.txt',
    emptyDir: 'empty-dir',
    setuid: 'bin/setuid-tool',
    setgidDir: 'shared',
    stickyDir: 'tmp',
    relativeLink: 'links/relative',
    unicodeLink: 'links/ünïcødé',
    longLink: 'links/long',
    danglingLink: 'links/dangling',
    hardLinks: ['data/first.bin', 'data/second.bin', 'other/third.bin'],
    large: 'data/large.bin',
    space: 'names/with space.txt',
    unicode: 'names/ünïcødé-日本語.txt',
    newline: 'names/new\nline.txt',
    longName: `names/${longName}`,
    deepFile: join(deepDir, 'file.txt'),
    fifo: 'special/fifo',
    charDevice: 'special/null',
    blockDevice: 'special/block',
    socket: 'special/socket',
    owned: 'owned/file.txt',
    bigUid: 'owned/big-uid.txt',
  };
  const at = (relative: string): string => join(root, relative);
  for (const dir of ['docs', 'empty-dir', 'bin', 'shared', 'tmp', 'links', 'data', 'other', 'names', deepDir]) {
    await mkdir(at(dir), { recursive: true });
  }
  for (const dir of ['special', 'owned']) await mkdir(at(dir));

  await writeFile(at(paths.readme), 'Read me.\n');
  await writeFile(at(paths.nanoFile), 'nanoseconds\n');
  await writeFile(at(paths.empty), '');
  await writeFile(at(paths.setuid), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  await chmod(at(paths.setuid), 0o4755);
  await chmod(at(paths.setgidDir), 0o2775);
  await chmod(at(paths.stickyDir), 0o1777);
  await writeFile(at('shared/group.txt'), 'shared\n');
  await symlink('../docs/readme.txt', at(paths.relativeLink));
  await symlink('../names/ünïcødé-日本語.txt', at(paths.unicodeLink));
  await symlink(`/nowhere/${'x'.repeat(120)}/far`, at(paths.longLink));
  await symlink('does-not-exist', at(paths.danglingLink));
  await writeFile(at(paths.hardLinks[0] as string), randomBytes(70_000));
  for (const other of paths.hardLinks.slice(1)) await link(at(paths.hardLinks[0] as string), at(other));
  await writeFile(at(paths.large), randomBytes(3 * 1024 * 1024 + 123));
  for (const size of [511, 512, 513, 1024 * 1024]) await writeFile(at(`data/size-${size}.bin`), randomBytes(size));
  await writeFile(at('data/private.key'), 'secret\n', { mode: 0o600 });
  await writeFile(at('data/no-permissions'), 'none\n', { mode: 0 });
  await chmod(at('data/no-permissions'), 0);
  await writeFile(at(paths.space), 'space\n');
  await writeFile(at(paths.unicode), 'unicode\n');
  await writeFile(at(paths.newline), 'newline\n');
  // UTF-16 order puts the emoji (a surrogate pair) first; UTF-8 byte order puts U+FF21 first.
  await writeFile(at('names/\u{1F600}-emoji.txt'), 'emoji\n');
  await writeFile(at('names/\uFF21-fullwidth.txt'), 'fullwidth\n');
  await writeFile(at(paths.longName), 'long name\n');
  await writeFile(at(paths.deepFile), 'deep\n');
  execFileSync('mkfifo', [at(paths.fifo)]);
  execFileSync('mknod', [at(paths.charDevice), 'c', '1', '3']);
  execFileSync('mknod', [at(paths.blockDevice), 'b', '259', '70000']);
  const server = await listenOnSocket(at(paths.socket));
  await writeFile(at(paths.owned), 'owned\n');
  await lchown(at(paths.owned), 1234, 5678);
  await lchown(at(paths.relativeLink), 1234, 5678);
  await writeFile(at(paths.bigUid), 'big uid\n');
  await lchown(at(paths.bigUid), 3_000_000, 3_000_001);

  await setOldMtimes(root);
  execFileSync('touch', ['-h', '-d', `@${FIXTURE_NANO_MTIME}`, at(paths.nanoFile)]);
  return {
    root,
    paths,
    async cleanup() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(parent === undefined ? base : root, { recursive: true, force: true });
    },
  };
}

function listenOnSocket(path: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref(); // a test that forgets cleanup must not hang the runner
    server.once('error', reject);
    server.listen(path, () => resolve(server));
  });
}

/** Every entry gets the fixture mtime, children before their directory (which their creation touched). */
async function setOldMtimes(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    const stats = await lstat(path);
    if (stats.isDirectory()) await setOldMtimes(path);
    if (!stats.isSocket()) execFileSync('touch', ['-h', '-d', `@${FIXTURE_MTIME_SECONDS}`, path]);
  }
  execFileSync('touch', ['-h', '-d', `@${FIXTURE_MTIME_SECONDS}`, dir]);
}

export interface TreeEntry {
  type: 'file' | 'directory' | 'symlink' | 'fifo' | 'char-device' | 'block-device' | 'socket';
  mode: string;
  uid: number;
  gid: number;
  /** Nanoseconds since the epoch, as a string. */
  mtime: string;
  size?: number;
  sha256?: string;
  link?: string;
  rdev?: string;
  /** The first path (in sorted order) that shares this entry's inode, for files with hard links. */
  sameAs?: string;
}

/**
 * Every entry under `root` (not root itself), keyed by its path relative to root, sorted.
 * `skipSockets` leaves sockets out (tar cannot hold them).
 */
export async function describeTree(
  root: string,
  options: { skipSockets?: boolean } = {},
): Promise<Map<string, TreeEntry>> {
  const entries = new Map<string, TreeEntry>();
  const firstPathOfInode = new Map<string, string>();
  const visit = async (dir: string, prefix: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      const relative = prefix === '' ? name : `${prefix}/${name}`;
      const stats = await lstat(path, { bigint: true });
      const type = typeOf(stats);
      if (type === 'socket' && options.skipSockets) continue;
      const entry: TreeEntry = {
        type,
        mode: (Number(stats.mode) & 0o7777).toString(8).padStart(4, '0'),
        uid: Number(stats.uid),
        gid: Number(stats.gid),
        mtime: stats.mtimeNs.toString(),
      };
      if (type === 'file') {
        entry.size = Number(stats.size);
        entry.sha256 = createHash('sha256')
          .update(await readFile(path))
          .digest('hex');
        if (stats.nlink > 1n) {
          const key = `${stats.dev}:${stats.ino}`;
          const first = firstPathOfInode.get(key);
          if (first === undefined) firstPathOfInode.set(key, relative);
          else entry.sameAs = first;
        }
      }
      if (type === 'symlink') entry.link = await readlink(path);
      if (type === 'char-device' || type === 'block-device') entry.rdev = stats.rdev.toString();
      entries.set(relative, entry);
      if (type === 'directory') await visit(path, relative);
    }
  };
  await visit(root, '');
  return entries;
}

function typeOf(stats: {
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isFIFO(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}): TreeEntry['type'] {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isFIFO()) return 'fifo';
  if (stats.isCharacterDevice()) return 'char-device';
  if (stats.isBlockDevice()) return 'block-device';
  return 'socket';
}

/** SHA-256 of a file, as `sha256sum` prints it (the tool, not node:crypto, so tests check against an outside reference). */
export function sha256sum(path: string): string {
  // Through stdin: sha256sum escapes names with a newline or backslash in its output.
  const output = execFileSync('sh', ['-c', 'sha256sum < "$1"', 'sh', path], { encoding: 'utf8' });
  return output.split(' ')[0] as string;
}
