// A pass-through that counts bytes and computes SHA-256 of everything that flows through it.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export interface Measured {
  bytes: number;
  sha256: string;
}

export class MeasureStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private count = 0;
  private digest: string | undefined;
  private readonly onBytes: ((bytes: number) => void) | undefined;

  /** `onBytes` is told of every chunk's size: progress and stall detection listen here. */
  constructor(onBytes?: (bytes: number) => void) {
    super({ highWaterMark: 1 << 20 });
    this.onBytes = onBytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.count += chunk.length;
    this.onBytes?.(chunk.length);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.digest = this.hash.digest('hex');
    callback();
  }

  /** Only valid after the stream has finished; throws before, so a partial hash can never be used. */
  result(): Measured {
    if (this.digest === undefined) throw new Error('MeasureStream.result() called before the stream ended');
    return { bytes: this.count, sha256: this.digest };
  }
}

/** Hashes a whole readable (a read-back). */
export async function measureReadable(readable: AsyncIterable<Buffer>): Promise<Measured> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of readable) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { bytes, sha256: hash.digest('hex') };
}
