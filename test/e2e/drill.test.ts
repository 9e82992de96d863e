// `backproof drill` and `restore --into-database` through the real CLI against the real MariaDB and
// PostgreSQL servers: a set with files, a MariaDB and a PostgreSQL database is restored into scratch
// databases, reconciled (files with the index, rows with the manifest, SQL assertions) and timed;
// failures (an assertion, rows that differ, the RTO objective, a drill killed midway) give the
// right exit codes, and nothing is left on the drill servers.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jsonOf, makeSandbox, runCli, type Sandbox, startCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/files.js';
import { type RemoteTargets, remoteTargets } from '../helpers/remote-targets.js';
import { mariadbAdmin, psqlAdmin, services, testDatabaseSources, uniqueName } from '../helpers/services.js';

interface DrillReport {
  setId: string;
  status: string;
  rtoMs: number | null;
  rtoObjectiveMs: number | null;
  components: {
    name: string;
    kind: string;
    restoredAs: string;
    database?: string;
    checks: { check: string; ok: boolean; detail: string }[];
  }[];
  problems: string[];
  warnings: string[];
  cleanedUp: string[];
}

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;
const tick = (name: string) => `\`${name.replaceAll('`', '``')}\``;

describe('drill and database restore through the CLI', () => {
  let sandbox: Sandbox;
  let setId: string;
  const mdb = uniqueName('dm');
  const pdb = uniqueName('dp');
  const owner = uniqueName('own');
  const drillRole = uniqueName('drl');
  const restored: { mariadb: string[]; postgres: string[] } = { mariadb: [], postgres: [] };
  let baseConfig: Record<string, unknown>;
  let remote: RemoteTargets;

  const cli = (...args: string[]) => runCli(['--config', sandbox.configPath, ...args]);

  /** Scratch databases of this test's sets left on either drill server. */
  async function leftovers(): Promise<string[]> {
    const m = await mariadbAdmin(
      `SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'backproof\\_drill\\_%'`,
    );
    const p = await psqlAdmin(`SELECT datname FROM pg_database WHERE datname LIKE 'backproof_drill_%'`);
    return [...m.split('\n'), ...p.split('\n')].filter((n) => n !== '' && n.includes(setId));
  }

  before(async () => {
    sandbox = await makeSandbox();
    const app = join(sandbox.dir, 'app');
    await mkdir(join(app, 'storage'), { recursive: true });
    await writeFile(join(app, 'index.php'), '<?php echo 1;\n'.repeat(300));
    await writeFile(join(app, 'storage', 'upload.bin'), randomBytes(200_000));
    await symlink('/etc/hostname', join(app, 'outside-link'));

    await mariadbAdmin(
      `CREATE DATABASE ${tick(mdb)} CHARACTER SET utf8mb4; USE ${tick(mdb)};
       CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(40)) ENGINE=InnoDB;
       CREATE TABLE empty_one (id INT PRIMARY KEY) ENGINE=InnoDB;
       INSERT INTO users SELECT seq, CONCAT('user-', seq) FROM seq_1_to_1200;
       CREATE VIEW user_names AS SELECT name FROM users;`,
    );
    const pg = services().postgres;
    await psqlAdmin(
      `CREATE ROLE ${ident(owner)} NOLOGIN; CREATE ROLE ${ident(drillRole)} LOGIN CREATEDB PASSWORD 'drill-pw-${drillRole}';`,
    );
    await psqlAdmin(`CREATE DATABASE ${ident(pdb)};`);
    await psqlAdmin(
      `CREATE TABLE orders (id int PRIMARY KEY, total numeric(10,2));
       INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 700) g;
       CREATE TABLE audit (at timestamptz);
       ALTER TABLE orders OWNER TO ${ident(owner)};
       GRANT SELECT ON audit TO ${ident(owner)};`,
      pdb,
    );
    const drillPassword = join(sandbox.dir, 'drill-pg.pass');
    await writeFile(drillPassword, `drill-pw-${drillRole}\n`, { mode: 0o600 });
    await chmod(drillPassword, 0o600);

    remote = await remoteTargets(sandbox.dir, 'dr');
    baseConfig = {
      targets: [
        { name: 'disk', type: 'local', path: sandbox.targetDir },
        remote.sftpTarget('nas'),
        remote.s3Target('cloud'),
      ],
      sources: [{ name: 'app', type: 'files', paths: [app] }, ...testDatabaseSources({ mariadb: mdb, postgres: pdb })],
      drill: {
        mariadb: { host: '127.0.0.1', port: services().mariadb.port, user: 'root' },
        // Not a superuser, and no member of the tables' owner: their OWNER and GRANT lines are skipped.
        postgres: { host: pg.host, port: pg.port, user: drillRole, passwordFile: drillPassword },
        assertions: [{ component: `shop.${mdb}`, sql: 'SELECT count(*) FROM users', min: 1000 }],
      },
      objectives: { rto: '1h' },
    };
    await sandbox.writeConfig(baseConfig);
    const backup = await cli('backup', '--json');
    assert.equal(backup.code, 0, backup.stderr + backup.stdout);
    setId = jsonOf<{ setId: string }>(backup).setId;
  });

  after(async () => {
    await mariadbAdmin(`DROP DATABASE IF EXISTS ${tick(mdb)}`);
    for (const db of restored.mariadb) await mariadbAdmin(`DROP DATABASE IF EXISTS ${tick(db)}`);
    for (const db of [pdb, ...restored.postgres]) await psqlAdmin(`DROP DATABASE IF EXISTS ${ident(db)} WITH (FORCE)`);
    for (const db of await leftovers().catch(() => [])) {
      await mariadbAdmin(`DROP DATABASE IF EXISTS ${tick(db)}`).catch(() => {});
      await psqlAdmin(`DROP DATABASE IF EXISTS ${ident(db)} WITH (FORCE)`).catch(() => {});
    }
    await psqlAdmin(`DROP ROLE IF EXISTS ${ident(owner)}; DROP ROLE IF EXISTS ${ident(drillRole)};`);
    await remote?.cleanup();
    await sandbox.cleanup();
  });

  it('after a drill killed with -9 midway, restores everything into a sandbox and scratch databases, reconciles it, measures the RTO, drops the killed drill’s database, leaves nothing', async () => {
    const killed = startCli(['--config', sandbox.configPath, 'drill', '--json']);
    await waitFor('a scratch database', async () => (await leftovers()).length > 0, 60_000);
    killed.child.kill('SIGKILL');
    await killed.done;
    assert.ok((await leftovers()).length > 0, 'the killed drill left its database');

    const result = await cli('drill', '--json');
    const report = jsonOf<DrillReport>(result);
    assert.equal(
      result.code,
      0,
      `${result.stderr}\n${JSON.stringify(report.problems)}\n${JSON.stringify(report.warnings)}`,
    );
    assert.equal(report.status, 'success');
    assert.equal(report.setId, setId);
    assert.ok(
      report.cleanedUp.some((c) => c.includes(`backproof_drill_${setId}`)),
      JSON.stringify(report.cleanedUp),
    );
    assert.ok(typeof report.rtoMs === 'number' && report.rtoMs > 0, `measured RTO ${report.rtoMs}`);
    assert.equal(report.rtoObjectiveMs, 3_600_000);
    const byName = Object.fromEntries(report.components.map((c) => [c.name, c]));
    const checks = (name: string) => byName[name]?.checks.map((c) => `${c.check}:${c.ok}`) ?? [];
    assert.deepEqual(checks('app'), ['object:true', 'extract:true', 'files:true']);
    assert.deepEqual(checks(`shop.${mdb}`), ['object:true', 'load:true', 'rows:true', 'assertion:true']);
    assert.deepEqual(checks(`main.${pdb}`), ['object:true', 'load:true', 'rows:true']);
    assert.match(byName[`main.${pdb}`]?.checks[1]?.detail ?? '', /skipped/);
    assert.match(byName[`shop.${mdb}`]?.database ?? '', new RegExp(`^backproof_drill_${setId}_\\d$`));
    assert.deepEqual(await leftovers(), [], 'scratch databases are dropped');
    assert.deepEqual(await readdirSafe(join(sandbox.stateDir, 'drill')), [], 'the sandbox is removed');

    const status = jsonOf<{ healthy: boolean; lastDrill: { status: string; setId: string; rtoMs: number } }>(
      await cli('status', '--json'),
    );
    assert.equal(status.lastDrill.status, 'success');
    assert.equal(status.lastDrill.setId, setId);
    assert.equal(status.lastDrill.rtoMs, report.rtoMs);
  });

  it('fails (exit 1) naming each problem: a failing assertion, a dump tampered with its hashes updated (the table), one flipped byte (the object); status turns unhealthy; nothing is left behind', async () => {
    const setDir = execFileSync('find', [sandbox.targetDir, '-type', 'd', '-name', setId], { encoding: 'utf8' }).trim();
    const manifestFile = join(setDir, 'manifest.json');
    const originalManifest = await readFile(manifestFile, 'utf8');
    const manifest = JSON.parse(originalManifest);
    const component = manifest.components.find((c: { name: string }) => c.name === `main.${pdb}`);
    const dumpFile = join(setDir, component.object);
    const originalDump = await readFile(dumpFile);
    // One row of orders removed from its COPY block: a valid dump, one row short of what was backed up.
    const sql = execFileSync('zstd', ['-q', '-d', '-c'], { input: originalDump }).toString('utf8');
    const tampered = Buffer.from(sql.replace(/^700\t1050\.00\n/m, ''), 'utf8');
    assert.notEqual(tampered.length, Buffer.byteLength(sql), 'the row was found and removed');
    const stored = execFileSync('zstd', ['-q', '-c'], { input: tampered });
    const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
    Object.assign(component, {
      bytes: stored.length,
      sha256: sha(stored),
      rawBytes: tampered.length,
      rawSha256: sha(tampered),
    });
    Object.assign(
      manifest.objects.find((o: { name: string }) => o.name === component.object),
      { bytes: stored.length, sha256: sha(stored) },
    );
    // One flipped byte in the files component, its hashes left as they were.
    const archiveFile = join(setDir, 'app.tar.zst');
    const originalArchive = await readFile(archiveFile);
    const damaged = Buffer.from(originalArchive);
    damaged[100] = (damaged[100] ?? 0) ^ 0x01;
    for (const file of [dumpFile, archiveFile, manifestFile]) await chmod(file, 0o644);
    await writeFile(dumpFile, stored);
    await writeFile(archiveFile, damaged);
    await writeFile(manifestFile, JSON.stringify(manifest, null, 2));
    await sandbox.writeConfig({
      ...baseConfig,
      drill: {
        ...(baseConfig.drill as object),
        assertions: [{ component: `shop.${mdb}`, sql: 'SELECT count(*) FROM users', min: 5000 }],
      },
    });
    try {
      const result = await cli('drill', '--target', 'disk', '--json');
      const report = jsonOf<DrillReport>(result);
      assert.equal(result.code, 1, result.stderr);
      assert.equal(report.status, 'failure');
      const problems = report.problems.join('\n');
      assert.match(problems, /SELECT count\(\*\) FROM users = 1200, expected at least 5000/);
      assert.match(problems, /public\.orders: expected 700, found 699/);
      assert.match(problems, /^app: object: .*app\.tar\.zst/m);
      const status = await cli('status');
      assert.equal(status.code, 1);
      assert.match(status.stdout, /last drill .*failure/);
      assert.deepEqual(await leftovers(), []);
      assert.deepEqual(await readdirSafe(join(sandbox.stateDir, 'drill')), []);
    } finally {
      await writeFile(dumpFile, originalDump);
      await writeFile(archiveFile, originalArchive);
      await writeFile(manifestFile, originalManifest);
      await sandbox.writeConfig(baseConfig);
    }
  });

  it('drills from nas too, files and databases equal; over the RTO objective that is exit 3, and status says so', async () => {
    await sandbox.writeConfig({ ...baseConfig, objectives: { rto: '1ms' } });
    try {
      const result = await cli('drill', '--target', 'nas', '--json');
      const report = jsonOf<DrillReport>(result);
      assert.equal(
        result.code,
        3,
        `${result.stderr}\n${JSON.stringify(report.problems)}\n${JSON.stringify(report.warnings)}`,
      );
      assert.equal(report.status, 'warning');
      assert.ok(report.components.every((c) => c.checks.every((k) => k.ok)));
      assert.match(JSON.stringify(report.components), /from nas/);
      assert.match(report.warnings.join('\n'), /over the RTO objective/);
      const status = await cli('status');
      assert.equal(status.code, 1);
      assert.match(status.stdout, /slower than objectives\.rto/);
    } finally {
      await sandbox.writeConfig(baseConfig);
    }
  });

  it('drills from cloud with the state directory deleted (a new server with only the config): files and databases equal', async () => {
    const moved = `${sandbox.stateDir}.away`;
    execFileSync('mv', [sandbox.stateDir, moved]);
    try {
      const result = await cli('drill', '--target', 'cloud', '--json');
      const report = jsonOf<DrillReport>(result);
      assert.equal(
        result.code,
        0,
        `${result.stderr}\n${JSON.stringify(report.problems)}\n${JSON.stringify(report.warnings)}`,
      );
      assert.equal(report.setId, setId);
      assert.ok(report.components.every((c) => c.checks.every((k) => k.ok)));
      assert.match(JSON.stringify(report.components), /from cloud/);
    } finally {
      await rm(sandbox.stateDir, { recursive: true, force: true });
      execFileSync('mv', [moved, sandbox.stateDir]);
    }
  });

  it('restore --into-database loads MariaDB and PostgreSQL components into new databases; a non-empty one is refused', async () => {
    const mNew = uniqueName('rm');
    const pNew = uniqueName('rp');
    restored.mariadb.push(mNew);
    restored.postgres.push(pNew);
    const m = await cli('restore', '--set', 'latest', '--component', `shop.${mdb}`, '--into-database', mNew);
    assert.equal(m.code, 0, m.stderr);
    assert.equal(
      await mariadbAdmin(`SELECT count(*), SUM(CRC32(name)) FROM ${tick(mNew)}.users`),
      await mariadbAdmin(`SELECT count(*), SUM(CRC32(name)) FROM ${tick(mdb)}.users`),
    );
    const p = await cli('restore', '--set', 'latest', '--component', `main.${pdb}`, '--into-database', pNew, '--json');
    assert.equal(p.code, 0, p.stderr);
    const digest = `SELECT count(*) || ' ' || md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o`;
    assert.equal(await psqlAdmin(digest, pNew), await psqlAdmin(digest, pdb));

    const again = await cli('restore', '--set', 'latest', '--component', `shop.${mdb}`, '--into-database', mNew);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /not empty/);
    assert.match(again.stderr, /--force/);
    const files = await cli('restore', '--set', 'latest', '--component', 'app', '--into-database', mNew);
    assert.equal(files.code, 2);
    assert.match(files.stderr, /not a database dump/);
  });
});

async function readdirSafe(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}
