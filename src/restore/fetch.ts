// Fetches one object of a set from a target into a local file, proving it on the way: bytes are
// counted and hashed as they are written, and a copy whose size or SHA-256 differs from the
// manifest's is removed, never handed on. Reading stops as soon as the object is longer than
// expected, so a wrong object cannot fill the disk.
import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { open, unlink } from 'node:fs/promises';
import { Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { messageOf } from '../lib/errors.js';
import type { Target } from '../targets/types.js';
import { RestoreError } from './errors.js';

/** What the manifest says the object is (`objects[]` entry). */
export interface ExpectedObject {
  name: string;
  bytes: number;
  sha256: string;
}

const OTHER_COPY = 'restore from another target (--target) or from an older set (--set)';

/**
 * Streams object `key` of `target` into `file` (created exclusively, mode 0600, fsynced). Resolves
 * only when the file holds exactly `expected.bytes` bytes with `expected.sha256`; otherwise the file
 * is removed and a RestoreError names the object, the target and what was found. An abort removes
 * the file too and rejects with the signal's reason.
 */
export async function fetchObject(
  target: Target,
  key: string,
  expected: ExpectedObject,
  file: string,
  options: { signal: AbortSignal },
): Promise<void> {
  const { signal } = options;
  signal.throwIfAborted();
  const where = `object ${expected.name} on target ${target.name} (${key})`;
  let handle: FileHandle;
  try {
    handle = await open(file, 'wx', 0o600);
  } catch (error) {
    throw new RestoreError(
      `cannot create ${file} to fetch ${where}: ${messageOf(error)}; ` +
        'check that the staging directory exists, is writable and has no file of that name',
      { cause: error },
    );
  }
  const checker = new CheckingStream(expected.bytes);
  let failure: unknown;
  try {
    const body = await target.get(key, { signal });
    await pipeline(body, checker, fileSink(handle), { signal });
    await handle.sync();
  } catch (error) {
    failure = error;
  }
  await handle.close().catch((error: unknown) => {
    failure ??= error;
  });
  if (failure === undefined) {
    const actual = checker.result();
    if (actual.bytes === expected.bytes && actual.sha256 === expected.sha256) return;
    failure = new RestoreError(
      `${where} is damaged: the manifest says ${expected.bytes} bytes with SHA-256 ${expected.sha256}, ` +
        `the target gave ${actual.bytes} bytes with SHA-256 ${actual.sha256}; ${OTHER_COPY}`,
    );
  }
  await unlink(file).catch(() => {});
  throw describeFailure(failure, { target, where, expected, signal });
}

function describeFailure(
  error: unknown,
  context: { target: Target; where: string; expected: ExpectedObject; signal: AbortSignal },
): unknown {
  const { target, where, expected, signal } = context;
  if (signal.aborted) return signal.reason;
  if (error instanceof RestoreError) return error;
  if (error instanceof TooLongError) {
    return new RestoreError(
      `${where} is damaged: the manifest says ${expected.bytes} bytes with SHA-256 ${expected.sha256}, ` +
        `the target gave more than ${expected.bytes} bytes; ${OTHER_COPY}`,
    );
  }
  if (target.isNotFound(error)) {
    return new RestoreError(
      `${where} is missing: the set's manifest lists it but the target has no such object; ${OTHER_COPY}`,
      {
        cause: error,
      },
    );
  }
  return new RestoreError(`reading ${where} failed: ${messageOf(error)}; try again, or ${OTHER_COPY}`, {
    cause: error,
  });
}

/** Writes into an open file and leaves it open, for the fsync and close that follow. */
function fileSink(handle: FileHandle): Writable {
  const writeAll = async (chunk: Buffer): Promise<void> => {
    let offset = 0;
    while (offset < chunk.length) offset += (await handle.write(chunk, offset)).bytesWritten;
  };
  return new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _encoding, callback) {
      writeAll(chunk).then(() => callback(), callback);
    },
  });
}

/** The object turned out longer than the manifest says. */
class TooLongError extends Error {
  override readonly name = 'TooLongError';
}

/** Counts and hashes what passes; fails as soon as more than `limit` bytes came. */
class CheckingStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;
  private readonly limit: number;

  constructor(limit: number) {
    super({ highWaterMark: 1 << 20 });
    this.limit = limit;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) {
      callback(new TooLongError(`more than ${this.limit} bytes`));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  result(): { bytes: number; sha256: string } {
    return { bytes: this.bytes, sha256: this.hash.digest('hex') };
  }
}
