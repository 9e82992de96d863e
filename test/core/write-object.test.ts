import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { VerificationMismatch } from '../../src/core/evidence.js';
import { type ObjectWrite, type WriteObjectInput, writeObject } from '../../src/core/write-object.js';
import { parseRecipient } from '../../src/crypto/age.js';
import { TargetError } from '../../src/lib/errors.js';
import type { CompressionOptions } from '../../src/pipeline/compress.js';
import { objectKey } from '../../src/set/layout.js';
import { createLocalTarget } from '../../src/targets/local.js';
import type { Target } from '../../src/targets/types.js';
import { type Faults, type FaultyTarget, faultyTarget, tampered } from '../targets/faulty.js';
import { bodyOf, sha256 } from '../targets/suite.js';

const MiB = 1 << 20;
const JOB = 'app';
const SET_ID = '20251104T030000Z-k3x9qa';
const KEY = objectKey(JOB, SET_ID, 'main.app.sql');
const NOW = new Date('2025-11-04T03:01:00.000Z');

let roots: string[] = [];

beforeEach(() => {
  roots = [];
});

afterEach(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

async function local(name: string): Promise<{ target: Target; root: string }> {
  const root = await mkdtemp(join(tmpdir(), `backproof-write-${name}-`));
  roots.push(root);
  return { target: createLocalTarget({ name, path: root, optional: false }), root };
}

async function faulty(name: string, faults: Faults): Promise<{ target: FaultyTarget; root: string }> {
  const { target, root } = await local(name);
  return { target: faultyTarget(target, faults), root };
}

interface Run {
  result: ObjectWrite;
  rawReported: number;
  storedReported: number;
}

async function write(
  input: Readable,
  targets: Target[],
  options: Partial<Pick<WriteObjectInput, 'compression' | 'encryption' | 'signal' | 'onRawBytes' | 'rawMeasured'>> = {},
): Promise<Run> {
  let rawReported = 0;
  let storedReported = 0;
  const result = await writeObject({
    input,
    name: 'main.app.sql',
    key: KEY,
    targets,
    compression: options.compression ?? null,
    encryption: options.encryption ?? null,
    signal: options.signal ?? new AbortController().signal,
    now: () => NOW,
    onRawBytes: (bytes) => {
      rawReported += bytes;
      options.onRawBytes?.(bytes);
    },
    onStoredBytes: (bytes) => {
      storedReported += bytes;
    },
    ...(options.rawMeasured ? { rawMeasured: options.rawMeasured } : {}),
  });
  return { result, rawReported, storedReported };
}

/** Asserts the target holds exactly the final object with `data`, and no temporary. */
async function assertHolds(target: Target, root: string, data: Buffer): Promise<void> {
  assert.deepEqual(await target.list(`${JOB}/`), [KEY]);
  assert.equal(sha256(await readFile(join(root, KEY))), sha256(data));
}

async function assertEmpty(target: Target): Promise<void> {
  assert.deepEqual(await target.list(`${JOB}/`), [], `${target.name} must hold nothing`);
}

function proofOf(result: ObjectWrite, target: string) {
  const entry = result.results.get(target);
  assert.ok(entry?.ok, `${target} should have succeeded: ${entry && !entry.ok ? String(entry.error) : 'no result'}`);
  return entry.proof;
}

function errorOf(result: ObjectWrite, target: string): unknown {
  const entry = result.results.get(target);
  assert.ok(entry && !entry.ok, `${target} should have failed`);
  return entry.error;
}

describe('writeObject', () => {
  it('writes, verifies and renames on every target, reporting raw and stored measures', async () => {
    const a = await local('disk-a');
    const b = await local('disk-b');
    const data = randomBytes(6 * MiB + 5);
    const run = await write(bodyOf(data), [a.target, b.target]);
    assert.deepEqual(run.result.raw, { bytes: data.length, sha256: sha256(data) });
    assert.deepEqual(run.result.stored, { bytes: data.length, sha256: sha256(data) });
    assert.equal(run.rawReported, data.length);
    assert.equal(run.storedReported, data.length);
    for (const side of [a, b]) {
      const proof = proofOf(run.result, side.target.name);
      assert.equal(proof.target, side.target.name);
      assert.equal(proof.name, 'main.app.sql');
      assert.equal(proof.bytes, data.length);
      assert.equal(proof.sha256, sha256(data));
      assert.equal(proof.level, 'reread');
      assert.equal(proof.verifiedAt, NOW.toISOString());
      await assertHolds(side.target, side.root, data);
    }
  });

  for (const order of ['failing target first', 'failing target second'] as const) {
    for (const permanent of [true, false]) {
      it(`leaves the other target's object verified and renamed when one fails mid-write (${order}, ${permanent ? 'permanent' : 'transient'})`, async () => {
        const good = await local('good');
        const bad = await faulty('bad', { failPutAfterBytes: 2 * MiB, permanent });
        const data = randomBytes(7 * MiB + 1);
        const targets = order === 'failing target first' ? [bad.target, good.target] : [good.target, bad.target];
        const run = await write(bodyOf(data), targets);
        assert.equal(bad.target.injected.length, 1, 'the fault fired');
        const error = errorOf(run.result, 'bad');
        assert.ok(error instanceof TargetError, String(error));
        assert.equal(error.permanent, permanent);
        assert.match(error.message, /after 2097152 bytes/);
        assert.equal(proofOf(run.result, 'good').sha256, sha256(data));
        await assertHolds(good.target, good.root, data);
        await assertEmpty(bad.target); // the partial temporary the dropped upload left is gone
        assert.deepEqual(run.result.stored, { bytes: data.length, sha256: sha256(data) });
      });
    }
  }

  for (const how of ['corrupt', 'truncate'] as const) {
    it(`fails a target whose object was ${how === 'corrupt' ? 'corrupted' : 'truncated'} after upload, with expected and actual sha256 as evidence`, async () => {
      const good = await local('good');
      const bad = await faulty('bad', { tamperAfterPut: how });
      const data = randomBytes(3 * MiB + 17);
      const changed = tampered(data, how);
      const run = await write(bodyOf(data), [good.target, bad.target]);
      assert.equal(bad.target.injected.length, 1, 'the object was changed');
      const error = errorOf(run.result, 'bad');
      assert.ok(error instanceof VerificationMismatch, String(error));
      assert.deepEqual(error.evidence, {
        expected: { bytes: data.length, sha256: sha256(data) },
        actual: { bytes: changed.length, sha256: sha256(changed) },
      });
      assert.match(error.message, /target bad: main\.app\.sql does not match/);
      await assertEmpty(bad.target); // the bad temporary is removed, and nothing was renamed
      await assertHolds(good.target, good.root, data);
    });
  }

  it('fails a target whose rename fails, removing its temporary and keeping the other', async () => {
    const good = await local('good');
    const bad = await faulty('bad', { failRename: true });
    const data = randomBytes(2 * MiB);
    const run = await write(bodyOf(data), [bad.target, good.target]);
    const error = errorOf(run.result, 'bad');
    assert.ok(error instanceof TargetError && /injected fault: rename/.test(error.message), String(error));
    await assertEmpty(bad.target);
    await assertHolds(good.target, good.root, data);
  });

  it('fails a target whose verification fails (transient), removing its temporary', async () => {
    const good = await local('good');
    const bad = await faulty('bad', { failVerify: true, permanent: false });
    const data = randomBytes(2 * MiB);
    const run = await write(bodyOf(data), [good.target, bad.target]);
    const error = errorOf(run.result, 'bad');
    assert.ok(error instanceof TargetError && !error.permanent, String(error));
    await assertEmpty(bad.target);
    await assertHolds(good.target, good.root, data);
  });

  it('resolves with every target failed, and nothing left anywhere, when every target fails', async () => {
    const a = await faulty('a', { failPutAfterBytes: MiB });
    const b = await faulty('b', { failPutAfterBytes: 3 * MiB });
    const run = await write(bodyOf(randomBytes(8 * MiB)), [a.target, b.target]);
    assert.ok(errorOf(run.result, 'a') instanceof TargetError);
    assert.ok(errorOf(run.result, 'b') instanceof TargetError);
    assert.equal(run.result.raw, undefined);
    assert.equal(run.result.stored, undefined);
    await assertEmpty(a.target);
    await assertEmpty(b.target);
  });

  for (const compression of [null, { algorithm: 'zstd', level: 3 }] as (CompressionOptions | null)[]) {
    it(`rejects with the source's error and leaves no temporary on any target (${compression ? 'zstd' : 'uncompressed'})`, async () => {
      const a = await local('a');
      const b = await local('b');
      const sourceError = new Error('mariadb-dump: lost connection to server during query');
      const piece = randomBytes(256 * 1024);
      async function* failing() {
        for (let i = 0; i < 16; i++) yield piece;
        throw sourceError;
      }
      await assert.rejects(write(Readable.from(failing()), [a.target, b.target], { compression }), (error) => {
        assert.equal(error, sourceError);
        return true;
      });
      await assertEmpty(a.target);
      await assertEmpty(b.target);
    });
  }

  it('rejects with the abort reason and leaves nothing when the run is aborted mid-write', async () => {
    const a = await local('a');
    const b = await local('b');
    const controller = new AbortController();
    const reason = new Error('interrupted by SIGTERM');
    let seen = 0;
    await assert.rejects(
      write(bodyOf(randomBytes(16 * MiB)), [a.target, b.target], {
        signal: controller.signal,
        onRawBytes: (bytes) => {
          seen += bytes;
          if (seen >= 4 * MiB && !controller.signal.aborted) controller.abort(reason);
        },
      }),
      (error) => error === reason,
    );
    await assertEmpty(a.target);
    await assertEmpty(b.target);
  });

  it('stores zstd level 3 output that decompresses to exactly the input', async () => {
    const a = await local('a');
    const b = await local('b');
    const lines = Array.from({ length: 60_000 }, (_, i) => `INSERT INTO users VALUES (${i},'user${i}@example.com');\n`);
    const data = Buffer.concat([Buffer.from(lines.join('')), randomBytes(MiB)]);
    const run = await write(bodyOf(data), [a.target, b.target], { compression: { algorithm: 'zstd', level: 3 } });
    assert.deepEqual(run.result.raw, { bytes: data.length, sha256: sha256(data) });
    const stored = run.result.stored;
    assert.ok(stored && stored.bytes < data.length, 'compressed is smaller');
    assert.equal(run.storedReported, stored.bytes);
    for (const side of [a, b]) {
      const file = join(side.root, KEY);
      const object = await readFile(file);
      assert.deepEqual({ bytes: object.length, sha256: sha256(object) }, stored);
      assert.equal(proofOf(run.result, side.target.name).sha256, stored.sha256);
      const restored = execFileSync('zstd', ['-q', '-d', '-c', file], { maxBuffer: 64 * MiB });
      assert.equal(sha256(restored), sha256(data));
    }
  });

  it('compresses, then encrypts once for every target, and measures the ciphertext that age -d opens', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'backproof-write-key-'));
    roots.push(dir);
    const keyFile = join(dir, 'key.txt');
    execFileSync('age-keygen', ['-o', keyFile], { stdio: 'ignore' });
    const recipient = parseRecipient(execFileSync('age-keygen', ['-y', keyFile], { encoding: 'utf8' }).trim());
    const a = await local('a');
    const b = await local('b');
    const data = Buffer.concat([Buffer.from('SELECT 1;\n'.repeat(200_000)), randomBytes(MiB)]);
    const run = await write(bodyOf(data), [a.target, b.target], {
      compression: { algorithm: 'zstd', level: 3 },
      encryption: [recipient],
    });
    assert.deepEqual(run.result.raw, { bytes: data.length, sha256: sha256(data) });
    const stored = run.result.stored;
    assert.ok(stored, 'stored measures');
    const copies = [await readFile(join(a.root, KEY)), await readFile(join(b.root, KEY))];
    for (const object of copies) {
      assert.deepEqual({ bytes: object.length, sha256: sha256(object) }, stored, 'the same ciphertext on both');
      assert.equal(object.subarray(0, 22).toString('latin1'), 'age-encryption.org/v1\n');
      assert.equal(object.includes(Buffer.from('SELECT 1;')), false, 'no plaintext reaches the target');
    }
    const restored = execFileSync(
      'sh',
      ['-c', 'age -d -i "$1" < "$2" | zstd -q -d -c', 'sh', keyFile, join(a.root, KEY)],
      {
        maxBuffer: 64 * MiB,
      },
    );
    assert.equal(sha256(restored), sha256(data));
  });

  it("takes the raw sha256 from the source's rawMeasured, once the bytes counted agree with it", async () => {
    const a = await local('a');
    const data = randomBytes(3 * MiB + 7);
    // A source that hashed what it sent: the core only counts (the sha256 given is kept as it is).
    const measured = { bytes: data.length, sha256: 'f'.repeat(64) };
    const run = await write(bodyOf(data), [a.target], {
      compression: { algorithm: 'zstd', level: 3 },
      rawMeasured: Promise.resolve(measured),
    });
    assert.deepEqual(run.result.raw, measured);
    assert.equal(run.rawReported, data.length);
    assert.equal(proofOf(run.result, 'a').sha256, run.result.stored?.sha256);
  });

  it('rejects, leaving no temporary, when rawMeasured counts other bytes than went through', async () => {
    const a = await local('a');
    const b = await local('b');
    const data = randomBytes(2 * MiB);
    await assert.rejects(
      write(bodyOf(data), [a.target, b.target], {
        rawMeasured: Promise.resolve({ bytes: data.length + 512, sha256: sha256(data) }),
      }),
      { message: `the source reported ${data.length + 512} raw bytes, but ${data.length} went through the pipeline` },
    );
    await assertEmpty(a.target);
    await assertEmpty(b.target);
  });
});
