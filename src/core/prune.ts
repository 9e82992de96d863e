// `prune`: retention on each target. The policy (which sets to keep, and why) is the pure function
// in policy/retention.ts; this is the I/O around it. For each set to delete: its tombstone first
// (so `verify` can follow the chain through the gap), then manifest.json (from then on the set is
// incomplete, never a half-deleted committed one: a crash leaves what the next run's cleanup
// finishes), then its other objects. Nothing else on a target is ever touched. The core never prints.
import type { JobConfig, RetentionConfig, TargetConfig } from '../config/schema.js';
import { messageOf } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { decideRetention, type RetentionCandidate, type RetentionRules } from '../policy/retention.js';
import { groupSets, manifestKey, ownerKey, setPrefix, tombstoneKey } from '../set/layout.js';
import type { Manifest } from '../set/manifest.js';
import { readTombstones, TOMBSTONE_FORMAT, type TombstoneListing, writeTombstone } from '../set/tombstone.js';
import type { Target } from '../targets/types.js';
import { type CommittedListing, listCommittedSets, type OwnerRecord, readSmallObject } from './target-session.js';

export interface PruneInput {
  config: JobConfig;
  /** The targets to prune, already chosen (a `--target`, or all of them), in config order. */
  targets: readonly Target[];
  /**
   * This host's id (from the state directory). A target is pruned only when its `backproof.json`
   * names this host: sets another host wrote are never deleted from here. null: this host has none.
   */
  hostId: string | null;
  /** Decide and report only: write no tombstone, delete nothing. */
  dryRun: boolean;
  signal: AbortSignal;
  log: Logger;
  now: () => Date;
  /**
   * After a backup: prune a target only when this set is committed there with a valid manifest
   * that is not suspect (read back from the target, so the anomaly verdict stored in it decides).
   */
  afterSet?: string;
}

export interface PruneSetReport {
  setId: string;
  /** From the manifest; null when the manifest is corrupt. */
  startedAt: string | null;
  valid: boolean;
  suspect: boolean;
  decision: 'keep' | 'delete';
  /** The rules that keep it, or why each rule lets it go (from decideRetention). */
  reasons: string[];
  /** For a set decided for deletion in a real prune: whether it is gone now. */
  deleted?: boolean;
}

export type PruneTargetResult = 'pruned' | 'unchanged' | 'skipped' | 'failed';

export interface PruneTargetReport {
  target: string;
  type: string;
  where: string;
  /** The target is never pruned from this host. */
  appendOnly: boolean;
  /** pruned: sets were deleted; unchanged: nothing to delete (or a dry run); skipped: see `skipped`. */
  result: PruneTargetResult;
  /** Why retention did not run on this target. */
  skipped?: string;
  rules: RetentionRules | null;
  timeZone: string | null;
  /** Every committed set, newest first, with its decision. Empty when skipped or unreadable. */
  sets: PruneSetReport[];
  /** Sets deleted by this prune, oldest first. */
  deleted: string[];
  /** Tombstone keys written (or found already written by an interrupted prune of the same set). */
  tombstones: string[];
  /** Sets an interrupted prune had tombstoned and half deleted, finished now. */
  finished: string[];
  /** What went wrong: the target failed (nothing after the first error was deleted). */
  errors: string[];
  /** What needs a human's look: corrupt or suspect sets kept, an owner mismatch seen by a dry run. */
  warnings: string[];
}

export interface PruneReport {
  job: string;
  dryRun: boolean;
  status: 'success' | 'warning' | 'failure';
  exitCode: 0 | 1 | 3;
  startedAt: string;
  finishedAt: string;
  targets: PruneTargetReport[];
  /** Every error, prefixed with its target. */
  problems: string[];
  /** Every warning, prefixed with its target. */
  warnings: string[];
}

/** Prunes every target of `input.targets`. One target failing never stops the others. Throws only when interrupted. */
export async function runPrune(input: PruneInput): Promise<PruneReport> {
  const startedAt = input.now().toISOString();
  const targets: PruneTargetReport[] = [];
  for (const target of input.targets) targets.push(await pruneTarget(target, input));
  const problems = targets.flatMap((t) => t.errors.map((e) => `target ${t.target}: ${e}`));
  const warnings = targets.flatMap((t) => t.warnings.map((w) => `target ${t.target}: ${w}`));
  const status = problems.length > 0 ? 'failure' : warnings.length > 0 ? 'warning' : 'success';
  return {
    job: input.config.job,
    dryRun: input.dryRun,
    status,
    exitCode: status === 'failure' ? 1 : status === 'warning' ? 3 : 0,
    startedAt,
    finishedAt: input.now().toISOString(),
    targets,
    problems,
    warnings,
  };
}

/** Retention of one target; its failures are in the report. Throws only when interrupted. */
export async function pruneTarget(target: Target, input: PruneInput): Promise<PruneTargetReport> {
  const { config, signal } = input;
  const targetConfig = config.targets.find((t) => t.name === target.name);
  const report = emptyReport(target, targetConfig);
  const retention = targetConfig?.retention;
  const skip = whySkipped(targetConfig);
  if (skip !== undefined || !retention) {
    report.result = 'skipped';
    report.skipped = skip ?? 'no retention rules: nothing is pruned';
    return report;
  }
  try {
    const ownership = await checkOwnership(target, config.job, input.hostId, signal);
    const listings = await listCommittedSets(target, config.job, signal);
    if (ownership !== 'owned' && listings.length > 0) {
      if (!input.dryRun) throw new Error(ownership);
      report.warnings.push(`a real prune would refuse this target: ${ownership}`);
    }
    if (input.afterSet !== undefined) {
      const why = whyNotAfter(input.afterSet, listings);
      if (why !== undefined) {
        report.result = 'skipped';
        report.skipped = why;
        return report;
      }
    }
    const tombstones = await readTombstones(target, config.job, signal);
    const candidates = listings.map(candidateOf);
    const decisions = decideRetention(candidates, rulesOf(retention), { timeZone: retention.timeZone });
    const byId = new Map(listings.map((l) => [l.setId, l]));
    report.sets = decisions.map((d) => {
      const candidate = candidates.find((c) => c.setId === d.setId) as RetentionCandidate;
      return {
        setId: d.setId,
        startedAt: candidate.valid ? candidate.startedAt : null,
        valid: candidate.valid,
        suspect: candidate.suspect,
        decision: d.keep ? 'keep' : 'delete',
        reasons: d.reasons,
      };
    });
    const doomed = report.sets.filter((s) => s.decision === 'delete');
    assertNewestKept(target.name, candidates, new Set(doomed.map((s) => s.setId)), input.afterSet);
    report.warnings.push(...needsALook(report.sets, tombstones));
    if (input.dryRun) return report;

    report.finished = await finishInterruptedPrunes(target, config.job, tombstones);
    // Oldest first: an interruption leaves the newest of the doomed sets, the nearest to those kept.
    for (const set of [...doomed].reverse()) {
      signal.throwIfAborted();
      const listing = byId.get(set.setId) as CommittedListing & { parsed: { ok: true } };
      const reason = `retention ${describeRules(retention)}: ${set.reasons.join('; ')}`;
      await deleteSet(target, config.job, listing, reason, input);
      report.tombstones.push(tombstoneKey(config.job, set.setId));
      report.deleted.push(set.setId);
      set.deleted = true;
      input.log.info(`target ${target.name}: deleted set ${set.setId} (${set.reasons.join('; ')})`);
    }
    for (const set of doomed) set.deleted ??= false;
    if (report.deleted.length > 0 || report.finished.length > 0) report.result = 'pruned';
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    for (const set of report.sets) if (set.decision === 'delete') set.deleted ??= false;
    report.result = 'failed';
    report.errors.push(messageOf(error));
  }
  return report;
}

export interface AfterBackupInput extends Omit<PruneInput, 'dryRun' | 'afterSet'> {
  /** The run's set. */
  setId: string;
  /** Targets on which this run committed its set. */
  committedTargets: ReadonlySet<string>;
  /** The run's outcome before retention: retention never runs after a failed run. */
  runStatus: 'success' | 'warning' | 'failure';
}

/**
 * Retention at the end of a backup run, per target: only after a run that committed (success or
 * warning), only where this run's set is committed and not suspect, never on appendOnly targets.
 * Returns a report for every target, skipped ones saying why. Throws only when interrupted.
 */
export async function retentionAfterBackup(input: AfterBackupInput): Promise<PruneTargetReport[]> {
  const reports: PruneTargetReport[] = [];
  for (const target of input.targets) {
    const targetConfig = input.config.targets.find((t) => t.name === target.name);
    const skip =
      whySkipped(targetConfig) ??
      (targetConfig?.retention === undefined
        ? 'no retention rules: nothing is pruned'
        : input.runStatus === 'failure'
          ? 'the run failed: retention never runs after a failed run'
          : !input.committedTargets.has(target.name)
            ? `this run's set ${input.setId} is not committed on this target`
            : undefined);
    if (skip !== undefined) {
      reports.push({ ...emptyReport(target, targetConfig), result: 'skipped', skipped: skip });
      continue;
    }
    reports.push(await pruneTarget(target, { ...input, dryRun: false, afterSet: input.setId }));
  }
  return reports;
}

/** The step a backup run records for a target's retention; none where retention is not configured at all. */
export function retentionStepOf(report: PruneTargetReport):
  | {
      name: 'retention';
      status: 'ok' | 'warning' | 'skipped';
      message: string;
      target: string;
      evidence: Record<string, unknown>;
    }
  | undefined {
  if (report.rules === null && !report.appendOnly) return undefined;
  const kept = report.sets.filter((s) => s.decision === 'keep').length;
  const message =
    report.result === 'skipped'
      ? `retention skipped: ${report.skipped ?? ''}`
      : report.result === 'failed'
        ? `retention failed (the committed set is unaffected): ${report.errors.join('; ')}`
        : report.deleted.length > 0
          ? `retention kept ${kept} set(s), deleted ${report.deleted.length} with tombstones: ${report.deleted.join(', ')}`
          : `retention kept all ${kept} set(s)`;
  return {
    name: 'retention',
    status: report.result === 'skipped' ? 'skipped' : report.result === 'failed' ? 'warning' : 'ok',
    message,
    target: report.target,
    evidence: { deleted: report.deleted, kept, finished: report.finished, errors: report.errors },
  };
}

function emptyReport(target: Target, targetConfig: TargetConfig | undefined): PruneTargetReport {
  const retention = targetConfig?.retention;
  return {
    target: target.name,
    type: target.type,
    where: target.describe(),
    appendOnly: targetConfig?.appendOnly === true,
    result: 'unchanged',
    rules: retention ? rulesOf(retention) : null,
    timeZone: retention?.timeZone ?? null,
    sets: [],
    deleted: [],
    tombstones: [],
    finished: [],
    errors: [],
    warnings: [],
  };
}

/** Tombstone, then manifest, then every other key of the set (temporaries included). */
async function deleteSet(
  target: Target,
  job: string,
  listing: CommittedListing & { parsed: { ok: true } },
  reason: string,
  input: PruneInput,
): Promise<void> {
  const manifest: Manifest = listing.parsed.manifest;
  await writeTombstone(
    target,
    job,
    {
      format: TOMBSTONE_FORMAT,
      setId: listing.setId,
      manifestSha256: listing.parsed.sha256,
      previous: manifest.previous
        ? { setId: manifest.previous.setId, manifestSha256: manifest.previous.manifestSha256 }
        : null,
      reason,
      at: input.now().toISOString(),
    },
    { signal: input.signal, now: input.now },
  );
  await target.remove(manifestKey(job, listing.setId));
  const prefix = setPrefix(job, listing.setId);
  for (const key of await target.list(`${prefix}/`)) await target.remove(key);
}

/**
 * Sets left without manifest.json by an interrupted prune (their tombstone says so) are removed
 * whole. Incomplete sets without a tombstone are a backup's business: its cleanup removes them.
 */
async function finishInterruptedPrunes(
  target: Target,
  job: string,
  tombstones: readonly TombstoneListing[],
): Promise<string[]> {
  const tombstoned = new Set(tombstones.filter((t) => t.parsed.ok).map((t) => t.setId));
  const finished: string[] = [];
  for (const set of groupSets(job, await target.list(`${job}/`))) {
    if (set.hasManifest || !tombstoned.has(set.setId)) continue;
    for (const name of set.objects) await target.remove(`${set.prefix}/${name}`);
    for (const key of set.temporaries) await target.remove(key);
    finished.push(set.setId);
  }
  return finished;
}

/**
 * The safety net under the policy: the newest valid, non-suspect set (by id and by start time) and
 * the set a backup just committed are never deleted. Throws when a decision says otherwise.
 */
export function assertNewestKept(
  targetName: string,
  candidates: readonly RetentionCandidate[],
  deleting: ReadonlySet<string>,
  justCommitted?: string,
): void {
  const counted = candidates.filter((c) => c.valid && !c.suspect);
  const protectedIds = new Set<string>();
  const newestById = counted.reduce<string | undefined>(
    (max, c) => (max === undefined || c.setId > max ? c.setId : max),
    undefined,
  );
  if (newestById !== undefined) protectedIds.add(newestById);
  let newestMs = Number.NEGATIVE_INFINITY;
  let newestByTime: string | undefined;
  for (const c of counted) {
    const ms = Date.parse(c.startedAt);
    if (Number.isFinite(ms) && ms > newestMs) {
      newestMs = ms;
      newestByTime = c.setId;
    }
  }
  if (newestByTime !== undefined) protectedIds.add(newestByTime);
  if (justCommitted !== undefined) protectedIds.add(justCommitted);
  for (const id of protectedIds) {
    if (deleting.has(id)) {
      throw new Error(
        `retention decided to delete set ${id}, the newest verified set on target ${targetName}; ` +
          'nothing was deleted from this target. This is a bug in backproof: please report it with `backproof prune --dry-run --json`',
      );
    }
  }
}

function whySkipped(targetConfig: TargetConfig | undefined): string | undefined {
  if (!targetConfig) return 'not in the config';
  if (targetConfig.appendOnly) {
    return targetConfig.retention
      ? 'appendOnly: never pruned from this host (its retention rules are applied elsewhere)'
      : 'appendOnly: never pruned from this host';
  }
  return undefined;
}

function whyNotAfter(setId: string, listings: readonly CommittedListing[]): string | undefined {
  const listing = listings.find((l) => l.setId === setId);
  if (!listing) return `this run's set ${setId} is not committed on this target`;
  if (!listing.parsed.ok) return `this run's set ${setId} has a manifest that does not validate here`;
  if (listing.parsed.manifest.suspect) return `this run's set ${setId} is suspect: retention waits for a good set`;
  return undefined;
}

function candidateOf(listing: CommittedListing): RetentionCandidate {
  if (!listing.parsed.ok) return { setId: listing.setId, startedAt: '', suspect: false, valid: false };
  const { startedAt, suspect } = listing.parsed.manifest;
  return { setId: listing.setId, startedAt, suspect, valid: true };
}

/** Things a human should look at, which prune leaves alone. */
function needsALook(sets: readonly PruneSetReport[], tombstones: readonly TombstoneListing[]): string[] {
  const warnings: string[] = [];
  const corrupt = sets.filter((s) => !s.valid).map((s) => s.setId);
  if (corrupt.length > 0) {
    warnings.push(
      `set(s) ${corrupt.join(', ')} have a corrupt manifest: never counted or deleted; run \`backproof verify --set all\``,
    );
  }
  const suspect = sets.filter((s) => s.suspect).map((s) => s.setId);
  if (suspect.length > 0) {
    warnings.push(
      `suspect set(s) ${suspect.join(', ')} are kept for inspection and never counted: look at their anomalies`,
    );
  }
  const tombstoned = new Set(tombstones.filter((t) => t.parsed.ok).map((t) => t.setId));
  const revived = sets.filter((s) => s.decision === 'keep' && tombstoned.has(s.setId)).map((s) => s.setId);
  if (revived.length > 0) {
    warnings.push(
      `set(s) ${revived.join(', ')} have a tombstone from an interrupted prune, but the rules now keep them: ` +
        'the sets are intact; remove their tombstones if you want them kept for good',
    );
  }
  const damaged = tombstones.filter((t) => !t.parsed.ok).map((t) => t.key);
  if (damaged.length > 0) warnings.push(`damaged tombstone(s) ${damaged.join(', ')}: inspect them`);
  return warnings;
}

/** `owned`, or why this host may not delete anything there. */
async function checkOwnership(
  target: Target,
  job: string,
  hostId: string | null,
  signal: AbortSignal,
): Promise<'owned' | string> {
  const key = ownerKey(job);
  let owner: Partial<OwnerRecord>;
  try {
    owner = JSON.parse((await readSmallObject(target, key, signal, 1 << 20)).toString('utf8')) as Partial<OwnerRecord>;
  } catch (error) {
    if (target.isNotFound(error)) {
      return `${key} is missing, so the sets there were not written by this host's backups; prune deletes only from targets this host owns`;
    }
    if (error instanceof SyntaxError) return `${key} is not valid JSON; inspect it`;
    throw error;
  }
  if (hostId !== null && owner.hostId === hostId) return 'owned';
  if (hostId === null) {
    return `this host has no host id yet (it never ran a backup), so it owns no target; ${key} names host ${String(owner.host)}`;
  }
  return (
    `job ${job} on this target belongs to host ${String(owner.host)} (id ${String(owner.hostId)}); prune it from that host, ` +
    'or run `backproof backup --take-over` if this server replaces it'
  );
}

/** The keep rules of a target's config, as the policy takes them. */
export function rulesOf(retention: RetentionConfig): RetentionRules {
  const rules: RetentionRules = {};
  for (const name of ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const) {
    const count = retention[name];
    if (count !== undefined) rules[name] = count;
  }
  return rules;
}

/** `{last 3, daily 7, monthly unlimited; UTC}` */
export function describeRules(retention: RetentionConfig): string {
  const rules = Object.entries(rulesOf(retention))
    .filter(([, count]) => count !== 0)
    .map(([name, count]) => `${name} ${count === -1 ? 'unlimited' : count}`);
  return `{${rules.length > 0 ? rules.join(', ') : 'no rules'}; ${retention.timeZone}}`;
}
