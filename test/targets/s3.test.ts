// The `s3` target against the real S3 server (Swift s3api): the conformance suite, then what only S3
// has: multipart ETags, bounded memory, credentials and buckets that are wrong, objects replaced
// behind our back, unfinished uploads, and a server that dies or hangs mid-upload (a private proxy
// process of the same Swift cluster, so the shared server stays up for the other tests).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { S3TargetConfig } from '../../src/config/schema.js';
import { VerificationMismatch, verifiedObject } from '../../src/core/evidence.js';
import { TargetError } from '../../src/lib/errors.js';
import { createS3Target, isTransientS3Error, type S3TargetTuning } from '../../src/targets/s3.js';
import { MiB, multipartEtag, type RetryPolicy } from '../../src/targets/s3-multipart.js';
import type { Target } from '../../src/targets/types.js';
import { closedPort } from '../helpers/ports.js';
import { services, uniqueName } from '../helpers/services.js';
import { tampered } from './faulty.js';
import { bodyOf, readAll, sha256, targetConformance } from './suite.js';

process.env.AWS_EC2_METADATA_DISABLED = 'true';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const never = new AbortController().signal;
const quick: RetryPolicy = { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 };
/** A retry policy whose first wait is an hour: a test using it hangs (and times out) if anything is retried. */
const noRetryExpected: RetryPolicy = { attempts: 5, baseDelayMs: 3_600_000, maxDelayMs: 3_600_000 };
const s3 = services().s3;
const md5 = (data: Buffer): string => createHash('md5').update(data).digest('hex');

const admin = new S3Client({
  endpoint: s3.endpoint,
  region: s3.region,
  forcePathStyle: s3.forcePathStyle,
  credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});

/** A temp dir holding the secret key file (0600); removed in `after`. */
let secretsDir: string;
let secretFile: string;
before(async () => {
  secretsDir = await mkdtemp(join(tmpdir(), 'backproof-s3-'));
  secretFile = join(secretsDir, 's3.secret');
  await writeFile(secretFile, `${s3.secretAccessKey}\n`, { mode: 0o600 });
});
after(async () => {
  await rm(secretsDir, { recursive: true, force: true });
  admin.destroy();
});

async function newBucket(): Promise<string> {
  const bucket = uniqueName('bps3');
  await admin.send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

async function objectsIn(bucket: string, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await admin.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) keys.push(o.Key ?? '');
    token = page.NextContinuationToken;
  } while (token);
  return keys;
}

async function uploadsIn(bucket: string, prefix = ''): Promise<{ key: string; uploadId: string }[]> {
  const listed = await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return (listed.Uploads ?? []).map((u) => ({ key: u.Key ?? '', uploadId: u.UploadId ?? '' }));
}

/** Aborts every upload, deletes every object, then the bucket. */
async function dropBucket(bucket: string): Promise<void> {
  for (const u of await uploadsIn(bucket)) {
    await admin.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.key, UploadId: u.uploadId }));
  }
  for (const key of await objectsIn(bucket)) await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  await admin.send(new DeleteBucketCommand({ Bucket: bucket }));
}

function configFor(bucket: string, overrides: Partial<S3TargetConfig> = {}): S3TargetConfig {
  return {
    name: 'offsite',
    type: 's3',
    endpoint: s3.endpoint,
    region: s3.region,
    bucket,
    prefix: 'srv1/',
    forcePathStyle: s3.forcePathStyle,
    accessKeyId: s3.accessKeyId,
    secretAccessKeyFile: secretFile,
    secretAccessKeyEnv: undefined,
    partSize: undefined,
    optional: false,
    ...overrides,
  };
}

/** `total` bytes from a repeated random piece (nothing big held in memory), counting what was pulled. */
function patterned(total: number, onProduced?: (produced: number) => void) {
  const piece = randomBytes(256 * 1024 + 13);
  const hash = createHash('sha256');
  const state = { produced: 0, sha256: '' };
  async function* generate() {
    while (state.produced < total) {
      const chunk = piece.subarray(0, Math.min(piece.length, total - state.produced));
      state.produced += chunk.length;
      hash.update(chunk);
      onProduced?.(state.produced);
      yield chunk;
    }
    state.sha256 = hash.digest('hex');
  }
  return { body: Readable.from(generate()), state };
}

async function assertTargetError(
  promise: Promise<unknown>,
  expected: { permanent: boolean; message?: RegExp; notContaining?: string[] },
): Promise<TargetError> {
  let caught: TargetError | undefined;
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof TargetError, `expected a TargetError, got ${String(error)}`);
    assert.equal(error.permanent, expected.permanent, `permanent should be ${expected.permanent}: ${error.message}`);
    assert.equal(error.target, 'offsite');
    if (expected.message) assert.match(error.message, expected.message);
    for (const text of expected.notContaining ?? []) assert.ok(!error.message.includes(text), error.message);
    caught = error;
    return true;
  });
  return caught as TargetError;
}

for (const [label, partSize] of [
  ['s3', undefined],
  ['s3 with 5 MiB parts', 5 * MiB],
] as const) {
  targetConformance(label, async () => {
    const bucket = await newBucket();
    const config = configFor(bucket, { partSize });
    return {
      target: createS3Target(config),
      cleanup: () => dropBucket(bucket),
      // Replaces the object through the SDK, as another writer with the same credentials could.
      tamper: async (key, how) => {
        const Key = `${config.prefix}${key}`;
        const got = await admin.send(new GetObjectCommand({ Bucket: bucket, Key }));
        const changed = tampered(await readAll(got.Body as Readable), how);
        await admin.send(new PutObjectCommand({ Bucket: bucket, Key, Body: changed }));
      },
      secrets: [s3.secretAccessKey],
    };
  });
}

describe('s3 target', () => {
  let bucket: string;
  const targets: Target[] = [];
  const make = (overrides: Partial<S3TargetConfig> = {}, tuning: S3TargetTuning = {}): Target => {
    const target = createS3Target(configFor(bucket, overrides), { retry: quick, ...tuning });
    targets.push(target);
    return target;
  };
  let counter = 0;
  const fresh = (): string => `job${++counter}-${randomBytes(3).toString('hex')}`;

  before(async () => {
    bucket = await newBucket();
  });
  after(async () => {
    for (const target of targets) await target.close();
    await dropBucket(bucket);
  });

  it('round-trips 20 MiB in 8 MiB parts and proves it by the multipart ETag', async () => {
    const target = make();
    const key = `${fresh()}/2025/11/04/set/main.sql.zst`;
    const data = randomBytes(20 * MiB);
    await target.put(key, bodyOf(data), { signal: never });
    const head = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: `srv1/${key}` }));
    const parts = [0, 8, 16].map((start) => md5(data.subarray(start * MiB, Math.min(data.length, (start + 8) * MiB))));
    assert.equal(head.ETag, `"${multipartEtag(parts)}"`);
    assert.match(head.ETag ?? '', /-3"$/);
    // The ETag check is the proof: `level` is left at the default, capabilities.verification.
    assert.deepEqual(await target.verifyObject(key, { signal: never }), { bytes: data.length, sha256: sha256(data) });
    assert.equal(target.capabilities.verification, 'etag');
    assert.equal(sha256(await readAll(await target.get(key, { signal: never }))), sha256(data));
  });

  it('uses a configured partSize, and a size hint to choose bigger parts', async () => {
    const data = randomBytes(20 * MiB);
    const withPartSize = make({ partSize: 6 * MiB });
    const a = `${fresh()}/a.bin`;
    await withPartSize.put(a, bodyOf(data), { signal: never });
    const headA = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: `srv1/${a}` }));
    assert.match(headA.ETag ?? '', /-4"$/, '20 MiB in 6 MiB parts is 4 parts');
    assert.deepEqual(await withPartSize.verifyObject(a, { signal: never }), {
      bytes: data.length,
      sha256: sha256(data),
    });

    // 200 GiB expected: parts of 26 MiB, so these 20 MiB are one PutObject with a plain MD5 ETag.
    const hinted = make();
    const b = `${fresh()}/b.bin`;
    await hinted.put(b, bodyOf(data), { signal: never, sizeHint: 200 * 1024 * MiB });
    const headB = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: `srv1/${b}` }));
    assert.equal(headB.ETag, `"${md5(data)}"`);
    assert.deepEqual(await hinted.verifyObject(b, { signal: never }), { bytes: data.length, sha256: sha256(data) });
  });

  it('keeps memory bounded while streaming 200 MiB', { timeout: 300_000 }, async () => {
    const target = make();
    const key = `${fresh()}/big.bin`;
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const { body, state } = patterned(200 * MiB, () => {
      peak = Math.max(peak, process.memoryUsage().rss);
    });
    await target.put(key, body, { signal: never });
    const growth = peak - baseline;
    if (process.env.BACKPROOF_TEST_VERBOSE) console.error(`rss growth streaming 200 MiB: ${growth} bytes`);
    // Three 8 MiB parts plus the SDK and stream buffers; buffering the object would be 200 MiB or more.
    assert.ok(growth < 120 * MiB, `rss grew by ${growth} bytes while streaming 200 MiB`);
    assert.deepEqual(await target.verifyObject(key, { signal: never }), { bytes: 200 * MiB, sha256: state.sha256 });
    await target.remove(key);
  });

  it('fails at once, permanently, naming the bucket, when the bucket does not exist', { timeout: 60_000 }, async () => {
    const missing = uniqueName('bpmissing');
    const target = createS3Target(configFor(missing), { retry: noRetryExpected });
    targets.push(target);
    const error = await assertTargetError(target.probeWritable('job'), {
      permanent: true,
      message: new RegExp(`bucket ${missing} does not exist at ${s3.endpoint}.*create it`),
    });
    assert.equal(target.isNotFound(error), false, 'a missing bucket is not a missing object');
    await assertTargetError(target.put('job/x.bin', bodyOf(randomBytes(100)), { signal: never }), {
      permanent: true,
      message: new RegExp(`NoSuchBucket.*bucket ${missing} does not exist`),
    });
    await assertTargetError(target.put('job/y.bin', bodyOf(randomBytes(12 * MiB)), { signal: never }), {
      permanent: true,
      message: /NoSuchBucket/,
    });
  });

  it('fails at once, permanently, saying the credentials were refused, for a wrong secret', {
    timeout: 60_000,
  }, async () => {
    const wrong = `wrong-${randomBytes(8).toString('hex')}`;
    const wrongFile = join(secretsDir, 'wrong.secret');
    await writeFile(wrongFile, wrong, { mode: 0o600 });
    const target = createS3Target(configFor(bucket, { secretAccessKeyFile: wrongFile }), { retry: noRetryExpected });
    targets.push(target);
    const refused = { permanent: true, message: /credentials were refused/, notContaining: [wrong] };
    await assertTargetError(target.probeWritable('job'), {
      ...refused,
      message: /SignatureDoesNotMatch.*credentials were refused.*secretAccessKeyFile/,
    });
    await assertTargetError(target.put('job/x.bin', bodyOf(randomBytes(100)), { signal: never }), refused);
    await assertTargetError(target.put('job/y.bin', bodyOf(randomBytes(12 * MiB)), { signal: never }), refused);
    // HEAD answers carry no error code: the status alone says it.
    await assertTargetError(target.stat('job/x.bin'), refused);
    await assertTargetError(target.list('job/'), refused);
    assert.ok(!target.describe().includes(wrong));
    assert.deepEqual(await objectsIn(bucket, 'srv1/job/'), []);
  });

  it('fails permanently for an unknown access key id', { timeout: 60_000 }, async () => {
    const target = createS3Target(configFor(bucket, { accessKeyId: 'nobody:nothing' }), { retry: noRetryExpected });
    targets.push(target);
    await assertTargetError(target.probeWritable('job'), { permanent: true, message: /credentials were refused/ });
  });

  it('reads the secret from secretAccessKeyEnv, and only when first used', async () => {
    const variable = `BACKPROOF_TEST_S3_SECRET_${process.pid}`;
    const target = make({ secretAccessKeyFile: undefined, secretAccessKeyEnv: variable });
    // The factory read nothing: the variable is set only now.
    process.env[variable] = s3.secretAccessKey;
    try {
      await target.probeWritable(fresh());
    } finally {
      delete process.env[variable];
    }
  });

  it('says what to set when the secret is missing, and tries again on the next call', async () => {
    const missingFile = join(secretsDir, 'not-yet.secret');
    const target = make({ secretAccessKeyFile: missingFile });
    await assertTargetError(target.probeWritable('job'), {
      permanent: true,
      message: /not-yet\.secret does not exist/,
    });
    const noSecret = make({ secretAccessKeyFile: undefined });
    await assertTargetError(noSecret.list(''), {
      permanent: true,
      message: /accessKeyId is set but no secret.*secretAccessKeyFile/,
    });
    // The file appears: the same target now works (a failed connection attempt is not cached).
    await writeFile(missingFile, s3.secretAccessKey, { mode: 0o600 });
    await target.probeWritable(fresh());
  });

  it('connects lazily: creating a target for a dead endpoint does nothing until it is used', async () => {
    const dead = await closedPort();
    const target = make({ endpoint: `http://127.0.0.1:${dead}` });
    assert.equal(target.describe(), `s3 http://127.0.0.1:${dead}/${bucket}/srv1/`);
    await assertTargetError(target.probeWritable('job'), {
      permanent: false,
      message: new RegExp(`nothing answers at http://127.0.0.1:${dead} \\(ECONNREFUSED\\)`),
    });
  });

  it('describes itself without credentials, even when the endpoint URL holds some', () => {
    const target = make({ endpoint: 'http://user:hunter22@127.0.0.1:9/' });
    assert.equal(target.describe(), `s3 http://127.0.0.1:9/${bucket}/srv1/`);
    assert.equal(
      make({ endpoint: undefined, region: 'eu-west-3', prefix: '' }).describe(),
      `s3 https://s3.eu-west-3.amazonaws.com/${bucket}/`,
    );
  });

  it('sees an object replaced behind its back between put and verifyObject, and reports both sides', async () => {
    const target = make();
    const p = fresh();
    for (const [name, replacement] of [
      ['same-size', randomBytes(3 * MiB)],
      ['other-size', randomBytes(3 * MiB + 1)],
      ['multipart', randomBytes(11 * MiB)],
    ] as const) {
      const key = `${p}/${name}.bin`;
      const original = randomBytes(3 * MiB);
      await target.put(key, bodyOf(original), { signal: never });
      if (name === 'multipart') {
        await make({ partSize: 5 * MiB }).put(key, bodyOf(replacement), { signal: never });
      } else {
        await admin.send(new PutObjectCommand({ Bucket: bucket, Key: `srv1/${key}`, Body: replacement }));
      }
      const seen = await target.verifyObject(key, { signal: never });
      assert.deepEqual(seen, { bytes: replacement.length, sha256: sha256(replacement), level: 'reread' });
      // What the core does with it: no proof, a mismatch with the evidence of both sides.
      assert.throws(
        () =>
          verifiedObject('offsite', name, { bytes: original.length, sha256: sha256(original) }, seen, 'etag', 'now'),
        (error: unknown) => {
          assert.ok(error instanceof VerificationMismatch);
          assert.deepEqual(error.evidence, {
            expected: { bytes: original.length, sha256: sha256(original) },
            actual: { bytes: replacement.length, sha256: sha256(replacement), level: 'reread' },
          });
          return true;
        },
      );
    }
  });

  it('reads back and hashes an object it did not write itself', async () => {
    const key = `${fresh()}/old.bin`;
    const data = randomBytes(9 * MiB);
    await make().put(key, bodyOf(data), { signal: never });
    const another = make();
    assert.deepEqual(await another.verifyObject(key, { signal: never }), {
      bytes: data.length,
      sha256: sha256(data),
      level: 'reread',
    });
  });

  it('forgets what it wrote once the key is removed', async () => {
    const target = make();
    const key = `${fresh()}/gone.bin`;
    await target.put(key, bodyOf(randomBytes(1000)), { signal: never });
    await target.remove(key);
    await assert.rejects(target.verifyObject(key, { signal: never }), (error) => target.isNotFound(error));
    // Written again by someone else: read back, not judged by the forgotten ETag.
    const data = randomBytes(2000);
    await admin.send(new PutObjectCommand({ Bucket: bucket, Key: `srv1/${key}`, Body: data }));
    assert.deepEqual(await target.verifyObject(key, { signal: never }), {
      bytes: data.length,
      sha256: sha256(data),
      level: 'reread',
    });
  });

  it('an aborted multipart put leaves no object and no unfinished upload', async () => {
    const target = make({ partSize: 5 * MiB });
    const p = fresh();
    const controller = new AbortController();
    const reason = new Error('run interrupted');
    const { body, state } = patterned(1024 * MiB, (produced) => {
      if (produced >= 17 * MiB) controller.abort(reason);
    });
    await assert.rejects(target.put(`${p}/big.bin`, body, { signal: controller.signal }), (e) => e === reason);
    assert.ok(state.produced < 64 * MiB, `kept reading after the abort: ${state.produced} bytes`);
    assert.deepEqual(await objectsIn(bucket, `srv1/${p}/`), []);
    assert.deepEqual(await uploadsIn(bucket, `srv1/${p}/`), []);
  });

  it('blames the source, not the server, when the body fails mid-upload, and leaves nothing', async () => {
    const target = make({ partSize: 5 * MiB });
    const p = fresh();
    const piece = randomBytes(MiB);
    async function* failing() {
      for (let i = 0; i < 12; i++) yield piece;
      throw new Error('mariadb-dump exited 2');
    }
    await assertTargetError(target.put(`${p}/dump.sql.zst`, Readable.from(failing()), { signal: never }), {
      permanent: false,
      message: /reading the data to upload failed: mariadb-dump exited 2; the upload was aborted/,
    });
    assert.deepEqual(await objectsIn(bucket, `srv1/${p}/`), []);
    assert.deepEqual(await uploadsIn(bucket, `srv1/${p}/`), []);
  });

  it('accepts a body of Uint8Array and string chunks', async () => {
    const target = make();
    const key = `${fresh()}/mixed.bin`;
    const bytes = randomBytes(1000);
    await target.put(key, Readable.from([new Uint8Array(bytes), 'tail']), { signal: never });
    const expected = Buffer.concat([bytes, Buffer.from('tail')]);
    assert.deepEqual(await target.verifyObject(key, { signal: never }), {
      bytes: expected.length,
      sha256: sha256(expected),
    });
  });

  it('abortUnfinishedUploads removes what a killed writer left under the prefix, page by page', async () => {
    const target = make({}, { listPageSize: 2 });
    const job = fresh();
    const stray = async (key: string): Promise<string> => {
      const created = await admin.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      const part = randomBytes(5 * MiB);
      await admin.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId: created.UploadId,
          PartNumber: 1,
          Body: part,
          ContentMD5: createHash('md5').update(part).digest('base64'),
        }),
      );
      return created.UploadId ?? '';
    };
    const mine = [`srv1/${job}/2025/11/04/a/main.sql.zst`, `srv1/${job}/2025/11/04/b/app.tar.zst`, `srv1/${job}/x`];
    for (const key of mine) await stray(key);
    const otherJob = `srv1/${job}x/kept`;
    const outsidePrefix = `elsewhere/${job}/kept`;
    await stray(otherJob);
    await stray(outsidePrefix);

    assert.equal(await target.abortUnfinishedUploads?.(`${job}/`), 3);
    assert.deepEqual(await uploadsIn(bucket, `srv1/${job}/`), []);
    assert.deepEqual(
      (await uploadsIn(bucket, `srv1/${job}x/`)).map((u) => u.key),
      [otherJob],
    );
    assert.deepEqual(
      (await uploadsIn(bucket, 'elsewhere/')).map((u) => u.key),
      [outsidePrefix],
    );
    assert.equal(await target.abortUnfinishedUploads?.(`${job}/`), 0);
    assert.deepEqual(await target.list(`${job}/`), [], 'aborted uploads leave no objects');
  });

  it('lists more keys than one page holds, sorted, without the configured prefix', async () => {
    const target = make({}, { listPageSize: 2 });
    const p = fresh();
    const keys = ['e', 'a/1', 'c', 'a/2', 'b b', 'd.x', 'é'].map((k) => `${p}/${k}`);
    for (const key of keys) await target.put(key, bodyOf(Buffer.from(key)), { signal: never });
    assert.deepEqual(await target.list(`${p}/`), [...keys].sort());
    assert.deepEqual(await target.list(`${p}/a/`), [`${p}/a/1`, `${p}/a/2`]);
  });

  it('sends a part again when the connection drops in the middle of it', { timeout: 120_000 }, async () => {
    const upstream = new URL(s3.endpoint);
    const relay = await startRelay(Number(upstream.port), { dropOnceAfterBytes: 2 * MiB });
    try {
      const target = make({ endpoint: relay.endpoint, partSize: 5 * MiB });
      const key = `${fresh()}/retried.bin`;
      const data = randomBytes(16 * MiB);
      await target.put(key, bodyOf(data), { signal: never });
      assert.equal(relay.dropped(), 1, 'the relay dropped one connection mid-part');
      assert.deepEqual(await target.verifyObject(key, { signal: never }), { bytes: data.length, sha256: sha256(data) });
      const back = await admin.send(new GetObjectCommand({ Bucket: bucket, Key: `srv1/${key}` }));
      assert.equal(sha256(await readAll(back.Body as Readable)), sha256(data));
    } finally {
      await relay.close();
    }
  });

  it('rejects (transient) instead of hanging when the server stops answering mid-upload', {
    timeout: 120_000,
  }, async () => {
    const upstream = new URL(s3.endpoint);
    const relay = await startRelay(Number(upstream.port), { stallAfterBytes: 7 * MiB });
    const job = fresh();
    try {
      const target = make({ endpoint: relay.endpoint, partSize: 5 * MiB }, { idleTimeoutMs: 1500, concurrency: 1 });
      const key = `${job}/stalled.bin`;
      const { body, state } = patterned(1024 * MiB);
      await assertTargetError(target.put(key, body, { signal: never }), {
        permanent: false,
        message: /timed out|TimeoutError/,
      });
      assert.ok(state.produced < 64 * MiB, `kept reading from a stalled upload: ${state.produced} bytes`);
    } finally {
      await relay.close();
    }
    // The abort could not reach the server either: the next run finds the upload and aborts it.
    assert.equal(await make().abortUnfinishedUploads?.(`${job}/`), 1);
  });

  it('rejects (transient) when the server is killed mid-multipart, then reconnects when it is back', {
    timeout: 180_000,
  }, async () => {
    const proxy = await startPrivateProxy();
    try {
      const target = make({ endpoint: proxy.endpoint, partSize: 5 * MiB });
      const job = fresh();
      let killed = false;
      const { body, state } = patterned(1024 * MiB, (produced) => {
        if (!killed && produced >= 16 * MiB) {
          killed = true;
          proxy.kill();
        }
      });
      await assertTargetError(target.put(`${job}/killed.bin`, body, { signal: never }), {
        permanent: false,
        message: new RegExp(`writing "srv1/${job}/killed.bin" in bucket ${bucket} at ${proxy.endpoint} failed`),
      });
      assert.ok(state.produced < 64 * MiB, `kept reading after the server died: ${state.produced} bytes`);
      assert.deepEqual(await objectsIn(bucket, `srv1/${job}/`), [], 'no object from a killed upload');

      // The server comes back on the same address: the same target works again, and finds the
      // upload it could not abort while the server was down.
      await proxy.start();
      assert.equal(await target.abortUnfinishedUploads?.(`${job}/`), 1);
      const data = randomBytes(6 * MiB);
      await target.put(`${job}/after.bin`, bodyOf(data), { signal: never });
      assert.deepEqual(await target.verifyObject(`${job}/after.bin`, { signal: never }), {
        bytes: data.length,
        sha256: sha256(data),
      });
    } finally {
      await proxy.stop();
    }
  });

  it('maps missing objects to not-found errors and nothing else', async () => {
    const target = make();
    const p = fresh();
    for (const call of [() => target.stat(`${p}/none`), () => target.get(`${p}/none`, { signal: never })]) {
      const error = await assertTargetError(call(), { permanent: true, message: /HTTP 404/ });
      assert.equal(target.isNotFound(error), true);
    }
    await target.remove(`${p}/none`);
  });
});

describe('isTransientS3Error', () => {
  const http = (status: number, code: string) =>
    Object.assign(new Error(code), { name: code, Code: code, $metadata: { httpStatusCode: status } });
  const net = (code: string) => Object.assign(new Error(code), { code });

  it('retries server trouble, throttling, timeouts and dropped connections', () => {
    for (const error of [
      http(500, 'InternalError'),
      http(503, 'SlowDown'),
      http(503, 'ServiceUnavailable'),
      http(502, 'Unknown'),
      http(400, 'RequestTimeout'),
      http(400, 'BadDigest'),
      http(429, 'TooManyRequests'),
      net('ECONNRESET'),
      net('ECONNREFUSED'),
      net('EPIPE'),
      net('ETIMEDOUT'),
      Object.assign(new Error('the request socket timed out'), { name: 'TimeoutError' }),
      new Error('socket hang up'),
    ]) {
      assert.equal(isTransientS3Error(error), true, `${error.name} ${error.message}`);
    }
  });

  it('never retries refused credentials, denied access, a missing bucket or a bad request', () => {
    for (const error of [
      http(403, 'InvalidAccessKeyId'),
      http(403, 'SignatureDoesNotMatch'),
      http(403, 'AccessDenied'),
      http(403, 'Unknown'),
      http(404, 'NoSuchBucket'),
      http(404, 'NoSuchKey'),
      http(404, 'NoSuchUpload'),
      http(400, 'InvalidArgument'),
      http(501, 'NotImplemented'),
      Object.assign(new Error('Could not load credentials'), { name: 'CredentialsProviderError' }),
      net('ENOTFOUND'),
      new TargetError('x', 'permanent', { permanent: true }),
    ]) {
      assert.equal(isTransientS3Error(error), false, `${error.name} ${error.message}`);
    }
    assert.equal(isTransientS3Error(new TargetError('x', 'transient', { permanent: false })), true);
  });
});

/**
 * A TCP relay to the real server on 127.0.0.1:`port` that misbehaves once: resets the first
 * connection that has carried `dropOnceAfterBytes` of requests, or, after `stallAfterBytes` in all,
 * stops moving bytes on every connection (a hung server).
 */
async function startRelay(port: number, faults: { dropOnceAfterBytes?: number; stallAfterBytes?: number }) {
  const sockets = new Set<Socket>();
  let dropped = 0;
  let total = 0;
  let stalled = false;
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    for (const s of [client, upstream]) {
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    let carried = 0;
    client.on('data', (chunk: Buffer) => {
      if (stalled) return;
      carried += chunk.length;
      total += chunk.length;
      if (faults.dropOnceAfterBytes !== undefined && dropped === 0 && carried >= faults.dropOnceAfterBytes) {
        dropped += 1;
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      if (faults.stallAfterBytes !== undefined && total >= faults.stallAfterBytes) {
        stalled = true;
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!stalled) client.write(chunk);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port: relayPort } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${relayPort}`,
    dropped: () => dropped,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/**
 * A second Swift proxy process on its own port, in front of the shared Swift cluster: a real S3
 * server this test may kill without taking the shared one (and the other tests) down.
 */
async function startPrivateProxy() {
  const sharedConf = join(dirname(dirname(s3.log)), 'etc', 'proxy-server.conf');
  const dir = await mkdtemp(join(tmpdir(), 'backproof-s3proxy-'));
  const port = await closedPort();
  const conf = join(dir, 'proxy-server.conf');
  const text = (await readFile(sharedConf, 'utf8')).replace(/^bind_port\s*=.*$/m, `bind_port = ${port}`);
  assert.ok(text.includes(`bind_port = ${port}`), `no bind_port in ${sharedConf}`);
  await writeFile(conf, text);
  const endpoint = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let exited: Promise<unknown> = Promise.resolve();

  const start = async (): Promise<void> => {
    const log = openSync(join(dir, 'proxy.log'), 'a');
    try {
      child = spawn('/usr/bin/swift-proxy-server', [conf, '-v'], { stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    exited = once(child, 'exit');
    const started = child;
    // Python imports take a few seconds; bounded, and stops early if the process died.
    for (let i = 0; i < 600; i++) {
      if (started.exitCode !== null) break;
      const up = await fetch(`${endpoint}/healthcheck`).then(
        (r) => r.ok,
        () => false,
      );
      if (up) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const tail = (await readFile(join(dir, 'proxy.log'), 'utf8')).slice(-2000);
    throw new Error(`the private swift proxy on ${endpoint} did not come up:\n${tail}`);
  };

  const kill = (): void => {
    child?.kill('SIGKILL');
  };

  await start();
  return {
    endpoint,
    start,
    kill,
    stop: async () => {
      if (child && child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
