import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { MeasureStream, measureFile, measureReadable } from '../../src/pipeline/measure.js';

const MiB = 1 << 20;
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** `data` in uneven chunks, so chunk boundaries do not line up with anything. */
function unevenChunks(data: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0, size = 1; offset < data.length; offset += size, size = (size * 7 + 13) % 300_000) {
    chunks.push(data.subarray(offset, offset + size));
  }
  return chunks;
}

function collect(): { sink: Writable; result: () => Buffer } {
  const chunks: Buffer[] = [];
  return {
    sink: new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        callback();
      },
    }),
    result: () => Buffer.concat(chunks),
  };
}

describe('MeasureStream', () => {
  it('passes several MiB through unchanged and measures bytes and sha256', async () => {
    const data = randomBytes(5 * MiB + 3);
    const sizes: number[] = [];
    const measure = new MeasureStream((bytes) => sizes.push(bytes));
    const out = collect();
    await pipeline(Readable.from(unevenChunks(data)), measure, out.sink);
    assert.deepEqual(out.result(), data);
    assert.deepEqual(measure.result(), { bytes: data.length, sha256: sha256(data) });
    assert.equal(
      sizes.reduce((a, b) => a + b, 0),
      data.length,
      'onBytes is told of every byte',
    );
    assert.ok(sizes.every((n) => Number.isInteger(n) && n > 0));
  });

  it('measures an empty stream as 0 bytes with the sha256 of nothing', async () => {
    const measure = new MeasureStream();
    const out = collect();
    await pipeline(Readable.from([]), measure, out.sink);
    assert.deepEqual(measure.result(), { bytes: 0, sha256: EMPTY_SHA256 });
  });

  it('refuses to give a result before the stream has ended, so a partial hash is never used', async () => {
    const measure = new MeasureStream();
    assert.throws(() => measure.result(), /before the stream ended/);
    measure.write(Buffer.from('partial'));
    assert.throws(() => measure.result(), /before the stream ended/);
    const failing = new Readable({
      read() {
        this.destroy(new Error('source failed'));
      },
    });
    const again = new MeasureStream();
    await assert.rejects(pipeline(failing, again, collect().sink), /source failed/);
    assert.throws(() => again.result(), /before the stream ended/);
    measure.destroy();
  });

  it('with hash: false only counts: bytes() after the end, and result() refuses (there is no hash)', async () => {
    const data = randomBytes(2 * MiB + 5);
    const sizes: number[] = [];
    const counting = new MeasureStream((bytes) => sizes.push(bytes), { hash: false });
    assert.throws(() => counting.bytes(), /before the stream ended/);
    const out = collect();
    await pipeline(Readable.from(unevenChunks(data)), counting, out.sink);
    assert.deepEqual(out.result(), data);
    assert.equal(counting.bytes(), data.length);
    assert.equal(
      sizes.reduce((a, b) => a + b, 0),
      data.length,
    );
    assert.throws(() => counting.result(), /only counts bytes/);
    // A hashing stream gives its count the same way.
    const hashing = new MeasureStream();
    await pipeline(Readable.from([data]), hashing, collect().sink);
    assert.equal(hashing.bytes(), data.length);
  });

  it('bytes() refuses a stream that failed before its end', async () => {
    const counting = new MeasureStream(undefined, { hash: false });
    const failing = new Readable({
      read() {
        this.destroy(new Error('source failed'));
      },
    });
    await assert.rejects(pipeline(failing, counting, collect().sink), /source failed/);
    assert.throws(() => counting.bytes(), /before the stream ended/);
  });
});

describe('measureReadable', () => {
  it('measures a file read back from disk', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'backproof-measure-'));
    try {
      const data = randomBytes(3 * MiB + 1);
      const file = join(dir, 'object');
      await writeFile(file, data);
      assert.deepEqual(await measureReadable(createReadStream(file)), { bytes: data.length, sha256: sha256(data) });
      await writeFile(file, '');
      assert.deepEqual(await measureReadable(createReadStream(file)), { bytes: 0, sha256: EMPTY_SHA256 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects when the stream fails part-way', async () => {
    async function* failing() {
      yield randomBytes(1000);
      throw new Error('read error');
    }
    await assert.rejects(measureReadable(failing()), /read error/);
  });
});

describe('measureFile', () => {
  it('measures files of every size around its read size', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'backproof-measure-'));
    try {
      for (const size of [0, 1, MiB - 1, MiB, MiB + 1, 3 * MiB + 17]) {
        const data = randomBytes(size);
        const file = join(dir, `object-${size}`);
        await writeFile(file, data);
        assert.deepEqual(await measureFile(file), { bytes: size, sha256: sha256(data) }, `${size} bytes`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects a missing file with ENOENT, and a directory with EISDIR', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'backproof-measure-'));
    try {
      await assert.rejects(measureFile(join(dir, 'missing')), { code: 'ENOENT' });
      await assert.rejects(measureFile(dir), { code: 'EISDIR' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('stops at an aborted signal with its reason, before or between reads', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'backproof-measure-'));
    try {
      const file = join(dir, 'object');
      await writeFile(file, randomBytes(4 * MiB));
      const before = new AbortController();
      before.abort(new Error('stopped before'));
      await assert.rejects(measureFile(file, before.signal), /stopped before/);
      // Aborted while reading: the first read is under way when the abort lands.
      const during = new AbortController();
      const measuring = measureFile(file, during.signal);
      during.abort(new Error('stopped during'));
      await assert.rejects(measuring, /stopped during/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
