// The conformance suite every target kind must pass (restic's backend test suite, at our size).
// A target file calls `targetConformance('local', makeTarget)`; each `it` works under its own key
// prefix on one target, so the tests never see each other's keys.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it, type TestContext } from 'node:test';
import { TargetError } from '../../src/lib/errors.js';
import type { Target } from '../../src/targets/types.js';

export interface TargetUnderTest {
  target: Target;
  /** Removes everything the target holds and whatever serves it. Called after `target.close()`. */
  cleanup: () => Promise<void>;
  /**
   * Changes a stored object without going through `target` (a failing disk, a meddling admin):
   * `corrupt` flips one byte and keeps the size, `truncate` drops the second half. Tests that need
   * it are skipped without it.
   */
  tamper?: (key: string, how: 'corrupt' | 'truncate') => Promise<void>;
  /** Strings that must never appear in `describe()` (passwords, secret keys). */
  secrets?: readonly string[];
}

const MiB = 1 << 20;
const never = new AbortController().signal;

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** `data` as a stream of 256 KiB chunks, like a pipeline would deliver it. */
export function bodyOf(data: Buffer): Readable {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += 256 * 1024)
    chunks.push(data.subarray(offset, offset + 256 * 1024));
  return Readable.from(chunks);
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Asserts that `promise` rejects with an error the target calls not-found. */
async function assertNotFound(target: Target, promise: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.equal(target.isNotFound(error), true, `${what}: isNotFound must be true for ${String(error)}`);
    return true;
  });
}

/** Asserts that `promise` rejects with a permanent TargetError that is not a not-found. */
async function assertRefused(target: Target, promise: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof TargetError, `${what}: expected a TargetError, got ${String(error)}`);
    assert.equal(error.permanent, true, `${what}: a refused key is a permanent error`);
    assert.equal(target.isNotFound(error), false, `${what}: a refused key is not "not found"`);
    return true;
  });
}

export function targetConformance(name: string, makeTarget: () => Promise<TargetUnderTest>): void {
  describe(`target conformance: ${name}`, () => {
    let subject: TargetUnderTest | undefined;
    let counter = 0;
    const target = (): Target => {
      if (!subject) throw new Error('makeTarget failed');
      return subject.target;
    };
    /** A key prefix no other test uses. */
    const fresh = (): string => `conformance-${++counter}-${randomBytes(4).toString('hex')}`;

    before(async () => {
      subject = await makeTarget();
    });
    after(async () => {
      if (!subject) return;
      try {
        await subject.target.close();
      } finally {
        await subject.cleanup();
      }
    });

    for (const [label, size] of [
      ['empty', 0],
      ['small', 5],
      ['multi-MiB', 5 * MiB + 123],
    ] as const) {
      it(`round-trips an ${label} object through put, stat, get, verifyObject, list and remove`, async () => {
        const t = target();
        const p = fresh();
        const key = `${p}/2025/11/04/set/object.bin`;
        const data = randomBytes(size);
        const put = await t.put(key, bodyOf(data), { signal: never });
        // A proof that put took while writing must be as true as verifyObject's.
        if (put.verified) assert.deepEqual(proofOf(put.verified), { bytes: size, sha256: sha256(data) });
        assert.deepEqual(await t.stat(key), { bytes: size });
        const read = await readAll(await t.get(key, { signal: never }));
        assert.equal(read.length, size);
        assert.equal(sha256(read), sha256(data));
        assert.deepEqual(proofOf(await t.verifyObject(key, { signal: never })), { bytes: size, sha256: sha256(data) });
        assert.deepEqual(await t.list(`${p}/`), [key]);
        await t.remove(key);
        await assertNotFound(t, t.stat(key), 'stat after remove');
        await assertNotFound(t, t.get(key, { signal: never }), 'get after remove');
        assert.deepEqual(await t.list(`${p}/`), []);
      });
    }

    it('stores names with spaces, dots and non-ASCII letters as given', async () => {
      const t = target();
      const p = fresh();
      const keys = [`${p}/name with spaces.sql.zst`, `${p}/données-é.tar.zst`, `${p}/.hidden`, `${p}/a+b=c,d@e.txt`];
      for (const key of keys) await t.put(key, bodyOf(Buffer.from(key)), { signal: never });
      assert.deepEqual(await t.list(`${p}/`), [...keys].sort());
      for (const key of keys) assert.equal((await readAll(await t.get(key, { signal: never }))).toString(), key);
      for (const key of keys) await t.remove(key);
      assert.deepEqual(await t.list(`${p}/`), []);
    });

    it('lists every key under a prefix, recursively, sorted, and nothing from a sibling prefix', async () => {
      const t = target();
      const p = fresh();
      const keys = [
        `${p}/b`,
        `${p}/a/z`,
        `${p}/a/y`,
        `${p}/c/d/e/f`,
        `${p}/a-b`,
        `${p}/a.b`,
        `${p}/a0`,
        `${p}/B`,
        `${p}/a/y2/deep`,
      ];
      const sibling = `${p}x/not-mine`;
      for (const key of [...keys, sibling]) await t.put(key, bodyOf(Buffer.from('x')), { signal: never });
      // Sorted as whole keys ('-' < '.' < '/' < '0'), not directory by directory.
      assert.deepEqual(await t.list(`${p}/`), [...keys].sort());
      assert.deepEqual(await t.list(`${p}/a/`), [`${p}/a/y`, `${p}/a/y2/deep`, `${p}/a/z`]);
      assert.deepEqual(await t.list(`${p}/c/d/`), [`${p}/c/d/e/f`]);
      for (const key of [...keys, sibling]) await t.remove(key);
      assert.deepEqual(await t.list(`${p}/`), []);
      assert.deepEqual(await t.list(`${p}x/`), []);
    });

    it('lists an absent prefix as []', async () => {
      const t = target();
      const p = fresh();
      assert.deepEqual(await t.list(`${p}/`), []);
      assert.deepEqual(await t.list(`${p}/deeper/still/`), []);
      await t.put(`${p}/one`, bodyOf(Buffer.from('1')), { signal: never });
      assert.deepEqual(await t.list(`${p}/one-not/`), []);
      await t.remove(`${p}/one`);
    });

    it('rejects get, stat and verifyObject of a missing key with an error isNotFound recognises', async () => {
      const t = target();
      const p = fresh();
      await t.put(`${p}/present`, bodyOf(Buffer.from('here')), { signal: never });
      for (const key of [`${p}/absent`, `${p}/no/such/dir/absent`]) {
        await assertNotFound(t, t.get(key, { signal: never }), `get ${key}`);
        await assertNotFound(t, t.stat(key), `stat ${key}`);
        await assertNotFound(t, t.verifyObject(key, { signal: never }), `verifyObject ${key}`);
      }
      assert.equal(t.isNotFound(new Error('something else')), false);
      assert.equal(t.isNotFound(undefined), false);
      assert.equal(t.isNotFound('ENOENT'), false);
      await t.remove(`${p}/present`);
    });

    it('removes a missing key without complaint', async () => {
      const t = target();
      const p = fresh();
      await t.remove(`${p}/never/was/here`);
      await t.put(`${p}/once`, bodyOf(Buffer.from('1')), { signal: never });
      await t.remove(`${p}/once`);
      await t.remove(`${p}/once`);
      assert.deepEqual(await t.list(`${p}/`), []);
    });

    it('removes one object and leaves its neighbours', async () => {
      const t = target();
      const p = fresh();
      await t.put(`${p}/d/a`, bodyOf(Buffer.from('a')), { signal: never });
      await t.put(`${p}/d/b`, bodyOf(Buffer.from('b')), { signal: never });
      await t.remove(`${p}/d/a`);
      assert.deepEqual(await t.list(`${p}/`), [`${p}/d/b`]);
      assert.equal((await readAll(await t.get(`${p}/d/b`, { signal: never }))).toString(), 'b');
      await t.remove(`${p}/d/b`);
    });

    // The core renames a temporary to its final name in the same directory; that is all this asks.
    it('renames atomically and refuses to replace an existing key', async (ctx: TestContext) => {
      const t = target();
      if (!t.capabilities.atomicRename) return ctx.skip('no atomic rename: objects are written in place');
      assert.equal(typeof t.rename, 'function', 'atomicRename declared, so rename must exist');
      const rename = t.rename?.bind(t) as NonNullable<Target['rename']>;
      const p = fresh();
      const first = randomBytes(3 * MiB);
      await t.put(`${p}/set/a.tmp-1`, bodyOf(first), { signal: never });
      await rename(`${p}/set/a.tmp-1`, `${p}/set/a`);
      assert.deepEqual(await t.list(`${p}/`), [`${p}/set/a`]);
      assert.deepEqual(proofOf(await t.verifyObject(`${p}/set/a`, { signal: never })), {
        bytes: first.length,
        sha256: sha256(first),
      });

      await t.put(`${p}/set/b.tmp-2`, bodyOf(Buffer.from('newer')), { signal: never });
      await assert.rejects(rename(`${p}/set/b.tmp-2`, `${p}/set/a`));
      assert.equal(sha256(await readAll(await t.get(`${p}/set/a`, { signal: never }))), sha256(first));
      assert.deepEqual(await t.stat(`${p}/set/b.tmp-2`), { bytes: 5 }, 'the source of a refused rename stays');

      await assert.rejects(rename(`${p}/set/missing`, `${p}/set/c`));
      await assertNotFound(t, t.stat(`${p}/set/c`), 'destination of a failed rename');

      for (const key of await t.list(`${p}/`)) await t.remove(key);
      assert.deepEqual(await t.list(`${p}/`), []);
    });

    it('verifyObject sees corruption and truncation done behind its back', async (ctx: TestContext) => {
      const t = target();
      if (!subject?.tamper) return ctx.skip('makeTarget gave no tamper hook');
      const p = fresh();
      const data = randomBytes(2 * MiB + 1);
      for (const how of ['corrupt', 'truncate'] as const) {
        const key = `${p}/${how}.bin`;
        await t.put(key, bodyOf(data), { signal: never });
        assert.deepEqual(proofOf(await t.verifyObject(key, { signal: never })), {
          bytes: data.length,
          sha256: sha256(data),
        });
        await subject.tamper(key, how);
        const seen = await t.verifyObject(key, { signal: never });
        assert.notEqual(seen.sha256, sha256(data), `${how}: verifyObject must not report the original hash`);
        if (how === 'corrupt') assert.equal(seen.bytes, data.length);
        else assert.ok(seen.bytes < data.length, `truncate: verifyObject reported ${seen.bytes} bytes`);
        await t.remove(key);
      }
    });

    it('a put whose body fails part-way rejects and leaves no object behind', async () => {
      const t = target();
      const p = fresh();
      const piece = randomBytes(256 * 1024);
      async function* failing() {
        for (let i = 0; i < 8; i++) yield piece;
        throw new Error('the source failed');
      }
      await assert.rejects(t.put(`${p}/partial.bin`, Readable.from(failing()), { signal: never }));
      await assertNotFound(t, t.stat(`${p}/partial.bin`), 'stat after a failed put');
      assert.deepEqual(await t.list(`${p}/`), []);
    });

    it('a put with an already aborted signal writes nothing', async () => {
      const t = target();
      const p = fresh();
      const controller = new AbortController();
      controller.abort(new Error('run interrupted'));
      await assert.rejects(t.put(`${p}/aborted.bin`, bodyOf(randomBytes(MiB)), { signal: controller.signal }));
      assert.deepEqual(await t.list(`${p}/`), []);
    });

    it('a put aborted while streaming stops reading and writes nothing', async () => {
      const t = target();
      const p = fresh();
      const controller = new AbortController();
      const piece = randomBytes(256 * 1024);
      const total = 256 * MiB;
      let produced = 0;
      async function* endless() {
        while (produced < total) {
          produced += piece.length;
          if (produced === 2 * MiB) controller.abort(new Error('run interrupted'));
          yield piece;
        }
      }
      await assert.rejects(t.put(`${p}/aborted.bin`, Readable.from(endless()), { signal: controller.signal }));
      assert.ok(produced < total, 'put kept reading after the abort');
      assert.deepEqual(await t.list(`${p}/`), []);
    });

    it('probeWritable proves the target writable and leaves nothing behind', async () => {
      const t = target();
      const job = fresh();
      await t.probeWritable(job);
      await t.probeWritable(job);
      assert.deepEqual(await t.list(`${job}/`), []);
    });

    it('refuses keys that climb out with .. or are absolute, and writes nothing', async () => {
      const t = target();
      const p = fresh();
      const bad = ['../escape', `${p}/../../escape`, `${p}/a/../b`, '/etc/backproof-escape', `/${p}/x`, '..'];
      for (const key of bad) {
        await assertRefused(t, t.put(key, bodyOf(Buffer.from('x')), { signal: never }), `put ${key}`);
        await assertRefused(t, t.get(key, { signal: never }), `get ${key}`);
        await assertRefused(t, t.stat(key), `stat ${key}`);
        await assertRefused(t, t.verifyObject(key, { signal: never }), `verifyObject ${key}`);
        await assertRefused(t, t.remove(key), `remove ${key}`);
        if (t.rename) {
          await t.put(`${p}/ok`, bodyOf(Buffer.from('ok')), { signal: never });
          await assertRefused(t, t.rename(`${p}/ok`, key), `rename to ${key}`);
          await assertRefused(t, t.rename(key, `${p}/ok2`), `rename from ${key}`);
          assert.deepEqual(await t.list(`${p}/`), [`${p}/ok`]);
          await t.remove(`${p}/ok`);
        }
      }
      await assertRefused(t, t.list('../'), 'list ../');
      await assertRefused(t, t.list('/etc/'), 'list /etc/');
      assert.deepEqual(await t.list(`${p}/`), []);
    });

    it('writes several objects at once into the same new directory', async () => {
      const t = target();
      const p = fresh();
      const bodies = Array.from({ length: 8 }, (_, i) => randomBytes(100_000 + i));
      await Promise.all(bodies.map((data, i) => t.put(`${p}/new/deep/dir/o${i}`, bodyOf(data), { signal: never })));
      assert.equal((await t.list(`${p}/`)).length, bodies.length);
      for (const [i, data] of bodies.entries()) {
        assert.deepEqual(await t.verifyObject(`${p}/new/deep/dir/o${i}`, { signal: never }), {
          bytes: data.length,
          sha256: sha256(data),
        });
        await t.remove(`${p}/new/deep/dir/o${i}`);
      }
    });

    it('lets a reader stop early without blocking later operations on the object', async () => {
      const t = target();
      const p = fresh();
      const data = randomBytes(4 * MiB);
      await t.put(`${p}/big`, bodyOf(data), { signal: never });
      const stream = await t.get(`${p}/big`, { signal: never });
      for await (const _chunk of stream) break;
      assert.deepEqual(await t.verifyObject(`${p}/big`, { signal: never }), {
        bytes: data.length,
        sha256: sha256(data),
      });
      await t.remove(`${p}/big`);
      assert.deepEqual(await t.list(`${p}/`), []);
    });

    it('describe() says where the target is and holds no secret', () => {
      const t = target();
      const text = t.describe();
      assert.ok(text.length > 0);
      assert.ok(text.includes(t.type), `describe() names the kind: ${text}`);
      for (const secret of subject?.secrets ?? [])
        assert.ok(!text.includes(secret), `describe() leaks a secret: ${text}`);
      assert.ok(!/:\/\/[^/\s]*:[^/\s]*@/.test(text), `describe() shows URL credentials: ${text}`);
      assert.ok(!/(password|secret|token)\s*[=:]/i.test(text), `describe() shows a credential: ${text}`);
    });

    it('declares only capabilities it implements', async () => {
      const t = target();
      const { atomicRename, freeSpace, verification } = t.capabilities;
      assert.ok(['reread', 'remote-hash', 'etag'].includes(verification));
      if (atomicRename) assert.equal(typeof t.rename, 'function');
      if (freeSpace) {
        assert.equal(typeof t.free, 'function');
        const space = await t.free?.();
        assert.ok(space);
        assert.ok(Number.isSafeInteger(space.freeBytes) && space.freeBytes >= 0, String(space.freeBytes));
        assert.ok(Number.isSafeInteger(space.totalBytes) && space.totalBytes >= space.freeBytes);
        assert.ok(space.path.length > 0);
      }
      assert.equal(typeof t.optional, 'boolean');
      assert.ok(t.name.length > 0);
    });
  });
}

/** Size and hash of a verification; the level a target reports beside them is its own business. */
function proofOf(result: { bytes: number; sha256: string }): { bytes: number; sha256: string } {
  return { bytes: result.bytes, sha256: result.sha256 };
}
