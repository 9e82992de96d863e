// checkSqliteFile on the object the real sqlite source produces: integrity, rows per table keyed as
// the source's facts, scalar queries; and files that are damaged, not databases, or missing.
import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { copyFile, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../../src/lib/log.js';
import { openSqlite } from '../../../src/lib/sqlite.js';
import { DatabaseError } from '../../../src/restore/databases/index.js';
import { checkSqliteFile, querySqliteScalar } from '../../../src/restore/databases/sqlite.js';
import { createSqliteSource } from '../../../src/sources/sqlite.js';

let root = '';
let restored = '';
let tables: Record<string, number> = {};
const never = new AbortController().signal;

before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'backproof-check-sqlite-'));
  const live = path.join(root, 'app.sqlite');
  const db = openSqlite(live);
  db.pragma('journal_mode = WAL');
  db.exec(`
    CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, avatar BLOB, score REAL);
    CREATE TABLE empty_one (id INTEGER);
    CREATE TABLE "we""ird; name" (x);
    CREATE INDEX users_name ON users (name);
    CREATE VIEW v_users AS SELECT id, name FROM users WHERE id > 1;
  `);
  const insert = db.prepare('INSERT INTO users (name, avatar, score) VALUES (?, ?, ?)');
  for (let i = 0; i < 300; i++) insert.run(`user ${i} 日本`, Buffer.from([i % 256, 0, 255]), i / 3);
  db.prepare('INSERT INTO users (id, name, avatar, score) VALUES (1000, NULL, ?, 1e300)').run(
    Buffer.from('c0ffee', 'hex'),
  );
  db.exec(`INSERT INTO "we""ird; name" VALUES (1), (2)`);
  db.close();

  // The object the source produces is what a restore writes to disk.
  const source = createSqliteSource({ name: 'cache', path: live });
  for await (const component of source.components({ signal: never, log: silentLogger, scratchDir: root })) {
    restored = path.join(root, 'restored.sqlite');
    await pipeline(component.data, createWriteStream(restored));
    tables = (await component.facts).tables ?? {};
  }
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  assert.fail('expected a rejection');
}

describe('checkSqliteFile', () => {
  it('passes the integrity check and counts rows per table exactly as the source named them', async () => {
    const check = await checkSqliteFile(restored, never);
    assert.deepEqual(check.tables, tables);
    assert.deepEqual(check.tables, { 'main.empty_one': 0, 'main.users': 301, 'main.we"ird; name': 2 });
    assert.match(check.sqliteVersion, /^3\.\d+\.\d+$/);
    assert.deepEqual(check.warnings, []);
    assert.equal('scalar' in check, false);
  });

  it('answers one scalar as text: numbers without exponents, NULL, blobs as hex, no row', async () => {
    assert.equal((await checkSqliteFile(restored, never, 'SELECT count(*) FROM users')).scalar, '301');
    assert.equal(await querySqliteScalar(restored, 'SELECT name FROM v_users WHERE id = 3', never), 'user 2 日本');
    assert.equal(await querySqliteScalar(restored, 'SELECT name FROM users WHERE id = 1000', never), null);
    assert.equal(await querySqliteScalar(restored, 'SELECT avatar FROM users WHERE id = 1000', never), 'c0ffee');
    assert.equal(
      await querySqliteScalar(restored, 'SELECT score FROM users WHERE id = 2', never),
      '0.3333333333333333',
    );
    const huge = await querySqliteScalar(restored, 'SELECT score FROM users WHERE id = 1000', never);
    assert.match(huge ?? '', /^1000000000000000\d{285}$/);
    // Past 2^53 - 1 an integer has no exact JavaScript number: refused, never rounded.
    const tooBig = await rejection(querySqliteScalar(restored, 'SELECT 9007199254740993', never));
    assert.match(tooBig.message, /9007199254740993/);
    assert.equal(await querySqliteScalar(restored, 'SELECT 9007199254740991', never), '9007199254740991');
    assert.equal(await querySqliteScalar(restored, 'SELECT id FROM users WHERE id < 0', never), null);
  });

  it('opens the file read-only: a statement that writes fails and changes nothing', async () => {
    const before = await readFile(restored);
    const error = await rejection(checkSqliteFile(restored, never, 'DELETE FROM users'));
    assert.ok(error instanceof DatabaseError);
    assert.match(error.message, /^sqlite .*restored\.sqlite: the query "DELETE FROM users" failed: /);
    assert.deepEqual(await readFile(restored), before);
    const syntax = await rejection(querySqliteScalar(restored, 'SELEC 1', never));
    assert.match(syntax.message, /the query "SELEC 1" failed: near "SELEC": syntax error/);
  });

  it('refuses a damaged file, naming the problems', async () => {
    const damaged = path.join(root, 'damaged.sqlite');
    await copyFile(restored, damaged);
    const { size } = await stat(damaged);
    const pageSize = (await readFile(damaged)).readUInt16BE(16);
    assert.ok(size >= pageSize * 3);
    // Overwrite the second page (the first table's root) with noise.
    const handle = await open(damaged, 'r+');
    await handle.write(Buffer.alloc(pageSize, 0x5a), 0, pageSize, pageSize);
    await handle.close();
    const error = await rejection(checkSqliteFile(damaged, never));
    assert.ok(error instanceof DatabaseError);
    assert.match(
      error.message,
      /^sqlite .*damaged\.sqlite: (PRAGMA integrity_check found problems: .+; the file is damaged|the file is corrupt)/,
    );
  });

  it('says when the file is not a database, or missing', async () => {
    const text = path.join(root, 'notes.txt');
    await writeFile(text, 'not a database at all, but long enough to have a header'.repeat(100));
    const notDb = await rejection(checkSqliteFile(text, never));
    assert.match(notDb.message, /notes\.txt: the file is not a SQLite database/);

    const missing = await rejection(checkSqliteFile(path.join(root, 'absent.sqlite'), never));
    assert.match(missing.message, /absent\.sqlite: cannot open the file .*does it exist/);
  });

  it('stops on abort with the abort reason', async () => {
    const abort = new AbortController();
    const reason = new Error('drill stopped');
    abort.abort(reason);
    assert.equal(await rejection(checkSqliteFile(restored, abort.signal)), reason);
  });
});
