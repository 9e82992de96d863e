// Finds the `DEFINER=<account>` clauses of a mariadb-dump stream as it passes, so that the loader can
// keep or rewrite each one. They name the account a view, trigger, routine or event runs as:
//   /*!50013 DEFINER=`app`@`%` SQL SECURITY DEFINER */      (views)
//   /*!50017 DEFINER=`app`@`localhost`*/                     (triggers)     /*!50117 … */ (events)
//   CREATE DEFINER=`app`@`%` PROCEDURE `p`(…)                (routines)
// Creating one for another account needs that account to exist and the SET USER (or SUPER)
// privilege, which a drill server usually lacks.
//
// The clause is only looked for in SQL text: not inside strings, quoted names or ordinary comments
// (row data that merely contains "DEFINER=`x`@`y`" is left alone), but inside the executable
// `/*!… */` comments where mariadb-dump puts it. Every byte passes through unchanged unless the
// caller replaces a clause; memory stays bounded (a clause is at most MAX_CLAUSE bytes).

/** An account as a DEFINER names it; `host` is `%` when the clause names only a user. */
export interface Account {
  user: string;
  host: string;
}

/** A DEFINER clause found in the stream: its exact bytes, and the account. */
export interface DefinerClause {
  bytes: Buffer;
  account: Account;
}

/** What the scanner hands on: bytes to pass unchanged, or a clause to keep or replace. */
export type DumpPiece = Buffer | DefinerClause;

/** `'user'@'host'` as SQL writes it, for messages. */
export function formatAccount(account: Account): string {
  const quote = (part: string) => `\`${part.replaceAll('`', '``')}\``;
  return `${quote(account.user)}@${quote(account.host)}`;
}

// Lexer states.
const CODE = 0;
const SLASH = 1; // `/` in code: a comment if `*` follows
const SLASH_STAR = 2; // `/*`: executable if `!` or `M!` follows
const SLASH_STAR_M = 3; // `/*M`
const BLOCK_COMMENT = 4;
const BLOCK_STAR = 5;
const DASH = 6; // `-` in code
const DASH_DASH = 7; // `--`: a comment if white space or a control character follows
const LINE_COMMENT = 8;
const QUOTED = 9; // inside '…', "…" or `…`
const QUOTED_ESCAPE = 10; // after a backslash in '…' or "…"
const CAPTURE = 11; // reading what may be a DEFINER clause

const BACKSLASH = 0x5c;
const SINGLE_QUOTE = 0x27;
const DOUBLE_QUOTE = 0x22;
const BACKTICK = 0x60;
const SLASH_BYTE = 0x2f;
const STAR = 0x2a;
const DASH_BYTE = 0x2d;
const HASH = 0x23;
const NEWLINE = 0x0a;
const BANG = 0x21;

/** A clause longer than this is not one (an account is at most 80 + 255 characters, quoted). */
const MAX_CLAUSE = 2048;

/** 1: a byte that changes the lexer's state in code; 2: `D`/`d`, which may start DEFINER. */
const SPECIAL = new Uint8Array(256);
for (const b of [SINGLE_QUOTE, DOUBLE_QUOTE, BACKTICK, SLASH_BYTE, DASH_BYTE, HASH]) SPECIAL[b] = 1;
SPECIAL[0x44] = 2;
SPECIAL[0x64] = 2;
/** 1: a byte that continues a word. */
const WORD = new Uint8Array(256);
for (let b = 0; b < 256; b++) WORD[b] = isWordByte(b) ? 1 : 0;

function isWordByte(b: number): boolean {
  return (
    (b >= 0x61 && b <= 0x7a) ||
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x30 && b <= 0x39) ||
    b === 0x5f ||
    b === 0x24 ||
    b >= 0x80
  );
}

/** Splits a mariadb-dump stream into bytes and DEFINER clauses; chunk boundaries may fall anywhere. */
export class DefinerScanner {
  private state = CODE;
  /** The byte before, in code: a clause starts only after a byte that cannot continue a word. */
  private previousWord = false;
  private quote = 0;
  private readonly capture = Buffer.alloc(MAX_CLAUSE + 1);
  private captureLength = 0;

  /** The pieces of `chunk` (and of bytes held back from earlier chunks) that are decided. */
  push(chunk: Buffer): DumpPiece[] {
    const out: DumpPiece[] = [];
    this.scan(chunk, out);
    return out;
  }

  /** The pieces still held back, at the end of the stream. */
  end(): DumpPiece[] {
    const out: DumpPiece[] = [];
    // Scanning the rest of a resolved capture may begin another one: resolve until none is left.
    while (this.state === CAPTURE) this.resolveCapture(out, true);
    return out;
  }

  private scan(chunk: Buffer, out: DumpPiece[]): void {
    const n = chunk.length;
    let from = 0; // start of the bytes not yet handed on
    let i = 0;
    while (i < n) {
      const b = chunk[i] as number;
      switch (this.state) {
        case CODE: {
          // The hot loop: skip ordinary code bytes until one that changes state.
          let previousWord = this.previousWord;
          while (i < n) {
            const c = chunk[i] as number;
            if (SPECIAL[c] === 1 || (SPECIAL[c] === 2 && !previousWord)) break;
            previousWord = WORD[c] === 1;
            i++;
          }
          this.previousWord = previousWord;
          if (i === n) break;
          const c = chunk[i] as number;
          if (c === SINGLE_QUOTE || c === DOUBLE_QUOTE || c === BACKTICK) {
            this.quote = c;
            this.state = QUOTED;
          } else if (c === SLASH_BYTE) this.state = SLASH;
          else if (c === DASH_BYTE) this.state = DASH;
          else if (c === HASH) this.state = LINE_COMMENT;
          else {
            // `D` or `d` starting a word: perhaps DEFINER. Hold it back until that is decided.
            if (i > from) out.push(chunk.subarray(from, i));
            this.state = CAPTURE;
            this.captureLength = 0;
            from = i;
            continue; // the CAPTURE case takes this byte
          }
          this.previousWord = false;
          i++;
          break;
        }
        case CAPTURE: {
          this.capture[this.captureLength++] = b;
          i++;
          from = i;
          const verdict = parseDefinerClause(this.capture.subarray(0, this.captureLength), false);
          if (verdict !== 'more' || this.captureLength > MAX_CLAUSE) this.resolveCapture(out, false);
          break;
        }
        case QUOTED:
          // Fast path: jump to the next quote or backslash.
          i = this.skipQuoted(chunk, i);
          break;
        case QUOTED_ESCAPE:
          this.state = QUOTED;
          i++;
          break;
        case SLASH:
          if (b === STAR) {
            this.state = SLASH_STAR;
            i++;
          } else {
            this.state = CODE;
            this.previousWord = false;
          }
          break;
        case SLASH_STAR:
          if (b === BANG) {
            // `/*!NNNNN …*/` is code for MariaDB (the version digits are harmless to scan).
            this.state = CODE;
            this.previousWord = false;
            i++;
          } else if (b === 0x4d) {
            this.state = SLASH_STAR_M;
            i++;
          } else this.state = BLOCK_COMMENT;
          break;
        case SLASH_STAR_M:
          if (b === BANG) {
            this.state = CODE;
            this.previousWord = false;
            i++;
          } else this.state = BLOCK_COMMENT;
          break;
        case BLOCK_COMMENT: {
          const star = chunk.indexOf(STAR, i);
          if (star === -1) i = n;
          else {
            this.state = BLOCK_STAR;
            i = star + 1;
          }
          break;
        }
        case BLOCK_STAR:
          if (b === SLASH_BYTE) {
            this.state = CODE;
            this.previousWord = false;
            i++;
          } else if (b === STAR) i++;
          else this.state = BLOCK_COMMENT;
          break;
        case DASH:
          if (b === DASH_BYTE) {
            this.state = DASH_DASH;
            i++;
          } else {
            this.state = CODE;
            this.previousWord = false;
          }
          break;
        case DASH_DASH:
          if (b <= 0x20) this.state = LINE_COMMENT;
          else {
            this.state = CODE;
            this.previousWord = false;
          }
          break;
        case LINE_COMMENT: {
          const newline = chunk.indexOf(NEWLINE, i);
          if (newline === -1) i = n;
          else {
            this.state = CODE;
            this.previousWord = false;
            i = newline + 1;
          }
          break;
        }
        default:
          throw new Error(`internal error: DEFINER scanner state ${this.state}`);
      }
    }
    if (this.state !== CAPTURE && from < n) out.push(chunk.subarray(from, n));
  }

  private skipQuoted(chunk: Buffer, start: number): number {
    const n = chunk.length;
    const quote = this.quote;
    const escapes = quote !== BACKTICK;
    for (let i = start; i < n; i++) {
      const b = chunk[i];
      if (b === quote) {
        // A doubled quote is a quote inside: the same as closing and opening again, for finding the end.
        this.state = CODE;
        this.previousWord = quote === BACKTICK;
        return i + 1;
      }
      if (b === BACKSLASH && escapes) {
        if (i + 1 === n) {
          this.state = QUOTED_ESCAPE;
          return n;
        }
        i++;
      }
    }
    return n;
  }

  /** The held-back bytes are decided: a clause, or ordinary code to scan again after its first byte. */
  private resolveCapture(out: DumpPiece[], atEnd: boolean): void {
    const held = Buffer.from(this.capture.subarray(0, this.captureLength));
    this.state = CODE;
    this.captureLength = 0;
    const verdict = parseDefinerClause(held, atEnd);
    if (typeof verdict === 'object') {
      out.push({ bytes: held.subarray(0, verdict.length), account: verdict.account });
      this.previousWord = false;
      if (verdict.length < held.length) this.scan(held.subarray(verdict.length), out);
      return;
    }
    // Not a clause: the first byte is the start of a word; the rest is scanned as usual.
    out.push(held.subarray(0, 1));
    this.previousWord = true;
    if (held.length > 1) this.scan(held.subarray(1), out);
  }
}

type Verdict = 'more' | 'no' | { length: number; account: Account };

/**
 * Whether `text` starts with `DEFINER = <account>`: `more` when the bytes so far could still be
 * one (`final`: there are no more bytes), `no`, or its length and account. `DEFINER=CURRENT_USER`
 * (or CURRENT_ROLE) is `no`: it names no particular account. Exported for tests.
 */
export function parseDefinerClause(text: Buffer, final: boolean): Verdict {
  const n = text.length;
  const word = 'DEFINER';
  let i = 0;
  for (; i < word.length; i++) {
    if (i >= n) return final ? 'no' : 'more';
    if (((text[i] as number) & 0xdf) !== word.charCodeAt(i)) return 'no';
  }
  const spaces = (): void => {
    while (i < n && (text[i] === 0x20 || text[i] === 0x09 || text[i] === 0x0a || text[i] === 0x0d)) i++;
  };
  spaces();
  if (i >= n) return final ? 'no' : 'more';
  if (text[i] !== 0x3d) return 'no'; // `=`; also rules out DEFINERS and `SQL SECURITY DEFINER`
  i++;
  spaces();
  const user = readAccountPart(text, i, final);
  if (user === 'more' || user === 'no') return user;
  const upper = user.text.toUpperCase();
  if (!user.quoted && (upper === 'CURRENT_USER' || upper === 'CURRENT_ROLE')) return 'no';
  i = user.end;
  if (i >= n) return final ? { length: i, account: { user: user.text, host: '%' } } : 'more';
  if (text[i] !== 0x40) return { length: i, account: { user: user.text, host: '%' } }; // no `@host`
  i++;
  const host = readAccountPart(text, i, final);
  if (host === 'more' || host === 'no') return host;
  return { length: host.end, account: { user: user.text, host: host.text } };
}

/** A user or host name: `quoted` (backticks, '…' or "…") or a bare word. */
function readAccountPart(
  text: Buffer,
  start: number,
  final: boolean,
): 'more' | 'no' | { text: string; end: number; quoted: boolean } {
  const n = text.length;
  if (start >= n) return final ? 'no' : 'more';
  const first = text[start] as number;
  if (first === BACKTICK || first === SINGLE_QUOTE || first === DOUBLE_QUOTE) {
    const bytes: number[] = [];
    let i = start + 1;
    while (i < n) {
      const b = text[i] as number;
      if (b === first) {
        if (i + 1 >= n) {
          if (!final) return 'more'; // a doubled quote may follow
          return { text: Buffer.from(bytes).toString('utf8'), end: i + 1, quoted: true };
        }
        if (text[i + 1] === first) {
          bytes.push(first);
          i += 2;
          continue;
        }
        return { text: Buffer.from(bytes).toString('utf8'), end: i + 1, quoted: true };
      }
      if (b === BACKSLASH && first !== BACKTICK) {
        if (i + 1 >= n) return final ? 'no' : 'more';
        bytes.push(unescapedByte(text[i + 1] as number));
        i += 2;
        continue;
      }
      bytes.push(b);
      i++;
    }
    return final ? 'no' : 'more';
  }
  let i = start;
  // Bare names: letters, digits, `_`, `$`, and `.`/`-` as in host names written bare.
  while (i < n && (isWordByte(text[i] as number) || text[i] === 0x2e || text[i] === DASH_BYTE)) i++;
  if (i === start) return 'no';
  if (i >= n && !final) return 'more';
  return { text: text.subarray(start, i).toString('utf8'), end: i, quoted: false };
}

function unescapedByte(b: number): number {
  switch (b) {
    case 0x30:
      return 0x00; // \0
    case 0x6e:
      return 0x0a; // \n
    case 0x72:
      return 0x0d; // \r
    case 0x74:
      return 0x09; // \t
    default:
      return b;
  }
}
