// Compares two trees entry by entry: type, content, mode, owner, mtime (to the millisecond where the
// filesystem keeps it), symlink text and hard-link identity. Returns the differences, empty when equal.
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

interface Entry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  size: number;
  sha256?: string;
  link?: string;
  /** Paths sharing the inode, within the tree. */
  inodeKey: string;
}

async function collect(root: string): Promise<Map<string, Entry>> {
  const entries = new Map<string, Entry>();
  const walk = async (dir: string, rel: string) => {
    for (const name of (await readdir(dir)).sort()) {
      const full = join(dir, name);
      const path = rel ? `${rel}/${name}` : name;
      const info = await lstat(full);
      const type = info.isFile()
        ? 'file'
        : info.isDirectory()
          ? 'dir'
          : info.isSymbolicLink()
            ? 'symlink'
            : info.isFIFO()
              ? 'fifo'
              : info.isCharacterDevice()
                ? 'char'
                : info.isBlockDevice()
                  ? 'block'
                  : 'socket';
      const entry: Entry = {
        type,
        mode: info.mode & 0o7777,
        uid: info.uid,
        gid: info.gid,
        mtimeMs: Math.floor(info.mtimeMs),
        size: type === 'file' ? info.size : 0,
        inodeKey: `${info.dev}:${info.ino}`,
      };
      if (type === 'file')
        entry.sha256 = createHash('sha256')
          .update(await readFile(full))
          .digest('hex');
      if (type === 'symlink') entry.link = await readlink(full);
      entries.set(path, entry);
      if (type === 'dir') await walk(full, path);
    }
  };
  await walk(root, '');
  return entries;
}

export async function compareTrees(
  expectedRoot: string,
  actualRoot: string,
  options: { ignore?: (path: string) => boolean } = {},
): Promise<string[]> {
  const expected = await collect(expectedRoot);
  const actual = await collect(actualRoot);
  const problems: string[] = [];
  const ignore = options.ignore ?? (() => false);
  for (const [path, want] of expected) {
    if (ignore(path)) continue;
    const got = actual.get(path);
    if (!got) {
      problems.push(`${path}: missing`);
      continue;
    }
    for (const key of ['type', 'mode', 'uid', 'gid', 'size', 'sha256', 'link'] as const) {
      if (want[key] !== got[key]) problems.push(`${path}: ${key} ${String(want[key])} != ${String(got[key])}`);
    }
    // Directories' mtimes change when their children are extracted after them; tar restores them last.
    if (want.type !== 'symlink' && want.mtimeMs !== got.mtimeMs)
      problems.push(`${path}: mtime ${want.mtimeMs} != ${got.mtimeMs}`);
  }
  for (const path of actual.keys()) if (!expected.has(path) && !ignore(path)) problems.push(`${path}: unexpected`);
  // Hard links: paths that share an inode in the original share one in the copy.
  const groups = new Map<string, string[]>();
  for (const [path, e] of expected)
    if (e.type === 'file') groups.set(e.inodeKey, [...(groups.get(e.inodeKey) ?? []), path]);
  for (const paths of groups.values()) {
    if (paths.length < 2) continue;
    const keys = new Set(paths.map((p) => actual.get(p)?.inodeKey));
    if (keys.size !== 1) problems.push(`hard links ${paths.join(', ')} are no longer one file`);
  }
  return problems;
}
