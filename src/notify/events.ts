// What can be notified, built only from reports: a backup run's outcome (failure, warning, success,
// recovery), a failed drill or verify, a lock held longer than the RPO. Each event carries a
// fingerprint (what makes two events "the same problem") and `since` (when that problem began), which
// the repeat rule (decide.ts) uses. Pure functions: no I/O, no clock.
import { createHash } from 'node:crypto';
import type { NotifyEventKind } from '../config/schema.js';
import type { DrillReport } from '../core/drill.js';
import type { VerifyReport } from '../core/verify.js';
import type { LockHolder } from '../lib/errors.js';
import type { BackupReport } from '../report/types.js';

export type EventKind = NotifyEventKind;

// A backup event holds a report whose status type matches the event: a `success` or `recovery`
// event cannot be built from a failed report (backupEvent() narrows by the report's own status).
export type FailedBackup = BackupReport & { readonly status: 'failure' };
export type WarningBackup = BackupReport & { readonly status: 'warning' };
export type SuccessfulBackup = BackupReport & { readonly status: 'success' };
export type FailedDrill = DrillReport & { readonly status: 'failure' };
export type FailedVerify = VerifyReport & { readonly ok: false };

interface EventBase {
  job: string;
  /** When it happened (UTC ISO): the run's end, or when the stuck lock was found. */
  at: string;
  /** The same problem again has the same fingerprint. */
  fingerprint: string;
  /** When the current streak of this problem began (UTC ISO); earlier notices do not count against it. */
  since: string;
  /** The state database's run this is about, if recorded. */
  runId: number | null;
}

export type BackupEvent =
  | (EventBase & { kind: 'failure'; report: FailedBackup /** This run included. */; failedRuns: number })
  | (EventBase & { kind: 'warning'; report: WarningBackup })
  | (EventBase & { kind: 'success'; report: SuccessfulBackup })
  | (EventBase & { kind: 'recovery'; report: WarningBackup | SuccessfulBackup; failedRuns: number });

/** A drill that ran and failed a check, or one that could not run at all. */
export type DrillFailure = { report: FailedDrill } | { error: string; set: string };

export type NotifyEvent =
  | BackupEvent
  | (EventBase & { kind: 'drill-failure'; drill: DrillFailure; failedRuns: number })
  | (EventBase & { kind: 'verify-failure'; verify: FailedVerify; failedRuns: number })
  | (EventBase & { kind: 'lock-stuck'; holder: LockHolder; heldMs: number; rpoMs: number });

/** An earlier run of the same command, from the state database. */
export interface PastRun {
  status: 'success' | 'warning' | 'failure' | 'abandoned' | null;
  startedAt: string;
}

export function isFailedBackup(report: BackupReport): report is FailedBackup {
  return report.status === 'failure';
}
export function isWarningBackup(report: BackupReport): report is WarningBackup {
  return report.status === 'warning';
}
export function isSuccessfulBackup(report: BackupReport): report is SuccessfulBackup {
  return report.status === 'success';
}
export function isFailedDrill(report: DrillReport): report is FailedDrill {
  return report.status === 'failure';
}
export function isFailedVerify(report: VerifyReport): report is FailedVerify {
  return !report.ok;
}

export function isBackupEvent(event: NotifyEvent): event is BackupEvent {
  return event.kind === 'failure' || event.kind === 'warning' || event.kind === 'success' || event.kind === 'recovery';
}

const failed = (run: PastRun) => run.status === 'failure' || run.status === 'abandoned';

/** The runs right before this one (newest first) that match, skipping unfinished ones. */
function leading(earlier: readonly PastRun[], match: (run: PastRun) => boolean): PastRun[] {
  const streak: PastRun[] = [];
  for (const run of earlier) {
    if (run.status === null) continue;
    if (!match(run)) break;
    streak.push(run);
  }
  return streak;
}

/**
 * The event of a finished backup run. `earlier`: the job's earlier backup runs, newest first
 * (this run excluded). A good run right after one or more failed ones is a recovery.
 */
export function backupEvent(report: BackupReport, earlier: readonly PastRun[]): BackupEvent {
  const base = { job: report.job, at: report.finishedAt, runId: report.runId };
  if (isFailedBackup(report)) {
    const streak = leading(earlier, failed);
    return {
      ...base,
      kind: 'failure',
      report,
      failedRuns: streak.length + 1,
      fingerprint: fingerprintOf(report.failures.map((f) => [f.step, f.target ?? '', f.component ?? ''].join('|'))),
      since: streak.at(-1)?.startedAt ?? report.startedAt,
    };
  }
  const failures = leading(earlier, failed);
  const good = isWarningBackup(report) ? report : isSuccessfulBackup(report) ? report : undefined;
  if (!good) throw new Error(`unreachable: a backup report with status ${JSON.stringify(report.status)}`);
  if (failures.length > 0) {
    return {
      ...base,
      kind: 'recovery',
      report: good,
      failedRuns: failures.length,
      fingerprint: 'recovery',
      since: failures.at(-1)?.startedAt ?? report.startedAt,
    };
  }
  if (isWarningBackup(good)) {
    const streak = leading(earlier, (run) => run.status === 'warning');
    return {
      ...base,
      kind: 'warning',
      report: good,
      fingerprint: warningFingerprint(good),
      since: streak.at(-1)?.startedAt ?? report.startedAt,
    };
  }
  return { ...base, kind: 'success', report: good, fingerprint: 'success', since: report.startedAt };
}

/** The same warning is the same step, target and component warning (retries that worked aside). */
function warningFingerprint(report: BackupReport): string {
  const parts = report.steps
    .filter((s) => s.status === 'warning' && s.name !== 'upload-retry')
    .map((s) => [s.name, s.target ?? '', s.component ?? ''].join('|'));
  return fingerprintOf(parts.length > 0 ? parts : report.warnings.map(normalize));
}

/** A failed drill; `earlier`: the job's earlier drill runs, newest first. */
export function drillFailureEvent(input: {
  job: string;
  drill: DrillFailure;
  at: string;
  startedAt: string;
  runId: number | null;
  earlier: readonly PastRun[];
}): NotifyEvent {
  const streak = leading(input.earlier, failed);
  const parts =
    'report' in input.drill
      ? input.drill.report.components.flatMap((c) => c.checks.filter((k) => !k.ok).map((k) => `${c.name}|${k.check}`))
      : [];
  const fallback = 'report' in input.drill ? input.drill.report.problems : [input.drill.error];
  return {
    kind: 'drill-failure',
    job: input.job,
    drill: input.drill,
    at: input.at,
    runId: input.runId,
    failedRuns: streak.length + 1,
    fingerprint: fingerprintOf(parts.length > 0 ? parts : fallback.map(normalize)),
    since: streak.at(-1)?.startedAt ?? input.startedAt,
  };
}

/** A failed verify; `earlier`: the job's earlier verify runs, newest first. */
export function verifyFailureEvent(report: FailedVerify, earlier: readonly PastRun[]): NotifyEvent {
  const streak = leading(earlier, failed);
  const parts = report.targets.flatMap((t) => [
    ...(t.error !== undefined ? [`${t.target}|unreadable`] : []),
    ...t.sets.filter((s) => !s.ok).map((s) => `${t.target}|${s.setId}`),
    ...((t.chain?.problems.length ?? 0) > 0 ? [`${t.target}|chain`] : []),
  ]);
  return {
    kind: 'verify-failure',
    job: report.job,
    verify: report,
    at: report.finishedAt,
    runId: report.runId,
    failedRuns: streak.length + 1,
    fingerprint: fingerprintOf(parts.length > 0 ? parts : report.problems.map(normalize)),
    since: streak.at(-1)?.startedAt ?? report.startedAt,
  };
}

/**
 * A run found the job locked: an event only when the holder has held it longer than the RPO (a
 * run that long means backups are not happening). Undefined otherwise, or without an RPO.
 */
export function lockStuckEvent(input: {
  job: string;
  holder: LockHolder | undefined;
  now: Date;
  rpoMs: number | undefined;
}): NotifyEvent | undefined {
  const { holder, rpoMs } = input;
  if (!holder || rpoMs === undefined) return undefined;
  const started = Date.parse(holder.startedAt);
  if (Number.isNaN(started)) return undefined;
  const heldMs = input.now.getTime() - started;
  if (heldMs <= rpoMs) return undefined;
  return {
    kind: 'lock-stuck',
    job: input.job,
    holder,
    heldMs,
    rpoMs,
    at: input.now.toISOString(),
    runId: null,
    fingerprint: fingerprintOf([`${holder.host}|${holder.pid}|${holder.startedAt}`]),
    since: new Date(started).toISOString(),
  };
}

/** Free text made comparable from one run to the next: set ids and numbers do not count. */
function normalize(text: string): string {
  return text.replace(/\d{8}T\d{6}Z-[a-z0-9]+/g, '<set>').replace(/\d+/g, '#');
}

/** 16 hex digits of SHA-256 over the parts, order and duplicates aside. */
export function fingerprintOf(parts: readonly string[]): string {
  const text = [...new Set(parts)].sort().join('\n');
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}
