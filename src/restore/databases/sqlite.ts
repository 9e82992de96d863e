// Checks a restored sqlite component (the object is a SQLite database file, a VACUUM INTO copy):
// PRAGMA integrity_check, rows per table keyed like the source's facts (`main.<table>`, see
// src/sources/sqlite.ts), and optionally one scalar query for drill assertions.
//
// The file is opened read-only through the SQLite adapter (src/lib/sqlite.ts: node:sqlite or
// better-sqlite3, as the parent chose) in a child Node process, as the source does: a
// check of a big file takes minutes in a synchronous native call, which only a child can abandon
// at once on abort, and a crash in native code cannot take the run down with it.
import { runCapture, toCommandError } from '../../lib/exec.js';
import { sqliteChildSetup } from '../../lib/sqlite.js';
import { DatabaseError } from './types.js';

export interface SqliteFileCheck {
  /** `3.53.2`. */
  sqliteVersion: string;
  /** `main.<table>` → rows, every table (empty ones with 0), as the source's facts name them. */
  tables: Record<string, number>;
  /** Tables that could not be counted (virtual tables whose module is missing). */
  warnings: string[];
  /** The first column of the first row of `scalarSql` as text (blobs as hex), null for NULL or no row; only when asked. */
  scalar?: string | null;
}

type Reply =
  | {
      ok: true;
      version: string;
      integrity: string[];
      tables: Record<string, number>;
      warnings: string[];
      scalar?: string | null;
    }
  | { ok: false; step: 'open' | 'check' | 'query'; code: string | null; message: string };

/**
 * Opens `file` read-only and checks it: PRAGMA integrity_check must say ok. With `scalarSql`, also
 * runs that query (read-only: anything that writes fails). Throws a DatabaseError naming the file
 * when it is missing, not a database, corrupt, or the query fails.
 */
export async function checkSqliteFile(file: string, signal: AbortSignal, scalarSql?: string): Promise<SqliteFileCheck> {
  const where = `sqlite ${file}`;
  const adapter = sqliteChildSetup();
  const result = await runCapture(process.execPath, [...adapter.execArgv, '--input-type=module', '-e', CHECK_SCRIPT], {
    signal,
    maxOutputBytes: 64 * 1024 * 1024,
    killGraceMs: 1000,
    env: {
      ...adapter.env,
      BACKPROOF_SQLITE_FILE: file,
      ...(scalarSql === undefined ? {} : { BACKPROOF_SQLITE_SQL: scalarSql }),
    },
  });
  signal.throwIfAborted();
  let reply: Reply | undefined;
  try {
    reply = JSON.parse(result.stdout) as Reply;
  } catch {
    reply = undefined;
  }
  if (!reply) {
    throw new DatabaseError(where, 'the check process failed before it could report', {
      cause: toCommandError('sqlite check', result),
    });
  }
  if (!reply.ok) throw new DatabaseError(where, describeFailure(reply, scalarSql));
  if (reply.integrity.length !== 1 || reply.integrity[0] !== 'ok') {
    const shown = reply.integrity.slice(0, 5).join('; ');
    const more = reply.integrity.length > 5 ? ` (and ${reply.integrity.length - 5} more)` : '';
    throw new DatabaseError(where, `PRAGMA integrity_check found problems: ${shown}${more}; the file is damaged`);
  }
  return {
    sqliteVersion: reply.version,
    tables: reply.tables,
    warnings: reply.warnings,
    ...(scalarSql === undefined ? {} : { scalar: reply.scalar ?? null }),
  };
}

/** Runs one query on `file` (read-only) and returns its first value; see {@link checkSqliteFile}. */
export async function querySqliteScalar(file: string, sql: string, signal: AbortSignal): Promise<string | null> {
  return (await checkSqliteFile(file, signal, sql)).scalar ?? null;
}

function describeFailure(reply: Extract<Reply, { ok: false }>, sql: string | undefined): string {
  const { code, message } = reply;
  if (reply.step === 'query') return `the query ${JSON.stringify(sql)} failed: ${message}${code ? ` (${code})` : ''}`;
  switch (code) {
    case 'SQLITE_CANTOPEN':
      return `cannot open the file (SQLite says: ${message}); does it exist, and may this user read it?`;
    case 'SQLITE_NOTADB':
      return `the file is not a SQLite database (SQLite says: ${message})`;
    case 'SQLITE_CORRUPT':
      return `the file is corrupt (SQLite says: ${message})`;
    default:
      return `checking the file failed: ${message}${code ? ` (${code})` : ''}`;
  }
}

// Runs in a child `node --input-type=module -e`. Reads its inputs from the environment and answers
// with one JSON document on stdout; SQLite errors are answered, not thrown, so the parent can
// explain them.
const CHECK_SCRIPT = String.raw`
import fs from 'node:fs';
const { openSqlite } = await import(process.env.BACKPROOF_SQLITE_ADAPTER);
const file = process.env.BACKPROOF_SQLITE_FILE;
const sql = process.env.BACKPROOF_SQLITE_SQL;
const reply = (value) => process.stdout.write(JSON.stringify(value));
const failure = (step, error) => ({ ok: false, step, code: typeof error.code === 'string' ? error.code : null, message: String(error.message) });
// Numbers as plain decimals: never an exponent.
const text = (value) => {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') {
    return Number.isInteger(value) && Math.abs(value) < 1e21
      ? String(value)
      : value.toLocaleString('en-US', { useGrouping: false, maximumSignificantDigits: 17, maximumFractionDigits: 100 });
  }
  if (Buffer.isBuffer(value)) return value.toString('hex');
  return String(value);
};
let db;
let step = 'open';
try {
  if (!fs.statSync(file).isFile()) throw Object.assign(new Error(file + ' is not a regular file'), { code: 'SQLITE_CANTOPEN' });
  db = openSqlite(file, { readonly: true });
  step = 'check';
  const integrity = db.pragma('integrity_check').map((row) => String(row.integrity_check));
  const schema = db
    .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
    .all();
  const tables = {};
  const warnings = [];
  if (integrity.length === 1 && integrity[0] === 'ok') {
    for (const { name, sql: definition } of schema) {
      const quoted = '"' + name.replaceAll('"', '""') + '"';
      try {
        tables['main.' + name] = Number(db.prepare('SELECT count(*) FROM main.' + quoted).pluck().get());
      } catch (error) {
        // A virtual table whose module is not compiled in cannot be read (the source skips it too).
        if (!/^\s*CREATE\s+VIRTUAL\s+TABLE/i.test(definition ?? '')) throw error;
        warnings.push('rows of virtual table main.' + name + ' not counted: ' + error.message);
      }
    }
  }
  const version = db.prepare('SELECT sqlite_version()').pluck().get();
  const answer = { ok: true, version, integrity, tables, warnings };
  if (sql !== undefined) {
    step = 'query';
    const row = db.prepare(sql).get();
    if (row !== undefined && (row === null || typeof row !== 'object')) {
      throw new Error('it returns no rows; give a query such as SELECT count(*) FROM users');
    }
    answer.scalar = row === undefined ? null : text(Object.values(row)[0]);
  }
  reply(answer);
} catch (error) {
  reply(error && error.code === 'ENOENT' ? failure('open', Object.assign(error, { code: 'SQLITE_CANTOPEN' })) : failure(step, error));
  process.exitCode = 1;
} finally {
  if (db) db.close();
}
`;
