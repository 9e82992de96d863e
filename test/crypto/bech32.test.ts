import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Bech32Error, bech32Decode, bech32Encode } from '../../src/crypto/bech32.js';

describe('bech32', () => {
  it('accepts the valid BIP 173 test vectors', () => {
    for (const text of [
      'A12UEL5L',
      'a12uel5l',
      'an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs',
      'abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw',
      '11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j',
      'split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w',
    ]) {
      assert.doesNotThrow(() => bech32Decode(text), text);
    }
  });

  it('keeps the case of the prefix it was given', () => {
    assert.equal(bech32Decode('A12UEL5L').prefix, 'A');
    assert.equal(bech32Decode('a12uel5l').prefix, 'a');
  });

  it('round-trips 32-byte keys under both age prefixes', () => {
    for (const prefix of ['age', 'AGE-SECRET-KEY-']) {
      const data = randomBytes(32);
      const text = bech32Encode(prefix, data);
      assert.ok(text.startsWith(`${prefix}1`));
      const decoded = bech32Decode(text);
      assert.equal(decoded.prefix, prefix);
      assert.ok(decoded.data.equals(data));
    }
  });

  it('rejects mixed case, a bad checksum, a foreign letter and a missing separator, saying which', () => {
    const good = bech32Encode('age', randomBytes(32));
    const last = good.at(-1) === 'q' ? 'p' : 'q';
    const cases: [string, RegExp][] = [
      [`${good.slice(0, 10).toUpperCase()}${good.slice(10)}`, /mixes upper and lower case/],
      [`${good.slice(0, -1)}${last}`, /checksum does not match/],
      [`${good.slice(0, 10)}b${good.slice(11)}`, /character 11 is not in the Bech32 alphabet/],
      ['qpzry9x8gf2tvdw0s3jn54khce6mua7l', /no prefix followed by the separator/],
      ['age1qqqq', /too short to hold a checksum/],
    ];
    for (const [text, message] of cases) {
      assert.throws(
        () => bech32Decode(text),
        (error: unknown) => {
          assert.ok(error instanceof Bech32Error);
          assert.match(error.message, message);
          assert.ok(!error.message.includes(text), 'the message must not echo the input');
          return true;
        },
      );
    }
  });

  it('rejects leftover bits that are not zero padding', () => {
    // Both hold the 10 bits of two words; only the second has its 2 spare bits at zero.
    assert.ok(bech32Decode('a1lu9cgf6y').data.equals(Buffer.from([0xff])));
    assert.throws(() => bech32Decode('a1llttal5m'), /leftover bits/);
  });
});
