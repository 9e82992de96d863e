// Target `s3`: a bucket on S3-compatible object storage. No rename on S3, so objects are written
// straight to their final key and the manifest alone marks a set complete. Writes are streamed in
// parts with Content-MD5 (s3-multipart.ts); verification compares HeadObject's size and ETag with the
// ones computed while writing, and reads the object back when they differ or were not written here.
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import type { S3TargetConfig } from '../config/schema.js';
import { TargetError } from '../lib/errors.js';
import { readSecret, SecretError } from '../lib/secrets.js';
import { measureReadable } from '../pipeline/measure.js';
import {
  BodyReadError,
  choosePartSize,
  DEFAULT_RETRY,
  type PartStore,
  type RetryPolicy,
  UploadLimitError,
  uploadStream,
  withRetries,
} from './s3-multipart.js';
import type { ObjectStat, Target } from './types.js';

type Sdk = typeof import('@aws-sdk/client-s3');

/** Knobs the config does not expose; tests turn them down to make failures quick. */
export interface S3TargetTuning {
  /** Tries per request and backoff (default: 5 tries, about 0.5 s doubling to 4 s). */
  retry?: RetryPolicy;
  /** TCP connect timeout (default 10 s). */
  connectTimeoutMs?: number;
  /** A request with no bytes moving for this long fails as transient (default 60 s). */
  idleTimeoutMs?: number;
  /** Parts uploaded at once (default 2; memory holds this + 1 parts). */
  concurrency?: number;
  /** Keys per ListObjectsV2 / ListMultipartUploads page (default: the server's, usually 1000). */
  listPageSize?: number;
}

/** What `put` computed, kept for `verifyObject` for the target's lifetime. */
interface WrittenObject {
  bytes: number;
  sha256: string;
  /** Unquoted, lower case: `<md5>` or `<md5-of-md5s>-<parts>`. */
  etag: string;
  partMd5s: string[];
}

export interface Connection {
  sdk: Sdk;
  client: S3Client;
}

/** Network errors worth another try: the server restarted, a proxy dropped us, DNS hiccuped. */
const TRANSIENT_NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
]);
/** S3 error codes worth another try, whatever their HTTP status. */
const TRANSIENT_S3_CODES = new Set([
  'SlowDown',
  'RequestTimeout',
  'InternalError',
  'ServiceUnavailable',
  'OperationAborted',
  // The server received other bytes than we sent (checked by Content-MD5): a fresh send fixes it.
  'BadDigest',
  'IncompleteBody',
  'TimeoutError',
  'RequestTimeoutException',
]);
const NOT_FOUND_CODES = new Set(['NoSuchKey', 'NotFound']);

interface S3ErrorShape {
  name?: string;
  Code?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

const shapeOf = (error: unknown): S3ErrorShape => (typeof error === 'object' && error !== null ? error : {});
const statusOf = (error: unknown): number | undefined => shapeOf(error).$metadata?.httpStatusCode;
/** The S3 error code (`NoSuchBucket`), or the SDK's error name when the body had none (HEAD). */
const s3CodeOf = (error: unknown): string => shapeOf(error).Code ?? shapeOf(error).name ?? '';

function isS3NotFound(error: unknown): boolean {
  return statusOf(error) === 404 && NOT_FOUND_CODES.has(s3CodeOf(error));
}

/** Whether retrying `error` can help. HTTP answers decide by status and code; anything else is network. */
export function isTransientS3Error(error: unknown): boolean {
  if (error instanceof TargetError) return !error.permanent;
  if (error instanceof UploadLimitError || error instanceof SecretError || error instanceof BodyReadError) return false;
  const status = statusOf(error);
  const code = s3CodeOf(error);
  if (TRANSIENT_S3_CODES.has(code)) return true;
  if (status !== undefined) return status >= 500 ? status !== 501 : status === 408 || status === 429;
  if (code === 'CredentialsProviderError' || code === 'ProviderError') return false;
  const errno = shapeOf(error).code;
  if (errno !== undefined) return TRANSIENT_NETWORK_CODES.has(errno);
  // No HTTP answer and no errno (a socket hang-up, a parser error): the connection is to blame.
  return true;
}

export function createS3Target(config: S3TargetConfig, tuning: S3TargetTuning = {}): Target {
  const { name, bucket, region } = config;
  const prefix = config.prefix;
  const retry = tuning.retry ?? DEFAULT_RETRY;
  const endpointShown = shownEndpoint(config.endpoint, region);
  const written = new Map<string, WrittenObject>();

  let connection: Promise<Connection> | undefined;
  const connect = (): Promise<Connection> => {
    connection ??= openConnection(config, tuning).catch((error: unknown) => {
      connection = undefined; // a missing secret file may be fixed before the next call
      throw error;
    });
    return connection;
  };

  /** `prefix + key`, refusing keys that are empty, absolute, or have `.`/`..`/empty segments. */
  const fullKey = (key: string, kind: 'key' | 'prefix' = 'key'): string => {
    const segments = key.split('/');
    if (kind === 'prefix' && segments.at(-1) === '') segments.pop();
    const bad =
      (kind === 'key' && key.length === 0) ||
      key.startsWith('/') ||
      (key.length > 0 && segments.some((s) => s === '' || s === '.' || s === '..'));
    if (bad) {
      throw new TargetError(name, `refusing ${kind} outside the target's prefix: ${JSON.stringify(key)}`, {
        permanent: true,
      });
    }
    return prefix + key;
  };

  const where = `bucket ${bucket} at ${endpointShown}`;

  /** A TargetError saying what failed, where, and what to do. */
  const failure = (action: string, key: string, error: unknown): TargetError => {
    if (error instanceof TargetError) return error;
    if (error instanceof SecretError) {
      return new TargetError(name, error.message, { permanent: true, cause: error });
    }
    // The full S3 key: what someone looks for in the bucket.
    const what = `${action} ${JSON.stringify(prefix + key)} in ${where} failed`;
    if (error instanceof UploadLimitError) {
      return new TargetError(name, `${what}: ${error.message}`, { permanent: true, cause: error });
    }
    if (error instanceof BodyReadError) {
      // Not the server's fault: the upload was aborted; a new run (or a reopened source) may succeed.
      return new TargetError(name, `${what}: ${error.message}; the upload was aborted`, {
        permanent: false,
        cause: error,
      });
    }
    const status = statusOf(error);
    const code = s3CodeOf(error);
    const transient = isTransientS3Error(error);
    let reason: string;
    if (status === undefined) {
      const errno = shapeOf(error).code;
      reason =
        code === 'CredentialsProviderError'
          ? `no credentials: set accessKeyId and secretAccessKeyFile (or secretAccessKeyEnv) in the target's config (${(error as Error).message})`
          : errno === 'ECONNREFUSED'
            ? `nothing answers at ${endpointShown} (${errno}); check that the server runs and that endpoint is right`
            : errno === 'ENOTFOUND'
              ? `the host of ${endpointShown} does not resolve (${errno}); check endpoint`
              : `${(error as Error).message ?? String(error)}${transient ? ' (the connection failed; it may work on the next run)' : ''}`;
    } else {
      reason = `HTTP ${status}${code && code !== 'Unknown' ? ` ${code}` : ''}: ${hintFor(status, code, { bucket, prefix, endpoint: endpointShown })}`;
    }
    return new TargetError(name, `${what}: ${reason}`, { permanent: !transient, cause: error });
  };

  /** Sends one request, retried on transient errors (every request we send is idempotent or repeatable). */
  const send = async <T>(run: (c: Connection) => Promise<T>, signal?: AbortSignal): Promise<T> => {
    const c = await connect();
    return withRetries(() => run(c), {
      policy: retry,
      signal: signal ?? new AbortController().signal,
      isTransient: isTransientS3Error,
    });
  };

  const reread = async (key: string, signal: AbortSignal): Promise<{ bytes: number; sha256: string }> => {
    const k = fullKey(key);
    const body = await send(
      async ({ sdk, client }) =>
        (await client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: k }), { abortSignal: signal }))
          .Body as Readable,
      signal,
    );
    return measureReadable(body);
  };

  const partStore = (c: Connection, key: string): PartStore => sdkPartStore(c, bucket, key);

  return {
    name,
    type: 's3',
    optional: config.optional,
    capabilities: { atomicRename: false, freeSpace: false, verification: 'etag' },
    describe: () => `s3 ${endpointShown}/${bucket}/${prefix}`,

    async put(key, body, { signal, sizeHint }) {
      const k = fullKey(key);
      signal.throwIfAborted();
      written.delete(k);
      try {
        const partSize = choosePartSize({ partSize: config.partSize, sizeHint });
        const uploaded = await uploadStream(partStore(await connect(), k), body, {
          partSize,
          signal,
          retry,
          isTransient: isTransientS3Error,
          isUploadGone: (error) => s3CodeOf(error) === 'NoSuchUpload',
          concurrency: tuning.concurrency,
        });
        written.set(k, {
          bytes: uploaded.bytes,
          sha256: uploaded.sha256,
          etag: uploaded.etag,
          partMd5s: uploaded.partMd5s,
        });
        // Proven by verifyObject (HeadObject against these), not here.
        return {};
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        throw failure('writing', key, error);
      }
    },

    async get(key, { signal }) {
      const k = fullKey(key);
      try {
        return await send(
          async ({ sdk, client }) =>
            (await client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: k }), { abortSignal: signal }))
              .Body as Readable,
          signal,
        );
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        throw failure('reading', key, error);
      }
    },

    async stat(key): Promise<ObjectStat> {
      const k = fullKey(key);
      try {
        const head = await send(({ sdk, client }) =>
          client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: k })),
        );
        if (head.ContentLength === undefined) throw new Error('the server gave no Content-Length for the object');
        return { bytes: head.ContentLength };
      } catch (error) {
        throw failure('stat of', key, error);
      }
    },

    async list(listPrefix) {
      const full = fullKey(listPrefix, 'prefix');
      const keys: string[] = [];
      try {
        let token: string | undefined;
        do {
          const page = await send(({ sdk, client }) =>
            client.send(
              new sdk.ListObjectsV2Command({
                Bucket: bucket,
                Prefix: full,
                ContinuationToken: token,
                MaxKeys: tuning.listPageSize,
              }),
            ),
          );
          for (const object of page.Contents ?? []) {
            if (object.Key?.startsWith(prefix)) keys.push(object.Key.slice(prefix.length));
          }
          token = page.IsTruncated ? page.NextContinuationToken : undefined;
          if (page.IsTruncated && !token) throw new Error('the server said the listing goes on but gave no token');
        } while (token);
      } catch (error) {
        throw failure('listing', listPrefix, error);
      }
      return keys.sort();
    },

    async remove(key) {
      const k = fullKey(key);
      written.delete(k);
      try {
        await send(({ sdk, client }) => client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: k })));
      } catch (error) {
        if (!isS3NotFound(error)) throw failure('removing', key, error);
      }
    },

    async verifyObject(key, { signal }) {
      const k = fullKey(key);
      const mine = written.get(k);
      try {
        if (mine) {
          const head = await send(
            ({ sdk, client }) =>
              client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: k }), { abortSignal: signal }),
            signal,
          );
          if (head.ContentLength === mine.bytes && normalizeEtag(head.ETag) === mine.etag) {
            // The server's size and its MD5-based checksum of what it stored match ours: the bytes are
            // the ones we hashed. `level` is the default, capabilities.verification ('etag').
            return { bytes: mine.bytes, sha256: mine.sha256 };
          }
          // Another size or ETag: the object was replaced, or the server's ETags are not MD5-based.
          // The bytes decide; the core compares them with what was written and reports both.
        }
        return { ...(await reread(key, signal)), level: 'reread' };
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        throw failure('verifying', key, error);
      }
    },

    async abortUnfinishedUploads(uploadPrefix) {
      const full = fullKey(uploadPrefix, 'prefix');
      try {
        const uploads: { key: string; uploadId: string }[] = [];
        let keyMarker: string | undefined;
        let uploadIdMarker: string | undefined;
        for (;;) {
          const page = await send(({ sdk, client }) =>
            client.send(
              new sdk.ListMultipartUploadsCommand({
                Bucket: bucket,
                Prefix: full,
                KeyMarker: keyMarker,
                UploadIdMarker: uploadIdMarker,
                MaxUploads: tuning.listPageSize,
              }),
            ),
          );
          for (const upload of page.Uploads ?? []) {
            if (upload.Key && upload.UploadId) uploads.push({ key: upload.Key, uploadId: upload.UploadId });
          }
          if (!page.IsTruncated) break;
          if (page.NextKeyMarker === keyMarker && page.NextUploadIdMarker === uploadIdMarker) {
            throw new Error('the server said the upload listing goes on but gave no new marker');
          }
          keyMarker = page.NextKeyMarker;
          uploadIdMarker = page.NextUploadIdMarker;
        }
        const c = await connect();
        for (const upload of uploads) {
          await withRetries(() => partStore(c, upload.key).abortUpload(upload.uploadId, AbortSignal.timeout(60_000)), {
            policy: retry,
            signal: new AbortController().signal,
            isTransient: isTransientS3Error,
          });
        }
        return uploads.length;
      } catch (error) {
        throw failure('aborting unfinished uploads under', uploadPrefix, error);
      }
    },

    async probeWritable(job) {
      const key = `${job}/.probe.tmp-${randomBytes(4).toString('hex')}`;
      const k = fullKey(key);
      const data = Buffer.from('probe\n');
      try {
        const c = await connect();
        const md5 = createHash('md5').update(data).digest('base64');
        await send(() => partStore(c, k).putObject(data, md5, new AbortController().signal));
        await send(({ sdk, client }) => client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: k })));
      } catch (error) {
        throw failure('writing a probe object', key, error);
      }
    },

    isNotFound(error) {
      let current: unknown = error;
      for (let depth = 0; depth < 8 && typeof current === 'object' && current !== null; depth++) {
        if (isS3NotFound(current)) return true;
        current = (current as { cause?: unknown }).cause;
      }
      return false;
    },

    async close() {
      const open = connection;
      connection = undefined;
      if (!open) return;
      const c = await open.catch(() => undefined);
      c?.client.destroy();
    },
  };
}

/** The requests of one object's upload, through the SDK. Exported for the multipart tests. */
export function sdkPartStore({ sdk, client }: Connection, bucket: string, key: string): PartStore {
  return {
    async putObject(body, contentMd5, signal) {
      await client.send(new sdk.PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentMD5: contentMd5 }), {
        abortSignal: signal,
      });
    },
    async createUpload(signal) {
      const created = await client.send(new sdk.CreateMultipartUploadCommand({ Bucket: bucket, Key: key }), {
        abortSignal: signal,
      });
      if (!created.UploadId) throw new Error('the server started a multipart upload but gave no upload id');
      return created.UploadId;
    },
    async uploadPart(uploadId, partNumber, body, contentMd5, signal) {
      const part = await client.send(
        new sdk.UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber: partNumber,
          Body: body,
          ContentMD5: contentMd5,
        }),
        { abortSignal: signal },
      );
      return part.ETag;
    },
    async completeUpload(uploadId, parts, signal) {
      await client.send(
        new sdk.CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
        }),
        { abortSignal: signal },
      );
    },
    async abortUpload(uploadId, signal) {
      await client
        .send(new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }), {
          abortSignal: signal,
        })
        .catch((error: unknown) => {
          if (s3CodeOf(error) !== 'NoSuchUpload') throw error;
        });
    },
  };
}

async function openConnection(config: S3TargetConfig, tuning: S3TargetTuning): Promise<Connection> {
  const secret = await readSecret(
    { file: config.secretAccessKeyFile, env: config.secretAccessKeyEnv },
    `target ${config.name}: secretAccessKey`,
  );
  if ((config.accessKeyId === undefined) !== (secret === undefined)) {
    throw new SecretError(
      config.accessKeyId === undefined
        ? `target ${config.name}: a secret access key is configured but no accessKeyId; set accessKeyId`
        : `target ${config.name}: accessKeyId is set but no secret; set secretAccessKeyFile (or secretAccessKeyEnv)`,
    );
  }
  // The SDK announces its future Node requirement on stderr; the core never prints.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const sdk = await import('@aws-sdk/client-s3');
  const client = new sdk.S3Client({
    region: config.region,
    ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
    forcePathStyle: config.forcePathStyle,
    ...(config.accessKeyId !== undefined && secret !== undefined
      ? { credentials: { accessKeyId: config.accessKeyId, secretAccessKey: secret } }
      : {}),
    // Self-hosted servers refuse (or corrupt) aws-chunked bodies with checksum trailers; integrity
    // comes from Content-MD5 on every request that carries bytes.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Retries are ours: per request, from the buffered part, transient errors only.
    maxAttempts: 1,
    requestHandler: {
      connectionTimeout: tuning.connectTimeoutMs ?? 10_000,
      socketTimeout: tuning.idleTimeoutMs ?? 60_000,
    },
  });
  return { sdk, client };
}

/** What to do about an HTTP error, by status and S3 code. Never contains a secret. */
function hintFor(status: number, code: string, at: { bucket: string; prefix: string; endpoint: string }): string {
  switch (code) {
    case 'NoSuchBucket':
      return `bucket ${at.bucket} does not exist at ${at.endpoint}; create it, or fix bucket (or endpoint) in the target's config`;
    case 'InvalidAccessKeyId':
      return `the server does not know the access key id, so the credentials were refused; check accessKeyId`;
    case 'SignatureDoesNotMatch':
      return `the credentials were refused: the secret access key does not belong to accessKeyId; check the secret in secretAccessKeyFile (or secretAccessKeyEnv)`;
    case 'AccessDenied':
      return `access denied: these credentials may not do this in bucket ${at.bucket}${at.prefix ? ` under ${at.prefix}` : ''}; grant them PutObject, GetObject, DeleteObject, ListBucket, ListBucketMultipartUploads and AbortMultipartUpload there`;
    case 'RequestTimeTooSkewed':
      return `this machine's clock is too far from the server's; fix the clock (NTP)`;
    case 'NoSuchUpload':
      return 'the multipart upload is gone (aborted by someone else, or expired by a lifecycle rule); the next run uploads again';
    case 'NotImplemented':
      return `the server does not support this request`;
  }
  if (status === 403) {
    return `the server refused the request, so the credentials were refused or lack permission; check accessKeyId, its secret, and that it may use bucket ${at.bucket}`;
  }
  if (status === 404) return 'not found';
  if (status >= 500 || status === 429 || status === 408)
    return 'the server is failing or busy; it may work on the next run';
  return 'the server refused the request';
}

/** `"abc"` and `W/"abc"` → `abc`, lower case; empty when absent. */
function normalizeEtag(etag: string | undefined): string {
  return (etag ?? '').replace(/^W\//, '').replace(/^"|"$/g, '').toLowerCase();
}

/** The endpoint for humans and messages: no userinfo, no trailing slash; AWS's when none is set. */
function shownEndpoint(endpoint: string | undefined, region: string): string {
  if (endpoint === undefined) return `https://s3.${region}.amazonaws.com`;
  try {
    const url = new URL(endpoint);
    url.username = '';
    url.password = '';
    return url.toString().replace(/\/+$/, '');
  } catch {
    return endpoint.replace(/\/\/[^/@]*@/, '//');
  }
}
