// The PostgreSQL loader against the real test server (scripts/test-services.sh): dumps made by the
// real postgres source from seeded databases (schemas, tables, an empty one, partitions, a view,
// functions with dollar quotes, a trigger, a policy, unicode and bytea data, objects owned by and
// granted to other roles) are loaded into new databases named like a drill's, as the superuser and
// as a drill role with CREATEDB only; roles the server lacks or the drill role may not use;
// incomplete and garbled dumps leave the database empty; unreachable servers; the password kept
// out of argv; abort. Every database and role is unique and dropped afterwards.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../../../src/lib/log.js';
import { createDatabaseLoader, DatabaseError } from '../../../src/restore/databases/index.js';
import type { DatabaseConnection } from '../../../src/restore/databases/types.js';
import { createPostgresSource } from '../../../src/sources/postgres.js';
import { psqlAdmin, services, uniqueName } from '../../helpers/services.js';

const SET_ID = '20251104T030000Z-K3X9QA';
const PREFIX = `backproof_drill_${uniqueName('t').slice(0, 14)}`;
const DRILL_PASSWORD = `dr ill#$;-'"\\${uniqueName('pw')}`;

let root = '';
const databases: string[] = [];
const roles: string[] = [];
let admin: DatabaseConnection;
let drill: DatabaseConnection;
let drillRole = '';
let nameCounter = 0;
const never = new AbortController().signal;

function drillName(): string {
  nameCounter += 1;
  const name = `${PREFIX}-${SET_ID}_${nameCounter}`;
  assert.ok(Buffer.byteLength(name) <= 63, `${name} is too long for PostgreSQL`);
  return name;
}

function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

async function newRole(prefix: string, options: string): Promise<string> {
  const name = uniqueName(prefix);
  roles.push(name);
  await psqlAdmin(`CREATE ROLE ${name} ${options};`);
  return name;
}

before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'backproof-load-postgres-'));
  const pg = services().postgres;
  admin = { kind: 'postgres', host: pg.host, port: pg.port, socket: pg.socketDir, user: pg.adminUser };
  drillRole = await newRole('drill', `LOGIN CREATEDB PASSWORD ${literal(DRILL_PASSWORD)}`);
  drill = { kind: 'postgres', host: pg.host, port: pg.port, user: drillRole, password: DRILL_PASSWORD };
});

after(async () => {
  const leftovers = await createDatabaseLoader(admin).listDatabases(PREFIX, never);
  for (const db of [...databases, ...leftovers]) await psqlAdmin(`DROP DATABASE IF EXISTS ${ident(db)} WITH (FORCE);`);
  for (const role of roles.reverse()) await psqlAdmin(`DROP ROLE IF EXISTS ${role};`);
  await rm(root, { recursive: true, force: true });
});

interface Dump {
  database: string;
  sql: Buffer;
  tables: Record<string, number>;
}

/** Creates a database, runs `sql` in it as the superuser, and dumps it with the postgres source. */
async function seedAndDump(prefix: string, sql: string): Promise<Dump> {
  const database = uniqueName(prefix);
  databases.push(database);
  await psqlAdmin(`CREATE DATABASE ${ident(database)};`);
  await psqlAdmin(sql, database);
  const pg = services().postgres;
  const source = createPostgresSource({
    name: 'main',
    type: 'postgres',
    host: pg.host,
    port: pg.port,
    user: pg.adminUser,
    passwordFile: pg.adminPasswordFile,
    databases: [database],
    excludeDatabases: [],
    excludeTables: [],
    globals: false,
  });
  const dumps: Dump[] = [];
  for await (const component of source.components({ signal: never, log: silentLogger, scratchDir: root })) {
    const chunks: Buffer[] = [];
    for await (const chunk of component.data) chunks.push(chunk as Buffer);
    const facts = await component.facts;
    dumps.push({ database, sql: Buffer.concat(chunks), tables: facts.tables ?? {} });
  }
  assert.equal(dumps.length, 1);
  return dumps[0] as Dump;
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  assert.fail('expected a rejection');
}

function shopSql(owner: string, reader: string, other: string): string {
  return String.raw`
CREATE SCHEMA app AUTHORIZATION ${owner};
CREATE TABLE app.users (id int PRIMARY KEY, name text, bio text);
INSERT INTO app.users VALUES (1, 'Zoë 日本語 🎉', E'tab\there\nnewline \\ backslash; \\.'), (2, NULL, ''), (3, 'x', repeat('é', 5000));
CREATE TABLE app.blobs (id int PRIMARY KEY, b bytea);
INSERT INTO app.blobs SELECT g, decode(md5(g::text) || md5((g * 7)::text), 'hex') FROM generate_series(1, 50) g;
INSERT INTO app.blobs VALUES (1000, (SELECT string_agg(set_byte('\x00'::bytea, 0, g), ''::bytea ORDER BY g) FROM generate_series(0, 255) g));
CREATE TABLE public.empty_one (id int);
CREATE TABLE public."We-ird ""T""; x" (x int);
INSERT INTO public."We-ird ""T""; x" VALUES (1), (2);
CREATE TABLE public.measures (at date NOT NULL, v int) PARTITION BY RANGE (at);
CREATE TABLE public.measures_2024 PARTITION OF public.measures FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.measures_2025 PARTITION OF public.measures FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO public.measures VALUES ('2024-05-01', 1), ('2025-02-02', 2), ('2025-03-03', 3);
CREATE TABLE public.audit (msg text);
CREATE VIEW app.v_users AS SELECT id, name FROM app.users WHERE id > 1;
CREATE FUNCTION app.greet(n text) RETURNS text LANGUAGE plpgsql AS $body$
BEGIN
  -- GRANT ALL ON app.users TO ghost; is only text here
  RETURN '¡hola ' || n || '!' || $$;$$;
END
$body$;
CREATE FUNCTION public.log_insert() RETURNS trigger LANGUAGE plpgsql
  AS $$ BEGIN INSERT INTO public.audit VALUES ('added ' || NEW.id); RETURN NEW; END $$;
CREATE TRIGGER trg_users AFTER INSERT ON app.users FOR EACH ROW EXECUTE FUNCTION public.log_insert();
ALTER TABLE app.users OWNER TO ${owner};
ALTER TABLE app.blobs OWNER TO ${owner};
ALTER VIEW app.v_users OWNER TO ${owner};
ALTER FUNCTION app.greet(text) OWNER TO ${owner};
ALTER TABLE public.audit OWNER TO ${other};
GRANT USAGE ON SCHEMA app TO ${reader};
GRANT SELECT ON app.users TO ${reader};
ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} IN SCHEMA app GRANT SELECT ON TABLES TO ${reader};
ALTER TABLE app.users ENABLE ROW LEVEL SECURITY;
CREATE POLICY p_read ON app.users FOR SELECT TO ${reader} USING (true);
`;
}

const BLOBS_DIGEST = "SELECT md5(string_agg(b, ''::bytea ORDER BY id)) FROM app.blobs";

describe('postgres loader', () => {
  let shop: Dump;
  let shopDigest = '';
  let owner = '';
  let reader = '';
  let other = '';

  before(async () => {
    owner = await newRole('owner', 'NOLOGIN');
    reader = await newRole('reader', 'NOLOGIN');
    other = await newRole('other', 'NOLOGIN'); // stays: exists on the drill server, drill is no member
    shop = await seedAndDump('shop', shopSql(owner, reader, other));
    shopDigest = await psqlAdmin(BLOBS_DIGEST, shop.database);
    // The roles the dump names are gone, as on a drill server that never had them.
    await psqlAdmin(`DROP DATABASE ${ident(shop.database)};`);
    await psqlAdmin(`DROP ROLE ${owner}; DROP ROLE ${reader};`);
  });

  it('without tolerance, a role the server lacks fails the load naming it, and nothing was loaded', async () => {
    const loader = createDatabaseLoader(admin);
    const db = drillName();
    await loader.create(db, never);
    const error = await rejection(
      loader.load(db, Readable.from([shop.sql]), { signal: never, tolerateMissingRoles: false }),
    );
    assert.ok(error instanceof DatabaseError, String(error));
    assert.match(error.message, new RegExp(`^postgres socket .* as postgres: loading database ${db}: `));
    assert.match(error.message, new RegExp(`role "(${owner}|${reader})", which does not exist on this server`));
    assert.match(error.message, /nothing was loaded \(the load is one transaction\)/);
    assert.match(error.message, /postgres-globals component/);
    assert.equal(await loader.isEmpty(db, never), true);
    await loader.dropIfExists(db, never);
  });

  it('a drill role tolerating missing roles loads it, skipping exactly the statements for those roles', async () => {
    const loader = createDatabaseLoader(drill);
    assert.equal(loader.describe(), `postgres 127.0.0.1:${services().postgres.port} as ${drillRole}`);
    assert.match((await loader.check(never)).serverVersion, /^\d+\.\d+/);
    const db = drillName();
    assert.equal(await loader.exists(db, never), false);
    await loader.create(db, never);
    assert.equal(await loader.exists(db, never), true);
    assert.equal(await loader.isEmpty(db, never), true);

    const report = await loader.load(db, Readable.from([shop.sql]), { signal: never, tolerateMissingRoles: true });
    assert.deepEqual(report.warnings, []);
    const missing = (role: string) => `skipped: role "${role}" does not exist on postgres 127.0.0.1:`;
    const expectSkipped = (statement: string, reason: string) =>
      assert.ok(
        report.skipped.some((line) => line.startsWith(`${statement} — `) && line.includes(reason)),
        `not skipped: ${statement}\n${report.skipped.join('\n')}`,
      );
    expectSkipped(`ALTER SCHEMA app OWNER TO ${owner};`, missing(owner));
    expectSkipped(`ALTER TABLE app.users OWNER TO ${owner};`, missing(owner));
    expectSkipped(`ALTER FUNCTION app.greet(n text) OWNER TO ${owner};`, missing(owner));
    expectSkipped(
      `ALTER TABLE public.audit OWNER TO ${other};`,
      `skipped: user ${drillRole} is not a member of role "${other}"`,
    );
    expectSkipped(`GRANT SELECT ON TABLE app.users TO ${reader};`, missing(reader));
    expectSkipped(`CREATE POLICY p_read ON app.users FOR SELECT TO ${reader} USING (true);`, missing(reader));
    expectSkipped(
      `ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} IN SCHEMA app GRANT SELECT ON TABLES TO ${reader};`,
      missing(owner),
    );
    // Objects the superuser created are the superuser's: the drill role may not give objects to it either.
    expectSkipped('ALTER FUNCTION public.log_insert() OWNER TO postgres;', 'is not a member of role "postgres"');
    for (const line of report.skipped)
      assert.match(line, new RegExp(` (${owner}|${reader}|${other}|postgres)[; ]`), line);

    assert.equal(await loader.isEmpty(db, never), false);
    assert.deepEqual(await loader.countRows(db, never, shop.database), shop.tables);
    assert.deepEqual(Object.keys(shop.tables).sort(), [
      'app.blobs',
      'app.users',
      'public.We-ird "T"; x',
      'public.audit',
      'public.empty_one',
      'public.measures_2024',
      'public.measures_2025',
    ]);
    assert.equal(await loader.queryScalar(db, BLOBS_DIGEST, never), shopDigest);
    assert.equal(await loader.queryScalar(db, "SELECT app.greet('mundo')", never), '¡hola mundo!;');
    assert.equal(
      await loader.queryScalar(db, 'SELECT bio FROM app.users WHERE id = 1', never),
      'tab\there\nnewline \\ backslash; \\.',
    );
    assert.equal(await loader.queryScalar(db, 'SELECT name FROM app.v_users WHERE id = 2', never), null);
    assert.equal(await loader.queryScalar(db, "SELECT ''", never), '');
    assert.equal(await loader.queryScalar(db, `SELECT 'a,"b'`, never), 'a,"b');
    assert.equal(await loader.queryScalar(db, 'SELECT 1 WHERE false', never), null);
    // Everything belongs to the drill role now; the trigger works.
    assert.equal(await psqlAdmin("SELECT tableowner FROM pg_tables WHERE tablename = 'users'", db), drillRole);
    await psqlAdmin("INSERT INTO app.users VALUES (9, 'n', 'b');", db);
    assert.equal(await psqlAdmin('SELECT msg FROM public.audit', db), 'added 9');

    assert.ok((await loader.listDatabases(PREFIX, never)).includes(db));
    await loader.dropIfExists(db, never);
    assert.equal(await loader.exists(db, never), false);
    await loader.dropIfExists(db, never);
  });

  it('a superuser keeps the ownership and privileges of roles that exist', async () => {
    const owned = await newRole('owned', 'NOLOGIN');
    const dump = await seedAndDump(
      'owned',
      `CREATE TABLE public.t (id int); INSERT INTO public.t VALUES (1), (2);
       ALTER TABLE public.t OWNER TO ${owned}; GRANT SELECT ON public.t TO ${drillRole};`,
    );
    const loader = createDatabaseLoader(admin);
    const db = drillName();
    await loader.create(db, never);
    assert.deepEqual(await loader.load(db, Readable.from([dump.sql]), { signal: never, tolerateMissingRoles: true }), {
      skipped: [],
      warnings: [],
    });
    assert.equal(await psqlAdmin("SELECT tableowner FROM pg_tables WHERE tablename = 't'", db), owned);
    assert.equal(await psqlAdmin(`SELECT has_table_privilege('${drillRole}', 'public.t', 'SELECT')`, db), 't');
    assert.deepEqual(await loader.countRows(db, never, dump.database), { 'public.t': 2 });
    await loader.dropIfExists(db, never);
  });

  it('a dump cut short, without its trailer or garbled fails and leaves the database empty', async () => {
    const dump = await seedAndDump(
      'plain',
      `CREATE TABLE public.t (id int, s text); INSERT INTO public.t SELECT g, repeat('x', g % 50) FROM generate_series(1, 2000) g;
       CREATE TABLE public.u (id int); INSERT INTO public.u VALUES (1);`,
    );
    const loader = createDatabaseLoader(admin);
    const text = dump.sql.toString('utf8');

    const inCopy = drillName();
    await loader.create(inCopy, never);
    const cutAt = text.indexOf('\n', text.indexOf('COPY public.t') + 5000);
    const cut = await rejection(
      loader.load(inCopy, Readable.from([Buffer.from(text.slice(0, cutAt + 1))]), {
        signal: never,
        tolerateMissingRoles: false,
      }),
    );
    assert.ok(cut instanceof DatabaseError, String(cut));
    assert.match(
      cut.message,
      /the dump is not a valid dump: the dump ends inside the data of table public\.t \(no \\\. line\): it is truncated/,
    );
    assert.match(cut.message, /psql was stopped before the end, so nothing was loaded/);
    assert.equal(await loader.isEmpty(inCopy, never), true);

    // Cut between statements: psql would commit what it has; the missing trailer must stop it.
    const noTrailer = drillName();
    await loader.create(noTrailer, never);
    const boundary = text.slice(0, text.lastIndexOf('--\n-- PostgreSQL database dump complete'));
    const missing = await rejection(
      loader.load(noTrailer, Readable.from([Buffer.from(boundary)]), { signal: never, tolerateMissingRoles: true }),
    );
    assert.match(missing.message, /does not end with "-- PostgreSQL database dump complete"/);
    assert.equal(await loader.isEmpty(noTrailer, never), true);

    const garbledDb = drillName();
    await loader.create(garbledDb, never);
    const garbled = text.replace('CREATE TABLE public.u', 'CREATE TABLEX public.u');
    assert.notEqual(garbled, text);
    const failed = await rejection(
      loader.load(garbledDb, Readable.from([Buffer.from(garbled)]), { signal: never, tolerateMissingRoles: false }),
    );
    assert.match(
      failed.message,
      new RegExp(
        `loading database ${garbledDb} failed; nothing was loaded \\(the load is one transaction\\) \\(.*syntax error at or near "TABLEX"`,
      ),
    );
    assert.equal(await loader.isEmpty(garbledDb, never), true);

    // The intact dump loads into the same database afterwards.
    await loader.load(garbledDb, Readable.from([dump.sql]), { signal: never, tolerateMissingRoles: false });
    assert.deepEqual(await loader.countRows(garbledDb, never, dump.database), { 'public.t': 2000, 'public.u': 1 });
    const again = await rejection(
      loader.load(garbledDb, Readable.from([dump.sql]), { signal: never, tolerateMissingRoles: false }),
    );
    assert.match(again.message, /the database already holds objects the dump creates; nothing was loaded/);

    for (const db of [inCopy, noTrailer, garbledDb]) await loader.dropIfExists(db, never);
  });

  it('names the server and says what to do when it is unreachable, refuses the password or a privilege', async () => {
    const closed = await freePort();
    const nowhere = createDatabaseLoader({ kind: 'postgres', host: '127.0.0.1', port: closed, user: 'x' });
    const unreachable = await rejection(nowhere.check(never));
    assert.ok(unreachable instanceof DatabaseError);
    assert.match(
      unreachable.message,
      new RegExp(
        `^postgres 127\\.0\\.0\\.1:${closed} as x: cannot connect \\(.*\\); is the server running and reachable\\?`,
      ),
    );

    const wrong = await rejection(createDatabaseLoader({ ...drill, password: 'not the password' }).check(never));
    assert.match(wrong.message, new RegExp(`the server refused the password of user ${drillRole}`));
    assert.doesNotMatch(wrong.message, /not the password/);

    const password = `pw-${uniqueName('s')}`;
    const plain = await newRole('nocreate', `LOGIN PASSWORD ${literal(password)}`);
    const limited = createDatabaseLoader({ ...drill, user: plain, password });
    const refused = await rejection(limited.create(drillName(), never));
    assert.match(
      refused.message,
      new RegExp(
        `creating database .*: user ${plain} lacks the privilege \\(.*permission denied to create database.*\\); ALTER ROLE "${plain}" CREATEDB`,
      ),
    );

    const absent = await rejection(
      createDatabaseLoader(admin).load(`${PREFIX}-absent`, Readable.from([shop.sql]), {
        signal: never,
        tolerateMissingRoles: true,
      }),
    );
    assert.match(absent.message, /database ".*-absent" does not exist/);
  });

  it('quotes any database name: double quotes, single quotes, backslashes, spaces, unicode', async () => {
    const dump = await seedAndDump('quoting', 'CREATE TABLE public.t (id int); INSERT INTO public.t VALUES (7);');
    const loader = createDatabaseLoader(drill);
    const db = `${PREFIX}-we"ird 'n\\ é=x`;
    await loader.create(db, never);
    assert.equal(await loader.exists(db, never), true);
    assert.ok((await loader.listDatabases(PREFIX, never)).includes(db));
    await loader.load(db, Readable.from([dump.sql]), { signal: never, tolerateMissingRoles: true });
    assert.deepEqual(await loader.countRows(db, never, dump.database), { 'public.t': 1 });
    assert.equal(await loader.queryScalar(db, 'SELECT current_database()', never), db);
    await loader.dropIfExists(db, never);
    assert.equal(await loader.exists(db, never), false);
  });

  it('says so when psql is not installed', async () => {
    const saved = process.env.PATH;
    process.env.PATH = root;
    try {
      const error = await rejection(createDatabaseLoader(admin).check(never));
      assert.ok(error instanceof DatabaseError);
      assert.match(error.message, /psql is not installed or not on PATH; install the Debian package postgresql-client/);
      // A load fails the same way (before or after reading the roles), and stops whatever feeds it.
      for (const tolerateMissingRoles of [true, false]) {
        const sql = Readable.from([shop.sql]);
        const load = await rejection(
          createDatabaseLoader(admin).load(drillName(), sql, { signal: never, tolerateMissingRoles }),
        );
        assert.ok(load instanceof DatabaseError, String(load));
        assert.match(load.message, /psql is not installed or not on PATH/);
        assert.equal(sql.destroyed, true);
      }
    } finally {
      process.env.PATH = saved;
    }
  });

  it('passes the password only through the environment; an abort stops psql and loads nothing', async () => {
    const loader = createDatabaseLoader(drill);
    const db = drillName();
    await loader.create(db, never);
    const text = shop.sql.toString('utf8');
    const feed = new PassThrough();
    // Up to the middle of the first COPY's data: tables exist in the open transaction.
    feed.write(text.slice(0, text.indexOf('\n', text.indexOf('FROM stdin;')) + 1));
    const abort = new AbortController();
    const loading = loader.load(db, feed, { signal: abort.signal, tolerateMissingRoles: true });
    loading.catch(() => {});

    const pid = await waitForProcess(`dbname='${db}'`);
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    assert.ok(!argv.some((arg) => arg.includes(DRILL_PASSWORD)), `password in argv: ${argv.join(' ')}`);
    assert.ok(argv.includes('--single-transaction'));
    const environment = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    assert.ok(environment.includes(`PGPASSWORD=${DRILL_PASSWORD}`));

    const reason = new Error('stop the drill');
    abort.abort(reason);
    assert.equal(await rejection(loading), reason);
    assert.equal(isAlive(pid), false, 'psql is still running after the load settled');
    assert.equal(await loader.isEmpty(db, never), true);
    await loader.dropIfExists(db, never);
  });
});

async function waitForProcess(needle: string): Promise<number> {
  for (let attempt = 0; attempt < 500; attempt++) {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(needle)) return Number(entry);
      } catch {
        // gone meanwhile
      }
    }
    await sleep(20);
  }
  throw new Error(`no process with ${needle} in its argv`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
