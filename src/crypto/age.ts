// age v1 encryption (https://age-encryption.org/v1) for backproof's stored objects, with
// node:crypto only: X25519 recipients, binary (not armored) files that Debian's `age` reads.
export { AgeDecryptError, type AgeDecryptReason } from './age-errors.js';
export {
  type AgeIdentity,
  type AgeRecipient,
  generateIdentity,
  parseIdentities,
  parseRecipient,
  parseRecipientsFile,
  readIdentityFile,
} from './age-keys.js';
export { createDecryptStream, createEncryptStream } from './age-stream.js';

/** The suffix of an encrypted object's name, as age users expect. */
export const AGE_SUFFIX = '.age';
