import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { openSqlite } from '../../src/lib/sqlite.js';
import { openDatabase, schemaVersion } from '../../src/state/db.js';
import { openStateDb } from '../../src/state/store.js';

let root: string;
let stateDir: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'backproof-db-'));
  stateDir = join(root, 'var', 'state');
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('openDatabase', () => {
  it('creates the state directory 0700 and state.db inside it', () => {
    const { db, path } = openDatabase(stateDir);
    db.close();
    assert.equal(path, join(stateDir, 'state.db'));
    assert.equal(statSync(stateDir).mode & 0o777, 0o700);
    assert.ok(statSync(path).isFile());
  });

  it('sets WAL, synchronous=FULL, busy_timeout 5000 and foreign keys on', () => {
    const { db } = openDatabase(stateDir);
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.pragma('synchronous', { simple: true }), 2); // FULL
      assert.equal(db.pragma('busy_timeout', { simple: true }), 5000);
      assert.equal(db.pragma('foreign_keys', { simple: true }), 1);
      assert.equal(db.pragma('user_version', { simple: true }), schemaVersion);
    } finally {
      db.close();
    }
  });

  it('migrates once: reopening keeps the version, the schema and the data', () => {
    const first = openStateDb(stateDir);
    const runId = first.startRun({
      job: 'app',
      command: 'backup',
      startedAt: '2025-11-04T03:00:00.000Z',
      pid: 42,
      host: 'h',
    });
    first.close();
    const schema = (): unknown => {
      const raw = openSqlite(join(stateDir, 'state.db'), { readonly: true });
      try {
        return {
          version: raw.pragma('user_version', { simple: true }),
          objects: raw.prepare('SELECT type, name, sql FROM sqlite_master ORDER BY name').all(),
        };
      } finally {
        raw.close();
      }
    };
    const before = schema();
    for (let i = 0; i < 3; i++) openStateDb(stateDir).close();
    assert.deepEqual(schema(), before);
    const again = openStateDb(stateDir);
    assert.equal(again.getRun(runId)?.job, 'app');
    again.close();
  });

  it('migrates a database another tool created empty (user_version 0)', () => {
    const path = join(stateDir, 'state.db');
    openDatabase(stateDir).db.close(); // creates the directory
    rmSync(path);
    rmSync(`${path}-wal`, { force: true });
    rmSync(`${path}-shm`, { force: true });
    openSqlite(path).close();
    const { db } = openDatabase(stateDir);
    try {
      assert.equal(db.pragma('user_version', { simple: true }), schemaVersion);
      const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).pluck().all();
      assert.deepEqual(tables, [
        'anomaly_acks',
        'anomaly_checks',
        'anomaly_findings',
        'chain_heads',
        'components',
        'notifications',
        'object_verifications',
        'runs',
        'steps',
      ]);
    } finally {
      db.close();
    }
  });

  it('refuses a database from a newer backproof, naming the file and what to do', () => {
    openDatabase(stateDir).db.close();
    const raw = openSqlite(join(stateDir, 'state.db'));
    raw.pragma(`user_version = ${schemaVersion + 1}`);
    raw.close();
    assert.throws(
      () => openStateDb(stateDir),
      (error: Error) =>
        error.message.includes(join(stateDir, 'state.db')) &&
        error.message.includes(`schema version ${schemaVersion + 1}`) &&
        error.message.includes('upgrade backproof'),
    );
  });

  it('refuses a stateDir that is a file, naming it', () => {
    writeFileSync(join(root, 'not-a-dir'), '');
    assert.throws(() => openStateDb(join(root, 'not-a-dir')), /not-a-dir exists but is not a directory/);
  });

  it('refuses a file that is not a SQLite database, naming it', () => {
    openDatabase(stateDir).db.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(stateDir, `state.db${suffix}`), { force: true });
    writeFileSync(join(stateDir, 'state.db'), 'x'.repeat(4096));
    assert.throws(
      () => openStateDb(stateDir),
      (error: Error) => error.message.includes(join(stateDir, 'state.db')),
    );
  });
});

describe('openStateDb readonly (the dashboard)', () => {
  it('never creates a missing database or its directory', () => {
    assert.throws(() => openStateDb(stateDir, { readonly: true }), /cannot open the state database .* to read it/);
    assert.equal(existsSync(stateDir), false);
  });

  it('reads what a writer recorded, and refuses to write', () => {
    const writer = openStateDb(stateDir);
    const runId = writer.startRun({
      job: 'j',
      command: 'backup',
      startedAt: '2026-11-28T03:00:00.000Z',
      pid: 1,
      host: 'h',
    });
    writer.close();
    const reader = openStateDb(stateDir, { readonly: true });
    try {
      assert.deepEqual(
        reader.listRuns('j', 10).map((r) => r.id),
        [runId],
      );
      assert.throws(() =>
        reader.startRun({ job: 'j', command: 'backup', startedAt: '2026-11-28T04:00:00.000Z', pid: 1, host: 'h' }),
      );
    } finally {
      reader.close();
    }
  });

  it('refuses a database of another schema version instead of migrating it', () => {
    const { db } = openDatabase(stateDir);
    db.pragma(`user_version = ${schemaVersion - 1}`);
    db.close();
    assert.throws(
      () => openStateDb(stateDir, { readonly: true }),
      new RegExp(
        `schema version ${schemaVersion - 1}, but this backproof reads version ${schemaVersion}: run \`backproof status\``,
      ),
    );
  });
});

describe('hostId', () => {
  it('is a UUID made once, kept in <stateDir>/host-id, stable across reopen', () => {
    const first = openStateDb(stateDir);
    const id = first.hostId();
    assert.match(id, uuid);
    assert.equal(first.hostId(), id);
    first.close();
    assert.equal(readFileSync(join(stateDir, 'host-id'), 'utf8'), `${id}\n`);
    assert.equal(statSync(join(stateDir, 'host-id')).mode & 0o777, 0o600);
    const second = openStateDb(stateDir);
    assert.equal(second.hostId(), id);
    second.close();
  });

  it('survives deleting the database: the identity is not cache', () => {
    const first = openStateDb(stateDir);
    const id = first.hostId();
    first.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(stateDir, `state.db${suffix}`), { force: true });
    const second = openStateDb(stateDir);
    assert.equal(second.hostId(), id);
    second.close();
  });

  it('differs between state directories', () => {
    const a = openStateDb(join(root, 'a'));
    const b = openStateDb(join(root, 'b'));
    assert.notEqual(a.hostId(), b.hostId());
    a.close();
    b.close();
  });

  it('never silently replaces a damaged host-id file', () => {
    const db = openStateDb(stateDir);
    writeFileSync(join(stateDir, 'host-id'), 'garbage\n');
    assert.throws(() => db.hostId(), /host-id does not hold a host id.*backproof\.json/s);
    assert.equal(readFileSync(join(stateDir, 'host-id'), 'utf8'), 'garbage\n');
    db.close();
  });

  it('leaves no temporary files behind', () => {
    const db = openStateDb(stateDir);
    db.hostId();
    db.close();
    assert.equal(existsSync(join(stateDir, 'host-id')), true);
    const leftovers = readdirSync(stateDir).filter((name) => name.endsWith('.tmp'));
    assert.deepEqual(leftovers, []);
  });
});
