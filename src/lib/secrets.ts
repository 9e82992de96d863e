// Secrets come from files (`*File` keys) or environment variables (`*Env` keys), never from the config
// itself. Every secret read is registered with the redactor, so it can never reach output.
import { readFile, stat } from 'node:fs/promises';
import { registerSecret } from './redact.js';

export interface SecretSource {
  file?: string | undefined;
  env?: string | undefined;
}

/** A secret could not be read: the message says which key and what to do. */
export class SecretError extends Error {
  override readonly name = 'SecretError';
}

/**
 * Reads a secret. `what` names it for messages (`source main: passwordFile`). Returns undefined when
 * neither a file nor an environment variable is configured. A file's one trailing newline is dropped.
 */
export async function readSecret(source: SecretSource, what: string): Promise<string | undefined> {
  if (source.file !== undefined && source.env !== undefined) {
    throw new SecretError(`${what}: set either the file or the environment variable, not both`);
  }
  let value: string | undefined;
  if (source.file !== undefined) {
    let text: string;
    try {
      text = await readFile(source.file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new SecretError(
        code === 'ENOENT'
          ? `${what}: ${source.file} does not exist; create it (mode 0600) holding the secret`
          : code === 'EACCES'
            ? `${what}: ${source.file} is not readable by this user; fix its owner or mode (0600)`
            : `${what}: cannot read ${source.file}: ${(error as Error).message}`,
      );
    }
    value = text.replace(/\r?\n$/, '');
    if (value.length === 0) throw new SecretError(`${what}: ${source.file} is empty`);
  } else if (source.env !== undefined) {
    value = process.env[source.env];
    if (value === undefined || value.length === 0) {
      throw new SecretError(`${what}: the environment variable ${source.env} is not set (or empty)`);
    }
  }
  if (value !== undefined) registerSecret(value);
  return value;
}

/** True when a secret file can be read by group or others: worth a warning, not a failure. */
export async function isSecretFileExposed(file: string): Promise<boolean> {
  const info = await stat(file);
  return (info.mode & 0o077) !== 0;
}
