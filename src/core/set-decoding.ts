// How a set's objects turn back into their raw bytes: the stored file, decrypted when the set is
// encrypted (age), then decompressed. Built once per set, before anything is fetched, so a missing
// or wrong key fails the command before any byte is restored.
import { createReadStream } from 'node:fs';
import { pipeline, type Readable } from 'node:stream';
import type { EncryptionConfig } from '../config/schema.js';
import { type AgeIdentity, createDecryptStream } from '../crypto/age.js';
import { type CompressionAlgorithm, createDecompressor } from '../pipeline/compress.js';
import type { Manifest } from '../set/manifest.js';
import { identitiesFor, identityFileOf } from './encryption.js';

export interface SetDecoding {
  algorithm: CompressionAlgorithm;
  /** The private keys that open this set; null when the set is not encrypted. */
  identities: readonly AgeIdentity[] | null;
}

/** Refuses sets this build cannot read, and encrypted sets without the right key. */
export async function setDecoding(
  manifest: Manifest,
  encryption: EncryptionConfig | undefined,
  identityOverride: string | undefined,
): Promise<SetDecoding> {
  return {
    algorithm: compressionOf(manifest),
    identities: await identitiesFor(manifest, identityFileOf(encryption, identityOverride)),
  };
}

/** The compression algorithm of a set, refusing ones this build cannot read. */
export function compressionOf(manifest: Manifest): CompressionAlgorithm {
  const algorithm = manifest.compression.algorithm;
  if (algorithm === 'zstd' || algorithm === 'gzip') return algorithm;
  throw new Error(
    `set ${manifest.setId} is compressed with ${JSON.stringify(algorithm)}, which this backproof cannot read`,
  );
}

/** A verified object file's raw bytes. Errors (bad key, damaged ciphertext, corrupt frames) reach the reader. */
export function openDecoded(file: string, decoding: SetDecoding, signal: AbortSignal): Readable {
  const stages: (NodeJS.ReadableStream | NodeJS.ReadWriteStream)[] = [
    createReadStream(file, { highWaterMark: 1 << 20 }),
  ];
  if (decoding.identities !== null) stages.push(createDecryptStream(decoding.identities));
  const decompressor = createDecompressor(decoding.algorithm, signal);
  stages.push(decompressor);
  // biome-ignore lint/suspicious/noExplicitAny: node's pipeline overloads do not accept a spread of streams
  (pipeline as any)(...stages, () => {
    // errors reach the consumer through the last stage, which pipeline destroys with them
  });
  return decompressor;
}
