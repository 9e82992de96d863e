// collectJobStatus: the data `status` prints and the dashboard shows, read from a real local
// target and a real state database; it never creates the state database, and an encrypted job
// warns until a successful drill has opened its sets with the private key.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { parseConfigText } from '../../src/config/load.js';
import { collectJobStatus, ENCRYPTION_UNPROVEN_WARNING, weakestLevel } from '../../src/core/job-status.js';
import { openStateDb } from '../../src/state/store.js';

const RECIPIENT = `age1${'q'.repeat(58)}`;
const at = (s: number) => new Date(Date.UTC(2025, 10, 4, 3, 0, s)).toISOString();

describe('collectJobStatus', () => {
  let root: string;
  let dir: string;
  let n = 0;
  beforeEach(async () => {
    root ??= await mkdtemp(join(tmpdir(), 'bp-job-status-'));
    dir = join(root, String(n++));
    await mkdir(join(dir, 'target'), { recursive: true });
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const config = (encrypted: boolean) =>
    parseConfigText(
      [
        'job: shop',
        `stateDir: ${join(dir, 'state')}`,
        `targets: [{ name: disk, type: local, path: ${join(dir, 'target')} }]`,
        `sources: [{ name: app, type: files, paths: [${join(dir, 'app')}] }]`,
        encrypted ? `encryption: { recipients: ["${RECIPIENT}"] }` : '',
      ].join('\n'),
      'test.yml',
      dir,
    );

  /** A finished drill run with the given status and report. */
  function recordDrill(status: 'success' | 'failure', report: Record<string, unknown>, second: number): void {
    const state = openStateDb(join(dir, 'state'));
    const runId = state.startRun({ job: 'shop', command: 'drill', startedAt: at(second), pid: 10, host: 'h' });
    state.finishRun(runId, {
      status,
      exitCode: status === 'success' ? 0 : 1,
      finishedAt: at(second + 1),
      bytes: 0,
      report,
    });
    state.close();
  }

  it('judges a job that never ran as unhealthy, and creates no state database to say so', async () => {
    const status = await collectJobStatus(config(false), new AbortController().signal);
    assert.equal(status.healthy, false);
    assert.equal(status.targets[0]?.problem, 'no committed set: run `backproof backup`');
    assert.equal(status.targets[0]?.verification, null);
    assert.equal(status.lastRun, null);
    assert.deepEqual(status.running, { held: false, holder: null });
    assert.equal(existsSync(join(dir, 'state')), false);
    assert.ok(!status.warnings.includes(ENCRYPTION_UNPROVEN_WARNING), 'not encrypted: no such warning');
  });

  it('warns (without making the job unhealthy on its own) while no drill has opened the encrypted sets', async () => {
    const fresh = await collectJobStatus(config(true), new AbortController().signal);
    assert.ok(fresh.warnings.includes(ENCRYPTION_UNPROVEN_WARNING), fresh.warnings.join('\n'));
    assert.match(
      ENCRYPTION_UNPROVEN_WARNING,
      /^sets are encrypted and no drill has yet proved that the private key opens them: run `backproof drill` with encryption\.identityFile set, and keep a copy of the key off this host$/,
    );

    recordDrill('success', { setId: 's1', rtoMs: 10 }, 0); // an unencrypted drill proves nothing about the key
    recordDrill('failure', { setId: 's1', encrypted: true }, 10); // nor does a failed one
    recordDrill('success', { setId: 's1', encrypted: 'yes' }, 20); // only a literal true counts
    const unproven = await collectJobStatus(config(true), new AbortController().signal);
    assert.ok(unproven.warnings.includes(ENCRYPTION_UNPROVEN_WARNING));
    assert.equal(unproven.drill.last?.status, 'success', 'the newest drill is the one judged');

    recordDrill('success', { setId: 's1', encrypted: true, rtoMs: 20 }, 30);
    const proven = await collectJobStatus(config(true), new AbortController().signal);
    assert.ok(!proven.warnings.includes(ENCRYPTION_UNPROVEN_WARNING), proven.warnings.join('\n'));

    recordDrill('failure', { setId: 's1', encrypted: true }, 40);
    const later = await collectJobStatus(config(true), new AbortController().signal);
    assert.ok(
      !later.warnings.includes(ENCRYPTION_UNPROVEN_WARNING),
      'the key was proven once; a later failure is the drill judgement',
    );
    assert.equal(later.drill.healthy, false);
  });

  it('reads the last backup run, unfinished runs and the appendOnly warning from the history', async () => {
    const state = openStateDb(join(dir, 'state'));
    const dead = state.startRun({ job: 'shop', command: 'backup', startedAt: at(0), pid: 999_999, host: 'h' });
    const failed = state.startRun({ job: 'shop', command: 'backup', startedAt: at(5), pid: 11, host: 'h' });
    state.finishRun(failed, { status: 'failure', exitCode: 1, finishedAt: at(6), bytes: 0, report: {} });
    state.close();
    const status = await collectJobStatus(config(false), new AbortController().signal);
    assert.equal(status.lastRun?.id, failed);
    assert.equal(status.lastRunFailed, true);
    assert.deepEqual(
      status.unfinishedRuns.map((r) => r.id),
      [dead],
    );
    assert.match(status.warnings[0] ?? '', /^every copy can be deleted with credentials held on this host/);
  });

  it('weakestLevel: a set is only as proven as its least proven object', () => {
    assert.equal(weakestLevel([]), null);
    assert.equal(weakestLevel([{ level: 'reread' }, { level: 'etag' }, { level: 'remote-hash' }]), 'etag');
    assert.equal(weakestLevel([{ level: 'reread' }, { level: 'remote-hash' }]), 'remote-hash');
  });
});
