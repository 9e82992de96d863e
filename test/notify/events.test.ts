// Events from reports: which kind, which streak, which fingerprint; stuck locks against the RPO.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backupEvent, lockStuckEvent, type PastRun } from '../../src/notify/events.js';
import { commandFailed, failedReport, mismatch, successReport, warningReport } from './reports.js';

const run = (status: PastRun['status'], startedAt: string): PastRun => ({ status, startedAt });

describe('backupEvent', () => {
  it('makes a failure the first of its streak after a good run', () => {
    const report = failedReport({ startedAt: '2025-11-04T03:00:00.000Z' });
    const event = backupEvent(report, [run('success', '2025-11-03T03:00:00.000Z')]);
    assert.equal(event.kind, 'failure');
    assert.equal(event.kind === 'failure' && event.failedRuns, 1);
    assert.equal(event.since, '2025-11-04T03:00:00.000Z');
    assert.equal(event.at, report.finishedAt);
  });

  it('counts failed and abandoned runs before it, skipping unfinished ones, back to the last good run', () => {
    const event = backupEvent(failedReport(), [
      run('failure', '2025-11-03T03:00:00.000Z'),
      run(null, '2025-11-02T12:00:00.000Z'),
      run('abandoned', '2025-11-02T03:00:00.000Z'),
      run('warning', '2025-11-01T03:00:00.000Z'),
      run('failure', '2025-10-31T03:00:00.000Z'),
    ]);
    assert.equal(event.kind === 'failure' && event.failedRuns, 3);
    assert.equal(event.since, '2025-11-02T03:00:00.000Z');
  });

  it('makes the first good run after failures a recovery, success or warning alike', () => {
    const earlier = [run('failure', '2025-11-03T03:00:00.000Z'), run('failure', '2025-11-02T03:00:00.000Z')];
    for (const report of [successReport(), warningReport()]) {
      const event = backupEvent(report, earlier);
      assert.equal(event.kind, 'recovery');
      assert.equal(event.kind === 'recovery' && event.failedRuns, 2);
      assert.equal(event.since, '2025-11-02T03:00:00.000Z');
    }
  });

  it('makes a good run after good runs a success or a warning', () => {
    const earlier = [run('success', '2025-11-03T03:00:00.000Z')];
    assert.equal(backupEvent(successReport(), earlier).kind, 'success');
    assert.equal(backupEvent(successReport(), []).kind, 'success');
    const warning = backupEvent(warningReport({ startedAt: '2025-11-05T03:00:00.000Z' }), [
      run('warning', '2025-11-04T03:00:00.000Z'),
      run('warning', '2025-11-03T03:00:00.000Z'),
      run('success', '2025-11-02T03:00:00.000Z'),
    ]);
    assert.equal(warning.kind, 'warning');
    assert.equal(warning.since, '2025-11-03T03:00:00.000Z');
  });

  it('fingerprints a failure by step, target and component, whatever the order or the words', () => {
    const a = backupEvent(failedReport({ failures: [mismatch, commandFailed] }), []);
    const b = backupEvent(
      failedReport({ failures: [commandFailed, { ...mismatch, message: 'other words, same place' }] }),
      [],
    );
    const c = backupEvent(failedReport({ failures: [{ ...mismatch, target: 'offsite' }] }), []);
    assert.equal(a.fingerprint, b.fingerprint);
    assert.notEqual(a.fingerprint, c.fingerprint);
    assert.match(a.fingerprint, /^[0-9a-f]{16}$/);
  });

  it('fingerprints a warning by its warning steps, so the same warning tomorrow is the same', () => {
    const today = backupEvent(warningReport({ warnings: ['app: cannot read /a'] }), []);
    const tomorrow = backupEvent(warningReport({ warnings: ['app: cannot read /b'] }), []);
    assert.equal(today.fingerprint, tomorrow.fingerprint);
  });
});

describe('lockStuckEvent', () => {
  const holder = { pid: 99, host: 'web1', startedAt: '2025-11-03T00:00:00.000Z', command: 'backup' };
  const rpoMs = 26 * 3_600_000;

  it('is an event only when the holder has held the lock longer than the RPO', () => {
    const over = lockStuckEvent({ job: 'shop', holder, now: new Date('2025-11-04T02:00:01.000Z'), rpoMs });
    assert.equal(over?.kind, 'lock-stuck');
    assert.equal(over?.kind === 'lock-stuck' && over.heldMs, 26 * 3_600_000 + 1000);
    assert.equal(over?.since, holder.startedAt);
    assert.equal(lockStuckEvent({ job: 'shop', holder, now: new Date('2025-11-04T02:00:00.000Z'), rpoMs }), undefined);
  });

  it('is no event without an RPO, a holder, or a readable start time', () => {
    const now = new Date('2025-12-01T00:00:00.000Z');
    assert.equal(lockStuckEvent({ job: 'shop', holder, now, rpoMs: undefined }), undefined);
    assert.equal(lockStuckEvent({ job: 'shop', holder: undefined, now, rpoMs }), undefined);
    assert.equal(lockStuckEvent({ job: 'shop', holder: { ...holder, startedAt: 'yesterday' }, now, rpoMs }), undefined);
  });

  it('fingerprints the holder: the same stuck run is the same problem', () => {
    const now = new Date('2025-12-01T00:00:00.000Z');
    const a = lockStuckEvent({ job: 'shop', holder, now, rpoMs });
    const b = lockStuckEvent({ job: 'shop', holder, now: new Date('2025-12-02T00:00:00.000Z'), rpoMs });
    const c = lockStuckEvent({ job: 'shop', holder: { ...holder, pid: 100 }, now, rpoMs });
    assert.equal(a?.fingerprint, b?.fingerprint);
    assert.notEqual(a?.fingerprint, c?.fingerprint);
  });
});
