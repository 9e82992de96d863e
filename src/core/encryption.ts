// The job's encryption keys: the recipients a backup encrypts to (public keys, from the config and
// its recipientsFile) and the identities a restore or drill decrypts with (the private key file).
// Backing up never needs the private key; reading contents always does.
import { readFile } from 'node:fs/promises';
import type { EncryptionConfig } from '../config/schema.js';
import {
  type AgeIdentity,
  type AgeRecipient,
  parseRecipient,
  parseRecipientsFile,
  readIdentityFile,
} from '../crypto/age.js';
import { ConfigError, messageOf, OperationError } from '../lib/errors.js';
import type { Manifest } from '../set/manifest.js';

/** The recipients of the job, checked (checksums, duplicates); null without encryption. Throws ConfigError. */
export async function loadRecipients(encryption: EncryptionConfig | undefined): Promise<AgeRecipient[] | null> {
  if (encryption === undefined) return null;
  const recipients = (encryption.recipients ?? []).map((text, i) => {
    try {
      return parseRecipient(text);
    } catch (error) {
      throw new ConfigError(`encryption.recipients[${i}]: ${messageOf(error)}`);
    }
  });
  if (encryption.recipientsFile !== undefined) {
    let content: string;
    try {
      content = await readFile(encryption.recipientsFile, 'utf8');
    } catch (error) {
      throw new ConfigError(
        `encryption.recipientsFile ${encryption.recipientsFile} cannot be read (${messageOf(error)}): ` +
          'create it with one age public key (age1…) per line, or list the keys in encryption.recipients',
      );
    }
    recipients.push(...parseRecipientsFile(content, encryption.recipientsFile));
  }
  if (recipients.length === 0) {
    throw new ConfigError(
      `encryption.recipientsFile ${encryption.recipientsFile} holds no public key: add one age1… line ` +
        '(age-keygen prints it), or list the keys in encryption.recipients',
    );
  }
  const seen = new Set<string>();
  return recipients.filter((r) => !seen.has(r.text) && seen.add(r.text));
}

/** Where the private key comes from: `--identity FILE` first, then encryption.identityFile. */
export function identityFileOf(encryption: EncryptionConfig | undefined, override: string | undefined): string | null {
  return override ?? encryption?.identityFile ?? null;
}

/**
 * The identities that open `manifest`'s set, or null when the set is not encrypted. Refuses before
 * anything is fetched when the key is missing, unreadable, or not one the set was encrypted for.
 */
export async function identitiesFor(manifest: Manifest, identityFile: string | null): Promise<AgeIdentity[] | null> {
  const recipients = manifest.encryption?.recipients ?? [];
  if (manifest.encryption === null || manifest.encryption === undefined) return null;
  const made = `set ${manifest.setId} is encrypted with age for ${recipients.join(', ')}`;
  if (identityFile === null) {
    throw new OperationError(
      `${made}; reading it needs the private key: set encryption.identityFile in the config, or pass ` +
        '--identity FILE (the age-keygen key file of one of those public keys)',
    );
  }
  const identities = await readIdentityFile(identityFile);
  const matching = identities.filter((id) => recipients.includes(id.recipient));
  if (matching.length === 0) {
    throw new OperationError(
      `wrong key: ${identityFile} holds ${identities.map((id) => id.recipient).join(', ')}, but ${made}: ` +
        'use the key file of one of those public keys (each one is printed as "# public key:" in its key file)',
    );
  }
  return matching;
}
