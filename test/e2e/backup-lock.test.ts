// The job lock, real signals and hung sources: two runs at once, kill -9, SIGTERM, stall timeout.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { jsonOf, makeSandbox, runCli, type Sandbox, startCli } from '../helpers/cli.js';
import { filesUnder, waitFor } from '../helpers/files.js';

describe('lock, signals and hung runs', () => {
  let sandbox: Sandbox;
  let delayFile: string;

  beforeEach(async () => {
    sandbox = await makeSandbox();
    delayFile = join(sandbox.dir, 'delay');
    await writeFile(delayFile, '0');
    // 2 MB of data, then a pause as long as the delay file says: a source we can hold mid-run.
    await sandbox.writeConfig({
      sources: [
        {
          name: 'slow',
          type: 'command',
          command: `head -c 2000000 /dev/urandom; sleep "$(cat '${delayFile}')"`,
          extension: 'bin',
        },
      ],
    });
  });
  afterEach(async () => {
    await sandbox.cleanup();
  });

  const writingStarted = async () =>
    (await filesUnder(sandbox.targetDir)).some((f) => f.includes('.tmp-') && f.includes('slow.bin'));

  it('lets exactly one of two runs started together proceed; the other exits 75 naming the holder', async () => {
    await writeFile(delayFile, '2');
    const a = startCli(['--config', sandbox.configPath, 'backup']);
    const b = startCli(['--config', sandbox.configPath, 'backup']);
    const results = await Promise.all([a.done, b.done]);
    const codes = results.map((r) => r.code).sort();
    assert.deepEqual(codes, [0, 75], results.map((r) => r.stderr).join('\n'));
    const locked = results.find((r) => r.code === 75);
    const winner = a.child.pid === undefined ? undefined : results[0]?.code === 0 ? a.child.pid : b.child.pid;
    assert.match(locked?.stderr ?? '', new RegExp(`locked by pid ${winner} on `));
  });

  it('recovers from a run killed with -9: the next run succeeds and removes the incomplete set', async () => {
    await writeFile(delayFile, '30');
    const killed = startCli(['--config', sandbox.configPath, 'backup']);
    await waitFor('the first run to write', writingStarted);
    killed.child.kill('SIGKILL');
    await killed.done;
    const leftovers = await filesUnder(sandbox.targetDir);
    assert.ok(
      leftovers.some((f) => f.includes('.tmp-')),
      'the killed run left a temporary object behind',
    );
    let listing = jsonOf<{ targets: { sets: unknown[] }[] }>(
      await runCli(['--config', sandbox.configPath, 'list', '--json']),
    );
    assert.equal(listing.targets[0]?.sets.length, 0, 'an incomplete set is never listed');

    await writeFile(delayFile, '0');
    const next = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    assert.equal(next.code, 0, next.stderr + next.stdout);
    const report = jsonOf<{ setId: string; steps: { name: string; message: string }[] }>(next);
    assert.ok(report.steps.some((s) => s.name === 'prepare-target' && /removed 1 incomplete set/.test(s.message)));
    assert.ok(
      report.steps.some((s) => s.name === 'abandoned-runs'),
      'the killed run is recorded as never finished',
    );
    const files = await filesUnder(sandbox.targetDir);
    assert.ok(
      files.every((f) => !f.includes('.tmp-')),
      `no temporaries left: ${files.join(', ')}`,
    );
    assert.ok(
      files.every((f) => f === 'demo/backproof.json' || f.includes(report.setId)),
      `only the new set remains: ${files.join(', ')}`,
    );
    listing = jsonOf(await runCli(['--config', sandbox.configPath, 'list', '--json']));
    assert.equal(listing.targets[0]?.sets.length, 1);
  });

  it('stops cleanly on SIGTERM: exit 130, nothing committed, no temporaries left', async () => {
    await writeFile(delayFile, '30');
    const run = startCli(['--config', sandbox.configPath, 'backup']);
    await waitFor('the run to write', writingStarted);
    run.child.kill('SIGTERM');
    const result = await run.done;
    assert.equal(result.code, 130, result.stderr);
    assert.match(result.stderr, /SIGTERM/);
    assert.deepEqual(await filesUnder(sandbox.targetDir), ['demo/backproof.json']);
    assert.ok(
      !existsSync(join(sandbox.stateDir, 'tmp', 'demo')) ||
        (await readdir(join(sandbox.stateDir, 'tmp', 'demo'))).length === 0,
    );
    const status = jsonOf<{ lastRun: { status: string; exitCode: number } }>(
      await runCli(['--config', sandbox.configPath, 'status', '--json']),
    );
    assert.equal(status.lastRun.status, 'failure');
    assert.equal(status.lastRun.exitCode, 130);
  });

  it('fails a run whose source stalls longer than checks.stallTimeout', async () => {
    await writeFile(delayFile, '30');
    await sandbox.writeConfig({
      sources: [
        {
          name: 'slow',
          type: 'command',
          command: `head -c 1000 /dev/urandom; sleep "$(cat '${delayFile}')"`,
          extension: 'bin',
        },
      ],
      checks: { minFree: { bytes: 0, percent: '0%' }, stallTimeout: '1s' },
    });
    const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    assert.equal(result.code, 1, result.stderr);
    const report = jsonOf<{ status: string; failures: { message: string }[] }>(result);
    assert.equal(report.status, 'failure');
    assert.match(report.failures.map((f) => f.message).join('\n'), /stallTimeout/);
    assert.deepEqual(await filesUnder(sandbox.targetDir), ['demo/backproof.json']);
  });
});
