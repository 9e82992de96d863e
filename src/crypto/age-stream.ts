// Streaming age encryption and decryption as Transforms. Memory is bounded: one 64 KiB chunk is
// held back at a time, because a chunk can only be sealed (or opened) once we know whether it is
// the last one, that is, once more input arrives or the input ends.
import { randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ConfigError, OperationError } from '../lib/errors.js';
import { AgeDecryptError } from './age-errors.js';
import { HeaderReader } from './age-format.js';
import { buildHeader, FILE_KEY_BYTES, openHeader } from './age-header.js';
import type { AgeIdentity, AgeRecipient } from './age-keys.js';
import {
  ChunkNonce,
  CIPHERTEXT_CHUNK_BYTES,
  openChunk,
  PLAINTEXT_CHUNK_BYTES,
  payloadKey,
  STREAM_NONCE_BYTES,
  sealChunk,
  TAG_BYTES,
} from './age-payload.js';

const HIGH_WATER_MARK = 256 * 1024;
const FETCH_AGAIN = 'fetch it again or restore another set';

class AgeEncryptStream extends Transform {
  private readonly key: Buffer;
  private readonly nonce = new ChunkNonce();
  /** Plaintext held back until we know whether it is the final chunk. */
  private readonly pending = Buffer.allocUnsafe(PLAINTEXT_CHUNK_BYTES);
  private pendingLength = 0;
  /** Header and stream nonce, sent with the first output. */
  private preamble: Buffer | undefined;
  /** Sealed chunks of the current input chunk, pushed as one buffer (see `pushSealed`). */
  private sealed: Buffer[] = [];
  private sealedBytes = 0;

  constructor(recipients: readonly AgeRecipient[]) {
    super({ highWaterMark: HIGH_WATER_MARK });
    const fileKey = randomBytes(FILE_KEY_BYTES);
    const streamNonce = randomBytes(STREAM_NONCE_BYTES);
    this.preamble = Buffer.concat([buildHeader(recipients, fileKey), streamNonce]);
    this.key = payloadKey(fileKey, streamNonce);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.pushPreamble();
    let offset = 0;
    while (offset < chunk.length) {
      // More input behind a full pending chunk: it is not the last one.
      if (this.pendingLength === PLAINTEXT_CHUNK_BYTES) {
        this.seal(this.pending, false);
        this.pendingLength = 0;
      }
      const available = chunk.length - offset;
      if (this.pendingLength === 0 && available > PLAINTEXT_CHUNK_BYTES) {
        // A whole chunk with more input behind it: seal it in place, no copy.
        this.seal(chunk.subarray(offset, offset + PLAINTEXT_CHUNK_BYTES), false);
        offset += PLAINTEXT_CHUNK_BYTES;
        continue;
      }
      const copied = chunk.copy(this.pending, this.pendingLength, offset, offset + PLAINTEXT_CHUNK_BYTES);
      this.pendingLength += copied;
      offset += copied;
    }
    this.pushSealed();
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.pushPreamble();
    // The final chunk; empty only when the whole plaintext is.
    this.seal(this.pending.subarray(0, this.pendingLength), true);
    this.pendingLength = 0;
    this.pushSealed();
    callback();
  }

  private pushPreamble(): void {
    if (this.preamble === undefined) return;
    this.push(this.preamble);
    this.preamble = undefined;
  }

  private seal(plaintext: Buffer, last: boolean): void {
    const [ciphertext, tag] = sealChunk(this.key, this.nonce.forChunk(last), plaintext);
    this.sealed.push(ciphertext, tag);
    this.sealedBytes += ciphertext.length + tag.length;
    this.nonce.advance();
  }

  /**
   * One buffer per input chunk rather than two per 64 KiB: what follows (hash, fan-out, targets)
   * pays per buffer, far more than this one copy.
   */
  private pushSealed(): void {
    if (this.sealed.length === 0) return;
    this.push(this.sealed.length === 1 ? this.sealed[0] : Buffer.concat(this.sealed, this.sealedBytes));
    this.sealed = [];
    this.sealedBytes = 0;
  }
}

type DecryptStage = 'header' | 'nonce' | 'payload';

class AgeDecryptStream extends Transform {
  private readonly identities: readonly AgeIdentity[];
  private stage: DecryptStage = 'header';
  private readonly header = new HeaderReader();
  private fileKey: Buffer | undefined;
  private readonly streamNonce = Buffer.alloc(STREAM_NONCE_BYTES);
  private streamNonceLength = 0;
  private key: Buffer | undefined;
  private readonly nonce = new ChunkNonce();
  /** Ciphertext held back until we know whether it is the final chunk. */
  private readonly pending = Buffer.allocUnsafe(CIPHERTEXT_CHUNK_BYTES);
  private pendingLength = 0;
  /** Where the payload starts in the file, and how many bytes came in: for messages. */
  private payloadStart = 0;
  private received = 0;

  constructor(identities: readonly AgeIdentity[]) {
    super({ highWaterMark: HIGH_WATER_MARK });
    this.identities = identities;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.received += chunk.length;
      this.consume(chunk);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.finish();
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  private consume(input: Buffer): void {
    let chunk = input;
    if (this.stage === 'header') {
      const read = this.header.push(chunk);
      if (read === undefined) return;
      // The MAC is checked here, before a single byte of plaintext can come out.
      this.fileKey = openHeader(read.header, this.identities);
      this.payloadStart = read.headerBytes + STREAM_NONCE_BYTES;
      this.stage = 'nonce';
      chunk = read.rest;
    }
    if (this.stage === 'nonce') {
      const copied = chunk.copy(this.streamNonce, this.streamNonceLength);
      this.streamNonceLength += copied;
      chunk = chunk.subarray(copied);
      if (this.streamNonceLength < STREAM_NONCE_BYTES) return;
      this.key = payloadKey(this.fileKey as Buffer, this.streamNonce);
      this.stage = 'payload';
    }
    let offset = 0;
    while (offset < chunk.length) {
      // More input behind a full pending chunk: it should not be the last one.
      if (this.pendingLength === CIPHERTEXT_CHUNK_BYTES) {
        this.pendingLength = 0;
        this.openFullChunk(this.pending);
      }
      const available = chunk.length - offset;
      if (this.pendingLength === 0 && available > CIPHERTEXT_CHUNK_BYTES) {
        // A whole chunk with more input behind it: open it in place, no copy.
        this.openFullChunk(chunk.subarray(offset, offset + CIPHERTEXT_CHUNK_BYTES));
        offset += CIPHERTEXT_CHUNK_BYTES;
        continue;
      }
      const copied = chunk.copy(this.pending, this.pendingLength, offset, offset + CIPHERTEXT_CHUNK_BYTES);
      this.pendingLength += copied;
      offset += copied;
    }
  }

  /** A full-size chunk with more bytes after it. */
  private openFullChunk(ciphertext: Buffer): void {
    const key = this.key as Buffer;
    const plaintext = openChunk(key, this.nonce.forChunk(false), ciphertext);
    if (plaintext !== undefined) {
      this.push(plaintext);
      this.nonce.advance();
      return;
    }
    // A full-size final chunk is valid; bytes after it are not (age releases the chunk, then fails).
    const final = openChunk(key, this.nonce.forChunk(true), ciphertext);
    if (final === undefined) throw this.badChunk(false);
    this.push(final);
    throw this.trailingData();
  }

  private finish(): void {
    if (this.stage === 'header') throw this.header.end();
    if (this.stage === 'nonce') {
      throw new AgeDecryptError(
        'truncated',
        `the file is cut short after ${this.received} bytes, inside the nonce after its age header: ${FETCH_AGAIN}`,
      );
    }
    const key = this.key as Buffer;
    const length = this.pendingLength;
    const chunk = this.pending.subarray(0, length);
    if (length < TAG_BYTES) {
      const where =
        this.nonce.index === 0 && length === 0
          ? 'right after its age header, with no payload at all'
          : `${length} bytes into payload chunk ${this.nonce.index + 1}, too few to be a chunk`;
      throw new AgeDecryptError(
        'truncated',
        `the file is cut short after ${this.received} bytes, ${where}: ${FETCH_AGAIN}`,
      );
    }
    const plaintext = openChunk(key, this.nonce.forChunk(true), chunk);
    if (plaintext !== undefined) {
      if (plaintext.length === 0 && this.nonce.index > 0) {
        throw new AgeDecryptError(
          'corrupt',
          `the file ends with an empty final chunk after ${this.nonce.index} full ones, which age does not allow: ` +
            `it was not written by age or backproof, or was tampered with; ${FETCH_AGAIN}`,
        );
      }
      this.push(plaintext);
      return;
    }
    if (length === CIPHERTEXT_CHUNK_BYTES) {
      const middle = openChunk(key, this.nonce.forChunk(false), chunk);
      if (middle !== undefined) {
        this.push(middle);
        this.nonce.advance();
        throw new AgeDecryptError(
          'truncated',
          `the file is cut short after ${this.received} bytes: it ends after payload chunk ${this.nonce.index} ` +
            `without age's final chunk; ${FETCH_AGAIN}`,
        );
      }
    }
    throw this.badChunk(true);
  }

  /** `atEnd`: the last bytes of the input, which may also have been cut short or extended. */
  private badChunk(atEnd: boolean): AgeDecryptError {
    const index = this.nonce.index;
    const start = this.payloadStart + index * CIPHERTEXT_CHUNK_BYTES;
    return new AgeDecryptError(
      'corrupt',
      `the file is damaged: payload chunk ${index + 1} (bytes ${start} to ${Math.min(start + CIPHERTEXT_CHUNK_BYTES, this.received)}) ` +
        `fails its authentication check, so the plaintext stops before it. ${
          atEnd
            ? 'The file was altered, cut short inside that chunk, or had bytes appended (these look the same)'
            : 'The file was altered or damaged in storage'
        }; ${FETCH_AGAIN}`,
    );
  }

  private trailingData(): AgeDecryptError {
    const end = this.payloadStart + (this.nonce.index + 1) * CIPHERTEXT_CHUNK_BYTES;
    return new AgeDecryptError(
      'corrupt',
      `the file goes on after age's final chunk, which ends at byte ${end}: ${this.received - end} or more bytes ` +
        `were appended to it or it was damaged; ${FETCH_AGAIN}`,
    );
  }
}

/** Plaintext in, age v1 file out (binary, not armored). Throws ConfigError without recipients. */
export function createEncryptStream(recipients: readonly AgeRecipient[]): Transform {
  if (recipients.length === 0) {
    throw new ConfigError('age encryption needs at least one recipient (an age1… public key)');
  }
  return new AgeEncryptStream(recipients);
}

/**
 * Age v1 file in, plaintext out. Nothing comes out before the header MAC is checked, and each
 * chunk only after its tag is. Fails with AgeDecryptError.
 */
export function createDecryptStream(identities: readonly AgeIdentity[]): Transform {
  if (identities.length === 0) {
    throw new OperationError('decrypting needs at least one age identity (the key file made by age-keygen)');
  }
  return new AgeDecryptStream(identities);
}
