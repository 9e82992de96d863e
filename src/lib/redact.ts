// Redaction, in one place: secrets read at run time are registered here, and every line of output
// (reports, logs, messages) passes through `redact` before it leaves the process.

const secrets = new Set<string>();
/** Shorter values would redact ordinary words; such passwords are refused nowhere, only not masked. */
const MIN_SECRET_LENGTH = 4;

export function registerSecret(value: string): void {
  if (value.length >= MIN_SECRET_LENGTH) secrets.add(value);
}

/** Replaces every registered secret and every URL's userinfo/password with `***`. */
export function redact(text: string): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join('***');
  // scheme://user:password@host → scheme://user:***@host
  return out.replace(/\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]+):[^\s@/]+@/gi, '$1:***@');
}

/** For tests: forget every registered secret. */
export function clearSecrets(): void {
  secrets.clear();
}
