// The mariadb source against the real MariaDB test server (scripts/test-services.sh): round trips
// through plain zstd and the mariadb client, rows per table checked against COUNT(*), consistency
// under a concurrent writer, privileges, wrong passwords, missing databases, a server that does not
// answer, abort, and passwords kept out of every command line. Every test uses its own databases
// and accounts (uniqueName) and drops them afterwards.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import type { MariadbSourceConfig } from '../../src/config/schema.js';
import { SourceError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/log.js';
import {
  compareWithServer,
  componentNameFor,
  createMariadbSource,
  decodeDatabaseName,
  encodeDatabaseName,
  parseDumpToolVersion,
} from '../../src/sources/mariadb.js';
import type { ComponentFacts, ComponentStream, Source, SourceContext } from '../../src/sources/types.js';
import { mariadbAdmin, services, uniqueName } from '../helpers/services.js';

/** Rows per writer transaction in the consistency test. */
const N = 17;

let root = '';
const databases: string[] = [];
const accounts: string[] = [];
const children: ChildProcess[] = [];

before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'backproof-mariadb-'));
});
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'close');
    }
  }
});
after(async () => {
  const drops = [
    ...databases.map((db) => `DROP DATABASE IF EXISTS ${q(db)};`),
    ...accounts.map((user) => `DROP USER IF EXISTS '${user}'@'127.0.0.1';`),
  ];
  if (drops.length > 0) await mariadbAdmin(utf8(drops.join('\n')));
  await rm(root, { recursive: true, force: true });
});

function context(signal: AbortSignal = new AbortController().signal): SourceContext {
  return { signal, log: silentLogger, scratchDir: root };
}

/** `name` as a quoted identifier. */
function q(name: string): string {
  return `\`${name.replaceAll('`', '``')}\``;
}

/** The admin client's default character set is latin1: say utf8mb4, or non-ASCII text arrives double-encoded. */
function utf8(sql: string): string {
  return `SET NAMES utf8mb4;\n${sql}`;
}

async function createDatabase(prefix: string, sql = '', name = uniqueName(prefix)): Promise<string> {
  databases.push(name);
  await mariadbAdmin(utf8(`CREATE DATABASE ${q(name)} CHARACTER SET utf8mb4;`));
  if (sql) await mariadbAdmin(utf8(`USE ${q(name)};\n${sql}`));
  return name;
}

interface Account {
  user: string;
  password: string;
  passwordFile: string;
}

/** An account on 127.0.0.1 with the given GRANT statements (`%u` stands for the account). */
async function createAccount(grants: string[]): Promise<Account> {
  const user = uniqueName('bk');
  // Spaces, #, $, ; and - in the password: it travels through MYSQL_PWD unchanged.
  const password = `p w#$;-${uniqueName('pw')}`;
  accounts.push(user);
  const account = `'${user}'@'127.0.0.1'`;
  const statements = [
    `CREATE USER ${account} IDENTIFIED BY '${password}';`,
    ...grants.map((g) => `${g.replaceAll('%u', account)};`),
  ];
  await mariadbAdmin(utf8(statements.join('\n')));
  const passwordFile = path.join(root, `${user}.pass`);
  await writeFile(passwordFile, `${password}\n`);
  await chmod(passwordFile, 0o600);
  return { user, password, passwordFile };
}

/** The privileges the docs ask for, on `db`. */
function backupGrants(db: string): string[] {
  return [`GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON ${q(db)}.* TO %u`, 'GRANT SELECT ON mysql.proc TO %u'];
}

function sourceFor(account: Account, overrides: Partial<MariadbSourceConfig> = {}): Source {
  const m = services().mariadb;
  return createMariadbSource({
    name: 'main',
    type: 'mariadb',
    host: m.host,
    port: m.port,
    user: account.user,
    passwordFile: account.passwordFile,
    excludeDatabases: [],
    excludeTables: [],
    users: false,
    ...overrides,
  });
}

interface Outcome {
  name: string;
  kind: string;
  extension: string;
  bytes: number;
  /** The data as `zstd -3` wrote it, when a directory was given. */
  file?: string;
  facts?: ComponentFacts;
  error?: unknown;
  dataError?: unknown;
}

/** Runs the source like the core does: each component's data to the end (through zstd to a file), then its facts. */
async function backUp(source: Source, options: { dir?: string; ctx?: SourceContext } = {}): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  for await (const component of source.components(options.ctx ?? context())) {
    const outcome: Outcome = { name: component.name, kind: component.kind, extension: component.extension, bytes: 0 };
    component.data.on('data', (chunk: Buffer) => {
      outcome.bytes += chunk.length;
    });
    try {
      if (options.dir) {
        outcome.file = path.join(options.dir, `${component.name}.${component.extension}.zst`);
        const zstd = spawn('zstd', ['-q', '-3', '-f', '-o', outcome.file], { stdio: ['pipe', 'ignore', 'inherit'] });
        children.push(zstd);
        const exited = once(zstd, 'close');
        await pipeline(component.data, zstd.stdin);
        const [code] = await exited;
        assert.equal(code, 0, 'zstd failed');
      } else {
        for await (const _ of component.data);
      }
    } catch (error) {
      outcome.dataError = error;
    }
    await component.facts.then(
      (facts) => {
        outcome.facts = facts;
      },
      (error: unknown) => {
        outcome.error = error;
      },
    );
    outcomes.push(outcome);
  }
  return outcomes;
}

function only(outcomes: Outcome[]): Outcome {
  assert.equal(outcomes.length, 1, `expected one component, got ${outcomes.map((o) => o.name).join(', ')}`);
  return outcomes[0] as Outcome;
}

/** Loads a zstd dump into a new database with nothing but zstd and the mariadb client. */
async function restore(file: string, prefix: string): Promise<string> {
  const target = await createDatabase(prefix);
  execFileSync(
    'bash',
    [
      '-o',
      'pipefail',
      '-c',
      'zstd -dc -- "$1" | mariadb --no-defaults --default-character-set=utf8mb4 --socket="$2" --user=root -- "$3"',
      'restore',
      file,
      services().mariadb.socket,
      target,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return target;
}

async function countRows(db: string, table: string): Promise<number> {
  return Number(await mariadbAdmin(utf8(`SELECT COUNT(*) FROM ${q(db)}.${q(table)}`)));
}

async function checksums(db: string, tables: string[]): Promise<string[]> {
  const out = await mariadbAdmin(utf8(tables.map((t) => `CHECKSUM TABLE ${q(db)}.${q(t)} EXTENDED;`).join('\n')));
  return out.split('\n').map((line) => line.split('\t')[1] ?? '');
}

function zstdText(file: string): string {
  return execFileSync('zstd', ['-dc', '--', file], { maxBuffer: 1024 * 1024 * 1024 }).toString('utf8');
}

/** The pids of running mariadb-dump processes whose command line mentions `needle`. */
function dumpProcesses(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (/(mariadb-dump|mysqldump)$/.test(argv[0] ?? '') && argv.includes(needle)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const WEIRD_TABLE = '`we``ird (name); x`';

const ROUND_TRIP_SQL = String.raw`
CREATE TABLE texts (id INT PRIMARY KEY, t TEXT, v VARCHAR(200)) ENGINE=InnoDB;
INSERT INTO texts VALUES
  (1, 'héllo 日本語 🎉 ünïcødé', 'a''b\\c"d'),
  (2, NULL, ''),
  (3, 'line1\nline2\ttab\r\0nul \Z', ');(), -- x /* y */ # z'),
  (4, REPEAT('é', 5000), '),(');
CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB, bits BIT(8), fixed BINARY(4), vb VARBINARY(16));
INSERT INTO blobs SELECT seq, UNHEX(SHA2(seq, 512)), seq % 256, UNHEX('00FF270A'), UNHEX('5C2728293B00') FROM seq_1_to_200;
INSERT INTO blobs SELECT 1000, (SELECT GROUP_CONCAT(CHAR(seq USING binary) ORDER BY seq SEPARATOR '') FROM seq_0_to_255), NULL, NULL, NULL;
CREATE TABLE long_rows (id INT PRIMARY KEY, t LONGTEXT);
INSERT INTO long_rows VALUES (1, REPEAT('x''(;\\', 800000)), (2, REPEAT('日本', 300000));
CREATE TABLE nothing_here (id INT PRIMARY KEY, note TEXT);
CREATE TABLE nulls (a INT NULL, b VARCHAR(10) NULL, c DATETIME NULL);
INSERT INTO nulls VALUES (NULL, NULL, NULL), (NULL, NULL, NULL), (1, NULL, '2024-02-29 23:59:59');
CREATE TABLE kinds (d DATE, dt DATETIME(6), j JSON, n DECIMAL(30,10), f DOUBLE, e ENUM('a','b'), s SET('x','y'));
INSERT INTO kinds VALUES ('1000-01-01', '2038-01-19 03:14:08.123456', '{"k": [1, "two", null]}', -12345678901234567890.0123456789, 1e300, 'b', 'x,y');
CREATE TABLE ${WEIRD_TABLE} (id INT);
INSERT INTO ${WEIRD_TABLE} VALUES (1), (2), (3);
CREATE VIEW v_texts AS SELECT id, t FROM texts WHERE id > 1;
CREATE TRIGGER trg_texts BEFORE INSERT ON texts FOR EACH ROW SET NEW.v = CONCAT(COALESCE(NEW.v, ''), '!');
DELIMITER ;;
CREATE PROCEDURE add_null(IN x INT)
BEGIN
  -- it's a body with ; and quotes
  INSERT INTO nulls VALUES (x, 'p;', NULL);
END;;
CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;;
DELIMITER ;
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM nulls WHERE a = 42;
`;

const ROUND_TRIP_TABLES = ['blobs', 'kinds', 'long_rows', 'nothing_here', 'nulls', 'texts', 'we`ird (name); x'];

describe('mariadb source', () => {
  let bigDb = '';
  let bigAccount: Account;

  before(async () => {
    // One database with 100 000 rows (a 2 MB dump, far more than the pipe buffers), shared by the
    // tests that need a long dump. mariadb-rows.test.ts counts long dumps split at every offset.
    bigDb = await createDatabase(
      'big',
      'CREATE TABLE many (id INT PRIMARY KEY, n INT, s VARCHAR(20)) ENGINE=InnoDB;\n' +
        "INSERT INTO many SELECT seq, seq % 1000, CONCAT('r', seq) FROM seq_1_to_100000;\n" +
        'CREATE TABLE empty_a (id INT);\nCREATE TABLE empty_b (id INT, t TEXT);\n' +
        'CREATE TABLE few (id INT);\nINSERT INTO few VALUES (1), (2), (3);',
    );
    bigAccount = await createAccount(backupGrants(bigDb));
  });

  it('names components <source>.<database>, percent-encoding unusual names reversibly', () => {
    assert.equal(componentNameFor('main', 'shop'), 'main.shop');
    assert.equal(componentNameFor('main', 'my-shop_2'), 'main.my-shop_2');
    assert.equal(encodeDatabaseName('a.b c'), 'a%2Eb%20c');
    assert.equal(encodeDatabaseName('é%'), '%C3%A9%25');
    // `users` would collide with the users-and-grants component.
    assert.equal(encodeDatabaseName('users'), '%75sers');
    for (const name of ['shop', 'a.b c', 'é%日本', 'users', '-lead', 'x`y', "it's", '100%']) {
      const encoded = encodeDatabaseName(name);
      assert.match(encoded, /^[A-Za-z0-9_%-]+$/);
      assert.equal(decodeDatabaseName(encoded), name);
    }
  });

  it('reads the version of mariadb-dump and of MySQL mysqldump', () => {
    assert.deepEqual(
      parseDumpToolVersion(
        'mariadb-dump',
        'mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)',
      ),
      { flavor: 'mariadb', version: '10.11.19' },
    );
    assert.deepEqual(
      parseDumpToolVersion('mariadb-dump', 'mariadb-dump from 11.4.2-MariaDB, client 10.19 for linux-systemd (x86_64)'),
      { flavor: 'mariadb', version: '11.4.2' },
    );
    assert.deepEqual(
      parseDumpToolVersion('mysqldump', 'mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)'),
      { flavor: 'mysql', version: '8.0.36' },
    );
    assert.equal(parseDumpToolVersion('mysqldump', 'something else'), undefined);
  });

  it('names the tables, views and routines a dump lacks, and the privilege to grant', () => {
    const hint = { program: 'mariadb-dump', account: "'bk'@'127.0.0.1'" };
    const server = {
      tables: new Set(['a', 'b']),
      views: new Set(['v1', 'v2']),
      routines: new Set(['PROCEDURE p', 'FUNCTION f']),
    };
    const dump = {
      tables: new Map([
        ['a', 1],
        ['extra', 0],
      ]),
      views: new Set(['v1']),
      routines: new Set(['PROCEDURE p']),
      bytes: 100,
    };
    assert.equal(
      compareWithServer(hint, 'shop', dump, server),
      'the dump of database shop does not match what the server lists: tables missing from the dump: b; ' +
        'tables in the dump that the server does not list: extra; views missing from the dump: v2; ' +
        "routines missing from the dump: FUNCTION f (mariadb-dump leaves out routines the account may not read; run GRANT SELECT ON mysql.proc TO 'bk'@'127.0.0.1')",
    );
    const complete = {
      tables: new Map([
        ['a', 1],
        ['b', 0],
      ]),
      views: new Set(['v1', 'v2']),
      routines: new Set(['PROCEDURE p', 'FUNCTION f']),
      bytes: 100,
    };
    assert.equal(compareWithServer(hint, 'shop', complete, server), undefined);
  });

  it('dumps a database that plain zstd and the mariadb client restore, under another name, table for table', async () => {
    const db = await createDatabase('shop', ROUND_TRIP_SQL);
    const account = await createAccount(backupGrants(db));
    const source = sourceFor(account, { databases: [db] });

    assert.deepEqual(await source.check(context()), []);
    const estimate = await source.estimateRawBytes(context());
    assert.ok(Number.isSafeInteger(estimate) && estimate > 0, `estimate ${estimate}`);

    const outcome = only(await backUp(source, { dir: root }));
    assert.equal(outcome.error, undefined, String(outcome.error));
    assert.equal(outcome.name, `main.${db}`);
    assert.equal(outcome.kind, 'mariadb');
    assert.equal(outcome.extension, 'sql');
    const facts = outcome.facts as ComponentFacts;
    assert.deepEqual(facts.tables, {
      [`${db}.blobs`]: 201,
      [`${db}.kinds`]: 1,
      [`${db}.long_rows`]: 2,
      [`${db}.nothing_here`]: 0,
      [`${db}.nulls`]: 3,
      [`${db}.texts`]: 4,
      [`${db}.we\`ird (name); x`]: 3,
    });
    assert.match(facts.dumpTool ?? '', /^(mariadb-dump|mysqldump) \d+\.\d+\.\d+$/);
    assert.equal(facts.serverVersion, await mariadbAdmin('SELECT VERSION()'));
    assert.deepEqual(facts.warnings, []);

    // The dump never names its database, so it loads anywhere.
    const text = zstdText(outcome.file as string);
    assert.doesNotMatch(text, /^\s*(USE|CREATE DATABASE)\b/im);
    assert.match(text, /\n-- Dump completed on .*\n$/);

    const copy = await restore(outcome.file as string, 'shopcopy');
    assert.deepEqual(await checksums(copy, ROUND_TRIP_TABLES), await checksums(db, ROUND_TRIP_TABLES));
    for (const table of ROUND_TRIP_TABLES) assert.equal(await countRows(copy, table), await countRows(db, table));
    // Views, triggers, routines and events came along, and work.
    assert.equal(await mariadbAdmin('SELECT GROUP_CONCAT(id ORDER BY id) FROM v_texts', copy), '2,3,4');
    assert.equal(await mariadbAdmin('SELECT twice(21)', copy), '42');
    await mariadbAdmin('CALL add_null(7); INSERT INTO texts (id, v) VALUES (99, "w");', copy);
    assert.equal(await mariadbAdmin('SELECT b FROM nulls WHERE a = 7', copy), 'p;');
    assert.equal(await mariadbAdmin('SELECT v FROM texts WHERE id = 99', copy), 'w!');
    const objects = (schema: string) =>
      mariadbAdmin(
        `SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '${schema}' ` +
          `UNION ALL SELECT CONCAT(LOWER(ROUTINE_TYPE), ' ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '${schema}' ` +
          `UNION ALL SELECT CONCAT('event ', EVENT_NAME) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '${schema}' ` +
          `UNION ALL SELECT CONCAT('view ', TABLE_NAME) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '${schema}' ORDER BY 1`,
      );
    assert.equal(await objects(copy), await objects(db));
    assert.equal(
      await objects(copy),
      'event nightly\nfunction twice\nprocedure add_null\ntrigger trg_texts\nview v_texts',
    );
  });

  it('counts rows per table from the stream, equal to COUNT(*): 100 000 rows and empty tables', async () => {
    const outcome = only(await backUp(sourceFor(bigAccount, { databases: [bigDb] })));
    assert.equal(outcome.error, undefined, String(outcome.error));
    const expected: Record<string, number> = {};
    for (const table of ['empty_a', 'empty_b', 'few', 'many']) {
      expected[`${bigDb}.${table}`] = await countRows(bigDb, table);
    }
    assert.equal(expected[`${bigDb}.many`], 100_000);
    assert.deepEqual(outcome.facts?.tables, expected);
    assert.ok(outcome.bytes > 1_000_000);
  });

  it('dumps every visible database but the system ones, minus excludeDatabases and excludeTables', async () => {
    const keep = await createDatabase(
      'keep',
      'CREATE TABLE a (id INT); CREATE TABLE secret (id INT); INSERT INTO a VALUES (1);',
    );
    const weird = await createDatabase(
      '',
      'CREATE TABLE t (id INT); INSERT INTO t VALUES (1), (2);',
      `${uniqueName('w')}.é x`,
    );
    const skip = await createDatabase('skip', 'CREATE TABLE t (id INT);');
    const account = await createAccount([
      ...backupGrants(keep),
      ...backupGrants(weird).slice(0, 1),
      ...backupGrants(skip).slice(0, 1),
    ]);
    const source = sourceFor(account, { excludeDatabases: [skip], excludeTables: [`${keep}.secret`] });
    assert.deepEqual(await source.check(context()), []);
    const outcomes = await backUp(source, { dir: root });
    assert.deepEqual(
      outcomes.map((o) => o.name).sort(),
      [componentNameFor('main', keep), componentNameFor('main', weird)].sort(),
    );
    for (const outcome of outcomes) assert.equal(outcome.error, undefined, String(outcome.error));
    const byName = new Map(outcomes.map((o) => [o.name, o]));
    assert.deepEqual(byName.get(componentNameFor('main', keep))?.facts?.tables, { [`${keep}.a`]: 1 });
    assert.deepEqual(byName.get(componentNameFor('main', weird))?.facts?.tables, { [`${weird}.t`]: 2 });
    assert.doesNotMatch(zstdText(byName.get(componentNameFor('main', keep))?.file as string), /secret/);
    // The oddly named database restores like any other.
    const copy = await restore(byName.get(componentNameFor('main', weird))?.file as string, 'weirdcopy');
    assert.equal(await countRows(copy, 't'), 2);
  });

  it('leaves out a view named in excludeTables without calling the dump incomplete', async () => {
    // A view excluded by excludeTables is left out on purpose; the comparison must not ask for it.
    const db = await createDatabase('views', 'CREATE TABLE t (id INT); CREATE VIEW v AS SELECT * FROM t;');
    const account = await createAccount(backupGrants(db));
    const outcome = only(await backUp(sourceFor(account, { databases: [db], excludeTables: [`${db}.v`] })));
    assert.equal(outcome.error, undefined, String(outcome.error));
    assert.deepEqual(outcome.facts?.tables, { [`${db}.t`]: 0 });
  });

  it('captures users and grants as <source>.users when the account may read the mysql database', async () => {
    // mariadb-install-db leaves accounts for the machine's host name, which a server started with
    // --skip-name-resolve cannot load, and `mariadb-dump --system=users` fails on them. They are
    // unusable anyway; drop them so this test sees the server as an operator would configure it.
    await mariadbAdmin(
      "DELETE FROM mysql.global_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1', '%') AND User = 'root';\nFLUSH PRIVILEGES;",
    );
    const db = await createDatabase('withusers', 'CREATE TABLE t (id INT);');
    const account = await createAccount([...backupGrants(db), 'GRANT SELECT ON mysql.* TO %u']);
    const source = sourceFor(account, { databases: [db], users: true });
    assert.deepEqual(await source.check(context()), []);
    const outcomes = await backUp(source, { dir: root });
    assert.deepEqual(
      outcomes.map((o) => o.name),
      [`main.${db}`, 'main.users'],
    );
    for (const outcome of outcomes) assert.equal(outcome.error, undefined, String(outcome.error));
    const users = outcomes[1] as Outcome;
    assert.equal(users.facts?.secret, true);
    assert.equal(users.facts?.tables, undefined);
    const text = zstdText(users.file as string);
    assert.match(text, new RegExp(`CREATE USER \`${account.user}\`@\`127\\.0\\.0\\.1\``));
    assert.match(text, new RegExp(`GRANT SELECT, SHOW VIEW, EVENT, TRIGGER ON \`${db}\`\\.\\* TO \`${account.user}\``));
    assert.ok(!text.includes(account.password), 'the users dump holds hashes, never the password');
  });

  it('warns, without failing, when the account may not read users and grants', async () => {
    const db = await createDatabase('nousers', 'CREATE TABLE t (id INT);');
    const account = await createAccount(backupGrants(db));
    const source = sourceFor(account, { databases: [db], users: true });
    const findings = await source.check(context());
    assert.equal(findings.length, 1);
    assert.equal(findings[0]?.fatal, false);
    assert.match(findings[0]?.message ?? '', /users and grants were not captured.*GRANT SELECT ON mysql\.\* TO/);
    const outcome = only(await backUp(source));
    assert.equal(outcome.error, undefined);
    assert.equal(outcome.facts?.warnings.length, 1);
    assert.match(
      outcome.facts?.warnings[0] ?? '',
      new RegExp(`GRANT SELECT ON mysql\\.\\* TO '${account.user}'@'127\\.0\\.0\\.1'`),
    );
  });

  it('refuses a wrong password, in preflight and when dumping, with a clear message', async () => {
    const account = await createAccount(backupGrants(bigDb));
    await writeFile(account.passwordFile, 'not-the-password\n');
    const source = sourceFor(account, { databases: [bigDb] });
    const findings = await source.check(context());
    assert.equal(findings.length, 1);
    assert.equal(findings[0]?.fatal, true);
    assert.match(
      findings[0]?.message ?? '',
      new RegExp(`^source main: the server at 127\\.0\\.0\\.1:\\d+ refused user ${account.user}: wrong password`),
    );
    await assert.rejects(backUp(source), (error: unknown) => {
      assert.ok(error instanceof SourceError);
      assert.match(error.message, /^source main: .*refused user .*wrong password/);
      assert.ok(!error.message.includes('not-the-password'));
      return true;
    });
  });

  it('warns in preflight when the password file is readable by others', async () => {
    const account = await createAccount(backupGrants(bigDb));
    await chmod(account.passwordFile, 0o644);
    const findings = await sourceFor(account, { databases: [bigDb] }).check(context());
    assert.deepEqual(findings, [
      {
        fatal: false,
        message: `source main: passwordFile ${account.passwordFile} is readable by group or others; chmod 600 it`,
      },
    ]);
  });

  it('falls back to mysqldump and the mysql client, and names the Debian package when neither is installed', async () => {
    const bin = await mkdtemp(path.join(root, 'bin-'));
    const saved = process.env.PATH;
    const realDump = execFileSync('sh', ['-c', 'command -v mariadb-dump'], { encoding: 'utf8' }).trim();
    const realClient = execFileSync('sh', ['-c', 'command -v mariadb'], { encoding: 'utf8' }).trim();
    try {
      process.env.PATH = bin;
      const findings = await sourceFor(bigAccount, { databases: [bigDb] }).check(context());
      assert.equal(findings.length, 1);
      assert.equal(findings[0]?.fatal, true);
      assert.match(findings[0]?.message ?? '', /mariadb-dump \(or mysqldump\) is not installed.*mariadb-client/);

      // A host with only the MySQL names (here: links to the MariaDB tools).
      await symlink(realDump, path.join(bin, 'mysqldump'));
      await symlink(realClient, path.join(bin, 'mysql'));
      const outcome = only(await backUp(sourceFor(bigAccount, { databases: [bigDb] })));
      assert.equal(outcome.error, undefined, String(outcome.error));
      assert.match(outcome.facts?.dumpTool ?? '', /^mysqldump \d+\.\d+\.\d+$/);
      assert.equal(outcome.facts?.tables?.[`${bigDb}.many`], 100_000);
    } finally {
      process.env.PATH = saved;
    }
  });

  it('refuses a database that does not exist, naming it', async () => {
    const missing = uniqueName('missing');
    const source = sourceFor(bigAccount, { databases: [bigDb, missing] });
    const findings = await source.check(context());
    assert.equal(findings.length, 1);
    assert.equal(findings[0]?.fatal, true);
    assert.match(
      findings[0]?.message ?? '',
      new RegExp(`database ${missing} does not exist on the server at 127\\.0\\.0\\.1:\\d+`),
    );
    await assert.rejects(backUp(source), new RegExp(`database ${missing} does not exist`));
  });

  it('says the server does not answer when nothing listens on its port', async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    const source = sourceFor(bigAccount, { databases: [bigDb], port });
    const findings = await source.check(context());
    assert.equal(findings[0]?.fatal, true);
    assert.match(
      findings[0]?.message ?? '',
      new RegExp(`cannot connect to the server at 127\\.0\\.0\\.1:${port}.*is it running`),
    );
    await assert.rejects(backUp(source), /cannot connect to the server/);
  });

  it('fails the component when the account lacks a privilege the dump needs (partial output, exit 2)', async () => {
    const db = await createDatabase(
      'noview',
      'CREATE TABLE t (id INT); INSERT INTO t VALUES (1); CREATE VIEW v AS SELECT * FROM t;',
    );
    const account = await createAccount([
      `GRANT SELECT, TRIGGER, EVENT ON \`${db}\`.* TO %u`,
      'GRANT SELECT ON mysql.proc TO %u',
    ]);
    const outcome = only(await backUp(sourceFor(account, { databases: [db] })));
    assert.ok(outcome.bytes > 0, 'mariadb-dump wrote a partial dump first');
    assert.ok(outcome.dataError, 'the data stream failed instead of ending');
    assert.ok(outcome.error instanceof SourceError);
    assert.match(
      outcome.error.message,
      new RegExp(`^source main: database ${db}: mariadb-dump exited with code 2: .*SHOW VIEW`),
    );
  });

  it('refuses to vouch for routines the account may not see (no SELECT on mysql.proc)', async () => {
    const db = await createDatabase(
      'noproc',
      'CREATE TABLE t (id INT);\nCREATE PROCEDURE hidden() SELECT 1;\nCREATE FUNCTION hidden_f() RETURNS INT DETERMINISTIC RETURN 1;',
    );
    const account = await createAccount([`GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON \`${db}\`.* TO %u`]);
    const source = sourceFor(account, { databases: [db] });
    const findings = await source.check(context());
    assert.equal(findings[0]?.fatal, true);
    assert.match(findings[0]?.message ?? '', /silently leaves out routines.*GRANT SELECT ON mysql\.proc TO/);
    const outcome = only(await backUp(source));
    assert.ok(outcome.error instanceof SourceError);
    assert.match(
      outcome.error.message,
      new RegExp(
        `^source main: database ${db}: cannot prove .*GRANT SELECT ON mysql\\.proc TO '${account.user}'@'127\\.0\\.0\\.1'`,
      ),
    );
    assert.ok(outcome.dataError);
  });

  it('keeps the password out of every command line while a dump runs (it travels in MYSQL_PWD)', async () => {
    const source = sourceFor(bigAccount, { databases: [bigDb] });
    const iterator = source.components(context())[Symbol.asyncIterator]();
    const next = await iterator.next();
    assert.equal(next.done, false);
    const component = next.value as ComponentStream;
    // Read one chunk, then hold the stream: the dump tool stays alive, blocked on its pipe.
    const first = await new Promise<Buffer>((resolve) => component.data.once('data', resolve));
    component.data.pause();
    assert.ok(first.length > 0);
    const pids = dumpProcesses(bigDb);
    assert.equal(pids.length, 1, 'exactly one mariadb-dump of this database is running');
    const pid = pids[0] as number;
    const needle = Buffer.from(bigAccount.password);
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let cmdline: Buffer;
      try {
        cmdline = readFileSync(`/proc/${entry}/cmdline`);
      } catch {
        continue;
      }
      assert.ok(!cmdline.includes(needle), `the password is in the command line of pid ${entry}`);
    }
    const environ = readFileSync(`/proc/${pid}/environ`).toString('utf8').split('\0');
    assert.ok(environ.includes(`MYSQL_PWD=${bigAccount.password}`), 'the dump tool got the password in MYSQL_PWD');
    assert.ok(environ.includes('LC_ALL=C'));
    component.data.resume();
    for await (const _ of component.data);
    assert.equal((await component.facts).tables?.[`${bigDb}.many`], 100_000);
    assert.equal((await iterator.next()).done, true);
  });

  it('stops the dump tool at once when the run is aborted', async () => {
    const controller = new AbortController();
    const source = sourceFor(bigAccount, { databases: [bigDb] });
    const iterator = source.components(context(controller.signal))[Symbol.asyncIterator]();
    const component = (await iterator.next()).value as ComponentStream;
    component.data.on('error', () => {});
    await new Promise((resolve) => component.data.once('data', resolve));
    component.data.pause();
    const [pid] = dumpProcesses(bigDb);
    assert.ok(pid !== undefined && isAlive(pid));
    const closed = new Promise((resolve) => component.data.once('close', resolve));
    const reason = new Error('stop: test abort');
    controller.abort(reason);
    await closed;
    // 'close' comes only after the child was reaped.
    assert.equal(isAlive(pid), false, 'mariadb-dump is gone');
    await assert.rejects(component.facts, (error) => error === reason);
  });

  it('gives a consistent dump while a writer commits rows to two tables in each transaction', async () => {
    // m_middle (5 MB) is dumped between the two tables, while the writer keeps committing.
    const db = await createDatabase(
      'consistent',
      'CREATE TABLE a_first (id INT AUTO_INCREMENT PRIMARY KEY, tx INT) ENGINE=InnoDB;\n' +
        'CREATE TABLE m_middle (id INT PRIMARY KEY, pad VARCHAR(100)) ENGINE=InnoDB;\n' +
        "INSERT INTO m_middle SELECT seq, REPEAT('p', 100) FROM seq_1_to_50000;\n" +
        'CREATE TABLE z_last (id INT AUTO_INCREMENT PRIMARY KEY, tx INT) ENGINE=InnoDB;',
    );
    const account = await createAccount(backupGrants(db));
    // One client runs many transactions, each inserting N rows into the first and the last table.
    const transaction = (i: number) =>
      `START TRANSACTION; INSERT INTO a_first (tx) SELECT ${i} FROM seq_1_to_${N}; ` +
      `INSERT INTO z_last (tx) SELECT ${i} FROM seq_1_to_${N}; COMMIT;\n`;
    const writer = spawn(
      'mariadb',
      ['--no-defaults', `--socket=${services().mariadb.socket}`, '--user=root', '--', db],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    );
    children.push(writer);
    writer.stdin.on('error', () => {});
    let written = 0;
    // A write that returns false was still queued: count it, or the next drain repeats its tx number.
    const feed = () => {
      while (written < 1_000_000) {
        const more = writer.stdin.write(transaction(written));
        written++;
        if (!more) return;
      }
    };
    writer.stdin.on('drain', feed);
    feed();
    // Wait until the writer is committing, so the dump's snapshot falls in the middle of it.
    for (let i = 0; i < 600 && (await countRows(db, 'z_last')) < N * 5; i++)
      await new Promise((r) => setTimeout(r, 50));
    const outcome = only(await backUp(sourceFor(account, { databases: [db] }), { dir: root }));
    const after = await countRows(db, 'a_first');
    writer.kill('SIGKILL');
    assert.equal(outcome.error, undefined, String(outcome.error));
    const tables = outcome.facts?.tables ?? {};
    const first = tables[`${db}.a_first`] ?? -1;
    const last = tables[`${db}.z_last`] ?? -2;
    assert.ok(first >= N * 5, `the dump saw the writer's work (${first} rows)`);
    assert.ok(after > first, 'the writer kept committing during the dump');
    assert.equal(first, last, 'both tables come from the same snapshot');
    assert.equal(first % N, 0, 'only whole transactions are in the dump');
    const copy = await restore(outcome.file as string, 'consistentcopy');
    assert.equal(await countRows(copy, 'a_first'), first);
    assert.equal(await countRows(copy, 'z_last'), first);
    assert.equal(
      await mariadbAdmin(`SELECT COUNT(*) FROM (SELECT tx FROM a_first GROUP BY tx HAVING COUNT(*) <> ${N}) x`, copy),
      '0',
    );
  });
});
