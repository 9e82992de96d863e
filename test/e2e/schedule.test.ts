// `backproof schedule` and `backproof daemon` through the real CLI: units installed under --root
// pass systemd-analyze verify, cron.d files land where cron reads them, and the daemon runs real
// backups on a near schedule, logs the runs the job lock skipped, and stops cleanly on SIGTERM.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { Cron } from 'croner';
import { CLI, jsonOf, makeSandbox, runCli, type Sandbox, startCli } from '../helpers/cli.js';
import { filesUnder, waitFor } from '../helpers/files.js';

describe('backproof schedule', () => {
  let sandbox: Sandbox;

  beforeEach(async () => {
    sandbox = await makeSandbox();
    await mkdir(join(sandbox.dir, 'app'));
    await writeFile(join(sandbox.dir, 'app', 'a.txt'), 'a\n');
  });
  afterEach(async () => {
    await sandbox.cleanup();
  });

  async function configure(schedule: Record<string, unknown> = {}): Promise<void> {
    await sandbox.writeConfig({
      job: 'shop.eu',
      sources: [{ name: 'app', type: 'files', paths: [join(sandbox.dir, 'app')] }],
      schedule,
    });
  }

  it('--install --root DIR writes a service and a timer per command under DIR, which systemd-analyze accepts', async () => {
    await configure({ backup: '30 2 * * *' });
    const root = join(sandbox.dir, 'root');
    // A relative --config: the units must still name it absolutely.
    const result = await runCli(['--config', 'backproof.yml', 'schedule', '--install', '--root', root], {
      cwd: sandbox.dir,
    });
    assert.equal(result.code, 0, result.stderr);
    const dir = join(root, 'etc', 'systemd', 'system');
    const names = (await readdir(dir)).sort();
    assert.deepEqual(names, [
      'backproof-shop.eu-backup.service',
      'backproof-shop.eu-backup.timer',
      'backproof-shop.eu-drill.service',
      'backproof-shop.eu-drill.timer',
      'backproof-shop.eu-verify.service',
      'backproof-shop.eu-verify.timer',
    ]);
    for (const name of names) assert.equal((await stat(join(dir, name))).mode & 0o777, 0o644, name);
    const verify = spawnSync('systemd-analyze', ['verify', ...names.map((n) => join(dir, n))], { encoding: 'utf8' });
    assert.equal(verify.status, 0, `${verify.stdout}${verify.stderr}`);
    const service = await readFile(join(dir, 'backproof-shop.eu-backup.service'), 'utf8');
    assert.match(
      service,
      new RegExp(`^ExecStart=${process.execPath} ${realpathSync(CLI)} --config ${sandbox.configPath} backup$`, 'm'),
    );
    assert.match(
      await readFile(join(dir, 'backproof-shop.eu-backup.timer'), 'utf8'),
      /^OnCalendar=\*-\*-\* 02:30:00$/m,
    );
    // No systemctl was run: the output says what to run.
    assert.match(
      result.stdout,
      /now run:\n {2}systemctl daemon-reload\n {2}systemctl enable --now backproof-shop\.eu-backup\.timer /,
    );

    // Turning the drill off and installing again removes its units and says to disable its timer.
    await configure({ backup: '30 2 * * *', drill: false });
    const again = jsonOf<{ removed: string[]; commands: string[] }>(
      await runCli(['--config', sandbox.configPath, 'schedule', '--install', '--root', root, '--json']),
    );
    assert.deepEqual(again.removed.sort(), [
      join(dir, 'backproof-shop.eu-drill.service'),
      join(dir, 'backproof-shop.eu-drill.timer'),
    ]);
    assert.equal(again.commands[0], 'systemctl disable --now backproof-shop.eu-drill.timer');
    assert.equal((await readdir(dir)).length, 4);
  });

  it('prints the units without --install, and --json gives one document', async () => {
    await configure();
    const text = await runCli(['--config', sandbox.configPath, 'schedule']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^# ==> \/etc\/systemd\/system\/backproof-shop\.eu-backup\.service <==$/m);
    assert.match(text.stdout, /^OnCalendar=Sun \*-\*-\* 07:00:00$/m); // the verify default
    const doc = jsonOf<{ installed: boolean; kind: string; files: { name: string; text: string }[] }>(
      await runCli(['--config', sandbox.configPath, 'schedule', '--json']),
    );
    assert.equal(doc.installed, false);
    assert.equal(doc.kind, 'systemd');
    assert.equal(doc.files.length, 6);
  });

  it('--cron --install --root DIR writes DIR/etc/cron.d/<job> with lines croner parses', async () => {
    await configure({ verify: '0 7 * * 0', drill: false, randomizedDelay: '10m' });
    const root = join(sandbox.dir, 'root');
    const result = await runCli(['--config', sandbox.configPath, 'schedule', '--cron', '--install', '--root', root]);
    assert.equal(result.code, 0, result.stderr);
    const path = join(root, 'etc', 'cron.d', 'backproof-shop_eu');
    assert.equal((await stat(path)).mode & 0o777, 0o644);
    const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => /^[\d*]/.test(l));
    assert.equal(lines.length, 2);
    for (const line of lines) {
      const fields = line.split(' ').slice(0, 5).join(' ');
      assert.ok(new Cron(fields, { paused: true }).nextRun(), fields);
      assert.match(line, / root sleep \$\(shuf -i 0-600 -n 1\) && /);
      assert.ok(line.includes(`--config ${sandbox.configPath}`));
    }
    assert.match(lines[0] ?? '', /^0 0 \* \* \* .* backup 2>&1 \| logger -t backproof-shop\.eu$/);
    assert.match(lines[1] ?? '', /^0 7 \* \* 0 .* verify --set all 2>&1 /);
  });

  it('refuses what it cannot do, with exit 2', async () => {
    await configure({ backup: '*/10 * * * * *' });
    const seconds = await runCli(['--config', sandbox.configPath, 'schedule', '--cron']);
    assert.equal(seconds.code, 2);
    assert.match(seconds.stderr, /seconds other than 0, which cron cannot express/);
    const both = await runCli(['--config', sandbox.configPath, 'schedule', '--cron', '--systemd']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /choose one of --systemd and --cron/);
    const root = await runCli(['--config', sandbox.configPath, 'schedule', '--root', sandbox.dir]);
    assert.equal(root.code, 2);
    assert.match(root.stderr, /--root DIR goes with --install/);
    // Installing where it may not write: exit 1, saying where and what to do.
    await configure();
    const readOnly = join(sandbox.dir, 'read-only');
    await mkdir(readOnly, { mode: 0o555 });
    const denied = await runCli(['--config', sandbox.configPath, 'schedule', '--install', '--root', readOnly], {
      user: 'nobody',
    });
    assert.equal(denied.code, 1, denied.stderr);
    assert.match(
      denied.stderr,
      /cannot write to .*read-only\/etc\/systemd\/system: EACCES.*; run as root, or pass --root DIR/,
    );
    await configure({ backup: false, verify: false, drill: false });
    const nothing = await runCli(['--config', sandbox.configPath, 'daemon']);
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /nothing to run/);
  });
});

describe('backproof daemon', () => {
  let sandbox: Sandbox;
  beforeEach(async () => {
    sandbox = await makeSandbox();
    await mkdir(join(sandbox.dir, 'app'));
    await writeFile(join(sandbox.dir, 'app', 'a.txt'), 'a\n');
  });
  afterEach(async () => {
    await sandbox.cleanup();
  });

  it('runs backups every second as child processes, skips overlaps at the lock, and stops on SIGTERM', async () => {
    await sandbox.writeConfig({
      sources: [{ name: 'app', type: 'files', paths: [join(sandbox.dir, 'app')] }],
      // Each backup takes at least 2 s, so triggers every second find the lock taken.
      hooks: { before: ['sleep 2'] },
      schedule: { backup: '* * * * * *', verify: false, drill: false, randomizedDelay: '0s' },
    });
    const daemon = startCli(['--config', sandbox.configPath, 'daemon', '--json']);
    let log = '';
    daemon.child.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
    });
    try {
      await waitFor(
        'a backup to succeed and a trigger to be skipped',
        async () =>
          /backup: finished: success \(exit 0\)/.test(log) &&
          /backup: skipped: another run of job demo holds its lock/.test(log),
      );
    } finally {
      daemon.child.kill('SIGTERM');
    }
    const result = await daemon.done;
    assert.equal(result.code, 130, result.stderr);
    const doc = jsonOf<{ runs: { outcome: string; command: string }[] }>(result);
    const outcomes = new Set(doc.runs.map((r) => r.outcome));
    assert.ok(outcomes.has('success'), JSON.stringify(doc.runs));
    assert.ok(outcomes.has('locked'), JSON.stringify(doc.runs));
    for (const run of doc.runs) assert.ok(['success', 'locked', 'interrupted'].includes(run.outcome), run.outcome);
    assert.match(result.stderr, /daemon for job demo stopped after \d+ run\(s\)/);
    // Every child is gone, and every set on the target is complete (an interrupted run left none).
    for (const match of result.stderr.matchAll(/backup: started \(pid (\d+)\)/g)) {
      const pid = Number(match[1]);
      assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `child ${pid} still runs`);
    }
    const files = await filesUnder(sandbox.targetDir);
    const setDirs = new Set(
      files.filter((f) => /\/\d{8}T\d{6}Z-[a-z0-9]{6}\//.test(f)).map((f) => f.replace(/\/[^/]+$/, '')),
    );
    assert.ok(setDirs.size >= 1);
    for (const set of setDirs) assert.ok(files.includes(`${set}/manifest.json`), `${set} has no manifest`);
    assert.ok(readFileSync(join(sandbox.stateDir, 'state.db')).length > 0);
  });
});
