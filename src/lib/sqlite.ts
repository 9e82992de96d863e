// One SQLite API for every Node backproof runs on: the subset of better-sqlite3's API that backproof
// uses, backed by Node's built-in `node:sqlite` where it is complete enough (Node 24, and 22 from
// 22.16: see completeNodeSqlite) and by better-sqlite3 elsewhere (Node 20, early 22.x). better-sqlite3
// 12 (the last that builds for Node 20) aborts the process on Node >= 24.19 when the GC finalizes one
// of its objects (WiseLibs/better-sqlite3#1515), so it is loaded only when chosen: a process that
// uses node:sqlite never loads the native addon.
//
// One driver per process, chosen once. Two SQLite libraries in one process would each keep their own
// table of POSIX locks, and closing a file in one drops the other's locks on it (see lib/lock.ts).
// `BACKPROOF_SQLITE_DRIVER=node:sqlite|better-sqlite3` forces the choice (tests run both on Node 22).
//
// Both drivers behave the same here, differences smoothed over:
//  - errors from SQLite are a SqliteError whose `code` is the extended result code's name
//    (`SQLITE_BUSY`, `SQLITE_CONSTRAINT_FOREIGNKEY`), as better-sqlite3 names them;
//  - integers are read as numbers, and one beyond 2^53-1 is a RangeError, never a rounded number;
//    numbers are bound as SQLite REALs by both (STRICT INTEGER columns store them as integers);
//  - named parameters are written `@x`, `$x` or `:x` and bound from an object's keys without the
//    prefix; keys the statement does not use are ignored. A missing key: better-sqlite3 throws,
//    node:sqlite binds NULL (Node 20 runs the whole suite, so such a bug cannot pass unseen);
//  - rows are plain objects, BLOBs Buffers; `close()` is idempotent; the busy timeout defaults to 5000 ms.
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

export type SqliteDriverName = 'node:sqlite' | 'better-sqlite3';

/** What a parameter can be: a number binds as REAL, a bigint as INTEGER, a Uint8Array as BLOB. */
export type SqliteValue = null | number | bigint | string | Uint8Array;
/** Positional values, and/or one object of named values (keys without the `@`, `$` or `:`). */
export type SqliteParameter = SqliteValue | Readonly<Record<string, SqliteValue>>;

export interface SqliteRunResult {
  changes: number;
  lastInsertRowid: number;
}

export interface SqliteStatement {
  run(...params: SqliteParameter[]): SqliteRunResult;
  /** The first row, or undefined when there is none. */
  get(...params: SqliteParameter[]): unknown;
  all(...params: SqliteParameter[]): unknown[];
  /** Makes get() and all() return each row's first column instead of the row. */
  pluck(toggle?: boolean): SqliteStatement;
}

/** Runs `fn` in a transaction (a savepoint when one is already open): COMMIT on return, ROLLBACK on throw. */
export interface SqliteTransaction<A extends unknown[], R> {
  (...args: A): R;
  deferred(...args: A): R;
  immediate(...args: A): R;
  exclusive(...args: A): R;
}

export interface SqliteDatabase {
  /** False once closed. */
  readonly open: boolean;
  prepare(sql: string): SqliteStatement;
  exec(sql: string): void;
  /** `PRAGMA <source>`: every row, or with `simple` the first column of the first row. */
  pragma(source: string, options?: { simple?: boolean }): unknown;
  transaction<A extends unknown[], R>(fn: (...args: A) => R): SqliteTransaction<A, R>;
  /** Idempotent. */
  close(): void;
}

export interface SqliteOpenOptions {
  /** Opens read-only; the file must then exist (SQLITE_CANTOPEN otherwise). */
  readonly?: boolean;
  /** Milliseconds to wait for another connection's lock before SQLITE_BUSY. Default 5000. */
  timeout?: number;
}

/** An error reported by SQLite; `code` names its extended result code, e.g. `SQLITE_BUSY`. */
export class SqliteError extends Error {
  override readonly name = 'SqliteError';
  readonly code: string;
  constructor(message: string, code: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.code = code;
  }
}

const DEFAULT_TIMEOUT_MS = 5000;
const DRIVER_VARIABLE = 'BACKPROOF_SQLITE_DRIVER';
const ADAPTER_VARIABLE = 'BACKPROOF_SQLITE_ADAPTER';

/** Opens (creating it unless read-only) the database `file` with this process's driver. */
export function openSqlite(file: string, options: SqliteOpenOptions = {}): SqliteDatabase {
  const timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeout) || timeout < 0) {
    throw new RangeError(`SQLite busy timeout must be a whole number of milliseconds >= 0, got ${String(timeout)}`);
  }
  const driver = loadDriver();
  return driver.name === 'node:sqlite'
    ? openWithNodeSqlite(driver.module, file, options.readonly === true, timeout)
    : openWithBetterSqlite3(driver.module, file, options.readonly === true, timeout);
}

/** The driver this process uses (chosen on first use, then fixed). */
export function sqliteDriver(): SqliteDriverName {
  return loadDriver().name;
}

/**
 * What a child `node` needs to use this adapter the way this process does (the sqlite source's
 * snapshot runs in one): `env` names this module and the driver; a child script imports the module
 * from `process.env.BACKPROOF_SQLITE_ADAPTER`. When this module runs from TypeScript source (the
 * tests, under tsx), `execArgv` passes on the loader flags this process was started with.
 */
export function sqliteChildSetup(): { execArgv: string[]; env: Record<string, string> } {
  const url = import.meta.url;
  return {
    execArgv: /\.[cm]?ts$/.test(url) ? loaderFlags(process.execArgv) : [],
    env: { [ADAPTER_VARIABLE]: url, [DRIVER_VARIABLE]: sqliteDriver() },
  };
}

function loaderFlags(execArgv: readonly string[]): string[] {
  const flags: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i] ?? '';
    if (/^(--import|--require|-r|--loader|--experimental-loader)=/.test(arg)) flags.push(arg);
    else if (/^(--import|--require|-r|--loader|--experimental-loader)$/.test(arg)) {
      flags.push(arg, execArgv[i + 1] ?? '');
      i++;
    }
  }
  return flags;
}

// ---- choosing and loading the driver ----

type LoadedDriver =
  | { name: 'node:sqlite'; module: NodeSqliteModule }
  | { name: 'better-sqlite3'; module: typeof BetterSqlite3 };

let loaded: LoadedDriver | undefined;

function loadDriver(): LoadedDriver {
  loaded ??= chooseDriver();
  return loaded;
}

function chooseDriver(): LoadedDriver {
  const forced = process.env[DRIVER_VARIABLE];
  if (forced !== undefined && forced !== '' && forced !== 'node:sqlite' && forced !== 'better-sqlite3') {
    throw new Error(
      `${DRIVER_VARIABLE}=${forced} is not a SQLite driver: use node:sqlite or better-sqlite3, or unset it`,
    );
  }
  if (forced !== 'better-sqlite3') {
    const module = completeNodeSqlite();
    if (module) return { name: 'node:sqlite', module };
    if (forced === 'node:sqlite') {
      throw new Error(
        `${DRIVER_VARIABLE}=node:sqlite, but Node ${process.versions.node} has no node:sqlite with FTS5 and ` +
          'unknown named parameters (Node 22.16 or later has them): unset the variable to use better-sqlite3',
      );
    }
  }
  return { name: 'better-sqlite3', module: loadBetterSqlite3() };
}

/**
 * node:sqlite when this Node has it without a flag and it can stand in for better-sqlite3 (22.16+,
 * 24): statements that ignore named parameters they do not use (22.15), return arrays (for pluck)
 * and isTransaction (22.16), and FTS5, so that a `sqlite` source counts the rows of full-text tables
 * as before (22.15 lacks it). Older 22.x get better-sqlite3, which works there.
 */
function completeNodeSqlite(): NodeSqliteModule | undefined {
  const sqlite = loadNodeSqlite();
  if (!sqlite) return undefined;
  const statement = sqlite.StatementSync.prototype;
  if (
    typeof statement.setAllowUnknownNamedParameters !== 'function' ||
    typeof statement.setReturnArrays !== 'function'
  ) {
    return undefined;
  }
  const probe = new sqlite.DatabaseSync(':memory:');
  try {
    if (typeof probe.isTransaction !== 'boolean') return undefined; // an instance accessor, not on the prototype
    const fts5 = probe.prepare("SELECT sqlite_compileoption_used('ENABLE_FTS5') AS used").get();
    return fts5 && !Array.isArray(fts5) && fts5.used === 1 ? sqlite : undefined;
  } finally {
    probe.close();
  }
}

/** node:sqlite, without the ExperimentalWarning some versions print on load (and only that warning). */
function loadNodeSqlite(): NodeSqliteModule | undefined {
  if (typeof process.getBuiltinModule !== 'function') return undefined; // Node < 20.16
  const emitWarning = process.emitWarning;
  process.emitWarning = function (this: unknown, warning: string | Error, ...rest: unknown[]) {
    const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: unknown } | undefined)?.type;
    const message = typeof warning === 'string' ? warning : warning.message;
    if (type === 'ExperimentalWarning' && message.startsWith('SQLite is an experimental feature')) return;
    Reflect.apply(emitWarning, process, [warning, ...rest]);
  } as typeof process.emitWarning;
  try {
    return process.getBuiltinModule('node:sqlite') as NodeSqliteModule | undefined;
  } finally {
    process.emitWarning = emitWarning;
  }
}

function loadBetterSqlite3(): typeof BetterSqlite3 {
  try {
    return createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;
  } catch (error) {
    throw new Error(
      `Node ${process.versions.node} needs the better-sqlite3 package for SQLite (its node:sqlite is missing or incomplete), ` +
        `and it cannot be loaded: ${error instanceof Error ? error.message : String(error)}; reinstall backproof ` +
        '(npm ci) or run it on Node 22 or 24',
      { cause: error },
    );
  }
}

// ---- node:sqlite ----

/** The part of node:sqlite used here (the project's @types/node is Node 20's, without it). */
interface NodeSqliteModule {
  DatabaseSync: new (path: string, options?: Record<string, unknown>) => NodeSqliteDatabase;
  StatementSync: { prototype: Partial<NodeSqliteStatement> };
}
interface NodeSqliteDatabase {
  prepare(sql: string): NodeSqliteStatement;
  exec(sql: string): void;
  close(): void;
  readonly isTransaction: boolean;
}
type NodeSqliteRow = Record<string, unknown> | unknown[];
interface NodeSqliteStatement {
  run(...params: unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  get(...params: unknown[]): NodeSqliteRow | undefined;
  all(...params: unknown[]): NodeSqliteRow[];
  setAllowUnknownNamedParameters(enabled: boolean): void;
  setReturnArrays(enabled: boolean): void;
}

function openWithNodeSqlite(
  sqlite: NodeSqliteModule,
  file: string,
  readonly: boolean,
  timeout: number,
): SqliteDatabase {
  // better-sqlite3 is built with foreign keys on and without double-quoted string literals: the same.
  const options = { readOnly: readonly, enableForeignKeyConstraints: true, enableDoubleQuotedStringLiterals: false };
  const raw = translateErrors(() => new sqlite.DatabaseSync(file, options));
  let open = true;
  const checkOpen = (): void => {
    if (!open) throw new TypeError(closedMessage); // node:sqlite would say "statement has been finalized"
  };
  const exec = (sql: string): void => {
    checkOpen();
    translateErrors(() => raw.exec(sql));
  };
  const db: SqliteDatabase = {
    get open() {
      return open;
    },
    prepare: (sql) => {
      checkOpen();
      return nodeStatement(
        translateErrors(() => raw.prepare(sql)),
        checkOpen,
      );
    },
    exec,
    pragma(source, options = {}) {
      const statement = db.prepare(`PRAGMA ${source}`);
      return options.simple ? statement.pluck().get() : statement.all();
    },
    transaction: (fn) => transactionOf(fn, exec, () => raw.isTransaction),
    close() {
      if (!open) return;
      raw.close();
      open = false;
    },
  };
  try {
    exec(`PRAGMA busy_timeout = ${timeout}`); // what better-sqlite3's `timeout` does
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

/** better-sqlite3's words for using a closed connection. */
const closedMessage = 'The database connection is not open';

function nodeStatement(raw: NodeSqliteStatement, checkOpen: () => void): SqliteStatement {
  raw.setAllowUnknownNamedParameters(true); // as better-sqlite3: keys the statement does not use are ignored
  const shape = (row: NodeSqliteRow): unknown => {
    if (Array.isArray(row)) return asBuffer(row[0]); // plucked: rows come as arrays
    // A plain object: node:sqlite rows have a null prototype, which deepEqual and friends tell apart.
    const plain: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(row)) plain[key] = asBuffer(value);
    return plain;
  };
  const statement: SqliteStatement = {
    run: (...params) => {
      checkOpen();
      const result = translateErrors(() => raw.run(...params));
      return { changes: Number(result.changes), lastInsertRowid: Number(result.lastInsertRowid) };
    },
    get: (...params) => {
      checkOpen();
      const row = translateErrors(() => raw.get(...params));
      return row === undefined ? undefined : shape(row);
    },
    all: (...params) => {
      checkOpen();
      return translateErrors(() => raw.all(...params)).map(shape);
    },
    pluck(toggle = true) {
      raw.setReturnArrays(toggle); // the first column exactly, even when a column name looks like an index
      return statement;
    },
  };
  return statement;
}

/** A BLOB as better-sqlite3 returns it: a Buffer (over the same memory), not a bare Uint8Array. */
function asBuffer(value: unknown): unknown {
  if (!(value instanceof Uint8Array) || Buffer.isBuffer(value)) return value;
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/** better-sqlite3's transaction functions, for a driver without them. */
function transactionOf<A extends unknown[], R>(
  fn: (...args: A) => R,
  exec: (sql: string) => void,
  inTransaction: () => boolean,
): SqliteTransaction<A, R> {
  const runIn =
    (begin: string) =>
    (...args: A): R => {
      const nested = inTransaction();
      exec(nested ? 'SAVEPOINT backproof_nested' : begin);
      try {
        const result = fn(...args);
        if (typeof (result as { then?: unknown } | null)?.then === 'function') {
          throw new TypeError('a SQLite transaction function cannot return a promise: it must finish synchronously');
        }
        exec(nested ? 'RELEASE backproof_nested' : 'COMMIT');
        return result;
      } catch (error) {
        if (nested) {
          exec('ROLLBACK TO backproof_nested');
          exec('RELEASE backproof_nested');
        } else if (inTransaction()) {
          exec('ROLLBACK'); // SQLite may have rolled back already (e.g. a failed COMMIT)
        }
        throw error;
      }
    };
  const deferred = runIn('BEGIN');
  return Object.assign(deferred, {
    deferred,
    immediate: runIn('BEGIN IMMEDIATE'),
    exclusive: runIn('BEGIN EXCLUSIVE'),
  });
}

// ---- better-sqlite3 ----

function openWithBetterSqlite3(
  Database: typeof BetterSqlite3,
  file: string,
  readonly: boolean,
  timeout: number,
): SqliteDatabase {
  const raw = translateErrors(() => new Database(file, { readonly, fileMustExist: readonly, timeout }));
  raw.defaultSafeIntegers(true); // read INTEGERs as bigint, so numbers() can refuse what would round
  return {
    get open() {
      return raw.open;
    },
    prepare: (sql) => betterStatement(translateErrors(() => raw.prepare(sql))),
    exec: (sql) => {
      translateErrors(() => raw.exec(sql));
    },
    pragma: (source, options = {}) =>
      numbers(translateErrors(() => raw.pragma(source, { simple: options.simple === true }))),
    transaction: <A extends unknown[], R>(fn: (...args: A) => R): SqliteTransaction<A, R> => {
      const native = raw.transaction(fn);
      const wrap =
        (variant: (...args: A) => R) =>
        (...args: A): R =>
          translateErrors(() => variant(...args));
      return Object.assign(wrap(native), {
        deferred: wrap(native.deferred),
        immediate: wrap(native.immediate),
        exclusive: wrap(native.exclusive),
      });
    },
    close: () => {
      raw.close();
    },
  };
}

function betterStatement(raw: BetterSqlite3.Statement): SqliteStatement {
  const statement: SqliteStatement = {
    run: (...params) =>
      translateErrors(() => {
        const result = raw.run(...params);
        return { changes: result.changes, lastInsertRowid: toNumber(result.lastInsertRowid) };
      }),
    get: (...params) => numbers(translateErrors(() => raw.get(...params))),
    all: (...params) => numbers(translateErrors(() => raw.all(...params))) as unknown[],
    pluck(toggle = true) {
      raw.pluck(toggle);
      return statement;
    },
  };
  return statement;
}

/** A value, row or list of rows read with safe integers, with every bigint made a number. */
function numbers(value: unknown): unknown {
  if (typeof value === 'bigint') return toNumber(value);
  if (Array.isArray(value)) return value.map(numbers);
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value;
  const row: Record<string, unknown> = {};
  for (const [key, column] of Object.entries(value)) row[key] = typeof column === 'bigint' ? toNumber(column) : column;
  return row;
}

/** The same refusal node:sqlite makes for an integer a number cannot hold exactly. */
function toNumber(value: number | bigint): number {
  if (typeof value === 'number') return value;
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw Object.assign(new RangeError(`Value is too large to be represented as a JavaScript number: ${value}`), {
      code: 'ERR_OUT_OF_RANGE',
    });
  }
  return Number(value);
}

// ---- errors ----

/** Runs `fn`, turning either driver's SQLite error into a SqliteError; other errors pass unchanged. */
function translateErrors<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw asSqliteError(error);
  }
}

function asSqliteError(error: unknown): unknown {
  if (error instanceof SqliteError || !(error instanceof Error)) return error;
  const { code, errcode } = error as Error & { code?: unknown; errcode?: unknown };
  // node:sqlite: code ERR_SQLITE_ERROR and the numeric extended result code in errcode.
  if (code === 'ERR_SQLITE_ERROR' && typeof errcode === 'number') {
    return new SqliteError(error.message, resultCodeName(errcode), { cause: error });
  }
  // better-sqlite3: its own SqliteError, whose code is already the name.
  if (error.name === 'SqliteError' && typeof code === 'string') {
    return new SqliteError(error.message, code, { cause: error });
  }
  return error;
}

// The names of SQLite's result codes (sqlite.org/rescode.html): a primary code is the low byte; an
// extended code adds `<n> << 8`, listed here as the n-th suffix of its primary ('' where none).
// biome-ignore format: a table reads better in rows
const primaryNames: Readonly<Record<number, string>> = {
  0: 'OK', 1: 'ERROR', 2: 'INTERNAL', 3: 'PERM', 4: 'ABORT', 5: 'BUSY', 6: 'LOCKED', 7: 'NOMEM',
  8: 'READONLY', 9: 'INTERRUPT', 10: 'IOERR', 11: 'CORRUPT', 12: 'NOTFOUND', 13: 'FULL', 14: 'CANTOPEN',
  15: 'PROTOCOL', 16: 'EMPTY', 17: 'SCHEMA', 18: 'TOOBIG', 19: 'CONSTRAINT', 20: 'MISMATCH', 21: 'MISUSE',
  22: 'NOLFS', 23: 'AUTH', 24: 'FORMAT', 25: 'RANGE', 26: 'NOTADB', 27: 'NOTICE', 28: 'WARNING',
  100: 'ROW', 101: 'DONE',
};
// biome-ignore format: a table reads better in rows
const extendedSuffixes: Readonly<Record<string, readonly string[]>> = {
  OK: ['LOAD_PERMANENTLY', 'SYMLINK'],
  ERROR: ['MISSING_COLLSEQ', 'RETRY', 'SNAPSHOT', 'RESERVESIZE', 'KEY', 'UNABLE'],
  ABORT: ['', 'ROLLBACK'],
  BUSY: ['RECOVERY', 'SNAPSHOT', 'TIMEOUT'],
  LOCKED: ['SHAREDCACHE', 'VTAB'],
  READONLY: ['RECOVERY', 'CANTLOCK', 'ROLLBACK', 'DBMOVED', 'CANTINIT', 'DIRECTORY'],
  IOERR: [
    'READ', 'SHORT_READ', 'WRITE', 'FSYNC', 'DIR_FSYNC', 'TRUNCATE', 'FSTAT', 'UNLOCK', 'RDLOCK', 'DELETE',
    'BLOCKED', 'NOMEM', 'ACCESS', 'CHECKRESERVEDLOCK', 'LOCK', 'CLOSE', 'DIR_CLOSE', 'SHMOPEN', 'SHMSIZE',
    'SHMLOCK', 'SHMMAP', 'SEEK', 'DELETE_NOENT', 'MMAP', 'GETTEMPPATH', 'CONVPATH', 'VNODE', 'AUTH',
    'BEGIN_ATOMIC', 'COMMIT_ATOMIC', 'ROLLBACK_ATOMIC', 'DATA', 'CORRUPTFS', 'IN_PAGE', 'BADKEY', 'CODEC',
  ],
  CORRUPT: ['VTAB', 'SEQUENCE', 'INDEX'],
  CANTOPEN: ['NOTEMPDIR', 'ISDIR', 'FULLPATH', 'CONVPATH', 'DIRTYWAL', 'SYMLINK'],
  CONSTRAINT: [
    'CHECK', 'COMMITHOOK', 'FOREIGNKEY', 'FUNCTION', 'NOTNULL', 'PRIMARYKEY', 'TRIGGER', 'UNIQUE', 'VTAB',
    'ROWID', 'PINNED', 'DATATYPE',
  ],
  AUTH: ['USER'],
  NOTICE: ['RECOVER_WAL', 'RECOVER_ROLLBACK', 'RBU'],
  WARNING: ['AUTOINDEX'],
};

/** `SQLITE_<NAME>` of a result code, as better-sqlite3 names it; an unknown extension gets its primary's name. */
export function resultCodeName(code: number): string {
  const primary = primaryNames[code & 0xff];
  if (primary === undefined) return `UNKNOWN_SQLITE_ERROR_${code}`;
  const suffix = extendedSuffixes[primary]?.[(code >> 8) - 1];
  return suffix ? `SQLITE_${primary}_${suffix}` : `SQLITE_${primary}`;
}
