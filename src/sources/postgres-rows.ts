// Validation of a plain-format pg_dump / pg_dumpall stream while it passes through: rows per table
// counted from the dump itself, the completion trailer, and nothing that would make the dump name its
// database (`\connect`).
//
// The scanner reads the dump the way psql will when it is restored: SQL is lexed (strings, E'' strings
// with backslash escapes, quoted identifiers, dollar quotes, nested comments, psql meta-commands), so a
// line that merely looks like `COPY … FROM stdin;` inside a function body is not taken for one. After a
// real `COPY <schema>.<table> (…) FROM stdin;` every line up to the `\.` line is one row: COPY text
// format escapes newlines in data (`\n`), so a raw newline always ends a row. Data lines are skipped
// with Buffer.indexOf (memchr), which keeps the scan at memory speed; only the SQL between COPY blocks
// is lexed byte by byte, and pg_dump writes little of it.
// Unlike psql, a ';' inside parentheses or a BEGIN ATOMIC body is taken as the end of a statement:
// that only matters for recognising COPY, and neither a rule's actions nor an atomic body can hold one.
// The trailer must be the last line, except for empty `--` lines and psql's `\unrestrict` line, which
// pg_dump 15.14+ writes after it (pg_dumpall writes it before its own trailer).
import { Transform, type TransformCallback } from 'node:stream';

/** The comment line pg_dump writes when a database dump is complete. */
export const DATABASE_DUMP_TRAILER = '-- PostgreSQL database dump complete';
/** The comment line pg_dumpall writes when a cluster (or globals) dump is complete. */
export const CLUSTER_DUMP_TRAILER = '-- PostgreSQL database cluster dump complete';

/** A table as named by the catalog and by the dump's COPY statements. */
export interface TableName {
  schema: string;
  table: string;
}

export interface TableRows extends TableName {
  rows: number;
}

export interface PgDumpScan {
  /** Bytes seen. */
  bytes: number;
  /** One entry per COPY block, in dump order. */
  tables: TableRows[];
  /** The trailer was seen, and after it only blank lines, empty `--` lines and psql's `\unrestrict`. */
  trailerLast: boolean;
  /** What is wrong with the dump's structure (truncated COPY data, `\connect`, an unreadable COPY). */
  problems: string[];
}

export interface PgDumpScannerOptions {
  /** The trailer line, e.g. {@link DATABASE_DUMP_TRAILER}. */
  trailer: string;
  /**
   * How names in the dump are encoded: pg_dump writes in the database's encoding. `latin1` keeps the
   * bytes of any non-UTF8 encoding one to one. Default `utf8`.
   */
  nameEncoding?: 'utf8' | 'latin1';
}

// Lexer states (numbers: this runs for every byte of the SQL parts).
const NORMAL = 0;
const DASH = 1; // saw '-': a comment if another '-' follows
const SLASH = 2; // saw '/': a comment if '*' follows
const LINE_COMMENT = 3;
const BLOCK_COMMENT = 4;
const BLOCK_STAR = 5; // in a block comment, saw '*'
const BLOCK_SLASH = 6; // in a block comment, saw '/'
const SQUOTE = 7; // '…' (standard_conforming_strings = on: no backslash escapes)
const SQUOTE_END = 8; // saw the closing quote, unless another quote follows ('' is a quote)
const ESTRING = 9; // E'…': backslash escapes
const ESTRING_ESCAPE = 10;
const ESTRING_END = 11;
const DQUOTE = 12; // "identifier"
const DQUOTE_END = 13;
const DOLLAR_OPEN = 14; // saw '$': reading a dollar-quote tag
const DOLLAR_BODY = 15;
const DOLLAR_CLOSE = 16; // in a dollar quote, saw '$': matching the tag
const META = 17; // a psql backslash command, up to the end of the line
const COPY_NEWLINE = 18; // after `COPY … FROM stdin;`: the data starts on the next line
const DATA_LINE_START = 19;
const DATA_BACKSLASH = 20; // a data line starting with '\'
const DATA_BACKSLASH_DOT = 21; // a data line starting with '\.': the end marker if the line ends here
const DATA_MID_LINE = 22;

// Statement tracking, to recognise `COPY … FROM stdin;`.
const STATEMENT_START = 0;
const STATEMENT_CAPTURE = 1; // may be a COPY: its text is kept
const STATEMENT_OTHER = 2;

const NL = 0x0a;
const BACKSLASH = 0x5c;
const DOT = 0x2e;
const QUOTE = 0x27;
const DOUBLE_QUOTE = 0x22;
const DOLLAR = 0x24;
const SEMICOLON = 0x3b;
const MINUS = 0x2d;
const SLASH_BYTE = 0x2f;
const STAR = 0x2a;

const MAX_COPY_STATEMENT_BYTES = 16 * 1024 * 1024; // 1600 columns of 63-byte names need far less
const MAX_TAG_BYTES = 4096;
const MAX_LINE_KEPT = 1024; // comments and meta-commands are only compared with short strings
const COPY_KEYWORD = /^COPY\s+/i;
const ENDS_FROM_STDIN = /\sFROM\s+stdin\s*$/i;
const COLUMNS_FROM_STDIN = /^\s*(\([\s\S]*\))?\s*FROM\s+stdin\s*$/i;

function isSpace(b: number): boolean {
  return b === 0x20 || (b >= 0x09 && b <= 0x0d);
}

/** Bytes that continue an identifier (so a following '$' or quote belongs to it). */
function isIdentifierByte(b: number): boolean {
  return (
    (b >= 0x61 && b <= 0x7a) ||
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x30 && b <= 0x39) ||
    b === 0x5f ||
    b === DOLLAR ||
    b >= 0x80
  );
}

function isTagStart(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || b === 0x5f || b >= 0x80;
}

function isTagByte(b: number): boolean {
  return isTagStart(b) || (b >= 0x30 && b <= 0x39);
}

/** A growable byte buffer with a cap (past it, `overflowed` is set and bytes are dropped). */
class ByteBuffer {
  private bytes: Buffer;
  length = 0;
  overflowed = false;
  constructor(
    initial: number,
    private readonly cap: number,
  ) {
    this.bytes = Buffer.allocUnsafe(initial);
  }
  push(b: number): void {
    if (this.length >= this.cap) {
      this.overflowed = true;
      return;
    }
    if (this.length === this.bytes.length) {
      const bigger = Buffer.allocUnsafe(Math.min(this.cap, this.bytes.length * 2));
      this.bytes.copy(bigger, 0, 0, this.length);
      this.bytes = bigger;
    }
    this.bytes[this.length++] = b;
  }
  at(i: number): number {
    return this.bytes[i] ?? 0;
  }
  text(encoding: BufferEncoding): string {
    return this.bytes.toString(encoding, 0, this.length);
  }
  clear(): void {
    this.length = 0;
    this.overflowed = false;
  }
}

/** Scans a plain-format dump chunk by chunk; chunks may split it at any byte. */
export class PgDumpScanner {
  private readonly trailer: string;
  private readonly encoding: BufferEncoding;
  private state = NORMAL;
  private bytes = 0;
  private atLineStart = true;

  // NORMAL-state history, for E'' strings and identifiers ending in '$'.
  private prevByte = 0x20;
  private prevPrevIdentifier = false;

  private blockDepth = 0;
  private readonly tag = new ByteBuffer(16, MAX_TAG_BYTES);
  private tagMatched = 0;

  private statement = STATEMENT_START;
  private readonly copyStatement = new ByteBuffer(256, MAX_COPY_STATEMENT_BYTES);

  // Comments that start a line, and meta-commands: kept (short) to compare with the trailer.
  private readonly line = new ByteBuffer(128, MAX_LINE_KEPT);
  private commentAtLineStart = false;

  private currentTable: TableName | undefined;
  private currentRows = 0;
  private readonly tables: TableRows[] = [];
  private readonly seen = new Set<string>();
  private readonly problems: string[] = [];
  private trailerSeen = false;

  constructor(options: PgDumpScannerOptions) {
    this.trailer = options.trailer;
    this.encoding = options.nameEncoding ?? 'utf8';
  }

  write(chunk: Buffer): void {
    this.bytes += chunk.length;
    const length = chunk.length;
    let i = 0;
    while (i < length) {
      if (this.state >= DATA_LINE_START) i = this.scanData(chunk, i);
      else i = this.scanSql(chunk, i);
    }
  }

  /** Call once after the last chunk. */
  end(): PgDumpScan {
    switch (this.state) {
      case LINE_COMMENT:
        this.endLineComment();
        break;
      case META:
        this.endMeta();
        break;
      case DATA_LINE_START:
      case DATA_BACKSLASH:
      case DATA_BACKSLASH_DOT:
      case DATA_MID_LINE:
      case COPY_NEWLINE:
        this.problems.push(
          `the dump ends inside the data of table ${describe(this.currentTable)} (no \\. line): it is truncated`,
        );
        break;
      case SQUOTE:
      case ESTRING:
      case ESTRING_ESCAPE:
      case DQUOTE:
      case DOLLAR_BODY:
      case DOLLAR_CLOSE:
      case BLOCK_COMMENT:
      case BLOCK_STAR:
      case BLOCK_SLASH:
        this.problems.push('the dump ends inside a quoted string, function body or comment: it is truncated');
        break;
      default:
        break;
    }
    return {
      bytes: this.bytes,
      tables: this.tables,
      trailerLast: this.trailerSeen && this.problems.length === 0,
      problems: this.problems,
    };
  }

  /** COPY data: one row per line until the `\.` line. Returns the next index. */
  private scanData(chunk: Buffer, start: number): number {
    const length = chunk.length;
    let i = start;
    let rows = this.currentRows;
    let state = this.state;
    while (i < length) {
      if (state === DATA_MID_LINE) {
        const newline = chunk.indexOf(NL, i);
        if (newline === -1) {
          i = length;
          break;
        }
        rows++;
        i = newline + 1;
        state = DATA_LINE_START;
        continue;
      }
      const b = chunk[i] as number;
      i++;
      if (state === DATA_LINE_START) {
        if (b === NL) rows++;
        else state = b === BACKSLASH ? DATA_BACKSLASH : DATA_MID_LINE;
      } else if (state === DATA_BACKSLASH) {
        if (b === NL) {
          rows++;
          state = DATA_LINE_START;
        } else state = b === DOT ? DATA_BACKSLASH_DOT : DATA_MID_LINE;
      } else if (b === NL) {
        // DATA_BACKSLASH_DOT + newline: the end-of-data line.
        this.currentRows = rows;
        this.finishTable();
        this.state = NORMAL;
        this.atLineStart = true;
        return i;
      } else state = DATA_MID_LINE;
    }
    this.currentRows = rows;
    this.state = state;
    return i;
  }

  /** SQL between COPY blocks, byte by byte. Returns the next index (stops early when COPY data starts). */
  private scanSql(chunk: Buffer, start: number): number {
    const length = chunk.length;
    let i = start;
    while (i < length) {
      const b = chunk[i] as number;
      if (!this.sqlByte(b)) continue; // reprocess the same byte in the new state
      i++;
      this.atLineStart = b === NL;
      if (this.state >= DATA_LINE_START) return i;
    }
    return i;
  }

  /** One byte of SQL. Returns false when the byte must be processed again (a pending token resolved). */
  private sqlByte(b: number): boolean {
    switch (this.state) {
      case NORMAL:
        return this.normalByte(b);
      case DASH:
        if (b === MINUS) {
          this.state = LINE_COMMENT;
          this.line.clear();
          this.line.push(MINUS);
          this.line.push(MINUS);
          return true;
        }
        this.state = NORMAL;
        this.token(MINUS);
        return false;
      case SLASH:
        if (b === STAR) {
          this.state = BLOCK_COMMENT;
          this.blockDepth = 1;
          return true;
        }
        this.state = NORMAL;
        this.token(SLASH_BYTE);
        return false;
      case LINE_COMMENT:
        if (b === NL) {
          this.endLineComment();
          this.state = NORMAL;
        } else if (this.commentAtLineStart) this.line.push(b);
        return true;
      case BLOCK_COMMENT:
        if (b === STAR) this.state = BLOCK_STAR;
        else if (b === SLASH_BYTE) this.state = BLOCK_SLASH;
        return true;
      case BLOCK_STAR:
        if (b === SLASH_BYTE) {
          this.blockDepth--;
          this.state = this.blockDepth === 0 ? NORMAL : BLOCK_COMMENT;
          if (this.blockDepth === 0) this.forgetHistory();
        } else if (b !== STAR) this.state = BLOCK_COMMENT;
        return true;
      case BLOCK_SLASH:
        if (b === STAR) {
          this.blockDepth++;
          this.state = BLOCK_COMMENT;
        } else if (b !== SLASH_BYTE) this.state = BLOCK_COMMENT;
        return true;
      case SQUOTE:
        this.capture(b);
        if (b === QUOTE) this.state = SQUOTE_END;
        return true;
      case SQUOTE_END:
        if (b === QUOTE) {
          this.capture(b);
          this.state = SQUOTE;
          return true;
        }
        this.state = NORMAL;
        this.forgetHistory();
        return false;
      case ESTRING:
        this.capture(b);
        if (b === BACKSLASH) this.state = ESTRING_ESCAPE;
        else if (b === QUOTE) this.state = ESTRING_END;
        return true;
      case ESTRING_ESCAPE:
        this.capture(b);
        this.state = ESTRING;
        return true;
      case ESTRING_END:
        if (b === QUOTE) {
          this.capture(b);
          this.state = ESTRING;
          return true;
        }
        this.state = NORMAL;
        this.forgetHistory();
        return false;
      case DQUOTE:
        this.capture(b);
        if (b === DOUBLE_QUOTE) this.state = DQUOTE_END;
        return true;
      case DQUOTE_END:
        if (b === DOUBLE_QUOTE) {
          this.capture(b);
          this.state = DQUOTE;
          return true;
        }
        this.state = NORMAL;
        this.forgetHistory();
        return false;
      case DOLLAR_OPEN:
        if (b === DOLLAR) {
          this.capture(b);
          this.state = DOLLAR_BODY;
          return true;
        }
        if (this.tag.length === 0 ? isTagStart(b) : isTagByte(b)) {
          if (this.tag.length >= MAX_TAG_BYTES) {
            this.problems.push('a dollar-quote tag is longer than 4096 bytes; this is not a pg_dump file');
            this.state = NORMAL;
            return true;
          }
          this.capture(b);
          this.tag.push(b);
          return true;
        }
        // `$1` or a lone '$': not a dollar quote. The bytes so far were ordinary token bytes.
        this.state = NORMAL;
        this.prevPrevIdentifier = true;
        this.prevByte = this.tag.length > 0 ? this.tag.at(this.tag.length - 1) : DOLLAR;
        return false;
      case DOLLAR_BODY:
        this.capture(b);
        if (b === DOLLAR) {
          this.state = DOLLAR_CLOSE;
          this.tagMatched = 0;
        }
        return true;
      case DOLLAR_CLOSE:
        this.capture(b);
        if (this.tagMatched < this.tag.length && b === this.tag.at(this.tagMatched)) this.tagMatched++;
        else if (this.tagMatched === this.tag.length && b === DOLLAR) {
          this.state = NORMAL;
          this.forgetHistory();
        } else if (b === DOLLAR)
          this.tagMatched = 0; // this '$' may open the closing tag
        else this.state = DOLLAR_BODY;
        return true;
      case META:
        if (b === NL) {
          this.endMeta();
          this.state = NORMAL;
        } else this.line.push(b);
        return true;
      case COPY_NEWLINE:
        if (b === NL) {
          this.state = DATA_LINE_START;
          this.currentRows = 0;
          return true;
        }
        this.problems.push(`unexpected text after the COPY statement of table ${describe(this.currentTable)}`);
        this.currentTable = undefined;
        this.state = NORMAL;
        return false;
      default:
        throw new Error(`scanner in unknown state ${this.state}`);
    }
  }

  private normalByte(b: number): boolean {
    if (isSpace(b)) {
      if (this.statement === STATEMENT_CAPTURE) this.capture(b);
      this.prevPrevIdentifier = isIdentifierByte(this.prevByte);
      this.prevByte = b;
      return true;
    }
    if (b === MINUS) {
      this.state = DASH;
      this.commentAtLineStart = this.atLineStart;
      return true;
    }
    if (b === SLASH_BYTE) {
      this.state = SLASH;
      return true;
    }
    if (b === BACKSLASH) {
      this.state = META;
      this.line.clear();
      return true;
    }
    this.token(b);
    return true;
  }

  /** A byte of an SQL token (not whitespace, not a comment) in NORMAL state. */
  private token(b: number): void {
    this.significant();
    if (this.statement === STATEMENT_START) {
      this.statement = STATEMENT_CAPTURE;
      this.copyStatement.clear();
    }
    if (b === SEMICOLON) {
      if (this.statement === STATEMENT_CAPTURE) this.endCapturedStatement();
      this.statement = STATEMENT_START;
      this.forgetHistory();
      return;
    }
    this.capture(b);
    if (b === QUOTE) {
      const extended = (this.prevByte === 0x45 || this.prevByte === 0x65) && !this.prevPrevIdentifier;
      this.state = extended ? ESTRING : SQUOTE;
    } else if (b === DOUBLE_QUOTE) {
      this.state = DQUOTE;
    } else if (b === DOLLAR && !isIdentifierByte(this.prevByte)) {
      this.state = DOLLAR_OPEN;
      this.tag.clear();
      return;
    }
    this.prevPrevIdentifier = isIdentifierByte(this.prevByte);
    this.prevByte = b;
  }

  /** After a string, comment or quote, the next byte starts a new token. */
  private forgetHistory(): void {
    this.prevByte = 0x20;
    this.prevPrevIdentifier = false;
  }

  /** Keeps statement text while it may be a COPY; decides as soon as 5 bytes are known. */
  private capture(b: number): void {
    if (this.statement !== STATEMENT_CAPTURE) return;
    const text = this.copyStatement;
    text.push(b);
    if (text.length === 5 && !startsWithCopy(text)) {
      this.statement = STATEMENT_OTHER;
      text.clear();
    }
  }

  private endCapturedStatement(): void {
    const text = this.copyStatement;
    if (text.length < 5) return;
    if (text.overflowed) {
      this.problems.push('a COPY statement is longer than 16 MiB; this is not a pg_dump file');
      return;
    }
    const statement = text.text(this.encoding);
    text.clear();
    const copy = parseCopyFromStdin(statement);
    if (copy === 'other') return; // COPY … TO stdout, or from a file: no data lines follow
    if (copy === undefined) {
      this.problems.push(`cannot read the table name of ${JSON.stringify(statement.slice(0, 200))}`);
      return;
    }
    this.currentTable = copy;
    this.state = COPY_NEWLINE;
  }

  private finishTable(): void {
    const table = this.currentTable;
    this.currentTable = undefined;
    if (!table) return;
    const key = JSON.stringify([table.schema, table.table]);
    if (this.seen.has(key)) {
      this.problems.push(`table ${describe(table)} has two COPY blocks`);
      return;
    }
    this.seen.add(key);
    this.tables.push({ ...table, rows: this.currentRows });
  }

  /** Something other than blank lines, empty comments and `\unrestrict` follows the trailer. */
  private significant(): void {
    this.trailerSeen = false;
  }

  private endLineComment(): void {
    if (!this.commentAtLineStart) return;
    const text = this.line.text('latin1').trimEnd();
    if (text === this.trailer) this.trailerSeen = true;
    else if (text !== '--') this.significant();
  }

  private endMeta(): void {
    const text = this.line.text('latin1');
    const command = /^\S*/.exec(text)?.[0] ?? '';
    if (command === 'connect' || command === 'c') {
      this.problems.push(
        'the dump contains a \\connect command: it names a database, so it would not load into another one',
      );
    }
    if (command !== 'unrestrict') this.significant();
    this.forgetHistory();
  }
}

function startsWithCopy(text: ByteBuffer): boolean {
  const upper = (i: number) => text.at(i) & 0xdf; // ASCII letters to upper case
  return upper(0) === 0x43 && upper(1) === 0x4f && upper(2) === 0x50 && upper(3) === 0x59 && isSpace(text.at(4));
}

/**
 * The table of `COPY <schema>.<table> (<columns>) FROM stdin`; `other` for any other COPY, undefined
 * when the name cannot be read. Exported for tests.
 */
export function parseCopyFromStdin(statement: string): TableName | 'other' | undefined {
  const keyword = COPY_KEYWORD.exec(statement);
  if (!keyword || !ENDS_FROM_STDIN.test(statement)) return 'other';
  const name = parseQualifiedName(statement, keyword[0].length);
  if (!name || !COLUMNS_FROM_STDIN.test(statement.slice(name.end))) return undefined;
  return { schema: name.schema, table: name.table };
}

/** `schema.table` at `start`, as pg_dump writes it: each part plain (lower case) or "quoted" with "" for ". */
function parseQualifiedName(text: string, start: number): (TableName & { end: number }) | undefined {
  const parts: string[] = [];
  let i = start;
  for (;;) {
    let part = '';
    if (text[i] === '"') {
      const close = /^"((?:[^"]|"")*)"/.exec(text.slice(i));
      if (!close) return undefined;
      part = (close[1] ?? '').replaceAll('""', '"');
      i += close[0].length;
    } else {
      const plain = /^[^\s."(;]+/.exec(text.slice(i));
      if (!plain) return undefined;
      part = plain[0].replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
      i += plain[0].length;
    }
    parts.push(part);
    if (text[i] !== '.') break;
    i++;
  }
  if (parts.length !== 2) return undefined;
  return { schema: parts[0] as string, table: parts[1] as string, end: i };
}

function describe(table: TableName | undefined): string {
  return table ? `${table.schema}.${table.table}` : '(unknown)';
}

/** `<schema>.<table>` → rows, every table of the dump. */
export function tablesRecord(tables: readonly TableRows[]): Record<string, number> {
  const record: Record<string, number> = {};
  for (const t of tables) record[`${t.schema}.${t.table}`] = t.rows;
  return record;
}

/** Tables the catalog lists that the dump lacks, and the other way round (as `<schema>.<table>`). */
export function compareTables(
  expected: readonly TableName[],
  dumped: readonly TableName[],
): { missing: string[]; unexpected: string[] } {
  const key = (t: TableName) => JSON.stringify([t.schema, t.table]);
  const dumpedKeys = new Set(dumped.map(key));
  const expectedKeys = new Set(expected.map(key));
  return {
    missing: expected.filter((t) => !dumpedKeys.has(key(t))).map(describe),
    unexpected: dumped.filter((t) => !expectedKeys.has(key(t))).map(describe),
  };
}

export interface PgDumpValidatorOptions extends PgDumpScannerOptions {
  /** What the dump is, for messages: `pg_dump of database app`. */
  what: string;
  /** Tables the catalog lists in the dump's snapshot; the dump must hold exactly these. */
  expectedTables?: readonly TableName[];
  /** Turns a reason into the error the stream fails with (a SourceError naming the source). */
  fail: (reason: string) => Error;
  /** Called with the scan of a valid dump, just before the stream ends. */
  onValid: (scan: PgDumpScan) => void;
  /** Called once, when the first bytes arrive (the dump tool is running its snapshot). */
  onFirstBytes?: () => void;
}

/**
 * A pass-through stream that fails (instead of ending) unless the dump is complete and valid:
 * non-empty, structurally sound, trailer last, and its tables exactly the expected ones.
 */
export function createPgDumpValidator(options: PgDumpValidatorOptions): Transform {
  const scanner = new PgDumpScanner(options);
  let first = true;
  return new Transform({
    highWaterMark: 64 * 1024,
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      if (first) {
        first = false;
        options.onFirstBytes?.();
      }
      scanner.write(chunk);
      callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      const scan = scanner.end();
      const problem = judgeScan(options, scan);
      if (problem) {
        callback(options.fail(problem));
        return;
      }
      options.onValid(scan);
      callback();
    },
  });
}

/** Why a finished scan is not a complete dump, or undefined when it is one. Exported for tests. */
export function judgeScan(
  options: Pick<PgDumpValidatorOptions, 'what' | 'trailer' | 'expectedTables'>,
  scan: PgDumpScan,
) {
  if (scan.bytes === 0) return `${options.what} wrote nothing; an empty dump is not a backup`;
  if (scan.problems.length > 0) return `${options.what} is not a valid dump: ${scan.problems.join('; ')}`;
  if (!scan.trailerLast) {
    return (
      `${options.what} does not end with "${options.trailer}": the dump is incomplete ` +
      '(cut off, or something was written after it)'
    );
  }
  if (options.expectedTables) {
    const { missing, unexpected } = compareTables(options.expectedTables, scan.tables);
    if (missing.length > 0 || unexpected.length > 0) {
      const list = (names: string[]) => names.slice(0, 10).join(', ') + (names.length > 10 ? ', …' : '');
      const parts = [
        missing.length > 0 ? `in the catalog but not in the dump: ${list(missing)}` : '',
        unexpected.length > 0 ? `in the dump but not in the catalog: ${list(unexpected)}` : '',
      ].filter(Boolean);
      return `the tables of ${options.what} disagree with the catalog (${parts.join('; ')})`;
    }
  }
  const keys = new Set(scan.tables.map((t) => `${t.schema}.${t.table}`));
  if (keys.size !== scan.tables.length) {
    return `two tables of ${options.what} have the same <schema>.<table> name once joined with a dot; rename one`;
  }
  return undefined;
}
