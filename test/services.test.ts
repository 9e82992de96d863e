// Smoke test of the real servers scripts/test-services.sh starts: each one answers, with the
// accounts and limits the other tests rely on (and refuses what it must refuse).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListBucketsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Client, type ClientChannel, type SFTPWrapper } from 'ssh2';
import {
  mariadbAdmin,
  postgresAdminPassword,
  psqlAdmin,
  restartService,
  type ServiceName,
  services,
  uniqueName,
} from './helpers/services.js';

process.env.AWS_EC2_METADATA_DISABLED = 'true';

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: { PATH: process.env.PATH, LC_ALL: 'C', ...env }, stdio: 'pipe' });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.stdout.resume();
    child.stdin.end();
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('the services directory', () => {
  it('describes every service, with the versions the project targets', () => {
    const s = services();
    assert.match(s.mariadb.version, /^10\.11\.\d+$/);
    assert.match(s.postgres.version, /^15\.\d+$/);
    assert.match(s.ssh.hostPublicKey, /^ssh-ed25519 [A-Za-z0-9+/]+=*$/);
    assert.equal(s.s3.endpoint, 'http://127.0.0.1:18080');
    for (const host of [s.mariadb.host, s.postgres.host, s.ssh.host]) assert.equal(host, '127.0.0.1');
  });

  it('says which script to run when services.json is missing', async (t) => {
    const empty = await mkdtemp(path.join(os.tmpdir(), 'backproof-noservices-'));
    const saved = process.env.BACKPROOF_SERVICES_DIR;
    t.after(async () => {
      if (saved === undefined) delete process.env.BACKPROOF_SERVICES_DIR;
      else process.env.BACKPROOF_SERVICES_DIR = saved;
      await rm(empty, { recursive: true, force: true });
    });
    process.env.BACKPROOF_SERVICES_DIR = empty;
    assert.throws(services, (error: Error) => {
      assert.match(error.message, new RegExp(`${empty}/services\\.json is missing`));
      assert.match(error.message, /scripts\/test-services\.sh start/);
      return true;
    });
  });

  it('gives names that differ every time and suit databases, users and buckets', () => {
    const names = new Set<string>();
    for (let i = 0; i < 2000; i++) names.add(uniqueName('My_Test-DB'));
    assert.equal(names.size, 2000);
    for (const name of names) assert.match(name, /^mytestdb[a-z0-9]{3,18}$/);
    assert.match(uniqueName('42'), /^t42[a-z0-9]+$/);
    assert.match(uniqueName(''), /^t[a-z0-9]+$/);
    assert.ok(uniqueName('x'.repeat(100)).length <= 30);
  });

  it('refuses to restart a service it does not know', async () => {
    await assert.rejects(restartService('mysql' as ServiceName), /unknown service mysql/);
  });
});

describe('MariaDB', () => {
  it('answers queries as root over the socket', async () => {
    const db = uniqueName('smoke');
    try {
      await mariadbAdmin(`CREATE DATABASE ${db}; CREATE TABLE ${db}.t (id INT PRIMARY KEY, name VARCHAR(20));`);
      await mariadbAdmin("INSERT INTO t VALUES (1, 'one'), (2, 'two');", db);
      assert.equal(await mariadbAdmin('SELECT id, name FROM t ORDER BY id;', db), '1\tone\n2\ttwo');
      assert.match(await mariadbAdmin('SELECT VERSION();'), new RegExp(`^${services().mariadb.version}-MariaDB`));
    } finally {
      await mariadbAdmin(`DROP DATABASE IF EXISTS ${db};`);
    }
  });

  it('accepts root over TCP on 127.0.0.1 without a password', async () => {
    const { port } = services().mariadb;
    const result = await run('mariadb', ['--no-defaults', '-h127.0.0.1', `-P${port}`, '-uroot', '-e', 'SELECT 1'], {});
    assert.equal(result.code, 0, result.stderr);
  });

  it('rejects with the server error when the SQL fails', async () => {
    await assert.rejects(mariadbAdmin('SELEC 1;'), /mariadb exited 1: .*SQL syntax/s);
    await assert.rejects(mariadbAdmin('SELECT 1;', uniqueName('missing')), /Unknown database/);
  });
});

describe('PostgreSQL', () => {
  it('answers queries as postgres over the socket', async () => {
    const db = uniqueName('smoke');
    try {
      await psqlAdmin(`CREATE DATABASE ${db};`);
      await psqlAdmin(
        "CREATE TABLE t (id int PRIMARY KEY, name text); INSERT INTO t VALUES (1, 'one'), (2, 'two');",
        db,
      );
      assert.equal(await psqlAdmin('SELECT id, name FROM t ORDER BY id;', db), '1|one\n2|two');
      assert.equal(
        await psqlAdmin("SELECT split_part(current_setting('server_version'), ' ', 1);"),
        services().postgres.version,
      );
    } finally {
      await psqlAdmin(`DROP DATABASE IF EXISTS ${db};`);
    }
  });

  it('accepts the admin password over TCP and refuses a wrong one', async () => {
    const { host, port, adminUser } = services().postgres;
    const args = ['-X', '-At', '-h', host, '-p', String(port), '-U', adminUser, '-d', 'postgres', '-c', 'SELECT 1'];
    const ok = await run('psql', args, { PGPASSWORD: postgresAdminPassword() });
    assert.equal(ok.code, 0, ok.stderr);
    const wrong = await run('psql', args, { PGPASSWORD: 'not-the-password' });
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /password authentication failed for user "postgres"/);
  });

  it('rejects with the server error when the SQL fails, and stops at the first error', async () => {
    const db = uniqueName('smoke');
    try {
      await psqlAdmin(`CREATE DATABASE ${db};`);
      await assert.rejects(
        psqlAdmin('CREATE TABLE a (id int); SELECT nope FROM a; CREATE TABLE b (id int);', db),
        /psql \(database \w+\) exited 3: .*column "nope" does not exist/s,
      );
      assert.equal(
        await psqlAdmin("SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public';", db),
        'a',
      );
    } finally {
      await psqlAdmin(`DROP DATABASE IF EXISTS ${db};`);
    }
  });
});

// --- SSH -----------------------------------------------------------------------------------------

const hostKeyBlob = (): Buffer => {
  const [, base64] = services().ssh.hostPublicKey.split(' ');
  return Buffer.from(base64 ?? '', 'base64');
};

function connect(user: string, identityFile: string, expectedHostKey = hostKeyBlob()): Promise<Client> {
  const { host, port } = services().ssh;
  return new Promise((resolve, reject) => {
    const client = new Client();
    client.once('ready', () => resolve(client));
    client.once('error', (error) => {
      client.end();
      reject(error);
    });
    client.connect({
      host,
      port,
      username: user,
      privateKey: readFileSync(identityFile),
      hostVerifier: (key: Buffer) => key.equals(expectedHostKey),
      readyTimeout: 20_000,
    });
  });
}

function exec(
  client: Client,
  command: string,
  input: Buffer,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error: Error | undefined, channel: ClientChannel) => {
      if (error) return reject(error);
      let stdout = '';
      let stderr = '';
      channel.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
      });
      channel.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      channel.on('close', (code: number) => resolve({ code, stdout, stderr }));
      channel.end(input);
    });
  });
}

function sftpOf(client: Client): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => client.sftp((error, sftp) => (error ? reject(error) : resolve(sftp))));
}

const sftpCall = <T>(call: (done: (error: Error | null | undefined, value?: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => call((error, value) => (error ? reject(error) : resolve(value as T))));

describe('OpenSSH', () => {
  const clients: Client[] = [];
  const localDirs: string[] = [];
  after(async () => {
    for (const client of clients) client.end();
    for (const dir of localDirs) await rm(dir, { recursive: true, force: true });
  });

  it('lets bpnas exec sha256sum and put/get files over SFTP in its home', async () => {
    const { user, identityFile, home } = services().ssh;
    const client = await connect(user, identityFile);
    clients.push(client);
    const data = randomBytes(300_000);

    const hashed = await exec(client, 'sha256sum', data);
    assert.equal(hashed.code, 0, hashed.stderr);
    assert.equal(hashed.stdout, `${sha256(data)}  -\n`);

    const sftp = await sftpOf(client);
    const dir = uniqueName('sftp');
    localDirs.push(path.join(home, dir));
    await sftpCall((done) => sftp.mkdir(dir, done));
    await sftpCall((done) => sftp.writeFile(`${dir}/payload.bin`, data, done));
    const back = await sftpCall<Buffer>((done) => sftp.readFile(`${dir}/payload.bin`, done));
    assert.ok(back.equals(data));
    // The server is this machine: the file is really there, owned by bpnas.
    assert.equal(sha256(await readFile(path.join(home, dir, 'payload.bin'))), sha256(data));
    const remote = await exec(client, `sha256sum ${dir}/payload.bin`, Buffer.alloc(0));
    assert.equal(remote.stdout, `${sha256(data)}  ${dir}/payload.bin\n`);
    await sftpCall((done) => sftp.unlink(`${dir}/payload.bin`, done));
    await sftpCall((done) => sftp.rmdir(dir, done));
  });

  it('refuses a host key other than the one in known_hosts', async () => {
    const { user, identityFile } = services().ssh;
    await assert.rejects(connect(user, identityFile, randomBytes(51)), /verification failed/i);
  });

  it("refuses bpnas with bpsftp's key", async () => {
    const { user, sftpOnly } = services().ssh;
    await assert.rejects(connect(user, sftpOnly.identityFile), /authentication methods failed/);
  });

  it('keeps bpsftp to SFTP inside its chroot, where /upload is writable', async () => {
    const { sftpOnly } = services().ssh;
    const client = await connect(sftpOnly.user, sftpOnly.identityFile);
    clients.push(client);

    const refused = await exec(client, 'sha256sum /etc/passwd', Buffer.alloc(0));
    assert.notEqual(refused.code, 0);
    assert.equal(refused.stdout + refused.stderr, 'This service allows sftp connections only.\n');

    const sftp = await sftpOf(client);
    assert.equal(await sftpCall<string>((done) => sftp.realpath('.', done)), sftpOnly.path);
    const name = uniqueName('chroot');
    localDirs.push(path.join(sftpOnly.localPath, name));
    const data = randomBytes(70_000);
    await sftpCall((done) => sftp.writeFile(`${sftpOnly.path}/${name}`, data, done));
    assert.ok((await sftpCall<Buffer>((done) => sftp.readFile(`${sftpOnly.path}/${name}`, done))).equals(data));
    assert.equal((await stat(path.join(sftpOnly.localPath, name))).size, data.length);
    // The chroot's root is root-owned: nothing can be written there, and the host's files are out of reach.
    await assert.rejects(
      sftpCall((done) => sftp.writeFile(`/${name}`, data, done)),
      /Permission denied/,
    );
    await assert.rejects(
      sftpCall((done) => sftp.stat('/etc/passwd', done)),
      /No such file/,
    );
    await sftpCall((done) => sftp.unlink(`${sftpOnly.path}/${name}`, done));
  });
});

// --- S3 ------------------------------------------------------------------------------------------

function s3Client(secretAccessKey = services().s3.secretAccessKey): S3Client {
  const s3 = services().s3;
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: s3.forcePathStyle,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
  });
}

describe('S3 (Swift s3api)', () => {
  it('stores and returns an object in a new bucket', async () => {
    const client = s3Client();
    const Bucket = uniqueName('smoke');
    const data = randomBytes(1_000_000);
    await client.send(new CreateBucketCommand({ Bucket }));
    try {
      await client.send(new PutObjectCommand({ Bucket, Key: 'dir/object.bin', Body: data }));
      const got = await client.send(new GetObjectCommand({ Bucket, Key: 'dir/object.bin' }));
      assert.equal(got.ContentLength, data.length);
      const body = Buffer.from((await got.Body?.transformToByteArray()) ?? []);
      assert.equal(sha256(body), sha256(data));
    } finally {
      await client.send(new DeleteObjectCommand({ Bucket, Key: 'dir/object.bin' }));
      await client.send(new DeleteBucketCommand({ Bucket }));
      client.destroy();
    }
  });

  it('refuses a wrong secret key', async () => {
    const client = s3Client('not-the-secret');
    try {
      await assert.rejects(
        client.send(new ListBucketsCommand({})),
        (error: Error & { $metadata?: { httpStatusCode?: number } }) => {
          assert.equal(error.name, 'SignatureDoesNotMatch');
          assert.equal(error.$metadata?.httpStatusCode, 403);
          return true;
        },
      );
    } finally {
      client.destroy();
    }
  });
});
