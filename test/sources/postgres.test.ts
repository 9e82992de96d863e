// The postgres source against the real PostgreSQL test server (scripts/test-services.sh), and a
// private server for the tests that kill it or need to know every database on it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PostgresSourceConfig } from '../../src/config/schema.js';
import { SourceError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/log.js';
import {
  createPostgresSource,
  databaseComponentName,
  decodeDatabaseName,
  encodeDatabaseName,
  excludedTables,
  explainClientError,
} from '../../src/sources/postgres.js';
import type { ComponentFacts, ComponentStream, Source, SourceContext } from '../../src/sources/types.js';
import { closedPort } from '../helpers/ports.js';
import { postgresAdminPassword, psqlAdmin, services, uniqueName } from '../helpers/services.js';
import { type PrivatePostgres, startPrivatePostgres } from './postgres-private-server.js';

// ---------------------------------------------------------------------------------------------
// Helpers

let workDir: string;
const databases: string[] = [];
const roles: string[] = [];

function sqlString(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

function ident(text: string): string {
  return `"${text.replace(/"/g, '""')}"`;
}

async function newRole(prefix: string, extra = ''): Promise<{ name: string; password: string; passwordFile: string }> {
  const name = uniqueName(prefix);
  const password = `pw-${uniqueName('s')}`;
  await psqlAdmin(`CREATE ROLE ${name} LOGIN PASSWORD ${sqlString(password)} ${extra};`);
  roles.push(name);
  const passwordFile = join(workDir, `${name}.pass`);
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  return { name, password, passwordFile };
}

async function newDatabase(owner: string, name = uniqueName('db')): Promise<string> {
  await psqlAdmin(`CREATE DATABASE ${ident(name)} OWNER ${ident(owner)};`);
  databases.push(name);
  return name;
}

/** SQL run as `role` in `db` (objects it creates are owned by it). */
function asRole(role: string, sql: string, db: string): Promise<string> {
  return psqlAdmin(`SET ROLE ${ident(role)};\n${sql}`, db);
}

function sourceConfig(overrides: Partial<PostgresSourceConfig>): PostgresSourceConfig {
  const pg = services().postgres;
  return {
    name: 'main',
    type: 'postgres',
    host: pg.host,
    port: pg.port,
    user: 'nobody-configured',
    excludeDatabases: [],
    excludeTables: [],
    globals: false,
    ...overrides,
  };
}

function context(signal = new AbortController().signal): SourceContext {
  return { signal, log: silentLogger, scratchDir: workDir };
}

interface Consumed {
  component: ComponentStream;
  data: Buffer;
  dataError: Error | undefined;
  facts: ComponentFacts | undefined;
  factsError: Error | undefined;
}

async function consume(component: ComponentStream): Promise<Consumed> {
  const chunks: Buffer[] = [];
  let dataError: Error | undefined;
  try {
    for await (const chunk of component.data) chunks.push(chunk as Buffer);
  } catch (error) {
    dataError = error as Error;
  }
  const settled = await component.facts.then(
    (facts) => ({ facts, factsError: undefined }),
    (error: unknown) => ({ facts: undefined, factsError: error as Error }),
  );
  return { component, data: Buffer.concat(chunks), dataError, ...settled };
}

/** Every component, consumed, the way the core does it (stopping at nothing: tests look at all). */
async function dumpAll(source: Source, ctx = context()): Promise<Consumed[]> {
  const out: Consumed[] = [];
  for await (const component of source.components(ctx)) out.push(await consume(component));
  return out;
}

async function onlyComponent(source: Source): Promise<Consumed> {
  const all = await dumpAll(source);
  assert.equal(all.length, 1, `expected one component, got ${all.map((c) => c.component.name).join(', ')}`);
  return all[0] as Consumed;
}

async function componentsError(source: Source, ctx = context()): Promise<Error> {
  try {
    await dumpAll(source, ctx);
  } catch (error) {
    return error as Error;
  }
  throw new Error('components() did not throw');
}

/** Loads a dump the plain way: `zstd -dc FILE | psql -d NEWDB`, as the superuser over the socket. */
async function restorePlain(dump: Buffer, database: string, socketDir: string, port: number): Promise<void> {
  const file = join(workDir, `${database}.sql.zst`);
  await runTool('zstd', ['-q', '-3', '-o', file], dump);
  const pipeline = `zstd -dc ${file} | psql -X -q -v ON_ERROR_STOP=1 -h ${socketDir} -p ${port} -U postgres -d ${ident(database)} >/dev/null`;
  await runTool('bash', ['-o', 'pipefail', '-c', pipeline]);
  await rm(file, { force: true });
}

function runTool(file: string, args: string[], input?: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(`${file} exited ${code}: ${stderr}`)),
    );
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

/** Every process's command line, NUL-separated arguments joined by spaces. */
async function commandLines(): Promise<{ pid: number; cmdline: string }[]> {
  const out: { pid: number; cmdline: string }[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const raw = await readFile(`/proc/${entry}/cmdline`).catch(() => undefined);
    if (raw && raw.length > 0) out.push({ pid: Number(entry), cmdline: raw.toString('utf8').replace(/\0/g, ' ') });
  }
  return out;
}

async function pgDumpProcesses(database: string): Promise<number[]> {
  return (await commandLines())
    .filter((p) => /(^|\/)pg_dump /.test(p.cmdline) && p.cmdline.includes(database))
    .map((p) => p.pid);
}

/**
 * Reads from `data` until `predicate(text so far)`, then pauses it without destroying it: pg_dump is
 * then held by backpressure, in the middle of its output. `consume` reads the rest later.
 */
function readUntil(data: NodeJS.ReadableStream, predicate: (text: string) => boolean): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let text = '';
    const stop = () => {
      data.off('data', onData);
      data.off('error', onError);
      data.off('end', onEnd);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      text += chunk.toString('latin1');
      if (!predicate(text)) return;
      data.pause();
      stop();
      resolve(chunks);
    };
    const onError = (error: Error) => {
      stop();
      reject(error);
    };
    const onEnd = () => {
      stop();
      reject(new Error('the stream ended before the expected text'));
    };
    data.on('data', onData);
    data.once('error', onError);
    data.once('end', onEnd);
  });
}

/** Polls `probe` until it returns true; gives up (failing the test) after `tries` attempts. */
async function waitFor(what: string, probe: () => Promise<boolean>, tries = 300): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await probe()) return;
    await sleep(100);
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** A fake program in a directory put first on PATH for the duration of `body` (tests run one at a time). */
async function withFakePrograms<T>(programs: Record<string, string>, body: () => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(workDir, 'bin-'));
  for (const [name, script] of Object.entries(programs)) {
    await writeFile(join(dir, name), `#!/bin/sh\n${script}\n`);
    await chmod(join(dir, name), 0o755);
  }
  const saved = process.env.PATH;
  process.env.PATH = `${dir}:${saved ?? ''}`;
  try {
    return await body();
  } finally {
    process.env.PATH = saved;
    await rm(dir, { recursive: true, force: true });
  }
}

/** Per table, the count and ordered md5 of its rows, as text: one psql call for all of them. */
async function tableDigests(tables: readonly string[], db: string): Promise<string[]> {
  const sql = tables.map(
    (table) =>
      `SELECT count(*) || ' ' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM ${table} t;`,
  );
  const lines = (await psqlAdmin(sql.join('\n'), db)).split('\n');
  assert.equal(lines.length, tables.length, `one digest per table: ${lines.join(' | ')}`);
  return lines;
}

function qualified(key: string): string {
  const dot = key.indexOf('.');
  return `${ident(key.slice(0, dot))}.${ident(key.slice(dot + 1))}`;
}

// ---------------------------------------------------------------------------------------------

before(async () => {
  services(); // fails with how to start the servers when they are not running
  workDir = await mkdtemp(join(tmpdir(), 'bp-pgsrc-'));
});

after(async () => {
  for (const db of databases.splice(0)) await psqlAdmin(`DROP DATABASE IF EXISTS ${ident(db)} WITH (FORCE);`);
  for (const role of roles.splice(0)) await psqlAdmin(`DROP ROLE IF EXISTS ${ident(role)};`);
  await rm(workDir, { recursive: true, force: true });
});

describe('postgres source: names', () => {
  it('percent-encodes database names outside [A-Za-z0-9_-] reversibly and never collides with globals', () => {
    for (const name of ['app', 'my db.x', 'ünï code/%', 'a.b', 'globals', 'Globals', '-_-', 'x%41']) {
      const part = encodeDatabaseName(name);
      assert.match(part, /^[A-Za-z0-9_%-]+$/, name);
      assert.equal(decodeDatabaseName(part), name);
    }
    assert.equal(encodeDatabaseName('my db.x'), 'my%20db%2Ex');
    assert.equal(databaseComponentName('main', 'globals'), 'main.%67lobals');
    assert.equal(databaseComponentName('main', 'app'), 'main.app');
  });

  it('reads excludeTables as <db>.<schema>.<table> or <db>.<table> in public', () => {
    const entries = ['app.sessions', 'app.audit.log', 'other.sessions', 'app.', 'app2.x'];
    assert.deepEqual(excludedTables(entries, 'app'), [
      { entry: 'app.sessions', name: { schema: 'public', table: 'sessions' } },
      { entry: 'app.audit.log', name: { schema: 'audit', table: 'log' } },
    ]);
  });

  it('explains client errors in words an operator can act on', () => {
    const config = sourceConfig({ user: 'backup' });
    const mismatch =
      'pg_dump: error: aborting because of server version mismatch\npg_dump: detail: server version: 16.4; pg_dump version: 15.18';
    assert.match(explainClientError(config, mismatch), /install postgresql-client-16/);
    assert.match(
      explainClientError(config, 'psql: error: connection to server at "127.0.0.1", port 1 failed: Connection refused'),
      /cannot connect to PostgreSQL at 127\.0\.0\.1:\d+: is the server running/,
    );
  });
});

describe('postgres source: against the test server', () => {
  it('round trip: every kind of table, dumped through the source, restored with zstd | psql into another database', async () => {
    const owner = await newRole('owner');
    const backup = await newRole('backup');
    await psqlAdmin(`GRANT pg_read_all_data TO ${backup.name};`);
    const db = await newDatabase(owner.name, `${uniqueName('rt')} x.y`);
    await psqlAdmin(`CREATE EXTENSION IF NOT EXISTS citext;`, db);
    await asRole(
      owner.name,
      String.raw`
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TABLE texts (id integer PRIMARY KEY, t text, c citext, m mood, p positive, arr text[], j jsonb,
  doubled integer GENERATED ALWAYS AS (id * 2) STORED);
INSERT INTO texts (id, t, c, m, p, arr, j) VALUES
  (1, 'héllo wörld 日本語 🎉', 'CaSe', 'happy', 1, ARRAY['a', 'b,c', 'd"e'], '{"k": "v\\n"}'),
  (2, E'tab\there\nnewline\\backslash \\. ''quote'' ; semicolon', 'x', 'sad', 2, ARRAY[]::text[], 'null'),
  (3, E'\\.', NULL, NULL, NULL, NULL, NULL),
  (4, '-- PostgreSQL database dump complete', 'COPY public.texts (id) FROM stdin;', 'ok', 4, '{NULL}', '[1, 2]'),
  (5, '', '', NULL, 5, '{}', '{}');
CREATE TABLE blobs (id integer PRIMARY KEY, b bytea);
INSERT INTO blobs SELECT 1, decode(string_agg(lpad(to_hex(x), 2, '0'), '' ORDER BY x), 'hex') FROM generate_series(0, 255) x;
INSERT INTO blobs SELECT g, decode(md5(g::text) || md5((g * 7)::text), 'hex') FROM generate_series(2, 1000) g;
INSERT INTO blobs VALUES (1001, ''), (1002, NULL);
CREATE TABLE nulls (a integer, b text, c bytea, d timestamptz);
INSERT INTO nulls SELECT NULL, NULL, NULL, NULL FROM generate_series(1, 7);
CREATE TABLE long_rows (id integer, t text, b bytea);
INSERT INTO long_rows VALUES (1, repeat('long line ', 500000), decode(repeat('00ff0a0d5c', 200000), 'hex'));
CREATE TABLE empty_table (x integer, y text);
CREATE TABLE big AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 100000) g;
CREATE TABLE measurements (id integer, at date) PARTITION BY RANGE (at);
CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO measurements SELECT g, DATE '2024-01-01' + g FROM generate_series(0, 500) g;
CREATE SCHEMA "Weird ""S""";
CREATE TABLE "Weird ""S""".";" ("a b" text);
INSERT INTO "Weird ""S""".";" VALUES ('x'), ('y');
CREATE TABLE "new
line" (a integer);
INSERT INTO "new
line" VALUES (1);
CREATE SEQUENCE counter START 100;
SELECT setval('counter', 4242);
CREATE VIEW texts_view AS SELECT id, upper(t) AS t FROM texts;
CREATE MATERIALIZED VIEW blob_sizes AS SELECT id, length(b) AS n FROM blobs;
CREATE TABLE audit (id serial, what text);
CREATE FUNCTION log_text() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
  INSERT INTO audit (what) VALUES ('COPY public.audit (id) FROM stdin;
\.
' || NEW.id);
  RETURN NEW;
END $body$;
CREATE TRIGGER texts_audit AFTER INSERT ON texts FOR EACH ROW EXECUTE FUNCTION log_text();
CREATE PROCEDURE add_text(i integer, s text) LANGUAGE sql AS $$ INSERT INTO texts (id, t) VALUES (i, s) $$;
CALL add_text(6, 'from a procedure');
CREATE FUNCTION answer() RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT 42 $$;
`,
      db,
    );
    const source = createPostgresSource(
      sourceConfig({ user: backup.name, passwordFile: backup.passwordFile, databases: [db] }),
    );
    assert.deepEqual(await source.check(context()), []);
    const dumped = await onlyComponent(source);
    assert.equal(dumped.dataError, undefined);
    assert.equal(dumped.factsError, undefined);
    assert.equal(dumped.component.name, `main.${encodeDatabaseName(db)}`);
    assert.equal(dumped.component.kind, 'postgres');
    assert.equal(dumped.component.extension, 'sql');
    const facts = dumped.facts as ComponentFacts;
    assert.match(facts.dumpTool ?? '', /^pg_dump \d+\.\d+/);
    assert.match(facts.serverVersion ?? '', /^\d+\.\d+/);
    assert.deepEqual(facts.warnings, []);

    // Every table with rows, counted from the dump, equal to count(*); partitions as their leaves.
    const tables = facts.tables ?? {};
    assert.deepEqual(Object.keys(tables).sort(), [
      'Weird "S".;',
      'public.audit',
      'public.big',
      'public.blobs',
      'public.empty_table',
      'public.long_rows',
      'public.measurements_2024',
      'public.measurements_2025',
      'public.new\nline',
      'public.nulls',
      'public.texts',
    ]);
    const keys = Object.keys(tables);
    const counted = (
      await psqlAdmin(keys.map((key) => `SELECT count(*) FROM ${qualified(key)};`).join('\n'), db)
    ).split('\n');
    assert.deepEqual(
      keys.map((key) => [key, String(tables[key])]),
      keys.map((key, i) => [key, counted[i]]),
    );
    // 4 MB of COPY data: counted across many stream chunks (postgres-rows.test.ts counts a million rows).
    assert.equal(tables['public.big'], 100_000);
    assert.equal(tables['public.empty_table'], 0);

    // The dump names no database.
    const text = dumped.data.toString('utf8');
    assert.doesNotMatch(text, /CREATE DATABASE|\\connect|\\c /);
    assert.ok(!text.includes(db), 'the dump mentions its database name');

    const copy = await newDatabase(owner.name, uniqueName('restored'));
    const pg = services().postgres;
    await restorePlain(dumped.data, copy, pg.socketDir, pg.port);
    const compared = [...Object.keys(tables), 'public.texts_view', 'public.blob_sizes', 'public.measurements'];
    const [restored, original] = await Promise.all([
      tableDigests(compared.map(qualified), copy),
      tableDigests(compared.map(qualified), db),
    ]);
    assert.deepEqual(
      compared.map((key, i) => [key, restored[i]]),
      compared.map((key, i) => [key, original[i]]),
    );
    assert.equal(await psqlAdmin(`SELECT last_value FROM counter;`, copy), '4242');
    assert.equal(await psqlAdmin(`SELECT answer();`, copy), '42');
    assert.equal(await psqlAdmin(`SELECT count(*) FROM pg_trigger WHERE tgname = 'texts_audit';`, copy), '1');
    await psqlAdmin(`CALL add_text(7, 'restored procedure');`, copy);
    assert.equal(await psqlAdmin(`SELECT count(*) FROM audit WHERE what LIKE '%7';`, copy), '1');
    assert.equal(await psqlAdmin(`SELECT tableowner FROM pg_tables WHERE tablename = 'texts';`, copy), owner.name);
  });

  it('dumps a consistent snapshot while a writer commits N rows per transaction into two tables', async () => {
    const owner = await newRole('cons');
    const db = await newDatabase(owner.name);
    await asRole(
      owner.name,
      `CREATE TABLE a (tx integer, n integer); CREATE TABLE b (tx integer, n integer); CREATE TABLE stop (x integer);
       CREATE TABLE pad AS SELECT g, repeat('p', 200) AS p FROM generate_series(1, 30000) g;`,
      db,
    );
    const pg = services().postgres;
    // pad (6 MB, far more than the pipe and stream buffers) keeps pg_dump blocked mid-dump, holding its
    // snapshot, while the writer commits more. The writer: ten rows into each table per transaction.
    const writer = spawn(
      'psql',
      [
        '-X',
        '-q',
        '-v',
        'ON_ERROR_STOP=1',
        '-h',
        pg.socketDir,
        '-p',
        String(pg.port),
        '-U',
        'postgres',
        '-d',
        db,
        // Two commands, not one string: a multi-statement string is one transaction, where COMMIT is refused.
        '-c',
        `SET ROLE ${owner.name}`,
        '-c',
        `DO $$ BEGIN FOR i IN 1..10000000 LOOP
           INSERT INTO a SELECT i, g FROM generate_series(1, 10) g;
           INSERT INTO b SELECT i, g FROM generate_series(1, 10) g;
           COMMIT;
           EXIT WHEN EXISTS (SELECT 1 FROM stop);
         END LOOP; END $$;`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let writerError = '';
    writer.stderr.setEncoding('utf8').on('data', (d: string) => {
      writerError += d;
    });
    let writerRunning = true;
    const writerDone = new Promise((resolve) => writer.on('close', resolve)).then(() => {
      writerRunning = false;
    });
    try {
      const rowsOf = async (table: string) => {
        if (!writerRunning) throw new Error(`the writer stopped: ${writerError}`);
        return Number(await psqlAdmin(`SELECT count(*) FROM ${table};`, db));
      };
      await waitFor('the writer to commit', async () => (await rowsOf('a')) > 0);
      const source = createPostgresSource(
        sourceConfig({ user: owner.name, passwordFile: owner.passwordFile, databases: [db] }),
      );
      const iterator = source.components(context())[Symbol.asyncIterator]();
      const first = await iterator.next();
      assert.equal(first.done, false);
      const component = first.value as ComponentStream;
      // Hold the dump mid-stream until the writer has committed more, then read the rest.
      const head = await readUntil(component.data, (t) => t.includes('COPY public.a'));
      const atHold = await rowsOf('a');
      await waitFor('more commits during the dump', async () => (await rowsOf('a')) >= atHold + 100);
      const rest = await consume(component);
      assert.equal(rest.factsError, undefined);
      const tables = rest.facts?.tables ?? {};
      const rowsA = tables['public.a'] ?? -1;
      assert.equal(tables['public.b'], rowsA, 'a and b differ: a transaction was cut in half');
      assert.equal(rowsA % 10, 0);
      assert.ok(rowsA > 0);
      assert.ok(rowsA < (await rowsOf('a')), 'rows committed after the snapshot were dumped');
      assert.ok(Buffer.concat([...head, rest.data]).includes('-- PostgreSQL database dump complete'));
      assert.equal((await iterator.next()).done, true);
    } finally {
      await psqlAdmin('INSERT INTO stop VALUES (1);', db);
      await writerDone;
    }
  });

  it('leaves out excludeTables (and warns about an entry that matches nothing), in the dump and in the facts', async () => {
    const owner = await newRole('excl');
    const db = await newDatabase(owner.name);
    await asRole(
      owner.name,
      `CREATE TABLE keep (x integer); INSERT INTO keep VALUES (1);
       CREATE TABLE sessions (x integer); INSERT INTO sessions VALUES (1), (2);
       CREATE SCHEMA audit; CREATE TABLE audit."Log*" (x integer); CREATE TABLE audit."LogA" (x integer);`,
      db,
    );
    const source = createPostgresSource(
      sourceConfig({
        user: owner.name,
        passwordFile: owner.passwordFile,
        databases: [db],
        excludeTables: [`${db}.sessions`, `${db}.audit.Log*`, `${db}.nope`, 'otherdb.keep'],
      }),
    );
    const dumped = await onlyComponent(source);
    assert.equal(dumped.factsError, undefined);
    assert.deepEqual(dumped.facts?.tables, { 'audit.LogA': 0, 'public.keep': 1 });
    assert.deepEqual(dumped.facts?.warnings, [
      `excludeTables entry ${db}.nope matches no table (public.nope) in database ${db}`,
    ]);
    const text = dumped.data.toString('utf8');
    assert.doesNotMatch(text, /CREATE TABLE public\.sessions/);
    assert.doesNotMatch(text, /"Log\*"/);
    assert.match(text, /CREATE TABLE audit\."LogA"/);
  });

  it('dumps globals without role passwords for a non-superuser, and with them (marked secret) for a superuser', async () => {
    const owner = await newRole('glob');
    const db = await newDatabase(owner.name);
    const plain = createPostgresSource(
      sourceConfig({ user: owner.name, passwordFile: owner.passwordFile, databases: [db], globals: true }),
    );
    const [globals, database] = await dumpAll(plain);
    assert.equal(globals?.component.name, 'main.globals');
    assert.equal(globals?.component.kind, 'postgres-globals');
    assert.equal(globals?.component.extension, 'sql');
    assert.equal(globals?.factsError, undefined);
    assert.match(globals?.facts?.dumpTool ?? '', /^pg_dumpall \d+/);
    assert.equal(globals?.facts?.secret, undefined);
    const text = globals?.data.toString('utf8') ?? '';
    assert.match(text, new RegExp(`CREATE ROLE ${owner.name};`));
    assert.doesNotMatch(text, /PASSWORD/);
    assert.match(text, /-- PostgreSQL database cluster dump complete\n/);
    assert.equal(database?.component.name, `main.${db}`);
    assert.equal(database?.factsError, undefined);

    const adminFile = join(workDir, 'admin.pass');
    await writeFile(adminFile, postgresAdminPassword(), { mode: 0o600 });
    const superuser = createPostgresSource(
      sourceConfig({ user: 'postgres', passwordFile: adminFile, databases: [db], globals: true }),
    );
    const [superGlobals] = await dumpAll(superuser);
    assert.equal(superGlobals?.facts?.secret, true);
    assert.match(
      superGlobals?.data.toString('utf8') ?? '',
      new RegExp(`ALTER ROLE ${owner.name} WITH .*PASSWORD 'SCRAM-SHA-256`),
    );
  });

  it('turns a failing pg_dumpall into a warning on the first database, never a failure', async () => {
    const owner = await newRole('globfail');
    const db = await newDatabase(owner.name);
    const source = createPostgresSource(
      sourceConfig({ user: owner.name, passwordFile: owner.passwordFile, databases: [db], globals: true }),
    );
    const failing = `[ "$1" = --version ] && exec /usr/bin/pg_dumpall --version\necho 'pg_dumpall: error: simulated' >&2\nexit 1`;
    const cut = `[ "$1" = --version ] && exec /usr/bin/pg_dumpall --version\n/usr/bin/pg_dumpall "$@" | head -n 12`;
    for (const [script, why] of [
      [failing, /pg_dumpall exited with code 1: pg_dumpall: error: simulated/],
      [cut, /does not end with "-- PostgreSQL database cluster dump complete"/],
    ] as const) {
      const all = await withFakePrograms({ pg_dumpall: script }, () => dumpAll(source));
      assert.deepEqual(
        all.map((c) => c.component.name),
        [`main.${db}`],
      );
      const warnings = all[0]?.facts?.warnings ?? [];
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? '', /^roles and tablespaces \(pg_dumpall --globals-only\) were not backed up: /);
      assert.match(warnings[0] ?? '', why);
    }
  });

  it('wrong password: a fatal preflight finding and a failed source, both saying so', async () => {
    const owner = await newRole('wrongpw');
    const db = await newDatabase(owner.name);
    const badFile = join(workDir, 'wrong.pass');
    await writeFile(badFile, 'not-the-password', { mode: 0o600 });
    const source = createPostgresSource(sourceConfig({ user: owner.name, passwordFile: badFile, databases: [db] }));
    const findings = await source.check(context());
    assert.equal(findings.length, 1);
    assert.equal(findings[0]?.fatal, true);
    assert.match(findings[0]?.message ?? '', new RegExp(`^source main: .* refused the password of user ${owner.name}`));
    const error = await componentsError(source);
    assert.ok(error instanceof SourceError);
    assert.match(error.message, /^source main: PostgreSQL at 127\.0\.0\.1:\d+ refused the password/);
    assert.ok(!error.message.includes('not-the-password'));
  });

  it('no password configured where the server wants one: says to set passwordFile or passwordEnv', async () => {
    const owner = await newRole('nopw');
    const source = createPostgresSource(sourceConfig({ user: owner.name }));
    const findings = await source.check(context());
    assert.match(findings[0]?.message ?? '', /asks for a password .* set passwordFile or passwordEnv/);
  });

  it('a user without the privileges the dump needs: a failed component naming source, database and cause', async () => {
    const owner = await newRole('owns');
    const reader = await newRole('nopriv');
    const db = await newDatabase(owner.name);
    await asRole(owner.name, 'CREATE TABLE secret (x integer); INSERT INTO secret VALUES (1);', db);
    const source = createPostgresSource(
      sourceConfig({ user: reader.name, passwordFile: reader.passwordFile, databases: [db] }),
    );
    assert.deepEqual(await source.check(context()), []);
    const dumped = await onlyComponent(source);
    assert.ok(dumped.dataError, 'the data stream ended cleanly');
    assert.ok(dumped.factsError instanceof SourceError);
    assert.match(
      dumped.factsError.message,
      new RegExp(
        `^source main: database ${db}: pg_dump exited with code 1: user ${reader.name} lacks privileges .*GRANT pg_read_all_data.*permission denied for table secret`,
      ),
    );
  });

  it('a user without CONNECT on the database: fatal in preflight, a failed component when dumping', async () => {
    const owner = await newRole('noconn');
    const other = await newRole('outsider');
    const db = await newDatabase(owner.name);
    await psqlAdmin(`REVOKE CONNECT ON DATABASE ${db} FROM PUBLIC;`);
    const source = createPostgresSource(
      sourceConfig({ user: other.name, passwordFile: other.passwordFile, databases: [db] }),
    );
    const findings = await source.check(context());
    assert.deepEqual(findings, [
      {
        fatal: true,
        message: `source main: user ${other.name} may not connect to database ${db}; GRANT CONNECT ON DATABASE to it`,
      },
    ]);
    const dumped = await onlyComponent(source);
    assert.match(
      dumped.factsError?.message ?? '',
      new RegExp(`^source main: database ${db}: user ${other.name} may not connect`),
    );
  });

  it('a configured database that does not exist: fatal in preflight naming it, a failed component when dumping', async () => {
    const owner = await newRole('missing');
    const db = await newDatabase(owner.name);
    const ghost = uniqueName('ghost');
    const source = createPostgresSource(
      sourceConfig({ user: owner.name, passwordFile: owner.passwordFile, databases: [db, ghost] }),
    );
    const findings = await source.check(context());
    assert.deepEqual(findings, [
      {
        fatal: true,
        message: `source main: database ${ghost} does not exist on PostgreSQL at 127.0.0.1:${services().postgres.port}; fix databases/excludeDatabases`,
      },
    ]);
    const all = await dumpAll(source);
    assert.deepEqual(
      all.map((c) => [c.component.name, c.factsError === undefined]),
      [
        [`main.${db}`, true],
        [`main.${ghost}`, false],
      ],
    );
    assert.match(all[1]?.factsError?.message ?? '', new RegExp(`^source main: database ${ghost}: it does not exist`));
    assert.ok(all[1]?.dataError);
  });

  it('the server down: a fatal preflight finding and a failed source saying it cannot connect', async () => {
    const closed = await closedPort();
    const source = createPostgresSource(
      sourceConfig({ port: closed, user: 'whoever', passwordFile: join(workDir, 'any.pass'), databases: ['x'] }),
    );
    await writeFile(join(workDir, 'any.pass'), 'pw', { mode: 0o600 });
    const findings = await source.check(context());
    assert.equal(findings.length, 1);
    assert.match(
      findings[0]?.message ?? '',
      new RegExp(`^source main: cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${closed}: is the server running`),
    );
    const error = await componentsError(source);
    assert.match(error.message, /^source main: cannot connect to PostgreSQL/);
    assert.equal(await source.estimateRawBytes(context()), 0);
  });

  it('never puts the password in any process command line while the dump runs', async () => {
    const owner = await newRole('argv');
    const db = await newDatabase(owner.name);
    await asRole(
      owner.name,
      `CREATE TABLE t AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 20000) g;`,
      db,
    );
    const source = createPostgresSource(
      sourceConfig({ user: owner.name, passwordFile: owner.passwordFile, databases: [db], globals: true }),
    );
    const components = source.components(context())[Symbol.asyncIterator]();
    const globals = await components.next();
    await consume(globals.value as ComponentStream);
    const component = (await components.next()).value as ComponentStream;
    const head = await readUntil(component.data, (t) => t.includes('COPY public.t'));
    assert.ok(head.length > 0);
    // pg_dump is running, held by backpressure: look at every command line now.
    assert.equal((await pgDumpProcesses(db)).length, 1, 'pg_dump is not running');
    const lines = await commandLines();
    assert.ok(lines.length > 0);
    for (const { pid, cmdline } of lines) assert.ok(!cmdline.includes(owner.password), `pid ${pid}: ${cmdline}`);
    const rest = await consume(component);
    assert.equal(rest.factsError, undefined);
    assert.ok(!JSON.stringify(rest.facts).includes(owner.password));
    assert.equal((await components.next()).done, true);
  });

  it('abort stops pg_dump at once and rejects the facts with the abort reason', async () => {
    const owner = await newRole('abort');
    const db = await newDatabase(owner.name);
    await asRole(
      owner.name,
      `CREATE TABLE t AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 20000) g;`,
      db,
    );
    const controller = new AbortController();
    const source = createPostgresSource(
      sourceConfig({ user: owner.name, passwordFile: owner.passwordFile, databases: [db] }),
    );
    const component = (await source.components(context(controller.signal))[Symbol.asyncIterator]().next())
      .value as ComponentStream;
    await readUntil(component.data, (t) => t.includes('COPY public.t'));
    const [pid] = await pgDumpProcesses(db);
    assert.ok(pid, 'pg_dump is not running');
    const reason = new Error('interrupted by test');
    const closed = new Promise((resolve) => component.data.once('close', resolve));
    controller.abort(reason);
    await closed;
    await assert.rejects(component.facts, (error) => error === reason);
    assert.deepEqual(await pgDumpProcesses(db), []);
    assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
  });

  it('pg_dump missing: fatal preflight findings naming the Debian package', async () => {
    const source = createPostgresSource(sourceConfig({ user: 'u', globals: true }));
    const empty = await mkdtemp(join(workDir, 'empty-'));
    const saved = process.env.PATH;
    process.env.PATH = empty;
    try {
      const findings = await source.check(context());
      assert.deepEqual(
        findings.map((f) => [f.fatal, f.message]),
        ['pg_dump', 'psql', 'pg_dumpall'].map((p) => [
          true,
          `source main: ${p} is not installed (or not on PATH); install the Debian package postgresql-client`,
        ]),
      );
    } finally {
      process.env.PATH = saved;
    }
  });

  it('a server newer than pg_dump: fatal in preflight and a failed source, naming the package to install', async () => {
    const owner = await newRole('newer');
    const db = await newDatabase(owner.name);
    const source = createPostgresSource(
      sourceConfig({ user: owner.name, passwordFile: owner.passwordFile, databases: [db] }),
    );
    const major = Number(services().postgres.version.split('.')[0]);
    await withFakePrograms({ pg_dump: `echo "pg_dump (PostgreSQL) ${major - 1}.9"` }, async () => {
      const findings = await source.check(context());
      assert.equal(findings.length, 1);
      assert.match(
        findings[0]?.message ?? '',
        new RegExp(
          `pg_dump ${major - 1}\\.9 is older than the server .* install the Debian package postgresql-client-${major}`,
        ),
      );
      assert.match((await componentsError(source)).message, new RegExp(`postgresql-client-${major}`));
    });
    // pg_dump's own refusal, should the versions change between preflight and dump.
    const refusing = `[ "$1" = --version ] && exec /usr/bin/pg_dump --version
echo 'pg_dump: error: aborting because of server version mismatch' >&2
echo 'pg_dump: detail: server version: ${major + 1}.2; pg_dump version: ${major}.0' >&2
exit 1`;
    const dumped = await withFakePrograms({ pg_dump: refusing }, () => onlyComponent(source));
    assert.match(
      dumped.factsError?.message ?? '',
      new RegExp(
        `^source main: database ${db}: pg_dump exited with code 1: pg_dump is older than the server .*install postgresql-client-${major + 1}`,
      ),
    );
  });

  it('estimates the raw size from the sizes of the selected databases', async () => {
    const owner = await newRole('est');
    const db = await newDatabase(owner.name);
    await asRole(owner.name, `CREATE TABLE t AS SELECT g FROM generate_series(1, 100000) g;`, db);
    const source = createPostgresSource(
      sourceConfig({ user: owner.name, passwordFile: owner.passwordFile, databases: [db] }),
    );
    const estimate = await source.estimateRawBytes(context());
    assert.equal(String(estimate), await psqlAdmin(`SELECT pg_database_size(${sqlString(db)});`));
    assert.ok(Number.isInteger(estimate) && estimate > 1_000_000);
  });
});

describe('postgres source: on a private server', () => {
  let server: PrivatePostgres;
  let adminFile: string;

  before(async () => {
    server = await startPrivatePostgres();
    adminFile = join(workDir, 'private-admin.pass');
    await writeFile(adminFile, server.adminPassword, { mode: 0o600 });
  });
  after(async () => {
    await server?.stop();
  });

  it('without databases: dumps every database that accepts connections except templates, minus excludeDatabases', async () => {
    await server.admin(
      `CREATE DATABASE "one"; CREATE DATABASE "two words"; CREATE DATABASE "we'ird = db\\"; CREATE DATABASE skipped;
       CREATE DATABASE closed;
       ALTER DATABASE closed ALLOW_CONNECTIONS false;`,
    );
    await server.admin('CREATE TABLE t (x integer); INSERT INTO t VALUES (1), (2);', 'two words');
    const source = createPostgresSource(
      sourceConfig({
        host: server.host,
        port: server.port,
        user: 'postgres',
        passwordFile: adminFile,
        excludeDatabases: ['skipped'],
      }),
    );
    assert.deepEqual(await source.check(context()), []);
    const all = await dumpAll(source);
    assert.deepEqual(
      all.map((c) => [c.component.name, c.factsError?.message]),
      [
        ['main.one', undefined],
        ['main.postgres', undefined],
        ['main.two%20words', undefined],
        ['main.we%27ird%20%3D%20db%5C', undefined],
      ],
    );
    assert.deepEqual(all[2]?.facts?.tables, { 'public.t': 2 });
  });

  it('the server killed (kill -9) mid-dump: a failed component saying the connection was lost', async () => {
    await server.admin(`CREATE DATABASE victim;`);
    await server.admin(
      `CREATE TABLE big AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 500000) g;`,
      'victim',
    );
    const source = createPostgresSource(
      sourceConfig({
        host: server.host,
        port: server.port,
        user: 'postgres',
        passwordFile: adminFile,
        databases: ['victim'],
      }),
    );
    const component = (await source.components(context())[Symbol.asyncIterator]().next()).value as ComponentStream;
    // Past the start of the big table's data, held by backpressure: pg_dump is in the middle of COPY.
    const head = await readUntil(component.data, (t) => /COPY public\.big [^\n]*\n1\t/.test(t));
    assert.ok(head.length > 0);
    process.kill(await server.postmasterPid(), 'SIGKILL');
    const rest = await consume(component);
    assert.ok(rest.dataError, 'the data ended cleanly after the server died');
    assert.ok(rest.factsError instanceof SourceError);
    assert.match(
      rest.factsError.message,
      /^source main: database victim: pg_dump exited with code 1: the connection to PostgreSQL at 127\.0\.0\.1:\d+ was lost during the dump/,
    );
  });
});
