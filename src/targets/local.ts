// Target `local`: a directory on a local (or locally mounted) filesystem. Writes are durable when
// `put` resolves: the file and its directory are fsynced. Verification re-reads the object: `put`
// re-reads each part once it is flushed to disk (local-writer.ts) and returns the result, and
// `verifyObject` re-reads a whole object.
import { randomBytes } from 'node:crypto';
import { type FileHandle, link, mkdir, open, opendir, rename, rmdir, stat, statfs, unlink } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TargetError } from '../lib/errors.js';
import { measureFile } from '../pipeline/measure.js';
import { ObjectFileWriter } from './local-writer.js';
import type { FreeSpace, ObjectStat, Target } from './types.js';

export interface LocalTargetOptions {
  name: string;
  /** Absolute path of the target's root directory. It must exist: a missing mount point is an error, not created. */
  path: string;
  /** A failing optional target gives `warning` instead of `failure`. Default false. */
  optional: boolean;
}

/** Errors that retrying cannot fix. */
const PERMANENT_CODES = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT', 'ENOTDIR', 'EISDIR', 'EEXIST']);

export function createLocalTarget(options: LocalTargetOptions): Target {
  const root = resolve(options.path);
  const name = options.name;

  const pathOf = (key: string): string => {
    const full = join(root, key);
    if (key.startsWith('/') || key.split('/').includes('..') || !full.startsWith(root + sep)) {
      throw new TargetError(name, `refusing key outside the target root: ${JSON.stringify(key)}`, { permanent: true });
    }
    return full;
  };

  const fail = (action: string, key: string, error: unknown): TargetError => {
    if (error instanceof TargetError) return error;
    const code = (error as NodeJS.ErrnoException).code ?? '';
    const hint =
      code === 'ENOSPC'
        ? ' (the disk is full: free space or lower retention)'
        : code === 'EACCES' || code === 'EPERM'
          ? ` (check that the user running backproof may write to ${root})`
          : code === 'EROFS'
            ? ' (the filesystem is read-only)'
            : '';
    return new TargetError(name, `${action} ${key} failed: ${(error as Error).message}${hint}`, {
      permanent: PERMANENT_CODES.has(code),
      cause: error,
    });
  };

  /** Creates missing directories from the root down to `dir`, fsyncing each parent whose entries changed. */
  const ensureDir = async (dir: string): Promise<void> => {
    const missing: string[] = [];
    let current = dir;
    while (current.startsWith(root + sep)) {
      try {
        await stat(current);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        missing.unshift(current);
        current = dirname(current);
      }
    }
    for (const created of missing) {
      await mkdir(created, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      });
      await fsyncDir(dirname(created));
    }
  };

  const removeEmptyParents = async (dir: string): Promise<void> => {
    let current = dir;
    while (current.startsWith(root + sep)) {
      try {
        await rmdir(current);
      } catch {
        return; // not empty (or gone): stop climbing
      }
      current = dirname(current);
    }
  };

  return {
    name,
    type: 'local',
    optional: options.optional,
    capabilities: { atomicRename: true, freeSpace: true, verification: 'reread' },
    describe: () => `local ${root}`,

    async put(key, body, { signal }) {
      const file = pathOf(key);
      let handle: FileHandle | undefined;
      let writer: ObjectFileWriter | undefined;
      let created = false;
      try {
        await assertRoot(root, name);
        await ensureDir(dirname(file));
        // `wx+`: never replaces an existing object, and lets the writer read back what it wrote.
        handle = await open(file, 'wx+', 0o600);
        created = true;
        writer = new ObjectFileWriter(handle);
        await pipeline(body, writer, { signal });
        const readBack = await writer.finish();
        await handle.close();
        handle = undefined;
        await fsyncDir(dirname(file));
        return readBack ? { verified: readBack } : {};
      } catch (error) {
        await writer?.abandon();
        await handle?.close().catch(() => {});
        // Remove what this call wrote, never an object that was there before it (EEXIST).
        if (created) await unlink(file).catch(() => {});
        if (signal.aborted) throw signal.reason;
        throw fail('writing', key, error);
      }
    },

    async get(key) {
      try {
        const handle = await open(pathOf(key), 'r');
        return handle.createReadStream({ highWaterMark: 1 << 20 }) as Readable;
      } catch (error) {
        throw fail('reading', key, error);
      }
    },

    async stat(key): Promise<ObjectStat> {
      try {
        const info = await stat(pathOf(key));
        if (!info.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
        return { bytes: info.size };
      } catch (error) {
        throw fail('stat of', key, error);
      }
    },

    async list(prefix) {
      // An unmounted backup disk is an error, not an empty target.
      await assertRoot(root, name);
      const keys: string[] = [];
      const start = pathOf(prefix.replace(/\/+$/, '') || '.');
      const walk = async (dir: string): Promise<void> => {
        let entries: Awaited<ReturnType<typeof opendir>>;
        try {
          entries = await opendir(dir);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
          throw fail('listing', relative(root, dir), error);
        }
        for await (const entry of entries) {
          const full = join(dir, entry.name);
          if (entry.isDirectory()) await walk(full);
          else keys.push(relative(root, full).split(sep).join('/'));
        }
      };
      await walk(start);
      return keys.sort();
    },

    async remove(key) {
      const file = pathOf(key);
      try {
        await unlink(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw fail('removing', key, error);
      }
      await fsyncDir(dirname(file)).catch(() => {});
      await removeEmptyParents(dirname(file));
    },

    async rename(from, to) {
      const source = pathOf(from);
      const destination = pathOf(to);
      try {
        // link + unlink: an atomic rename that refuses to replace an existing object.
        await link(source, destination);
        await unlink(source);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV') throw fail('renaming', from, error);
        // Filesystems without hard links: check, then rename (not race-free, but we hold the job lock).
        if (await exists(destination))
          throw fail('renaming', from, Object.assign(new Error('exists'), { code: 'EEXIST' }));
        await rename(source, destination).catch((e) => {
          throw fail('renaming', from, e);
        });
      }
      await fsyncDir(dirname(destination)).catch((error) => {
        throw fail('syncing directory of', to, error);
      });
    },

    async verifyObject(key, { signal }) {
      try {
        return await measureFile(pathOf(key), signal);
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        throw fail('re-reading', key, error);
      }
    },

    async free(): Promise<FreeSpace> {
      const info = await statfs(root).catch((error) => {
        throw fail('checking free space of', '.', error);
      });
      return { freeBytes: info.bavail * info.bsize, totalBytes: info.blocks * info.bsize, path: root };
    },

    async probeWritable(job) {
      const key = `${job}/.probe.tmp-${randomBytes(4).toString('hex')}`;
      const file = pathOf(key);
      try {
        await assertRoot(root, name);
        await ensureDir(dirname(file));
        const handle = await open(file, 'wx', 0o600);
        await handle.write('probe\n');
        await handle.sync();
        await handle.close();
        await unlink(file);
      } catch (error) {
        await unlink(file).catch(() => {});
        throw fail('writing a probe file', key, error);
      }
    },

    isNotFound(error) {
      let current: unknown = error;
      while (current instanceof Error) {
        if ((current as NodeJS.ErrnoException).code === 'ENOENT') return true;
        current = current.cause;
      }
      return false;
    },

    async close() {},
  };
}

async function assertRoot(root: string, name: string): Promise<void> {
  const info = await stat(root).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new TargetError(
      name,
      `${root} does not exist or is not a directory; create it (mkdir -p ${root}) or mount the backup disk there`,
      { permanent: true },
    );
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
