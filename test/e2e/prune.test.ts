// Retention through the real CLI: each backup prunes the targets it committed to (never after a
// failed run, never an appendOnly target, a prune problem is a warning); `prune --dry-run` lists
// every set with its reason and changes nothing; `prune` takes the job lock and records a run.
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { acquireJobLock } from '../../src/lib/lock.js';
import { tombstoneKey } from '../../src/set/layout.js';
import { serializeTombstone, TOMBSTONE_FORMAT } from '../../src/set/tombstone.js';
import { openStateDb } from '../../src/state/store.js';
import { jsonOf, makeSandbox, runCli, type Sandbox } from '../helpers/cli.js';
import { filesUnder } from '../helpers/files.js';

interface RetentionReport {
  target: string;
  result: string;
  skipped?: string;
  deleted: string[];
  errors: string[];
  sets: { setId: string; decision: string; reasons: string[]; deleted?: boolean }[];
}
interface BackupReport {
  status: string;
  exitCode: number;
  setId: string;
  warnings: string[];
  targets: { name: string; result: string }[];
  steps: { name: string; status: string; target?: string; message: string }[];
  retention: RetentionReport[];
}
interface PruneReport {
  dryRun: boolean;
  status: string;
  exitCode: number;
  targets: RetentionReport[];
}

/** Committed set ids under a target directory, oldest first. */
async function committed(root: string): Promise<string[]> {
  return (await filesUnder(root))
    .filter((f) => f.endsWith('/manifest.json'))
    .map((f) => f.split('/').at(-2) as string)
    .sort();
}

describe('retention through the CLI', () => {
  let sandbox: Sandbox;
  let vaultDir: string;
  let spareDir: string;
  /** Set ids of the successful backups, oldest first. */
  const sets: string[] = [];
  const targetsWith = (diskRetention: Record<string, unknown>) => [
    { name: 'disk', type: 'local', path: sandbox.targetDir, retention: diskRetention },
    { name: 'vault', type: 'local', path: vaultDir, retention: { last: 1 }, appendOnly: true },
    { name: 'spare', type: 'local', path: spareDir },
  ];
  const cli = (...args: string[]) => runCli(['--config', sandbox.configPath, ...args]);
  const allFiles = async () => [
    await filesUnder(sandbox.targetDir),
    await filesUnder(vaultDir),
    await filesUnder(spareDir),
  ];

  before(async () => {
    sandbox = await makeSandbox('bp-prune-');
    vaultDir = join(sandbox.dir, 'vault');
    spareDir = join(sandbox.dir, 'spare');
    const source = join(sandbox.dir, 'app');
    await mkdir(source);
    await mkdir(vaultDir);
    await mkdir(spareDir);
    await writeFile(join(source, 'index.php'), '<?php echo "hello";\n'.repeat(100));
    await sandbox.writeConfig({
      sources: [{ name: 'app', type: 'files', paths: [source] }],
      targets: targetsWith({ last: 2 }),
    });
  });
  after(async () => {
    await sandbox.cleanup();
  });

  it('each backup prunes where it committed, by that target’s rules; appendOnly and rule-less targets keep all', async () => {
    for (let run = 1; run <= 3; run++) {
      const result = await cli('backup', '--json');
      const report = jsonOf<BackupReport>(result);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      sets.push(report.setId);
      const byTarget = new Map(report.retention.map((r) => [r.target, r]));
      assert.deepEqual([...byTarget.keys()], ['disk', 'vault', 'spare']);
      assert.equal(byTarget.get('disk')?.result, run < 3 ? 'unchanged' : 'pruned');
      assert.deepEqual(byTarget.get('disk')?.deleted, run < 3 ? [] : [sets[0]]);
      assert.equal(
        byTarget.get('vault')?.skipped,
        'appendOnly: never pruned from this host (its retention rules are applied elsewhere)',
      );
      assert.equal(byTarget.get('spare')?.skipped, 'no retention rules: nothing is pruned');
      const steps = report.steps.filter((s) => s.name === 'retention');
      assert.deepEqual(
        steps.map((s) => [s.target, s.status]),
        [
          ['disk', 'ok'],
          ['vault', 'skipped'],
        ],
      );
      if (run === 3) assert.match(steps[0]?.message ?? '', new RegExp(`deleted 1 with tombstones: ${sets[0]}`));
    }
    assert.deepEqual(await committed(sandbox.targetDir), [sets[1], sets[2]]);
    assert.ok((await filesUnder(sandbox.targetDir)).includes(tombstoneKey('demo', sets[0] as string)));
    assert.deepEqual(await committed(vaultDir), sets);
    assert.deepEqual(await committed(spareDir), sets);
    assert.deepEqual(await filesUnder(join(vaultDir, 'demo', 'tombstones')), []);
    const verified = await cli('verify', '--set', 'all');
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, new RegExp(`pruned, with tombstones: ${sets[0]}`));
  });

  it('a failed run prunes nothing, even where the rules would delete', async () => {
    await sandbox.writeConfig({
      sources: [
        { name: 'app', type: 'files', paths: [join(sandbox.dir, 'app')] },
        { name: 'broken', type: 'command', command: 'echo "no such thing" >&2; exit 3' },
      ],
      targets: targetsWith({ last: 1 }),
    });
    const before = await allFiles();
    const result = await cli('backup', '--json');
    const report = jsonOf<BackupReport>(result);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.equal(report.status, 'failure');
    const disk = report.retention.find((r) => r.target === 'disk');
    assert.equal(disk?.result, 'skipped');
    assert.equal(disk?.skipped, 'the run failed: retention never runs after a failed run');
    assert.deepEqual(
      report.steps.filter((s) => s.name === 'retention').map((s) => [s.target, s.status]),
      [
        ['disk', 'skipped'],
        ['vault', 'skipped'],
      ],
    );
    assert.deepEqual(await allFiles(), before);
  });

  it('a retention problem makes a committed backup a warning, never a failure', async () => {
    await sandbox.writeConfig({
      sources: [{ name: 'app', type: 'files', paths: [join(sandbox.dir, 'app')] }],
      targets: targetsWith({ last: 2 }),
    });
    // A tombstone for the set this run would delete, saying something else: prune must refuse.
    const doomed = sets[1] as string;
    const conflicting = join(sandbox.targetDir, tombstoneKey('demo', doomed));
    await writeFile(
      conflicting,
      serializeTombstone({
        format: TOMBSTONE_FORMAT,
        setId: doomed,
        manifestSha256: 'e'.repeat(64),
        previous: null,
        reason: 'not ours',
        at: '2025-01-01T00:00:00.000Z',
      }),
    );
    const result = await cli('backup', '--json');
    const report = jsonOf<BackupReport>(result);
    assert.equal(result.code, 3, result.stdout + result.stderr);
    assert.equal(report.status, 'warning');
    sets.push(report.setId);
    assert.equal(report.targets.find((t) => t.name === 'disk')?.result, 'committed');
    assert.equal(report.retention.find((r) => r.target === 'disk')?.result, 'failed');
    assert.ok(
      report.warnings.some((w) =>
        /^target disk: retention failed \(the committed set is unaffected\): .*already exists and says something else/.test(
          w,
        ),
      ),
      report.warnings.join('\n'),
    );
    assert.equal(report.steps.find((s) => s.name === 'retention' && s.target === 'disk')?.status, 'warning');
    assert.deepEqual(await committed(sandbox.targetDir), [sets[1], sets[2], sets[3]]);
    await rm(conflicting);
  });

  it('prune --dry-run lists every set with the rule that keeps it or why it goes, and changes nothing', async () => {
    const before = await allFiles();
    const result = await cli('prune', '--dry-run');
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const lines = result.stdout.split('\n');
    assert.ok(lines.some((l) => l.startsWith(`  WOULD DELETE ${sets[1]}`) && l.includes('last: beyond the 2 newest')));
    assert.ok(lines.some((l) => l.startsWith(`  keep    ${sets[3]}`) && l.endsWith('last 1 of 2')));
    assert.ok(lines.some((l) => l.startsWith(`  keep    ${sets[2]}`) && l.endsWith('last 2 of 2')));
    assert.ok(
      lines.includes('  skipped: appendOnly: never pruned from this host (its retention rules are applied elsewhere)'),
    );
    assert.match(result.stdout, /prune --dry-run: 1 set\(s\) would be deleted; nothing was changed/);
    assert.deepEqual(await allFiles(), before);
    const state = openStateDb(sandbox.stateDir);
    try {
      assert.ok(!state.listRuns('demo', 50).some((r) => r.command === 'prune'), 'a dry run records nothing');
    } finally {
      state.close();
    }
  });

  it('prune exits 75 while another run holds the lock; then deletes, records its run, and verify passes', async () => {
    const lock = acquireJobLock(sandbox.stateDir, 'demo', 'backup');
    try {
      const locked = await cli('prune');
      assert.equal(locked.code, 75, locked.stdout + locked.stderr);
      assert.match(locked.stderr, new RegExp(`locked by pid ${process.pid} on `));
    } finally {
      lock.release();
    }
    assert.deepEqual(await committed(sandbox.targetDir), [sets[1], sets[2], sets[3]]);

    const result = await cli('prune', '--json');
    const report = jsonOf<PruneReport>(result);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.equal(report.dryRun, false);
    assert.deepEqual(
      report.targets.map((t) => [t.target, t.result, t.deleted]),
      [
        ['disk', 'pruned', [sets[1]]],
        ['vault', 'skipped', []],
        ['spare', 'skipped', []],
      ],
    );
    assert.deepEqual(await committed(sandbox.targetDir), [sets[2], sets[3]]);
    const state = openStateDb(sandbox.stateDir);
    try {
      const run = state.listRuns('demo', 50).find((r) => r.command === 'prune');
      assert.equal(run?.status, 'success');
      assert.equal(run?.exitCode, 0);
      const detail = state.getRun(run?.id as number);
      assert.deepEqual(
        detail?.steps.map((s) => [s.name, s.target, s.status]),
        [
          ['prune-target', 'disk', 'ok'],
          ['prune-target', 'vault', 'skipped'],
          ['prune-target', 'spare', 'skipped'],
        ],
      );
    } finally {
      state.close();
    }
    const verified = await cli('verify', '--set', 'all', '--json');
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    const chain = jsonOf<{ targets: { target: string; chain: { explainedGaps: string[] } }[] }>(verified).targets.find(
      (t) => t.target === 'disk',
    )?.chain;
    assert.deepEqual(chain?.explainedGaps, [sets[0], sets[1]]);
  });
});
