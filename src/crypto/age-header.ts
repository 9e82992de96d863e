// The cryptography of the age header: wrapping the file key for X25519 recipients, unwrapping it
// with identities, and the header MAC that binds the stanzas to the file key.
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  timingSafeEqual,
} from 'node:crypto';
import { AgeDecryptError } from './age-errors.js';
import {
  decodeBase64Strict,
  encodeBase64,
  encodeHeaderWithoutMac,
  encodeMacLine,
  headerDamaged,
  type ParsedHeader,
  type Stanza,
} from './age-format.js';
import {
  type AgeIdentity,
  type AgeRecipient,
  identitySecret,
  recipientPublicKey,
  x25519PublicKeyObject,
  x25519RawPublicKey,
} from './age-keys.js';

export const FILE_KEY_BYTES = 16;
const X25519_TYPE = 'X25519';
const X25519_INFO = 'age-encryption.org/v1/X25519';
const KEY_BYTES = 32;
const TAG_BYTES = 16;
const ZERO_NONCE = Buffer.alloc(12);
const EMPTY = Buffer.alloc(0);

/** HKDF-SHA-256 with a 32-byte output, the only length age uses. */
export function hkdf(ikm: Buffer, salt: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, KEY_BYTES));
}

function sealFileKey(key: Buffer, fileKey: Buffer): Buffer {
  const cipher = createCipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: TAG_BYTES });
  return Buffer.concat([cipher.update(fileKey), cipher.final(), cipher.getAuthTag()]);
}

function openFileKey(key: Buffer, body: Buffer): Buffer | undefined {
  const decipher = createDecipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: TAG_BYTES });
  decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
  const fileKey = decipher.update(body.subarray(0, body.length - TAG_BYTES));
  try {
    decipher.final();
  } catch {
    return undefined;
  }
  return fileKey;
}

/** An X25519 stanza wrapping `fileKey` for the raw 32-byte public key `recipient`. */
export function wrapFileKey(fileKey: Buffer, recipient: Buffer): Stanza {
  const ephemeral = generateKeyPairSync('x25519');
  const share = x25519RawPublicKey(ephemeral.publicKey);
  const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: x25519PublicKeyObject(recipient) });
  const wrapKey = hkdf(shared, Buffer.concat([share, recipient]), X25519_INFO);
  return { type: X25519_TYPE, args: [encodeBase64(share)], body: sealFileKey(wrapKey, fileKey) };
}

export function headerMac(fileKey: Buffer, macInput: Buffer): Buffer {
  return createHmac('sha256', hkdf(fileKey, EMPTY, 'header'))
    .update(macInput)
    .digest();
}

/** The complete header, MAC line included, wrapping `fileKey` for every recipient. */
export function buildHeader(recipients: readonly AgeRecipient[], fileKey: Buffer): Buffer {
  const stanzas = recipients.map((recipient) => wrapFileKey(fileKey, recipientPublicKey(recipient)));
  const withoutMac = encodeHeaderWithoutMac(stanzas);
  return Buffer.concat([withoutMac, encodeMacLine(headerMac(fileKey, withoutMac))]);
}

interface X25519Stanza {
  readonly share: Buffer;
  readonly body: Buffer;
}

/** Checks an X25519 stanza's shape (age treats a malformed one as a broken header). */
function x25519Stanza(stanza: Stanza, number: number): X25519Stanza {
  const share = stanza.args.length === 1 ? decodeBase64Strict(stanza.args[0] ?? '') : undefined;
  if (share === undefined || share.length !== KEY_BYTES) {
    throw headerDamaged(`X25519 stanza ${number} has a malformed ephemeral share`);
  }
  if (stanza.body.length !== FILE_KEY_BYTES + TAG_BYTES) {
    throw headerDamaged(`X25519 stanza ${number} has a body of ${stanza.body.length} bytes instead of 32`);
  }
  return { share, body: stanza.body };
}

function unwrapWithIdentity(stanza: X25519Stanza, identity: AgeIdentity, number: number): Buffer | undefined {
  const secret = identitySecret(identity);
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey: secret.privateKey, publicKey: x25519PublicKeyObject(stanza.share) });
  } catch {
    // OpenSSL refuses low-order points (an all-zero shared secret); age rejects the file too.
    throw headerDamaged(`X25519 stanza ${number} has an invalid ephemeral share`);
  }
  const wrapKey = hkdf(shared, Buffer.concat([stanza.share, secret.publicKey]), X25519_INFO);
  return openFileKey(wrapKey, stanza.body);
}

function describeStanzas(stanzas: readonly Stanza[]): string {
  const counts = new Map<string, number>();
  for (const stanza of stanzas) counts.set(stanza.type, (counts.get(stanza.type) ?? 0) + 1);
  return [...counts]
    .map(([type, count]) => `${count} ${type === X25519_TYPE ? 'X25519' : `"${type}"`} key${count === 1 ? '' : 's'}`)
    .join(' and ');
}

function noMatch(stanzas: readonly Stanza[], identities: readonly AgeIdentity[]): AgeDecryptError {
  const tried = identities.map((identity) => identity.recipient).join(', ');
  const hasX25519 = stanzas.some((stanza) => stanza.type === X25519_TYPE);
  const others = hasX25519
    ? ''
    : ' Only age X25519 keys (age1…) are supported here; a file made for other key types opens with `age -d -i` and that key.';
  return new AgeDecryptError(
    'no-matching-identity',
    `wrong key: this file was encrypted for ${describeStanzas(stanzas)}, and none of the keys tried (${tried}) is one of them. ` +
      `Use the identity file whose public key is among the recipients the set's manifest lists.${others} ` +
      'If you are sure the key is right, the file header is damaged: fetch it again or restore another set.',
  );
}

/**
 * Finds the file key with one of the identities and checks the header MAC. Returns the file key;
 * throws AgeDecryptError (no-matching-identity, header-corrupt or unsupported).
 */
export function openHeader(header: ParsedHeader, identities: readonly AgeIdentity[]): Buffer {
  const { stanzas } = header;
  if (stanzas.some((stanza) => stanza.type === 'scrypt')) {
    if (stanzas.length !== 1) throw headerDamaged('an scrypt stanza must be the only one in the header');
    throw new AgeDecryptError(
      'unsupported',
      'this file was encrypted with a passphrase (age -p), not for a key, and backproof only decrypts with keys: ' +
        'decrypt it with `age -d` and the passphrase',
    );
  }
  const x25519 = stanzas.flatMap((stanza, index) =>
    stanza.type === X25519_TYPE ? [{ stanza: x25519Stanza(stanza, index + 1), number: index + 1 }] : [],
  );
  let fileKey: Buffer | undefined;
  search: for (const identity of identities) {
    for (const { stanza, number } of x25519) {
      fileKey = unwrapWithIdentity(stanza, identity, number);
      if (fileKey !== undefined) break search;
    }
  }
  if (fileKey === undefined) throw noMatch(stanzas, identities);
  if (!timingSafeEqual(headerMac(fileKey, header.macInput), header.mac)) {
    throw headerDamaged('its MAC does not match: the header was altered after it was written');
  }
  return fileKey;
}
