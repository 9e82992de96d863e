// The renderer: subjects that state the status truthfully, bodies with the failing step, the
// evidence and what to do next, and no secret in any of it.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { DrillReport } from '../../src/core/drill.js';
import type { VerifyReport } from '../../src/core/verify.js';
import { clearSecrets, registerSecret } from '../../src/lib/redact.js';
import {
  type BackupEvent,
  backupEvent,
  drillFailureEvent,
  isFailedVerify,
  lockStuckEvent,
  type NotifyEvent,
  verifyFailureEvent,
} from '../../src/notify/events.js';
import { renderEvent, renderStart } from '../../src/notify/render.js';
import {
  commandFailed,
  failedReport,
  mismatch,
  SHA_FOUND,
  SHA_WRITTEN,
  successReport,
  warningReport,
} from './reports.js';

const context = { host: 'web1' };

describe('renderEvent: backup runs', () => {
  afterEach(() => clearSecrets());

  it('names the failing target and the SHA-256 mismatch in the subject, as the design says', () => {
    const message = renderEvent(backupEvent(failedReport(), []), context);
    assert.equal(message.subject, '[backproof] FAILURE: job shop — nas: sha256 mismatch on app.tar.zst');
    assert.equal(message.status, 'failure');
    assert.equal(message.kind, 'failure');
  });

  it('gives the step, target, component, expected and actual SHA-256 and what to do in the body', () => {
    const { text } = renderEvent(backupEvent(failedReport(), []), context);
    assert.match(text, /the backup of job shop FAILED on host web1/);
    assert.match(text, /1\. step write-object, target nas, component app: target nas: app\.tar\.zst does not match/);
    assert.match(text, new RegExp(`expected: 1200 bytes \\(1\\.2 kB\\), sha256 ${SHA_WRITTEN}`));
    assert.match(text, new RegExp(`actual: {3}1200 bytes \\(1\\.2 kB\\), sha256 ${SHA_FOUND}`));
    assert.match(text, /Set 20251104T030000Z-k3x9qa is committed on disk only; required parts are not proven/);
    assert.match(text, /What to do next:\n {2}- Target nas holds different bytes than were written/);
    assert.match(text, /backproof verify --set all --target nas/);
    assert.match(text, /Run log \(last 2 steps\):/);
  });

  it("shows a failed tool's exit code and stderr tail, and says to run it by hand", () => {
    const message = renderEvent(backupEvent(failedReport({ failures: [commandFailed] }), []), context);
    assert.equal(
      message.subject,
      '[backproof] FAILURE: job shop — redis: redis-cli --rdb - exited with code 1: Could not connect to Redis at 127.0.0.1:6379',
    );
    assert.match(message.text, /exit code: 1\n/);
    assert.match(message.text, /stderr \(last lines\):\n {7}\| starting\n {7}\| Could not connect to Redis/);
    assert.match(message.text, /Source redis did not produce a complete component: run its command or dump by hand/);
  });

  it('counts further failures in the subject and the failed runs in a row in the body', () => {
    const report = failedReport({ failures: [mismatch, commandFailed] });
    const earlier = [
      { status: 'failure' as const, startedAt: '2025-11-03T03:00:00.000Z' },
      { status: 'abandoned' as const, startedAt: '2025-11-02T03:00:00.000Z' },
      { status: 'success' as const, startedAt: '2025-11-01T03:00:00.000Z' },
    ];
    const message = renderEvent(backupEvent(report, earlier), context);
    assert.match(message.subject, /sha256 mismatch on app\.tar\.zst \(\+1 more\)$/);
    assert.match(message.text, /This job has failed 3 runs in a row, since 2025-11-02T03:00:00\.000Z\./);
  });

  it('says WARNING with the first warning, and that the set is safe', () => {
    const message = renderEvent(backupEvent(warningReport(), []), context);
    assert.equal(
      message.subject,
      '[backproof] WARNING: job shop — set 20251104T030000Z-k3x9qa committed and verified on disk; 1 warning(s): ' +
        'app: cannot read /var/www/app/secret.txt: permission denied',
    );
    assert.equal(message.status, 'warning');
    assert.match(message.text, /Warnings:\n {2}- app: cannot read/);
    assert.match(message.text, /The set is committed and verified\. Read each warning/);
  });

  it('says RECOVERED after failed runs, and SUCCESS for a clean run', () => {
    const earlier = [{ status: 'failure' as const, startedAt: '2025-11-03T03:00:00.000Z' }];
    const recovered = renderEvent(backupEvent(successReport(), earlier), context);
    assert.equal(
      recovered.subject,
      '[backproof] RECOVERED: job shop — set 20251104T030000Z-k3x9qa committed and verified on disk, nas after 1 failed run(s)',
    );
    assert.equal(recovered.status, 'success');
    const withWarnings = renderEvent(backupEvent(warningReport(), earlier), context);
    assert.match(withWarnings.subject, /^\[backproof\] RECOVERED, WITH WARNINGS: job shop — /);
    assert.equal(withWarnings.status, 'warning');
    const clean = renderEvent(backupEvent(successReport(), []), context);
    assert.match(clean.subject, /^\[backproof\] SUCCESS: job shop — set \S+ committed and verified on disk, nas$/);
    assert.match(clean.text, /Nothing: every required target holds the set, verified\./);
  });

  it('cannot be talked into a success subject by an event that mislabels a failed report', () => {
    const report = failedReport();
    for (const kind of ['success', 'recovery', 'warning'] as const) {
      const forged = { ...backupEvent(report, []), kind, failedRuns: 1 } as unknown as BackupEvent;
      const message = renderEvent(forged, context);
      assert.match(message.subject, /^\[backproof\] FAILURE: /, kind);
      assert.equal(message.status, 'failure', kind);
      assert.equal(message.document.status, 'failure', kind);
      assert.doesNotMatch(message.subject, /SUCCESS|RECOVERED|WARNING/, kind);
    }
  });

  it('builds the webhook document from the same text, with the facts', () => {
    const message = renderEvent(backupEvent(failedReport({ runId: 42 }), []), context);
    const { document } = message;
    assert.equal(document.format, 'backproof-event/1');
    assert.equal(document.subject, message.subject);
    assert.equal(document.text, message.text);
    assert.equal(document.runId, 42);
    assert.equal(document.host, 'web1');
    assert.equal(document.facts.setId, '20251104T030000Z-k3x9qa');
    assert.deepEqual(
      (document.facts.failures as { step: string }[]).map((f) => f.step),
      ['write-object'],
    );
  });
});

describe('renderEvent: secrets', () => {
  afterEach(() => clearSecrets());

  it('masks registered secrets, URL passwords and NAME=secret in subject, text and document', () => {
    const password = 'smtp-pass-Zq81';
    const hookUrl = 'https://hooks.example.com/services/T0/B0/sEcReTtOkEn';
    registerSecret(password);
    registerSecret(hookUrl);
    const planted: typeof commandFailed = {
      ...commandFailed,
      message: `source redis: sh exited with code 1: ${password} ${hookUrl}`,
      evidence: {
        exitCode: 1,
        stderrTail: `auth ${password}\nPGPASSWORD=hunter2hunter2 psql postgres://app:dbpass99@db/app\n${hookUrl}\n`,
      },
    };
    const message = renderEvent(backupEvent(failedReport({ failures: [planted] }), []), context);
    const everything = `${message.subject}\n${message.text}\n${JSON.stringify(message.document)}`;
    for (const secret of [password, hookUrl, 'sEcReTtOkEn', 'hunter2hunter2', 'dbpass99']) {
      assert.ok(!everything.includes(secret), `${secret} leaked`);
    }
    assert.match(message.text, /auth \*\*\*/);
  });
});

describe('renderEvent: drills, verifies, stuck locks, starts', () => {
  it('says DRILL FAILED with the failed checks and the set to verify', () => {
    const report: DrillReport = {
      job: 'shop',
      setId: '20251104T030000Z-k3x9qa',
      target: 'disk',
      encrypted: false,
      startedAt: '2025-11-04T05:00:00.000Z',
      restoredAt: null,
      finishedAt: '2025-11-04T05:01:00.000Z',
      rtoMs: null,
      rtoObjectiveMs: null,
      status: 'failure',
      components: [
        {
          name: 'app',
          kind: 'files',
          restoredAs: 'tree',
          checks: [{ check: 'object', ok: false, detail: 'app.tar.zst: sha256 differs from the manifest' }],
          warnings: [],
        },
      ],
      problems: ['app: object: app.tar.zst: sha256 differs from the manifest'],
      warnings: [],
      cleanedUp: [],
    };
    const event = drillFailureEvent({
      job: 'shop',
      drill: { report: { ...report, status: 'failure' } },
      at: report.finishedAt,
      startedAt: report.startedAt,
      runId: 7,
      earlier: [],
    });
    const message = renderEvent(event, context);
    assert.equal(
      message.subject,
      '[backproof] DRILL FAILED: job shop — set 20251104T030000Z-k3x9qa from disk: app: object: app.tar.zst: sha256 differs from the manifest',
    );
    assert.equal(message.status, 'failure');
    assert.match(message.text, /Failed checks:\n {2}- app \(files\) object: app\.tar\.zst: sha256 differs/);
    assert.match(message.text, /backproof verify --set 20251104T030000Z-k3x9qa --target disk/);
    assert.match(message.text, /no RTO was measured/);
  });

  it('says a drill that could not run, with the error', () => {
    const event = drillFailureEvent({
      job: 'shop',
      drill: { error: 'no committed set on target disk', set: 'latest' },
      at: '2025-11-04T05:00:00.000Z',
      startedAt: '2025-11-04T05:00:00.000Z',
      runId: null,
      earlier: [],
    });
    const message = renderEvent(event, context);
    assert.equal(
      message.subject,
      '[backproof] DRILL FAILED: job shop — the drill could not run: no committed set on target disk',
    );
  });

  it('says VERIFY FAILED with the first problem', () => {
    const report = {
      job: 'shop',
      selection: 'all',
      ok: false,
      exitCode: 1,
      startedAt: '2025-11-04T06:00:00.000Z',
      finishedAt: '2025-11-04T06:00:05.000Z',
      stateDatabase: true,
      runId: 9,
      targets: [
        {
          target: 'nas',
          type: 'sftp',
          where: 'sftp://backup@nas:22/backups',
          optional: false,
          ok: false,
          sets: [],
          incomplete: [],
          chain: null,
          problems: ['nas: set 20251104T030000Z-k3x9qa: app.tar.zst is missing'],
          notes: [],
        },
      ],
      problems: ['nas: set 20251104T030000Z-k3x9qa: app.tar.zst is missing'],
      notes: [],
    } satisfies VerifyReport;
    assert.ok(isFailedVerify(report));
    const message = renderEvent(verifyFailureEvent(report, []), context);
    assert.equal(
      message.subject,
      '[backproof] VERIFY FAILED: job shop — nas: set 20251104T030000Z-k3x9qa: app.tar.zst is missing',
    );
    // (URL user names are masked too: a bare user name may be a token.)
    assert.match(message.text, /✗ nas \(sftp:\/\/\S+@nas:22\/backups\): 1 problem\(s\)/);
  });

  it('says LOCK STUCK with the holder, how long, and how to stop it', () => {
    const event = lockStuckEvent({
      job: 'shop',
      holder: { pid: 4242, host: 'web1', startedAt: '2025-11-03T00:00:00.000Z', command: 'backup' },
      now: new Date('2025-11-04T06:00:00.000Z'),
      rpoMs: 26 * 3_600_000,
    }) as NotifyEvent;
    const message = renderEvent(event, context);
    assert.equal(
      message.subject,
      '[backproof] LOCK STUCK: job shop — pid 4242 on web1 (backup) has held the lock for 30h00m, longer than the RPO (26h00m)',
    );
    assert.match(message.text, /kill 4242/);
  });

  it('renders the start ping as started, never as an outcome', () => {
    const message = renderStart({ job: 'shop', at: '2025-11-04T03:00:00.000Z', runId: 3, setId: 'x' }, context);
    assert.equal(message.status, 'started');
    assert.equal(message.kind, 'start');
    assert.match(message.subject, /^\[backproof\] STARTED: job shop/);
  });
});
