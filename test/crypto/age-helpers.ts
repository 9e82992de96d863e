// Shared by the age tests: run bytes through our streams, call Debian's age, and build
// hand-made age files (to reach cases no well-behaved encoder writes).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type AgeRecipient, createDecryptStream, createEncryptStream } from '../../src/crypto/age.js';
import { encodeHeaderWithoutMac, encodeMacLine, type Stanza } from '../../src/crypto/age-format.js';
import { headerMac, wrapFileKey } from '../../src/crypto/age-header.js';
import { type AgeIdentity, parseRecipient, recipientPublicKey } from '../../src/crypto/age-keys.js';
import { ChunkNonce, payloadKey, sealChunk } from '../../src/crypto/age-payload.js';

export const CHUNK = 64 * 1024;
export const SEALED_CHUNK = CHUNK + 16;

/** `bytes` cut into pieces of `size` (the last one shorter): how a stream would deliver them. */
export function pieces(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size));
  return out;
}

async function run(input: Buffer[], transform: NodeJS.ReadWriteStream): Promise<{ output: Buffer; error: unknown }> {
  const out: Buffer[] = [];
  let error: unknown;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      out.push(chunk);
      callback();
    },
  });
  try {
    await pipeline(Readable.from(input), transform, sink);
  } catch (caught) {
    error = caught;
  }
  return { output: Buffer.concat(out), error };
}

export async function encrypt(plaintext: Buffer, recipients: readonly AgeRecipient[], pieceSize = 16 * 1024) {
  const { output, error } = await run(pieces(plaintext, pieceSize), createEncryptStream(recipients));
  if (error !== undefined) throw error;
  return output;
}

/** Decrypts, keeping whatever plaintext came out before a failure. */
export function decrypt(ciphertext: Buffer, identities: readonly AgeIdentity[], pieceSize = 16 * 1024) {
  return run(pieces(ciphertext, pieceSize), createDecryptStream(identities));
}

/** Runs Debian's age; returns stdout, or throws with its stderr. */
export function age(args: string[], input?: Buffer): Buffer {
  return execFileSync('age', args, {
    input: input ?? Buffer.alloc(0),
    maxBuffer: 64 << 20,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

export function ageKeygen(args: string[]): string {
  return execFileSync('age-keygen', args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

export interface CraftedFile {
  /** Stanzas as they go in the header; `x25519For` makes a real one. */
  stanzas: Stanza[];
  fileKey: Buffer;
  /** Plaintext chunks; the last is sealed as final unless `noFinal`. */
  chunks: Buffer[];
  noFinal?: boolean;
  /** Replaces the correct MAC. */
  mac?: Buffer;
  /** Replaces the header text before the MAC line (the MAC is computed over it). */
  rewriteHeader?: (text: string) => string;
}

export function newFileKey(): Buffer {
  return randomBytes(16);
}

export function x25519For(recipient: string, fileKey: Buffer): Stanza {
  return wrapFileKey(fileKey, recipientPublicKey(parseRecipient(recipient)));
}

/** An age file assembled by hand, valid unless the options say otherwise. */
export function craft(file: CraftedFile): Buffer {
  let header = encodeHeaderWithoutMac(file.stanzas);
  if (file.rewriteHeader) header = Buffer.from(file.rewriteHeader(header.toString('latin1')), 'latin1');
  const mac = file.mac ?? headerMac(file.fileKey, header);
  const streamNonce = randomBytes(16);
  const key = payloadKey(file.fileKey, streamNonce);
  const nonce = new ChunkNonce();
  const payload: Buffer[] = [];
  file.chunks.forEach((chunk, index) => {
    const last = index === file.chunks.length - 1 && file.noFinal !== true;
    payload.push(...sealChunk(key, nonce.forChunk(last), chunk));
    nonce.advance();
  });
  return Buffer.concat([header, encodeMacLine(mac), streamNonce, ...payload]);
}

/** Bytes taken by the text header (through the MAC line's newline); the 16-byte nonce follows. */
export function headerLength(file: Buffer): number {
  const footer = file.indexOf('\n--- ');
  if (footer === -1) throw new Error('no age header footer in this file');
  return file.indexOf(0x0a, footer + 1) + 1;
}

/** A copy of `bytes` with the byte at `at` flipped. */
export function flipped(bytes: Buffer, at: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[at] = (copy[at] as number) ^ 0x01;
  return copy;
}
