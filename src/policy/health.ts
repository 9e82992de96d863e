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

/**
 * The last drill against the RTO objective. No drill yet is not unhealthy by itself (a job without
 * drills configured is judged on its backups); a failed drill, or one over the RTO, is.
 */
export function judgeDrill(last: DrillHealthInput | undefined, rtoObjectiveMs: number | undefined): DrillHealth {
  if (!last) return { healthy: true, last: null, problem: null };
  const withObjective = { ...last, rtoObjectiveMs: rtoObjectiveMs ?? null };
  if (last.status === 'failure' || last.status === 'abandoned' || last.status === null) {
    const what = last.status === 'failure' ? 'failed' : 'never finished';
    return {
      healthy: false,
      last: withObjective,
      problem: `the last drill ${what}: run \`backproof drill\` and read what it reports`,
    };
  }
  if (rtoObjectiveMs !== undefined && last.rtoMs !== null && last.rtoMs > rtoObjectiveMs) {
    return { healthy: false, last: withObjective, problem: 'the last drill restored slower than objectives.rto' };
  }
  return { healthy: true, last: withObjective, problem: null };
}
