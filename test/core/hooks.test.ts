// Hooks as real /bin/sh processes: environment, exit codes, output tails, timeouts that kill the
// whole process group, aborts, and which closing hooks run for which outcome.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeHook, type HookResult, runClosingHooks, runHook, runHookPhase } from '../../src/core/hooks.js';
import { StepLog } from '../../src/core/steps.js';
import { clearSecrets, registerSecret } from '../../src/lib/redact.js';
import { silentReporter } from '../../src/report/types.js';

const now = () => new Date();
const context = { job: 'demo', runId: 7 };

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\d+ \(.*\) [ZX]/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function waitUntilGone(pid: number): Promise<boolean> {
  for (let i = 0; i < 400; i++) {
    if (!isRunning(pid)) return true;
    await sleep(25);
  }
  return false;
}

describe('runHook', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-hooks-'));
  });
  after(async () => {
    clearSecrets();
    await rm(dir, { recursive: true, force: true });
  });

  it('gives the hook the BACKPROOF_* variables, a small environment and LC_ALL=C', async () => {
    process.env.BP_TEST_PARENT_SECRET = 'parent-only';
    try {
      const result = await runHook(
        { command: "env | grep -E '^(BACKPROOF_|LC_ALL=|BP_TEST_)' | sort", timeout: 10_000 },
        {
          phase: 'after',
          context: { ...context, status: 'warning', exitCode: 3, setId: '20251104T030000Z-abcdef' },
          now,
        },
      );
      assert.equal(result.ok, true, describeHook(result));
      assert.deepEqual(result.stdoutTail.trim().split('\n'), [
        'BACKPROOF_EXIT_CODE=3',
        'BACKPROOF_HOOK=after',
        'BACKPROOF_JOB=demo',
        'BACKPROOF_RUN_ID=7',
        'BACKPROOF_SET_ID=20251104T030000Z-abcdef',
        'BACKPROOF_STATUS=warning',
        'LC_ALL=C',
      ]);
    } finally {
      delete process.env.BP_TEST_PARENT_SECRET;
    }
  });

  it('leaves status, exit code and set id out when they are not known', async () => {
    const result = await runHook(
      { command: "env | grep '^BACKPROOF_' | sort", timeout: 10_000 },
      { phase: 'before', context, now },
    );
    assert.equal(result.stdoutTail, 'BACKPROOF_HOOK=before\nBACKPROOF_JOB=demo\nBACKPROOF_RUN_ID=7\n');
  });

  it('reports a failing hook with its exit code and the tails of both streams, secrets masked', async () => {
    registerSecret('hunter2-secret');
    const result = await runHook(
      { command: 'echo out-line; echo "password hunter2-secret refused" >&2; exit 4', timeout: 10_000 },
      { phase: 'before', context, now },
    );
    assert.equal(result.ok, false);
    assert.equal(result.exitCode, 4);
    assert.equal(result.signal, null);
    assert.equal(result.timedOut, false);
    assert.equal(result.stdoutTail, 'out-line\n');
    assert.equal(result.stderrTail, 'password *** refused\n');
    assert.match(describeHook(result), /^before hook `.*` exited with code 4: password \*\*\* refused$/);
    assert.ok(!JSON.stringify(result).includes('hunter2-secret'));
  });

  it('keeps only the last 4 KiB of a long output', async () => {
    const result = await runHook(
      { command: 'head -c 100000 /dev/zero | tr "\\0" a; echo; echo the-end', timeout: 10_000 },
      { phase: 'after', context, now },
    );
    assert.equal(result.ok, true);
    assert.ok(Buffer.byteLength(result.stdoutTail) <= 4096, `${Buffer.byteLength(result.stdoutTail)} bytes kept`);
    assert.ok(result.stdoutTail.endsWith('\nthe-end\n'));
  });

  it('kills a hook that runs past its timeout, and everything it started', async () => {
    const pidFile = join(dir, 'grandchild.pid');
    const result = await runHook(
      // The grandchild ignores nothing but would outlive a kill of the shell alone.
      { command: `sleep 300 & echo $! > '${pidFile}'; wait`, timeout: 500 },
      { phase: 'before', context, now, killGraceMs: 1000 },
    );
    assert.equal(result.ok, false);
    assert.equal(result.timedOut, true);
    assert.equal(result.exitCode, null);
    assert.equal(result.signal, 'SIGTERM');
    assert.match(describeHook(result), /was killed after its timeout/);
    const grandchild = Number(await readFile(pidFile, 'utf8'));
    assert.ok(grandchild > 0);
    assert.equal(await waitUntilGone(grandchild), true, `grandchild ${grandchild} still runs`);
  });

  it('SIGKILLs a hook that ignores SIGTERM once the grace time is over', async () => {
    const result = await runHook(
      { command: `trap '' TERM; while :; do sleep 0.05; done`, timeout: 300 },
      { phase: 'after', context, now, killGraceMs: 300 },
    );
    assert.equal(result.timedOut, true);
    assert.equal(result.signal, 'SIGKILL');
    assert.equal(result.ok, false);
  });

  it('stops a hook when the run is aborted, and says so', async () => {
    const controller = new AbortController();
    const pending = runHook(
      { command: 'sleep 300', timeout: 60_000 },
      { phase: 'before', context, now, signal: controller.signal },
    );
    await sleep(100);
    controller.abort(new Error('interrupted by SIGTERM'));
    const result = await pending;
    assert.equal(result.ok, false);
    assert.equal(result.timedOut, false);
    assert.equal(result.error, 'stopped: interrupted by SIGTERM');
  });

  it('a hook that exits 0 but was aborted before it started is not ok', async () => {
    const controller = new AbortController();
    controller.abort(new Error('interrupted by SIGINT'));
    const result = await runHook(
      { command: 'true', timeout: 10_000 },
      { phase: 'before', context, now, signal: controller.signal },
    );
    assert.equal(result.ok, false);
  });
});

describe('runHookPhase and runClosingHooks', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-hooks-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const steps = () => new StepLog(silentReporter, now);

  it('before hooks stop at the first failure and record a failed step per hook run', async () => {
    const log = steps();
    const marker = join(dir, 'third-ran');
    const results = await runHookPhase({
      phase: 'before',
      hooks: [
        { command: 'true', timeout: 10_000 },
        { command: 'exit 2', timeout: 10_000 },
        { command: `touch '${marker}'`, timeout: 10_000 },
      ],
      context,
      now,
      steps: log,
      stopAtFailure: true,
    });
    assert.deepEqual(
      results.map((r) => r.exitCode),
      [0, 2],
    );
    assert.deepEqual(
      log.steps.map((s) => [s.name, s.status]),
      [
        ['hook:before', 'ok'],
        ['hook:before', 'failed'],
      ],
    );
    assert.equal(log.steps[1]?.evidence?.exitCode, 2);
    await assert.rejects(readFile(marker), { code: 'ENOENT' });
  });

  it('a failed run runs onError, then every after hook, and a failing one becomes a warning', async () => {
    const order = join(dir, 'order');
    const log = steps();
    const { results, warnings } = await runClosingHooks({
      hooks: {
        onError: [{ command: `echo "onError $BACKPROOF_STATUS" >> '${order}'`, timeout: 10_000 }],
        after: [
          { command: `echo "after1 $BACKPROOF_STATUS" >> '${order}'; exit 1`, timeout: 10_000 },
          { command: `echo "after2 $BACKPROOF_EXIT_CODE" >> '${order}'`, timeout: 10_000 },
        ],
      },
      context: { ...context, status: 'failure', exitCode: 1 },
      steps: log,
      now,
    });
    assert.equal(await readFile(order, 'utf8'), 'onError failure\nafter1 failure\nafter2 1\n');
    assert.deepEqual(
      results.map((r: HookResult) => [r.phase, r.ok]),
      [
        ['onError', true],
        ['after', false],
        ['after', true],
      ],
    );
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /^after hook `.*` exited with code 1$/);
    assert.deepEqual(
      log.steps.map((s) => s.status),
      ['ok', 'warning', 'ok'],
    );
  });

  it('a successful run does not run onError', async () => {
    const marker = join(dir, 'on-error-ran');
    const { results, warnings } = await runClosingHooks({
      hooks: {
        onError: [{ command: `touch '${marker}'`, timeout: 10_000 }],
        after: [{ command: 'true', timeout: 10_000 }],
      },
      context: { ...context, status: 'success', exitCode: 0 },
      steps: steps(),
      now,
    });
    assert.deepEqual(
      results.map((r) => r.phase),
      ['after'],
    );
    assert.deepEqual(warnings, []);
    await assert.rejects(readFile(marker), { code: 'ENOENT' });
  });
});
