// A job's health as plain data: what `status` prints and the dashboard shows. Targets are read for
// what exists (the truth); the state database adds this host's history (verification levels, runs,
// drills, anomalies, notifications). Reads only: a missing state database is never created.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { JobConfig } from '../config/schema.js';
import type { LockHolder } from '../lib/errors.js';
import { inspectJobLock } from '../lib/lock.js';
import {
  type DrillHealth,
  type DrillHealthInput,
  everyCopyDeletable,
  jobHealthy,
  judgeDrill,
  judgeTargetHealth,
  type TargetHealth,
} from '../policy/health.js';
import type { NotificationRow } from '../state/notification-store.js';
import { openStateDb, type RunRow, type StateDb, type StoredFinding } from '../state/store.js';
import { readCatalog, selectTargets } from './catalog.js';

export interface LastRunSummary {
  id: number;
  status: string | null;
  startedAt: string;
  finishedAt: string | null;
  exitCode: number | null;
}

export interface UnfinishedRun {
  id: number;
  startedAt: string;
  pid: number;
  host: string;
}

export interface JobStatus {
  job: string;
  /** Every required target healthy, the drill judged healthy, no open anomaly. */
  healthy: boolean;
  /** Per target, with the weakest verification level its newest set reached here (null: unknown). */
  targets: (TargetHealth & { verification: string | null })[];
  /** The newest backup run this host recorded. */
  lastRun: LastRunSummary | null;
  /** Shown, not judged: the RPO says whether sets are fresh, and `ack` settles an anomaly failure. */
  lastRunFailed: boolean;
  drill: DrillHealth;
  /** The lock is held: by whom, when the holder file says so. */
  running: { held: boolean; holder: LockHolder | null };
  /** Runs that were killed or crashed (abandoned, or unfinished with no live holder). */
  unfinishedRuns: UnfinishedRun[];
  /** Failed notifications that no later delivery on their channel followed: people may not have heard. */
  undeliveredNotifications: NotificationRow[];
  /** Findings of the newest checked run that nobody accepted: unhealthy until acked or a clean run. */
  anomalies: StoredFinding[];
  /** Need a human, but do not make the job unhealthy. */
  warnings: string[];
}

/** How many runs back to look for the last backup, drill and unfinished runs. */
const HISTORY_RUNS = 200;

export const ENCRYPTION_UNPROVEN_WARNING =
  'sets are encrypted and no drill has yet proved that the private key opens them: run `backproof drill` ' +
  'with encryption.identityFile set, and keep a copy of the key off this host';

/** Reads the targets and the state database and judges the job. */
export async function collectJobStatus(
  config: JobConfig,
  signal: AbortSignal,
  nowMs: number = Date.now(),
  options: { readonly?: boolean } = {},
): Promise<JobStatus> {
  const catalogs = await readCatalog(config, selectTargets(config, undefined), signal);
  const targets = catalogs.map((catalog) => {
    const newest = catalog.sets.find((s) => s.valid && !s.suspect && s.finishedAt);
    return judgeTargetHealth(
      {
        target: catalog.target,
        optional: catalog.optional,
        ...(catalog.error ? { error: catalog.error } : {}),
        ...(newest?.finishedAt ? { newest: { setId: newest.setId, finishedAt: newest.finishedAt } } : {}),
      },
      nowMs,
      config.objectives?.rpo,
    );
  });
  const lock = inspectJobLock(config.stateDir, config.job);
  const liveHolderPid = lock.held ? lock.holder?.pid : undefined;
  const history = existsSync(join(config.stateDir, 'state.db'))
    ? readHistory(config, targets, liveHolderPid, options.readonly === true)
    : emptyHistory();

  const drill = judgeDrill(history.lastDrill, {
    expected: config.drill !== undefined,
    nowMs,
    ...(config.objectives?.rto !== undefined ? { rtoObjectiveMs: config.objectives.rto } : {}),
    ...(config.drill ? { maxAgeMs: config.drill.maxAge } : {}),
  });
  const warnings: string[] = [];
  if (everyCopyDeletable(config.targets)) {
    warnings.push(
      'every copy can be deleted with credentials held on this host (no target is appendOnly): ' +
        'give one target credentials that cannot delete (S3 Object Lock, a NAS snapshot or pull), then set appendOnly: true',
    );
  }
  if (config.encryption !== undefined && !history.encryptedDrillPassed) warnings.push(ENCRYPTION_UNPROVEN_WARNING);
  const lastRun = history.lastRun;
  return {
    job: config.job,
    healthy: jobHealthy(targets) && drill.healthy && history.anomalies.length === 0,
    targets: targets.map((t) => ({ ...t, verification: history.verification.get(t.target) ?? null })),
    lastRun,
    lastRunFailed: lastRun?.status === 'failure' || lastRun?.status === 'abandoned',
    drill,
    running: { held: lock.held, holder: lock.holder ?? null },
    unfinishedRuns: history.unfinished,
    undeliveredNotifications: history.undelivered,
    anomalies: history.anomalies,
    warnings,
  };
}

interface History {
  verification: Map<string, string | null>;
  lastRun: LastRunSummary | null;
  lastDrill: DrillHealthInput | undefined;
  encryptedDrillPassed: boolean;
  unfinished: UnfinishedRun[];
  undelivered: NotificationRow[];
  anomalies: StoredFinding[];
}

function emptyHistory(): History {
  return {
    verification: new Map(),
    lastRun: null,
    lastDrill: undefined,
    encryptedDrillPassed: false,
    unfinished: [],
    undelivered: [],
    anomalies: [],
  };
}

function readHistory(
  config: JobConfig,
  targets: readonly TargetHealth[],
  liveHolderPid: number | undefined,
  readonly: boolean,
): History {
  const state = openStateDb(config.stateDir, { readonly });
  try {
    const verification = new Map<string, string | null>();
    for (const t of targets) {
      if (t.newestSetId) {
        verification.set(t.target, weakestLevel(state.objectVerifications(config.job, t.target, t.newestSetId)));
      }
    }
    const runs = state.listRuns(config.job, HISTORY_RUNS);
    // The running holder's own row is unfinished because it is running, not because it died.
    const isLive = (r: RunRow) => liveHolderPid !== undefined && r.pid === liveHolderPid;
    const drillRun = runs.find((r) => r.command === 'drill' && !isLive(r));
    let lastDrill: DrillHealthInput | undefined;
    if (drillRun) {
      const report = state.getRun(drillRun.id)?.report as { setId?: unknown; rtoMs?: unknown } | null;
      lastDrill = {
        at: drillRun.startedAt,
        status: drillRun.status,
        setId: typeof report?.setId === 'string' ? report.setId : null,
        rtoMs: typeof report?.rtoMs === 'number' ? report.rtoMs : null,
      };
    }
    const backup = runs.find((r) => r.command === 'backup');
    return {
      verification,
      lastRun: backup
        ? {
            id: backup.id,
            status: backup.status,
            startedAt: backup.startedAt,
            finishedAt: backup.finishedAt,
            exitCode: backup.exitCode,
          }
        : null,
      lastDrill,
      encryptedDrillPassed: config.encryption !== undefined && encryptedDrillPassed(state, runs),
      anomalies: state.openFindings(config.job),
      unfinished: runs
        .filter((r) => r.status === 'abandoned' || (r.status === null && !isLive(r)))
        .map((r) => ({ id: r.id, startedAt: r.startedAt, pid: r.pid, host: r.host })),
      undelivered: state.undeliveredNotifications(config.job, 20),
    };
  } finally {
    state.close();
  }
}

/** A successful drill that opened encrypted objects (its report says `encrypted: true`). */
function encryptedDrillPassed(state: StateDb, runs: readonly RunRow[]): boolean {
  return runs.some((r) => {
    if (r.command !== 'drill' || r.status !== 'success') return false;
    const report = state.getRun(r.id)?.report as { encrypted?: unknown } | null | undefined;
    return report?.encrypted === true;
  });
}

const STRENGTH = ['etag', 'remote-hash', 'reread'];

/** How each verification level proved an object, in words. */
export const VERIFICATION_WORDS: Readonly<Record<string, string>> = {
  reread: 're-reading every byte',
  'remote-hash': 'SHA-256 computed on the server',
  etag: 'size and ETag from the server',
};

/** The weakest level any object of the set reached: the set is only as proven as that. */
export function weakestLevel(rows: readonly { level: string }[]): string | null {
  let weakest: string | null = null;
  for (const row of rows) {
    if (weakest === null || STRENGTH.indexOf(row.level) < STRENGTH.indexOf(weakest)) weakest = row.level;
  }
  return weakest;
}
