// The one error a decryption fails with. `reason` lets callers decide (fetch again, try another
// key, give up); the message tells the operator the same in words. Never holds key material.
import { OperationError } from '../lib/errors.js';

export type AgeDecryptReason =
  /** The input does not start like an age file at all (an unencrypted object, the wrong file). */
  | 'not-age'
  /** None of the identities can open any stanza of the header (wrong key, or a damaged stanza). */
  | 'no-matching-identity'
  /** The header is malformed, or its MAC does not match the file key: the header was altered. */
  | 'header-corrupt'
  /** The input ends before the header, the nonce or the final payload chunk. */
  | 'truncated'
  /** A payload chunk fails its authentication tag, or there are bytes after the final chunk. */
  | 'corrupt'
  /** A valid age file this code does not read: another version, ASCII armor, passphrase-only. */
  | 'unsupported';

export class AgeDecryptError extends OperationError {
  override name = 'AgeDecryptError';
  readonly reason: AgeDecryptReason;
  constructor(reason: AgeDecryptReason, message: string) {
    super(message);
    this.reason = reason;
  }
}
