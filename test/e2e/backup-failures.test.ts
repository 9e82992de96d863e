// Failure paths with real disks and real permissions: nothing is lost, nothing is called success.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { jsonOf, makeSandbox, runCli, type Sandbox } from '../helpers/cli.js';

interface Report {
  status: string;
  exitCode: number;
  setId: string;
  warnings: string[];
  failures: { step: string; message: string; target?: string }[];
}

async function committedSets(root: string): Promise<string[]> {
  if (!existsSync(root)) return [];
  return execFileSync('find', [root, '-name', 'manifest.json', '-printf', '%h\n'], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .filter(Boolean)
    .sort();
}

async function allFiles(root: string): Promise<string[]> {
  if (!existsSync(root)) return [];
  return execFileSync('find', [root, '-type', 'f', '-printf', '%P\n'], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .filter(Boolean)
    .sort();
}

describe('backup failure paths', () => {
  let sandbox: Sandbox;
  let source: string;
  const mounts: string[] = [];

  beforeEach(async () => {
    sandbox = await makeSandbox();
    source = join(sandbox.dir, 'app');
    await mkdir(source);
    await writeFile(join(source, 'index.php'), '<?php echo 1;\n');
  });
  afterEach(async () => {
    for (const mount of mounts.splice(0)) execFileSync('umount', ['-l', mount]);
    await sandbox.cleanup();
  });

  async function tmpfsTarget(size: string): Promise<string> {
    const dir = join(sandbox.dir, `tmpfs-${mounts.length}`);
    await mkdir(dir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
    mounts.push(dir);
    return dir;
  }

  it('fails with exit 1 when a source path does not exist, and writes no set', async () => {
    await sandbox.writeConfig({ sources: [{ name: 'app', type: 'files', paths: [join(sandbox.dir, 'nope')] }] });
    const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    assert.equal(result.code, 1);
    const report = jsonOf<Report>(result);
    assert.equal(report.status, 'failure');
    assert.match(
      report.failures.map((f) => f.message).join('\n'),
      new RegExp(`${join(sandbox.dir, 'nope')}.*does not exist`),
    );
    assert.deepEqual(await allFiles(sandbox.targetDir), []);
  });

  it('stops in preflight, writing nothing, when the free-space floor is not met', async () => {
    await sandbox.writeConfig({
      sources: [{ name: 'app', type: 'files', paths: [source] }],
      checks: { minFree: { bytes: '1PB', percent: '10%' } },
    });
    const result = await runCli(['--config', sandbox.configPath, 'backup']);
    assert.equal(result.code, 1);
    assert.match(result.stderr + result.stdout, /free.*Nothing was written/s);
    assert.deepEqual(await allFiles(sandbox.targetDir), []);
  });

  it('keeps the previous set when the target becomes read-only', async () => {
    const target = await tmpfsTarget('8m');
    await sandbox.writeConfig({
      sources: [{ name: 'app', type: 'files', paths: [source] }],
      targets: [{ name: 'disk', type: 'local', path: target }],
    });
    assert.equal((await runCli(['--config', sandbox.configPath, 'backup'])).code, 0);
    const before = await allFiles(target);
    execFileSync('mount', ['-o', 'remount,ro', target]);
    const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    assert.equal(result.code, 1, result.stdout);
    const report = jsonOf<Report>(result);
    assert.match(report.failures.map((f) => f.message).join('\n'), /read-only/);
    assert.deepEqual(await allFiles(target), before, 'the previous set is untouched');
  });

  it('fails cleanly when the target fills up mid-run: no manifest, previous set untouched, no temporaries', async () => {
    const target = await tmpfsTarget('3m');
    await sandbox.writeConfig({
      sources: [{ name: 'app', type: 'files', paths: [source] }],
      targets: [{ name: 'disk', type: 'local', path: target }],
    });
    assert.equal((await runCli(['--config', sandbox.configPath, 'backup'])).code, 0);
    const before = await allFiles(target);
    const [previousSet] = await committedSets(target);
    const previousManifest = await readFile(join(previousSet as string, 'manifest.json'));
    await writeFile(join(source, 'upload.bin'), randomBytes(5 * 1024 * 1024)); // incompressible, larger than the disk
    const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    assert.equal(result.code, 1, result.stdout);
    const report = jsonOf<Report>(result);
    assert.equal(report.status, 'failure');
    assert.match(report.failures.map((f) => f.message).join('\n'), /no space|ENOSPC|disk is full/i);
    assert.deepEqual(await allFiles(target), before, 'nothing of the failed run remains, the previous set is intact');
    assert.deepEqual(await readFile(join(previousSet as string, 'manifest.json')), previousManifest);
  });

  it('commits with exit 3 and names an unreadable file when run unprivileged', async () => {
    const secret = join(source, 'secret.key');
    await writeFile(secret, 'root only\n');
    await chmod(secret, 0o600);
    await chmod(source, 0o755);
    await mkdir(sandbox.stateDir);
    for (const dir of [sandbox.targetDir, sandbox.stateDir]) await chown(dir, 65534, 65534);
    await sandbox.writeConfig({ sources: [{ name: 'app', type: 'files', paths: [source] }] });
    await chmod(sandbox.configPath, 0o644);
    const result = await runCli(['--config', sandbox.configPath, 'backup', '--json'], { user: 'nobody' });
    assert.equal(result.code, 3, result.stderr + result.stdout);
    const report = jsonOf<Report>(result);
    assert.equal(report.status, 'warning');
    assert.match(report.warnings.join('\n'), /secret\.key/);
    assert.equal((await committedSets(sandbox.targetDir)).length, 1);
    const list = await runCli(['--config', sandbox.configPath, 'list'], { user: 'nobody' });
    assert.equal(list.code, 0, list.stderr);
    assert.ok((await readdir(sandbox.stateDir)).length > 0);
  });

  it('fails a command source that exits non-zero or prints nothing', async () => {
    await sandbox.writeConfig({
      sources: [{ name: 'dump', type: 'command', command: 'echo partial; echo "access denied" >&2; exit 2' }],
    });
    let result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    assert.equal(result.code, 1);
    assert.match(
      jsonOf<Report>(result)
        .failures.map((f) => f.message)
        .join('\n'),
      /access denied/,
    );
    await sandbox.writeConfig({ sources: [{ name: 'dump', type: 'command', command: 'true' }] });
    result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    assert.equal(result.code, 1);
    assert.deepEqual(await committedSets(sandbox.targetDir), []);
  });
});

describe('two hosts with the same job name', () => {
  it('the second refuses to write to a target another host owns, until told to take over', async () => {
    const sandbox = await makeSandbox();
    try {
      const source = join(sandbox.dir, 'app');
      await mkdir(source);
      await writeFile(join(source, 'a.txt'), 'a\n');
      const base = { sources: [{ name: 'app', type: 'files', paths: [source] }] };
      await sandbox.writeConfig(base);
      assert.equal((await runCli(['--config', sandbox.configPath, 'backup'])).code, 0);
      const before = await allFiles(sandbox.targetDir);

      // Another host: its own state directory, so its own host id.
      await sandbox.writeConfig({ ...base, stateDir: join(sandbox.dir, 'other-host-state') });
      const refused = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
      assert.equal(refused.code, 1, refused.stdout);
      const report = jsonOf<Report>(refused);
      assert.match(report.failures.map((f) => f.message).join('\n'), /belongs to host .*--take-over/s);
      assert.deepEqual(await allFiles(sandbox.targetDir), before, 'the other host wrote nothing');

      const taken = await runCli(['--config', sandbox.configPath, 'backup', '--take-over', '--json']);
      assert.equal(taken.code, 0, taken.stdout);
      const owner = JSON.parse(await readFile(join(sandbox.targetDir, 'demo', 'backproof.json'), 'utf8'));
      assert.ok(owner.takenOverAt, 'the owner file records the take-over');
      assert.equal((await committedSets(sandbox.targetDir)).length, 2, "the first host's set is still there");
    } finally {
      await sandbox.cleanup();
    }
  });
});
