import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  checkHostKey,
  entryMatchesHost,
  fingerprintOf,
  hostNameFor,
  keyTypeOf,
  parseKnownHosts,
  pinHostKey,
  pinnedKeyTypes,
  readKnownHosts,
} from '../../src/targets/known-hosts.js';

interface KeyPair {
  /** `ssh-ed25519 AAAA…` */
  line: string;
  blob: Buffer;
  type: string;
  /** As `ssh-keygen -l` prints it. */
  fingerprint: string;
}

let dir: string;
let ed25519: KeyPair;
let other: KeyPair;
let rsa: KeyPair;

/** A real key made by ssh-keygen, with the fingerprint ssh-keygen reports for it. */
function makeKey(name: string, type: string): KeyPair {
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-f', file]);
  const line = execFileSync('cut', ['-d', ' ', '-f1,2', `${file}.pub`], { encoding: 'utf8' }).trim();
  const [keyType, base64] = line.split(' ') as [string, string];
  const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`], {
    encoding: 'utf8',
  }).split(' ')[1] as string;
  return { line, blob: Buffer.from(base64, 'base64'), type: keyType, fingerprint };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'backproof-known-hosts-'));
  ed25519 = makeKey('a', 'ed25519');
  other = makeKey('b', 'ed25519');
  rsa = makeKey('c', 'rsa');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('known_hosts parsing', () => {
  it('reads plain entries, skips comments and blank lines, and reports invalid lines by number', () => {
    const text = [
      '# a comment',
      '',
      `nas.lan ${ed25519.line} root@nas`,
      '   ',
      'broken-line-without-key',
      `[127.0.0.1]:2222 ssh-ed25519 not-base64!`,
      `mismatch ssh-rsa ${ed25519.line.split(' ')[1]}`,
      `@unknown-marker nas.lan ${ed25519.line}`,
      `@revoked * ${other.line}`,
      `@cert-authority *.lan ${rsa.line}`,
    ].join('\n');
    const parsed = parseKnownHosts(text);
    assert.deepEqual(parsed.invalidLines, [5, 6, 7, 8]);
    assert.deepEqual(
      parsed.entries.map((e) => [e.line, e.marker, e.hosts, e.keyType]),
      [
        [3, undefined, 'nas.lan', 'ssh-ed25519'],
        [9, 'revoked', '*', 'ssh-ed25519'],
        [10, 'cert-authority', '*.lan', 'ssh-rsa'],
      ],
    );
    assert.ok(parsed.entries[0]?.key.equals(ed25519.blob));
  });

  it('names a server the way OpenSSH looks it up', () => {
    assert.equal(hostNameFor('nas.lan', 22), 'nas.lan');
    assert.equal(hostNameFor('127.0.0.1', 2222), '[127.0.0.1]:2222');
  });

  it('reads the key type inside a key blob, and refuses a malformed blob', () => {
    assert.equal(keyTypeOf(ed25519.blob), 'ssh-ed25519');
    assert.equal(keyTypeOf(rsa.blob), 'ssh-rsa');
    assert.equal(keyTypeOf(Buffer.from([0, 0])), '');
    assert.equal(keyTypeOf(Buffer.from([0, 0, 1, 0, 65])), '');
  });

  it('prints fingerprints exactly as ssh-keygen -l does', () => {
    for (const key of [ed25519, other, rsa]) assert.equal(fingerprintOf(key.blob), key.fingerprint);
  });
});

describe('known_hosts host matching', () => {
  const matches = (hosts: string, name: string) => entryMatchesHost({ hosts }, name);

  it('matches plain names, [host]:port, comma lists and is case-insensitive', () => {
    assert.equal(matches('nas.lan', 'nas.lan'), true);
    assert.equal(matches('NAS.lan', 'nas.lan'), true);
    assert.equal(matches('nas.lan', 'nas.lan2'), false);
    assert.equal(matches('[127.0.0.1]:2222', '[127.0.0.1]:2222'), true);
    assert.equal(matches('127.0.0.1', '[127.0.0.1]:2222'), false, 'a port-22 entry does not cover another port');
    assert.equal(matches('[127.0.0.1]:2222', '[127.0.0.1]:22222'), false);
    assert.equal(matches('old.lan,nas.lan,10.0.0.5', 'nas.lan'), true);
    assert.equal(matches('old.lan,10.0.0.5', 'nas.lan'), false);
  });

  it('honours * and ? wildcards and ! negation, and treats other characters literally', () => {
    assert.equal(matches('*.lan', 'nas.lan'), true);
    assert.equal(matches('*.lan', 'nas.lan.evil.com'), false);
    assert.equal(matches('nas?.lan', 'nas1.lan'), true);
    assert.equal(matches('nas?.lan', 'nas12.lan'), false);
    assert.equal(matches('*.lan,!evil.lan', 'evil.lan'), false);
    assert.equal(matches('*.lan,!evil.lan', 'good.lan'), true);
    assert.equal(matches('!evil.lan', 'good.lan'), false, 'a negation alone matches nothing');
    assert.equal(matches('nas.lan', 'nasxlan'), false, 'the dot is not a regex wildcard');
    assert.equal(matches('[127.0.0.1]:22*', '[127.0.0.1]:2222'), true);
  });

  it('matches hashed entries written by ssh-keygen -H, and only for their host', async () => {
    const file = join(dir, 'hashed');
    await writeFile(
      file,
      `[127.0.0.1]:2222 ${ed25519.line}\nnas.lan ${rsa.line}\nother.lan,[10.1.2.3]:2200 ${other.line}\n`,
    );
    execFileSync('ssh-keygen', ['-q', '-H', '-f', file], { stdio: 'ignore' });
    const { entries } = await readKnownHosts(file);
    assert.ok(entries.length >= 3);
    for (const e of entries) assert.match(e.hosts, /^\|1\|[^|]+\|[^|]+$/, 'ssh-keygen -H hashed every entry');
    assert.deepEqual(checkHostKey(entries, '[127.0.0.1]:2222', ed25519.blob).status, 'known');
    assert.deepEqual(checkHostKey(entries, 'nas.lan', rsa.blob).status, 'known');
    assert.deepEqual(checkHostKey(entries, '[10.1.2.3]:2200', other.blob).status, 'known');
    assert.deepEqual(checkHostKey(entries, 'other.lan', other.blob).status, 'known');
    assert.deepEqual(checkHostKey(entries, '127.0.0.1', ed25519.blob).status, 'unknown');
    assert.deepEqual(checkHostKey(entries, '[127.0.0.1]:2222', other.blob).status, 'changed');
  });
});

describe('checking a host key', () => {
  it('knows a pinned key, and says which line holds it', () => {
    const { entries } = parseKnownHosts(`x ${rsa.line}\n[127.0.0.1]:2222 ${ed25519.line}\n`);
    assert.deepEqual(checkHostKey(entries, '[127.0.0.1]:2222', ed25519.blob), { status: 'known', line: 2 });
  });

  it('calls a host without entries unknown', () => {
    const { entries } = parseKnownHosts(`nas.lan ${ed25519.line}\n`);
    assert.deepEqual(checkHostKey(entries, 'other.lan', ed25519.blob), { status: 'unknown', certAuthorityLines: [] });
    assert.deepEqual(checkHostKey([], 'other.lan', ed25519.blob), { status: 'unknown', certAuthorityLines: [] });
  });

  it('calls a different key for a known host changed, naming every expected fingerprint', () => {
    const { entries } = parseKnownHosts(`nas.lan ${ed25519.line}\nnas.lan ${rsa.line}\n`);
    assert.deepEqual(checkHostKey(entries, 'nas.lan', other.blob), {
      status: 'changed',
      expected: [
        { line: 1, keyType: 'ssh-ed25519', fingerprint: ed25519.fingerprint },
        { line: 2, keyType: 'ssh-rsa', fingerprint: rsa.fingerprint },
      ],
    });
  });

  it('accepts a key when one of several entries for the host holds it', () => {
    const { entries } = parseKnownHosts(`nas.lan ${rsa.line}\nnas.lan ${ed25519.line}\n`);
    assert.equal(checkHostKey(entries, 'nas.lan', ed25519.blob).status, 'known');
  });

  it('refuses a @revoked key even where a plain entry pins it, and for any host', () => {
    const { entries } = parseKnownHosts(`nas.lan ${ed25519.line}\n@revoked other.lan ${ed25519.line}\n`);
    assert.deepEqual(checkHostKey(entries, 'nas.lan', ed25519.blob), { status: 'revoked', line: 2 });
    assert.equal(checkHostKey(entries, 'nas.lan', other.blob).status, 'changed');
  });

  it('reports @cert-authority lines for a host known only through a CA', () => {
    const { entries } = parseKnownHosts(`@cert-authority *.lan ${rsa.line}\n`);
    assert.deepEqual(checkHostKey(entries, 'nas.lan', ed25519.blob), { status: 'unknown', certAuthorityLines: [1] });
    // A CA line does not make the host "known": its key is not the host's key.
    assert.equal(checkHostKey(entries, 'nas.lan', rsa.blob).status, 'unknown');
    const withPlain = parseKnownHosts(`@cert-authority *.lan ${rsa.line}\nnas.lan ${ed25519.line}\n`).entries;
    assert.equal(checkHostKey(withPlain, 'nas.lan', ed25519.blob).status, 'known');
  });

  it('lists the key types pinned for a host (plain entries only)', () => {
    const { entries } = parseKnownHosts(
      `nas.lan ${rsa.line}\nnas.lan ${rsa.line}\n@revoked nas.lan ${other.line}\nelse ${ed25519.line}\n`,
    );
    assert.deepEqual(pinnedKeyTypes(entries, 'nas.lan'), ['ssh-rsa']);
    assert.deepEqual(pinnedKeyTypes(entries, 'nowhere'), []);
  });
});

describe('pinning a host key', () => {
  it('creates a missing file 0600 (and its directory 0700) that ssh-keygen -F can read', async () => {
    const file = join(dir, 'new-dir', 'known_hosts');
    const line = await pinHostKey(file, '[127.0.0.1]:2222', ed25519.blob);
    assert.equal(line, `[127.0.0.1]:2222 ${ed25519.line}`);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'new-dir'))).mode & 0o777, 0o700);
    assert.equal(await readFile(file, 'utf8'), `${line}\n`);
    const found = execFileSync('ssh-keygen', ['-F', '[127.0.0.1]:2222', '-f', file], { encoding: 'utf8' });
    assert.ok(found.includes(ed25519.line.split(' ')[1] as string), found);
    const { entries } = await readKnownHosts(file);
    assert.equal(checkHostKey(entries, '[127.0.0.1]:2222', ed25519.blob).status, 'known');
  });

  it('appends on a fresh line when the file lacks a final newline, and keeps what was there', async () => {
    const file = join(dir, 'no-newline');
    await writeFile(file, `nas.lan ${rsa.line}`, { mode: 0o644 });
    await pinHostKey(file, 'other.lan', other.blob);
    assert.equal(await readFile(file, 'utf8'), `nas.lan ${rsa.line}\nother.lan ${other.line}\n`);
    assert.equal((await stat(file)).mode & 0o777, 0o644, 'an existing file keeps its mode');
    const { entries, invalidLines } = await readKnownHosts(file);
    assert.deepEqual(invalidLines, []);
    assert.equal(checkHostKey(entries, 'nas.lan', rsa.blob).status, 'known');
    assert.equal(checkHostKey(entries, 'other.lan', other.blob).status, 'known');
  });

  it('refuses to pin a malformed key, and writes nothing', async () => {
    const file = join(dir, 'malformed');
    await assert.rejects(pinHostKey(file, 'x', Buffer.from('nonsense')), /malformed host key/);
    assert.equal((await readKnownHosts(file)).exists, false);
  });

  it('reads a missing file as empty, and a directory as an error', async () => {
    assert.deepEqual(await readKnownHosts(join(dir, 'absent')), { entries: [], invalidLines: [], exists: false });
    await assert.rejects(readKnownHosts(dir), { code: 'EISDIR' });
  });
});
