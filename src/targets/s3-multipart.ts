// Streaming upload of one object to S3 with bounded memory: the body is cut into parts, each part is
// sent with its Content-MD5 (the server refuses bytes that changed in transit) and retried from its
// buffer on transient errors; the object's ETag is computed locally, so verification can compare it
// with the server's. A body smaller than one part becomes a single PutObject. Knows nothing of the
// SDK: s3.ts hands it a PartStore.
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

export const MiB = 1024 * 1024;
/** S3's smallest part (every part but the last). */
export const MIN_PART_SIZE = 5 * MiB;
/** Our default and smallest chosen part: 10,000 of them hold 78.1 GiB. */
export const DEFAULT_PART_SIZE = 8 * MiB;
/** S3's largest part. */
export const MAX_PART_SIZE = 5 * 1024 * MiB;
/** S3's limit on parts per upload. */
export const MAX_PARTS = 10_000;

/** The requests one upload makes. Each rejects with the SDK's error; `signal` cancels the request. */
export interface PartStore {
  putObject(body: Buffer, contentMd5: string, signal: AbortSignal): Promise<void>;
  /** Starts a multipart upload; resolves with its upload id. */
  createUpload(signal: AbortSignal): Promise<string>;
  /** Resolves with the ETag the server gave the part (quoted), if it gave one. */
  uploadPart(
    uploadId: string,
    partNumber: number,
    body: Buffer,
    contentMd5: string,
    signal: AbortSignal,
  ): Promise<string | undefined>;
  completeUpload(uploadId: string, parts: readonly CompletedPart[], signal: AbortSignal): Promise<void>;
  abortUpload(uploadId: string, signal: AbortSignal): Promise<void>;
}

export interface CompletedPart {
  partNumber: number;
  etag: string;
}

export interface RetryPolicy {
  /** Tries per request, the first included. */
  attempts: number;
  /** Wait before the second try; doubles on every further try, up to `maxDelayMs`; then jittered. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/** 5 tries, waiting about 0.5, 1, 2 and 4 s in between: under 8 s in all before giving up. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 500, maxDelayMs: 8000 };

/** The body failed while it was read: the source's fault, not the server's. `cause` is the body's error. */
export class BodyReadError extends Error {
  override readonly name = 'BodyReadError';
  constructor(cause: unknown) {
    super(`reading the data to upload failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** The object does not fit the upload's limits; only a config change helps (a permanent error). */
export class UploadLimitError extends Error {
  override readonly name = 'UploadLimitError';
}

export interface UploadedObject {
  bytes: number;
  sha256: string;
  /** The ETag the server must report: the MD5 for a single PutObject, `md5-of-part-md5s-N` for multipart. */
  etag: string;
  /** MD5 (hex) of each part, in order; for a single PutObject, the object's MD5. */
  partMd5s: string[];
  /** Parts of the multipart upload; 0 for a single PutObject. */
  parts: number;
  /** Requests that were sent again after a transient error. */
  retries: number;
}

export interface UploadOptions {
  partSize: number;
  signal: AbortSignal;
  retry: RetryPolicy;
  /** True for errors worth another try: 5xx, SlowDown, timeouts, resets. */
  isTransient(error: unknown): boolean;
  /** True when the error says the multipart upload no longer exists (NoSuchUpload). */
  isUploadGone(error: unknown): boolean;
  /** Parts sent at once (default 2). With the part being filled, at most this + 1 parts are held in memory. */
  concurrency?: number;
  /** Most parts one upload may have (default S3's 10,000; some servers allow fewer). */
  maxParts?: number;
}

/**
 * The part size for an object: `partSize` when configured (5 MiB to 5 GiB), else from `sizeHint` so that
 * the object, with 25% to spare, fits in 10,000 parts: at least 8 MiB, rounded up to whole MiB. Without
 * a hint: 8 MiB, which holds up to 78.1 GiB; a bigger object fails at that point with an error saying
 * to set `partSize`.
 */
export function choosePartSize(options: { partSize?: number | undefined; sizeHint?: number | undefined }): number {
  const { partSize, sizeHint } = options;
  if (partSize !== undefined) {
    if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE || partSize > MAX_PART_SIZE) {
      throw new UploadLimitError(
        `partSize ${partSize} bytes is outside what S3 accepts; set it between 5MiB (${MIN_PART_SIZE} bytes) and 5GiB (${MAX_PART_SIZE} bytes)`,
      );
    }
    return partSize;
  }
  if (sizeHint === undefined || !Number.isSafeInteger(sizeHint) || sizeHint <= 0) return DEFAULT_PART_SIZE;
  const withRoom = sizeHint + Math.ceil(sizeHint / 4);
  const perPart = Math.ceil(Math.ceil(withRoom / MAX_PARTS) / MiB) * MiB;
  return Math.min(MAX_PART_SIZE, Math.max(DEFAULT_PART_SIZE, perPart));
}

/** The ETag S3 gives a multipart object: MD5 of the concatenated binary part MD5s, then `-<parts>`. */
export function multipartEtag(partMd5s: readonly string[]): string {
  const joined = Buffer.concat(partMd5s.map((hex) => Buffer.from(hex, 'hex')));
  return `${createHash('md5').update(joined).digest('hex')}-${partMd5s.length}`;
}

/**
 * Runs `run` until it succeeds, a non-transient error comes, or the tries are used up; waits with
 * exponential backoff and jitter in between. `signal` ends a wait at once (rejecting with its reason).
 */
export async function withRetries<T>(
  run: (attempt: number) => Promise<T>,
  options: { policy: RetryPolicy; signal: AbortSignal; isTransient(error: unknown): boolean; onRetry?(): void },
): Promise<T> {
  const { policy, signal } = options;
  for (let attempt = 1; ; attempt++) {
    try {
      return await run(attempt);
    } catch (error) {
      if (signal.aborted || attempt >= policy.attempts || !options.isTransient(error)) throw error;
      const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      // Jitter: parts that failed together do not all come back at the same instant.
      const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      options.onRetry?.();
      try {
        await sleep(delay, undefined, { signal });
      } catch {
        throw signal.reason;
      }
    }
  }
}

const md5Of = (data: Buffer): Buffer => createHash('md5').update(data).digest();

/**
 * Uploads `body` through `store`. Resolves once the object is complete on the server; on any failure or
 * abort, cancels what is in flight, aborts the multipart upload (best effort: what is left is found by
 * `abortUnfinishedUploads`) and rejects with the first error: the signal's reason when aborted, a
 * BodyReadError when the body failed. The body is destroyed when the upload fails before it ended,
 * so a stalled source cannot hold it up.
 */
export async function uploadStream(store: PartStore, body: Readable, options: UploadOptions): Promise<UploadedObject> {
  const { partSize, signal } = options;
  const concurrency = Math.max(1, options.concurrency ?? 2);
  const maxParts = options.maxParts ?? MAX_PARTS;
  signal.throwIfAborted();

  // Cancels every request of this upload: on abort, and when one part fails for good.
  const stop = new AbortController();
  // Each request in flight and each backoff wait listens on it.
  setMaxListeners(2 * concurrency + 10, stop.signal);
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown): void => {
    if (failure) return;
    failure = { error };
    stop.abort(error);
    body.destroy();
  };
  const onAbort = (): void => fail(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });

  let retries = 0;
  const retrying = <T>(run: (attempt: number) => Promise<T>): Promise<T> =>
    withRetries(run, {
      policy: options.retry,
      signal: stop.signal,
      isTransient: options.isTransient,
      onRetry: () => {
        retries += 1;
      },
    });

  const sha256 = createHash('sha256');
  const partMd5s: string[] = [];
  const completed: CompletedPart[] = [];
  const inFlight = new Set<Promise<void>>();
  // Buffers of parts the server confirmed, reused so memory stays at concurrency + 1 parts.
  const spare: Buffer[] = [];
  let uploadId: string | undefined;
  let bytes = 0;

  const waitForSlot = async (limit: number): Promise<void> => {
    while (inFlight.size > limit) await Promise.race(inFlight);
    if (failure) throw failure.error;
  };

  const sendPart = async (buffer: Buffer, length: number): Promise<void> => {
    const partNumber = partMd5s.length + 1;
    const data = buffer.subarray(0, length);
    const md5 = md5Of(data);
    partMd5s.push(md5.toString('hex'));
    uploadId ??= await retrying(() => store.createUpload(stop.signal));
    const id = uploadId;
    await waitForSlot(concurrency - 1);
    const task: Promise<void> = retrying(() =>
      store.uploadPart(id, partNumber, data, md5.toString('base64'), stop.signal),
    )
      .then((etag) => {
        completed.push({ partNumber, etag: etag || `"${md5.toString('hex')}"` });
        spare.push(buffer);
      }, fail)
      .finally(() => inFlight.delete(task));
    inFlight.add(task);
  };

  try {
    let current: Buffer | undefined;
    let filled = 0;
    const chunks = (body as AsyncIterable<Buffer | Uint8Array | string>)[Symbol.asyncIterator]();
    for (;;) {
      let next: IteratorResult<Buffer | Uint8Array | string>;
      try {
        next = await chunks.next();
      } catch (error) {
        // Our own failures destroy the body too: only an error of the body itself is the source's.
        throw failure ? failure.error : new BodyReadError(error);
      }
      if (next.done || failure) break;
      const received = next.value;
      const chunk = Buffer.isBuffer(received)
        ? received
        : typeof received === 'string'
          ? Buffer.from(received)
          : Buffer.from(received.buffer, received.byteOffset, received.byteLength);
      bytes += chunk.length;
      if (bytes > maxParts * partSize) {
        throw new UploadLimitError(
          `the object is larger than ${maxParts} parts of ${partSize} bytes (${maxParts * partSize} bytes), ` +
            `the most one upload holds; set partSize in the target's config to a bigger size, e.g. ${Math.min(MAX_PART_SIZE, partSize * 4)} bytes`,
        );
      }
      sha256.update(chunk);
      let offset = 0;
      while (offset < chunk.length) {
        current ??= spare.pop() ?? Buffer.allocUnsafeSlow(partSize);
        const copied = chunk.copy(current, filled, offset, Math.min(chunk.length, offset + partSize - filled));
        filled += copied;
        offset += copied;
        if (filled === partSize) {
          await sendPart(current, filled);
          current = undefined;
          filled = 0;
        }
      }
    }
    if (failure) throw failure.error;
    signal.throwIfAborted();

    if (uploadId === undefined) {
      const data = current ? current.subarray(0, filled) : Buffer.alloc(0);
      const md5 = md5Of(data);
      await retrying(() => store.putObject(data, md5.toString('base64'), stop.signal));
      const hex = md5.toString('hex');
      return { bytes, sha256: sha256.digest('hex'), etag: hex, partMd5s: [hex], parts: 0, retries };
    }

    if (current && filled > 0) await sendPart(current, filled);
    await waitForSlot(0);
    const id = uploadId;
    const parts = [...completed].sort((a, b) => a.partNumber - b.partNumber);
    await retrying(async (attempt) => {
      try {
        await store.completeUpload(id, parts, stop.signal);
      } catch (error) {
        // A retried completion that finds the upload gone: the first try completed it. The caller's
        // verification (HeadObject against our ETag) proves whether it did.
        if (attempt > 1 && options.isUploadGone(error)) return;
        throw error;
      }
    });
    return {
      bytes,
      sha256: sha256.digest('hex'),
      etag: multipartEtag(partMd5s),
      partMd5s,
      parts: partMd5s.length,
      retries,
    };
  } catch (error) {
    fail(error);
    await Promise.allSettled([...inFlight]);
    if (uploadId !== undefined) await abortQuietly(store, uploadId, options);
    throw signal.aborted ? signal.reason : failure?.error;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** Aborts an upload, trying twice and waiting at most a few seconds; a leftover is cleaned up later. */
async function abortQuietly(store: PartStore, uploadId: string, options: UploadOptions): Promise<void> {
  const signal = AbortSignal.timeout(Math.max(5000, options.retry.baseDelayMs * 4));
  await withRetries(() => store.abortUpload(uploadId, signal), {
    policy: { ...options.retry, attempts: Math.min(2, options.retry.attempts) },
    signal,
    isTransient: options.isTransient,
  }).catch(() => {});
}
