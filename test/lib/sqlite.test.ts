// The SQLite adapter against real database files, real child processes holding real locks, with
// whichever driver this Node gets (node:sqlite on 22.13+/24, better-sqlite3 on 20). On a Node where
// both drivers work (22), the whole file also runs again with the other one.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, afterEach, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  openSqlite,
  resultCodeName,
  type SqliteDatabase,
  SqliteError,
  sqliteChildSetup,
  sqliteDriver,
} from '../../src/lib/sqlite.js';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
/** Where node:sqlite is complete enough for the adapter (FTS5 and unknown named parameters; not checked on 23). */
const nodeSqliteUsable = major >= 24 || (major === 22 && minor >= 16);
/** better-sqlite3 12 aborts the process on GC from Node 24.19 (WiseLibs/better-sqlite3#1515). */
const betterSqlite3Works = major < 24 || (major === 24 && minor < 19);

let root = '';
let dir = 0;
const opened: SqliteDatabase[] = [];
const children: ChildProcess[] = [];

before(() => {
  root = mkdtempSync(join(tmpdir(), 'backproof-sqlite-adapter-'));
});
afterEach(async () => {
  for (const db of opened.splice(0)) db.close();
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  }
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A path for a database file in a new directory of its own. */
function newFile(name = 'test.db'): string {
  const path = join(root, `case-${++dir}`);
  mkdirSync(path);
  return join(path, name);
}

function open(file: string, options: Parameters<typeof openSqlite>[1] = {}): SqliteDatabase {
  const db = openSqlite(file, options);
  opened.push(db);
  return db;
}

function sqliteErrorOf(fn: () => unknown): SqliteError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof SqliteError, `expected a SqliteError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a SqliteError, but it worked');
}

/** A child `node` using the adapter as this process does, running one JSON command per stdin line. */
class SqlChild {
  readonly process: ChildProcess;
  private readonly lines: string[] = [];
  private readonly waiting: Array<(line: string | undefined) => void> = [];
  private stderr = '';

  constructor() {
    const setup = sqliteChildSetup();
    const script = `
      import { createInterface } from 'node:readline';
      const { openSqlite, sqliteDriver } = await import(process.env.BACKPROOF_SQLITE_ADAPTER);
      const answer = (value) => process.stdout.write(JSON.stringify(value) + '\\n');
      let db;
      answer({ driver: sqliteDriver(), pid: process.pid });
      createInterface({ input: process.stdin }).on('line', (line) => {
        const { op, file, timeout, sql } = JSON.parse(line);
        if (op === 'announce') answer({ starting: true });
        try {
          if (op === 'open') db = openSqlite(file, { timeout });
          else db.exec(sql);
          answer({ ok: true });
        } catch (error) {
          answer({ ok: false, code: error.code ?? null, message: String(error.message) });
        }
      });
    `;
    this.process = spawn(process.execPath, [...setup.execArgv, '--input-type=module', '-e', script], {
      env: { ...process.env, ...setup.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.push(this.process);
    this.process.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    const reader = createInterface({ input: this.process.stdout as NodeJS.ReadableStream });
    reader.on('line', (line) => {
      const waiter = this.waiting.shift();
      if (waiter) waiter(line);
      else this.lines.push(line);
    });
    reader.on('close', () => {
      for (const waiter of this.waiting.splice(0)) waiter(undefined);
    });
  }

  async next(): Promise<Record<string, unknown>> {
    const line = this.lines.shift() ?? (await new Promise<string | undefined>((resolve) => this.waiting.push(resolve)));
    if (line === undefined) throw new Error(`SQL child ended without answering; stderr:\n${this.stderr}`);
    return JSON.parse(line) as Record<string, unknown>;
  }

  send(command: Record<string, unknown>): void {
    this.process.stdin?.write(`${JSON.stringify(command)}\n`);
  }

  request(command: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.send(command);
    return this.next();
  }
}

/** A child holding `BEGIN EXCLUSIVE` on `file`. */
async function exclusiveHolder(file: string): Promise<SqlChild> {
  const holder = new SqlChild();
  await holder.next();
  assert.deepEqual(await holder.request({ op: 'open', file, timeout: 0 }), { ok: true });
  assert.deepEqual(await holder.request({ op: 'exec', sql: 'BEGIN EXCLUSIVE' }), { ok: true });
  return holder;
}

describe(`the driver (${sqliteDriver()} on Node ${process.versions.node})`, () => {
  it('is node:sqlite where it is complete enough (22.16+, 24), better-sqlite3 otherwise, unless forced', () => {
    const forced = process.env.BACKPROOF_SQLITE_DRIVER;
    assert.equal(sqliteDriver(), forced || (nodeSqliteUsable ? 'node:sqlite' : 'better-sqlite3'));
  });

  it('never loads the better-sqlite3 addon into a process that uses node:sqlite', (t) => {
    if (sqliteDriver() !== 'node:sqlite') return t.skip('this process uses better-sqlite3');
    const db = open(newFile());
    db.exec('CREATE TABLE t (x INTEGER) STRICT; INSERT INTO t VALUES (1)');
    assert.equal(db.prepare('SELECT x FROM t').pluck().get(), 1);
    assert.doesNotMatch(readFileSync('/proc/self/maps', 'utf8'), /better_sqlite3\.node/);
  });

  it('gives a child process the same driver, and hides only the SQLite ExperimentalWarning', async () => {
    const setup = sqliteChildSetup();
    const script = `
      const { openSqlite, sqliteDriver } = await import(process.env.BACKPROOF_SQLITE_ADAPTER);
      openSqlite(':memory:').close();
      process.emitWarning('a warning that must still show', 'ExperimentalWarning');
      process.stdout.write(sqliteDriver());
    `;
    const child = spawn(process.execPath, [...setup.execArgv, '--input-type=module', '-e', script], {
      env: { ...process.env, ...setup.env },
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, stderr);
    assert.equal(stdout, sqliteDriver());
    assert.doesNotMatch(stderr, /SQLite is an experimental feature/);
    assert.match(stderr, /ExperimentalWarning: a warning that must still show/);
  });

  it('refuses an unknown forced driver, and node:sqlite where Node lacks it, saying what to do', () => {
    const run = (driver: string) =>
      spawnSync(process.execPath, [...sqliteChildSetup().execArgv, '--input-type=module', '-e', ADAPTER_OPEN_SCRIPT], {
        env: { ...process.env, ...sqliteChildSetup().env, BACKPROOF_SQLITE_DRIVER: driver },
        encoding: 'utf8',
      });
    const bogus = run('sqlite3');
    assert.notEqual(bogus.status, 0);
    assert.match(
      bogus.stderr,
      /BACKPROOF_SQLITE_DRIVER=sqlite3 is not a SQLite driver: use node:sqlite or better-sqlite3/,
    );
    const forced = run('node:sqlite');
    if (nodeSqliteUsable) {
      assert.equal(forced.status, 0, forced.stderr);
      assert.equal(forced.stdout, 'node:sqlite');
    } else {
      assert.notEqual(forced.status, 0);
      assert.match(forced.stderr, /has no node:sqlite with FTS5 and unknown named parameters \(Node 22\.16 or later/);
    }
  });
});

const ADAPTER_OPEN_SCRIPT = `
  const { openSqlite, sqliteDriver } = await import(process.env.BACKPROOF_SQLITE_ADAPTER);
  openSqlite(':memory:').close();
  process.stdout.write(sqliteDriver());
`;

describe('statements', () => {
  it('binds @x, $x and :x from object keys without the prefix, positional values, and ignores unused keys', () => {
    const db = open(newFile());
    db.exec('CREATE TABLE t (a TEXT, b INTEGER, c TEXT, d BLOB) STRICT');
    const insert = db.prepare('INSERT INTO t (a, b, c, d) VALUES (@a, $b, :c, ?)');
    insert.run({ a: 'one', b: 1, c: 'x', unused: 'ignored' }, Buffer.from([0, 255]));
    db.prepare('INSERT INTO t VALUES (?, ?, ?, ?)').run('two', 2, null, null);
    assert.deepEqual(db.prepare('SELECT a, b, c, d FROM t ORDER BY b').all(), [
      { a: 'one', b: 1, c: 'x', d: Buffer.from([0, 255]) },
      { a: 'two', b: 2, c: null, d: null },
    ]);
  });

  it('returns plain objects for rows, undefined for no row, and reports changes and lastInsertRowid as numbers', () => {
    const db = open(newFile());
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT) STRICT');
    const first = db.prepare('INSERT INTO t (x) VALUES (?)').run('a');
    const second = db.prepare('INSERT INTO t (x) VALUES (?)').run('b');
    assert.deepEqual(
      [first, second],
      [
        { changes: 1, lastInsertRowid: 1 },
        { changes: 1, lastInsertRowid: 2 },
      ],
    );
    assert.deepEqual(db.prepare('UPDATE t SET x = x || ?').run('!'), { changes: 2, lastInsertRowid: 2 });
    const row = db.prepare('SELECT id, x FROM t WHERE id = ?').get(1);
    assert.equal(Object.getPrototypeOf(row), Object.prototype);
    assert.deepEqual(row, { id: 1, x: 'a!' });
    assert.equal(db.prepare('SELECT id FROM t WHERE id = ?').get(99), undefined);
    assert.deepEqual(db.prepare('INSERT INTO t (x) VALUES (?) RETURNING id').get('c'), { id: 3 });
  });

  it('plucks the first column, also when another column name looks like an index, and can stop plucking', () => {
    const db = open(newFile());
    const statement = db.prepare(`SELECT 'first' AS name, 'second' AS "0" UNION ALL SELECT 'third', 'fourth'`);
    assert.deepEqual(statement.pluck().all(), ['first', 'third']);
    assert.equal(statement.get(), 'first');
    assert.deepEqual(statement.pluck(false).get(), { name: 'first', 0: 'second' });
  });

  it('round-trips integers up to 2^53-1 exactly as INTEGER, and refuses to read a larger one rather than round it', () => {
    const db = open(newFile());
    db.exec('CREATE TABLE sizes (n INTEGER NOT NULL) STRICT');
    const values = [0, 1, 2 ** 31, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER];
    for (const n of values) db.prepare('INSERT INTO sizes VALUES (?)').run(n);
    db.prepare('INSERT INTO sizes VALUES (?)').run(2n ** 40n);
    assert.deepEqual(db.prepare('SELECT n FROM sizes ORDER BY rowid').pluck().all(), [...values, 2 ** 40]);
    assert.deepEqual(db.prepare('SELECT DISTINCT typeof(n) FROM sizes').pluck().all(), ['integer']);
    assert.equal(
      sqliteErrorOf(() => db.prepare('INSERT INTO sizes VALUES (?)').run(1.5)).code,
      'SQLITE_CONSTRAINT_DATATYPE',
    );

    db.exec('INSERT INTO sizes VALUES (9007199254740993)'); // 2^53 + 1
    const tooLarge = (fn: () => unknown) =>
      assert.throws(fn, (error: Error & { code?: unknown }) => {
        assert.ok(error instanceof RangeError, String(error));
        assert.equal(error.code, 'ERR_OUT_OF_RANGE');
        assert.match(error.message, /9007199254740993/);
        return true;
      });
    tooLarge(() => db.prepare('SELECT n FROM sizes WHERE n > ?').get(Number.MAX_SAFE_INTEGER));
    tooLarge(() => db.prepare('SELECT max(n) FROM sizes').pluck().get());
    tooLarge(() => db.prepare('SELECT n FROM sizes').all());
  });
});

describe('pragmas and the settings backproof relies on', () => {
  it('reads a pragma as rows or, with simple, as one value', () => {
    const db = open(newFile());
    db.exec('CREATE TABLE t (x)');
    assert.deepEqual(db.pragma('table_info(t)'), [
      { cid: 0, name: 'x', type: '', notnull: 0, dflt_value: null, pk: 0 },
    ]);
    assert.equal(db.pragma('user_version', { simple: true }), 0);
    assert.deepEqual(db.pragma('user_version = 7'), []);
    assert.equal(db.pragma('user_version', { simple: true }), 7);
  });

  it('sets WAL and keeps synchronous=FULL set after it; foreign keys are on, as in better-sqlite3', () => {
    const file = newFile();
    const db = open(file);
    assert.equal(db.pragma('journal_mode = WAL', { simple: true }), 'wal');
    db.pragma('synchronous = FULL');
    assert.equal(db.pragma('synchronous', { simple: true }), 2);
    assert.equal(db.pragma('foreign_keys', { simple: true }), 1);
    db.exec('CREATE TABLE t (x TEXT)');
    assert.ok(existsSync(`${file}-wal`));
    assert.equal(
      sqliteErrorOf(() => db.exec(`INSERT INTO t VALUES ("double quotes are identifiers")`)).code,
      'SQLITE_ERROR',
    );
  });

  it('waits 5000 ms for a lock by default, or the given timeout', () => {
    assert.equal(open(newFile()).pragma('busy_timeout', { simple: true }), 5000);
    assert.equal(open(newFile(), { timeout: 0 }).pragma('busy_timeout', { simple: true }), 0);
    assert.equal(open(newFile(), { timeout: 60000 }).pragma('busy_timeout', { simple: true }), 60000);
    for (const timeout of [-1, 1.5, Number.NaN]) {
      assert.throws(() => openSqlite(newFile(), { timeout }), /busy timeout must be a whole number of milliseconds/);
    }
  });
});

describe('errors', () => {
  it('names the extended result code as better-sqlite3 does, and keeps SQLite message', () => {
    const db = open(newFile());
    db.exec('CREATE TABLE parent (id INTEGER PRIMARY KEY); CREATE TABLE child (p INTEGER REFERENCES parent (id))');
    const foreignKey = sqliteErrorOf(() => db.prepare('INSERT INTO child VALUES (?)').run(1));
    assert.equal(foreignKey.code, 'SQLITE_CONSTRAINT_FOREIGNKEY');
    assert.equal(foreignKey.message, 'FOREIGN KEY constraint failed');
    assert.equal(foreignKey.name, 'SqliteError');
    const syntax = sqliteErrorOf(() => db.prepare('SELEKT 1'));
    assert.equal(syntax.code, 'SQLITE_ERROR');
    assert.match(syntax.message, /syntax error/);
    assert.equal(sqliteErrorOf(() => db.exec('INSERT INTO nowhere VALUES (1)')).code, 'SQLITE_ERROR');
  });

  it('maps result code numbers to names, an unknown extension to its primary name', () => {
    assert.equal(resultCodeName(5), 'SQLITE_BUSY');
    assert.equal(resultCodeName(517), 'SQLITE_BUSY_SNAPSHOT');
    assert.equal(resultCodeName(787), 'SQLITE_CONSTRAINT_FOREIGNKEY');
    assert.equal(resultCodeName(3091), 'SQLITE_CONSTRAINT_DATATYPE');
    assert.equal(resultCodeName(516), 'SQLITE_ABORT_ROLLBACK');
    assert.equal(resultCodeName(10 | (99 << 8)), 'SQLITE_IOERR');
    assert.equal(resultCodeName(77), 'UNKNOWN_SQLITE_ERROR_77');
  });

  it('refuses a file that is not a database with SQLITE_NOTADB, and a missing one read-only without creating it', () => {
    const garbage = newFile('garbage.db');
    writeFileSync(garbage, 'this is not a SQLite database, and it is long enough to matter'.repeat(100));
    const db = open(garbage);
    assert.equal(sqliteErrorOf(() => db.pragma('schema_version')).code, 'SQLITE_NOTADB');

    const missing = join(root, 'missing.db');
    assert.equal(sqliteErrorOf(() => openSqlite(missing, { readonly: true })).code, 'SQLITE_CANTOPEN');
    assert.equal(existsSync(missing), false);
  });

  it('refuses writes through a read-only connection', () => {
    const file = newFile();
    open(file).exec('CREATE TABLE t (x)');
    const reader = open(file, { readonly: true });
    assert.deepEqual(reader.prepare('SELECT count(*) AS n FROM t').get(), { n: 0 });
    assert.match(sqliteErrorOf(() => reader.exec('INSERT INTO t VALUES (1)')).code, /^SQLITE_READONLY/);
  });

  it('closes idempotently and refuses use after close', () => {
    const db = openSqlite(newFile());
    const statement = db.prepare('SELECT 1');
    assert.equal(db.open, true);
    db.close();
    db.close();
    assert.equal(db.open, false);
    for (const use of [() => db.prepare('SELECT 1'), () => db.exec('SELECT 1'), () => statement.get()]) {
      assert.throws(use, { name: 'TypeError', message: 'The database connection is not open' });
    }
  });
});

describe('transactions', () => {
  function counter(): { file: string; db: SqliteDatabase; count: () => unknown; insert: (x: number) => void } {
    const file = newFile();
    const db = open(file);
    db.exec('CREATE TABLE t (x INTEGER NOT NULL) STRICT');
    const insert = db.prepare('INSERT INTO t VALUES (?)');
    return {
      file,
      db,
      count: () => db.prepare('SELECT count(*) FROM t').pluck().get(),
      insert: (x) => {
        insert.run(x);
      },
    };
  }

  it('commits when the function returns, passing arguments and the result through', () => {
    const { db, count, insert } = counter();
    const add = db.transaction((a: number, b: number) => {
      insert(a);
      insert(b);
      return a + b;
    });
    assert.equal(add(1, 2), 3);
    assert.equal(add.immediate(3, 4), 7);
    assert.equal(add.exclusive(5, 6), 11);
    assert.equal(add.deferred(7, 8), 15);
    assert.equal(count(), 8);
  });

  it('rolls back when the function throws, and rethrows that very error', () => {
    const { db, count, insert } = counter();
    const failure = new Error('changed my mind');
    const fail = db.transaction(() => {
      insert(1);
      throw failure;
    });
    assert.throws(
      () => fail(),
      (error) => error === failure,
    );
    assert.equal(count(), 0);
    const constraint = db.transaction(() => {
      insert(1);
      db.prepare('INSERT INTO t VALUES (NULL)').run();
    });
    assert.equal(sqliteErrorOf(() => constraint.immediate()).code, 'SQLITE_CONSTRAINT_NOTNULL');
    assert.equal(count(), 0);
    insert(2); // the connection is usable again, outside any transaction
    assert.equal(count(), 1);
  });

  it('nests as a savepoint: an inner failure undoes only the inner part', () => {
    const { db, count, insert } = counter();
    const inner = db.transaction(() => {
      insert(2);
      throw new Error('inner');
    });
    const outer = db.transaction(() => {
      insert(1);
      assert.throws(() => inner(), /inner/);
      insert(3);
    });
    outer();
    assert.deepEqual(db.prepare('SELECT x FROM t ORDER BY x').pluck().all(), [1, 3]);
    assert.equal(count(), 2);
  });

  it('refuses a function that returns a promise, and rolls it back', () => {
    const { db, count, insert } = counter();
    const asyncWork = db.transaction(() => {
      insert(1);
      return Promise.resolve();
    });
    assert.throws(() => asyncWork(), /promise/);
    assert.equal(count(), 0);
  });

  it('immediate takes the write lock at BEGIN: another connection cannot write meanwhile', () => {
    const { file, db, insert } = counter();
    const other = open(file, { timeout: 0 });
    const write = db.transaction(() => {
      insert(1);
      return sqliteErrorOf(() => other.exec('INSERT INTO t VALUES (2)')).code;
    });
    assert.equal(write.immediate(), 'SQLITE_BUSY');
    assert.deepEqual(other.prepare('SELECT x FROM t').pluck().all(), [1]);
  });
});

describe('locks, as lib/lock.ts uses them', () => {
  it('refuses BEGIN EXCLUSIVE to a second connection in the same process; closing a probe keeps the lock', async () => {
    const file = newFile('job.lock');
    const holder = open(file, { timeout: 0 });
    holder.pragma('journal_mode = MEMORY');
    holder.exec('BEGIN EXCLUSIVE');
    const second = open(file, { timeout: 0 });
    assert.equal(sqliteErrorOf(() => second.exec('BEGIN EXCLUSIVE')).code, 'SQLITE_BUSY');
    const probe = openSqlite(file, { readonly: true, timeout: 0 });
    assert.equal(sqliteErrorOf(() => probe.pragma('schema_version')).code, 'SQLITE_BUSY');
    probe.close(); // SQLite defers closing the descriptor, so this process's lock stays

    const child = new SqlChild();
    await child.next();
    assert.deepEqual(await child.request({ op: 'open', file, timeout: 0 }), { ok: true });
    const refused = await child.request({ op: 'exec', sql: 'BEGIN EXCLUSIVE' });
    assert.equal(refused.code, 'SQLITE_BUSY');
    holder.exec('COMMIT');
    assert.deepEqual(await child.request({ op: 'exec', sql: 'BEGIN EXCLUSIVE' }), { ok: true });
  });

  it('frees the lock of a holder killed with SIGKILL', async () => {
    const file = newFile('job.lock');
    const holder = await exclusiveHolder(file);
    const db = open(file, { timeout: 0 });
    assert.equal(sqliteErrorOf(() => db.exec('BEGIN EXCLUSIVE')).code, 'SQLITE_BUSY');
    holder.process.kill('SIGKILL');
    const [, signal] = await once(holder.process, 'exit');
    assert.equal(signal, 'SIGKILL');
    db.exec('BEGIN EXCLUSIVE');
    db.exec('COMMIT');
  });

  it('with a busy timeout, waits for a holder to go instead of failing; without one, fails at once', async () => {
    const file = newFile('job.lock');
    const holder = await exclusiveHolder(file);
    const impatient = new SqlChild();
    const patient = new SqlChild();
    await Promise.all([impatient.next(), patient.next()]);
    assert.deepEqual(await impatient.request({ op: 'open', file, timeout: 0 }), { ok: true });
    assert.deepEqual(await patient.request({ op: 'open', file, timeout: 60000 }), { ok: true });
    assert.equal((await impatient.request({ op: 'exec', sql: 'BEGIN EXCLUSIVE' })).code, 'SQLITE_BUSY');

    patient.send({ op: 'announce', sql: 'BEGIN EXCLUSIVE' });
    assert.deepEqual(await patient.next(), { starting: true }); // it is now waiting inside SQLite
    holder.process.kill('SIGKILL');
    assert.deepEqual(await patient.next(), { ok: true });
    assert.equal((await impatient.request({ op: 'exec', sql: 'BEGIN EXCLUSIVE' })).code, 'SQLITE_BUSY');
  });

  it('lets a reader read a WAL database while another process holds a write transaction', async () => {
    const file = newFile();
    const db = open(file, { timeout: 0 });
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)');
    const writer = new SqlChild();
    await writer.next();
    assert.deepEqual(await writer.request({ op: 'open', file, timeout: 0 }), { ok: true });
    assert.deepEqual(await writer.request({ op: 'exec', sql: 'BEGIN IMMEDIATE; INSERT INTO t VALUES (2)' }), {
      ok: true,
    });
    const reader = open(file, { readonly: true, timeout: 0 });
    assert.deepEqual(reader.prepare('SELECT x FROM t').pluck().all(), [1]);
    assert.equal(sqliteErrorOf(() => db.exec('INSERT INTO t VALUES (3)')).code, 'SQLITE_BUSY');
  });

  it('copies a live database with VACUUM INTO from a read-only connection', () => {
    const file = newFile();
    const db = open(file);
    db.exec("CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('kept')");
    const copy = join(root, `copy-${dir}.db`);
    open(file, { readonly: true }).prepare('VACUUM INTO ?').run(copy);
    const copied = open(copy, { readonly: true });
    assert.deepEqual(copied.pragma('quick_check'), [{ quick_check: 'ok' }]);
    assert.deepEqual(copied.prepare('SELECT x FROM t').pluck().all(), ['kept']);
  });
});

describe('the other driver', () => {
  const other = sqliteDriver() === 'node:sqlite' ? 'better-sqlite3' : 'node:sqlite';
  const usable = other === 'node:sqlite' ? nodeSqliteUsable : betterSqlite3Works;
  const nested = process.env.BACKPROOF_SQLITE_TEST_OTHER === '1';
  const skip = nested
    ? 'already the run with the other driver'
    : usable
      ? false
      : `${other} does not work on Node ${process.versions.node}`;

  it(`passes this whole file too (${other})`, { skip }, () => {
    const env: NodeJS.ProcessEnv = { ...process.env, BACKPROOF_SQLITE_DRIVER: other, BACKPROOF_SQLITE_TEST_OTHER: '1' };
    delete env.NODE_TEST_CONTEXT; // a test file of its own, not a subtest of this run
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--test', '--test-reporter=spec', fileURLToPath(import.meta.url)],
      {
        env,
        encoding: 'utf8',
      },
    );
    assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, new RegExp(`the driver \\(${other} on Node`));
    assert.match(run.stdout, /^ℹ fail 0$/m);
  });
});
