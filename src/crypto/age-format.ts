// The text header of an age v1 file (https://age-encryption.org/v1): encoding, and a strict
// parser that follows age's rules (canonical unpadded base64, bodies wrapped at 64 columns and
// ending with a short line, arguments of visible ASCII). No cryptography here.
import { AgeDecryptError } from './age-errors.js';

export const INTRO = 'age-encryption.org/v1\n';
const VERSION_PREFIX = 'age-encryption.org/';
const ARMOR_BEGIN = '-----BEGIN AGE ENCRYPTED FILE-----';
const FOOTER = '---';
const COLUMNS = 64;
const BODY_BYTES_PER_LINE = 48;
/** Far above any real header (about 100 bytes per recipient), so garbage can't eat memory. */
export const MAX_HEADER_BYTES = 1 << 20;

export interface Stanza {
  readonly type: string;
  readonly args: readonly string[];
  readonly body: Buffer;
}

export interface ParsedHeader {
  readonly stanzas: readonly Stanza[];
  /** The bytes the MAC covers: the header up to and including `---`. */
  readonly macInput: Buffer;
  readonly mac: Buffer;
}

const BASE64_ALPHABET = /^[A-Za-z0-9+/]*$/;

/** Unpadded standard base64, as age writes it. */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64').replace(/=+$/, '');
}

/** Decodes unpadded canonical base64; undefined for anything else (padding, stray bits, bad letters). */
export function decodeBase64Strict(text: string): Buffer | undefined {
  if (!BASE64_ALPHABET.test(text) || text.length % 4 === 1) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return encodeBase64(bytes) === text ? bytes : undefined;
}

function encodeStanza(stanza: Stanza): string {
  let text = `-> ${[stanza.type, ...stanza.args].join(' ')}\n`;
  const body = encodeBase64(stanza.body);
  for (let at = 0; at < body.length; at += COLUMNS) text += `${body.slice(at, at + COLUMNS)}\n`;
  // The body always ends with a line shorter than 64 columns, empty if need be.
  if (body.length % COLUMNS === 0) text += '\n';
  return text;
}

/** The header text up to and including `---`: what the MAC covers. */
export function encodeHeaderWithoutMac(stanzas: readonly Stanza[]): Buffer {
  return Buffer.from(`${INTRO}${stanzas.map(encodeStanza).join('')}${FOOTER}`, 'latin1');
}

/** The footer that completes `encodeHeaderWithoutMac`'s output. */
export function encodeMacLine(mac: Buffer): Buffer {
  return Buffer.from(` ${encodeBase64(mac)}\n`, 'latin1');
}

export function headerDamaged(detail: string): AgeDecryptError {
  return new AgeDecryptError(
    'header-corrupt',
    `the age header is damaged (${detail}): the file was altered or damaged in storage; fetch it again or restore another set`,
  );
}

function isVisibleAscii(text: string): boolean {
  if (text === '') return false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 33 || code > 126) return false;
  }
  return true;
}

function startsWith(bytes: Buffer, length: number, prefix: string): boolean {
  const n = Math.min(length, prefix.length);
  return bytes.toString('latin1', 0, n) === prefix.slice(0, n);
}

/**
 * Judges the first bytes of a file: `more` while they could still be the start of an age v1
 * file, `ok` once the intro line is complete; throws for anything else.
 */
function checkIntro(bytes: Buffer, length: number): 'ok' | 'more' {
  if (startsWith(bytes, length, INTRO)) return length >= INTRO.length ? 'ok' : 'more';
  if (startsWith(bytes, length, ARMOR_BEGIN)) {
    if (length < ARMOR_BEGIN.length) return 'more';
    throw new AgeDecryptError(
      'unsupported',
      'this is an ASCII-armored age file (made with age -a); backproof reads binary age files only: decrypt it with `age -d -i KEY`',
    );
  }
  if (startsWith(bytes, length, VERSION_PREFIX)) {
    const newline = bytes.subarray(0, length).indexOf(0x0a);
    if (newline === -1 && length < 256) return 'more';
    const version = bytes.toString('latin1', VERSION_PREFIX.length, newline === -1 ? length : newline);
    if (version === 'v1\r') {
      throw headerDamaged('its line endings were changed to CRLF, probably by a text-mode transfer');
    }
    throw new AgeDecryptError(
      'unsupported',
      'this age file uses another format version than v1, which this version of backproof cannot read: decrypt it with a newer `age -d`',
    );
  }
  throw new AgeDecryptError(
    'not-age',
    'this is not an age-encrypted file (it does not start with "age-encryption.org/v1"): it may have been stored unencrypted, or it is the wrong object',
  );
}

/** Parses a complete header (intro through the MAC line and its newline). */
function parseHeader(bytes: Buffer): ParsedHeader {
  const lines = bytes.toString('latin1').split('\n');
  lines.pop(); // the empty string after the final newline
  const stanzas: Stanza[] = [];
  let index = 1; // line 0 is the intro, already checked
  const lineAt = (i: number): string => lines[i] ?? '';
  while (!lineAt(index).startsWith(FOOTER)) {
    const number = index + 1;
    const parts = lineAt(index).split(' ');
    if (parts[0] !== '->') throw headerDamaged(`line ${number} should start a stanza with "->"`);
    const [type, ...args] = parts.slice(1);
    if (type === undefined) throw headerDamaged(`line ${number} is a stanza without a type`);
    if (![type, ...args].every(isVisibleAscii)) throw headerDamaged(`line ${number} has an empty or invalid argument`);
    const bodyParts: Buffer[] = [];
    for (;;) {
      index++;
      if (index >= lines.length) throw headerDamaged(`the stanza on line ${number} has no final body line`);
      const line = lineAt(index);
      const decoded = line.length <= COLUMNS ? decodeBase64Strict(line) : undefined;
      if (decoded === undefined) throw headerDamaged(`line ${index + 1} is not a valid stanza body line`);
      bodyParts.push(decoded);
      if (decoded.length < BODY_BYTES_PER_LINE) break;
    }
    stanzas.push({ type, args, body: Buffer.concat(bodyParts) });
    index++;
  }
  if (index !== lines.length - 1)
    throw headerDamaged(`line ${index + 1} starts with "---" but does not end the header`);
  const footer = lineAt(index).split(' ');
  const mac = footer.length === 2 && footer[0] === FOOTER ? decodeBase64Strict(footer[1] ?? '') : undefined;
  if (mac === undefined || mac.length !== 32) throw headerDamaged(`line ${index + 1} is not a valid MAC line`);
  if (stanzas.length === 0) throw headerDamaged('it has no recipient stanza');
  const footerStart = bytes.length - lineAt(index).length - 1;
  return { stanzas, macInput: bytes.subarray(0, footerStart + FOOTER.length), mac };
}

/**
 * Collects the header from a stream of chunks. `push` returns the parsed header and the bytes
 * after it once the MAC line is complete; throws AgeDecryptError as soon as the input can't be
 * an age v1 header. Holds at most MAX_HEADER_BYTES.
 */
export class HeaderReader {
  private buffer = Buffer.allocUnsafe(1024);
  private length = 0;
  private introChecked = false;
  /** Where the line being collected starts. */
  private lineStart = 0;

  push(chunk: Buffer): { header: ParsedHeader; headerBytes: number; rest: Buffer } | undefined {
    const before = this.length;
    this.append(chunk.subarray(0, MAX_HEADER_BYTES + 1 - before));
    if (!this.introChecked) {
      if (checkIntro(this.buffer, this.length) === 'more') return undefined;
      this.introChecked = true;
      this.lineStart = INTRO.length;
    }
    const held = this.buffer.subarray(0, this.length);
    for (let newline = held.indexOf(0x0a, Math.max(before, this.lineStart)); newline !== -1; ) {
      // The first line starting with "---" ends the header: base64 body lines never contain "-".
      if (held.toString('latin1', this.lineStart, Math.min(this.lineStart + FOOTER.length, newline)) === FOOTER) {
        const end = newline + 1;
        const header = parseHeader(held.subarray(0, end));
        return { header, headerBytes: end, rest: chunk.subarray(end - before) };
      }
      this.lineStart = newline + 1;
      newline = held.indexOf(0x0a, this.lineStart);
    }
    if (this.length > MAX_HEADER_BYTES) {
      throw headerDamaged(`no end of header within the first ${MAX_HEADER_BYTES} bytes`);
    }
    return undefined;
  }

  /** The input ended before the header did: say how it ended. */
  end(): AgeDecryptError {
    if (this.length === 0) {
      return new AgeDecryptError(
        'truncated',
        'the file is empty (0 bytes), where an age file was expected: fetch it again or restore another set',
      );
    }
    return new AgeDecryptError(
      'truncated',
      `the file is cut short after ${this.length} bytes, inside its age header: fetch it again or restore another set`,
    );
  }

  private append(bytes: Buffer): void {
    if (this.length + bytes.length > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + bytes.length));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    bytes.copy(this.buffer, this.length);
    this.length += bytes.length;
  }
}
