// Evidence and the run's outcome. A `success` can only be built from verification results: a
// VerifiedObject is minted only by `verifiedObject()` after a target proved size and SHA-256, a
// CommittedSet only by `committedSet()` from verified objects plus a verified manifest, and a
// RunOutcome only by `decideOutcome()`, which needs a CommittedSet for every required target and
// turns the anomaly check's findings into failures (failure level) and warnings (warning level).
import type { Finding } from '../policy/anomaly.js';
import type { VerificationLevel } from '../targets/types.js';

declare const verifiedBrand: unique symbol;
declare const committedBrand: unique symbol;
declare const outcomeBrand: unique symbol;

export interface VerifiedObject {
  readonly target: string;
  readonly name: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly level: VerificationLevel;
  readonly verifiedAt: string;
  readonly [verifiedBrand]: true;
}

export interface CommittedSet {
  readonly target: string;
  readonly setId: string;
  readonly manifestSha256: string;
  readonly objects: readonly VerifiedObject[];
  readonly committedAt: string;
  readonly [committedBrand]: true;
}

export type NonEmpty<T> = readonly [T, ...T[]];

/** Something required that is not proven. */
export interface Failure {
  step: string;
  message: string;
  target?: string;
  component?: string;
  /** Expected and actual values, the tool's stderr tail… Never a secret. */
  evidence?: Record<string, unknown>;
}

export type WarningFinding = Finding & { level: 'warning' };

export type RunOutcome = (
  | {
      status: 'success';
      committed: NonEmpty<CommittedSet>;
      warnings: readonly [];
      failures: readonly [];
      anomalies: readonly [];
    }
  | {
      status: 'warning';
      committed: NonEmpty<CommittedSet>;
      warnings: NonEmpty<string>;
      failures: readonly Failure[];
      anomalies: readonly WarningFinding[];
    }
  | {
      status: 'failure';
      committed: readonly CommittedSet[];
      warnings: readonly string[];
      failures: NonEmpty<Failure>;
      anomalies: readonly Finding[];
    }
) & { readonly [outcomeBrand]: true };

export type RunStatus = RunOutcome['status'];

/** Mints the proof that `target` holds `name` with exactly `expected` bytes and hash. Throws on any mismatch. */
export function verifiedObject(
  target: string,
  name: string,
  expected: { bytes: number; sha256: string },
  actual: { bytes: number; sha256: string },
  level: VerificationLevel,
  verifiedAt: string,
): VerifiedObject {
  if (actual.bytes !== expected.bytes || actual.sha256 !== expected.sha256) {
    throw new VerificationMismatch(target, name, expected, actual);
  }
  return { target, name, bytes: actual.bytes, sha256: actual.sha256, level, verifiedAt } as VerifiedObject;
}

export class VerificationMismatch extends Error {
  override readonly name = 'VerificationMismatch';
  readonly evidence: Record<string, unknown>;
  constructor(
    target: string,
    object: string,
    expected: { bytes: number; sha256: string },
    actual: { bytes: number; sha256: string },
  ) {
    super(
      `target ${target}: ${object} does not match what was written: expected ${expected.bytes} bytes, ` +
        `sha256 ${expected.sha256}; the target holds ${actual.bytes} bytes, sha256 ${actual.sha256}`,
    );
    this.evidence = { expected, actual };
  }
}

/** A set is committed when its manifest is verified on the target and lists exactly the verified objects. */
export function committedSet(input: {
  target: string;
  setId: string;
  manifest: VerifiedObject;
  manifestListed: readonly { name: string; bytes: number; sha256: string }[];
  objects: readonly VerifiedObject[];
}): CommittedSet {
  const { target, setId, manifest, manifestListed, objects } = input;
  if (manifest.target !== target) throw new Error('manifest verified on another target');
  const proven = new Map(objects.filter((o) => o.target === target).map((o) => [o.name, o]));
  for (const listed of manifestListed) {
    const object = proven.get(listed.name);
    if (!object || object.bytes !== listed.bytes || object.sha256 !== listed.sha256) {
      throw new Error(`manifest of ${setId} on ${target} lists ${listed.name}, which was not verified there`);
    }
  }
  if (proven.size !== manifestListed.length)
    throw new Error(`manifest of ${setId} on ${target} omits verified objects`);
  return {
    target,
    setId,
    manifestSha256: manifest.sha256,
    objects: [...objects.filter((o) => o.target === target), manifest],
    committedAt: manifest.verifiedAt,
  } as unknown as CommittedSet;
}

export interface OutcomeInput {
  requiredTargets: readonly string[];
  committed: readonly CommittedSet[];
  /** Failures of required things. */
  failures: readonly Failure[];
  /** Failures of optional targets: they make a warning, not a failure. */
  optionalFailures: readonly Failure[];
  warnings: readonly string[];
  /**
   * What the anomaly check found in this run's set (empty when it did not run). A failure-level
   * finding fails the run although the set is committed (as suspect); a warning-level one warns.
   */
  anomalies: readonly Finding[];
}

/** The only way to get a RunOutcome. */
export function decideOutcome(input: OutcomeInput): RunOutcome {
  const failures: Failure[] = [...input.failures];
  const committedTargets = new Set(input.committed.map((c) => c.target));
  // A required target without a set needs a reason: its own failure, or one of the whole run (a source).
  // A failed preflight stops the whole run before anything is written, whichever target it named.
  const runFailed = failures.some((f) => f.target === undefined || f.step.startsWith('preflight'));
  for (const target of input.requiredTargets) {
    if (!committedTargets.has(target) && !runFailed && !failures.some((f) => f.target === target)) {
      failures.push({ step: 'commit', target, message: `target ${target} holds no committed set from this run` });
    }
  }
  if (input.committed.length === 0 && failures.length === 0) {
    failures.push({ step: 'commit', message: 'no target holds a committed set from this run' });
  }
  const anomalyWarnings: WarningFinding[] = [];
  for (const finding of input.anomalies) {
    if (finding.level === 'failure') failures.push(anomalyFailure(finding));
    else anomalyWarnings.push({ ...finding, level: 'warning' });
  }
  const warnings = [
    ...input.warnings,
    ...anomalyWarnings.map(anomalyWarning),
    ...input.optionalFailures.map((f) => `optional ${f.message}`),
  ];
  const [firstFailure, ...moreFailures] = failures;
  if (firstFailure) {
    return {
      status: 'failure',
      committed: input.committed,
      warnings,
      failures: [firstFailure, ...moreFailures],
      anomalies: input.anomalies,
    } as unknown as RunOutcome;
  }
  const [firstSet, ...moreSets] = input.committed;
  if (!firstSet) throw new Error('unreachable: no committed set and no failure');
  const [firstWarning, ...moreWarnings] = warnings;
  if (firstWarning) {
    return {
      status: 'warning',
      committed: [firstSet, ...moreSets],
      warnings: [firstWarning, ...moreWarnings],
      failures: input.optionalFailures,
      anomalies: anomalyWarnings,
    } as unknown as RunOutcome;
  }
  return {
    status: 'success',
    committed: [firstSet, ...moreSets],
    warnings: [],
    failures: [],
    anomalies: [],
  } as unknown as RunOutcome;
}

/** A failure-level finding: the set is a faithful copy, but nobody should rely on it unchecked. */
function anomalyFailure(finding: Finding): Failure {
  return {
    step: 'anomaly',
    component: finding.component,
    message:
      `${finding.message}. The set is committed but marked suspect: \`restore latest\` and retention pass over it. ` +
      `Check the data; once a human has confirmed the change is expected, run \`backproof ack ${finding.id}\``,
    evidence: {
      finding: finding.id,
      metric: finding.metric,
      ...(finding.table === undefined ? {} : { table: finding.table }),
      baseline: finding.baseline,
      value: finding.value,
      changeBp: finding.changeBp,
      baselineSets: finding.baselineSets,
    },
  };
}

function anomalyWarning(finding: Finding): string {
  return `${finding.message}; if this is expected, run \`backproof ack ${finding.id}\``;
}
