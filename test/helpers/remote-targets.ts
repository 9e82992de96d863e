// Remote targets for end-to-end tests: a fresh S3 bucket and NAS directories on the test servers,
// their config entries, a client to look at (or damage) what S3 holds, and one cleanup for all.
import { execFileSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { type S3Service, services, uniqueName } from './services.js';

process.env.AWS_EC2_METADATA_DISABLED = 'true';

export function s3Client(s3: S3Service = services().s3): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export interface RemoteTargets {
  client: S3Client;
  bucket: string;
  /** A `sftp` target entry for the test sshd's normal account, in a new directory of its home. */
  sftpTarget(name: string, overrides?: Record<string, unknown>): Record<string, unknown>;
  /** A `s3` target entry in the bucket, under a new prefix (unless overridden). */
  s3Target(name: string, overrides?: Record<string, unknown>): Record<string, unknown>;
  /** Where an sftp target entry's directory is on this machine. */
  nasRoot(target: Record<string, unknown>): string;
  /** Every key in the bucket under `prefix`, sorted. */
  s3Keys(prefix?: string): Promise<string[]>;
  cleanup(): Promise<void>;
}

/** Creates a bucket (and the secret file for it under `dir`); NAS directories are made per target. */
export async function remoteTargets(dir: string, bucketPrefix = 'bk'): Promise<RemoteTargets> {
  const s3 = services().s3;
  const ssh = services().ssh;
  const client = s3Client(s3);
  const bucket = uniqueName(bucketPrefix);
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  const secretFile = join(dir, `${bucket}.secret`);
  await writeFile(secretFile, `${s3.secretAccessKey}\n`, { mode: 0o600 });
  const nasDirs: string[] = [];

  const s3Keys = async (prefix = ''): Promise<string[]> => {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  };

  return {
    client,
    bucket,
    sftpTarget(name, overrides = {}) {
      // The target's root must exist: an unmounted share must never look like an empty one.
      const path = uniqueName('nas');
      const local = join(ssh.home, path);
      execFileSync('install', ['-d', '-m', '700', '-o', ssh.user, '-g', ssh.user, local]);
      nasDirs.push(local);
      return {
        name,
        type: 'sftp',
        host: ssh.host,
        port: ssh.port,
        user: ssh.user,
        identityFile: ssh.identityFile,
        knownHosts: ssh.knownHosts,
        path,
        ...overrides,
      };
    },
    s3Target(name, overrides = {}) {
      return {
        name,
        type: 's3',
        endpoint: s3.endpoint,
        region: s3.region,
        bucket,
        prefix: `${uniqueName('p')}/`,
        forcePathStyle: true,
        accessKeyId: s3.accessKeyId,
        secretAccessKeyFile: secretFile,
        ...overrides,
      };
    },
    nasRoot(target) {
      return join(ssh.home, String(target.path));
    },
    s3Keys,
    async cleanup() {
      for (const key of await s3Keys().catch(() => []))
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })).catch(() => {});
      await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
      for (const nas of nasDirs) await rm(nas, { recursive: true, force: true });
    },
  };
}
