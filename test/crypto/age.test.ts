// age interoperability with Debian's `age` in both directions, and how damaged files fail.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import {
  AgeDecryptError,
  type AgeDecryptReason,
  type AgeIdentity,
  createEncryptStream,
  generateIdentity,
  parseIdentities,
  parseRecipient,
  readIdentityFile,
} from '../../src/crypto/age.js';
import { age, ageKeygen, CHUNK, decrypt, encrypt, flipped, headerLength, SEALED_CHUNK } from './age-helpers.js';

const SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5_000_000 + 17];

interface Key {
  file: string;
  recipient: string;
  identities: AgeIdentity[];
}

let dir: string;
let alice: Key;
let bob: Key;

async function makeKey(name: string): Promise<Key> {
  const file = join(dir, `${name}.txt`);
  ageKeygen(['-o', file]);
  const recipient = ageKeygen(['-y', file]).trim();
  return { file, recipient, identities: await readIdentityFile(file) };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'backproof-age-'));
  alice = await makeKey('alice');
  bob = await makeKey('bob');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Asserts the failure reason and that exactly `goodBytes` of plaintext came out before it. */
function assertFailed(
  result: { output: Buffer; error: unknown },
  plaintext: Buffer,
  reason: AgeDecryptReason,
  goodBytes: number,
): AgeDecryptError {
  assert.ok(result.error instanceof AgeDecryptError, `expected an AgeDecryptError, got ${String(result.error)}`);
  assert.equal(result.error.reason, reason, result.error.message);
  assert.equal(result.output.length, goodBytes, 'plaintext released before the failure');
  assert.ok(result.output.equals(plaintext.subarray(0, goodBytes)));
  return result.error;
}

describe('files we encrypt open with age -d', () => {
  for (const [index, size] of SIZES.entries()) {
    it(`${size} bytes`, async () => {
      const plaintext = randomBytes(size);
      // Vary how the input arrives: small writes, odd writes, one big write.
      const pieceSize = [16 * 1024, 1000, size + 1][index % 3] as number;
      const ciphertext = await encrypt(plaintext, [parseRecipient(alice.recipient)], pieceSize);
      assert.ok(age(['-d', '-i', alice.file], ciphertext).equals(plaintext));
      const ours = await decrypt(ciphertext, alice.identities);
      assert.equal(ours.error, undefined);
      assert.ok(ours.output.equals(plaintext));
    });
  }

  it('is exactly header + nonce + sealed chunks long (no padding, no extra chunk)', async () => {
    for (const size of [0, CHUNK, CHUNK + 1]) {
      const ciphertext = await encrypt(randomBytes(size), [parseRecipient(alice.recipient)]);
      const chunks = Math.max(1, Math.ceil(size / CHUNK));
      assert.equal(ciphertext.length, headerLength(ciphertext) + 16 + size + 16 * chunks);
    }
  });

  it('with two recipients, each key alone opens it', async () => {
    const plaintext = randomBytes(200_000);
    const ciphertext = await encrypt(plaintext, [parseRecipient(alice.recipient), parseRecipient(bob.recipient)]);
    assert.ok(age(['-d', '-i', alice.file], ciphertext).equals(plaintext));
    assert.ok(age(['-d', '-i', bob.file], ciphertext).equals(plaintext));
    assert.ok((await decrypt(ciphertext, bob.identities)).output.equals(plaintext));
  });

  it('when the input fails midway, what came out never decrypts as a complete file', async () => {
    const recipients = [parseRecipient(alice.recipient)];
    const out: Buffer[] = [];
    const failing = new Readable({
      read() {
        if (out.length > 0) return this.destroy(new Error('source went away'));
        this.push(randomBytes(3 * CHUNK));
      },
    });
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        callback();
      },
    });
    await assert.rejects(pipeline(failing, createEncryptStream(recipients), sink), /source went away/);
    const partial = Buffer.concat(out);
    assert.ok(partial.length > 2 * SEALED_CHUNK, 'some chunks were written before the failure');
    const { error } = await decrypt(partial, alice.identities);
    assert.ok(error instanceof AgeDecryptError && error.reason === 'truncated', String(error));
  });

  it('uses a fresh file key and nonce every time', async () => {
    const plaintext = Buffer.from('same input');
    const recipients = [parseRecipient(alice.recipient)];
    const [one, two] = [await encrypt(plaintext, recipients), await encrypt(plaintext, recipients)];
    assert.notDeepEqual(one, two);
  });
});

describe('files age encrypts open with our decrypt stream', () => {
  for (const size of SIZES) {
    it(`${size} bytes`, async () => {
      const plaintext = randomBytes(size);
      const ciphertext = age(['-e', '-r', alice.recipient], plaintext);
      // Tiny pieces for small files (the header arrives byte by byte), big odd ones for large.
      const pieceSize = size <= CHUNK + 1 ? 7 : 2 * SEALED_CHUNK + 3;
      const { output, error } = await decrypt(ciphertext, alice.identities, pieceSize);
      assert.equal(error, undefined);
      assert.ok(output.equals(plaintext));
    });
  }

  it('made with -R and two recipients, opened with the second key', async () => {
    const recipientsFile = join(dir, 'recipients.txt');
    await writeFile(recipientsFile, `# ops team\n${alice.recipient}\n\n# offsite\n${bob.recipient}\n`);
    const plaintext = randomBytes(70_000);
    const ciphertext = age(['-e', '-R', recipientsFile], plaintext);
    const { output, error } = await decrypt(ciphertext, bob.identities);
    assert.equal(error, undefined);
    assert.ok(output.equals(plaintext));
  });

  it('tries every identity: a wrong key first does not stop the right one', async () => {
    const plaintext = randomBytes(1000);
    const ciphertext = age(['-e', '-r', bob.recipient], plaintext);
    const { output, error } = await decrypt(ciphertext, [...alice.identities, ...bob.identities]);
    assert.equal(error, undefined);
    assert.ok(output.equals(plaintext));
  });
});

describe('keys shared with age-keygen', () => {
  it('reads an age-keygen key file: its public key is what age-keygen -y prints', () => {
    assert.equal(alice.identities.length, 1);
    assert.equal(alice.identities[0]?.recipient, alice.recipient);
  });

  it('generateIdentity makes keys that age and age-keygen accept', async () => {
    const { identity, recipient } = generateIdentity();
    assert.match(identity, /^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
    assert.match(recipient, /^age1[0-9a-z]{58}$/);
    const file = join(dir, 'generated.txt');
    await writeFile(file, `# public key: ${recipient}\n${identity}\n`);
    assert.equal(ageKeygen(['-y', file]).trim(), recipient);
    const plaintext = randomBytes(5000);
    assert.ok(age(['-d', '-i', file], age(['-e', '-r', recipient], plaintext)).equals(plaintext));
    const ours = await decrypt(await encrypt(plaintext, [parseRecipient(recipient)]), parseIdentities(identity, 'x'));
    assert.ok(ours.output.equals(plaintext));
  });
});

describe('damaged or wrong input fails with the right reason, releasing only verified plaintext', () => {
  // 3 full chunks and a short final one, made by age.
  let plaintext: Buffer;
  let file: Buffer;
  let payloadStart: number;

  before(() => {
    plaintext = randomBytes(3 * CHUNK + 100);
    file = age(['-e', '-r', alice.recipient], plaintext);
    payloadStart = headerLength(file) + 16;
  });

  it('the wrong key: no-matching-identity, naming the key tried, never its secret', async () => {
    const secret = generateIdentity();
    const result = await decrypt(file, parseIdentities(secret.identity, 'test'));
    const error = assertFailed(result, plaintext, 'no-matching-identity', 0);
    assert.match(error.message, /^wrong key: this file was encrypted for 1 X25519 key/);
    assert.ok(error.message.includes(secret.recipient));
    assert.ok(!error.message.includes(secret.identity));
    assert.ok(!error.message.includes(secret.identity.slice(16, 40)));
  });

  const cuts: { name: string; at: (file: Buffer) => number; reason: AgeDecryptReason; goodChunks: number }[] = [
    { name: 'an empty file', at: () => 0, reason: 'truncated', goodChunks: 0 },
    { name: 'inside the intro line', at: () => 10, reason: 'truncated', goodChunks: 0 },
    { name: 'inside the MAC line', at: (f) => headerLength(f) - 5, reason: 'truncated', goodChunks: 0 },
    { name: 'inside the nonce', at: (f) => headerLength(f) + 8, reason: 'truncated', goodChunks: 0 },
    { name: 'right after the nonce', at: (f) => headerLength(f) + 16, reason: 'truncated', goodChunks: 0 },
    {
      name: 'a few bytes into the first chunk',
      at: (f) => headerLength(f) + 16 + 5,
      reason: 'truncated',
      goodChunks: 0,
    },
    {
      name: 'at the first chunk boundary',
      at: (f) => headerLength(f) + 16 + SEALED_CHUNK,
      reason: 'truncated',
      goodChunks: 1,
    },
    {
      name: 'at the third chunk boundary',
      at: (f) => headerLength(f) + 16 + 3 * SEALED_CHUNK,
      reason: 'truncated',
      goodChunks: 3,
    },
    // Cut inside a chunk looks exactly like a damaged final chunk: the tag fails either way.
    {
      name: 'in the middle of the second chunk',
      at: (f) => headerLength(f) + 16 + SEALED_CHUNK + 1000,
      reason: 'corrupt',
      goodChunks: 1,
    },
    { name: 'inside the final chunk', at: (f) => f.length - 10, reason: 'corrupt', goodChunks: 3 },
  ];
  for (const cut of cuts) {
    it(`cut short ${cut.name}: ${cut.reason}`, async () => {
      const at = cut.at(file);
      const error = assertFailed(
        await decrypt(file.subarray(0, at), alice.identities),
        plaintext,
        cut.reason,
        cut.goodChunks * CHUNK,
      );
      if (cut.reason === 'truncated' && at > 0) assert.ok(error.message.includes(`cut short after ${at} bytes`));
      assert.match(error.message, /fetch it again or restore another set/);
    });
  }

  it('one flipped byte in the intro: not-age', async () => {
    assertFailed(await decrypt(flipped(file, 3), alice.identities), plaintext, 'not-age', 0);
  });

  it('one flipped byte breaking the header syntax: header-corrupt', async () => {
    const stanzaStart = file.indexOf('\n-> ') + 1;
    assertFailed(await decrypt(flipped(file, stanzaStart), alice.identities), plaintext, 'header-corrupt', 0);
  });

  it('a changed letter in the wrapped file key: no identity can open it', async () => {
    const bodyLine = file.indexOf(0x0a, file.indexOf('\n-> ') + 1) + 1;
    const error = assertFailed(
      await decrypt(withLetterChanged(file, bodyLine + 10), alice.identities),
      plaintext,
      'no-matching-identity',
      0,
    );
    assert.match(error.message, /the file header is damaged/);
  });

  it('a changed letter in the header MAC: header-corrupt, before any plaintext', async () => {
    const macStart = file.indexOf('\n--- ') + 5;
    const error = assertFailed(
      await decrypt(withLetterChanged(file, macStart + 10), alice.identities),
      plaintext,
      'header-corrupt',
      0,
    );
    assert.match(error.message, /MAC does not match/);
  });

  const flips: { name: string; at: (start: number, file: Buffer) => number; goodChunks: number }[] = [
    { name: 'the nonce', at: (start) => start - 3, goodChunks: 0 },
    { name: 'the first chunk', at: (start) => start + 100, goodChunks: 0 },
    { name: "the first chunk's tag", at: (start) => start + SEALED_CHUNK - 1, goodChunks: 0 },
    { name: 'the second chunk', at: (start) => start + SEALED_CHUNK + 100, goodChunks: 1 },
    { name: "the final chunk's tag", at: (_start, f) => f.length - 1, goodChunks: 3 },
  ];
  for (const flip of flips) {
    it(`one flipped byte in ${flip.name}: corrupt`, async () => {
      const damaged = flipped(file, flip.at(payloadStart, file));
      const error = assertFailed(
        await decrypt(damaged, alice.identities),
        plaintext,
        'corrupt',
        flip.goodChunks * CHUNK,
      );
      assert.match(error.message, new RegExp(`payload chunk ${flip.goodChunks + 1} `));
    });
  }

  it('bytes after a short final chunk: corrupt', async () => {
    const result = await decrypt(Buffer.concat([file, Buffer.from('garbage')]), alice.identities);
    assertFailed(result, plaintext, 'corrupt', 3 * CHUNK);
  });

  it('bytes after a full-size final chunk: corrupt, as age says', async () => {
    const exact = randomBytes(2 * CHUNK);
    const withTail = Buffer.concat([age(['-e', '-r', alice.recipient], exact), randomBytes(12)]);
    assert.throws(() => age(['-d', '-i', alice.file], withTail));
    const error = assertFailed(await decrypt(withTail, alice.identities), exact, 'corrupt', 2 * CHUNK);
    assert.match(error.message, /goes on after age's final chunk/);
  });

  it('an ASCII-armored file (age -a): unsupported, with what to do', async () => {
    const armored = age(['-e', '-a', '-r', alice.recipient], plaintext);
    const error = assertFailed(await decrypt(armored, alice.identities), plaintext, 'unsupported', 0);
    assert.match(error.message, /age -d -i KEY/);
  });

  it('a file that is not age at all: not-age, without quoting it', async () => {
    const secretish = Buffer.from('DB_PASSWORD=hunter2\n'.repeat(100));
    const error = assertFailed(await decrypt(secretish, alice.identities), secretish, 'not-age', 0);
    assert.ok(!error.message.includes('hunter2'));
  });

  it('is an OperationError, so the CLI shows it without a stack', async () => {
    const { error } = await decrypt(Buffer.from('nope'), alice.identities);
    const { OperationError } = await import('../../src/lib/errors.js');
    assert.ok(error instanceof OperationError);
  });
});

/** Replaces the base64 letter at `at` with another valid one (keeping the line well-formed). */
function withLetterChanged(file: Buffer, at: number): Buffer {
  const copy = Buffer.from(file);
  copy[at] = copy[at] === 0x41 ? 0x42 : 0x41; // 'A' <-> 'B'
  return copy;
}
