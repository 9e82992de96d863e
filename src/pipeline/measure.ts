// A pass-through that counts bytes and computes SHA-256 of everything that flows through it.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export interface Measured {
  bytes: number;
  sha256: string;
}

export class MeasureStream extends Transform {
  /** Undefined when only counting: the hash is known from elsewhere. */
  private readonly hash: Hash | undefined;
  private count = 0;
  private digest: string | undefined;
  private ended = false;
  private readonly onBytes: ((bytes: number) => void) | undefined;

  /**
   * `onBytes` is told of every chunk's size: progress and stall detection listen here.
   * `hash: false` only counts (the bytes' hash was taken upstream); `result()` then throws.
   */
  constructor(onBytes?: (bytes: number) => void, options: { hash?: boolean } = {}) {
    super({ highWaterMark: 1 << 20 });
    this.onBytes = onBytes;
    this.hash = options.hash === false ? undefined : createHash('sha256');
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash?.update(chunk);
    this.count += chunk.length;
    this.onBytes?.(chunk.length);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.digest = this.hash?.digest('hex');
    this.ended = true;
    callback();
  }

  /** Only valid after the stream has finished; throws before, so a partial hash can never be used. */
  result(): Measured {
    if (this.digest === undefined) {
      throw new Error(
        this.hash === undefined
          ? 'MeasureStream.result(): this stream only counts bytes'
          : 'MeasureStream.result() called before the stream ended',
      );
    }
    return { bytes: this.count, sha256: this.digest };
  }

  /** The bytes that went through, once the stream has finished; throws before. */
  bytes(): number {
    if (!this.ended) throw new Error('MeasureStream.bytes() called before the stream ended');
    return this.count;
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
