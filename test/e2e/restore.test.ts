// `backproof restore` through the real CLI: a set made by a real backup comes back from a local disk,
// a NAS over SFTP and S3 equal to the original (metadata included); one path restores alone; and
// every failure (damaged object, missing set, non-empty destination, unknown component or path)
// ends with a clear message, a non-zero exit, and the destination exactly as it was.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, link, mkdir, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tar from 'tar-stream';
import { jsonOf, makeSandbox, runCli, type Sandbox } from '../helpers/cli.js';
import { compareTrees } from '../helpers/compare.js';
import { filesUnder } from '../helpers/files.js';
import { type RemoteTargets, remoteTargets } from '../helpers/remote-targets.js';

interface RestoreReport {
  setId: string;
  destination: string;
  components: { name: string; kind: string; target: string; restoredTo: string; entries?: number }[];
  warnings: string[];
}

async function buildTree(root: string): Promise<void> {
  await mkdir(join(root, 'app/src/deep'), { recursive: true });
  await mkdir(join(root, 'app/empty-dir'));
  await writeFile(join(root, 'app/src/index.php'), '<?php echo "hello";\n'.repeat(2000));
  await writeFile(join(root, 'app/src/deep/blob.bin'), randomBytes(400_000));
  await writeFile(join(root, 'app/empty-file'), '');
  await writeFile(join(root, 'app/ünïcødé name.txt'), 'unicode\n');
  await writeFile(join(root, 'app/new\nline'), 'newline in the name\n');
  await writeFile(join(root, 'app/.env'), 'APP_KEY=base64:abc\n');
  await chmod(join(root, 'app/.env'), 0o600);
  await writeFile(join(root, 'app/owned'), 'owned by 1234:5678\n');
  await chown(join(root, 'app/owned'), 1234, 5678);
  await writeFile(join(root, 'app/hard-a'), 'one inode\n');
  await link(join(root, 'app/hard-a'), join(root, 'app/hard-b'));
  await symlink('src/index.php', join(root, 'app/link'));
  execFileSync('mkfifo', [join(root, 'app/fifo')]);
  const old = new Date('2021-03-04T05:06:07.123Z');
  await utimes(join(root, 'app/src/index.php'), old, old);
  await utimes(join(root, 'app/src'), old, old);
}

describe('restore through the CLI', () => {
  let sandbox: Sandbox;
  let source: string;
  let setId: string;
  let remote: RemoteTargets;

  const restore = (...args: string[]) => runCli(['--config', sandbox.configPath, 'restore', ...args]);

  before(async () => {
    sandbox = await makeSandbox();
    source = join(sandbox.dir, 'srv');
    await buildTree(source);
    remote = await remoteTargets(sandbox.dir, 'rs');
    await sandbox.writeConfig({
      sources: [
        { name: 'app', type: 'files', paths: [join(source, 'app')] },
        { name: 'notes', type: 'command', command: 'printf "line one\\nline two\\n"', extension: 'txt' },
      ],
      targets: [
        { name: 'disk', type: 'local', path: sandbox.targetDir },
        remote.sftpTarget('nas'),
        remote.s3Target('cloud'),
      ],
    });
    const backup = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    assert.equal(backup.code, 0, backup.stderr + backup.stdout);
    setId = jsonOf<{ setId: string }>(backup).setId;
  });

  after(async () => {
    await remote?.cleanup();
    await sandbox.cleanup();
  });

  for (const target of ['disk', 'nas', 'cloud']) {
    it(`restores the whole set from ${target}, equal to the original with its metadata`, async () => {
      const to = join(sandbox.dir, `to-${target}`);
      const result = await restore('--set', 'latest', '--target', target, '--to', to, '--json');
      assert.equal(result.code, 0, result.stderr);
      const report = jsonOf<RestoreReport>(result);
      assert.equal(report.setId, setId);
      assert.deepEqual(
        report.components.map((c) => [c.name, c.target]),
        [
          ['app', target],
          ['notes', target],
        ],
      );
      assert.deepEqual(await compareTrees(join(source, 'app'), join(to, source.slice(1), 'app')), []);
      assert.equal(await readFile(join(to, 'notes.txt'), 'utf8'), 'line one\nline two\n');
      // Nothing of the staging is left behind.
      assert.deepEqual((await readdir(to)).sort(), ['notes.txt', source.split('/')[1]].sort());
    });
  }

  it('restores one path alone, found through the index', async () => {
    const to = join(sandbox.dir, 'one-path');
    const result = await restore('--set', setId, '--path', join(source, 'app/src'), '--to', to);
    assert.equal(result.code, 0, result.stderr);
    const restored = await filesUnder(to);
    assert.ok(restored.length > 0);
    assert.ok(
      restored.every((f) => f.startsWith(join(source.slice(1), 'app/src'))),
      `only app/src was restored: ${restored.join(', ')}`,
    );
    assert.deepEqual(await compareTrees(join(source, 'app/src'), join(to, source.slice(1), 'app/src')), []);
  });

  it('works on a new server that has only the config (no state database)', async () => {
    const moved = `${sandbox.stateDir}.away`;
    execFileSync('mv', [sandbox.stateDir, moved]);
    try {
      const to = join(sandbox.dir, 'new-server');
      const result = await restore('--set', 'latest', '--component', 'notes', '--to', to);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(await readFile(join(to, 'notes.txt'), 'utf8'), 'line one\nline two\n');
    } finally {
      await rm(sandbox.stateDir, { recursive: true, force: true });
      execFileSync('mv', [moved, sandbox.stateDir]);
    }
  });

  it('refuses a non-empty destination without --force and leaves it as it was; --force merges', async () => {
    const to = join(sandbox.dir, 'busy');
    await mkdir(to);
    await writeFile(join(to, 'keep.txt'), 'mine\n');
    const refused = await restore('--set', 'latest', '--component', 'notes', '--to', to);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /not empty/);
    assert.match(refused.stderr, /--force/);
    assert.deepEqual(await readdir(to), ['keep.txt']);
    const forced = await restore('--set', 'latest', '--component', 'notes', '--to', to, '--force');
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual((await readdir(to)).sort(), ['keep.txt', 'notes.txt']);
    assert.equal(await readFile(join(to, 'keep.txt'), 'utf8'), 'mine\n');
  });

  it('a damaged object on one target fails that restore and leaves nothing; another target still restores', async () => {
    const setDir = execFileSync('find', [sandbox.targetDir, '-type', 'd', '-name', setId], { encoding: 'utf8' }).trim();
    const object = join(setDir, 'app.tar.zst');
    const original = await readFile(object);
    const damaged = Buffer.from(original);
    damaged[Math.floor(damaged.length / 2)] = (damaged[Math.floor(damaged.length / 2)] ?? 0) ^ 0xff;
    await chmod(object, 0o644);
    await writeFile(object, damaged);
    try {
      const to = join(sandbox.dir, 'damaged');
      const failed = await restore('--set', setId, '--target', 'disk', '--to', to);
      assert.equal(failed.code, 1, failed.stderr);
      assert.match(failed.stderr, /app\.tar\.zst/);
      assert.match(failed.stderr, /SHA-256|sha256/i);
      assert.ok(!existsSync(to), 'the destination that did not exist still does not');
      assert.doesNotMatch(failed.stderr, /unexpected error/);

      // Without --target, every target holding the set is tried in turn.
      const fallback = await restore('--set', setId, '--to', to, '--json');
      assert.equal(fallback.code, 0, fallback.stderr);
      const report = jsonOf<RestoreReport>(fallback);
      assert.equal(report.components.find((c) => c.name === 'app')?.target, 'nas');
      assert.match(fallback.stderr, /disk/);
      assert.deepEqual(await compareTrees(join(source, 'app'), join(to, source.slice(1), 'app')), []);
    } finally {
      await writeFile(object, original);
    }
  });

  it('refuses hostile archives planted on a target (hashes updated): nothing is written outside the destination', async () => {
    const setDir = execFileSync('find', [sandbox.targetDir, '-type', 'd', '-name', setId], { encoding: 'utf8' }).trim();
    const manifestFile = join(setDir, 'manifest.json');
    const objectFile = join(setDir, 'app.tar.zst');
    const originalManifest = await readFile(manifestFile, 'utf8');
    const originalObject = await readFile(objectFile);
    const bait = join(sandbox.dir, 'outside', 'pwned');
    const cases: {
      name: string;
      entries: { header: Partial<tar.Header> & { name: string }; body?: string }[];
      flags: string[];
      refused: RegExp;
    }[] = [
      {
        name: 'parent escape',
        entries: [{ header: { name: '../outside/pwned', size: 5 }, body: 'pwned' }],
        flags: [],
        refused: /\.\.\/outside\/pwned/,
      },
      {
        name: 'absolute path',
        entries: [{ header: { name: bait, size: 5 }, body: 'pwned' }],
        flags: [],
        refused: /pwned/,
      },
      {
        name: 'a symlink to / and a file through it',
        entries: [
          { header: { name: 'escape', type: 'symlink', linkname: '/' } },
          { header: { name: `escape${bait}`, size: 5 }, body: 'pwned' },
        ],
        // Even with outside symlinks allowed, nothing is ever written through one.
        flags: ['--allow-outside-symlinks'],
        refused: /escape/,
      },
    ];
    try {
      for (const hostile of cases) {
        const stored = execFileSync('zstd', ['-q', '-c'], { input: await tarOf(hostile.entries) });
        const manifest = JSON.parse(originalManifest);
        const sha = createHash('sha256').update(stored).digest('hex');
        Object.assign(
          manifest.objects.find((o: { name: string }) => o.name === 'app.tar.zst'),
          {
            bytes: stored.length,
            sha256: sha,
          },
        );
        await chmod(objectFile, 0o644);
        await writeFile(objectFile, stored);
        await writeFile(manifestFile, JSON.stringify(manifest, null, 2));
        const to = join(sandbox.dir, 'hostile');
        const result = await restore(
          '--set',
          setId,
          '--target',
          'disk',
          '--component',
          'app',
          '--to',
          to,
          ...hostile.flags,
        );
        assert.equal(result.code, 1, `${hostile.name}: ${result.stderr}`);
        assert.match(result.stderr, /refusing archive entry/, hostile.name);
        assert.match(result.stderr, hostile.refused, hostile.name);
        assert.ok(!existsSync(bait), `${hostile.name}: nothing was written outside`);
        assert.ok(!existsSync(join(sandbox.dir, 'outside')), `${hostile.name}: not even a directory`);
        assert.ok(!existsSync(to), `${hostile.name}: the destination is as it was (absent)`);
      }
    } finally {
      await writeFile(objectFile, originalObject);
      await writeFile(manifestFile, originalManifest);
    }
  });

  it('names what is wrong: an unknown set, a malformed id, an unknown component, a path not in the set', async () => {
    const to = join(sandbox.dir, 'nothing');
    const missing = await restore('--set', '20200101T000000Z-aaaaaa', '--to', to);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not committed/);
    assert.match(missing.stderr, new RegExp(setId));
    const malformed = await restore('--set', 'yesterday', '--to', to);
    assert.equal(malformed.code, 2);
    assert.match(malformed.stderr, /not a set id/);
    const component = await restore('--set', setId, '--component', 'nope', '--to', to);
    assert.equal(component.code, 2);
    assert.match(component.stderr, /has no component "nope".*app, notes/s);
    const path = await restore('--set', setId, '--path', '/no/such/path', '--to', to);
    assert.equal(path.code, 2);
    assert.match(path.stderr, /no\/such\/path/);
    const both = await restore('--set', setId);
    assert.equal(both.code, 2);
    assert.ok(!existsSync(to), 'no failed restore created the destination');
  });
});

/** A tar archive of hand-made entries (tar-stream: an independent writer, not ours). */
async function tarOf(entries: { header: Partial<tar.Header> & { name: string }; body?: string }[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const entry of entries) pack.entry(entry.header, entry.body ?? '');
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
