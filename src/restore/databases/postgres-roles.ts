// Drills load pg_dump output into a server that may lack the dumped database's roles, or whose drill
// user may not act as them. pg_dump writes who owns what and who may do what as separate statements:
//   ALTER TABLE public.t OWNER TO app;                          (any ALTER … OWNER TO)
//   GRANT SELECT ON TABLE public.t TO reader;  REVOKE … FROM …;
//   ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA s GRANT … TO reader;
//   CREATE POLICY p ON public.t TO reader USING (…);
//   SET SESSION AUTHORIZATION 'grantor'; GRANT …; RESET SESSION AUTHORIZATION;
// This filter splits the dump into statements the way psql does (strings, quoted names, dollar
// quotes, nested comments, psql meta-commands, and the data of `COPY … FROM stdin`, which passes
// through untouched), and drops exactly those statements whose roles the server lacks or this user
// may not use, reporting each. Everything else passes byte for byte; any other failure stays fatal.
// Memory: one statement at most (MAX_HELD bytes); COPY data and long statements that cannot be
// role statements (CREATE FUNCTION bodies…) stream through.
import { Transform, type TransformCallback } from 'node:stream';
import { oneLine } from './shared.js';

/** What the server says about roles, read before the load. */
export interface RoleFacts {
  /** The connected user. */
  user: string;
  /** Superusers may act as any role and SET SESSION AUTHORIZATION. */
  superuser: boolean;
  /** Every role of the server → whether this user may act as it (owner changes, default privileges). */
  roles: ReadonlyMap<string, boolean>;
  /** `postgres 127.0.0.1:5432 as drill`, for reasons. */
  server: string;
}

/** A statement left out, and why. */
export interface SkippedStatement {
  statement: string;
  reason: string;
}

// Lexer states.
const NORMAL = 0;
const DASH = 1;
const SLASH = 2;
const LINE_COMMENT = 3;
const BLOCK = 4;
const BLOCK_STAR = 5;
const BLOCK_SLASH = 6;
const SQUOTE = 7;
const ESTRING = 8;
const ESTRING_ESCAPE = 9;
const DQUOTE = 10;
const DOLLAR_OPEN = 11;
const DOLLAR_BODY = 12;
const DOLLAR_CLOSE = 13;
const META = 14;
const COPY_REST = 15; // after `COPY … FROM stdin;`, up to the end of that line
const DATA_LINE_START = 16;
const DATA_BACKSLASH = 17;
const DATA_BACKSLASH_DOT = 18;
const DATA_MID_LINE = 19;

const NL = 0x0a;
const QUOTE = 0x27;
const DOUBLE_QUOTE = 0x22;
const DOLLAR = 0x24;
const BACKSLASH = 0x5c;
const SEMICOLON = 0x3b;
const MINUS = 0x2d;
const SLASH_BYTE = 0x2f;
const STAR = 0x2a;
const OPEN = 0x28;
const CLOSE = 0x29;
const DOT = 0x2e;

/** Statements are held back at most this long; a longer one is no role statement and streams on. */
const MAX_HELD = 16 * 1024 * 1024;
const MAX_TAG = 4096;
/** Statements whose first word may make them a role statement (or COPY, whose end must be seen). */
const HELD_WORDS = new Set(['ALTER', 'GRANT', 'REVOKE', 'SET', 'RESET', 'CREATE', 'COPY']);

function isSpace(b: number): boolean {
  return b === 0x20 || (b >= 0x09 && b <= 0x0d);
}

function isWordStart(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || b === 0x5f || b >= 0x80;
}

function isWordByte(b: number): boolean {
  return isWordStart(b) || (b >= 0x30 && b <= 0x39) || b === DOLLAR;
}

/** The pass-through stream; `onSkip` hears of every statement dropped. */
export class RoleStatementFilter extends Transform {
  private state = NORMAL;
  private blockDepth = 0;
  private parenDepth = 0;
  /** Previous NORMAL byte continued a word (so `$` or a quote after it is not a new token). */
  private previousWord = false;
  /** The word being read in NORMAL is exactly `E`/`e` so far (an E'' string may follow). */
  private wordIsE = false;
  private tag: number[] = [];
  private tagMatched = 0;

  // The current segment: the bytes since the end of the last statement, while held back.
  private held: Buffer[] = [];
  private heldBytes = 0;
  private holding = true;
  private inStatement = false;
  /** Offset of the statement's first byte within the segment. */
  private statementOffset = 0;
  private firstWord: number[] | undefined;
  private firstWordDone = false;
  /** After a skipped SET SESSION AUTHORIZATION: every statement up to its RESET is skipped too. */
  private skippingAuthorization: string | undefined;

  constructor(
    private readonly facts: RoleFacts,
    private readonly onSkip: (skipped: SkippedStatement) => void,
  ) {
    super({ highWaterMark: 64 * 1024 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.scan(chunk);
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    // What is left (white space, comments, or a statement cut short) goes to psql as it is.
    for (const part of this.held) this.push(part);
    this.held = [];
    callback();
  }

  private scan(chunk: Buffer): void {
    const n = chunk.length;
    let from = 0;
    let i = 0;
    // The segment offset of chunk[i].
    const offsetOf = (index: number) => this.heldBytes + (index - from);
    while (i < n) {
      const b = chunk[i] as number;
      switch (this.state) {
        case NORMAL: {
          if (!this.inStatement) {
            if (isSpace(b)) {
              i++;
              continue;
            }
            if (b === MINUS) {
              this.state = DASH;
              i++;
              continue;
            }
            if (b === SLASH_BYTE) {
              this.state = SLASH;
              i++;
              continue;
            }
            this.inStatement = true;
            this.statementOffset = offsetOf(i);
            if (b === BACKSLASH) {
              // A psql meta-command (\restrict, \unrestrict): its own line, never a role statement.
              from = this.release(chunk, from, i);
              this.state = META;
              i++;
              continue;
            }
            this.firstWord = isWordStart(b) ? [] : undefined;
            this.firstWordDone = !isWordStart(b);
            if (this.firstWordDone) from = this.decideByFirstWord(chunk, from, i);
          }
          if (!this.firstWordDone) {
            if (isWordByte(b)) {
              this.firstWord?.push(b);
            } else {
              this.firstWordDone = true;
              from = this.decideByFirstWord(chunk, from, i);
            }
          }
          if (b === SEMICOLON && this.parenDepth === 0) {
            i++;
            from = this.endStatement(chunk, from, i);
            continue;
          }
          if (b === QUOTE) this.state = this.wordIsE ? ESTRING : SQUOTE;
          else if (b === DOUBLE_QUOTE) this.state = DQUOTE;
          else if (b === MINUS) this.state = DASH;
          else if (b === SLASH_BYTE) this.state = SLASH;
          else if (b === DOLLAR && !this.previousWord) {
            this.state = DOLLAR_OPEN;
            this.tag = [];
          } else if (b === OPEN) this.parenDepth++;
          else if (b === CLOSE) this.parenDepth = Math.max(0, this.parenDepth - 1);
          this.wordIsE = (b === 0x45 || b === 0x65) && !this.previousWord;
          this.previousWord = isWordByte(b);
          i++;
          break;
        }
        case DASH:
          if (b === MINUS) {
            this.state = LINE_COMMENT;
            i++;
          } else {
            this.state = NORMAL;
            from = this.operator(chunk, from, i - 1);
          }
          break;
        case SLASH:
          if (b === STAR) {
            this.state = BLOCK;
            this.blockDepth = 1;
            i++;
          } else {
            this.state = NORMAL;
            from = this.operator(chunk, from, i - 1);
          }
          break;
        case LINE_COMMENT: {
          const newline = chunk.indexOf(NL, i);
          if (newline === -1) i = n;
          else {
            this.state = NORMAL;
            this.previousWord = false;
            this.wordIsE = false;
            i = newline + 1;
          }
          break;
        }
        case BLOCK:
          if (b === STAR) this.state = BLOCK_STAR;
          else if (b === SLASH_BYTE) this.state = BLOCK_SLASH;
          i++;
          break;
        case BLOCK_STAR:
          if (b === SLASH_BYTE) {
            this.blockDepth--;
            this.state = this.blockDepth === 0 ? NORMAL : BLOCK;
            this.previousWord = false;
            this.wordIsE = false;
            i++;
          } else if (b === STAR) i++;
          else this.state = BLOCK;
          break;
        case BLOCK_SLASH:
          if (b === STAR) {
            this.blockDepth++;
            this.state = BLOCK;
            i++;
          } else this.state = BLOCK;
          break;
        case SQUOTE:
        case DQUOTE: {
          // A doubled quote is the same as closing and opening again, for finding the statement's end.
          const close = chunk.indexOf(this.state === SQUOTE ? QUOTE : DOUBLE_QUOTE, i);
          if (close === -1) i = n;
          else {
            this.previousWord = this.state === DQUOTE;
            this.wordIsE = false;
            this.state = NORMAL;
            i = close + 1;
          }
          break;
        }
        case ESTRING:
          if (b === BACKSLASH) this.state = ESTRING_ESCAPE;
          else if (b === QUOTE) {
            this.state = NORMAL;
            this.previousWord = false;
            this.wordIsE = false;
          }
          i++;
          break;
        case ESTRING_ESCAPE:
          this.state = ESTRING;
          i++;
          break;
        case DOLLAR_OPEN:
          if (b === DOLLAR) {
            this.state = DOLLAR_BODY;
            i++;
          } else if (
            (this.tag.length === 0 ? isWordStart(b) : isWordByte(b) && b !== DOLLAR) &&
            this.tag.length < MAX_TAG
          ) {
            this.tag.push(b);
            i++;
          } else {
            // `$1` or a lone `$`: not a dollar quote.
            this.state = NORMAL;
            this.previousWord = true;
            this.wordIsE = false;
          }
          break;
        case DOLLAR_BODY: {
          const dollar = chunk.indexOf(DOLLAR, i);
          if (dollar === -1) i = n;
          else {
            this.state = DOLLAR_CLOSE;
            this.tagMatched = 0;
            i = dollar + 1;
          }
          break;
        }
        case DOLLAR_CLOSE:
          if (this.tagMatched === this.tag.length) {
            if (b === DOLLAR) {
              this.state = NORMAL;
              this.previousWord = false;
              this.wordIsE = false;
              i++;
            } else this.state = DOLLAR_BODY;
          } else if (b === this.tag[this.tagMatched]) {
            this.tagMatched++;
            i++;
          } else this.state = DOLLAR_BODY; // this byte may be the `$` of the real end
          break;
        case META: {
          const newline = chunk.indexOf(NL, i);
          if (newline === -1) i = n;
          else {
            i = newline + 1;
            this.state = NORMAL;
            from = this.endStatement(chunk, from, i);
          }
          break;
        }
        case COPY_REST: {
          const newline = chunk.indexOf(NL, i);
          if (newline === -1) i = n;
          else {
            this.state = DATA_LINE_START;
            i = newline + 1;
          }
          break;
        }
        case DATA_LINE_START:
          if (b === BACKSLASH) this.state = DATA_BACKSLASH;
          else if (b !== NL) this.state = DATA_MID_LINE;
          i++;
          break;
        case DATA_BACKSLASH:
          if (b === DOT) {
            this.state = DATA_BACKSLASH_DOT;
            i++;
          } else this.state = DATA_MID_LINE;
          break;
        case DATA_BACKSLASH_DOT:
          if (b === NL) {
            // `\.` alone on its line: the end of the data.
            i++;
            this.push(chunk.subarray(from, i));
            from = i;
            this.state = NORMAL;
            this.resetSegment();
          } else this.state = DATA_MID_LINE;
          break;
        case DATA_MID_LINE: {
          const newline = chunk.indexOf(NL, i);
          if (newline === -1) i = n;
          else {
            this.state = DATA_LINE_START;
            i = newline + 1;
          }
          break;
        }
        default:
          throw new Error(`internal error: role filter state ${this.state}`);
      }
    }
    if (from >= n) return;
    const rest = chunk.subarray(from, n);
    if (this.holding && this.state < COPY_REST) {
      this.held.push(Buffer.from(rest));
      this.heldBytes += rest.length;
      if (this.heldBytes > MAX_HELD) this.stopHolding();
    } else this.push(rest);
  }

  /**
   * A `-` or `/` at `index` (-1: the last byte held) that did not start a comment: an operator, part
   * of the statement. At a statement's start it begins one that is no role statement. Returns the new `from`.
   */
  private operator(chunk: Buffer, from: number, index: number): number {
    this.previousWord = false;
    this.wordIsE = false;
    if (this.inStatement) return from;
    this.inStatement = true;
    this.statementOffset = this.heldBytes + (index - from);
    this.firstWord = undefined;
    this.firstWordDone = true;
    return this.decideByFirstWord(chunk, from, Math.max(from, index));
  }

  /** Once the first word is known: statements that cannot matter stop being held back. */
  private decideByFirstWord(chunk: Buffer, from: number, index: number): number {
    if (this.skippingAuthorization !== undefined) return from;
    const word = this.firstWord ? Buffer.from(this.firstWord).toString('latin1').toUpperCase() : '';
    if (HELD_WORDS.has(word)) return from;
    return this.release(chunk, from, index);
  }

  /** Hands on what is held and the chunk up to `index`; the rest of this statement streams. Returns the new `from`. */
  private release(chunk: Buffer, from: number, index: number): number {
    for (const part of this.held) this.push(part);
    if (index > from) this.push(chunk.subarray(from, index));
    this.held = [];
    this.heldBytes = 0;
    this.holding = false;
    return index;
  }

  private stopHolding(): void {
    if (this.skippingAuthorization !== undefined) {
      throw new Error(
        `a statement after SET SESSION AUTHORIZATION ${this.skippingAuthorization} is longer than ${MAX_HELD} bytes; ` +
          'it cannot be skipped with its block. Load as a superuser, or without tolerating missing roles',
      );
    }
    if (this.firstWord && Buffer.from(this.firstWord).toString('latin1').toUpperCase() === 'COPY') {
      throw new Error(
        `a COPY statement of the dump is longer than ${MAX_HELD} bytes; the dump is not one pg_dump wrote`,
      );
    }
    for (const part of this.held) this.push(part);
    this.held = [];
    this.heldBytes = 0;
    this.holding = false;
  }

  /** A statement ended just before `end` (after its `;` or meta-command line). Returns the new `from`. */
  private endStatement(chunk: Buffer, from: number, end: number): number {
    if (!this.holding) {
      this.push(chunk.subarray(from, end));
      this.resetSegment();
      return end;
    }
    const segment = Buffer.concat([...this.held, chunk.subarray(from, end)]);
    const statement = segment.subarray(this.statementOffset).toString('utf8');
    const verdict = this.judge(statement);
    if (verdict === undefined) this.push(segment);
    else {
      this.push(segment.subarray(0, this.statementOffset));
      this.onSkip({ statement: oneLine(statement), reason: verdict });
    }
    const copy = verdict === undefined && isCopyFromStdin(statement);
    this.resetSegment();
    if (copy) this.state = COPY_REST;
    return end;
  }

  private resetSegment(): void {
    this.held = [];
    this.heldBytes = 0;
    this.holding = true;
    this.inStatement = false;
    this.statementOffset = 0;
    this.firstWord = undefined;
    this.firstWordDone = false;
    this.parenDepth = 0;
    this.previousWord = false;
    this.wordIsE = false;
  }

  /** Why to skip `statement`, or undefined to keep it. */
  private judge(statement: string): string | undefined {
    if (this.skippingAuthorization !== undefined) {
      const role = this.skippingAuthorization;
      if (/^RESET\s+SESSION\s+AUTHORIZATION\s*;$/i.test(statement.trim())) this.skippingAuthorization = undefined;
      return `it belongs to the block run as role "${role}" (SET SESSION AUTHORIZATION), which was skipped`;
    }
    const tokens = tokenize(statement);
    const problem = roleProblem(tokens, this.facts);
    if (problem && words(tokens, 0, 3) === 'SET SESSION AUTHORIZATION') {
      this.skippingAuthorization = roleName(tokens[3]) ?? '?';
    }
    return problem;
  }
}

function isCopyFromStdin(statement: string): boolean {
  return /^COPY\s/i.test(statement) && /\sFROM\s+stdin\s*;\s*$/i.test(statement);
}

// ── statements ───────────────────────────────────────────────────────────────────────────────

/** A token of one statement. `depth`: parentheses around it. */
export interface Token {
  kind: 'word' | 'quoted' | 'string' | 'other';
  /** word: upper case; quoted and string: the value; other: the text. */
  value: string;
  /** word: as written. */
  raw: string;
  depth: number;
}

/** The tokens of one statement (comments dropped). Exported for tests. */
export function tokenize(statement: string): Token[] {
  const tokens: Token[] = [];
  let depth = 0;
  let i = 0;
  const n = statement.length;
  while (i < n) {
    const c = statement[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '-' && statement[i + 1] === '-') {
      const end = statement.indexOf('\n', i);
      i = end === -1 ? n : end + 1;
    } else if (c === '/' && statement[i + 1] === '*') {
      let nesting = 1;
      i += 2;
      while (i < n && nesting > 0) {
        if (statement.startsWith('/*', i)) {
          nesting++;
          i += 2;
        } else if (statement.startsWith('*/', i)) {
          nesting--;
          i += 2;
        } else i++;
      }
    } else if (c === '"') {
      const match = /^"((?:[^"]|"")*)"/.exec(statement.slice(i));
      const text = match?.[0] ?? statement.slice(i);
      tokens.push({ kind: 'quoted', value: (match?.[1] ?? '').replaceAll('""', '"'), raw: text, depth });
      i += text.length;
    } else if (c === "'" || ((c === 'E' || c === 'e') && statement[i + 1] === "'")) {
      const escapes = c !== "'";
      let j = escapes ? i + 2 : i + 1;
      let value = '';
      while (j < n) {
        const d = statement[j] as string;
        if (escapes && d === '\\') {
          value += statement[j + 1] ?? '';
          j += 2;
        } else if (d === "'") {
          if (statement[j + 1] === "'") {
            value += "'";
            j += 2;
          } else {
            j++;
            break;
          }
        } else {
          value += d;
          j++;
        }
      }
      tokens.push({ kind: 'string', value, raw: statement.slice(i, j), depth });
      i = j;
    } else if (c === '$' && /^\$([A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/.test(statement.slice(i, i + MAX_TAG))) {
      const tag = /^\$([A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/.exec(statement.slice(i))?.[0] ?? '$$';
      const close = statement.indexOf(tag, i + tag.length);
      const end = close === -1 ? n : close + tag.length;
      tokens.push({ kind: 'string', value: statement.slice(i + tag.length, close === -1 ? n : close), raw: '', depth });
      i = end;
    } else if (/[A-Za-z_\u0080-\uffff]/.test(c)) {
      const match = /^[A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*/.exec(statement.slice(i, i + 4096));
      const raw = match?.[0] ?? c;
      tokens.push({ kind: 'word', value: raw.toUpperCase(), raw, depth });
      i += raw.length;
    } else {
      if (c === ')') depth = Math.max(0, depth - 1);
      tokens.push({ kind: 'other', value: c, raw: c, depth });
      if (c === '(') depth++;
      i++;
    }
  }
  return tokens;
}

/** `count` words from `start`, upper case, joined with spaces ('' when a token there is not a word). */
function words(tokens: readonly Token[], start: number, count: number): string {
  const parts: string[] = [];
  for (let k = start; k < start + count; k++) {
    const token = tokens[k];
    if (token?.kind !== 'word') return '';
    parts.push(token.value);
  }
  return parts.join(' ');
}

/** Roles that are keywords, not roles of the server. */
const ROLE_KEYWORDS = new Set(['PUBLIC', 'CURRENT_USER', 'SESSION_USER', 'CURRENT_ROLE']);

/** The role a token names: unquoted names fold to lower case, as the server folds them. */
function roleName(token: Token | undefined): string | undefined {
  if (!token) return undefined;
  if (token.kind === 'quoted' || token.kind === 'string') return token.value;
  if (token.kind === 'word') return token.raw.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
  return undefined;
}

/** The roles listed after `tokens[start]` up to one of `stops` (at depth 0) or the end. */
function roleList(tokens: readonly Token[], start: number, stops: ReadonlySet<string>): string[] {
  const roles: string[] = [];
  for (let k = start; k < tokens.length; k++) {
    const token = tokens[k] as Token;
    if (token.depth !== 0) continue;
    if (token.kind === 'word' && stops.has(token.value)) break;
    if (token.kind === 'other') {
      if (token.value === ';') break;
      continue; // commas
    }
    if (token.kind === 'word' && (token.value === 'GROUP' || ROLE_KEYWORDS.has(token.value))) continue;
    const name = roleName(token);
    if (name !== undefined) roles.push(name);
  }
  return roles;
}

/** The index of the first depth-0 word `word` at or after `start`, or -1. */
function findWord(tokens: readonly Token[], word: string, start = 0): number {
  for (let k = start; k < tokens.length; k++) {
    const token = tokens[k] as Token;
    if (token.depth === 0 && token.kind === 'word' && token.value === word) return k;
  }
  return -1;
}

const GRANT_STOPS = new Set(['WITH', 'GRANTED']);
const REVOKE_STOPS = new Set(['CASCADE', 'RESTRICT', 'GRANTED']);
const POLICY_STOPS = new Set(['USING', 'WITH']);

/**
 * Why this statement would fail for lack of a role (or of the right to act as one), or undefined
 * when it does not depend on roles or its roles are fine. Exported for tests.
 */
export function roleProblem(tokens: readonly Token[], facts: RoleFacts): string | undefined {
  const missing = (names: string[]) => names.find((name) => !facts.roles.has(name));
  const unusable = (names: string[]) => names.find((name) => !facts.superuser && facts.roles.get(name) !== true);
  const doesNotExist = (name: string) => `role "${name}" does not exist on ${facts.server}`;
  const notMember = (name: string, what: string) =>
    `user ${facts.user} is not a member of role "${name}", so it may not ${what}`;

  const first = tokens[0]?.kind === 'word' ? tokens[0].value : '';
  if (first === 'ALTER' && words(tokens, 1, 2) === 'DEFAULT PRIVILEGES') {
    // ALTER DEFAULT PRIVILEGES [FOR ROLE|USER r, …] [IN SCHEMA s, …] GRANT … TO g | REVOKE … FROM g
    const action = tokens.findIndex(
      (t, k) => k > 2 && t.depth === 0 && t.kind === 'word' && (t.value === 'GRANT' || t.value === 'REVOKE'),
    );
    if (action === -1) return undefined;
    const forRole = tokens[3]?.kind === 'word' && tokens[3].value === 'FOR' ? 5 : -1;
    const owners = forRole === -1 ? [] : roleList(tokens.slice(0, action), forRole, new Set(['IN']));
    const isGrant = tokens[action]?.value === 'GRANT';
    const at = findWord(tokens, isGrant ? 'TO' : 'FROM', action);
    const grantees = at === -1 ? [] : roleList(tokens, at + 1, isGrant ? GRANT_STOPS : REVOKE_STOPS);
    const absent = missing([...owners, ...grantees]);
    if (absent !== undefined) return doesNotExist(absent);
    const foreign = unusable(owners);
    if (foreign !== undefined) return notMember(foreign, 'change its default privileges');
    return undefined;
  }
  if (first === 'ALTER') {
    // ALTER <kind> <name> OWNER TO <role>;
    const end = tokens.length - (tokens[tokens.length - 1]?.value === ';' ? 1 : 0);
    const owner = tokens[end - 3];
    if (owner?.kind === 'word' && owner.value === 'OWNER' && owner.depth === 0 && tokens[end - 2]?.value === 'TO') {
      const role = tokens[end - 1];
      if (role?.kind === 'word' && ROLE_KEYWORDS.has(role.value)) return undefined;
      const name = roleName(role);
      if (name === undefined) return undefined;
      if (missing([name]) !== undefined) return doesNotExist(name);
      if (unusable([name]) !== undefined) return notMember(name, 'give objects to it');
      return undefined;
    }
    if (words(tokens, 1, 1) === 'POLICY') return policyProblem(tokens, missing, doesNotExist);
    return undefined;
  }
  if (first === 'GRANT' || first === 'REVOKE') {
    const isGrant = first === 'GRANT';
    const at = findWord(tokens, isGrant ? 'TO' : 'FROM');
    if (at === -1) return undefined;
    const grantees = roleList(tokens, at + 1, isGrant ? GRANT_STOPS : REVOKE_STOPS);
    // Without ON it grants roles themselves (GRANT r TO u): those must exist too.
    const head = tokens.slice(0, at);
    const on = findWord(head, 'ON');
    const optionFor = findWord(head, 'FOR'); // REVOKE ADMIN OPTION FOR r FROM u
    const granted = on === -1 ? roleList(head, optionFor === -1 ? 1 : optionFor + 1, new Set()) : [];
    const absent = missing([...granted, ...grantees]);
    return absent === undefined ? undefined : doesNotExist(absent);
  }
  if (first === 'CREATE' && words(tokens, 1, 1) === 'POLICY') return policyProblem(tokens, missing, doesNotExist);
  if (first === 'SET' && words(tokens, 1, 2) === 'SESSION AUTHORIZATION') {
    const role = tokens[3];
    if (role?.kind === 'word' && role.value === 'DEFAULT') return undefined;
    const name = roleName(role);
    if (name === undefined) return undefined;
    if (missing([name]) !== undefined) return doesNotExist(name);
    if (!facts.superuser) return `only a superuser may SET SESSION AUTHORIZATION, and user ${facts.user} is not one`;
    return undefined;
  }
  return undefined;
}

function policyProblem(
  tokens: readonly Token[],
  missing: (names: string[]) => string | undefined,
  doesNotExist: (name: string) => string,
): string | undefined {
  const at = findWord(tokens, 'TO');
  if (at === -1) return undefined;
  const absent = missing(roleList(tokens, at + 1, POLICY_STOPS));
  return absent === undefined ? undefined : doesNotExist(absent);
}
