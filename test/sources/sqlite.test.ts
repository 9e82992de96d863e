import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SourceError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/log.js';
import { openSqlite, sqliteChildSetup } from '../../src/lib/sqlite.js';
import { createSqliteSource } from '../../src/sources/sqlite.js';
import type { ComponentFacts, ComponentStream, Source, SourceContext } from '../../src/sources/types.js';

/** Rows per writer transaction: every table of a consistent copy holds a multiple of this. */
const N = 37;

let root = '';
before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'backproof-sqlite-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let dir = '';
let scratchDir = '';
const children: ChildProcess[] = [];
beforeEach(async () => {
  dir = await mkdtemp(path.join(root, 'case-'));
  scratchDir = path.join(dir, 'scratch');
  await mkdir(scratchDir);
});
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  }
});

function context(signal: AbortSignal = new AbortController().signal): SourceContext {
  return { signal, log: silentLogger, scratchDir };
}

async function onlyComponent(source: Source, ctx: SourceContext): Promise<ComponentStream> {
  const components: ComponentStream[] = [];
  for await (const component of source.components(ctx)) components.push(component);
  assert.equal(components.length, 1);
  return components[0] as ComponentStream;
}

/** Runs the source like the core does: data to a file, then the facts. */
async function backUp(source: Source, ctx = context()): Promise<{ file: string; facts: ComponentFacts }> {
  const component = await onlyComponent(source, ctx);
  assert.equal(component.kind, 'sqlite');
  assert.equal(component.extension, 'sqlite');
  const file = path.join(dir, `${component.name}.backup.sqlite`);
  await pipeline(component.data, createWriteStream(file));
  return { file, facts: await component.facts };
}

function sqlite3(file: string, sql: string): string {
  return execFileSync('sqlite3', ['-batch', file, sql], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
}

function createDatabase(file: string, journalMode: 'wal' | 'delete', rowsPerTable: number): void {
  const db = openSqlite(file);
  db.pragma(`journal_mode = ${journalMode}`);
  db.pragma('synchronous = off'); // only to build the fixture fast
  db.exec(`
    CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, customer TEXT NOT NULL, note TEXT);
    CREATE TABLE order_lines (order_id INTEGER NOT NULL, sku TEXT NOT NULL, quantity INTEGER NOT NULL);
    CREATE INDEX order_lines_by_order ON order_lines(order_id);
    CREATE TABLE "empty table" (x);
  `);
  const insertOrder = db.prepare('INSERT INTO orders (customer, note) VALUES (?, ?)');
  const insertLine = db.prepare('INSERT INTO order_lines VALUES (?, ?, ?)');
  const fill = db.transaction((count: number) => {
    for (let i = 0; i < count; i++) {
      const id = insertOrder.run(`customer ${i}`, 'x'.repeat(200)).lastInsertRowid;
      insertLine.run(id, `sku-${i}`, i % 7);
    }
  });
  for (let done = 0; done < rowsPerTable; done += N) fill(N);
  db.close();
}

/** Starts a process that commits transactions of N rows into both tables until killed; resolves once it has committed. */
async function startWriter(file: string): Promise<ChildProcess> {
  const script = `
    const { openSqlite } = await import(process.env.BACKPROOF_SQLITE_ADAPTER);
    const db = openSqlite(${JSON.stringify(file)}, { timeout: 60000 });
    const insertOrder = db.prepare('INSERT INTO orders (customer, note) VALUES (?, ?)');
    const insertLine = db.prepare('INSERT INTO order_lines VALUES (?, ?, ?)');
    const commit = db.transaction(() => {
      for (let i = 0; i < ${N}; i++) {
        const id = insertOrder.run('live', 'y'.repeat(200)).lastInsertRowid;
        insertLine.run(id, 'live', 1);
      }
    });
    for (let i = 0; ; i++) {
      commit.immediate();
      if (i === 0) process.stdout.write('committing\\n');
    }
  `;
  const writer = spawnWithAdapter(script);
  children.push(writer);
  const [chunk] = (await once(writer.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'committing\n');
  return writer;
}

/** A child `node` running the ES module `script`, which imports this process's SQLite adapter from BACKPROOF_SQLITE_ADAPTER. */
function spawnWithAdapter(script: string): ChildProcess {
  const adapter = sqliteChildSetup();
  return spawn(process.execPath, [...adapter.execArgv, '--input-type=module', '-e', script], {
    env: { ...process.env, ...adapter.env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

/** A script that holds an exclusive lock on `file` until it is killed. */
function exclusiveHolderScript(file: string): string {
  return `const { openSqlite } = await import(process.env.BACKPROOF_SQLITE_ADAPTER);
    const db = openSqlite(${JSON.stringify(file)});
    db.exec('BEGIN EXCLUSIVE'); process.stdout.write('locked\\n'); setInterval(() => {}, 1000);`;
}

function countRows(file: string, table: string): number {
  const db = openSqlite(file, { readonly: true, timeout: 60000 });
  try {
    return db.prepare(`SELECT count(*) FROM "${table}"`).pluck().get() as number;
  } finally {
    db.close();
  }
}

/** Node children of this process running the snapshot script. */
function snapshotChildren(): number[] {
  const pids: number[] = [];
  for (const task of readdirSync(`/proc/${process.pid}/task`)) {
    const list = readFileSync(`/proc/${process.pid}/task/${task}/children`, 'utf8').trim();
    for (const pid of list ? list.split(' ').map(Number) : []) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('VACUUM INTO')) pids.push(pid);
      } catch {
        // exited meanwhile
      }
    }
  }
  return pids;
}

for (const journalMode of ['wal', 'delete'] as const) {
  describe(`a live database in ${journalMode} mode with a concurrent writer`, () => {
    it('gives one consistent snapshot: every transaction entirely in or out, counts as reported', async () => {
      const file = path.join(dir, 'app.sqlite');
      createDatabase(file, journalMode, 20 * N * 100);
      const before = countRows(file, 'orders');
      const writer = await startWriter(file);

      const { file: copy, facts } = await backUp(createSqliteSource({ name: 'app', path: file }));

      const after = countRows(file, 'orders');
      writer.kill('SIGKILL');
      assert.equal(sqlite3(copy, 'PRAGMA quick_check;'), 'ok\n');
      const orders = Number(sqlite3(copy, 'SELECT count(*) FROM orders;'));
      const lines = Number(sqlite3(copy, 'SELECT count(*) FROM order_lines;'));
      assert.equal(orders % N, 0, `orders ${orders} is not a multiple of ${N}`);
      assert.equal(lines, orders, 'both tables of every transaction are in the copy');
      assert.ok(orders >= before, 'the copy holds every transaction committed before it started');
      assert.ok(after > orders, 'the writer kept committing around the copy');
      assert.deepEqual(facts.tables, { 'main.empty table': 0, 'main.order_lines': lines, 'main.orders': orders });
      assert.match(facts.dumpTool ?? '', /^SQLite 3\.\d+\.\d+ VACUUM INTO$/);
      assert.deepEqual(facts.warnings, []);
      assert.deepEqual(await readdir(scratchDir), [], 'the scratch copy is deleted');
    });
  });
}

describe('a quiet database', () => {
  it('round trip: the dump of the copy equals the dump of the original', async () => {
    const file = path.join(dir, 'shop.db');
    const db = openSqlite(file);
    db.pragma('journal_mode = wal');
    db.exec(`
      CREATE TABLE people (name TEXT, photo BLOB, born REAL);  -- no INTEGER PRIMARY KEY: VACUUM may renumber rowids
      CREATE TABLE tags (id INTEGER PRIMARY KEY, label TEXT UNIQUE) WITHOUT ROWID;
      CREATE VIEW adults AS SELECT name FROM people WHERE born < 2000;
      CREATE TRIGGER people_tag AFTER INSERT ON people BEGIN INSERT OR IGNORE INTO tags VALUES (length(NEW.name), NEW.name); END;
      PRAGMA user_version = 42;
    `);
    const insert = db.prepare('INSERT INTO people VALUES (?, ?, ?)');
    for (let i = 0; i < 500; i++)
      insert.run(`Zoë ${i} "quoted" 'single'`, Buffer.from([i % 256, 0, 255]), 1950 + (i % 70));
    db.exec('DELETE FROM people WHERE rowid % 3 = 0');
    db.close();

    const { file: copy, facts } = await backUp(createSqliteSource({ name: 'shop', path: file }));

    assert.equal(sqlite3(copy, '.dump'), sqlite3(file, '.dump'));
    assert.equal(sqlite3(copy, 'PRAGMA user_version;'), '42\n');
    assert.deepEqual(facts.tables, {
      'main.people': 334,
      'main.tags': Number(sqlite3(file, 'SELECT count(*) FROM tags;')),
    });
  });

  it('full-text tables: same content (VACUUM lists virtual tables last in the schema), shadow tables counted', async () => {
    const file = path.join(dir, 'search.db');
    const db = openSqlite(file);
    db.exec(`
      CREATE VIRTUAL TABLE notes USING fts5(body);
      INSERT INTO notes VALUES ('déjà vu'), ('second note');
      CREATE TABLE after_notes (x);
    `);
    db.close();
    const { file: copy, facts } = await backUp(createSqliteSource({ name: 'search', path: file }));
    const sortedDump = (f: string) => sqlite3(f, '.dump').split('\n').sort();
    assert.deepEqual(sortedDump(copy), sortedDump(file));
    assert.equal(sqlite3(copy, "SELECT count(*) FROM notes WHERE notes MATCH 'deja OR vu';"), '1\n');
    assert.equal(facts.tables?.['main.notes'], 2);
    assert.equal(facts.tables?.['main.after_notes'], 0);
    assert.ok('main.notes_data' in (facts.tables ?? {}), 'FTS shadow tables are listed too');
    assert.ok(!Object.keys(facts.tables ?? {}).some((name) => name.startsWith('main.sqlite_')));
  });

  it('estimates the raw size as the file plus its write-ahead log', async () => {
    const file = path.join(dir, 'est.db');
    const db = openSqlite(file);
    db.pragma('journal_mode = wal');
    db.pragma('wal_autocheckpoint = 0');
    db.exec(
      'CREATE TABLE t (x); INSERT INTO t SELECT randomblob(1000) FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 500) SELECT i FROM c);',
    );
    try {
      const expected = (await stat(file)).size + (await stat(`${file}-wal`)).size;
      assert.ok((await stat(`${file}-wal`)).size > 0);
      assert.equal(await createSqliteSource({ name: 'est', path: file }).estimateRawBytes(context()), expected);
    } finally {
      db.close();
    }
  });

  it('a copy not read to the end fails the component and is deleted', async () => {
    const file = path.join(dir, 'app.sqlite');
    createDatabase(file, 'wal', 10 * N);
    const component = await onlyComponent(createSqliteSource({ name: 'app', path: file }), context());
    component.data.destroy();
    await assert.rejects(component.facts, /not read to the end/);
    assert.deepEqual(await readdir(scratchDir), []);
  });
});

describe('abort', () => {
  it('while the snapshot waits for a lock: stops the snapshot process and leaves no copy', async () => {
    const file = path.join(dir, 'locked.db');
    createDatabase(file, 'delete', N);
    // A process holding an exclusive lock: the read transaction of VACUUM INTO has to wait.
    const holder = spawnWithAdapter(exclusiveHolderScript(file));
    children.push(holder);
    await once(holder.stdout as NodeJS.ReadableStream, 'data');

    const controller = new AbortController();
    const source = createSqliteSource({ name: 'locked', path: file });
    const iteration = onlyComponent(source, context(controller.signal));
    let snapshot: number | undefined;
    for (let i = 0; i < 400 && snapshot === undefined; i++) {
      snapshot = snapshotChildren()[0];
      if (snapshot === undefined) await sleep(10);
    }
    assert.ok(snapshot !== undefined, 'the snapshot process started');
    controller.abort(new Error('interrupted by SIGTERM'));
    await assert.rejects(iteration, /interrupted by SIGTERM/);
    assert.deepEqual(snapshotChildren(), []);
    assert.deepEqual(await readdir(scratchDir), []);
  });

  it('while the copy streams: the data stream and the facts fail with the reason, the copy is deleted', async () => {
    const file = path.join(dir, 'app.sqlite');
    createDatabase(file, 'wal', 100 * N);
    const controller = new AbortController();
    const component = await onlyComponent(createSqliteSource({ name: 'app', path: file }), context(controller.signal));
    const [first] = (await once(component.data, 'data')) as [Buffer];
    assert.ok(first.length > 0);
    component.data.pause();
    controller.abort(new Error('stall: no bytes moved for 10m'));
    await assert.rejects(component.facts, /stall: no bytes moved/);
    assert.deepEqual(await readdir(scratchDir), []);
  });
});

describe('a database that stays locked', () => {
  it('fails the component after busyTimeout with a clear message', async () => {
    const file = path.join(dir, 'busy.db');
    createDatabase(file, 'delete', N);
    const holder = spawnWithAdapter(exclusiveHolderScript(file));
    children.push(holder);
    await once(holder.stdout as NodeJS.ReadableStream, 'data');
    const component = await onlyComponent(
      createSqliteSource({ name: 'busy', path: file, busyTimeout: 200 }),
      context(),
    );
    await assert.rejects(component.facts, (error: unknown) => {
      assert.ok(error instanceof SourceError);
      assert.match(error.message, /^source busy: .*busy\.db stayed locked by another process for longer than 200 ms/);
      return true;
    });
    await assert.rejects(pipeline(component.data, createWriteStream(path.join(dir, 'never'))), SourceError);
  });
});

describe('a missing or wrong file', () => {
  it('missing: a fatal preflight finding, a failed component, an estimate of 0', async () => {
    const file = path.join(dir, 'nope', 'app.sqlite');
    const source = createSqliteSource({ name: 'app', path: file });
    const findings = await source.check(context());
    assert.equal(findings.length, 1);
    assert.equal(findings[0]?.fatal, true);
    assert.equal(findings[0]?.message, `source app: database file ${file} does not exist; check the source's path`);
    assert.equal(await source.estimateRawBytes(context()), 0);

    const component = await onlyComponent(source, context());
    await assert.rejects(
      component.facts,
      (error: unknown) => error instanceof SourceError && /does not exist/.test(error.message),
    );
    await assert.rejects(pipeline(component.data, createWriteStream(path.join(dir, 'out'))), /does not exist/);
  });

  it('not SQLite: a fatal preflight finding and a failed component with a one-line message', async () => {
    const file = path.join(dir, 'notes.txt');
    await writeFile(file, 'these are my notes, not a database\n'.repeat(100));
    const source = createSqliteSource({ name: 'notes', path: file });
    const findings = await source.check(context());
    assert.deepEqual(findings, [
      {
        fatal: true,
        message: `source notes: ${file} is not a SQLite database (it does not start with "SQLite format 3")`,
      },
    ]);
    const component = await onlyComponent(source, context());
    await assert.rejects(component.facts, (error: unknown) => {
      assert.ok(error instanceof SourceError);
      assert.ok(!error.message.includes('\n'), 'no stack trace in the message');
      assert.match(error.message, /is not a SQLite database/);
      return true;
    });
  });

  it('a SQLite header over garbage: SQLite itself refuses it, and the message says so without a stack', async () => {
    const file = path.join(dir, 'broken.db');
    const garbage = Buffer.alloc(64 * 1024, 0xa5);
    Buffer.from('SQLite format 3\0', 'latin1').copy(garbage);
    await writeFile(file, garbage);
    const source = createSqliteSource({ name: 'broken', path: file });
    assert.deepEqual(await source.check(context()), []); // the header looks right; only SQLite can tell
    const component = await onlyComponent(source, context());
    await assert.rejects(component.facts, (error: unknown) => {
      assert.ok(error instanceof SourceError);
      assert.ok(!error.message.includes('\n'));
      assert.match(error.message, /^source broken: .*broken\.db (is not a SQLite database|is corrupt)/);
      return true;
    });
    assert.deepEqual(await readdir(scratchDir), []);
  });

  it('an empty file is not a database', async () => {
    const file = path.join(dir, 'empty.db');
    await writeFile(file, '');
    const findings = await createSqliteSource({ name: 'e', path: file }).check(context());
    assert.match(findings[0]?.message ?? '', /is empty \(0 bytes\)/);
  });
});
