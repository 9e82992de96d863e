// Backup reports as the core makes them, for the pure notification tests: a failed run (a SHA-256
// mismatch on a NAS, or a source whose command exited 1), a run with warnings, a clean run.
import type { Failure } from '../../src/core/evidence.js';
import type { BackupReport, StepReport, TargetReport } from '../../src/report/types.js';

export const SHA_WRITTEN = 'a'.repeat(64);
export const SHA_FOUND = 'b'.repeat(64);

let nextRunId = 1;

function step(
  name: string,
  status: StepReport['status'],
  message: string,
  extra: Partial<StepReport> = {},
): StepReport {
  return {
    name,
    status,
    message,
    startedAt: '2025-11-04T03:00:01.000Z',
    finishedAt: '2025-11-04T03:00:02.000Z',
    ...extra,
  };
}

const committed = (name: string): TargetReport => ({
  name,
  type: 'local',
  optional: false,
  result: 'committed',
  setId: '20251104T030000Z-k3x9qa',
  manifestSha256: 'c'.repeat(64),
  objects: [{ name: 'app.tar.zst', bytes: 1200, sha256: SHA_WRITTEN, level: 'reread' }],
});

export const mismatch: Failure = {
  step: 'write-object',
  target: 'nas',
  component: 'app',
  message:
    `target nas: app.tar.zst does not match what was written: expected 1200 bytes, sha256 ${SHA_WRITTEN}; ` +
    `the target holds 1200 bytes, sha256 ${SHA_FOUND}`,
  evidence: { expected: { bytes: 1200, sha256: SHA_WRITTEN }, actual: { bytes: 1200, sha256: SHA_FOUND } },
};

export const commandFailed: Failure = {
  step: 'source',
  component: 'redis',
  message: 'source redis: redis-cli --rdb - exited with code 1: Could not connect to Redis at 127.0.0.1:6379',
  evidence: {
    command: 'redis-cli --rdb -',
    exitCode: 1,
    stderrTail: 'starting\nCould not connect to Redis at 127.0.0.1:6379: Connection refused\n',
  },
};

interface Options {
  job?: string;
  startedAt?: string;
  finishedAt?: string;
  failures?: Failure[];
  warnings?: string[];
  runId?: number | null;
}

function base(status: BackupReport['status'], options: Options): BackupReport {
  return {
    job: options.job ?? 'shop',
    runId: options.runId === undefined ? nextRunId++ : options.runId,
    setId: '20251104T030000Z-k3x9qa',
    status,
    exitCode: status === 'success' ? 0 : status === 'warning' ? 3 : 1,
    startedAt: options.startedAt ?? '2025-11-04T03:00:00.000Z',
    finishedAt: options.finishedAt ?? '2025-11-04T03:00:12.000Z',
    durationMs: 12_300,
    bytes: 1200,
    rawBytes: 45_000,
    components: [],
    targets: [],
    steps: [],
    warnings: [],
    failures: [],
    hooks: [],
    anomalies: [],
    suspect: false,
    retention: [],
  };
}

export function failedReport(options: Options = {}): BackupReport {
  const failures = options.failures ?? [mismatch];
  return {
    ...base('failure', options),
    targets: [
      committed('disk'),
      { name: 'nas', type: 'sftp', optional: false, result: 'failed', objects: [], error: failures[0]?.message ?? '' },
    ],
    steps: [
      step('preflight:target', 'ok', 'disk is writable', { target: 'disk' }),
      ...failures.map((f) =>
        step(f.step, 'failed', f.message, {
          ...(f.target ? { target: f.target } : {}),
          ...(f.component ? { component: f.component } : {}),
        }),
      ),
    ],
    failures,
    warnings: options.warnings ?? [],
  };
}

export function warningReport(options: Options = {}): BackupReport {
  const warnings = options.warnings ?? ['app: cannot read /var/www/app/secret.txt: permission denied'];
  return {
    ...base('warning', options),
    targets: [committed('disk')],
    components: [
      {
        name: 'app',
        source: 'app',
        kind: 'files',
        object: 'app.tar.zst',
        bytes: 1200,
        sha256: SHA_WRITTEN,
        rawBytes: 45_000,
        rawSha256: 'd'.repeat(64),
        files: 3,
        warnings,
        durationMs: 5,
      },
    ],
    steps: [step('component', 'warning', 'app: 45000 raw bytes stored as 1200 bytes', { component: 'app' })],
    warnings,
  };
}

export function successReport(options: Options = {}): BackupReport {
  return {
    ...base('success', options),
    targets: [committed('disk'), committed('nas')],
    steps: [step('commit', 'ok', 'set committed', { target: 'disk' })],
  };
}
