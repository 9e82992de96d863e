import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { type FileHandle, mkdtemp, open, readFile, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { ObjectFileWriter } from '../../src/targets/local-writer.js';

const MiB = 1 << 20;

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The real handle, with its datasync calls and the bytes it read back counted. */
function counting(handle: FileHandle): { handle: FileHandle; datasyncs: () => number; bytesRead: () => number } {
  let datasyncs = 0;
  let bytesRead = 0;
  const counted = new Proxy(handle, {
    get(target, property) {
      if (property === 'datasync') {
        return () => {
          datasyncs++;
          return target.datasync();
        };
      }
      if (property === 'read') {
        return async (...args: Parameters<FileHandle['read']>) => {
          const result = await (target.read as (...a: unknown[]) => ReturnType<FileHandle['read']>)(...args);
          bytesRead += result.bytesRead;
          return result;
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { handle: counted, datasyncs: () => datasyncs, bytesRead: () => bytesRead };
}

/** `data` cut into uneven chunks, so no flush boundary lines up with a chunk. */
function unevenChunks(data: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  let at = 0;
  for (const size of [1, 300_000, MiB, 2 * MiB + 7, 17]) {
    chunks.push(data.subarray(at, at + size));
    at += size;
  }
  chunks.push(data.subarray(at));
  return chunks;
}

async function withFile<T>(fn: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'backproof-writer-'));
  try {
    return await fn(join(dir, 'object'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('ObjectFileWriter', () => {
  it('writes every byte in order, flushes in the background, and reads each flushed part back while writing', async () => {
    await withFile(async (file) => {
      const real = await open(file, 'wx+', 0o600);
      try {
        const { handle, datasyncs, bytesRead } = counting(real);
        const data = randomBytes(6 * MiB + 5);
        const writer = new ObjectFileWriter(handle, MiB);
        // Past the first flush (1 MiB), the producer waits until something was read back (10 s at
        // most), as a slow compressor would let it: the read-back must run while the stream is open.
        async function* slowly(): AsyncGenerator<Buffer> {
          let sent = 0;
          for (const chunk of unevenChunks(data)) {
            yield chunk;
            sent += chunk.length;
            for (let waited = 0; sent > 2 * MiB && bytesRead() === 0 && waited < 10_000; waited += 10) {
              await new Promise((resolve) => setTimeout(resolve, 10));
            }
          }
        }
        await pipeline(Readable.from(slowly()), writer);
        const readBeforeTheEnd = bytesRead();
        const proof = await writer.finish();
        assert.deepEqual(proof, { bytes: data.length, sha256: sha256(data) });
        // One flush at a time, started every MiB when none is running: at least one, at most six.
        assert.ok(datasyncs() >= 1 && datasyncs() <= 6, `${datasyncs()} background flushes`);
        assert.ok(readBeforeTheEnd > 0, 'flushed parts were read back before the stream ended');
        assert.equal(bytesRead(), data.length, 'every byte was read back exactly once');
        await real.close();
        assert.ok((await readFile(file)).equals(data));
      } finally {
        await real.close().catch(() => {});
      }
    });
  });

  it('proves an empty object and a small one (no background flush) by reading them back at the end', async () => {
    for (const data of [Buffer.alloc(0), Buffer.from('small object\n')]) {
      await withFile(async (file) => {
        const handle = await open(file, 'wx+', 0o600);
        try {
          const writer = new ObjectFileWriter(handle, MiB);
          await pipeline(Readable.from([data]), writer);
          assert.deepEqual(await writer.finish(), { bytes: data.length, sha256: sha256(data) });
        } finally {
          await handle.close();
        }
      });
    }
  });

  it('gives no proof when the file is cut short behind its back before the last part is read back', async () => {
    await withFile(async (file) => {
      const handle = await open(file, 'wx+', 0o600);
      try {
        const data = randomBytes(3 * MiB);
        const writer = new ObjectFileWriter(handle, 64 * MiB); // no background flush: all is read back at the end
        await pipeline(Readable.from([data]), writer);
        await truncate(file, 2 * MiB);
        assert.equal(await writer.finish(), undefined);
      } finally {
        await handle.close();
      }
    });
  });

  it('gives no proof when the file has more bytes than were written to it', async () => {
    await withFile(async (file) => {
      const handle = await open(file, 'wx+', 0o600);
      try {
        const data = randomBytes(MiB);
        const writer = new ObjectFileWriter(handle, 64 * MiB);
        await pipeline(Readable.from([data]), writer);
        await handle.write(Buffer.from('appended by someone else'), 0, 24, data.length);
        assert.equal(await writer.finish(), undefined);
      } finally {
        await handle.close();
      }
    });
  });

  it('reads back what is in the file, not what it was given: a byte changed before its part is read back shows', async () => {
    await withFile(async (file) => {
      const handle = await open(file, 'wx+', 0o600);
      try {
        const data = randomBytes(2 * MiB);
        const writer = new ObjectFileWriter(handle, 64 * MiB);
        await pipeline(Readable.from([data]), writer);
        const other = await open(file, 'r+');
        await other.write(Buffer.from([(data[12345] as number) ^ 0xff]), 0, 1, 12345);
        await other.close();
        const proof = await writer.finish();
        assert.equal(proof?.bytes, data.length);
        assert.notEqual(proof?.sha256, sha256(data));
      } finally {
        await handle.close();
      }
    });
  });

  it('fails the write when a background flush fails (the kernel refuses to sync /dev/null: EINVAL)', async () => {
    const handle = await open('/dev/null', 'w');
    try {
      const writer = new ObjectFileWriter(handle, MiB);
      await assert.rejects(
        (async () => {
          await pipeline(Readable.from(Array.from({ length: 8 }, () => randomBytes(MiB))), writer);
          await writer.finish();
        })(),
        { code: 'EINVAL' },
      );
      await writer.abandon();
    } finally {
      await handle.close();
    }
  });
});
