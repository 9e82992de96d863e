import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import {
  generateIdentity,
  parseIdentities,
  parseRecipient,
  parseRecipientsFile,
  readIdentityFile,
} from '../../src/crypto/age.js';
import { bech32Encode } from '../../src/crypto/bech32.js';
import { ConfigError, OperationError } from '../../src/lib/errors.js';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'backproof-age-keys-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function configError(fn: () => unknown, message: RegExp): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.match(caught.message, message);
  return caught;
}

async function operationError(promise: Promise<unknown>, message: RegExp): Promise<OperationError> {
  const caught = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.ok(caught instanceof OperationError, `expected an OperationError, got ${String(caught)}`);
  assert.match(caught.message, message);
  return caught;
}

describe('parseRecipient', () => {
  it('accepts an age1 key from age-keygen, trimming spaces around it', () => {
    const { recipient } = generateIdentity();
    assert.deepEqual(parseRecipient(`  ${recipient}\n`), { text: recipient });
  });

  it('rejects a bad checksum, naming the key and the fault', () => {
    const { recipient } = generateIdentity();
    const typo = `${recipient.slice(0, -1)}${recipient.endsWith('q') ? 'p' : 'q'}`;
    configError(() => parseRecipient(typo), new RegExp(`^age recipient "${typo}": .*checksum does not match`));
  });

  it('rejects mixed case, and upper case (age refuses it too)', () => {
    const { recipient } = generateIdentity();
    configError(() => parseRecipient(`AGE1${recipient.slice(4)}`), /mixes upper and lower case/);
    configError(() => parseRecipient(recipient.toUpperCase()), /write it in lower case/);
  });

  it('rejects SSH keys with what to use instead', () => {
    configError(
      () => parseRecipient('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice'),
      /SSH public keys are not supported: use an age1… public key/,
    );
  });

  it('rejects a secret key without repeating it', () => {
    const { identity } = generateIdentity();
    const error = configError(() => parseRecipient(identity), /this is a secret key, not a recipient/);
    assert.ok(!error.message.includes(identity.slice(16)));
  });

  it('rejects plugin recipients, other prefixes, wrong lengths and empty text', () => {
    configError(() => parseRecipient(bech32Encode('age1yubikey', Buffer.alloc(33, 7))), /plugin recipients/);
    configError(() => parseRecipient(bech32Encode('npub', Buffer.alloc(32, 7))), /should start with "age1"/);
    configError(() => parseRecipient(bech32Encode('age', Buffer.alloc(31, 7))), /holds 31 bytes/);
    configError(() => parseRecipient(''), /it is empty/);
  });
});

describe('parseRecipientsFile', () => {
  it('reads keys one per line, skipping comments and blank lines, CRLF or not', () => {
    const [a, b] = [generateIdentity().recipient, generateIdentity().recipient];
    const content = `# backup recipients\r\n${a}\r\n\r\n   # offsite\n  ${b}  \n`;
    assert.deepEqual(
      parseRecipientsFile(content, '/etc/backproof/recipients.txt').map((r) => r.text),
      [a, b],
    );
  });

  it('reports every bad line as file:line, without echoing secrets', () => {
    const good = generateIdentity().recipient;
    const { identity } = generateIdentity();
    const content = [
      good,
      'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN',
      identity,
      `${good.slice(0, -2)}zz`,
    ].join('\n');
    const error = configError(() => parseRecipientsFile(content, 'r.txt'), /^recipients file r.txt has 3 bad lines/);
    assert.equal(error.problems.length, 3);
    assert.match(error.problems[0] ?? '', /^r.txt:2: SSH public keys are not supported/);
    assert.match(error.problems[1] ?? '', /^r.txt:3: this is a secret key/);
    assert.match(error.problems[2] ?? '', /^r.txt:4: not a valid age1… public key/);
    assert.ok(!error.message.includes(identity.slice(16)));
  });

  it('rejects a file with no recipients in it', () => {
    configError(() => parseRecipientsFile('# nothing yet\n\n', 'empty.txt'), /lists no recipients/);
  });
});

describe('readIdentityFile', () => {
  it('reads every key of a file with several, each showing only its public key', async () => {
    const [one, two] = [generateIdentity(), generateIdentity()];
    const file = join(dir, 'two-keys.txt');
    await writeFile(
      file,
      `# created: 2025-11-04T03:00:00Z\n# public key: ${one.recipient}\n${one.identity}\n\n${two.identity}\n`,
    );
    const identities = await readIdentityFile(file);
    assert.deepEqual(
      identities.map((identity) => identity.recipient),
      [one.recipient, two.recipient],
    );
    // Nothing secret shows when an identity is logged or serialized.
    const shown = `${JSON.stringify(identities)} ${inspect(identities, { showHidden: true, depth: 5 })}`;
    assert.ok(!shown.includes(one.identity) && !shown.includes(one.identity.slice(16, 40)));
    assert.deepEqual(Object.keys(identities[0] ?? {}), ['recipient']);
  });

  it('reads what age-keygen writes', async () => {
    const file = join(dir, 'keygen.txt');
    execFileSync('age-keygen', ['-o', file], { stdio: 'pipe' });
    const expected = execFileSync('age-keygen', ['-y', file], { encoding: 'utf8' }).trim();
    assert.deepEqual(
      (await readIdentityFile(file)).map((identity) => identity.recipient),
      [expected],
    );
  });

  it('a missing file: says so, and what a key file looks like', async () => {
    const file = join(dir, 'nope.txt');
    await operationError(
      readIdentityFile(file),
      new RegExp(`^identity file ${file} does not exist: .*age-keygen writes: .*AGE-SECRET-KEY-1…`),
    );
  });

  it('an unreadable file and a directory: say which', async () => {
    await mkdir(join(dir, 'a-dir'));
    await operationError(readIdentityFile(join(dir, 'a-dir')), /is a directory, not a key file/);
    // Root reads anything, so an unreadable file can only be shown by a non-root user.
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked.txt');
      await writeFile(locked, generateIdentity().identity);
      await chmod(locked, 0);
      await operationError(readIdentityFile(locked), /permission denied/);
    }
  });

  it('a file with no key in it', async () => {
    const file = join(dir, 'comments.txt');
    await writeFile(file, '# created: 2025-11-04T03:00:00Z\n\n');
    await operationError(readIdentityFile(file), /holds no age secret key. An age key file is what age-keygen writes/);
  });

  it('bad lines: named by number, never quoted', async () => {
    const { identity, recipient } = generateIdentity();
    const damaged = `${identity.slice(0, 30)}${identity[30] === 'Q' ? 'P' : 'Q'}${identity.slice(31)}`;
    const cases: [string, RegExp][] = [
      [`# ok\n${damaged}\n`, /line 2: the secret key is damaged: .*checksum/],
      [`${recipient}\n`, /line 1: this is a public key \(age1…\)/],
      [`${identity.toLowerCase()}\n`, /line 1: the secret key is in lower case/],
      [
        '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n',
        /SSH or PEM private keys are not supported/,
      ],
      ['AGE-PLUGIN-YUBIKEY-1QQQQQQ\n', /plugin identities/],
      ['age-encryption.org/v1\n-> scrypt abc 18\n', /itself encrypted \(age -p\)/],
      [`${identity} # mine\n`, /line 1: the secret key is damaged/],
    ];
    for (const [content, message] of cases) {
      const file = join(dir, 'bad.txt');
      await writeFile(file, content);
      const error = await operationError(readIdentityFile(file), message);
      assert.ok(!error.message.includes(identity.slice(16, 40)), 'the key must not appear in the message');
      assert.ok(!error.message.includes(damaged.slice(16, 40)));
    }
  });

  it('parseIdentities reads key text held elsewhere, naming its source in errors', () => {
    const { identity, recipient } = generateIdentity();
    assert.equal(parseIdentities(`${identity}\n`, 'BACKPROOF_AGE_KEY')[0]?.recipient, recipient);
    assert.throws(
      () => parseIdentities('', 'BACKPROOF_AGE_KEY'),
      /identity file BACKPROOF_AGE_KEY holds no age secret key/,
    );
  });

  it('refuses a huge file (a wrong path) without reading it', async () => {
    const file = join(dir, 'big.bin');
    await writeFile(file, Buffer.alloc(2 << 20));
    await operationError(readIdentityFile(file), /far too large for a key file/);
  });
});
