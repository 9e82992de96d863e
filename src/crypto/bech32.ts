// Bech32 (BIP 173, the original checksum constant 1, not Bech32m), as age uses it for its keys.
// Like age, no 90-character limit, and the human-readable part keeps its case so callers can
// tell `age1…` (recipients, lower case) from `AGE-SECRET-KEY-1…` (identities, upper case).

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const GENERATORS = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
const CHECKSUM_LENGTH = 6;

/** Why a string is not valid Bech32; the message never repeats the string (it may be a secret key). */
export class Bech32Error extends Error {
  override readonly name = 'Bech32Error';
}

export interface Bech32Decoded {
  /** The part before the last `1`, in the case it was written in. */
  readonly prefix: string;
  readonly data: Buffer;
}

function polymod(values: readonly number[]): number {
  let checksum = 1;
  for (const value of values) {
    const top = checksum >>> 25;
    checksum = ((checksum & 0x1ffffff) << 5) ^ value;
    for (let bit = 0; bit < 5; bit++) {
      if ((top >>> bit) & 1) checksum ^= GENERATORS[bit] as number;
    }
  }
  return checksum;
}

function expandPrefix(prefix: string): number[] {
  const high: number[] = [];
  const low: number[] = [];
  for (let i = 0; i < prefix.length; i++) {
    const code = prefix.charCodeAt(i);
    high.push(code >>> 5);
    low.push(code & 31);
  }
  return [...high, 0, ...low];
}

/** Regroups bits from `fromBits`-wide to `toBits`-wide words. */
function convertBits(data: Iterable<number>, fromBits: number, toBits: number, pad: boolean): number[] {
  let accumulator = 0;
  let bits = 0;
  const out: number[] = [];
  const mask = (1 << toBits) - 1;
  for (const value of data) {
    accumulator = (accumulator << fromBits) | value;
    bits += fromBits;
    while (bits >= toBits) {
      bits -= toBits;
      out.push((accumulator >>> bits) & mask);
    }
    accumulator &= (1 << bits) - 1;
  }
  if (pad) {
    if (bits > 0) out.push((accumulator << (toBits - bits)) & mask);
  } else if (bits >= fromBits || accumulator !== 0) {
    throw new Bech32Error('its data has leftover bits (it was not encoded from whole bytes)');
  }
  return out;
}

/** Encodes `data` under `prefix`; the result has the prefix's case (all lower or all upper). */
export function bech32Encode(prefix: string, data: Uint8Array): string {
  const lowerPrefix = prefix.toLowerCase();
  const words = convertBits(data, 8, 5, true);
  const checksum = polymod([...expandPrefix(lowerPrefix), ...words, 0, 0, 0, 0, 0, 0]) ^ 1;
  let text = `${lowerPrefix}1`;
  for (const word of words) text += CHARSET[word];
  for (let i = 0; i < CHECKSUM_LENGTH; i++) text += CHARSET[(checksum >>> (5 * (CHECKSUM_LENGTH - 1 - i))) & 31];
  return prefix === lowerPrefix ? text : text.toUpperCase();
}

/** Decodes a Bech32 string; throws Bech32Error saying what is wrong (never echoing the input). */
export function bech32Decode(text: string): Bech32Decoded {
  const lower = text.toLowerCase();
  if (text !== lower && text !== text.toUpperCase()) {
    throw new Bech32Error('it mixes upper and lower case letters');
  }
  const separator = lower.lastIndexOf('1');
  if (separator < 1) throw new Bech32Error('it has no prefix followed by the separator "1"');
  if (lower.length - separator - 1 < CHECKSUM_LENGTH) throw new Bech32Error('it is too short to hold a checksum');
  for (let i = 0; i < separator; i++) {
    const code = lower.charCodeAt(i);
    if (code < 33 || code > 126) throw new Bech32Error('its prefix has a character outside printable ASCII');
  }
  const words: number[] = [];
  for (let i = separator + 1; i < lower.length; i++) {
    const word = CHARSET.indexOf(lower.charAt(i));
    if (word === -1) {
      throw new Bech32Error(`character ${i + 1} is not in the Bech32 alphabet (a typo, or a cut-and-paste error?)`);
    }
    words.push(word);
  }
  const prefix = text.slice(0, separator);
  if (polymod([...expandPrefix(lower.slice(0, separator)), ...words]) !== 1) {
    throw new Bech32Error('its checksum does not match (a typo, or the key was cut short)');
  }
  const data = Buffer.from(convertBits(words.slice(0, -CHECKSUM_LENGTH), 5, 8, false));
  return { prefix, data };
}
