// known_hosts, as OpenSSH writes and reads it: parsing, matching a server's host key, and pinning a
// new one. Plain (`host`, `[host]:port`, comma lists, `*`/`?` wildcards, `!` negation) and hashed
// (`|1|salt|hmac-sha1`) host fields are understood. `@revoked` keys are refused; `@cert-authority`
// lines are recognised, but host certificates are not verified, so a host known only through a CA is
// refused with a message saying so.
import { createHash, createHmac } from 'node:crypto';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface KnownHostEntry {
  /** 1-based line number in the file, for messages. */
  line: number;
  marker: 'revoked' | 'cert-authority' | undefined;
  /** The host field as written: a comma list of patterns, or one `|1|salt|hash`. */
  hosts: string;
  keyType: string;
  /** The public key blob (the base64 field, decoded). */
  key: Buffer;
}

export interface ParsedKnownHosts {
  entries: KnownHostEntry[];
  /** Line numbers that are neither comments nor valid entries (OpenSSH skips them too). */
  invalidLines: number[];
}

export type HostKeyVerdict =
  /** A plain entry for this host holds exactly this key. */
  | { status: 'known'; line: number }
  /** No plain entry names this host. `certAuthorityLines`: CA lines that do (not supported). */
  | { status: 'unknown'; certAuthorityLines: number[] }
  /** Entries name this host, none holds this key: the server's key changed (or it is not that server). */
  | { status: 'changed'; expected: { line: number; keyType: string; fingerprint: string }[] }
  /** The key is listed as `@revoked`. */
  | { status: 'revoked'; line: number };

export function parseKnownHosts(text: string): ParsedKnownHosts {
  const entries: KnownHostEntry[] = [];
  const invalidLines: number[] = [];
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const content = raw.trim();
    if (content === '' || content.startsWith('#')) continue;
    const fields = content.split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0]?.startsWith('@')) {
      const name = fields.shift();
      if (name === '@revoked') marker = 'revoked';
      else if (name === '@cert-authority') marker = 'cert-authority';
      else {
        invalidLines.push(index + 1);
        continue;
      }
    }
    const [hosts, keyType, base64] = fields;
    const key = base64 === undefined ? undefined : decodeKey(base64);
    if (hosts === undefined || keyType === undefined || key === undefined || keyTypeOf(key) !== keyType) {
      invalidLines.push(index + 1);
      continue;
    }
    entries.push({ line: index + 1, marker, hosts, keyType, key });
  }
  return { entries, invalidLines };
}

/** The name OpenSSH looks up for a server: `host` on port 22, `[host]:port` otherwise. */
export function hostNameFor(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Whether an entry's host field names `name` (as given by `hostNameFor`). */
export function entryMatchesHost(entry: Pick<KnownHostEntry, 'hosts'>, name: string): boolean {
  if (entry.hosts.startsWith('|1|')) return hashedMatches(entry.hosts, name);
  let matched = false;
  for (const pattern of entry.hosts.split(',')) {
    if (pattern.startsWith('!')) {
      // A negated pattern that matches excludes the host, whatever else matches.
      if (wildcardMatches(pattern.slice(1), name)) return false;
    } else if (wildcardMatches(pattern, name)) {
      matched = true;
    }
  }
  return matched;
}

/** Checks the key a server presented against the entries, as `ssh -o StrictHostKeyChecking=yes` would. */
export function checkHostKey(entries: readonly KnownHostEntry[], name: string, key: Buffer): HostKeyVerdict {
  // A revoked key is refused for every host: it is the key, not the host, that is compromised.
  const revoked = entries.find((e) => e.marker === 'revoked' && e.key.equals(key));
  if (revoked) return { status: 'revoked', line: revoked.line };
  const forHost = entries.filter((e) => entryMatchesHost(e, name));
  const plain = forHost.filter((e) => e.marker === undefined);
  const exact = plain.find((e) => e.key.equals(key));
  if (exact) return { status: 'known', line: exact.line };
  if (plain.length === 0) {
    return {
      status: 'unknown',
      certAuthorityLines: forHost.filter((e) => e.marker === 'cert-authority').map((e) => e.line),
    };
  }
  return {
    status: 'changed',
    expected: plain.map((e) => ({ line: e.line, keyType: e.keyType, fingerprint: fingerprintOf(e.key) })),
  };
}

/** Key types pinned for `name` (plain entries), so the client can ask the server for one of those first. */
export function pinnedKeyTypes(entries: readonly KnownHostEntry[], name: string): string[] {
  const types = entries.filter((e) => e.marker === undefined && entryMatchesHost(e, name)).map((e) => e.keyType);
  return [...new Set(types)];
}

/** `SHA256:…` as `ssh-keygen -l` and `ssh` print it. */
export function fingerprintOf(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside a public key blob (`ssh-ed25519`), or '' when the blob is malformed. */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return '';
  const length = key.readUInt32BE(0);
  if (length === 0 || length > 64 || 4 + length > key.length) return '';
  return key.subarray(4, 4 + length).toString('latin1');
}

/** Reads a known_hosts file; a missing file is an empty one (`exists: false`). */
export async function readKnownHosts(file: string): Promise<ParsedKnownHosts & { exists: boolean }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], invalidLines: [], exists: false };
    throw error;
  }
  return { ...parseKnownHosts(text), exists: true };
}

/**
 * Appends `name keytype base64` to the file, creating it (0600, and its directory 0700) when missing.
 * Returns the line written, without its newline.
 */
export async function pinHostKey(file: string, name: string, key: Buffer): Promise<string> {
  const keyType = keyTypeOf(key);
  if (keyType === '') throw new Error('the server presented a malformed host key; nothing was pinned');
  const line = `${name} ${keyType} ${key.toString('base64')}`;
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const handle = await open(file, 'a+', 0o600);
  try {
    // Start on a fresh line when the file does not end with one (hand-edited files often don't).
    const { size } = await handle.stat();
    let separator = '';
    if (size > 0) {
      const last = Buffer.alloc(1);
      await handle.read(last, 0, 1, size - 1);
      if (last[0] !== 0x0a) separator = '\n';
    }
    await handle.appendFile(`${separator}${line}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return line;
}

function decodeKey(base64: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) return undefined;
  const key = Buffer.from(base64, 'base64');
  return key.length > 0 ? key : undefined;
}

function hashedMatches(field: string, name: string): boolean {
  const [, , salt, hash] = field.split('|');
  if (salt === undefined || hash === undefined) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
  return expected.length === actual.length && expected.equals(actual);
}

/** OpenSSH's match_pattern: `*` any run, `?` one character, case-insensitive for host names. */
function wildcardMatches(pattern: string, name: string): boolean {
  if (pattern === '') return false;
  const source = pattern
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`, 'i').test(name);
}
