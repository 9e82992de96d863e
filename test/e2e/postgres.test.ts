// The postgres source through the real CLI (`node dist/cli.js backup --json`) against the real test
// server: a committed set restores with plain `zstd -dc | psql`; every failure exits 1 and commits nothing.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { jsonOf, makeSandbox, runCli, type Sandbox, startCli } from '../helpers/cli.js';
import { psqlAdmin, services, uniqueName } from '../helpers/services.js';
import { type PrivatePostgres, startPrivatePostgres } from '../sources/postgres-private-server.js';

interface Report {
  status: string;
  exitCode: number;
  setId: string;
  warnings: string[];
  failures: { step: string; message: string; component?: string }[];
}

interface Manifest {
  objects: { name: string; bytes: number; sha256: string }[];
  components: {
    name: string;
    kind: string;
    object: string;
    tables?: Record<string, number>;
    dumpTool?: string;
    serverVersion?: string;
  }[];
}

function ident(text: string): string {
  return `"${text.replace(/"/g, '""')}"`;
}

function files(root: string): string[] {
  if (!existsSync(root)) return [];
  return execFileSync('find', [root, '-type', 'f', '-printf', '%P\n'], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .filter(Boolean);
}

function manifests(root: string): string[] {
  return files(root).filter((f) => f.endsWith('/manifest.json'));
}

describe('postgres source through the CLI', () => {
  let secrets: string; // password files live outside the sandbox, so a grep of the sandbox finds no password
  const databases: string[] = [];
  const roles: string[] = [];

  async function role(prefix: string): Promise<{ name: string; password: string; passwordFile: string }> {
    const name = uniqueName(prefix);
    const password = `pw-${uniqueName('secret')}`;
    await psqlAdmin(`CREATE ROLE ${name} LOGIN PASSWORD '${password}';`);
    roles.push(name);
    const passwordFile = join(secrets, name);
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    return { name, password, passwordFile };
  }

  async function database(owner: string, name = uniqueName('db')): Promise<string> {
    await psqlAdmin(`CREATE DATABASE ${ident(name)} OWNER ${ident(owner)};`);
    databases.push(name);
    return name;
  }

  function pgSource(extra: Record<string, unknown>) {
    const pg = services().postgres;
    return { name: 'main', type: 'postgres', host: pg.host, port: pg.port, ...extra };
  }

  async function backupFails(sandbox: Sandbox, message: RegExp): Promise<Report> {
    const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    const report = jsonOf<Report>(result);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(report.status, 'failure');
    assert.match(report.failures.map((f) => f.message).join('\n'), message);
    assert.deepEqual(manifests(sandbox.targetDir), [], 'a manifest was committed');
    assert.deepEqual(
      files(sandbox.targetDir).filter((f) => !f.endsWith('backproof.json')),
      [],
      'objects were left on the target',
    );
    return report;
  }

  before(async () => {
    services();
    secrets = await mkdtemp(join(tmpdir(), 'bp-e2e-pgsecrets-'));
  });
  after(async () => {
    for (const db of databases) await psqlAdmin(`DROP DATABASE IF EXISTS ${ident(db)} WITH (FORCE);`);
    for (const name of roles) await psqlAdmin(`DROP ROLE IF EXISTS ${ident(name)};`);
    await rm(secrets, { recursive: true, force: true });
  });

  it('commits a set whose dumps restore with zstd -dc | psql, rows per table in the manifest', async () => {
    const owner = await role('e2eowner');
    const db = await database(owner.name, `${uniqueName('e2e')} app.v2`);
    await psqlAdmin(
      `SET ROLE ${owner.name};
       CREATE TABLE users (id integer PRIMARY KEY, name text, avatar bytea);
       INSERT INTO users SELECT g, 'user ' || g || ' ünï', decode(md5(g::text), 'hex') FROM generate_series(1, 20000) g;
       CREATE TABLE sessions (id integer);
       INSERT INTO sessions SELECT generate_series(1, 10);
       CREATE TABLE empty_one (x integer);
       CREATE VIEW user_names AS SELECT name FROM users;`,
      db,
    );
    const sandbox = await makeSandbox();
    try {
      await sandbox.writeConfig({
        sources: [
          pgSource({
            user: owner.name,
            passwordFile: owner.passwordFile,
            databases: [db],
            excludeTables: [`${db}.sessions`],
          }),
        ],
      });
      const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
      const report = jsonOf<Report>(result);
      assert.equal(result.code, 0, `${result.stderr}\n${JSON.stringify(report.failures)}`);
      assert.equal(report.status, 'success');
      const [manifestPath] = manifests(sandbox.targetDir);
      assert.ok(manifestPath);
      const setDir = join(sandbox.targetDir, manifestPath.replace(/\/manifest\.json$/, ''));
      const manifest = JSON.parse(await readFile(join(sandbox.targetDir, manifestPath), 'utf8')) as Manifest;
      const encoded = db.replace(/ /g, '%20').replace(/\./g, '%2E');
      assert.deepEqual(
        manifest.components.map((c) => [c.name, c.kind, c.object]),
        [
          ['main.globals', 'postgres-globals', 'main.globals.sql.zst'],
          [`main.${encoded}`, 'postgres', `main.${encoded}.sql.zst`],
        ],
      );
      const component = manifest.components[1];
      assert.deepEqual(component?.tables, { 'public.empty_one': 0, 'public.users': 20000 });
      assert.match(component?.dumpTool ?? '', /^pg_dump \d+\.\d+/);
      assert.match(component?.serverVersion ?? '', /^\d+\.\d+/);

      // Restore with plain tools into a database of another name, and compare.
      const copy = await database(owner.name, uniqueName('copy'));
      const pg = services().postgres;
      execFileSync('bash', [
        '-o',
        'pipefail',
        '-c',
        'zstd -dc "$1" | psql -X -q -v ON_ERROR_STOP=1 -h "$2" -p "$3" -U postgres -d "$4" >/dev/null',
        'restore',
        join(setDir, `main.${encoded}.sql.zst`),
        pg.socketDir,
        String(pg.port),
        copy,
      ]);
      const digest = (target: string) =>
        psqlAdmin(`SELECT count(*) || ' ' || md5(string_agg(u::text, ',' ORDER BY id)) FROM users u;`, target);
      assert.equal(await digest(copy), await digest(db));
      assert.equal(await psqlAdmin(`SELECT to_regclass('public.sessions') IS NULL;`, copy), 't');
      assert.equal(await psqlAdmin(`SELECT count(*) FROM user_names;`, copy), '20000');
      const globals = execFileSync('zstd', ['-dc', join(setDir, 'main.globals.sql.zst')], { encoding: 'utf8' });
      assert.match(globals, new RegExp(`CREATE ROLE ${owner.name};`));

      // The password is nowhere: not in the report, the manifest, the state database or the logs.
      const grep = spawnSync('grep', ['-rlF', '--binary-files=text', owner.password, sandbox.dir], {
        encoding: 'utf8',
      });
      assert.equal(grep.status, 1, `the password is in ${grep.stdout}${grep.stderr}`);
      assert.ok(!result.stdout.includes(owner.password) && !result.stderr.includes(owner.password));
    } finally {
      await sandbox.cleanup();
    }
  });

  it('a wrong password, a database that does not exist, the server down: exit 1 in preflight naming each, nothing on the target', async () => {
    const owner = await role('e2ewrong');
    const db = await database(owner.name);
    const wrong = join(secrets, 'wrong');
    await writeFile(wrong, 'not-it', { mode: 0o600 });
    const ghost = uniqueName('ghost');
    const sandbox = await makeSandbox();
    try {
      // Preflight checks every source and reports every fatal finding: one run shows all three.
      await sandbox.writeConfig({
        sources: [
          { ...pgSource({ user: owner.name, passwordFile: wrong, databases: [db] }), name: 'wrongpw' },
          {
            ...pgSource({ user: owner.name, passwordFile: owner.passwordFile, databases: [ghost], globals: false }),
            name: 'ghost',
          },
          {
            ...pgSource({ port: 1, user: owner.name, passwordFile: owner.passwordFile, databases: ['x'] }),
            name: 'down',
          },
        ],
      });
      const report = await backupFails(
        sandbox,
        new RegExp(`source wrongpw: PostgreSQL at .* refused the password of user ${owner.name}`),
      );
      const messages = report.failures.map((f) => f.message).join('\n');
      assert.match(messages, new RegExp(`source ghost: database ${ghost} does not exist`));
      assert.match(messages, /source down: cannot connect to PostgreSQL at 127\.0\.0\.1:1: is the server running/);
    } finally {
      await sandbox.cleanup();
    }
  });

  it('a user without privileges: exit 1 when dumping, no manifest', async () => {
    const owner = await role('e2eown');
    const reader = await role('e2enopriv');
    const db = await database(owner.name);
    await psqlAdmin(`SET ROLE ${owner.name}; CREATE TABLE private (x integer);`, db);
    const sandbox = await makeSandbox();
    try {
      await sandbox.writeConfig({
        sources: [pgSource({ user: reader.name, passwordFile: reader.passwordFile, databases: [db], globals: false })],
      });
      await backupFails(
        sandbox,
        new RegExp(`source main: database ${db}: pg_dump exited with code 1: user ${reader.name} lacks privileges`),
      );
    } finally {
      await sandbox.cleanup();
    }
  });
});

describe('postgres source through the CLI: the server killed mid-dump', () => {
  let server: PrivatePostgres;
  let secrets: string;

  before(async () => {
    server = await startPrivatePostgres();
    secrets = await mkdtemp(join(tmpdir(), 'bp-e2e-pgkill-'));
  });
  after(async () => {
    await server?.stop();
    await rm(secrets, { recursive: true, force: true });
  });

  it('exit 1, the failure says the connection was lost, no manifest committed', async () => {
    await server.admin('CREATE DATABASE victim;');
    await server.admin('CREATE TABLE big AS SELECT g FROM generate_series(1, 100000) g;', 'victim');
    const passwordFile = join(secrets, 'admin');
    await writeFile(passwordFile, server.adminPassword, { mode: 0o600 });
    // A session holding an exclusive lock makes pg_dump wait inside its dump, connected, for as long as we like.
    const holder = spawn(
      'psql',
      ['-X', '-q', '-A', '-t', '-h', server.socketDir, '-p', String(server.port), '-U', 'postgres', '-d', 'victim'],
      { stdio: ['pipe', 'pipe', 'ignore'] },
    );
    const holderClosed = new Promise((resolve) => holder.on('close', resolve));
    holder.stdin.on('error', () => {});
    holder.stdin.write("BEGIN; LOCK TABLE big IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n");
    await new Promise<void>((resolve) => {
      let out = '';
      holder.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('locked')) resolve();
      });
    });
    const sandbox = await makeSandbox();
    try {
      await sandbox.writeConfig({
        sources: [
          {
            name: 'main',
            type: 'postgres',
            host: server.host,
            port: server.port,
            user: 'postgres',
            passwordFile,
            databases: ['victim'],
          },
        ],
      });
      const run = startCli(['--config', sandbox.configPath, 'backup', '--json']);
      const waiting = async () =>
        (await server.admin(
          "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND wait_event_type = 'Lock';",
        )) === '1';
      for (let i = 0; !(await waiting()); i++) {
        if (i > 600) throw new Error('pg_dump never started waiting for the lock');
        await sleep(100);
      }
      process.kill(await server.postmasterPid(), 'SIGKILL');
      const result = await run.done;
      const report = jsonOf<Report>(result);
      assert.equal(result.code, 1, result.stderr);
      assert.equal(report.status, 'failure');
      assert.match(
        report.failures.map((f) => f.message).join('\n'),
        /source main: database victim: pg_dump exited with code 1: the connection to PostgreSQL at 127\.0\.0\.1:\d+ was lost during the dump/,
      );
      assert.deepEqual(manifests(sandbox.targetDir), []);
      assert.deepEqual(
        files(sandbox.targetDir).filter((f) => !f.endsWith('backproof.json')),
        [],
      );
    } finally {
      holder.stdin.end();
      await holderClosed;
      await sandbox.cleanup();
    }
  });
});
