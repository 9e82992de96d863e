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

/** `redact` applied to every string inside a JSON-like value (evidence, reports); a new value. */
export function redactDeep<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map((item) => redactDeep(item)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactDeep(item)])) as T;
  }
  return value;
}

/** For tests: forget every registered secret. */
export function clearSecrets(): void {
  secrets.clear();
}
