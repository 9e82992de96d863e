// Client-side encryption through the real CLI: a job with files, SQLite and the system preset backs
// up to a local disk, a NAS over SFTP and S3 with only the public key; no target ever holds a
// plaintext byte of a marker planted in the sources; Debian's age, zstd and tar restore the set
// without backproof, and an object encrypted by the age program restores with backproof; restore
// and drill need the private key and fail clearly without it (or with the wrong one), leaving
// nothing half-restored; verify needs no key.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { stringify } from 'yaml';
import { type CliResult, jsonOf, makeSandbox, runCli, type Sandbox } from '../helpers/cli.js';
import { compareTrees } from '../helpers/compare.js';
import { filesUnder } from '../helpers/files.js';
import { type RemoteTargets, remoteTargets } from '../helpers/remote-targets.js';

/** Planted in a file, a .env file, a TLS key and a database row: no target may hold these bytes. */
const MARKER = `BACKPROOF-PLAINTEXT-${randomBytes(8).toString('hex')}`;

interface BackupReport {
  status: string;
  setId: string;
  failures: { step: string; message: string }[];
}

interface ManifestJson {
  setId: string;
  encryption: { recipients: string[] } | null;
  objects: { name: string; bytes: number; sha256: string }[];
  components: { name: string; object: string; index?: string; bytes: number; sha256: string; secret?: boolean }[];
}

const explain = (result: CliResult) => `exit ${result.code}\n${result.stderr}\n${result.stdout}`;
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** `age -d -i KEY < object | zstd -d`, the plain-tool way. */
function decryptAndDecompress(object: string, key: string): Buffer {
  return execFileSync('sh', ['-c', 'age -d -i "$1" < "$2" | zstd -q -d -c', 'sh', key, object], {
    maxBuffer: 1 << 28,
  });
}

describe('encryption end to end', () => {
  let sandbox: Sandbox;
  let remote: RemoteTargets;
  let app: string;
  let database: string;
  let sysroot: string;
  let keyFile: string;
  let strangerKey: string;
  let recipient: string;
  let nas: Record<string, unknown>;
  let cloud: Record<string, unknown>;
  let config: Record<string, unknown>;
  let setId: string;
  let setDir: string;

  const cli = (...args: string[]) => runCli(['--config', sandbox.configPath, ...args]);

  before(async () => {
    sandbox = await makeSandbox('bp-e2e-encryption-');
    remote = await remoteTargets(sandbox.dir, 'enc');
    keyFile = join(sandbox.dir, 'age.key');
    strangerKey = join(sandbox.dir, 'stranger.key');
    execFileSync('age-keygen', ['-o', keyFile], { stdio: 'ignore' });
    execFileSync('age-keygen', ['-o', strangerKey], { stdio: 'ignore' });
    recipient = execFileSync('age-keygen', ['-y', keyFile], { encoding: 'utf8' }).trim();

    app = join(sandbox.dir, 'app');
    await mkdir(join(app, 'public'), { recursive: true });
    await mkdir(join(app, 'storage'), { recursive: true });
    await writeFile(join(app, 'public', 'index.php'), `<?php echo "${MARKER}";\n`.repeat(200));
    await writeFile(join(app, '.env'), `APP_KEY=${MARKER}\n`, { mode: 0o600 });
    await writeFile(join(app, 'storage', 'upload.bin'), randomBytes(300_000));
    await writeFile(join(app, 'empty'), '');

    database = join(sandbox.dir, 'app.sqlite');
    execFileSync('sqlite3', [
      database,
      `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('${MARKER}'), ('plain');`,
    ]);

    sysroot = join(sandbox.dir, 'sysroot');
    await mkdir(join(sysroot, 'etc/nginx'), { recursive: true });
    await mkdir(join(sysroot, 'etc/ssl/private'), { recursive: true });
    await mkdir(join(sysroot, 'var/lib/dpkg'), { recursive: true });
    await writeFile(join(sysroot, 'etc/nginx/nginx.conf'), 'user www-data;\n');
    await writeFile(join(sysroot, 'etc/ssl/private/site.key'), `${MARKER} private key\n`, { mode: 0o600 });
    await writeFile(join(sysroot, 'var/lib/dpkg/status'), 'Package: nginx\nStatus: install ok installed\n');

    nas = remote.sftpTarget('nas');
    cloud = remote.s3Target('cloud');
    config = {
      sources: [
        { name: 'app', type: 'files', paths: [app] },
        { name: 'cache', type: 'sqlite', path: database },
        { name: 'system', type: 'system', root: sysroot },
      ],
      targets: [{ name: 'disk', type: 'local', path: sandbox.targetDir }, nas, cloud],
      // Backing up needs only the public key: no identityFile here.
      encryption: { recipients: [recipient] },
    };
    await sandbox.writeConfig(config);
  });
  after(async () => {
    await remote?.cleanup();
    await sandbox?.cleanup();
  });

  it('refuses a system source without encryption, and bad keys, before writing anything', async () => {
    const plain = { ...config, encryption: undefined };
    await sandbox.writeConfig(plain);
    const check = await cli('config', 'check');
    assert.equal(check.code, 2, explain(check));
    assert.match(check.stderr, /sources\[2\]/);
    assert.match(check.stderr, /private keys and \.env files.*allowUnencryptedSecrets: true/s);

    // A key with a broken checksum: exit 2 from backup itself, nothing on the disk target.
    const broken = `${recipient.slice(0, -1)}${recipient.endsWith('q') ? 'p' : 'q'}`;
    await sandbox.writeConfig({ ...config, encryption: { recipients: [broken] } });
    const backup = await cli('backup');
    assert.equal(backup.code, 2, explain(backup));
    assert.match(backup.stderr, /encryption\.recipients\[0\]/);
    const checked = await cli('config', 'check');
    assert.equal(checked.code, 2, explain(checked));
    assert.match(checked.stderr, /encryption\.recipients\[0\]: /);
    await sandbox.writeConfig({ ...config, encryption: { recipientsFile: join(sandbox.dir, 'missing.txt') } });
    const missing = await cli('backup');
    assert.equal(missing.code, 2, explain(missing));
    assert.match(missing.stderr, /recipientsFile .*missing\.txt cannot be read/);
    assert.deepEqual(await readdir(sandbox.targetDir), []);
    await sandbox.writeConfig(config);
  });

  it('backs up with the public key only, and no target holds a plaintext byte', async () => {
    const result = await cli('backup', '--json');
    assert.equal(result.code, 0, explain(result));
    const report = jsonOf<BackupReport>(result);
    assert.equal(report.status, 'success');
    setId = report.setId;
    const manifests = (await filesUnder(sandbox.targetDir)).filter((f) => f.endsWith('/manifest.json'));
    assert.equal(manifests.length, 1);
    setDir = join(sandbox.targetDir, manifests[0] as string, '..');
    const manifest = JSON.parse(await readFile(join(setDir, 'manifest.json'), 'utf8')) as ManifestJson;
    assert.deepEqual(manifest.encryption?.recipients, [recipient]);
    for (const object of manifest.objects) {
      if (object.name === 'RUNBOOK.md') continue;
      assert.match(object.name, /\.age$/, `${object.name} is encrypted`);
    }
    assert.ok(manifest.objects.some((o) => o.name === 'config.redacted.yml.age'));
    assert.equal(manifest.components.find((c) => c.name === 'system.secrets')?.secret, true);

    // Every byte every target holds, in files on the disk and the NAS and objects in the bucket.
    const held = new Map<string, Buffer>();
    for (const file of await filesUnder(sandbox.targetDir))
      held.set(`disk:${file}`, await readFile(join(sandbox.targetDir, file)));
    for (const file of await filesUnder(remote.nasRoot(nas)))
      held.set(`nas:${file}`, await readFile(join(remote.nasRoot(nas), file)));
    for (const key of await remote.s3Keys()) {
      const object = await remote.client.send(new GetObjectCommand({ Bucket: remote.bucket, Key: key }));
      held.set(
        `s3:${key}`,
        Buffer.from(await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray()),
      );
    }
    const objectsPerTarget = manifest.objects.length + 1; // + manifest.json
    assert.ok(held.size >= 3 * objectsPerTarget, `all three targets hold the set (${held.size} files)`);
    for (const [where, bytes] of held) {
      assert.equal(bytes.includes(MARKER), false, `${where} holds the plaintext marker`);
      if (where.endsWith('.age')) {
        assert.equal(bytes.subarray(0, 22).toString('latin1'), 'age-encryption.org/v1\n', `${where} is an age file`);
      }
    }
    // The stored bytes are what the manifest proves, the same on every target (encrypted once).
    // (RUNBOOK.md names its own target, so it differs; it holds no data.)
    for (const object of manifest.objects.filter((o) => o.name !== 'RUNBOOK.md')) {
      const copies = [...held].filter(([where]) => where.endsWith(`/${object.name}`));
      assert.equal(copies.length, 3, `${object.name} is on the three targets`);
      for (const [where, bytes] of copies) assert.equal(sha256(bytes), object.sha256, where);
    }
  });

  it('restores with Debian age, zstd and tar alone', async () => {
    const out = join(sandbox.dir, 'plain-restore');
    await mkdir(out);
    execFileSync('sh', [
      '-c',
      'age -d -i "$1" < "$2" | zstd -q -d -c | tar --numeric-owner -xpf - -C "$3"',
      'sh',
      keyFile,
      join(setDir, 'app.tar.zst.age'),
      out,
    ]);
    assert.deepEqual(await compareTrees(app, join(out, app.slice(1))), []);
    const restoredDb = join(sandbox.dir, 'plain.sqlite');
    await writeFile(restoredDb, decryptAndDecompress(join(setDir, 'cache.sqlite.zst.age'), keyFile));
    assert.equal(
      execFileSync('sqlite3', [restoredDb, 'SELECT body FROM notes ORDER BY id LIMIT 1'], { encoding: 'utf8' }).trim(),
      MARKER,
    );
    const index = decryptAndDecompress(join(setDir, 'app.index.jsonl.zst.age'), keyFile).toString('utf8');
    assert.match(index, /"path":"[^"]*\/public\/index\.php"/);
    const redacted = execFileSync('age', ['-d', '-i', keyFile, join(setDir, 'config.redacted.yml.age')], {
      encoding: 'utf8',
    });
    assert.match(redacted, /^job: demo$/m);
  });

  it('verifies every copy without the private key', async () => {
    const result = await cli('verify', '--set', 'all', '--json');
    assert.equal(result.code, 0, explain(result));
  });

  it('refuses to restore without the key or with the wrong one, touching nothing', async () => {
    const out = join(sandbox.dir, 'no-key-restore');
    const withoutKey = await cli('restore', '--set', 'latest', '--to', out);
    assert.equal(withoutKey.code, 1, explain(withoutKey));
    assert.match(withoutKey.stderr, /is encrypted with age for age1/);
    assert.match(withoutKey.stderr, /encryption\.identityFile.*--identity FILE/s);
    assert.doesNotMatch(withoutKey.stderr, /at .*\.js:\d+/, 'no stack trace');
    const wrongKey = await cli('restore', '--set', 'latest', '--to', out, '--identity', strangerKey);
    assert.equal(wrongKey.code, 1, explain(wrongKey));
    assert.match(wrongKey.stderr, /wrong key: .*stranger\.key holds age1/);
    await assert.rejects(readdir(out), { code: 'ENOENT' }, 'the destination was never created');
    assert.doesNotMatch(wrongKey.stderr + withoutKey.stderr, /AGE-SECRET-KEY/);
  });

  it('restores from S3 with the key, equal to the source', async () => {
    const out = join(sandbox.dir, 'restored');
    const result = await cli('restore', '--set', setId, '--target', 'cloud', '--to', out, '--identity', keyFile);
    assert.equal(result.code, 0, explain(result));
    assert.deepEqual(await compareTrees(app, join(out, app.slice(1))), []);
    assert.equal(await readFile(join(out, 'etc/ssl/private/site.key'), 'utf8'), `${MARKER} private key\n`);
    const cache = join(out, 'cache.sqlite');
    assert.equal(execFileSync('sqlite3', [cache, 'SELECT COUNT(*) FROM notes'], { encoding: 'utf8' }).trim(), '2');
  });

  it('restores an object that the age program encrypted, and refuses a damaged one with nothing restored', async () => {
    // The disk copy of app.tar.zst.age is replaced by one made by Debian's age (decrypted, then
    // encrypted again), and the manifest made to prove it, as if another age implementation had written it.
    const object = join(setDir, 'app.tar.zst.age');
    const plain = execFileSync('age', ['-d', '-i', keyFile, object], { maxBuffer: 1 << 28 });
    const reencrypted = execFileSync('age', ['-r', recipient], { input: plain, maxBuffer: 1 << 28 });
    const rewrite = async (bytes: Buffer) => {
      await writeFile(object, bytes);
      const manifestPath = join(setDir, 'manifest.json');
      const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as ManifestJson;
      for (const entry of [...manifest.objects, ...manifest.components]) {
        if (
          (entry as { name: string }).name === 'app.tar.zst.age' ||
          ('object' in entry && entry.object === 'app.tar.zst.age')
        ) {
          entry.bytes = bytes.length;
          entry.sha256 = sha256(bytes);
        }
      }
      await writeFile(manifestPath, JSON.stringify(manifest, null, 2));
    };
    await rewrite(reencrypted);
    /** Restores component app from the disk copy into `into` (replacing what is there), with the key. */
    const restoreAppFromDisk = (into: string) =>
      cli(
        'restore',
        '--set',
        setId,
        '--target',
        'disk',
        '--component',
        'app',
        '--to',
        into,
        '--force',
        '--identity',
        keyFile,
      );
    const out = join(sandbox.dir, 'from-age');
    const restored = await restoreAppFromDisk(out);
    assert.equal(restored.code, 0, explain(restored));
    assert.deepEqual(await compareTrees(app, join(out, app.slice(1))), []);

    // One flipped byte in the payload, with a manifest that still proves the object: the
    // decryption fails, and the destination keeps exactly what it had.
    const damaged = Buffer.from(reencrypted);
    const at = damaged.length - 100;
    damaged[at] = (damaged[at] ?? 0) ^ 0x01;
    await rewrite(damaged);
    const kept = join(sandbox.dir, 'kept');
    await mkdir(kept);
    await writeFile(join(kept, 'keep.txt'), 'mine\n');
    const failed = await restoreAppFromDisk(kept);
    assert.equal(failed.code, 1, explain(failed));
    assert.match(failed.stderr, /app\.tar\.zst\.age|app/);
    assert.match(failed.stderr, /damaged|corrupt|authenticat/i);
    assert.deepEqual(await readdir(kept), ['keep.txt']);

    // Cut short at a chunk boundary (the age header and one whole 64 KiB chunk): refused as truncated.
    const headerEnd = reencrypted.indexOf('\n---') + 1;
    const headerLength = reencrypted.indexOf('\n', headerEnd) + 1 + 16;
    await rewrite(reencrypted.subarray(0, headerLength + 65536 + 16));
    const truncated = await restoreAppFromDisk(kept);
    assert.equal(truncated.code, 1, explain(truncated));
    assert.match(truncated.stderr, /cut short|truncated/i);
    assert.deepEqual(await readdir(kept), ['keep.txt']);
    await rewrite(reencrypted);
  });

  it('drills: a missing key is a failed drill; with the key every component is proven', async () => {
    const withoutKey = await cli('drill', '--json');
    assert.equal(withoutKey.code, 1, explain(withoutKey));
    const failed = jsonOf<{ status: string; problems: string[]; encrypted: boolean }>(withoutKey);
    assert.equal(failed.status, 'failure');
    assert.equal(failed.encrypted, true);
    assert.match(failed.problems.join('\n'), /^key: set .* is encrypted with age/m);

    // The key from the config this time, as a drill host would have it.
    await writeFile(
      sandbox.configPath,
      stringify({
        job: 'demo',
        stateDir: sandbox.stateDir,
        checks: { minFree: { bytes: 0, percent: '0%' } },
        ...config,
        encryption: { recipients: [recipient], identityFile: keyFile },
      }),
    );
    const drill = await cli('drill', '--json');
    assert.equal(drill.code, 0, explain(drill));
    const report = jsonOf<{
      status: string;
      encrypted: boolean;
      components: { name: string; checks: { ok: boolean }[] }[];
    }>(drill);
    assert.equal(report.status, 'success');
    assert.equal(report.encrypted, true);
    assert.deepEqual(report.components.map((c) => c.name).sort(), [
      'app',
      'cache',
      'system',
      'system.packages',
      'system.secrets',
    ]);
    for (const component of report.components)
      assert.ok(
        component.checks.every((c) => c.ok),
        component.name,
      );
  });
});
