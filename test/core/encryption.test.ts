// The job's keys: recipients from the config and its recipientsFile (checked, deduplicated), and
// the identities that open a set, refused early when missing or not the set's.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { identitiesFor, identityFileOf, loadRecipients } from '../../src/core/encryption.js';
import { ConfigError, OperationError } from '../../src/lib/errors.js';
import type { Manifest } from '../../src/set/manifest.js';

function keyPair(dir: string, name: string): { file: string; recipient: string } {
  const file = join(dir, name);
  execFileSync('age-keygen', ['-o', file], { stdio: 'ignore' });
  return { file, recipient: execFileSync('age-keygen', ['-y', file], { encoding: 'utf8' }).trim() };
}

function manifestFor(recipients: string[] | null): Manifest {
  return {
    setId: '20261128T030000Z-abc123',
    encryption: recipients === null ? null : { recipients },
  } as unknown as Manifest;
}

describe('job encryption keys', () => {
  let dir: string;
  let alice: { file: string; recipient: string };
  let bob: { file: string; recipient: string };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-encryption-keys-'));
    alice = keyPair(dir, 'alice.key');
    bob = keyPair(dir, 'bob.key');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('has no recipients without encryption, and merges the list with the file, once each', async () => {
    assert.equal(await loadRecipients(undefined), null);
    const file = join(dir, 'recipients.txt');
    await writeFile(file, `# the team\n${bob.recipient}\n\n${alice.recipient}\n`);
    const recipients = await loadRecipients({ recipients: [alice.recipient], recipientsFile: file });
    assert.deepEqual(
      recipients?.map((r) => r.text),
      [alice.recipient, bob.recipient],
    );
  });

  it('refuses a broken key, a missing file and an empty file as config errors naming them', async () => {
    const broken = `${alice.recipient.slice(0, -1)}${alice.recipient.endsWith('q') ? 'p' : 'q'}`;
    await assert.rejects(loadRecipients({ recipients: [alice.recipient, broken] }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /^encryption\.recipients\[1\]: /);
      return true;
    });
    const missing = join(dir, 'nope.txt');
    await assert.rejects(loadRecipients({ recipientsFile: missing }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /recipientsFile .*nope\.txt cannot be read .*one age public key/);
      return true;
    });
    const empty = join(dir, 'empty.txt');
    await writeFile(empty, '# nobody yet\n');
    await assert.rejects(loadRecipients({ recipientsFile: empty }), /empty\.txt lists no recipients: add the age1/);
  });

  it('takes --identity over the config, and needs no key for a set that is not encrypted', async () => {
    assert.equal(identityFileOf({ recipients: [], identityFile: '/etc/k' }, '/tmp/k'), '/tmp/k');
    assert.equal(identityFileOf({ recipients: [], identityFile: '/etc/k' }, undefined), '/etc/k');
    assert.equal(identityFileOf(undefined, undefined), null);
    assert.equal(await identitiesFor(manifestFor(null), null), null);
  });

  it('refuses an encrypted set without a key, and with a key it was not made for', async () => {
    await assert.rejects(identitiesFor(manifestFor([alice.recipient]), null), (error: unknown) => {
      assert.ok(error instanceof OperationError);
      assert.match(error.message, new RegExp(`is encrypted with age for ${alice.recipient}`));
      assert.match(error.message, /encryption\.identityFile.*--identity FILE/);
      return true;
    });
    await assert.rejects(identitiesFor(manifestFor([alice.recipient]), bob.file), (error: unknown) => {
      assert.ok(error instanceof OperationError);
      assert.match(error.message, new RegExp(`^wrong key: .*bob\\.key holds ${bob.recipient}`));
      assert.doesNotMatch(error.message, /AGE-SECRET-KEY/);
      return true;
    });
    const identities = await identitiesFor(manifestFor([bob.recipient, alice.recipient]), alice.file);
    assert.deepEqual(
      identities?.map((id) => id.recipient),
      [alice.recipient],
    );
  });
});
