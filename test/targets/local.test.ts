import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { TargetError } from '../../src/lib/errors.js';
import { createLocalTarget } from '../../src/targets/local.js';
import type { Target } from '../../src/targets/types.js';
import { tampered } from './faulty.js';
import { bodyOf, readAll, sha256, targetConformance } from './suite.js';

const MiB = 1 << 20;
const never = new AbortController().signal;

async function tempRoot(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'backproof-local-'));
}

function localTarget(path: string, name = 'disk'): Target {
  return createLocalTarget({ name, path, optional: false });
}

targetConformance('local', async () => {
  const root = await tempRoot();
  return {
    target: localTarget(root),
    cleanup: () => rm(root, { recursive: true, force: true }),
    tamper: async (key, how) => {
      const file = join(root, key);
      await writeFile(file, tampered(await readFile(file), how));
    },
  };
});

/** Mounts a tmpfs with `options` on a fresh directory for the duration of `fn`, then unmounts it. */
async function withTmpfs(options: string, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempRoot();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
    try {
      await fn(dir);
    } finally {
      try {
        execFileSync('umount', [dir]);
      } catch {
        execFileSync('umount', ['-l', dir]); // something still holds it open: detach anyway
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Every regular file under `dir`, relative. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath ?? e.path, e.name).slice(dir.length + 1));
}

async function assertMissingRootError(promise: Promise<unknown>, root: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof TargetError, String(error));
    assert.equal(error.permanent, true);
    assert.equal(error.target, 'disk');
    assert.ok(error.message.includes(root), error.message);
    assert.match(error.message, /create it|mkdir -p/);
    assert.match(error.message, /mount/);
    return true;
  });
}

describe('local target', () => {
  it('refuses to write when its root is missing, and says to create or mount it', async () => {
    const parent = await tempRoot();
    try {
      const root = join(parent, 'backup-disk');
      const target = localTarget(root);
      await assertMissingRootError(target.put('app/x', bodyOf(Buffer.from('x')), { signal: never }), root);
      await assertMissingRootError(target.probeWritable('app'), root);
      assert.equal(existsSync(root), false, 'the missing root was not created');
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  it('refuses to write when its root is a file', async () => {
    const parent = await tempRoot();
    try {
      const root = join(parent, 'not-a-dir');
      await writeFile(root, 'x');
      await assertMissingRootError(localTarget(root).put('app/x', bodyOf(Buffer.from('x')), { signal: never }), root);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  it('does not report a missing root as an empty target when listing', async () => {
    // An unmounted backup disk must read as "cannot read the target", not "no committed set".
    const parent = await tempRoot();
    try {
      const root = join(parent, 'unmounted');
      await assertMissingRootError(localTarget(root).list('app/'), root);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  it('accepts a root written with a trailing slash', async () => {
    const root = await tempRoot();
    try {
      const target = localTarget(`${root}/`);
      await target.put('app/x', bodyOf(Buffer.from('x')), { signal: never });
      assert.deepEqual(await target.list('app/'), ['app/x']);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('creates objects 0600 and directories 0700, also after a rename', async () => {
    const root = await tempRoot();
    const oldMask = process.umask(0o000);
    try {
      const target = localTarget(root);
      const key = 'app/2025/11/04/20251104T030000Z-aaaaaa/main.sql.zst';
      await target.put(`${key}.tmp-1`, bodyOf(randomBytes(1000)), { signal: never });
      await target.rename?.(`${key}.tmp-1`, key);
      assert.equal((await stat(join(root, key))).mode & 0o777, 0o600);
      for (let dir = dirname(join(root, key)); dir !== root; dir = dirname(dir)) {
        assert.equal((await stat(dir)).mode & 0o777, 0o700, dir);
      }
      await target.probeWritable('other-job');
      assert.equal((await stat(join(root, 'other-job'))).mode & 0o777, 0o700);
    } finally {
      process.umask(oldMask);
      await rm(root, { recursive: true, force: true });
    }
  });

  it('refuses to overwrite an existing object with put, and leaves it intact', async () => {
    const root = await tempRoot();
    try {
      const target = localTarget(root);
      const original = randomBytes(MiB);
      await target.put('app/set/x', bodyOf(original), { signal: never });
      await assert.rejects(target.put('app/set/x', bodyOf(Buffer.from('replacement')), { signal: never }), TargetError);
      assert.equal(sha256(await readFile(join(root, 'app/set/x'))), sha256(original));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('writes nothing outside its root for a key that climbs out', async () => {
    const parent = await tempRoot();
    try {
      const root = join(parent, 'root');
      await mkdir(root);
      const target = localTarget(root);
      await assert.rejects(target.put('../escaped', bodyOf(Buffer.from('x')), { signal: never }), TargetError);
      await assert.rejects(target.put('a/../../escaped2', bodyOf(Buffer.from('x')), { signal: never }), TargetError);
      await assert.rejects(target.put(`${parent}/escaped3`, bodyOf(Buffer.from('x')), { signal: never }), TargetError);
      assert.deepEqual((await readdir(parent)).sort(), ['root']);
      assert.deepEqual(await readdir(root), []);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  it('removes empty directories up to, but not including, the root', async () => {
    const root = await tempRoot();
    try {
      const target = localTarget(root);
      await target.put('app/2025/11/04/set/a', bodyOf(Buffer.from('a')), { signal: never });
      await target.put('app/keep', bodyOf(Buffer.from('k')), { signal: never });
      await target.remove('app/2025/11/04/set/a');
      assert.deepEqual(await readdir(join(root, 'app')), ['keep']);
      await target.remove('app/keep');
      assert.equal(existsSync(root), true);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('fails a write on a full disk with a permanent "disk is full" error and no partial file', async () => {
    await withTmpfs('size=1m,mode=0700', async (root) => {
      const target = localTarget(root);
      const data = randomBytes(2 * MiB);
      await assert.rejects(target.put('app/set/big.tmp-1', bodyOf(data), { signal: never }), (error: unknown) => {
        assert.ok(error instanceof TargetError, String(error));
        assert.equal(error.permanent, true);
        assert.match(error.message, /ENOSPC/);
        assert.match(error.message, /disk is full/);
        assert.ok(error.message.includes('app/set/big.tmp-1'), error.message);
        return true;
      });
      assert.deepEqual(await filesUnder(root), []);
      assert.deepEqual(await target.list('app/'), []);
      // The disk is usable again: a small object still fits.
      await target.put('app/set/small', bodyOf(Buffer.from('fits')), { signal: never });
      assert.equal((await readAll(await target.get('app/set/small', { signal: never }))).toString(), 'fits');
    });
  });

  it('fails a write on a read-only filesystem with a permanent error that says so', async () => {
    await withTmpfs('size=1m,ro', async (root) => {
      const target = localTarget(root);
      await assert.rejects(target.put('app/x', bodyOf(Buffer.from('x')), { signal: never }), (error: unknown) => {
        assert.ok(error instanceof TargetError, String(error));
        assert.equal(error.permanent, true);
        assert.match(error.message, /read-only/);
        return true;
      });
      await assert.rejects(target.probeWritable('app'), (error: unknown) => {
        assert.ok(error instanceof TargetError && error.permanent, String(error));
        return true;
      });
    });
  });

  it('reports free space exactly as df -B1 does', async () => {
    await withTmpfs('size=8m', async (root) => {
      const target = localTarget(root);
      await target.put('app/filler', bodyOf(randomBytes(3 * MiB)), { signal: never });
      const space = await target.free?.();
      assert.ok(space);
      const [line] = execFileSync('df', ['-B1', '--output=avail,size', root], {
        encoding: 'utf8',
        env: { ...process.env, LC_ALL: 'C' },
      })
        .trim()
        .split('\n')
        .slice(1);
      const [avail, size] = (line ?? '').trim().split(/\s+/).map(Number);
      assert.equal(space.freeBytes, avail);
      assert.equal(space.totalBytes, size);
      assert.equal(space.totalBytes, 8 * MiB);
      assert.ok(space.freeBytes <= 5 * MiB, `3 MiB of 8 MiB used, yet ${space.freeBytes} bytes free`);
      assert.equal(space.path, root);
    });
  });

  it('fails free() on a missing root with a TargetError', async () => {
    const parent = await tempRoot();
    try {
      await assert.rejects(localTarget(join(parent, 'gone')).free?.() ?? Promise.resolve(), TargetError);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});

describe('local target: large objects', () => {
  it('round-trips an object larger than its background flush interval (64 MiB), verified by re-reading', async () => {
    const root = await tempRoot();
    try {
      const target = localTarget(root);
      const data = randomBytes(64 * MiB + 12_345);
      // Uneven chunks, so no flush boundary lines up with a chunk.
      const chunks: Buffer[] = [];
      for (
        let offset = 0, size = 777_777;
        offset < data.length;
        offset += size, size = (size * 5 + 3) % 3_000_000 || 1
      ) {
        chunks.push(data.subarray(offset, offset + size));
      }
      const put = await target.put('job/big.tmp-1', Readable.from(chunks), { signal: never });
      // Proven twice: by put, which re-read each flushed part while writing, and by a whole re-read.
      assert.deepEqual(put.verified, { bytes: data.length, sha256: sha256(data) });
      assert.deepEqual(await target.verifyObject('job/big.tmp-1', { signal: never }), {
        bytes: data.length,
        sha256: sha256(data),
      });
      assert.ok((await readFile(join(root, 'job', 'big.tmp-1'))).equals(data));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('stops re-reading when the run is aborted, with the abort reason', async () => {
    const root = await tempRoot();
    try {
      const target = localTarget(root);
      await target.put('job/o', Readable.from([randomBytes(3 * MiB)]), { signal: never });
      const controller = new AbortController();
      const reason = new Error('interrupted by SIGTERM');
      controller.abort(reason);
      await assert.rejects(target.verifyObject('job/o', { signal: controller.signal }), (error) => error === reason);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
