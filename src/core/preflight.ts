// Preflight: everything that can be checked before a byte is written. Free space is judged against an
// estimate (the last committed run's size plus 50%, or on the first run the sources' raw size), by an
// absolute floor and a percentage, on every local filesystem the run writes to.
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { formatBytes } from '../lib/units.js';

export interface FreeSpaceRule {
  /** Bytes that must remain free after the run. */
  minFreeBytes: number;
  /** Basis points of the filesystem that must remain free after the run. */
  minFreeBasisPoints: number;
}

export interface FreeSpaceVerdict {
  ok: boolean;
  message: string;
  evidence: {
    path: string;
    freeBytes: number;
    totalBytes: number;
    estimateBytes: number;
    minFreeBytes: number;
    minFreeBasisPoints: number;
  };
}

/** Pure: does `estimateBytes` fit on a filesystem with `freeBytes` of `totalBytes`, leaving the rule's floor? */
export function judgeFreeSpace(
  where: string,
  path: string,
  space: { freeBytes: number; totalBytes: number },
  estimateBytes: number,
  rule: FreeSpaceRule,
): FreeSpaceVerdict {
  const evidence = { path, ...space, estimateBytes, ...rule };
  const after = BigInt(space.freeBytes) - BigInt(estimateBytes);
  const floorOk = after >= BigInt(rule.minFreeBytes);
  // after / total >= bp / 10000, in integers (no floats, no overflow).
  const percentOk = after * 10000n >= BigInt(rule.minFreeBasisPoints) * BigInt(space.totalBytes);
  const need = `this run needs about ${formatBytes(estimateBytes)} and must leave at least ${formatBytes(rule.minFreeBytes)} and ${formatBasisPoints(rule.minFreeBasisPoints)} free`;
  if (floorOk && percentOk) {
    return { ok: true, evidence, message: `${where}: ${formatBytes(space.freeBytes)} free at ${path}; ${need}` };
  }
  return {
    ok: false,
    evidence,
    message:
      `${where}: only ${formatBytes(space.freeBytes)} free of ${formatBytes(space.totalBytes)} at ${path}; ${need}. ` +
      'Nothing was written. Free space there, or lower checks.minFree if the floor is too strict',
  };
}

export function formatBasisPoints(bp: number): string {
  const whole = Math.trunc(bp / 100);
  const rest = bp % 100;
  return rest === 0 ? `${whole}%` : `${whole}.${String(rest).padStart(2, '0').replace(/0$/, '')}%`;
}

/** Free space of the filesystem holding `path` (or its nearest existing parent). */
export async function freeSpaceAt(path: string): Promise<{ freeBytes: number; totalBytes: number; path: string }> {
  let current = path;
  for (;;) {
    try {
      const info = await statfs(current);
      return { freeBytes: info.bavail * info.bsize, totalBytes: info.blocks * info.bsize, path: current };
    } catch (error) {
      const parent = dirname(current);
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || parent === current) throw error;
      current = parent;
    }
  }
}

/** The estimate of the design: the last committed run's stored size plus 50%, or the raw size on a first run. */
export function estimateRunBytes(lastCommittedBytes: number | undefined, rawEstimate: number): number {
  if (lastCommittedBytes === undefined) return rawEstimate;
  return lastCommittedBytes + Math.ceil(lastCommittedBytes / 2);
}

/**
 * Whether preflight must measure a source's raw size (for a files source: walk its whole tree). On a
 * first run it is the estimate. Once a committed run exists, the estimate comes from history and
 * the walk is skipped, except where a raw size is judged on its own: a sqlite source copies its
 * database into scratch space first. A dry run shows every source's raw size.
 */
export function needsRawEstimate(sourceType: string, hasHistory: boolean, dryRun: boolean): boolean {
  return !hasHistory || dryRun || sourceType === 'sqlite';
}
