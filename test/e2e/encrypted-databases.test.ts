// An ENCRYPTED set with a MariaDB and a PostgreSQL database, through the real CLI against the real
// servers: the dumps are stored as age files with no plaintext byte of a marker row on the target;
// `restore --into-database` refuses without the key or with the wrong one and creates nothing; with
// the key it loads both databases whole; `drill` with the key in the config reconciles the rows.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type CliResult, jsonOf, makeSandbox, runCli, type Sandbox } from '../helpers/cli.js';
import { filesUnder } from '../helpers/files.js';
import { mariadbAdmin, psqlAdmin, services, testDatabaseSources, uniqueName } from '../helpers/services.js';

/** Planted in one row of each database: no byte on the target may spell it. */
const MARKER = `ENC-DB-MARKER-${randomBytes(8).toString('hex')}`;
const AGE_HEADER = 'age-encryption.org/v1\n';

interface ManifestJson {
  encryption: { recipients: string[] } | null;
  objects: { name: string }[];
  components: { name: string; kind: string; object: string; tables?: Record<string, number> }[];
}

interface DrillReport {
  status: string;
  encrypted: boolean;
  components: { name: string; kind: string; checks: { check: string; ok: boolean; detail: string }[] }[];
  problems: string[];
  warnings: string[];
}

const explain = (result: CliResult) => `exit ${result.code}\n${result.stderr}\n${result.stdout}`;
const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;
const tick = (name: string) => `\`${name.replaceAll('`', '``')}\``;

/** `table rows` lines of every base table of a MariaDB database, sorted. */
async function mariadbCounts(db: string): Promise<string> {
  const tables = (
    await mariadbAdmin(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = '${db}' AND table_type = 'BASE TABLE' ORDER BY table_name`,
    )
  )
    .split('\n')
    .filter((t) => t !== '');
  const lines: string[] = [];
  for (const table of tables)
    lines.push(`${table} ${await mariadbAdmin(`SELECT count(*) FROM ${tick(db)}.${tick(table)}`)}`);
  return lines.join('\n');
}

/** `table rows` lines of every table in schema public of a PostgreSQL database, sorted. */
async function postgresCounts(db: string): Promise<string> {
  const tables = (await psqlAdmin(`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`, db))
    .split('\n')
    .filter((t) => t !== '');
  const lines: string[] = [];
  for (const table of tables) lines.push(`${table} ${await psqlAdmin(`SELECT count(*) FROM ${ident(table)}`, db)}`);
  return lines.join('\n');
}

const mariadbExists = async (db: string) =>
  (await mariadbAdmin(`SELECT count(*) FROM information_schema.schemata WHERE schema_name = '${db}'`)) === '1';
const postgresExists = async (db: string) =>
  (await psqlAdmin(`SELECT count(*) FROM pg_database WHERE datname = '${db}'`)) === '1';

describe('an encrypted set of MariaDB and PostgreSQL databases through the CLI', () => {
  let sandbox: Sandbox;
  let keyFile: string;
  let strangerKey: string;
  let recipient: string;
  let config: Record<string, unknown>;
  let setId: string;
  const mdb = uniqueName('em');
  const pdb = uniqueName('ep');
  const restored: { mariadb: string[]; postgres: string[] } = { mariadb: [], postgres: [] };
  const shop = `shop.${mdb}`;
  const main = `main.${pdb}`;
  /** The MariaDB source's users-and-grants component (server-wide, no tables). */
  const grants = 'shop.users';

  const cli = (...args: string[]) => runCli(['--config', sandbox.configPath, ...args]);

  /** Scratch databases a drill of this test's set left on either server (none once a drill finished). */
  async function drillLeftovers(): Promise<string[]> {
    const m = await mariadbAdmin(
      `SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'backproof\\_drill\\_%'`,
    );
    const p = await psqlAdmin(`SELECT datname FROM pg_database WHERE datname LIKE 'backproof_drill_%'`);
    return [...m.split('\n'), ...p.split('\n')].filter((n) => n !== '' && n.includes(setId));
  }

  before(async () => {
    sandbox = await makeSandbox('bp-e2e-encdb-');
    keyFile = join(sandbox.dir, 'age.key');
    strangerKey = join(sandbox.dir, 'stranger.key');
    execFileSync('age-keygen', ['-o', keyFile], { stdio: 'ignore' });
    execFileSync('age-keygen', ['-o', strangerKey], { stdio: 'ignore' });
    recipient = execFileSync('age-keygen', ['-y', keyFile], { encoding: 'utf8' }).trim();

    await mariadbAdmin(
      `CREATE DATABASE ${tick(mdb)} CHARACTER SET utf8mb4; USE ${tick(mdb)};
       CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(40)) ENGINE=InnoDB;
       CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(100)) ENGINE=InnoDB;
       CREATE TABLE empty_one (id INT PRIMARY KEY) ENGINE=InnoDB;
       INSERT INTO users SELECT seq, CONCAT('user-', seq) FROM seq_1_to_300;
       INSERT INTO notes VALUES (1, '${MARKER}'), (2, 'plain');`,
    );
    await psqlAdmin(`CREATE DATABASE ${ident(pdb)};`);
    await psqlAdmin(
      `CREATE TABLE orders (id int PRIMARY KEY, total numeric(10,2));
       INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 400) g;
       CREATE TABLE notes (id int PRIMARY KEY, body text);
       INSERT INTO notes VALUES (1, '${MARKER}'), (2, 'plain');`,
      pdb,
    );

    const pg = services().postgres;
    config = {
      sources: testDatabaseSources({ mariadb: mdb, postgres: pdb }),
      drill: {
        mariadb: { host: '127.0.0.1', port: services().mariadb.port, user: 'root' },
        postgres: { host: pg.host, port: pg.port, user: pg.adminUser, passwordFile: pg.adminPasswordFile },
      },
      // Backing up needs only the public key: no identityFile here.
      encryption: { recipients: [recipient] },
    };
    await sandbox.writeConfig(config);
  });

  after(async () => {
    await mariadbAdmin(`DROP DATABASE IF EXISTS ${tick(mdb)}`).catch(() => {});
    await psqlAdmin(`DROP DATABASE IF EXISTS ${ident(pdb)} WITH (FORCE)`).catch(() => {});
    for (const db of restored.mariadb) await mariadbAdmin(`DROP DATABASE IF EXISTS ${tick(db)}`).catch(() => {});
    for (const db of restored.postgres)
      await psqlAdmin(`DROP DATABASE IF EXISTS ${ident(db)} WITH (FORCE)`).catch(() => {});
    for (const db of setId ? await drillLeftovers().catch(() => []) : []) {
      await mariadbAdmin(`DROP DATABASE IF EXISTS ${tick(db)}`).catch(() => {});
      await psqlAdmin(`DROP DATABASE IF EXISTS ${ident(db)} WITH (FORCE)`).catch(() => {});
    }
    await sandbox?.cleanup();
  });

  it('backs up both databases as age files; no byte on the target holds the marker', async () => {
    const result = await cli('backup', '--json');
    assert.equal(result.code, 0, explain(result));
    const report = jsonOf<{ status: string; setId: string }>(result);
    assert.equal(report.status, 'success');
    setId = report.setId;

    const files = await filesUnder(sandbox.targetDir);
    const manifests = files.filter((f) => f.endsWith('/manifest.json'));
    assert.equal(manifests.length, 1, files.join('\n'));
    const setDir = join(sandbox.targetDir, manifests[0] as string, '..');
    const manifest = JSON.parse(await readFile(join(setDir, 'manifest.json'), 'utf8')) as ManifestJson;
    assert.deepEqual(manifest.encryption?.recipients, [recipient]);
    assert.deepEqual(
      manifest.components.map((c) => `${c.name}:${c.kind}`).sort(),
      [`${main}:postgres`, `${shop}:mariadb`, `${grants}:mariadb`].sort(),
    );
    for (const component of manifest.components) {
      assert.match(component.object, /\.age$/, `${component.object} is named as encrypted`);
      const bytes = await readFile(join(setDir, component.object));
      assert.equal(bytes.subarray(0, AGE_HEADER.length).toString('latin1'), AGE_HEADER, component.object);
    }
    // The table facts stay readable in the manifest (the drill reconciles with them), the rows do not.
    assert.equal(manifest.components.find((c) => c.name === shop)?.tables?.[`${mdb}.users`], 300);

    assert.ok(files.length >= manifest.objects.length + 1, 'the scan sees every object and the manifest');
    for (const file of files) {
      const bytes = await readFile(join(sandbox.targetDir, file));
      assert.equal(bytes.includes(MARKER), false, `${file} holds the plaintext marker`);
    }
  });

  it('restore --into-database without a key exits 1 naming the missing key, and creates no database', async () => {
    const mNew = uniqueName('enk');
    const pNew = uniqueName('enk');
    restored.mariadb.push(mNew);
    restored.postgres.push(pNew);
    const m = await cli('restore', '--set', 'latest', '--component', shop, '--into-database', mNew);
    assert.equal(m.code, 1, explain(m));
    assert.match(m.stderr, /is encrypted with age for age1/);
    assert.match(m.stderr, /private key: set encryption\.identityFile in the config, or pass --identity FILE/);
    assert.doesNotMatch(m.stderr, /at .*\.js:\d+/, 'no stack trace');
    assert.equal(await mariadbExists(mNew), false, `${mNew} was not created`);

    const p = await cli('restore', '--set', 'latest', '--component', main, '--into-database', pNew);
    assert.equal(p.code, 1, explain(p));
    assert.match(p.stderr, /encryption\.identityFile.*--identity FILE/s);
    assert.equal(await postgresExists(pNew), false, `${pNew} was not created`);
  });

  it('restore --into-database with a wrong key exits 1 with the wrong-key message, and creates no database', async () => {
    const mNew = uniqueName('ewk');
    const pNew = uniqueName('ewk');
    restored.mariadb.push(mNew);
    restored.postgres.push(pNew);
    const stranger = execFileSync('age-keygen', ['-y', strangerKey], { encoding: 'utf8' }).trim();
    for (const [component, db] of [
      [shop, mNew],
      [main, pNew],
    ] as const) {
      const result = await cli(
        'restore',
        '--set',
        'latest',
        '--component',
        component,
        '--into-database',
        db,
        '--identity',
        strangerKey,
      );
      assert.equal(result.code, 1, explain(result));
      assert.match(result.stderr, /wrong key: .*stranger\.key holds age1/);
      assert.ok(result.stderr.includes(stranger), 'names the public key the wrong file holds');
      assert.ok(result.stderr.includes(recipient), 'names the public key the set was made for');
      assert.doesNotMatch(result.stderr, /AGE-SECRET-KEY/, 'never prints a private key');
    }
    assert.equal(await mariadbExists(mNew), false, `${mNew} was not created`);
    assert.equal(await postgresExists(pNew), false, `${pNew} was not created`);
  });

  it('restore --into-database --identity KEY loads both databases with the same rows and the marker', async () => {
    const mNew = uniqueName('eok');
    const pNew = uniqueName('eok');
    restored.mariadb.push(mNew);
    restored.postgres.push(pNew);
    const m = await cli(
      'restore',
      '--set',
      'latest',
      '--component',
      shop,
      '--into-database',
      mNew,
      '--identity',
      keyFile,
    );
    assert.equal(m.code, 0, explain(m));
    const mCounts = await mariadbCounts(mNew);
    assert.equal(mCounts, 'empty_one 0\nnotes 2\nusers 300');
    assert.equal(mCounts, await mariadbCounts(mdb));
    assert.equal(await mariadbAdmin(`SELECT body FROM ${tick(mNew)}.notes WHERE id = 1`), MARKER);
    assert.equal(
      await mariadbAdmin(`SELECT SUM(CRC32(name)) FROM ${tick(mNew)}.users`),
      await mariadbAdmin(`SELECT SUM(CRC32(name)) FROM ${tick(mdb)}.users`),
    );

    const p = await cli(
      'restore',
      '--set',
      'latest',
      '--component',
      main,
      '--into-database',
      pNew,
      '--identity',
      keyFile,
    );
    assert.equal(p.code, 0, explain(p));
    const pCounts = await postgresCounts(pNew);
    assert.equal(pCounts, 'notes 2\norders 400');
    assert.equal(pCounts, await postgresCounts(pdb));
    assert.equal(await psqlAdmin('SELECT body FROM notes WHERE id = 1', pNew), MARKER);
    const digest = `SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o`;
    assert.equal(await psqlAdmin(digest, pNew), await psqlAdmin(digest, pdb));
  });

  it('drill with identityFile in the config reconciles the rows of both databases and reports the set encrypted', async () => {
    await sandbox.writeConfig({ ...config, encryption: { recipients: [recipient], identityFile: keyFile } });
    try {
      const result = await cli('drill', '--json');
      const report = jsonOf<DrillReport>(result);
      assert.equal(
        result.code,
        0,
        `${explain(result)}\n${JSON.stringify(report.problems)}\n${JSON.stringify(report.warnings)}`,
      );
      assert.equal(report.status, 'success');
      assert.equal(report.encrypted, true);
      const byName = Object.fromEntries(report.components.map((c) => [c.name, c]));
      assert.deepEqual(Object.keys(byName).sort(), [main, shop, grants].sort());
      const checks = (name: string) => byName[name]?.checks.map((c) => `${c.check}:${c.ok}`) ?? [];
      assert.deepEqual(checks(shop), ['object:true', 'load:true', 'rows:true']);
      assert.deepEqual(checks(main), ['object:true', 'load:true', 'rows:true']);
      // Users and grants are server-wide: decrypted and proven, not loaded.
      assert.deepEqual(checks(grants), ['object:true', 'raw:true']);
      assert.match(byName[grants]?.checks[1]?.detail ?? '', /decompressed; size and SHA-256 match .*not loaded/);
      assert.deepEqual(await drillLeftovers(), [], 'the drill dropped its scratch databases');
    } finally {
      await sandbox.writeConfig(config);
    }
  });
});
