// The mariadb source through the real CLI (`node dist/cli.js backup --json`) against the real MariaDB
// test server: a committed set that plain zstd and the mariadb client restore, and every failure
// (wrong password, missing database, server down, missing privilege, server killed mid-dump) ending
// with exit 1 and no manifest.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { jsonOf, makeSandbox, runCli, type Sandbox, startCli } from '../helpers/cli.js';
import { mariadbAdmin, services, uniqueName } from '../helpers/services.js';

interface Report {
  status: string;
  exitCode: number;
  setId: string;
  warnings: string[];
  failures: { step: string; message: string; component?: string }[];
  components: {
    name: string;
    kind: string;
    tables?: Record<string, number>;
    dumpTool?: string;
    serverVersion?: string;
  }[];
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
    secret?: boolean;
  }[];
}

const databases: string[] = [];
const accounts: string[] = [];

function q(name: string): string {
  return `\`${name.replaceAll('`', '``')}\``;
}

async function admin(sql: string): Promise<string> {
  return mariadbAdmin(`SET NAMES utf8mb4;\n${sql}`);
}

async function createDatabase(prefix: string, sql: string): Promise<string> {
  const name = uniqueName(prefix);
  databases.push(name);
  await admin(`CREATE DATABASE ${q(name)} CHARACTER SET utf8mb4;\nUSE ${q(name)};\n${sql}`);
  return name;
}

/** An account on 127.0.0.1 with `grants` (`%u` stands for it), its password in a 0600 file. */
async function createAccount(sandbox: Sandbox, grants: string[]): Promise<{ user: string; passwordFile: string }> {
  const user = uniqueName('bke');
  const password = `pw ${uniqueName('secret')}#`;
  accounts.push(user);
  const account = `'${user}'@'127.0.0.1'`;
  await admin(
    [
      `CREATE USER ${account} IDENTIFIED BY '${password}';`,
      ...grants.map((g) => `${g.replaceAll('%u', account)};`),
    ].join('\n'),
  );
  const passwordFile = join(sandbox.dir, `${user}.pass`);
  await writeFile(passwordFile, `${password}\n`);
  await chmod(passwordFile, 0o600);
  return { user, passwordFile };
}

function grantsOn(db: string): string[] {
  return [`GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON ${q(db)}.* TO %u`, 'GRANT SELECT ON mysql.proc TO %u'];
}

function manifests(root: string): string[] {
  if (!existsSync(root)) return [];
  return execFileSync('find', [root, '-name', 'manifest.json'], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

interface PrivateServer {
  port: number;
  socket: string;
  /** Runs SQL as root over the server's socket (utf8mb4); returns the rows as text. */
  sql(sql: string): Promise<string>;
  /** kill -9 */
  kill(): void;
  /** Stops it (if still running) and waits until it is gone. */
  stop(): Promise<void>;
}

/** A MariaDB server of this test's own, in `dir`, on a free port (environment.md, section 1). */
async function startPrivateServer(dir: string): Promise<PrivateServer> {
  const data = join(dir, 'maria-data');
  const socket = join(dir, 'maria.sock');
  execFileSync(
    'mariadb-install-db',
    [
      '--no-defaults',
      '--user=root',
      `--datadir=${data}`,
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
      '--skip-name-resolve',
    ],
    { stdio: 'ignore' },
  );
  const port = await freePort();
  const child = spawn(
    'mariadbd',
    [
      '--no-defaults',
      '--user=root',
      `--datadir=${data}`,
      `--socket=${socket}`,
      `--pid-file=${join(dir, 'maria.pid')}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      '--skip-name-resolve',
      `--log-error=${join(dir, 'maria.log')}`,
      '--innodb-buffer-pool-size=64M',
      '--skip-log-bin',
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const sql = async (text: string) => {
    const result = spawnSync(
      'mariadb',
      [
        '--no-defaults',
        '--default-character-set=utf8mb4',
        `--socket=${socket}`,
        '--user=root',
        '--batch',
        '--skip-column-names',
      ],
      { input: text, encoding: 'utf8' },
    );
    if (result.status !== 0) throw new Error(`private server: ${result.stderr}`);
    return result.stdout.replace(/\n$/, '');
  };
  const server: PrivateServer = {
    port,
    socket,
    sql,
    kill: () => child.kill('SIGKILL'),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  for (let i = 0; ; i++) {
    const ping = spawnSync('mariadb-admin', ['--no-defaults', `--socket=${socket}`, '--user=root', 'ping'], {
      stdio: 'ignore',
    });
    if (ping.status === 0) break;
    if (i >= 300 || child.exitCode !== null) {
      await server.stop();
      throw new Error(`the private MariaDB server did not start; see ${join(dir, 'maria.log')}`);
    }
    await sleep(100);
  }
  return server;
}

function sourceConfig(account: { user: string; passwordFile: string }, extra: Record<string, unknown>) {
  const m = services().mariadb;
  return {
    name: 'main',
    type: 'mariadb',
    host: m.host,
    port: m.port,
    user: account.user,
    passwordFile: account.passwordFile,
    users: false,
    ...extra,
  };
}

async function expectFailure(sandbox: Sandbox, pattern: RegExp): Promise<Report> {
  const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
  const report = jsonOf<Report>(result);
  assert.equal(result.code, 1, `exit code (stderr: ${result.stderr})`);
  assert.equal(report.status, 'failure');
  assert.match(report.failures.map((f) => f.message).join('\n'), pattern);
  assert.deepEqual(manifests(sandbox.targetDir), [], 'no set was committed');
  return report;
}

describe('mariadb source through the CLI', () => {
  const sandboxes: Sandbox[] = [];
  const sandbox = async () => {
    const made = await makeSandbox('bp-e2e-mariadb-');
    sandboxes.push(made);
    return made;
  };

  before(async () => {
    // mariadb-install-db leaves root accounts for the machine's host name, which a server run with
    // --skip-name-resolve cannot load; `mariadb-dump --system=users` fails on them. Drop them.
    await admin(
      "DELETE FROM mysql.global_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1', '%') AND User = 'root';\nFLUSH PRIVILEGES;",
    );
  });
  after(async () => {
    const drops = [
      ...databases.map((db) => `DROP DATABASE IF EXISTS ${q(db)};`),
      ...accounts.map((user) => `DROP USER IF EXISTS '${user}'@'127.0.0.1';`),
    ];
    if (drops.length > 0) await admin(drops.join('\n'));
    for (const made of sandboxes) await made.cleanup();
  });

  it('commits a set whose dumps restore with zstd and the mariadb client, users and grants included', async () => {
    const box = await sandbox();
    const db = await createDatabase(
      'e2eshop',
      'CREATE TABLE orders (id INT PRIMARY KEY, note TEXT, b BLOB);\n' +
        "INSERT INTO orders SELECT seq, CONCAT('ü''', seq, ';'), UNHEX(SHA2(seq, 256)) FROM seq_1_to_5000;\n" +
        'CREATE TABLE empty_one (id INT);\nCREATE VIEW recent AS SELECT id FROM orders WHERE id > 4990;\n' +
        'CREATE PROCEDURE touch() SELECT 1;',
    );
    const account = await createAccount(box, [...grantsOn(db), 'GRANT SELECT ON mysql.* TO %u']);
    await box.writeConfig({ sources: [sourceConfig(account, { databases: [db], users: true })] });

    const result = await runCli(['--config', box.configPath, 'backup', '--json']);
    const report = jsonOf<Report>(result);
    assert.equal(result.code, 0, `${result.stderr}\n${JSON.stringify(report.failures)}`);
    assert.equal(report.status, 'success');

    const [manifestPath, ...others] = manifests(box.targetDir);
    assert.ok(manifestPath && others.length === 0);
    const setDir = join(manifestPath, '..');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Manifest;
    assert.deepEqual(
      manifest.components.map((c) => [c.name, c.kind, c.object]),
      [
        [`main.${db}`, 'mariadb', `main.${db}.sql.zst`],
        ['main.users', 'mariadb', 'main.users.sql.zst'],
      ],
    );
    const [dbComponent, usersComponent] = manifest.components;
    assert.deepEqual(dbComponent?.tables, { [`${db}.empty_one`]: 0, [`${db}.orders`]: 5000 });
    assert.match(dbComponent?.dumpTool ?? '', /^mariadb-dump \d+\.\d+\.\d+$/);
    assert.match(dbComponent?.serverVersion ?? '', /MariaDB/);
    assert.equal(usersComponent?.secret, true);
    const objects = manifest.objects.map((o) => o.name);
    assert.ok(objects.includes(`main.${db}.sql.zst`) && objects.includes('main.users.sql.zst'));
    for (const object of manifest.objects) {
      const [sum] = execFileSync('sha256sum', [join(setDir, object.name)], { encoding: 'utf8' }).split(' ');
      assert.equal(sum, object.sha256, `${object.name} hash`);
    }

    // Restore with plain tools into a database of another name, and compare.
    const copy = uniqueName('e2ecopy');
    databases.push(copy);
    await admin(`CREATE DATABASE ${q(copy)};`);
    execFileSync('bash', [
      '-o',
      'pipefail',
      '-c',
      'zstd -dc -- "$1" | mariadb --no-defaults --socket="$2" --user=root -- "$3"',
      'restore',
      join(setDir, `main.${db}.sql.zst`),
      services().mariadb.socket,
      copy,
    ]);
    const sums = async (schema: string) =>
      (await admin(`CHECKSUM TABLE ${q(schema)}.orders, ${q(schema)}.empty_one EXTENDED;`))
        .split('\n')
        .map((line) => line.split('\t')[1]);
    assert.deepEqual(await sums(copy), await sums(db));
    assert.equal(await admin(`SELECT COUNT(*) FROM ${q(copy)}.recent`), '10');
    assert.equal(await admin(`SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '${copy}'`), '1');
    const users = execFileSync('zstd', ['-dc', join(setDir, 'main.users.sql.zst')], { encoding: 'utf8' });
    assert.match(users, new RegExp(`CREATE USER \`${account.user}\`@\`127\\.0\\.0\\.1\``));
    // The password never reached the set, the dumps, the report or the state directory.
    const password = (await readFile(account.passwordFile, 'utf8')).trim();
    assert.ok(!result.stdout.includes(password) && !result.stderr.includes(password));
    const dump = execFileSync('zstd', ['-dc', join(setDir, `main.${db}.sql.zst`)]);
    assert.ok(!dump.includes(Buffer.from(password)) && !users.includes(password));
    const grep = spawnSync('grep', ['-rqF', '--', password, box.stateDir, box.targetDir]);
    assert.equal(grep.status, 1, 'grep finds the password nowhere');
  });

  it('fails with exit 1 and commits nothing when the password is wrong', async () => {
    const box = await sandbox();
    const db = await createDatabase('e2epw', 'CREATE TABLE t (id INT);');
    const account = await createAccount(box, grantsOn(db));
    await writeFile(account.passwordFile, 'not-the-right-one\n');
    await box.writeConfig({ sources: [sourceConfig(account, { databases: [db] })] });
    await expectFailure(box, new RegExp(`source main: the server at .* refused user ${account.user}: wrong password`));
  });

  it('fails with exit 1 and commits nothing when a database does not exist', async () => {
    const box = await sandbox();
    const db = await createDatabase('e2ehere', 'CREATE TABLE t (id INT);');
    const account = await createAccount(box, grantsOn(db));
    const missing = uniqueName('e2enothere');
    await box.writeConfig({ sources: [sourceConfig(account, { databases: [db, missing] })] });
    await expectFailure(box, new RegExp(`source main: database ${missing} does not exist`));
  });

  it('fails with exit 1 and commits nothing when the server does not answer', async () => {
    const box = await sandbox();
    const account = { user: 'nobody-here', passwordFile: join(box.dir, 'pw') };
    await writeFile(account.passwordFile, 'x\n', { mode: 0o600 });
    const port = await freePort();
    await box.writeConfig({ sources: [sourceConfig(account, { port })] });
    await expectFailure(box, new RegExp(`source main: cannot connect to the server at 127\\.0\\.0\\.1:${port}`));
  });

  it('fails with exit 1 and commits nothing when the account lacks a privilege the dump needs', async () => {
    const box = await sandbox();
    const db = await createDatabase('e2epriv', 'CREATE TABLE t (id INT);\nCREATE VIEW v AS SELECT * FROM t;');
    const account = await createAccount(box, [
      `GRANT SELECT, TRIGGER, EVENT ON ${q(db)}.* TO %u`,
      'GRANT SELECT ON mysql.proc TO %u',
    ]);
    await box.writeConfig({ sources: [sourceConfig(account, { databases: [db] })] });
    await expectFailure(box, new RegExp(`source main: database ${db}: mariadb-dump exited with code 2: .*SHOW VIEW`));
  });

  it('fails with exit 1 and commits nothing when the server is killed in the middle of a dump', async () => {
    // A server of its own: killing the shared one would fail every other test using it meanwhile.
    const box = await sandbox();
    const server = await startPrivateServer(box.dir);
    let holder: ChildProcess | undefined;
    let holderClosed: Promise<unknown> = Promise.resolve();
    try {
      const db = 'killme';
      await server.sql(
        `CREATE DATABASE ${db};\nUSE ${db};\nCREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(120));\n` +
          'INSERT INTO big SELECT seq, REPEAT(CHAR(65 + seq % 26), 120) FROM seq_1_to_1000;\n' +
          "CREATE USER 'dumper'@'127.0.0.1' IDENTIFIED BY 'dumper-pw';\n" +
          `GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON ${db}.* TO 'dumper'@'127.0.0.1';\n` +
          "GRANT SELECT ON mysql.proc TO 'dumper'@'127.0.0.1';",
      );
      // A session holding a write lock on the table makes mariadb-dump wait inside its dump (at the
      // SELECT of the rows), connected, for as long as we like.
      holder = spawn(
        'mariadb',
        ['--no-defaults', `--socket=${server.socket}`, '--user=root', '--batch', '--unbuffered'],
        { stdio: ['pipe', 'pipe', 'ignore'] },
      );
      holderClosed = new Promise((resolve) => holder?.on('close', resolve));
      holder.stdin?.on('error', () => {});
      holder.stdin?.write(`LOCK TABLES ${db}.big WRITE; SELECT 'locked';\n`);
      await new Promise<void>((resolve, reject) => {
        let out = '';
        holder?.stdout?.setEncoding('utf8').on('data', (d: string) => {
          out += d;
          if (out.includes('locked')) resolve();
        });
        holder?.once('close', () => reject(new Error(`the lock holder exited before locking: ${out}`)));
      });
      const passwordFile = join(box.dir, 'dumper.pass');
      await writeFile(passwordFile, 'dumper-pw\n', { mode: 0o600 });
      await box.writeConfig({
        sources: [
          {
            name: 'main',
            type: 'mariadb',
            host: '127.0.0.1',
            port: server.port,
            user: 'dumper',
            passwordFile,
            databases: [db],
            users: false,
          },
        ],
      });
      const run = startCli(['--config', box.configPath, 'backup', '--json']);
      // Wait until mariadb-dump waits for the table's rows, then kill the server under it.
      let dumping = false;
      for (let i = 0; i < 1200 && !dumping && run.child.exitCode === null; i++) {
        const reading = await server.sql(
          `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'dumper' AND DB = '${db}' AND INFO LIKE '%FROM \`big\`%' AND STATE = 'Waiting for table metadata lock'`,
        );
        dumping = reading !== '0';
        if (!dumping) await sleep(25);
      }
      assert.ok(dumping, 'the dump started');
      server.kill();
      const result = await run.done;
      const report = jsonOf<Report>(result);
      assert.equal(result.code, 1, result.stderr);
      assert.equal(report.status, 'failure');
      assert.match(
        report.failures.map((f) => f.message).join('\n'),
        new RegExp(
          `source main: database ${db}: mariadb-dump exited with code \\d+: .*(Lost connection|gone away)`,
          's',
        ),
      );
      assert.deepEqual(manifests(box.targetDir), [], 'no set was committed');
    } finally {
      holder?.stdin?.end();
      await server.stop();
      await holderClosed;
    }
  });
});
