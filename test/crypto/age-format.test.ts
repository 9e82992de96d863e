// Hand-made age files for the header and STREAM rules no well-behaved encoder breaks. Where it
// matters, Debian's age is asked too, so the crafted files are known to mean what we think.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgeDecryptError, type AgeDecryptReason, type AgeIdentity, readIdentityFile } from '../../src/crypto/age.js';
import { decodeBase64Strict, encodeBase64, MAX_HEADER_BYTES } from '../../src/crypto/age-format.js';
import {
  age,
  ageKeygen,
  CHUNK,
  craft,
  decrypt,
  headerLength,
  newFileKey,
  SEALED_CHUNK,
  x25519For,
} from './age-helpers.js';

let dir: string;
let keyFile: string;
let recipient: string;
let identities: AgeIdentity[];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'backproof-age-format-'));
  keyFile = join(dir, 'key.txt');
  ageKeygen(['-o', keyFile]);
  recipient = ageKeygen(['-y', keyFile]).trim();
  identities = await readIdentityFile(keyFile);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fails(file: Buffer, reason: AgeDecryptReason, message: RegExp, goodBytes = 0): Promise<void> {
  const { output, error } = await decrypt(file, identities);
  assert.ok(error instanceof AgeDecryptError, `expected an AgeDecryptError, got ${String(error)}`);
  assert.equal(error.reason, reason, error.message);
  assert.match(error.message, message);
  assert.equal(output.length, goodBytes, 'plaintext released before the failure');
}

async function opens(file: Buffer, plaintext: Buffer): Promise<void> {
  const { output, error } = await decrypt(file, identities);
  assert.equal(error, undefined);
  assert.ok(output.equals(plaintext));
}

describe('strict base64', () => {
  it('decodes unpadded canonical base64 only', () => {
    assert.deepEqual(decodeBase64Strict('aGk'), Buffer.from('hi'));
    assert.deepEqual(decodeBase64Strict(''), Buffer.alloc(0));
    assert.equal(decodeBase64Strict('aGk='), undefined, 'padding');
    assert.equal(decodeBase64Strict('aGl'), undefined, 'non-zero spare bits');
    assert.equal(decodeBase64Strict('aG k'), undefined, 'a space');
    assert.equal(decodeBase64Strict('aGk-'), undefined, 'url-safe letters');
    assert.equal(decodeBase64Strict('aGkhx'), undefined, 'a length no encoder makes');
    assert.equal(encodeBase64(Buffer.from('hi')), 'aGk');
  });
});

describe('header stanzas', () => {
  it('skips stanzas of other types when an X25519 one matches (age agrees)', async () => {
    const fileKey = newFileKey();
    const plaintext = randomBytes(1000);
    const file = craft({
      fileKey,
      stanzas: [
        { type: 'ssh-ed25519', args: ['Zm9v', encodeBase64(randomBytes(32))], body: randomBytes(32) },
        { type: 'grease-%@!', args: [], body: randomBytes(48) }, // a full body line, then an empty one
        { type: 'grease-2', args: ['a', 'b'], body: Buffer.alloc(0) },
        x25519For(recipient, fileKey),
      ],
      chunks: [plaintext],
    });
    assert.ok(age(['-d', '-i', keyFile], file).equals(plaintext));
    await opens(file, plaintext);
  });

  it('only SSH stanzas: no-matching-identity, saying which keys the file wants', async () => {
    const fileKey = newFileKey();
    const file = craft({
      fileKey,
      stanzas: [{ type: 'ssh-ed25519', args: ['Zm9v', encodeBase64(randomBytes(32))], body: randomBytes(32) }],
      chunks: [Buffer.from('x')],
    });
    await fails(file, 'no-matching-identity', /encrypted for 1 "ssh-ed25519" key.*Only age X25519 keys/);
  });

  it('a passphrase (scrypt) stanza alone: unsupported', async () => {
    const fileKey = newFileKey();
    const file = craft({
      fileKey,
      stanzas: [{ type: 'scrypt', args: [encodeBase64(randomBytes(16)), '18'], body: randomBytes(32) }],
      chunks: [Buffer.from('x')],
    });
    await fails(file, 'unsupported', /encrypted with a passphrase \(age -p\).*age -d/);
  });

  // The spec and the age test kit (C2SP CCTV scrypt_and_x25519) reject this; Debian's age 1.1.1 still opens it.
  it('an scrypt stanza next to others: header-corrupt, even when an X25519 one matches', async () => {
    const fileKey = newFileKey();
    const file = craft({
      fileKey,
      stanzas: [
        x25519For(recipient, fileKey),
        { type: 'scrypt', args: [encodeBase64(randomBytes(16)), '18'], body: randomBytes(32) },
      ],
      chunks: [Buffer.from('x')],
    });
    await fails(file, 'header-corrupt', /scrypt stanza must be the only one/);
  });

  it('a malformed X25519 stanza: header-corrupt (extra argument, short share, long body, low-order share)', async () => {
    const fileKey = newFileKey();
    const good = x25519For(recipient, fileKey);
    const variants = [
      { ...good, args: [...good.args, 'extra'] },
      { ...good, args: [encodeBase64(randomBytes(31))] },
      { ...good, body: Buffer.concat([good.body, Buffer.from([0])]) },
      { ...good, args: [encodeBase64(Buffer.alloc(32))] },
    ];
    for (const stanza of variants) {
      await fails(
        craft({ fileKey, stanzas: [stanza], chunks: [Buffer.from('x')] }),
        'header-corrupt',
        /X25519 stanza 1/,
      );
    }
  });

  it('no stanza at all: header-corrupt', async () => {
    await fails(
      craft({ fileKey: newFileKey(), stanzas: [], chunks: [Buffer.from('x')] }),
      'header-corrupt',
      /no recipient stanza/,
    );
  });

  const syntax: [string, (text: string) => string, RegExp][] = [
    ['padding in a body line', (t) => t.replace(/\n([A-Za-z0-9+/]{43})\n/, '\n$1=\n'), /not a valid stanza body line/],
    [
      'a body line over 64 columns',
      (t) => t.replace(/\n([A-Za-z0-9+/]{43})\n/, '\n$1$1\n'),
      /not a valid stanza body line/,
    ],
    [
      'a non-canonical share',
      (t) => t.replace(/(-> X25519 [A-Za-z0-9+/]{42})[A-Za-z0-9+/]/, '$1B'),
      /malformed ephemeral share/,
    ],
    ['an empty argument', (t) => t.replace('-> X25519 ', '-> X25519  '), /empty or invalid argument/],
    ['a stanza without its type', (t) => t.replace(/-> X25519 \S+/, '->'), /stanza without a type/],
    ['a stray line', (t) => t.replace('\n---', '\nhello\n---'), /not a valid stanza body line|should start a stanza/],
    ['CRLF line endings', (t) => t.replaceAll('\n', '\r\n'), /CRLF/],
  ];
  for (const [name, rewrite, message] of syntax) {
    it(`${name}: header-corrupt, with no plaintext out`, async () => {
      const fileKey = newFileKey();
      const file = craft({
        fileKey,
        stanzas: [x25519For(recipient, fileKey)],
        chunks: [Buffer.from('plaintext')],
        rewriteHeader: rewrite,
      });
      assert.throws(() => age(['-d', '-i', keyFile], file), 'age rejects it too');
      await fails(file, 'header-corrupt', message);
    });
  }

  it('a MAC line without its space, or with two MACs: header-corrupt', async () => {
    const fileKey = newFileKey();
    const file = craft({ fileKey, stanzas: [x25519For(recipient, fileKey)], chunks: [Buffer.from('x')] });
    const macAt = file.indexOf('\n--- ') + 4;
    const noSpace = Buffer.concat([file.subarray(0, macAt), file.subarray(macAt + 1)]);
    await fails(noSpace, 'header-corrupt', /not a valid MAC line/);
    const twoMacs = Buffer.concat([file.subarray(0, macAt + 1), Buffer.from('AAAA '), file.subarray(macAt + 1)]);
    await fails(twoMacs, 'header-corrupt', /not a valid MAC line/);
  });

  it('a wrong MAC with the right key: header-corrupt before any plaintext', async () => {
    const fileKey = newFileKey();
    const file = craft({
      fileKey,
      stanzas: [x25519For(recipient, fileKey)],
      chunks: [randomBytes(CHUNK), Buffer.from('tail')],
      mac: randomBytes(32),
    });
    await fails(file, 'header-corrupt', /MAC does not match/);
  });

  it('another version: unsupported', async () => {
    await fails(Buffer.from('age-encryption.org/v2\n-> X25519 abc\n'), 'unsupported', /another format version/);
  });

  it('a header that never ends: header-corrupt after 1 MiB, not an unbounded buffer', async () => {
    const endless = Buffer.concat([
      Buffer.from('age-encryption.org/v1\n-> x\n'),
      Buffer.alloc(MAX_HEADER_BYTES + 10, 'A'),
    ]);
    await fails(endless, 'header-corrupt', /no end of header within the first 1048576 bytes/);
  });
});

describe('payload chunks', () => {
  it('an empty final chunk after a full one: corrupt, after releasing the full one (age agrees)', async () => {
    const fileKey = newFileKey();
    const first = randomBytes(CHUNK);
    const file = craft({ fileKey, stanzas: [x25519For(recipient, fileKey)], chunks: [first, Buffer.alloc(0)] });
    assert.throws(() => age(['-d', '-i', keyFile], file));
    await fails(file, 'corrupt', /empty final chunk/, CHUNK);
  });

  it('a lone empty final chunk is the empty file', async () => {
    const fileKey = newFileKey();
    await opens(
      craft({ fileKey, stanzas: [x25519For(recipient, fileKey)], chunks: [Buffer.alloc(0)] }),
      Buffer.alloc(0),
    );
  });

  it('a full-size final chunk after another one', async () => {
    const fileKey = newFileKey();
    const [first, second] = [randomBytes(CHUNK), randomBytes(CHUNK)];
    const file = craft({ fileKey, stanzas: [x25519For(recipient, fileKey)], chunks: [first, second] });
    await opens(file, Buffer.concat([first, second]));
  });

  it('chunks without a final one: truncated, after releasing them', async () => {
    const fileKey = newFileKey();
    const [first, second] = [randomBytes(CHUNK), randomBytes(CHUNK)];
    const file = craft({ fileKey, stanzas: [x25519For(recipient, fileKey)], chunks: [first, second], noFinal: true });
    await fails(file, 'truncated', /ends after payload chunk 2 without age's final chunk/, 2 * CHUNK);
  });

  it('a short chunk not marked final: corrupt', async () => {
    const fileKey = newFileKey();
    const file = craft({
      fileKey,
      stanzas: [x25519For(recipient, fileKey)],
      chunks: [Buffer.from('short')],
      noFinal: true,
    });
    await fails(file, 'corrupt', /payload chunk 1 /);
  });

  it('chunks in the wrong order: corrupt at the first one out of place', async () => {
    const fileKey = newFileKey();
    const chunks = [randomBytes(CHUNK), randomBytes(CHUNK), randomBytes(CHUNK), Buffer.from('end')];
    const file = craft({ fileKey, stanzas: [x25519For(recipient, fileKey)], chunks });
    const start = headerLength(file) + 16;
    const [second, third] = [start + SEALED_CHUNK, start + 2 * SEALED_CHUNK];
    const swapped = Buffer.concat([
      file.subarray(0, second),
      file.subarray(third, third + SEALED_CHUNK),
      file.subarray(second, third),
      file.subarray(third + SEALED_CHUNK),
    ]);
    assert.equal(swapped.length, file.length);
    await fails(swapped, 'corrupt', /payload chunk 2 /, CHUNK);
  });
});
