// age X25519 keys: public recipients (`age1…`) and secret identities (`AGE-SECRET-KEY-1…`), as
// age-keygen writes them. Secret keys live only in KeyObjects held in a WeakMap, so an identity
// can be logged, inspected or serialized without leaking anything: it shows its public key only.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { ConfigError, OperationError } from '../lib/errors.js';
import { Bech32Error, bech32Decode, bech32Encode } from './bech32.js';

/** A public key to encrypt to: `text` is the `age1…` string, lower case, as age-keygen prints it. */
export interface AgeRecipient {
  readonly text: string;
}

/** A secret key to decrypt with. Only its public key shows; the secret stays inside. */
export interface AgeIdentity {
  /** The matching public key, `age1…`. */
  readonly recipient: string;
}

const RECIPIENT_PREFIX = 'age';
const IDENTITY_PREFIX = 'AGE-SECRET-KEY-';
const KEY_BYTES = 32;
// DER wrappers around a raw 32-byte X25519 key (RFC 8410), so node:crypto can import it.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');
const MAX_IDENTITY_FILE_BYTES = 1 << 20;

const KEY_FILE_SHAPE =
  'An age key file is what age-keygen writes: comment lines "# created: …" and "# public key: age1…", ' +
  'then one line "AGE-SECRET-KEY-1…".';

interface SecretKey {
  readonly privateKey: KeyObject;
  readonly publicKey: Buffer;
}

const secrets = new WeakMap<AgeIdentity, SecretKey>();

/** The raw 32-byte X25519 public key of a recipient (for the header code). */
export function recipientPublicKey(recipient: AgeRecipient): Buffer {
  const parsed = recipientBytes(recipient.text);
  if (typeof parsed === 'string') throw new ConfigError(`age recipient "${recipient.text}": ${parsed}`);
  return parsed;
}

/** A node:crypto public key from 32 raw X25519 bytes. */
export function x25519PublicKeyObject(raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, raw]), format: 'der', type: 'spki' });
}

/** The raw 32 bytes of an X25519 public KeyObject. */
export function x25519RawPublicKey(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' }).subarray(SPKI_X25519.length);
}

/** The secret key behind an identity made by this module (for the header code). */
export function identitySecret(identity: AgeIdentity): SecretKey {
  const secret = secrets.get(identity);
  if (secret === undefined) {
    throw new TypeError('this AgeIdentity was not made by readIdentityFile or parseIdentities');
  }
  return secret;
}

function looksLikeSecretKey(text: string): boolean {
  return text.toUpperCase().startsWith('AGE-SECRET-KEY-') || text.toUpperCase().startsWith('AGE-PLUGIN-');
}

/** The 32 key bytes, or why `text` is not an age X25519 recipient (never echoing it). */
function recipientBytes(text: string): Buffer | string {
  if (text === '') return 'it is empty';
  if (text.startsWith('ssh-') || text.startsWith('ecdsa-')) {
    return 'SSH public keys are not supported: use an age1… public key (make a key pair with age-keygen)';
  }
  if (looksLikeSecretKey(text)) {
    return 'this is a secret key, not a recipient: put the public key (age1…, on the "# public key:" line of the key file) here, and keep the secret key off this machine';
  }
  let decoded: ReturnType<typeof bech32Decode>;
  try {
    decoded = bech32Decode(text);
  } catch (error) {
    if (error instanceof Bech32Error) return `not a valid age1… public key: ${error.message}`;
    throw error;
  }
  if (decoded.prefix === RECIPIENT_PREFIX.toUpperCase()) {
    return 'it is in upper case: write it in lower case, as age-keygen prints it (age itself refuses upper case)';
  }
  if (decoded.prefix.startsWith('age1')) {
    return `age plugin recipients (${decoded.prefix}…) are not supported: use an age1… X25519 public key from age-keygen`;
  }
  if (decoded.prefix !== RECIPIENT_PREFIX) return 'not an age public key: it should start with "age1"';
  if (decoded.data.length !== KEY_BYTES) {
    return `it holds ${decoded.data.length} bytes where an X25519 key has ${KEY_BYTES}: not an age1… key from age-keygen`;
  }
  return decoded.data;
}

/** Parses one `age1…` public key; throws ConfigError naming the key and what is wrong with it. */
export function parseRecipient(text: string): AgeRecipient {
  const trimmed = text.trim();
  const parsed = recipientBytes(trimmed);
  if (typeof parsed === 'string') {
    const shown = looksLikeSecretKey(trimmed) ? 'AGE-SECRET-KEY-1…' : `"${trimmed}"`;
    throw new ConfigError(`age recipient ${shown}: ${parsed}`);
  }
  return Object.freeze({ text: trimmed });
}

/**
 * Parses an `age -R` recipients file: one public key per line, `#` comments and blank lines
 * ignored. Every bad line is reported (as `file:line`), without echoing its text.
 */
export function parseRecipientsFile(content: string, file: string): AgeRecipient[] {
  const recipients: AgeRecipient[] = [];
  const problems: string[] = [];
  const lines = content.split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const parsed = recipientBytes(line);
    if (typeof parsed === 'string') problems.push(`${file}:${index + 1}: ${parsed}`);
    else recipients.push(Object.freeze({ text: line }));
  }
  if (problems.length > 0) {
    throw new ConfigError(
      `recipients file ${file} has ${problems.length === 1 ? 'a bad line' : `${problems.length} bad lines`}; it must list age1… public keys, one per line`,
      problems,
    );
  }
  if (recipients.length === 0) {
    throw new ConfigError(
      `recipients file ${file} lists no recipients: add the age1… public keys to encrypt to, one per line`,
    );
  }
  return recipients;
}

function identityFromSecret(secret: Buffer): AgeIdentity {
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, secret]), format: 'der', type: 'pkcs8' });
  const publicKey = x25519RawPublicKey(createPublicKey(privateKey));
  const identity: AgeIdentity = Object.freeze({ recipient: bech32Encode(RECIPIENT_PREFIX, publicKey) });
  secrets.set(identity, { privateKey, publicKey });
  return identity;
}

/** Why a non-comment line of a key file is not a usable identity (never echoing it). */
function identityLineProblem(line: string): string {
  if (line.startsWith('-----BEGIN')) {
    return 'SSH or PEM private keys are not supported: use an age key from age-keygen';
  }
  if (line.startsWith('age-encryption.org/')) {
    return 'this key file is itself encrypted (age -p): decrypt it with `age -d` into a file readable only by root, and use that';
  }
  if (line.toUpperCase().startsWith('AGE-PLUGIN-')) return 'age plugin identities (AGE-PLUGIN-…) are not supported';
  if (line.startsWith(IDENTITY_PREFIX.toLowerCase())) {
    return 'the secret key is in lower case: write it in upper case, as age-keygen does';
  }
  if (line.startsWith('age1')) {
    return 'this is a public key (age1…); decrypting needs the secret key line "AGE-SECRET-KEY-1…"';
  }
  return 'not an age secret key (AGE-SECRET-KEY-1…)';
}

/**
 * Parses the text of an age identity file (age-keygen output). `source` names the file in
 * messages. Throws OperationError for a bad line or a file without any key.
 */
export function parseIdentities(content: string, source: string): AgeIdentity[] {
  const identities: AgeIdentity[] = [];
  for (const [index, raw] of content.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const where = `identity file ${source}, line ${index + 1}`;
    if (!line.startsWith(`${IDENTITY_PREFIX}1`)) {
      throw new OperationError(`${where}: ${identityLineProblem(line)}. ${KEY_FILE_SHAPE}`);
    }
    let decoded: ReturnType<typeof bech32Decode>;
    try {
      decoded = bech32Decode(line);
    } catch (error) {
      if (!(error instanceof Bech32Error)) throw error;
      throw new OperationError(`${where}: the secret key is damaged: ${error.message}. ${KEY_FILE_SHAPE}`);
    }
    if (decoded.prefix !== IDENTITY_PREFIX || decoded.data.length !== KEY_BYTES) {
      throw new OperationError(`${where}: not an age X25519 secret key. ${KEY_FILE_SHAPE}`);
    }
    identities.push(identityFromSecret(decoded.data));
  }
  if (identities.length === 0) {
    throw new OperationError(`identity file ${source} holds no age secret key. ${KEY_FILE_SHAPE}`);
  }
  return identities;
}

function readProblem(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') {
    return 'does not exist: decrypting needs the age key file that matches the backup recipients; copy it back from where you keep it offline and point encryption.identityFile at it';
  }
  if (code === 'EACCES' || code === 'EPERM') return 'cannot be read (permission denied): run as a user who can read it';
  if (code === 'EISDIR') return 'is a directory, not a key file';
  return `cannot be read (${code ?? String(error)})`;
}

/** Reads an age identity file. Throws OperationError when it is missing, unreadable or holds no key. */
export async function readIdentityFile(file: string): Promise<AgeIdentity[]> {
  let content: string;
  try {
    const info = await stat(file);
    if (info.isFile() && info.size > MAX_IDENTITY_FILE_BYTES) {
      throw new OperationError(
        `identity file ${file} is ${info.size} bytes, far too large for a key file: check the path. ${KEY_FILE_SHAPE}`,
      );
    }
    content = await readFile(file, 'utf8');
  } catch (error) {
    if (error instanceof OperationError) throw error;
    throw new OperationError(`identity file ${file} ${readProblem(error)}. ${KEY_FILE_SHAPE}`, { cause: error });
  }
  return parseIdentities(content, file);
}

/** A fresh key pair in age-keygen's text forms: `AGE-SECRET-KEY-1…` and `age1…`. */
export function generateIdentity(): { identity: string; recipient: string } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const secret = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_X25519.length);
  return {
    identity: bech32Encode(IDENTITY_PREFIX, secret),
    recipient: bech32Encode(RECIPIENT_PREFIX, x25519RawPublicKey(publicKey)),
  };
}
