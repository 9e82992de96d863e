// A backup of a tree with every kind of entry, restored with plain zstd and GNU tar (not backproof),
// equals the original byte for byte with its metadata; the manifest matches sha256sum of the objects.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, chown, link, mkdir, readdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jsonOf, makeSandbox, runCli, type Sandbox } from '../helpers/cli.js';
import { compareTrees } from '../helpers/compare.js';

async function buildTree(root: string): Promise<() => void> {
  await mkdir(join(root, 'app/src/deep/er'), { recursive: true });
  await mkdir(join(root, 'app/empty-dir'));
  await writeFile(join(root, 'app/src/index.php'), '<?php echo "hello";\n'.repeat(1000));
  await writeFile(join(root, 'app/empty-file'), '');
  await writeFile(join(root, 'app/with space and ünïcødé 日本.txt'), 'unicode name\n');
  await writeFile(join(root, 'app/new\nline'), 'a name with a newline\n');
  await writeFile(join(root, `app/${'long-name-'.repeat(15)}.txt`), 'long name\n');
  await writeFile(
    join(root, 'app/src/deep/er/binary.bin'),
    Buffer.from(Array.from({ length: 70000 }, (_, i) => (i * 7919) % 256)),
  );
  await writeFile(join(root, 'app/setuid-tool'), '#!/bin/sh\n');
  await chmod(join(root, 'app/setuid-tool'), 0o4755);
  await writeFile(join(root, 'app/owned'), 'owned by 1234:5678\n');
  await chown(join(root, 'app/owned'), 1234, 5678);
  await chmod(join(root, 'app/owned'), 0o640);
  await writeFile(join(root, 'app/hard-a'), 'one inode, two names\n');
  await link(join(root, 'app/hard-a'), join(root, 'app/hard-b'));
  await symlink('src/index.php', join(root, 'app/relative-link'));
  await symlink('/nonexistent/target', join(root, 'app/dangling-link'));
  execFileSync('mkfifo', [join(root, 'app/a-fifo')]);
  execFileSync('mknod', [join(root, 'app/null-device'), 'c', '1', '3']);
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(join(root, 'app/a-socket'), resolve));
  const old = new Date('2021-03-04T05:06:07.123Z');
  await utimes(join(root, 'app/src/index.php'), old, old);
  await utimes(join(root, 'app/owned'), old, old);
  return () => server.close();
}

describe('backup round trip through plain tools', () => {
  let sandbox: Sandbox;
  let closeSocket: () => void;
  let source: string;

  before(async () => {
    sandbox = await makeSandbox();
    source = join(sandbox.dir, 'srv');
    closeSocket = await buildTree(source);
    await sandbox.writeConfig({ sources: [{ name: 'app', type: 'files', paths: [join(source, 'app')] }] });
  });
  after(async () => {
    closeSocket?.();
    await sandbox.cleanup();
  });

  it('commits a verified set that tar and zstd restore exactly', async () => {
    const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    const report = jsonOf<{ status: string; setId: string; exitCode: number; components: { files: number }[] }>(result);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(report.status, 'success');

    const setDir = execFileSync('find', [sandbox.targetDir, '-name', 'manifest.json', '-printf', '%h\n'], {
      encoding: 'utf8',
    }).trim();
    assert.ok(setDir.endsWith(report.setId), `set directory ${setDir} is named after the set`);
    const manifest = JSON.parse(await readFile(join(setDir, 'manifest.json'), 'utf8'));
    assert.equal(manifest.format, 'backproof/1');
    assert.deepEqual((await readdir(setDir)).sort(), [
      'RUNBOOK.md',
      'app.index.jsonl.zst',
      'app.tar.zst',
      'config.redacted.yml',
      'manifest.json',
    ]);
    // The set explains itself: its runbook names every object with its hash; its config is the one used.
    const runbook = await readFile(join(setDir, 'RUNBOOK.md'), 'utf8');
    for (const object of manifest.objects.filter((o: { name: string }) => o.name !== 'RUNBOOK.md')) {
      assert.ok(runbook.includes(`${object.sha256}  ${object.name}`), `RUNBOOK.md lists ${object.name}`);
    }
    assert.match(await readFile(join(setDir, 'config.redacted.yml'), 'utf8'), /job: demo/);

    // Every object's size and SHA-256 in the manifest match the bytes on disk (sha256sum, not our code).
    for (const object of manifest.objects) {
      const [sum] = execFileSync('sha256sum', [join(setDir, object.name)], { encoding: 'utf8' }).split(' ');
      const size = Number(execFileSync('stat', ['-c', '%s', join(setDir, object.name)], { encoding: 'utf8' }).trim());
      assert.equal(sum, object.sha256, `${object.name} hash`);
      assert.equal(size, object.bytes, `${object.name} size`);
    }
    const restore = join(sandbox.dir, 'restore');
    await mkdir(restore);
    execFileSync('sh', [
      '-c',
      `zstd -q -d -c "$1" | tar --numeric-owner -xpf - -C "$2"`,
      'sh',
      join(setDir, 'app.tar.zst'),
      restore,
    ]);
    const restored = join(restore, source.slice(1), 'app');
    const problems = await compareTrees(join(source, 'app'), restored, { ignore: (p) => p === 'a-socket' });
    assert.deepEqual(problems, []);

    // The raw tar's hash is rawSha256; the index lists every entry with the hash of its content.
    const component = manifest.components[0];
    const rawSum = execFileSync('sh', ['-c', `zstd -q -d -c "$1" | sha256sum`, 'sh', join(setDir, 'app.tar.zst')], {
      encoding: 'utf8',
    }).split(' ')[0];
    assert.equal(rawSum, component.rawSha256);
    const index = execFileSync('zstd', ['-q', '-d', '-c', join(setDir, 'app.index.jsonl.zst')], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    assert.equal(index.length, component.files);
    const php = index.find((e: { path: string }) => e.path.endsWith('app/src/index.php'));
    const phpSum = execFileSync('sha256sum', [join(source, 'app/src/index.php')], { encoding: 'utf8' }).split(' ')[0];
    assert.equal(php.sha256, phpSum);
    assert.ok(
      index.some((e: { type: string }) => e.type === 'socket'),
      'the socket is listed in the index',
    );
    assert.ok(index.some((e: { type: string }) => e.type === 'fifo'));
    assert.ok(index.some((e: { type: string }) => e.type === 'hardlink'));
  });

  it('lists the set and reports a healthy status', async () => {
    const list = await runCli(['--config', sandbox.configPath, 'list', '--json']);
    assert.equal(list.code, 0, list.stderr);
    const listing = jsonOf<{ targets: { sets: { setId: string; valid: boolean }[] }[] }>(list);
    assert.equal(listing.targets[0]?.sets.length, 1);
    assert.equal(listing.targets[0]?.sets[0]?.valid, true);
    const status = await runCli(['--config', sandbox.configPath, 'status']);
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.match(status.stdout, /HEALTHY/);
  });

  it('chains the second set to the first', async () => {
    const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const list = jsonOf<{ targets: { sets: { setId: string; previous: string | null; manifestSha256: string }[] }[] }>(
      await runCli(['--config', sandbox.configPath, 'list', '--json']),
    );
    const [newest, oldest] = list.targets[0]?.sets ?? [];
    assert.ok(newest && oldest);
    assert.equal(newest.previous, oldest.setId);
  });
});

describe('backing up a tree that holds the state directory and the target', () => {
  it('leaves both out, so the lock holds and no backup contains backups', async () => {
    const sandbox = await makeSandbox();
    try {
      await writeFile(join(sandbox.dir, 'app.txt'), 'app\n');
      await sandbox.writeConfig({ sources: [{ name: 'all', type: 'files', paths: [sandbox.dir] }] });
      for (let run = 0; run < 2; run++) {
        const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
        assert.equal(result.code, 0, result.stderr + result.stdout);
      }
      const indexes = execFileSync('find', [sandbox.targetDir, '-name', 'all.index.jsonl.zst'], { encoding: 'utf8' })
        .trim()
        .split('\n');
      assert.equal(indexes.length, 2);
      for (const index of indexes) {
        const paths = execFileSync('zstd', ['-q', '-d', '-c', index], { encoding: 'utf8' })
          .trim()
          .split('\n')
          .map((line) => (JSON.parse(line) as { path: string }).path);
        assert.ok(paths.some((p) => p.endsWith('app.txt')));
        const leaked = paths.filter(
          (p) => p.includes(`${sandbox.stateDir.slice(1)}`) || p.includes(`${sandbox.targetDir.slice(1)}`),
        );
        assert.deepEqual(leaked, []);
      }
    } finally {
      await sandbox.cleanup();
    }
  });
});
