// The streaming multipart upload against the real S3 server (Swift s3api): part cutting, Content-MD5,
// the locally computed ETag, bounded memory, per-part retries and the cleanup after failures. Faults
// are injected by wrapping the real PartStore, so every byte that is sent reaches the real server.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { isTransientS3Error, sdkPartStore } from '../../src/targets/s3.js';
import {
  BodyReadError,
  choosePartSize,
  DEFAULT_PART_SIZE,
  MAX_PART_SIZE,
  MAX_PARTS,
  MiB,
  multipartEtag,
  type PartStore,
  type RetryPolicy,
  type UploadedObject,
  UploadLimitError,
  type UploadOptions,
  uploadStream,
  withRetries,
} from '../../src/targets/s3-multipart.js';
import { services, uniqueName } from '../helpers/services.js';
import { bodyOf, readAll, sha256 } from './suite.js';

process.env.AWS_EC2_METADATA_DISABLED = 'true';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const never = new AbortController().signal;
const quick: RetryPolicy = { attempts: 4, baseDelayMs: 5, maxDelayMs: 20 };
const md5 = (data: Buffer, encoding: 'hex' | 'base64' = 'hex'): string =>
  createHash('md5').update(data).digest(encoding);

/** An error shaped like the SDK's for an HTTP answer. */
function httpError(status: number, code: string): Error {
  return Object.assign(new Error(`injected ${status} ${code}`), {
    name: code,
    Code: code,
    $metadata: { httpStatusCode: status },
  });
}

interface Call {
  op: 'put' | 'create' | 'part' | 'complete' | 'abort';
  partNumber?: number;
  bytes?: number;
  contentMd5?: string;
  /** The part's bytes as they were when the call began (they must still be intact). */
  md5OfBody?: string;
}

/** The real store, watched: every call, parts in flight at once, distinct part buffers; faults on demand. */
function watched(
  inner: PartStore,
  fault?: (call: Call, attempt: number) => { error?: unknown; corrupt?: boolean } | undefined,
) {
  const calls: Call[] = [];
  const attempts = new Map<string, number>();
  const buffers = new Set<ArrayBufferLike>();
  let inFlight = 0;
  let maxInFlight = 0;
  const note = (call: Call): { error?: unknown; corrupt?: boolean } | undefined => {
    calls.push(call);
    const id = `${call.op}:${call.partNumber ?? 0}`;
    const attempt = (attempts.get(id) ?? 0) + 1;
    attempts.set(id, attempt);
    return fault?.(call, attempt);
  };
  const store: PartStore = {
    async putObject(body, contentMd5, signal) {
      const f = note({ op: 'put', bytes: body.length, contentMd5, md5OfBody: md5(body, 'base64') });
      if (f?.error) throw f.error;
      await inner.putObject(body, contentMd5, signal);
    },
    async createUpload(signal) {
      const f = note({ op: 'create' });
      if (f?.error) throw f.error;
      return inner.createUpload(signal);
    },
    async uploadPart(uploadId, partNumber, body, contentMd5, signal) {
      const f = note({ op: 'part', partNumber, bytes: body.length, contentMd5, md5OfBody: md5(body, 'base64') });
      buffers.add(body.buffer);
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        if (f?.error) throw f.error;
        // Bytes changed in transit: the same length, one byte flipped, under the original Content-MD5.
        const sent = f?.corrupt ? Buffer.from(body).fill(0x55, 0, 1) : body;
        if (f?.corrupt && sent.equals(body)) sent[0] = 0xaa;
        return await inner.uploadPart(uploadId, partNumber, sent, contentMd5, signal);
      } finally {
        inFlight -= 1;
      }
    },
    async completeUpload(uploadId, parts, signal) {
      const f = note({ op: 'complete' });
      if (f?.error) throw f.error;
      await inner.completeUpload(uploadId, parts, signal);
    },
    async abortUpload(uploadId, signal) {
      note({ op: 'abort' });
      await inner.abortUpload(uploadId, signal);
    },
  };
  return {
    store,
    calls,
    parts: () => calls.filter((c) => c.op === 'part'),
    /** Part numbers sent, each once (a keep-alive race may make any request go twice). */
    partNumbers: () =>
      [...new Set(calls.filter((c) => c.op === 'part').map((c) => c.partNumber ?? 0))].sort((a, b) => a - b),
    /** The kinds of calls in order, repeats (retries) folded. */
    ops: () => calls.map((c) => c.op).filter((op, i, all) => op !== all[i - 1]),
    buffers,
    maxInFlight: () => maxInFlight,
  };
}

/** `total` bytes of a repeating random pattern in 256 KiB chunks, counting what was pulled. */
function patterned(total: number, options: { failAfter?: number; onProduced?: (n: number) => void } = {}) {
  const piece = randomBytes(256 * 1024 + 7);
  const hash = createHash('sha256');
  const state = { produced: 0, sha256: '' };
  async function* generate() {
    while (state.produced < total) {
      if (options.failAfter !== undefined && state.produced >= options.failAfter) throw new Error('the source failed');
      const chunk = piece.subarray(0, Math.min(piece.length, total - state.produced));
      state.produced += chunk.length;
      hash.update(chunk);
      options.onProduced?.(state.produced);
      yield chunk;
    }
    state.sha256 = hash.digest('hex');
  }
  return { body: Readable.from(generate()), state };
}

describe('multipart upload against the real S3 server', () => {
  const s3 = services().s3;
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: s3.forcePathStyle,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
  });
  let sdk: typeof import('@aws-sdk/client-s3');
  const bucket = uniqueName('bpmultipart');
  let counter = 0;
  const freshKey = (): string => `job/${++counter}-${randomBytes(3).toString('hex')}/object.bin`;
  const storeFor = (key: string): PartStore => sdkPartStore({ sdk, client }, bucket, key);
  const options = (extra: Partial<UploadOptions> = {}): UploadOptions => ({
    partSize: 5 * MiB,
    signal: never,
    retry: quick,
    isTransient: isTransientS3Error,
    isUploadGone: (error) => (error as { name?: string }).name === 'NoSuchUpload',
    ...extra,
  });

  const head = (key: string) => client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  const uploadsOf = async (key: string): Promise<string[]> => {
    const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
    return (listed.Uploads ?? []).map((u) => u.UploadId ?? '');
  };
  const objectsUnder = async (prefix: string): Promise<string[]> => {
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    return (listed.Contents ?? []).map((o) => o.Key ?? '');
  };
  /** Nothing under `key`: no object and no unfinished upload. */
  const assertNothingLeft = async (key: string): Promise<void> => {
    assert.deepEqual(await objectsUnder(key), [], 'an object was left behind');
    assert.deepEqual(await uploadsOf(key), [], 'an unfinished multipart upload was left behind');
  };
  const assertStored = async (key: string, result: UploadedObject, expectedSha256: string): Promise<void> => {
    const info = await head(key);
    assert.equal(info.ContentLength, result.bytes);
    assert.equal(info.ETag, `"${result.etag}"`, 'the locally computed ETag is the one the server reports');
    const back = await readAll(
      (await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body as Readable,
    );
    assert.equal(sha256(back), expectedSha256);
    assert.equal(result.sha256, expectedSha256);
  };

  before(async () => {
    sdk = await import('@aws-sdk/client-s3');
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  after(async () => {
    for (const upload of (await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []) {
      await client.send(
        new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }),
      );
    }
    for (const key of await objectsUnder('')) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    client.destroy();
  });

  it('cuts 20 MiB into 8+8+4 MiB parts, each with its Content-MD5, and computes the ETag the server reports', async () => {
    const key = freshKey();
    const data = randomBytes(20 * MiB);
    const w = watched(storeFor(key));
    const result = await uploadStream(w.store, bodyOf(data), options({ partSize: 8 * MiB }));
    assert.deepEqual(w.partNumbers(), [1, 2, 3]);
    const slices = [data.subarray(0, 8 * MiB), data.subarray(8 * MiB, 16 * MiB), data.subarray(16 * MiB)];
    for (const part of w.parts()) {
      const slice = slices[(part.partNumber ?? 0) - 1] as Buffer;
      assert.equal(part.bytes, slice.length, `size of part ${part.partNumber}`);
      assert.equal(part.contentMd5, md5(slice, 'base64'), `Content-MD5 of part ${part.partNumber}`);
    }
    assert.deepEqual(
      result.partMd5s,
      slices.map((s) => md5(s)),
    );
    assert.equal(result.parts, 3);
    assert.match(result.etag, /^[0-9a-f]{32}-3$/);
    await assertStored(key, result, sha256(data));
  });

  for (const [label, size] of [
    ['an empty body', 0],
    ['a 1-byte body', 1],
    ['a body one byte short of a part', 5 * MiB - 1],
  ] as const) {
    it(`sends ${label} as one PutObject with its Content-MD5`, async () => {
      const key = freshKey();
      const data = randomBytes(size);
      const w = watched(storeFor(key));
      const result = await uploadStream(w.store, bodyOf(data), options());
      assert.deepEqual(w.ops(), ['put']);
      assert.equal(w.calls[0]?.contentMd5, md5(data, 'base64'));
      assert.equal(result.parts, 0);
      assert.equal(result.etag, md5(data));
      await assertStored(key, result, sha256(data));
    });
  }

  it('sends a body of exactly one part as a one-part multipart upload', async () => {
    const key = freshKey();
    const data = randomBytes(5 * MiB);
    const w = watched(storeFor(key));
    const result = await uploadStream(w.store, bodyOf(data), options());
    assert.deepEqual(w.ops(), ['create', 'part', 'complete']);
    assert.equal(result.etag, multipartEtag([md5(data)]));
    assert.match(result.etag, /-1$/);
    await assertStored(key, result, sha256(data));
  });

  for (const concurrency of [1, 2, 3]) {
    // Six parts: more than the buffers allowed even at the highest concurrency, so buffers are reused.
    it(`holds at most ${concurrency + 1} part buffers and sends at most ${concurrency} at once (30 MiB in 5 MiB parts)`, async () => {
      const key = freshKey();
      const { body, state } = patterned(30 * MiB);
      const w = watched(storeFor(key));
      const result = await uploadStream(w.store, body, options({ concurrency }));
      assert.deepEqual(w.partNumbers(), [1, 2, 3, 4, 5, 6]);
      assert.ok(w.maxInFlight() <= concurrency, `${w.maxInFlight()} parts were in flight at once`);
      assert.ok(w.buffers.size <= concurrency + 1, `${w.buffers.size} part buffers were allocated`);
      for (const part of w.parts()) assert.equal(part.md5OfBody, part.contentMd5, 'a part buffer changed while in use');
      await assertStored(key, result, state.sha256);
    });
  }

  it('sends a part again when the server refuses its bytes (BadDigest), from the buffered part', async () => {
    const key = freshKey();
    const data = randomBytes(12 * MiB);
    const w = watched(storeFor(key), (call, attempt) =>
      call.op === 'part' && call.partNumber === 2 && attempt === 1 ? { corrupt: true } : undefined,
    );
    const result = await uploadStream(w.store, bodyOf(data), options());
    assert.deepEqual(w.partNumbers(), [1, 2, 3]);
    assert.ok(w.parts().filter((p) => p.partNumber === 2).length >= 2, 'part 2 was sent again');
    assert.ok(result.retries >= 1);
    await assertStored(key, result, sha256(data));
  });

  it('retries SlowDown and 503 on a part with backoff, then succeeds', async () => {
    const key = freshKey();
    const data = randomBytes(11 * MiB);
    const w = watched(storeFor(key), (call, attempt) => {
      if (call.op !== 'part' || call.partNumber !== 1) return undefined;
      if (attempt === 1) return { error: httpError(503, 'SlowDown') };
      if (attempt === 2) return { error: httpError(503, 'ServiceUnavailable') };
      return undefined;
    });
    const result = await uploadStream(w.store, bodyOf(data), options());
    assert.ok(w.parts().filter((p) => p.partNumber === 1).length >= 3);
    assert.ok(result.retries >= 2);
    await assertStored(key, result, sha256(data));
  });

  it('gives up after the policy’s tries on a part that keeps failing, and aborts the upload', async () => {
    const key = freshKey();
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    const w = watched(storeFor(key), (call) =>
      call.op === 'part' && call.partNumber === 2 ? { error: reset } : undefined,
    );
    const { body } = patterned(40 * MiB);
    await assert.rejects(uploadStream(w.store, body, options()), (error) => error === reset);
    assert.equal(w.parts().filter((p) => p.partNumber === 2).length, quick.attempts);
    assert.ok(
      w.calls.some((c) => c.op === 'abort'),
      'the upload was aborted',
    );
    assert.equal(w.calls.filter((c) => c.op === 'complete').length, 0);
    await assertNothingLeft(key);
  });

  it('fails at once on a permanent error, stops reading the body, and aborts the upload', async () => {
    const key = freshKey();
    const denied = httpError(403, 'AccessDenied');
    const w = watched(storeFor(key), (call) =>
      call.op === 'part' && call.partNumber === 2 ? { error: denied } : undefined,
    );
    const total = 512 * MiB;
    const { body, state } = patterned(total);
    await assert.rejects(uploadStream(w.store, body, options()), (error) => error === denied);
    assert.equal(w.parts().filter((p) => p.partNumber === 2).length, 1, 'a permanent error is not retried');
    assert.ok(state.produced < 64 * MiB, `the body was read on after the failure: ${state.produced} bytes`);
    assert.ok(body.destroyed, 'the body is destroyed so a stalled source cannot hold the upload');
    await assertNothingLeft(key);
  });

  it('aborts the upload when the body fails part-way, and rejects with the body’s error', async () => {
    const key = freshKey();
    const { body } = patterned(64 * MiB, { failAfter: 12 * MiB });
    const w = watched(storeFor(key));
    await assert.rejects(uploadStream(w.store, body, options()), (error: unknown) => {
      assert.ok(error instanceof BodyReadError, String(error));
      assert.match(error.message, /reading the data to upload failed: the source failed/);
      return true;
    });
    assert.ok(w.parts().length >= 1, 'parts were sent before the failure');
    assert.ok(
      w.calls.some((c) => c.op === 'abort'),
      'the upload was aborted',
    );
    await assertNothingLeft(key);
  });

  it('cancels the part in flight on abort, aborts the upload, and rejects with the signal’s reason', async () => {
    const key = freshKey();
    const controller = new AbortController();
    const reason = new Error('run interrupted');
    const w = watched(storeFor(key), (call) => {
      if (call.op === 'part' && call.partNumber === 3) controller.abort(reason);
      return undefined;
    });
    const { body, state } = patterned(1024 * MiB);
    await assert.rejects(uploadStream(w.store, body, options({ signal: controller.signal })), (e) => e === reason);
    assert.ok(state.produced < 64 * MiB, `kept reading after the abort: ${state.produced} bytes`);
    assert.equal(w.calls.filter((c) => c.op === 'complete').length, 0);
    await assertNothingLeft(key);
  });

  it('rejects an already aborted signal before sending anything', async () => {
    const key = freshKey();
    const controller = new AbortController();
    controller.abort(new Error('run interrupted'));
    const w = watched(storeFor(key));
    await assert.rejects(uploadStream(w.store, bodyOf(randomBytes(100)), options({ signal: controller.signal })), {
      message: 'run interrupted',
    });
    assert.deepEqual(w.calls, []);
    await assertNothingLeft(key);
  });

  it('counts a completion as done when its retry finds the upload already completed', async () => {
    const key = freshKey();
    const data = randomBytes(6 * MiB);
    const inner = storeFor(key);
    let completions = 0;
    // The first completion reaches the server, but its answer is lost on the way back.
    const store: PartStore = {
      ...inner,
      async completeUpload(uploadId, parts, signal) {
        completions += 1;
        await inner.completeUpload(uploadId, parts, signal);
        if (completions === 1) throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      },
    };
    const result = await uploadStream(store, bodyOf(data), options());
    assert.equal(completions, 2);
    await assertStored(key, result, sha256(data));
  });

  it('stops an object that outgrows the part limit, says to set partSize, and aborts the upload', async () => {
    const key = freshKey();
    const { body, state } = patterned(64 * MiB);
    const w = watched(storeFor(key));
    await assert.rejects(uploadStream(w.store, body, options({ maxParts: 3 })), (error: unknown) => {
      assert.ok(error instanceof UploadLimitError);
      assert.match(error.message, /larger than 3 parts of 5242880 bytes \(15728640 bytes\).*set partSize/);
      return true;
    });
    assert.ok(w.partNumbers().length <= 3, `parts sent: ${w.partNumbers().join(', ')}`);
    assert.ok(state.produced < 20 * MiB, `kept reading past the limit: ${state.produced} bytes`);
    await assertNothingLeft(key);
  });
});

describe('choosePartSize', () => {
  it('uses 8 MiB without a hint, and for anything up to about 62 GiB', () => {
    assert.equal(choosePartSize({}), DEFAULT_PART_SIZE);
    assert.equal(DEFAULT_PART_SIZE, 8 * MiB);
    assert.equal(choosePartSize({ sizeHint: 0 }), 8 * MiB);
    assert.equal(choosePartSize({ sizeHint: 1 }), 8 * MiB);
    assert.equal(choosePartSize({ sizeHint: 1024 * MiB }), 8 * MiB);
    assert.equal(choosePartSize({ sizeHint: 62 * 1024 * MiB }), 8 * MiB);
  });

  it('grows with the hint, in whole MiB, so the object and 25% more fit in 10,000 parts', () => {
    for (const hint of [80 * 1024 * MiB, 200 * 1024 * MiB, 1024 * 1024 * MiB, 3 * 1024 * 1024 * MiB + 12_345]) {
      const part = choosePartSize({ sizeHint: hint });
      assert.equal(part % MiB, 0, `${part} is whole MiB`);
      assert.ok(part * MAX_PARTS >= hint * 1.25, `${part} x 10,000 holds ${hint} with room`);
      assert.ok((part - MiB) * MAX_PARTS < hint * 1.25, `${part} is the smallest such size`);
    }
    assert.equal(choosePartSize({ sizeHint: 200 * 1024 * MiB }), 26 * MiB);
  });

  it('never goes past S3’s 5 GiB part, and ignores a hint that is not a size', () => {
    assert.equal(choosePartSize({ sizeHint: Number.MAX_SAFE_INTEGER }), MAX_PART_SIZE);
    assert.equal(choosePartSize({ sizeHint: -5 }), 8 * MiB);
    assert.equal(choosePartSize({ sizeHint: 1.5 }), 8 * MiB);
  });

  it('takes a configured part size as it is, between 5 MiB and 5 GiB', () => {
    assert.equal(choosePartSize({ partSize: 5 * MiB, sizeHint: 1024 * 1024 * MiB }), 5 * MiB);
    assert.equal(choosePartSize({ partSize: 64 * MiB }), 64 * MiB);
    assert.equal(choosePartSize({ partSize: MAX_PART_SIZE }), MAX_PART_SIZE);
    for (const bad of [0, 5 * MiB - 1, MAX_PART_SIZE + 1, 6.5 * MiB + 0.5]) {
      assert.throws(() => choosePartSize({ partSize: bad }), UploadLimitError);
    }
    assert.throws(() => choosePartSize({ partSize: 1 }), /between 5MiB \(5242880 bytes\) and 5GiB/);
  });
});

describe('multipartEtag', () => {
  it('is the MD5 of the binary part MD5s, then -<parts>', () => {
    const parts = [Buffer.from('a'), Buffer.from('bc')];
    const expected = createHash('md5')
      .update(Buffer.concat(parts.map((p) => createHash('md5').update(p).digest())))
      .digest('hex');
    assert.equal(multipartEtag(parts.map((p) => md5(p))), `${expected}-2`);
  });
});

describe('withRetries', () => {
  const transient = (error: unknown): boolean => (error as Error).message === 'transient';

  it('tries again on transient errors, up to the policy’s tries', async () => {
    let calls = 0;
    await assert.rejects(
      withRetries(
        async () => {
          calls += 1;
          throw new Error('transient');
        },
        { policy: quick, signal: never, isTransient: transient },
      ),
      /transient/,
    );
    assert.equal(calls, quick.attempts);
  });

  it('returns the first success, and passes the attempt number', async () => {
    const seen: number[] = [];
    let retried = 0;
    const value = await withRetries(
      async (attempt) => {
        seen.push(attempt);
        if (attempt < 3) throw new Error('transient');
        return 'ok';
      },
      {
        policy: quick,
        signal: never,
        isTransient: transient,
        onRetry: () => {
          retried += 1;
        },
      },
    );
    assert.equal(value, 'ok');
    assert.deepEqual(seen, [1, 2, 3]);
    assert.equal(retried, 2);
  });

  it('never retries a permanent error', async () => {
    let calls = 0;
    await assert.rejects(
      withRetries(
        async () => {
          calls += 1;
          throw new Error('permanent');
        },
        { policy: quick, signal: never, isTransient: transient },
      ),
      /permanent/,
    );
    assert.equal(calls, 1);
  });

  it('ends a backoff wait at once when the signal aborts, with its reason', async () => {
    const controller = new AbortController();
    const reason = new Error('run interrupted');
    let calls = 0;
    const pending = withRetries(
      async () => {
        calls += 1;
        // The wait after this failure is about an hour: only the abort can end it.
        setImmediate(() => controller.abort(reason));
        throw new Error('transient');
      },
      {
        policy: { attempts: 3, baseDelayMs: 3_600_000, maxDelayMs: 3_600_000 },
        signal: controller.signal,
        isTransient: transient,
      },
    );
    await assert.rejects(pending, (e) => e === reason);
    assert.equal(calls, 1);
  });
});
