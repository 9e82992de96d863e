// The age payload: ChaCha20-Poly1305 in the STREAM construction. 64 KiB plaintext chunks, each
// sealed under a 12-byte nonce = 11-byte big-endian chunk counter + a flag byte that is 1 only
// on the final chunk, so a file can't be cut short or extended without the tags noticing.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { hkdf } from './age-header.js';

export const PLAINTEXT_CHUNK_BYTES = 64 * 1024;
export const TAG_BYTES = 16;
export const CIPHERTEXT_CHUNK_BYTES = PLAINTEXT_CHUNK_BYTES + TAG_BYTES;
export const STREAM_NONCE_BYTES = 16;
const NONCE_BYTES = 12;
const COUNTER_LOW_BYTES = 6; // the counter's low 48 bits: 2^48 chunks of 64 KiB is 16 EiB
const MAX_COUNTER = 2 ** 48 - 1;

/** The payload key: HKDF-SHA-256 of the file key, salted with the file's 16-byte nonce. */
export function payloadKey(fileKey: Buffer, streamNonce: Buffer): Buffer {
  return hkdf(fileKey, streamNonce, 'payload');
}

/** The running chunk nonce. One buffer, rewritten per chunk (node:crypto copies the IV). */
export class ChunkNonce {
  private readonly bytes = Buffer.alloc(NONCE_BYTES);
  private counter = 0;

  /** How many chunks came before this one. */
  get index(): number {
    return this.counter;
  }

  /** The nonce for the current chunk. */
  forChunk(last: boolean): Buffer {
    this.bytes[NONCE_BYTES - 1] = last ? 1 : 0;
    return this.bytes;
  }

  advance(): void {
    if (this.counter === MAX_COUNTER) throw new Error('age payload: chunk counter overflow');
    this.counter++;
    this.bytes.writeUIntBE(this.counter, NONCE_BYTES - 1 - COUNTER_LOW_BYTES, COUNTER_LOW_BYTES);
  }
}

/** Seals one chunk: the ciphertext and its 16-byte tag, as two buffers (no copy to join them). */
export function sealChunk(key: Buffer, nonce: Buffer, plaintext: Buffer): [Buffer, Buffer] {
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES });
  const ciphertext = cipher.update(plaintext);
  cipher.final();
  return [ciphertext, cipher.getAuthTag()];
}

/** Opens one chunk (ciphertext then tag); undefined when the tag does not match. */
export function openChunk(key: Buffer, nonce: Buffer, chunk: Buffer): Buffer | undefined {
  const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAuthTag(chunk.subarray(chunk.length - TAG_BYTES));
  const plaintext = decipher.update(chunk.subarray(0, chunk.length - TAG_BYTES));
  try {
    decipher.final();
  } catch {
    return undefined;
  }
  return plaintext;
}
