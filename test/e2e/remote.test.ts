// Remote targets end to end through the real CLI: a NAS over SFTP and S3 (Swift s3api), staged and
// direct fan-out, restores with plain tools from what each server holds, and every way a target can
// be wrong (host keys, client key, bucket, credentials, a server killed mid-upload).
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { jsonOf, makeSandbox, runCli, type Sandbox, startCli } from '../helpers/cli.js';
import { compareTrees } from '../helpers/compare.js';
import { filesUnder, waitFor } from '../helpers/files.js';
import { killTree, PrivateSshd, waitUntilUp } from '../helpers/private-sshd.js';
import { closedPort } from '../helpers/receivers.js';
import { type S3Service, services, uniqueName } from '../helpers/services.js';

process.env.AWS_EC2_METADATA_DISABLED = 'true';

const MiB = 1024 * 1024;

interface Report {
  status: string;
  exitCode: number;
  setId: string;
  warnings: string[];
  failures: { step: string; message: string; target?: string }[];
  targets: { name: string; result: string; objects: { name: string; level: string }[] }[];
}

function s3Client(s3: S3Service): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

async function s3Keys(client: S3Client, bucket: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys.sort();
}

async function emptyBucket(client: S3Client, bucket: string): Promise<void> {
  for (const key of await s3Keys(client, bucket))
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
}

/** Extracts a files component's tar (stored compressed at `object`) into `into` with plain zstd and tar. */
function untar(object: string, into: string): void {
  execFileSync('sh', ['-c', 'zstd -q -d -c "$1" | tar --numeric-owner -xpf - -C "$2"', 'sh', object, into]);
}

describe('remote targets through the CLI', () => {
  let sandbox: Sandbox;
  let source: string;
  let client: S3Client;
  let bucket: string;
  let secretFile: string;
  const nasDirs: string[] = [];

  before(async () => {
    sandbox = await makeSandbox();
    source = join(sandbox.dir, 'app');
    await mkdir(join(source, 'public'), { recursive: true });
    await writeFile(join(source, 'public', 'index.php'), '<?php echo "hello";\n'.repeat(500));
    await writeFile(join(source, 'upload.bin'), randomBytes(300_000));
    client = s3Client(services().s3);
    bucket = uniqueName('bk');
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    secretFile = join(sandbox.dir, 's3.secret');
    await writeFile(secretFile, `${services().s3.secretAccessKey}\n`, { mode: 0o600 });
  });
  after(async () => {
    await emptyBucket(client, bucket).catch(() => {});
    for (const dir of nasDirs) await rm(dir, { recursive: true, force: true });
    await sandbox.cleanup();
  });

  /** A directory the SSH user owns (a target's root must exist: an unmounted share must not look empty). */
  function remoteDir(parent: string, owner: string): string {
    const dir = uniqueName('nas');
    execFileSync('install', ['-d', '-m', '700', '-o', owner, '-g', owner, join(parent, dir)]);
    nasDirs.push(join(parent, dir));
    return dir;
  }

  function sftpTarget(name: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
    const ssh = services().ssh;
    const dir = remoteDir(ssh.home, ssh.user);
    return {
      name,
      type: 'sftp',
      host: ssh.host,
      port: ssh.port,
      user: ssh.user,
      identityFile: ssh.identityFile,
      knownHosts: ssh.knownHosts,
      path: dir,
      ...overrides,
    };
  }

  function s3Target(name: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
    const s3 = services().s3;
    return {
      name,
      type: 's3',
      endpoint: s3.endpoint,
      region: s3.region,
      bucket,
      prefix: `${uniqueName('p')}/`,
      forcePathStyle: true,
      accessKeyId: s3.accessKeyId,
      secretAccessKeyFile: secretFile,
      ...overrides,
    };
  }

  it('staged: one run commits a verified set on a local disk, a NAS and S3, each restorable with plain tools', async () => {
    const nas = sftpTarget('nas');
    const cloud = s3Target('cloud');
    await sandbox.writeConfig({
      sources: [{ name: 'app', type: 'files', paths: [source] }],
      targets: [{ name: 'disk', type: 'local', path: sandbox.targetDir }, nas, cloud],
    });
    const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    const report = jsonOf<Report>(result);
    assert.equal(
      result.code,
      0,
      `${result.stderr}\n${JSON.stringify(report.failures)}\n${JSON.stringify(report.warnings)}`,
    );
    assert.deepEqual(
      report.targets.map((t) => [t.name, t.result]),
      [
        ['disk', 'committed'],
        ['nas', 'committed'],
        ['cloud', 'committed'],
      ],
    );
    const levels = Object.fromEntries(report.targets.map((t) => [t.name, [...new Set(t.objects.map((o) => o.level))]]));
    assert.deepEqual(levels, { disk: ['reread'], nas: ['remote-hash'], cloud: ['etag'] });

    // From the NAS: the files as the server holds them.
    const nasRoot = join(services().ssh.home, nas.path as string);
    const nasFiles = await filesUnder(nasRoot);
    assert.ok(nasFiles.some((f) => f.endsWith(`${report.setId}/manifest.json`)));
    assert.ok(
      nasFiles.every((f) => !f.includes('.tmp-')),
      'no temporaries left on the NAS',
    );
    const fromNas = join(sandbox.dir, 'from-nas');
    await mkdir(fromNas);
    untar(join(nasRoot, nasFiles.find((f) => f.endsWith('app.tar.zst')) as string), fromNas);
    assert.deepEqual(await compareTrees(source, join(fromNas, source.slice(1))), []);

    // From S3: download the objects, check them against the manifest with sha256sum, restore.
    const prefix = cloud.prefix as string;
    const keys = (await s3Keys(client, bucket)).filter((k) => k.startsWith(prefix));
    const downloaded = join(sandbox.dir, 'from-s3');
    await mkdir(downloaded);
    for (const key of keys.filter((k) => k.includes(report.setId))) {
      const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      await writeFile(
        join(downloaded, key.split('/').pop() as string),
        (await object.Body?.transformToByteArray()) ?? new Uint8Array(),
      );
    }
    const manifest = JSON.parse(await readFile(join(downloaded, 'manifest.json'), 'utf8'));
    const sums = manifest.objects.map((o: { sha256: string; name: string }) => `${o.sha256}  ${o.name}`).join('\n');
    execFileSync('sha256sum', ['-c', '--quiet', '-'], { cwd: downloaded, input: `${sums}\n` });
    const fromS3 = join(sandbox.dir, 'from-s3-tree');
    await mkdir(fromS3);
    untar(join(downloaded, 'app.tar.zst'), fromS3);
    assert.deepEqual(await compareTrees(source, join(fromS3, source.slice(1))), []);

    // list and status read every target.
    const list = jsonOf<{ targets: { target: string; sets: { setId: string }[] }[] }>(
      await runCli(['--config', sandbox.configPath, 'list', '--json']),
    );
    assert.deepEqual(
      list.targets.map((t) => [t.target, t.sets.map((s) => s.setId)]),
      [
        ['disk', [report.setId]],
        ['nas', [report.setId]],
        ['cloud', [report.setId]],
      ],
    );
    const status = await runCli(['--config', sandbox.configPath, 'status', '--json']);
    assert.equal(status.code, 0, status.stdout);
    const health = jsonOf<{ targets: { target: string; verification: string }[] }>(status);
    assert.deepEqual(
      health.targets.map((t) => [t.target, t.verification]),
      [
        ['disk', 'reread'],
        ['nas', 'remote-hash'],
        ['cloud', 'etag'],
      ],
    );
  });

  it('direct: without a local target one read feeds an SFTP-only NAS (read back) and S3; an optional target that fails makes it a warning', async () => {
    const sftpOnly = services().ssh.sftpOnly;
    const dir = remoteDir(sftpOnly.localPath, sftpOnly.user);
    const otherKey = join(sandbox.dir, 'optional_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', otherKey]);
    await sandbox.writeConfig({
      sources: [{ name: 'app', type: 'files', paths: [source] }],
      targets: [
        // Other names than the staged test's: the state remembers each target's chain head by name.
        sftpTarget('nasonly', {
          user: sftpOnly.user,
          identityFile: sftpOnly.identityFile,
          path: `${sftpOnly.path}/${dir}`,
        }),
        s3Target('cloudonly'),
        sftpTarget('spare', { identityFile: otherKey, optional: true }),
      ],
    });
    const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    const report = jsonOf<Report>(result);
    assert.equal(
      result.code,
      3,
      `${result.stderr}\n${JSON.stringify(report.failures)}\n${JSON.stringify(report.warnings)}`,
    );
    assert.equal(report.status, 'warning');
    assert.deepEqual(
      report.targets.map((t) => [t.name, t.result]),
      [
        ['nasonly', 'committed'],
        ['cloudonly', 'committed'],
        ['spare', 'failed'],
      ],
    );
    const levels = Object.fromEntries(
      report.targets
        .filter((t) => t.result === 'committed')
        .map((t) => [t.name, [...new Set(t.objects.map((o) => o.level))]]),
    );
    assert.deepEqual(levels, { nasonly: ['reread'], cloudonly: ['etag'] });
    const files = await filesUnder(join(sftpOnly.localPath, dir));
    assert.ok(files.some((f) => f.endsWith(`${report.setId}/manifest.json`)));
  });

  it('a required target that fails makes the run a failure but leaves the local set complete; each failure names what to fix (unknown or changed host key, wrong client key, missing bucket, refused credentials)', async () => {
    const emptyKnownHosts = join(sandbox.dir, 'known_hosts.empty');
    await writeFile(emptyKnownHosts, '');
    const otherKey = join(sandbox.dir, 'other_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', otherKey]);
    const changedKnownHosts = join(sandbox.dir, 'known_hosts.changed');
    const ssh = services().ssh;
    const otherPublic = (await readFile(`${otherKey}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
    await writeFile(changedKnownHosts, `[${ssh.host}]:${ssh.port} ${otherPublic}\n`);
    const wrongSecret = join(sandbox.dir, 'wrong.secret');
    await writeFile(wrongSecret, 'not-the-secret\n', { mode: 0o600 });

    // One run, one broken target per way to be wrong, beside a healthy local disk.
    const broken: { target: Record<string, unknown>; expect: RegExp }[] = [
      {
        target: sftpTarget('unknownhost', { knownHosts: emptyKnownHosts }),
        expect: /unknown|not in .*known_hosts|ssh-keyscan/i,
      },
      {
        target: sftpTarget('changedhost', { knownHosts: changedKnownHosts }),
        expect: /changed|does not match|mismatch/i,
      },
      { target: sftpTarget('wrongkey', { identityFile: otherKey }), expect: /auth|key|refused|denied/i },
      { target: s3Target('nobucket', { bucket: uniqueName('missing') }), expect: /bucket/i },
      {
        target: s3Target('badsecret', { secretAccessKeyFile: wrongSecret }),
        expect: /credential|signature|denied|refused/i,
      },
    ];
    const disk = join(sandbox.dir, 'disk-required');
    await mkdir(disk);
    await sandbox.writeConfig({
      sources: [{ name: 'app', type: 'files', paths: [source] }],
      targets: [{ name: 'disk', type: 'local', path: disk }, ...broken.map((b) => b.target)],
    });
    const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    const report = jsonOf<Report>(result);
    assert.equal(result.code, 1, result.stdout);
    assert.equal(report.status, 'failure');
    assert.deepEqual(
      report.targets.map((t) => [t.name, t.result]),
      [['disk', 'committed'], ...broken.map((b) => [b.target.name, 'failed'])],
    );
    for (const { target, expect } of broken) {
      const messages = report.failures
        .filter((f) => f.target === target.name)
        .map((f) => f.message)
        .join('\n');
      assert.match(messages, expect, `${JSON.stringify(target)} gives: ${messages}`);
    }
    assert.doesNotMatch(result.stdout + result.stderr, /not-the-secret|testing/, 'no secret in the output');
    const manifests = (await filesUnder(disk)).filter((f) => f.endsWith('manifest.json'));
    assert.equal(manifests.length, 1, 'the local set is committed');
  });

  it('acceptNewHostKey pins a first-seen host key, says so with its fingerprint (exit 3), then trusts it', async () => {
    const pinned = join(sandbox.dir, 'known_hosts.pinned');
    await sandbox.writeConfig({
      sources: [{ name: 'app', type: 'files', paths: [source] }],
      targets: [sftpTarget('pinned', { knownHosts: pinned, acceptNewHostKey: true })],
    });
    const first = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    assert.equal(first.code, 3, first.stdout);
    const report = jsonOf<Report>(first);
    assert.match(report.warnings.join('\n'), /pinned the host key .*SHA256:/);
    assert.match(await readFile(pinned, 'utf8'), /ssh-ed25519 /);
    const second = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    assert.equal(second.code, 0, second.stdout);
  });
});

// The two tests run side by side: each spends most of its time waiting while the CLI retries a dead server.
describe('a server dying mid-upload', { concurrency: true }, () => {
  let work: string;
  let blob: string;

  /**
   * A sandbox whose job sends 6 MiB of random bytes, then waits for the gate file: the upload cannot
   * end before the test has killed the server, however fast the machine. gzip passes bytes on as
   * they come (zstd -T0 holds back megabytes), so the test knows how far the upload got.
   */
  async function gatedSandbox(target: Record<string, unknown>): Promise<{ sandbox: Sandbox; gate: string }> {
    const sandbox = await makeSandbox();
    const gate = join(sandbox.dir, 'gate');
    await sandbox.writeConfig({
      sources: [
        {
          name: 'big',
          type: 'command',
          // (It also stops waiting once the sandbox is gone, so a failed test leaves no process behind.)
          command: `cat '${blob}'; while [ ! -e '${gate}' ] && [ -d '${sandbox.dir}' ]; do sleep 0.05; done`,
          extension: 'bin',
        },
      ],
      compression: { algorithm: 'gzip', level: 1 },
      targets: [target],
    });
    return { sandbox, gate };
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'bp-dying-'));
    blob = join(work, 'blob.bin');
    await writeFile(blob, randomBytes(6 * MiB));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('sshd killed mid-upload: exit 1, no manifest there; the next run succeeds and removes the leftovers', async () => {
    const ssh = services().ssh;
    const sshd = await PrivateSshd.start({ user: ssh.user });
    const dir = uniqueName('kill');
    const remoteRoot = join(ssh.home, dir);
    execFileSync('install', ['-d', '-m', '700', '-o', ssh.user, '-g', ssh.user, remoteRoot]);
    let box: { sandbox: Sandbox; gate: string } | undefined;
    let run: ReturnType<typeof startCli> | undefined;
    try {
      box = await gatedSandbox({
        name: 'nas',
        type: 'sftp',
        host: ssh.host,
        port: sshd.port,
        user: ssh.user,
        identityFile: ssh.identityFile,
        knownHosts: sshd.knownHosts,
        path: dir,
      });
      const { sandbox, gate } = box;
      run = startCli(['--config', sandbox.configPath, 'backup', '--json']);
      await waitFor('1 MiB of the upload on the NAS', async () => (await temporaryBytes(remoteRoot)) >= MiB);
      assert.ok((await sshd.kill()) >= 2, 'sshd and its session were killed');
      await writeFile(gate, '');
      const result = await run.done;
      assert.equal(result.code, 1, result.stdout + result.stderr);
      const left = await filesUnder(remoteRoot);
      assert.ok(
        left.some((f) => f.includes('.tmp-')),
        `the killed upload left its temporary: ${left.join(', ')}`,
      );
      assert.ok(!left.some((f) => f.endsWith('manifest.json')), 'no manifest on the NAS');

      await sshd.run();
      const next = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
      assert.equal(next.code, 0, next.stdout + next.stderr);
      const report = jsonOf<Report>(next);
      const files = await filesUnder(remoteRoot);
      assert.ok(
        files.every((f) => !f.includes('.tmp-')),
        `temporaries are gone: ${files.join(', ')}`,
      );
      assert.ok(
        files.every((f) => f === 'demo/backproof.json' || f.includes(report.setId)),
        `only the new set: ${files.join(', ')}`,
      );
      assert.ok(files.some((f) => f.endsWith(`${report.setId}/manifest.json`)));
    } finally {
      run?.child.kill();
      await sshd.stop();
      await rm(remoteRoot, { recursive: true, force: true });
      await box?.sandbox.cleanup();
    }
  });

  it('S3 server killed mid-multipart: exit 1, no manifest; the next run succeeds and aborts the unfinished upload', async () => {
    const s3 = services().s3;
    const proxy = await PrivateS3Proxy.start(s3);
    // Through the shared server: the same cluster, so it sees what the killed proxy was writing.
    const client = s3Client(s3);
    const bucket = uniqueName('kill');
    const secretFile = join(work, 's3.secret');
    await writeFile(secretFile, s3.secretAccessKey, { mode: 0o600 });
    let box: { sandbox: Sandbox; gate: string } | undefined;
    let run: ReturnType<typeof startCli> | undefined;
    try {
      box = await gatedSandbox({
        name: 'cloud',
        type: 's3',
        endpoint: proxy.endpoint,
        region: s3.region,
        bucket,
        forcePathStyle: true,
        accessKeyId: s3.accessKeyId,
        secretAccessKeyFile: secretFile,
        partSize: '5MiB',
      });
      const { sandbox, gate } = box;
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      const uploads = async () =>
        (await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [];
      run = startCli(['--config', sandbox.configPath, 'backup', '--json']);
      // The first 5 MiB part fills up before the gate: the multipart upload starts, then the server dies.
      await waitFor('a multipart upload to start', async () => (await uploads()).length > 0);
      await proxy.kill();
      await writeFile(gate, '');
      const result = await run.done;
      assert.equal(result.code, 1, result.stdout + result.stderr);
      assert.ok((await uploads()).length > 0, 'the killed run left an unfinished multipart upload');
      assert.ok(!(await s3Keys(client, bucket)).some((k) => k.endsWith('manifest.json')), 'no manifest');

      await proxy.start();
      const next = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
      assert.equal(next.code, 0, next.stdout + next.stderr);
      assert.deepEqual(await uploads(), [], 'unfinished uploads were aborted');
      const report = jsonOf<Report>(next);
      const keys = await s3Keys(client, bucket);
      assert.ok(
        keys.every((k) => k === 'demo/backproof.json' || k.includes(report.setId)),
        `only the new set: ${keys.join(', ')}`,
      );
      assert.ok(keys.some((k) => k.endsWith(`${report.setId}/manifest.json`)));
    } finally {
      run?.child.kill();
      await emptyBucket(client, bucket).catch(() => {});
      client.destroy();
      await proxy.stop();
      await box?.sandbox.cleanup();
    }
  });
});

/** Bytes in the temporaries (`.tmp-`) under `root`. */
async function temporaryBytes(root: string): Promise<number> {
  let total = 0;
  for (const file of await filesUnder(root)) {
    if (file.includes('.tmp-')) total += (await stat(join(root, file)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/**
 * A second Swift proxy process on its own port, in front of the shared Swift cluster: a real S3
 * server this test may kill -9 without taking the shared one (and the other tests) down.
 */
class PrivateS3Proxy {
  private child: ChildProcess | undefined;

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  static async start(s3: S3Service): Promise<PrivateS3Proxy> {
    const sharedConf = join(dirname(dirname(s3.log)), 'etc', 'proxy-server.conf');
    const dir = await mkdtemp(join(tmpdir(), 'bp-s3proxy-'));
    const port = await closedPort();
    const text = (await readFile(sharedConf, 'utf8')).replace(/^bind_port\s*=.*$/m, `bind_port = ${port}`);
    assert.ok(text.includes(`bind_port = ${port}`), `no bind_port in ${sharedConf}`);
    await writeFile(join(dir, 'proxy-server.conf'), text);
    const proxy = new PrivateS3Proxy(dir, port);
    await proxy.start();
    return proxy;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts the proxy (again, on the same port) and waits for its healthcheck. */
  async start(): Promise<void> {
    const log = join(this.dir, 'proxy.log');
    const fd = openSync(log, 'a');
    try {
      this.child = spawn('/usr/bin/swift-proxy-server', [join(this.dir, 'proxy-server.conf'), '-v'], {
        stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    const healthy = () =>
      fetch(`${this.endpoint}/healthcheck`).then(
        (r) => r.ok,
        () => false,
      );
    await waitUntilUp(`the private swift proxy on ${this.endpoint}`, this.child, log, healthy);
  }

  async kill(): Promise<void> {
    await killTree(this.child);
    this.child = undefined;
  }

  async stop(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }
}
