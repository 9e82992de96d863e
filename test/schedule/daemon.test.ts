// The daemon's loop with stand-in children (/bin/sh scripts instead of backproof): every exit is
// classified, a crashing child does not stop the schedule, stopping waits for running children and
// cancels runs still waiting out their random delay.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type DaemonInput, runDaemon } from '../../src/schedule/daemon.js';
import { parseSchedule } from '../../src/schedule/expression.js';

describe('runDaemon', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-daemon-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function input(script: string, controller: AbortController, lines: string[], extra: Partial<DaemonInput> = {}) {
    return {
      job: 'demo',
      configPath: '/etc/backproof/demo.yml',
      jobs: [{ command: 'backup' as const, args: ['backup'], schedule: parseSchedule('* * * * * *'), locks: true }],
      randomizedDelayMs: 0,
      // $1 $2 $3 = --config FILE backup, as backproof would get them.
      invocation: ['/bin/sh', '-c', script, 'sh'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      signal: controller.signal,
      log: (line: string) => lines.push(line),
      ...extra,
    } satisfies DaemonInput;
  }

  async function until(what: string, condition: () => boolean): Promise<void> {
    for (let i = 0; i < 1200 && !condition(); i++) await sleep(25);
    assert.ok(condition(), `timed out waiting for ${what}`);
  }

  it('classifies each exit, keeps going after a crash, and passes --config FILE and the command', async () => {
    const counter = join(dir, 'count');
    const args = join(dir, 'args');
    // Run 1 crashes (SIGKILL), run 2 finds the lock (75), run 3 succeeds, later runs warn (3).
    const script = `n=$(( $(cat '${counter}' 2>/dev/null || echo 0) + 1 )); echo $n > '${counter}'; echo "$@" > '${args}'
      echo "run $n says hello"
      case $n in 1) kill -9 $$;; 2) exit 75;; 3) exit 0;; *) exit 3;; esac`;
    const controller = new AbortController();
    const lines: string[] = [];
    const done = runDaemon(input(script, controller, lines));
    await until('four runs', () => lines.filter((l) => / backup: (finished|skipped|crashed)/.test(l)).length >= 4);
    controller.abort();
    const runs = await done;
    assert.deepEqual(
      runs.slice(0, 4).map((r) => r.outcome),
      ['crashed', 'locked', 'success', 'warning'],
    );
    assert.equal(runs[0]?.signal, 'SIGKILL');
    assert.equal(runs[1]?.exitCode, 75);
    assert.equal((await readFile(args, 'utf8')).trim(), '--config /etc/backproof/demo.yml backup');
    assert.ok(lines.some((l) => l.includes('backup: crashed (killed by SIGKILL)')));
    assert.ok(lines.some((l) => /backup: skipped: another run of job demo holds its lock \(exit 75\)/.test(l)));
    assert.ok(lines.includes('[backup] run 1 says hello'));
    assert.ok(lines.some((l) => /backup: scheduled "\* \* \* \* \* \*" \(\* \* \* \* \* \*\), next \d{4}-/.test(l)));
    assert.match(lines.at(-1) ?? '', /daemon for job demo stopped after \d+ run\(s\)$/);
  });

  it('on stop, sends a running child one SIGTERM and waits for it to finish', async () => {
    const pidFile = join(dir, 'child.pid');
    const script = `echo $$ > '${pidFile}'; trap 'kill $!; echo cleaning up; exit 130' TERM; sleep 600 & wait`;
    const controller = new AbortController();
    const lines: string[] = [];
    const done = runDaemon(input(script, controller, lines));
    await until('the child to start', () => lines.some((l) => l.includes('backup: started')));
    await until('the child to write its pid', () => {
      try {
        return readFileSync(pidFile, 'utf8').trim() !== '';
      } catch {
        return false;
      }
    });
    controller.abort();
    const runs = await done;
    assert.equal(runs.length, 1);
    assert.equal(runs[0]?.outcome, 'interrupted');
    assert.ok(lines.includes('[backup] cleaning up'));
    const pid = Number(await readFile(pidFile, 'utf8'));
    assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
  });

  it('stopping during a random delay starts nothing', async () => {
    const marker = join(dir, 'ran');
    const controller = new AbortController();
    const lines: string[] = [];
    const done = runDaemon(
      input(`touch '${marker}'`, controller, lines, { randomizedDelayMs: 3_600_000, random: () => 0.5 }),
    );
    await until('a run to be due', () => lines.some((l) => l.includes('backup: due; starting in 30m')));
    controller.abort();
    assert.deepEqual(await done, []);
    await assert.rejects(readFile(marker), { code: 'ENOENT' });
  });
});
