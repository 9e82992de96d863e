// Reads a mariadb-dump / mysqldump stream as it passes and learns what is in it: the tables it
// creates and the rows it inserts into each, the views and routines it defines, and whether it ends
// with the tool's own completion trailer. It sees every byte of a multi-GB dump, so it is a byte
// state machine over the SQL lexical rules that matter for finding statement boundaries: quotes
// ('…' and "…" with backslash escapes and doubled quotes, `…` with doubled backticks), comments
// (`-- `, `#`, `/* */`), the client's `DELIMITER` command, and the parentheses of INSERT tuples.
// Chunk boundaries may fall anywhere; the state carries over.
//
// What it recognises, by the head of each statement (the text before its first `(`):
//   CREATE TABLE `t` (…                      a table (0 rows until INSERTs say otherwise)
//   INSERT INTO `t` VALUES (…),(…);          one row per top-level tuple, one per line (MariaDB) or
//                                            all on one line (MySQL): both are the same tokens
//   CREATE DEFINER=… PROCEDURE|FUNCTION `r`( a routine
//   /*!50001 VIEW `v` AS …*/                 a view (its final definition, inside a versioned comment)
//   USE … / CREATE DATABASE …                refused: the dump must not name its database
import { Transform, type TransformCallback } from 'node:stream';

/** What a dump turned out to contain. */
export interface DumpSummary {
  /** Tables the dump creates, with the rows it inserts into each (0 for an empty table). */
  tables: Map<string, number>;
  /** Views whose final definition the dump writes. */
  views: Set<string>;
  /** Routines the dump creates, as `PROCEDURE name` or `FUNCTION name`. */
  routines: Set<string>;
  /** Bytes seen. */
  bytes: number;
}

/** The stream is not a complete dump, or not one this reader understands. */
export class DumpFormatError extends Error {
  override readonly name = 'DumpFormatError';
}

// Lexer states.
const START = 0; // between statements
const START_DASH = 1; // `-` at the start of a statement
const START_SLASH = 2; // `/` at the start of a statement
const LINE_COMMENT = 3; // to the end of the line, then `afterComment`
const BLOCK_COMMENT = 4; // to `*/`, then `afterComment`
const BLOCK_STAR = 5; // `*` inside a block comment
const TEXT = 6; // inside a statement that is not an INSERT's tuples
const TEXT_SLASH = 7;
const TEXT_DASH = 8;
const TEXT_DASHDASH = 9;
const QUOTED = 10; // inside a quote of `quote` in statement text
const QUOTED_ESCAPE = 11; // after a backslash inside a quote (the next byte is literal)
const QUOTED_END = 12; // a closing quote seen: doubled (still inside) or the end?
const DELIMITER_LINE = 13; // the rest of a `DELIMITER xx` line
const VALUES = 14; // an INSERT between tuples: `(`, `,`, white space or the delimiter
const TUPLE = 15; // inside an INSERT tuple, `depth` parentheses deep
const ROW_QUOTED = 16; // inside a quoted value of a tuple
const ROW_QUOTED_ESCAPE = 17;
const ROW_QUOTED_END = 18;

const BACKSLASH = 0x5c;
const SINGLE_QUOTE = 0x27;
const DOUBLE_QUOTE = 0x22;
const BACKTICK = 0x60;
const OPEN = 0x28;
const CLOSE = 0x29;
const COMMA = 0x2c;
const SLASH = 0x2f;
const STAR = 0x2a;
const DASH = 0x2d;
const HASH = 0x23;
const NEWLINE = 0x0a;

/** Statement heads longer than this are not one of the statements we look for. */
const HEAD_LIMIT = 4096;
/** Block comments are looked into this far (a view's name is at their start). */
const COMMENT_LIMIT = 1024;
const TAIL_BYTES = 256;

const IDENT = '`((?:[^`]|``)+)`';
const INSERT_HEAD = new RegExp(
  `^(?:INSERT|REPLACE)\\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\\s+)*INTO\\s+${IDENT}\\s*VALUES\\s*$`,
  'i',
);
const INSERT_LIKE = /^(?:INSERT|REPLACE)\b/i;
const CREATE_TABLE_HEAD = new RegExp(
  `^CREATE\\s+(?:OR\\s+REPLACE\\s+)?TABLE\\s+(?:IF\\s+NOT\\s+EXISTS\\s+)?${IDENT}\\s*$`,
  'i',
);
const ACCOUNT_PART = '(?:`(?:[^`]|``)*`|\'(?:[^\'\\\\]|\\\\.|\'\')*\'|"(?:[^"\\\\]|\\\\.|"")*"|[^\\s@`\'"]+)';
const ROUTINE_HEAD = new RegExp(
  `^CREATE\\s+(?:OR\\s+REPLACE\\s+)?(?:DEFINER\\s*=\\s*${ACCOUNT_PART}(?:\\s*@\\s*${ACCOUNT_PART})?\\s+)?` +
    `(?:AGGREGATE\\s+)?(PROCEDURE|FUNCTION)\\s+(?:IF\\s+NOT\\s+EXISTS\\s+)?${IDENT}\\s*$`,
  'i',
);
const NAMES_DATABASE = /^(?:USE\b|CREATE\s+(?:OR\s+REPLACE\s+)?(?:DATABASE|SCHEMA)\b)/i;
const VIEW_COMMENT = new RegExp(`^M?!\\d*\\s*VIEW\\s+${IDENT}\\s+AS\\b`, 'i');
// The tool's last line, date included (we never pass --skip-dump-date): a dump cut anywhere, even in
// this line, does not end like this.
const TRAILER = /\n-- Dump completed on \d{4}-\d{2}-\d{2} [ \d]\d:\d{2}:\d{2}\n$/;
const DELIMITER_WORD = Buffer.from('delimiter', 'latin1');
const STAR_BYTE = Buffer.of(STAR);

/** `` `a``b` `` → a`b (the text between the backticks, undoubled). */
function unquoteIdentifier(quoted: string): string {
  return quoted.replaceAll('``', '`');
}

/** Scans a dump chunk by chunk; {@link end} checks that it was complete. */
export class DumpScanner {
  private state = START;
  private afterComment = START;
  private quote = 0;
  private depth = 0;
  private delimiter: Buffer = Buffer.from(';');
  /** Bytes of the delimiter matched so far. */
  private matched = 0;
  /** The head of the statement being read, while `capturing`. */
  private readonly head = Buffer.alloc(HEAD_LIMIT);
  private headLength = 0;
  private capturing = false;
  private readonly comment = Buffer.alloc(COMMENT_LIMIT);
  private commentLength = 0;
  private readonly delimiterLine = Buffer.alloc(64);
  private delimiterLength = 0;
  /** The table the current INSERT fills, and the rows seen in it so far. */
  private insertTable = '';
  private insertRows = 0;
  private tail: Buffer = Buffer.alloc(0);
  private offset = 0;
  private readonly summary: DumpSummary = { tables: new Map(), views: new Set(), routines: new Set(), bytes: 0 };

  push(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      switch (this.state) {
        case START: {
          // White space and empty statements between statements.
          let b = chunk[i] as number;
          while (b <= 0x20) {
            if (++i === n) break;
            b = chunk[i] as number;
          }
          if (i === n) break;
          if (b === DASH) {
            this.state = START_DASH;
            i++;
          } else if (b === HASH) {
            this.afterComment = START;
            this.state = LINE_COMMENT;
            i++;
          } else if (b === SLASH) {
            this.state = START_SLASH;
            i++;
          } else {
            this.beginStatement();
          }
          break;
        }
        case START_DASH:
          if (chunk[i] === DASH) {
            this.afterComment = START;
            this.state = LINE_COMMENT;
            i++;
          } else {
            this.beginStatement();
            this.capture(DASH);
          }
          break;
        case START_SLASH:
          if (chunk[i] === STAR) {
            this.openComment(START);
            i++;
          } else {
            this.beginStatement();
            this.capture(SLASH);
          }
          break;
        case LINE_COMMENT: {
          const end = chunk.indexOf(NEWLINE, i);
          if (end === -1) i = n;
          else {
            i = end + 1;
            this.state = this.afterComment;
          }
          break;
        }
        case BLOCK_COMMENT: {
          const end = chunk.indexOf(STAR, i);
          const stop = end === -1 ? n : end;
          this.keepComment(chunk, i, stop);
          i = stop;
          if (end !== -1) {
            this.state = BLOCK_STAR;
            i++;
          }
          break;
        }
        case BLOCK_STAR: {
          const b = chunk[i] as number;
          if (b === SLASH) {
            this.closeComment();
            i++;
          } else if (b !== STAR) {
            this.keepComment(STAR_BYTE, 0, 1);
            this.state = BLOCK_COMMENT;
          } else {
            this.keepComment(STAR_BYTE, 0, 1);
            i++;
          }
          break;
        }
        case TEXT:
          i = this.text(chunk, i);
          break;
        case TEXT_SLASH:
          if (chunk[i] === STAR) {
            if (this.capturing) this.capture(0x20);
            this.openComment(TEXT);
            i++;
          } else {
            this.state = TEXT;
            this.capture(SLASH);
          }
          break;
        case TEXT_DASH:
          if (chunk[i] === DASH) {
            this.state = TEXT_DASHDASH;
            i++;
          } else {
            this.state = TEXT;
            this.capture(DASH);
          }
          break;
        case TEXT_DASHDASH: {
          // `--` starts a comment only when white space or a control character follows.
          const b = chunk[i] as number;
          if (b <= 0x20) {
            this.afterComment = TEXT;
            this.state = b === NEWLINE ? TEXT : LINE_COMMENT;
            if (this.capturing) this.capture(0x20);
            i++;
          } else {
            this.state = TEXT;
            this.capture(DASH);
            this.capture(DASH);
          }
          break;
        }
        case QUOTED:
          i = this.quoted(chunk, i);
          break;
        case QUOTED_ESCAPE:
          this.capture(chunk[i] as number);
          this.state = QUOTED;
          i++;
          break;
        case QUOTED_END:
          if (chunk[i] === this.quote) {
            // A doubled quote stands for one quote character: still inside.
            this.capture(this.quote);
            this.state = QUOTED;
            i++;
          } else {
            this.state = TEXT;
          }
          break;
        case DELIMITER_LINE: {
          const b = chunk[i] as number;
          i++;
          if (b === NEWLINE) this.setDelimiter();
          else if (this.delimiterLength < this.delimiterLine.length) this.delimiterLine[this.delimiterLength++] = b;
          else this.fail('a DELIMITER line is too long');
          break;
        }
        case VALUES:
        case TUPLE:
        case ROW_QUOTED:
        case ROW_QUOTED_ESCAPE:
        case ROW_QUOTED_END:
          i = this.rows(chunk, i);
          break;
        default:
          this.fail(`internal error: unknown state ${this.state}`);
      }
    }
    this.offset += n;
    this.summary.bytes += n;
    this.keepTail(chunk);
  }

  /** Checks that the dump ended cleanly, after its trailer, and returns what it held. */
  end(): DumpSummary {
    if (this.summary.bytes === 0) throw new DumpFormatError('the dump is empty');
    // At rest: between statements, right after the trailer's comment line.
    const tail = this.tail.toString('utf8');
    if (this.state !== START || !TRAILER.test(tail)) {
      const lastLine = tail.replace(/\n$/, '');
      const shown = lastLine.slice(lastLine.lastIndexOf('\n') + 1).slice(-80);
      throw new DumpFormatError(
        this.state === START
          ? `the dump does not end with its "-- Dump completed on <date>" line (its last line is ${JSON.stringify(shown)}): it was cut short`
          : `the dump ends in the middle of a statement (after ${this.summary.bytes} bytes): it was cut short`,
      );
    }
    return this.summary;
  }

  private fail(message: string): never {
    throw new DumpFormatError(`${message} (near byte ${this.offset})`);
  }

  private beginStatement(): void {
    this.state = TEXT;
    this.capturing = true;
    this.headLength = 0;
    this.matched = 0;
  }

  private capture(b: number): void {
    if (!this.capturing) return;
    if (this.headLength === HEAD_LIMIT) {
      this.classify('overflow');
      return;
    }
    this.head[this.headLength++] = b;
  }

  private captureRange(chunk: Buffer, from: number, to: number): void {
    if (!this.capturing || to <= from) return;
    const room = HEAD_LIMIT - this.headLength;
    const count = Math.min(room, to - from);
    chunk.copy(this.head, this.headLength, from, from + count);
    this.headLength += count;
    if (count < to - from) this.classify('overflow');
  }

  private openComment(after: number): void {
    this.afterComment = after;
    this.commentLength = 0;
    this.state = BLOCK_COMMENT;
  }

  private keepComment(chunk: Buffer, from: number, to: number): void {
    const count = Math.min(COMMENT_LIMIT - this.commentLength, to - from);
    if (count <= 0) return;
    chunk.copy(this.comment, this.commentLength, from, from + count);
    this.commentLength += count;
  }

  private closeComment(): void {
    this.state = this.afterComment;
    // Only a comment that starts like `/*!50001 VIEW` can name a view; skip the decoding otherwise.
    const first = this.comment[0];
    if (first !== 0x21 && first !== 0x4d) return;
    const match = VIEW_COMMENT.exec(this.comment.toString('utf8', 0, this.commentLength));
    if (match?.[1] !== undefined) this.summary.views.add(unquoteIdentifier(match[1]));
  }

  /** Statement text outside quotes and comments: find the delimiter, the first `(`, quotes, comments. */
  private text(chunk: Buffer, start: number): number {
    const n = chunk.length;
    const delimiter = this.delimiter;
    const first = delimiter[0] as number;
    let i = start;
    while (i < n) {
      const b = chunk[i] as number;
      if (this.matched > 0 || b === first) {
        if (b === delimiter[this.matched]) {
          this.capture(b);
          i++;
          if (++this.matched === delimiter.length) {
            this.endStatement();
            return i;
          }
          continue;
        }
        this.matched = 0;
        if (b === first) continue; // a new match may start here
      }
      if (b === SINGLE_QUOTE || b === DOUBLE_QUOTE || b === BACKTICK) {
        this.capture(b);
        this.quote = b;
        this.state = QUOTED;
        return i + 1;
      }
      if (b === SLASH) {
        this.state = TEXT_SLASH;
        return i + 1;
      }
      if (b === DASH) {
        this.state = TEXT_DASH;
        return i + 1;
      }
      if (b === HASH) {
        if (this.capturing) this.capture(0x20);
        this.afterComment = TEXT;
        this.state = LINE_COMMENT;
        return i + 1;
      }
      if (this.capturing) {
        if (b === OPEN) {
          this.classify('paren');
          i++;
          if (this.state !== TEXT) return i; // an INSERT: its first tuple has begun
          continue;
        }
        if ((b === 0x20 || b === 0x09) && this.headLength === DELIMITER_WORD.length && this.isDelimiterCommand()) {
          this.capturing = false;
          this.delimiterLength = 0;
          this.state = DELIMITER_LINE;
          return i + 1;
        }
        this.capture(b);
      }
      i++;
    }
    return i;
  }

  private isDelimiterCommand(): boolean {
    for (let k = 0; k < DELIMITER_WORD.length; k++) {
      if (((this.head[k] as number) | 0x20) !== DELIMITER_WORD[k]) return false;
    }
    return true;
  }

  private setDelimiter(): void {
    const text = this.delimiterLine.toString('utf8', 0, this.delimiterLength).trim();
    if (text.length === 0 || /\s/.test(text)) this.fail(`cannot read the DELIMITER command ${JSON.stringify(text)}`);
    this.delimiter = Buffer.from(text, 'utf8');
    this.matched = 0;
    this.state = START;
  }

  private endStatement(): void {
    if (this.capturing) {
      this.headLength -= this.delimiter.length;
      this.classify('end');
    }
    this.capturing = false;
    this.matched = 0;
    this.state = START;
  }

  /** Decides what the statement is from its head. Called at its first `(`, at its end, or when the head is too long. */
  private classify(at: 'paren' | 'end' | 'overflow'): void {
    this.capturing = false;
    const head = this.head.toString('utf8', 0, Math.max(0, this.headLength)).trim();
    if (NAMES_DATABASE.test(head)) {
      this.fail(
        `the dump names a database (${JSON.stringify(head.slice(0, 80))}), so it would not load into another database`,
      );
    }
    if (INSERT_LIKE.test(head)) {
      const match = at === 'paren' ? INSERT_HEAD.exec(head) : null;
      if (match?.[1] === undefined) this.fail(`cannot read the INSERT statement ${JSON.stringify(head.slice(0, 120))}`);
      const table = unquoteIdentifier(match[1]);
      if (!this.summary.tables.has(table)) this.fail(`the dump inserts into table ${table} before creating it`);
      this.insertTable = table;
      this.insertRows = 1;
      this.depth = 1;
      this.state = TUPLE;
      this.matched = 0;
      return;
    }
    if (at !== 'paren') return;
    const table = CREATE_TABLE_HEAD.exec(head);
    if (table?.[1] !== undefined) {
      const name = unquoteIdentifier(table[1]);
      if (!this.summary.tables.has(name)) this.summary.tables.set(name, 0);
      return;
    }
    const routine = ROUTINE_HEAD.exec(head);
    if (routine?.[1] !== undefined && routine[2] !== undefined) {
      this.summary.routines.add(`${routine[1].toUpperCase()} ${unquoteIdentifier(routine[2])}`);
    }
  }

  /**
   * The rows of an INSERT: between tuples (VALUES), inside a tuple (TUPLE) and inside a quoted value
   * (ROW_QUOTED…). The hot loop: it sees nearly every byte of a dump, so it keeps its state in locals.
   */
  private rows(chunk: Buffer, start: number): number {
    const n = chunk.length;
    let i = start;
    let state = this.state;
    let depth = this.depth;
    let quote = this.quote;
    let rows = this.insertRows;
    scan: while (i < n) {
      switch (state) {
        case TUPLE:
          for (; i < n; i++) {
            const b = chunk[i] as number;
            if (b > CLOSE) {
              if (b !== BACKTICK) continue;
              quote = b;
              state = ROW_QUOTED;
              i++;
              continue scan;
            }
            if (b === SINGLE_QUOTE || b === DOUBLE_QUOTE) {
              quote = b;
              state = ROW_QUOTED;
              i++;
              continue scan;
            }
            if (b === OPEN) depth++;
            else if (b === CLOSE && --depth === 0) {
              state = VALUES;
              i++;
              continue scan;
            }
          }
          break scan;
        case ROW_QUOTED: {
          const escapes = quote !== BACKTICK;
          for (; i < n; i++) {
            const b = chunk[i] as number;
            if (b === quote) {
              if (i + 1 === n) {
                state = ROW_QUOTED_END;
                i = n;
                break scan;
              }
              if (chunk[i + 1] === quote) {
                i++; // doubled: one quote character, still inside
                continue;
              }
              state = TUPLE;
              i++;
              continue scan;
            }
            if (b === BACKSLASH && escapes && ++i === n) {
              state = ROW_QUOTED_ESCAPE;
              break scan;
            }
          }
          break scan;
        }
        case ROW_QUOTED_ESCAPE:
          state = ROW_QUOTED;
          i++;
          break;
        case ROW_QUOTED_END:
          if (chunk[i] === quote) {
            state = ROW_QUOTED;
            i++;
          } else state = TUPLE;
          break;
        case VALUES: {
          const delimiter = this.delimiter;
          const b = chunk[i] as number;
          if (this.matched > 0 || b === delimiter[0]) {
            if (b !== delimiter[this.matched]) {
              this.fail(`unexpected byte 0x${b.toString(16)} inside an INSERT statement`);
            }
            i++;
            if (++this.matched === delimiter.length) {
              const tables = this.summary.tables;
              tables.set(this.insertTable, (tables.get(this.insertTable) ?? 0) + rows);
              this.matched = 0;
              state = START;
              break scan;
            }
          } else if (b === OPEN) {
            rows++;
            depth = 1;
            state = TUPLE;
            i++;
          } else if (b === COMMA || b <= 0x20) {
            i++;
          } else {
            this.fail(`unexpected byte 0x${b.toString(16)} between the rows of an INSERT into ${this.insertTable}`);
          }
          break;
        }
        default:
          this.fail(`internal error: state ${state} inside an INSERT`);
      }
    }
    this.state = state;
    this.depth = depth;
    this.quote = quote;
    this.insertRows = rows;
    return i;
  }

  /** Inside a quote: a backslash escapes the next byte ('…' and "…" only); a doubled quote is one quote. */
  private quoted(chunk: Buffer, start: number): number {
    const n = chunk.length;
    const quote = this.quote;
    const escapes = quote !== BACKTICK;
    let i = start;
    while (i < n) {
      const b = chunk[i] as number;
      if (b === quote) {
        this.captureRange(chunk, start, i + 1);
        if (i + 1 === n) {
          this.state = QUOTED_END;
          return n;
        }
        if (chunk[i + 1] === quote) {
          // Doubled: one quote character, still inside (the second one is captured by the next range).
          this.captureRange(chunk, i + 1, i + 2);
          i += 2;
          start = i;
          continue;
        }
        this.state = TEXT;
        return i + 1;
      }
      if (b === BACKSLASH && escapes) {
        if (i + 1 === n) {
          this.captureRange(chunk, start, n);
          this.state = QUOTED_ESCAPE;
          return n;
        }
        i += 2;
        continue;
      }
      i++;
    }
    this.captureRange(chunk, start, n);
    return n;
  }

  private keepTail(chunk: Buffer): void {
    if (chunk.length >= TAIL_BYTES) this.tail = Buffer.from(chunk.subarray(chunk.length - TAIL_BYTES));
    else {
      const joined = Buffer.concat([this.tail, chunk]);
      this.tail = joined.length > TAIL_BYTES ? joined.subarray(joined.length - TAIL_BYTES) : joined;
    }
  }
}

/**
 * Passes a dump through unchanged while scanning it. When the input ends, the scan must be
 * complete and `verify` (which compares the summary with what the server says) must accept it;
 * otherwise the stream errors instead of ending, so an incomplete dump never looks complete.
 */
export class DumpValidator extends Transform {
  private readonly scanner = new DumpScanner();
  /** Set once the dump was read to the end and accepted. */
  summary: DumpSummary | undefined;

  constructor(private readonly verify: (summary: DumpSummary) => Promise<void> | void) {
    super({ highWaterMark: 64 * 1024 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.scanner.push(chunk);
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    let summary: DumpSummary;
    try {
      summary = this.scanner.end();
    } catch (error) {
      callback(error as Error);
      return;
    }
    Promise.resolve()
      .then(() => this.verify(summary))
      .then(
        () => {
          this.summary = summary;
          callback();
        },
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
      );
  }
}
