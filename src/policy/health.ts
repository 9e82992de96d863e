// Health of a job, as a pure function over what the targets hold and what the state remembers.

export interface TargetHealthInput {
  target: string;
  optional: boolean;
  /** Unset when the target could be read. */
  error?: string;
  /** finishedAt of the newest valid, non-suspect committed set, with its id. */
  newest?: { setId: string; finishedAt: string };
}

export interface TargetHealth {
  target: string;
  optional: boolean;
  healthy: boolean;
  newestSetId: string | null;
  newestFinishedAt: string | null;
  ageMs: number | null;
  rpoMs: number | null;
  problem: string | null;
}

export function judgeTargetHealth(input: TargetHealthInput, nowMs: number, rpoMs: number | undefined): TargetHealth {
  const base = {
    target: input.target,
    optional: input.optional,
    newestSetId: input.newest?.setId ?? null,
    newestFinishedAt: input.newest?.finishedAt ?? null,
    rpoMs: rpoMs ?? null,
  };
  if (input.error) return { ...base, healthy: false, ageMs: null, problem: `cannot read the target: ${input.error}` };
  if (!input.newest)
    return { ...base, healthy: false, ageMs: null, problem: 'no committed set: run `backproof backup`' };
  const finishedMs = Date.parse(input.newest.finishedAt);
  if (Number.isNaN(finishedMs)) {
    return {
      ...base,
      healthy: false,
      ageMs: null,
      problem: `the newest set's finish time is not a date: ${JSON.stringify(input.newest.finishedAt)}`,
    };
  }
  const ageMs = Math.max(0, nowMs - finishedMs);
  if (rpoMs !== undefined && ageMs > rpoMs) {
    return { ...base, healthy: false, ageMs, problem: 'the newest set is older than objectives.rpo' };
  }
  return { ...base, healthy: true, ageMs, problem: null };
}

/** A job is healthy when every required target is; an optional target's trouble is reported but not fatal. */
export function jobHealthy(targets: readonly TargetHealth[]): boolean {
  return targets.every((t) => t.healthy || t.optional);
}

export interface DrillHealthInput {
  at: string;
  status: 'success' | 'warning' | 'failure' | 'abandoned' | null;
  setId: string | null;
  rtoMs: number | null;
}

export interface DrillHealth {
  healthy: boolean;
  last: (DrillHealthInput & { rtoObjectiveMs: number | null }) | null;
  problem: string | null;
}

export interface DrillPolicy {
  /** objectives.rto. */
  rtoObjectiveMs?: number;
  /** The config has a `drill` section: drills are expected, so none at all, or none lately, is a problem. */
  expected: boolean;
  /** drill.maxAge: the newest drill may not be older than this. */
  maxAgeMs?: number;
  nowMs: number;
}

/**
 * The last drill against the RTO objective and its age. A job without a `drill` section is judged on
 * its backups alone (no drill is then not unhealthy); with one, a missing, old, failed or too slow
 * drill is.
 */
export function judgeDrill(last: DrillHealthInput | undefined, policy: DrillPolicy): DrillHealth {
  if (!last) {
    return policy.expected
      ? { healthy: false, last: null, problem: 'no drill has run yet: run `backproof drill` to prove a set restores' }
      : { healthy: true, last: null, problem: null };
  }
  const withObjective = { ...last, rtoObjectiveMs: policy.rtoObjectiveMs ?? null };
  if (last.status === 'failure' || last.status === 'abandoned' || last.status === null) {
    const what = last.status === 'failure' ? 'failed' : 'never finished';
    return {
      healthy: false,
      last: withObjective,
      problem: `the last drill ${what}: run \`backproof drill\` and read what it reports`,
    };
  }
  if (policy.rtoObjectiveMs !== undefined && last.rtoMs !== null && last.rtoMs > policy.rtoObjectiveMs) {
    return { healthy: false, last: withObjective, problem: 'the last drill restored slower than objectives.rto' };
  }
  const atMs = Date.parse(last.at);
  if (policy.expected && policy.maxAgeMs !== undefined && !(policy.nowMs - atMs <= policy.maxAgeMs)) {
    return {
      healthy: false,
      last: withObjective,
      problem: 'the last drill is older than drill.maxAge: is the drill timer running? (`backproof schedule`)',
    };
  }
  return { healthy: true, last: withObjective, problem: null };
}

/**
 * Whether this host could delete every copy: true when no target is append-only (credentials that
 * can write can delete). A stolen or compromised server could then destroy every backup.
 */
export function everyCopyDeletable(targets: readonly { appendOnly?: boolean | undefined }[]): boolean {
  return targets.every((t) => t.appendOnly !== true);
}
