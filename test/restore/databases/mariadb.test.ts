// The MariaDB loader against the real test server (scripts/test-services.sh): dumps made by the
// real mariadb source from seeded databases (tables, an empty one, a view, a trigger, routines,
// unicode and binary data) are loaded into new databases named like a drill's, as the
// administrator and as a drill account with privileges on backproof\_drill\_<prefix>% only; DEFINER
// accounts the server lacks or the user may not name; incomplete and garbled dumps; unreachable
// servers; the password kept out of argv; abort. Every database and account is unique and dropped.
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
import { createMariadbSource } from '../../../src/sources/mariadb.js';
import { mariadbAdmin, services, uniqueName } from '../../helpers/services.js';

const SET_ID = '20251104T030000Z-K3X9QA';
/** `backproof_drill_<unique>`: the drill account may create databases starting with this only. */
const PREFIX = `backproof_drill_${uniqueName('t').slice(0, 14)}`;
const DRILL_PASSWORD = `dr ill#$;-'"${uniqueName('pw')}`;

let root = '';
const sourceDatabases: string[] = [];
const accounts: string[] = [];
let drillUser = '';
let admin: DatabaseConnection;
let drill: DatabaseConnection;
let nameCounter = 0;

/** A database name like a drill's (uppercase letters and `-`), unique in this run. */
function drillName(): string {
  nameCounter += 1;
  const name = `${PREFIX}-${SET_ID}_${nameCounter}`;
  assert.ok(name.length <= 64, `${name} is too long for MariaDB`);
  return name;
}

function q(name: string): string {
  return `\`${name.replaceAll('`', '``')}\``;
}

function utf8(sql: string): string {
  return `SET NAMES utf8mb4;\n${sql}`;
}

const never = new AbortController().signal;

before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'backproof-load-mariadb-'));
  const m = services().mariadb;
  admin = { kind: 'mariadb', host: m.host, port: m.port, socket: m.socket, user: m.adminUser };
  drillUser = uniqueName('drill');
  accounts.push(`'${drillUser}'@'127.0.0.1'`);
  await mariadbAdmin(
    utf8(
      `CREATE USER '${drillUser}'@'127.0.0.1' IDENTIFIED BY '${DRILL_PASSWORD.replaceAll("'", "''")}';\n` +
        `GRANT ALL ON \`${PREFIX.replaceAll('_', '\\_')}%\`.* TO '${drillUser}'@'127.0.0.1';`,
    ),
  );
  drill = { kind: 'mariadb', host: m.host, port: m.port, user: drillUser, password: DRILL_PASSWORD };
});

after(async () => {
  const drops: string[] = [];
  for (const db of sourceDatabases) drops.push(`DROP DATABASE IF EXISTS ${q(db)};`);
  const leftovers = await createDatabaseLoader(admin).listDatabases(PREFIX, never);
  for (const db of leftovers) drops.push(`DROP DATABASE IF EXISTS ${q(db)};`);
  for (const account of accounts) drops.push(`DROP USER IF EXISTS ${account};`);
  if (drops.length > 0) await mariadbAdmin(utf8(drops.join('\n')));
  await rm(root, { recursive: true, force: true });
});

const SHOP_SQL = String.raw`
CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(100), bio TEXT) DEFAULT CHARSET=utf8mb4;
INSERT INTO users VALUES (1, 'Zoë 日本語 🎉', 'a''b\\c"d;),('), (2, 'línea\nnueva', '\0nul'), (3, NULL, '');
CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB);
INSERT INTO blobs SELECT seq, UNHEX(SHA2(seq, 512)) FROM seq_1_to_50;
INSERT INTO blobs SELECT 1000, (SELECT GROUP_CONCAT(CHAR(seq USING binary) ORDER BY seq SEPARATOR '') FROM seq_0_to_255);
CREATE TABLE empty_one (id INT PRIMARY KEY);
CREATE TABLE ${'`'}We-ird Name; x${'`'} (x INT);
INSERT INTO ${'`'}We-ird Name; x${'`'} VALUES (1), (2);
CREATE TABLE audit (msg VARCHAR(200));
CREATE VIEW v_users AS SELECT id, name FROM users WHERE id > 1;
CREATE TRIGGER trg_users AFTER INSERT ON users FOR EACH ROW INSERT INTO audit VALUES (CONCAT('added ', NEW.id));
CREATE FUNCTION greet(n VARCHAR(50)) RETURNS VARCHAR(100) CHARSET utf8mb4 DETERMINISTIC RETURN CONCAT('¡hola ', n, '!');
CREATE PROCEDURE add_user(IN i INT) INSERT INTO users (id, name) VALUES (i, 'proc');
`;
const SHOP_TABLES = ['users', 'blobs', 'empty_one', 'We-ird Name; x', 'audit'];

interface Dump {
  database: string;
  sql: Buffer;
  tables: Record<string, number>;
}

/** Seeds a database as root (so DEFINER is root@localhost unless the SQL says otherwise) and dumps it with the source. */
async function seedAndDump(prefix: string, sql: string): Promise<Dump> {
  const database = uniqueName(prefix);
  sourceDatabases.push(database);
  await mariadbAdmin(utf8(`CREATE DATABASE ${q(database)} CHARACTER SET utf8mb4;\nUSE ${q(database)};\n${sql}`));
  const m = services().mariadb;
  const source = createMariadbSource({
    name: 'main',
    type: 'mariadb',
    host: m.host,
    port: m.port,
    socket: m.socket,
    user: m.adminUser,
    databases: [database],
    excludeDatabases: [],
    excludeTables: [],
    users: false,
  });
  const ctx = { signal: never, log: silentLogger, scratchDir: root };
  const dumps: Dump[] = [];
  for await (const component of source.components(ctx)) {
    const chunks: Buffer[] = [];
    for await (const chunk of component.data) chunks.push(chunk as Buffer);
    const facts = await component.facts;
    dumps.push({ database, sql: Buffer.concat(chunks), tables: facts.tables ?? {} });
  }
  assert.equal(dumps.length, 1);
  return dumps[0] as Dump;
}

async function checksums(db: string, tables: string[]): Promise<string[]> {
  const out = await mariadbAdmin(utf8(tables.map((t) => `CHECKSUM TABLE ${q(db)}.${q(t)} EXTENDED;`).join('\n')));
  return out.split('\n').map((line) => line.split('\t')[1] ?? '');
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  assert.fail('expected a rejection');
}

let shop: Dump;

describe('mariadb loader', () => {
  before(async () => {
    shop = await seedAndDump('shop', SHOP_SQL);
    assert.equal(Object.keys(shop.tables).length, SHOP_TABLES.length);
  });

  it('loads a dump of the mariadb source into a new database named like a drill, rows and data equal', async () => {
    const loader = createDatabaseLoader(admin);
    const db = drillName();
    assert.equal(loader.describe(), `mariadb socket ${services().mariadb.socket} as root`);
    assert.equal((await loader.check(never)).serverVersion, await mariadbAdmin('SELECT VERSION()'));
    assert.equal(await loader.exists(db, never), false);
    await loader.create(db, never);
    assert.equal(await loader.exists(db, never), true);
    assert.equal(await loader.isEmpty(db, never), true);
    assert.ok((await loader.listDatabases(PREFIX, never)).includes(db));

    const report = await loader.load(db, Readable.from([shop.sql]), { signal: never, tolerateMissingRoles: false });
    assert.deepEqual(report, { skipped: [], warnings: [] });
    assert.equal(await loader.isEmpty(db, never), false);

    // Keyed like the manifest: the original database's name, not the drill database's.
    assert.deepEqual(await loader.countRows(db, never, shop.database), shop.tables);
    assert.deepEqual(await checksums(db, SHOP_TABLES), await checksums(shop.database, SHOP_TABLES));

    // The view, the function (unicode), NULL and 'NULL', no row, XML-special characters.
    assert.equal(await loader.queryScalar(db, 'SELECT name FROM v_users WHERE id = 2', never), 'línea\nnueva');
    assert.equal(await loader.queryScalar(db, "SELECT greet('mundo')", never), '¡hola mundo!');
    assert.equal(await loader.queryScalar(db, 'SELECT name FROM users WHERE id = 3', never), null);
    assert.equal(await loader.queryScalar(db, "SELECT 'NULL'", never), 'NULL');
    assert.equal(await loader.queryScalar(db, 'SELECT id FROM users WHERE id < 0', never), null);
    assert.equal(await loader.queryScalar(db, `SELECT '<&>"''x'`, never), `<&>"'x`);
    assert.equal(await loader.queryScalar(db, 'SELECT COUNT(*) FROM blobs', never), '51');
    // The trigger and the procedure came along, and work.
    await mariadbAdmin('CALL add_user(9)', db);
    assert.equal(await mariadbAdmin('SELECT msg FROM audit', db), 'added 9');

    await loader.dropIfExists(db, never);
    assert.equal(await loader.exists(db, never), false);
    await loader.dropIfExists(db, never); // nothing there: no error
    assert.ok(!(await loader.listDatabases(PREFIX, never)).includes(db));
  });

  it('as a drill account: a DEFINER it may not name fails a real restore, and is rewritten in a drill', async () => {
    const loader = createDatabaseLoader(drill);
    assert.equal(loader.describe(), `mariadb 127.0.0.1:${services().mariadb.port} as ${drillUser}`);
    await loader.check(never);

    const strict = drillName();
    await loader.create(strict, never);
    const error = await rejection(
      loader.load(strict, Readable.from([shop.sql]), { signal: never, tolerateMissingRoles: false }),
    );
    assert.ok(error instanceof DatabaseError, String(error));
    assert.match(error.message, /^mariadb 127\.0\.0\.1:\d+ as \w+: /);
    assert.match(error.message, /run as `root`@`localhost` \(DEFINER\)/);
    assert.match(error.message, /SET USER/);
    await loader.dropIfExists(strict, never);

    const db = drillName();
    await loader.create(db, never);
    const report = await loader.load(db, Readable.from([shop.sql]), { signal: never, tolerateMissingRoles: true });
    assert.equal(report.skipped.length, 1, report.skipped.join('\n'));
    assert.match(
      report.skipped[0] ?? '',
      /^DEFINER=`root`@`localhost` of 4 view\(s\), trigger\(s\), routine\(s\) or event\(s\) rewritten to DEFINER=CURRENT_USER: user \w+ may not name another account/,
    );
    assert.deepEqual(await loader.countRows(db, never, shop.database), shop.tables);
    assert.equal(await loader.queryScalar(db, 'SELECT COUNT(*) FROM v_users', never), '2');
    assert.equal(await loader.queryScalar(db, "SELECT greet('drill')", never), '¡hola drill!');
    assert.equal(
      await mariadbAdmin(`SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '${db}'`),
      `${drillUser}@127.0.0.1`,
    );
    await loader.dropIfExists(db, never);
  });

  it('a DEFINER account the server lacks: an error naming it without tolerance, rewritten with it', async () => {
    const ghost = uniqueName('ghost');
    accounts.push(`'${ghost}'@'%'`);
    await mariadbAdmin(`CREATE USER '${ghost}'@'%'`);
    // The account may read its view's table, as an application account would: a SQL SECURITY DEFINER
    // view whose definer may not is dumped with database-qualified columns and loads nowhere else.
    const dump = await seedAndDump(
      'ghosted',
      `CREATE TABLE t (id INT); INSERT INTO t VALUES (1), (2), (3);
       GRANT SELECT ON t TO '${ghost}'@'%';
       CREATE DEFINER='${ghost}'@'%' SQL SECURITY DEFINER VIEW v AS SELECT id FROM t;
       CREATE DEFINER='${ghost}'@'%' TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.id = NEW.id * 10;
       CREATE DEFINER='${ghost}'@'%' PROCEDURE p() SELECT COUNT(*) FROM t;`,
    );
    await mariadbAdmin(`DROP USER '${ghost}'@'%'`);
    const loader = createDatabaseLoader(admin); // root may name any account: only existence matters

    const strict = drillName();
    await loader.create(strict, never);
    const error = await rejection(
      loader.load(strict, Readable.from([dump.sql]), { signal: never, tolerateMissingRoles: false }),
    );
    assert.ok(error instanceof DatabaseError, String(error));
    assert.match(
      error.message,
      new RegExp(`run as \`${ghost}\`@\`%\` \\(DEFINER\\), but that account does not exist on this server`),
    );
    assert.match(error.message, /restore the users and grants component of the set \(<source>\.users\) first/);
    await loader.dropIfExists(strict, never);

    const db = drillName();
    await loader.create(db, never);
    const report = await loader.load(db, Readable.from([dump.sql]), { signal: never, tolerateMissingRoles: true });
    assert.deepEqual(report.skipped, [
      `DEFINER=\`${ghost}\`@\`%\` of 3 view(s), trigger(s), routine(s) or event(s) rewritten to DEFINER=CURRENT_USER: ` +
        'that account does not exist on this server',
    ]);
    assert.deepEqual(await loader.countRows(db, never, dump.database), dump.tables);
    assert.deepEqual(dump.tables, { [`${dump.database}.t`]: 3 });
    // The view runs (as root now) instead of failing with "the user specified as a definer does not exist".
    assert.equal(await loader.queryScalar(db, 'SELECT SUM(id) FROM v', never), '6');
    await mariadbAdmin('INSERT INTO t VALUES (4)', db);
    assert.equal(await loader.queryScalar(db, 'SELECT MAX(id) FROM t', never), '40');
    await loader.dropIfExists(db, never);
  });

  it('refuses a dump cut short or without its trailer, and reports where the server stopped on a garbled one', async () => {
    const loader = createDatabaseLoader(admin);
    const text = shop.sql.toString('utf8');

    const half = drillName();
    await loader.create(half, never);
    const cut = await rejection(
      loader.load(half, Readable.from([shop.sql.subarray(0, Math.floor(shop.sql.length / 2))]), {
        signal: never,
        tolerateMissingRoles: false,
      }),
    );
    assert.ok(cut instanceof DatabaseError, String(cut));
    assert.match(cut.message, new RegExp(`loading database ${half}: the dump is not a complete mariadb-dump dump`));
    assert.match(cut.message, /restore from an intact copy/);

    const noTrailer = drillName();
    await loader.create(noTrailer, never);
    const withoutTrailer = text.slice(0, text.lastIndexOf('-- Dump completed'));
    const missing = await rejection(
      loader.load(noTrailer, Readable.from([Buffer.from(withoutTrailer)]), {
        signal: never,
        tolerateMissingRoles: false,
      }),
    );
    assert.match(missing.message, /does not end with its "-- Dump completed on <date>" line/);

    const garbledDb = drillName();
    await loader.create(garbledDb, never);
    const garbled = text.replace(/\) ENGINE=InnoDB/, ') ENGINE=InnoDB GARBLED(');
    assert.notEqual(garbled, text);
    const failed = await rejection(
      loader.load(garbledDb, Readable.from([Buffer.from(garbled)]), { signal: never, tolerateMissingRoles: true }),
    );
    assert.ok(failed instanceof DatabaseError, String(failed));
    assert.match(
      failed.message,
      new RegExp(
        `loading database ${garbledDb} failed; the statements before the failing one were loaded \\(ERROR 1064 \\(42000\\) at line \\d+`,
      ),
    );

    for (const db of [half, noTrailer, garbledDb]) await loader.dropIfExists(db, never);
  });

  it('names the server and says what to do when it is unreachable, refuses the password, or refuses a name', async () => {
    const closed = await freePort();
    const nowhere = createDatabaseLoader({ kind: 'mariadb', host: '127.0.0.1', port: closed, user: 'x' });
    const unreachable = await rejection(nowhere.check(never));
    assert.ok(unreachable instanceof DatabaseError);
    assert.match(
      unreachable.message,
      new RegExp(`^mariadb 127\\.0\\.0\\.1:${closed} as x: cannot connect \\(.*\\); is the server running`),
    );

    const wrong = createDatabaseLoader({ ...drill, password: 'not the password' });
    const refused = await rejection(wrong.check(never));
    assert.match(refused.message, new RegExp(`the server refused user ${drillUser}: wrong password`));
    assert.doesNotMatch(refused.message, /not the password/);

    const loader = createDatabaseLoader(drill);
    const outside = await rejection(loader.create(uniqueName('notdrill'), never));
    assert.match(outside.message, /creating database \w+: user \w+ lacks the privilege \(ERROR 1044/);
    assert.match(outside.message, /GRANT ALL ON `backproof\\_drill\\_%`\.\*/);

    const absent = await rejection(
      createDatabaseLoader(admin).load(`${PREFIX}-absent`, Readable.from([shop.sql]), {
        signal: never,
        tolerateMissingRoles: false,
      }),
    );
    assert.match(absent.message, /Unknown database/);
  });

  it('quotes any database name: backticks, quotes, spaces, unicode', async () => {
    const loader = createDatabaseLoader(admin);
    const db = `${PREFIX}-we\`ird 'n"é`;
    await loader.create(db, never);
    assert.equal(await loader.exists(db, never), true);
    assert.ok((await loader.listDatabases(PREFIX, never)).includes(db));
    await loader.load(db, Readable.from([shop.sql]), { signal: never, tolerateMissingRoles: false });
    assert.deepEqual(await loader.countRows(db, never, shop.database), shop.tables);
    assert.equal(await loader.queryScalar(db, 'SELECT DATABASE()', never), db);
    await loader.dropIfExists(db, never);
    assert.equal(await loader.exists(db, never), false);
  });

  it('says so when the mariadb client is not installed', async () => {
    const saved = process.env.PATH;
    process.env.PATH = root; // a directory without any program
    try {
      const error = await rejection(createDatabaseLoader(admin).check(never));
      assert.ok(error instanceof DatabaseError);
      assert.match(
        error.message,
        /the mariadb client \(or mysql\) is not installed or not on PATH; install the Debian package mariadb-client/,
      );
      // A load fails the same way, and stops whatever feeds it.
      const sql = Readable.from([shop.sql]);
      const load = await rejection(
        createDatabaseLoader(admin).load(drillName(), sql, { signal: never, tolerateMissingRoles: true }),
      );
      assert.match(load.message, /is not installed/);
      assert.equal(sql.destroyed, true);
    } finally {
      process.env.PATH = saved;
    }
  });

  it('passes the password only through the environment, and stops the client on abort', async () => {
    const loader = createDatabaseLoader(drill);
    const db = drillName();
    await loader.create(db, never);
    const feed = new PassThrough();
    feed.write(shop.sql.subarray(0, 2000)); // the client now waits for more
    const abort = new AbortController();
    const loading = loader.load(db, feed, { signal: abort.signal, tolerateMissingRoles: true });
    loading.catch(() => {});

    const pid = await waitForProcess(`--database=${db}`);
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    assert.ok(!argv.some((arg) => arg.includes(DRILL_PASSWORD)), `password in argv: ${argv.join(' ')}`);
    const environment = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    assert.ok(environment.includes(`MYSQL_PWD=${DRILL_PASSWORD}`));
    assert.ok(environment.includes('LC_ALL=C'));

    const reason = new Error('stop the drill');
    abort.abort(reason);
    assert.equal(await rejection(loading), reason);
    assert.equal(isAlive(pid), false, 'the client is still running after the load settled');
    await loader.dropIfExists(db, never);
  });
});

/** The pid of the process whose argv holds `needle`; polls /proc (bounded) while the load starts. */
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

/** A port nothing listens on (bound, then closed). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
