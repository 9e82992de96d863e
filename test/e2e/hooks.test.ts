// Hooks and the metrics textfile through the real CLI: a failing before hook stops the run with
// nothing written (onError and after still run), after hooks see the outcome, a hung hook is killed
// at its timeout, hook output reaches the report and the state database, and node_exporter's
// textfile is rewritten after every run.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { openStateDb } from '../../src/state/store.js';
import { jsonOf, makeSandbox, runCli, type Sandbox, startCli } from '../helpers/cli.js';
import { filesUnder, waitFor } from '../helpers/files.js';
import { parsePrometheusText, sampleOf } from '../helpers/prometheus.js';

interface HookResult {
  phase: string;
  command: string;
  ok: boolean;
  exitCode: number | null;
  timedOut: boolean;
  stdoutTail: string;
  stderrTail: string;
}
interface Report {
  status: string;
  exitCode: number;
  runId: number;
  setId: string;
  warnings: string[];
  failures: { step: string; message: string }[];
  steps: { name: string; status: string; message: string }[];
  hooks: HookResult[];
}

describe('hooks and the metrics textfile', () => {
  let sandbox: Sandbox;
  let marks: string;
  let textfile: string;

  beforeEach(async () => {
    sandbox = await makeSandbox();
    await mkdir(join(sandbox.dir, 'app'));
    await writeFile(join(sandbox.dir, 'app', 'index.php'), '<?php echo 1;\n');
    marks = join(sandbox.dir, 'marks');
    await mkdir(join(sandbox.dir, 'textfile_collector'));
    textfile = join(sandbox.dir, 'textfile_collector', 'backproof.prom');
  });
  afterEach(async () => {
    await sandbox.cleanup();
  });

  const record = (name: string) =>
    `echo "${name} status=$BACKPROOF_STATUS exit=$BACKPROOF_EXIT_CODE set=$BACKPROOF_SET_ID" >> '${marks}'`;

  async function configure(hooks: Record<string, unknown>): Promise<void> {
    await sandbox.writeConfig({
      sources: [{ name: 'app', type: 'files', paths: [join(sandbox.dir, 'app')] }],
      hooks,
      metrics: { textfile },
    });
  }

  async function backup(): Promise<Report> {
    return jsonOf<Report>(await runCli(['--config', sandbox.configPath, 'backup', '--json']));
  }

  it('a failing before hook fails the run with nothing written; onError and after hooks still run', async () => {
    await configure({
      before: [{ command: 'echo entering maintenance; echo "cannot reach php-fpm" >&2; exit 3', timeout: '30s' }],
      onError: [record('onError')],
      after: [record('after')],
    });
    const report = await backup();
    assert.equal(report.exitCode, 1);
    assert.equal(report.status, 'failure');
    assert.equal(report.failures[0]?.step, 'hook:before');
    assert.match(report.failures[0]?.message ?? '', /exited with code 3: cannot reach php-fpm; nothing was written/);
    assert.deepEqual(await filesUnder(sandbox.targetDir), [], 'not even the owner file was written');
    assert.equal(
      await readFile(marks, 'utf8'),
      'onError status=failure exit=1 set=\nafter status=failure exit=1 set=\n',
    );
    assert.deepEqual(
      report.hooks.map((h) => [h.phase, h.ok, h.exitCode]),
      [
        ['before', false, 3],
        ['onError', true, 0],
        ['after', true, 0],
      ],
    );
    assert.equal(report.hooks[0]?.stdoutTail, 'entering maintenance\n');
    assert.equal(report.hooks[0]?.stderrTail, 'cannot reach php-fpm\n');
  });

  it('after hooks see the status and set id of a good run; their output is in the report and the state database', async () => {
    await configure({
      before: [`echo "before job=$BACKPROOF_JOB" >> '${marks}'; echo maintenance on`],
      onError: [record('onError')],
      after: [`${record('after')}; echo maintenance off`],
    });
    const report = await backup();
    assert.equal(report.exitCode, 0, JSON.stringify(report.failures));
    assert.equal(report.status, 'success');
    assert.equal(await readFile(marks, 'utf8'), `before job=demo\nafter status=success exit=0 set=${report.setId}\n`);
    assert.deepEqual(
      report.hooks.map((h) => [h.phase, h.stdoutTail]),
      [
        ['before', 'maintenance on\n'],
        ['after', 'maintenance off\n'],
      ],
    );
    assert.deepEqual(
      report.steps.filter((s) => s.name.startsWith('hook:')).map((s) => [s.name, s.status]),
      [
        ['hook:before', 'ok'],
        ['hook:after', 'ok'],
      ],
    );
    const state = openStateDb(sandbox.stateDir);
    try {
      const run = state.getRun(report.runId);
      const stored = run?.report as Report;
      assert.deepEqual(
        stored.hooks.map((h) => h.stdoutTail),
        ['maintenance on\n', 'maintenance off\n'],
      );
      assert.deepEqual(
        run?.steps.filter((s) => s.name.startsWith('hook:')).map((s) => (s.evidence as { exitCode: number }).exitCode),
        [0, 0],
      );
    } finally {
      state.close();
    }
  });

  it('a failing after hook turns a success into a warning (exit 3); the set stays committed', async () => {
    await configure({ after: ['echo "maintenance off failed" >&2; exit 1'] });
    const report = await backup();
    assert.equal(report.exitCode, 3);
    assert.equal(report.status, 'warning');
    assert.ok(
      report.warnings.some((w) => /after hook .* exited with code 1: maintenance off failed/.test(w)),
      report.warnings.join('\n'),
    );
    assert.ok((await filesUnder(sandbox.targetDir)).some((f) => f.endsWith(`${report.setId}/manifest.json`)));
  });

  it('kills a hung before hook at its timeout and fails the run', async () => {
    await configure({ before: [{ command: 'sleep 600', timeout: '1s' }], after: [record('after')] });
    const report = await backup();
    assert.equal(report.exitCode, 1);
    assert.equal(report.hooks[0]?.timedOut, true);
    assert.match(report.failures[0]?.message ?? '', /before hook `sleep 600` was killed after its timeout/);
    assert.equal(await readFile(marks, 'utf8'), 'after status=failure exit=1 set=\n');
  });

  it('SIGTERM during a before hook stops it; the run exits 130 and the onError and after hooks still run', async () => {
    const started = join(sandbox.dir, 'hook-started');
    await configure({
      before: [{ command: `touch '${started}'; sleep 600`, timeout: '10m' }],
      onError: [record('onError')],
      after: [record('after')],
    });
    const run = startCli(['--config', sandbox.configPath, 'backup', '--json']);
    await waitFor('the before hook to start', async () => existsSync(started));
    run.child.kill('SIGTERM');
    const result = await run.done;
    assert.equal(result.code, 130, result.stderr);
    assert.equal(
      await readFile(marks, 'utf8'),
      'onError status=failure exit=130 set=\nafter status=failure exit=130 set=\n',
    );
    assert.deepEqual(await filesUnder(sandbox.targetDir), []);
  });

  it('rewrites the textfile after every run, strictly valid Prometheus text, mode 0644', async () => {
    await configure({});
    const good = await backup();
    assert.equal(good.exitCode, 0);
    let families = parsePrometheusText(await readFile(textfile, 'utf8'));
    assert.equal((await stat(textfile)).mode & 0o777, 0o644);
    assert.equal(sampleOf(families, 'backproof_last_run_status', { job: 'demo', status: 'success' }), '1');
    assert.equal(sampleOf(families, 'backproof_component_files', { target: 'disk', component: 'app' }), '2');
    const successAt = sampleOf(families, 'backproof_last_success_timestamp_seconds');

    // A failed run updates it too: the status flips, the last success stays.
    await configure({ before: ['exit 1'] });
    const bad = await backup();
    assert.equal(bad.exitCode, 1);
    families = parsePrometheusText(await readFile(textfile, 'utf8'));
    assert.equal(sampleOf(families, 'backproof_last_run_status', { status: 'failure' }), '1');
    assert.equal(sampleOf(families, 'backproof_last_run_status', { status: 'success' }), '0');
    assert.equal(sampleOf(families, 'backproof_last_success_timestamp_seconds'), successAt);
    assert.deepEqual(
      (await filesUnder(join(sandbox.dir, 'textfile_collector'))).filter((f) => f !== 'backproof.prom'),
      [],
      'no temporary left behind',
    );
  });

  it('a textfile that cannot be written is a warning step, and the backup itself still counts', async () => {
    await sandbox.writeConfig({
      sources: [{ name: 'app', type: 'files', paths: [join(sandbox.dir, 'app')] }],
      metrics: { textfile: join(sandbox.dir, 'missing-dir', 'backproof.prom') },
    });
    const report = await backup();
    assert.equal(report.exitCode, 0);
    const step = report.steps.find((s) => s.name === 'metrics');
    assert.equal(step?.status, 'warning');
    assert.match(step?.message ?? '', /could not write the metrics textfile .*missing-dir.*; create /);
  });
});
