// The target contract: restic's Backend at unstorage's size. Keys are `/`-separated paths relative
// to the target's root (`<job>/2025/11/04/<setId>/app.tar.zst`). A target stores bytes; the core
// decides names, verification and commit order. Retry, logging and fault injection are wrappers.
import type { Readable } from 'node:stream';

export interface ObjectStat {
  bytes: number;
}

export interface FreeSpace {
  /** Bytes an unprivileged writer may still use. */
  freeBytes: number;
  totalBytes: number;
  /** The local filesystem path the numbers are for. */
  path: string;
}

/** How strongly a target proved an object: recorded per object, shown by `status`. */
export type VerificationLevel =
  /** Read back whole from the target and re-hashed (local re-read after fsync, SFTP read-back). */
  | 'reread'
  /** SHA-256 computed on the target's side (`sha256sum` over SSH). */
  | 'remote-hash'
  /** Size from the target plus a checksum the target computed over the bytes it stored (S3 ETag). */
  | 'etag';

/** What `put` tells beyond success. */
export interface PutResult {
  /**
   * The stored bytes as `verifyObject` would prove them, when `put` proved them itself while it
   * wrote (the local target re-reads each part once it is on disk): the core then does not call
   * `verifyObject` for this write. Absent otherwise.
   */
  verified?: ObjectProof;
}

/** Size and SHA-256 of stored bytes as a target sees them, and how strongly it looked. */
export interface ObjectProof {
  bytes: number;
  sha256: string;
  /** Default: the target's `capabilities.verification`. */
  level?: VerificationLevel;
}

export interface TargetCapabilities {
  /** `rename` exists and is atomic: objects go under a temporary name first. */
  atomicRename: boolean;
  /** `free` exists. */
  freeSpace: boolean;
  /** The level `verifyObject` reaches. */
  verification: VerificationLevel;
}

export interface Target {
  readonly name: string;
  readonly type: string;
  /** An optional target failing gives `warning`, not `failure`. */
  readonly optional: boolean;
  readonly capabilities: TargetCapabilities;
  /** Where it is, for humans: `local /var/backups/backproof`. Never contains a secret. */
  describe(): string;
  /**
   * Writes the whole stream to `key`, creating parents. Durable when it resolves (local: file and
   * directory fsynced). `sizeHint` (bytes, may be wrong) lets a target choose e.g. its multipart part size.
   */
  put(key: string, body: Readable, options: { signal: AbortSignal; sizeHint?: number }): Promise<PutResult>;
  /** Reads an object. Rejects with a not-found error (see `isNotFound`) when it does not exist. */
  get(key: string, options: { signal: AbortSignal }): Promise<Readable>;
  stat(key: string): Promise<ObjectStat>;
  /** Every key under `prefix` (recursive), sorted. An absent prefix gives []. */
  list(prefix: string): Promise<string[]>;
  /** Removes an object; absent is fine. Empty parent directories may be removed too. */
  remove(key: string): Promise<void>;
  /** Atomic rename, replacing nothing: fails if `to` exists. Only when `capabilities.atomicRename`. */
  rename?(from: string, to: string): Promise<void>;
  /**
   * Proves the stored bytes: returns their size and SHA-256 as the target sees them, by the strongest
   * means it has, and the level reached (default `capabilities.verification`; a target whose means
   * depend on the server, e.g. SFTP with or without a remote shell, says which it used).
   */
  verifyObject(key: string, options: { signal: AbortSignal }): Promise<ObjectProof>;
  /** Aborts unfinished multipart uploads under `prefix` (S3); returns how many. Only under the job lock. */
  abortUnfinishedUploads?(prefix: string): Promise<number>;
  /** Free space where objects are written (local filesystems). */
  free?(): Promise<FreeSpace>;
  /** Writes and removes a small probe, to prove the target is writable (preflight). */
  probeWritable(job: string): Promise<void>;
  isNotFound(error: unknown): boolean;
  close(): Promise<void>;
}
