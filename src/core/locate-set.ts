// Finds the set a restore or drill asked for (`latest` or an id) on the targets, which are the truth:
// no state database needed, so a new server with only the config can restore.
import type { JobConfig } from '../config/schema.js';
import { messageOf, OperationError, UsageError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { isSetId } from '../set/layout.js';
import type { Manifest } from '../set/manifest.js';
import type { Target } from '../targets/types.js';
import { listCommittedSets } from './target-session.js';

export interface SetHolder {
  target: Target;
  manifestSha256: string;
}

export interface LocatedSet {
  setId: string;
  /** The manifest as the first holder has it (objects are identical on every holder). */
  manifest: Manifest;
  /** Targets holding the set with a valid manifest, in config order: the first is read first. */
  holders: SetHolder[];
  /** Newer suspect sets that `latest` passed over (name one explicitly to restore it). */
  passedOverSuspect: string[];
  /** Targets that could not be read, with why. */
  unreadable: string[];
  /** Every committed set id seen on the targets (a drill's leftovers are recognised by them). */
  allSetIds: string[];
}

export class SetNotFoundError extends OperationError {
  override name = 'SetNotFoundError';
}

/**
 * `wanted` is `latest` (the newest valid, non-suspect set on any of `targets`) or a set id.
 * Corrupt manifests are never chosen. Throws SetNotFoundError naming what exists instead.
 */
export async function locateSet(
  config: JobConfig,
  targets: readonly Target[],
  wanted: string,
  signal: AbortSignal,
  log: Logger,
): Promise<LocatedSet> {
  if (wanted !== 'latest' && !isSetId(wanted)) {
    throw new UsageError(
      `${JSON.stringify(wanted)} is not a set id (like 20251104T030000Z-k3x9qa) or "latest"; ` +
        '`backproof list` shows the sets',
    );
  }
  const found = new Map<string, { manifest: Manifest; holders: SetHolder[] }>();
  const corrupt = new Map<string, string[]>();
  const unreadable: string[] = [];
  for (const target of targets) {
    try {
      for (const listing of await listCommittedSets(target, config.job, signal)) {
        if (!listing.parsed.ok) {
          corrupt.set(listing.setId, [...(corrupt.get(listing.setId) ?? []), target.name]);
          continue;
        }
        const entry = found.get(listing.setId) ?? { manifest: listing.parsed.manifest, holders: [] };
        entry.holders.push({ target, manifestSha256: listing.parsed.sha256 });
        found.set(listing.setId, entry);
      }
    } catch (error) {
      signal.throwIfAborted();
      const why = `${target.name} (${target.describe()}): ${messageOf(error)}`;
      unreadable.push(why);
      log.warn(`cannot read target ${why}; trying the others`);
    }
  }

  // By start time (milliseconds), then id: ids made in the same second do not sort by time.
  const startOf = (id: string) => Date.parse(found.get(id)?.manifest.startedAt ?? '') || 0;
  const newestFirst = [...found.keys()].sort((a, b) => startOf(b) - startOf(a) || (a < b ? 1 : a > b ? -1 : 0));
  let setId: string | undefined;
  const passedOverSuspect: string[] = [];
  if (wanted === 'latest') {
    for (const id of newestFirst) {
      if (found.get(id)?.manifest.suspect) passedOverSuspect.push(id);
      else {
        setId = id;
        break;
      }
    }
  } else if (found.has(wanted)) {
    setId = wanted;
  }
  const entry = setId === undefined ? undefined : found.get(setId);
  if (setId === undefined || entry === undefined) {
    throw new SetNotFoundError(notFoundMessage(wanted, targets, newestFirst, corrupt, unreadable, passedOverSuspect));
  }
  return {
    setId,
    manifest: entry.manifest,
    holders: entry.holders,
    passedOverSuspect,
    unreadable,
    allSetIds: [...new Set([...newestFirst, ...corrupt.keys()])],
  };
}

function notFoundMessage(
  wanted: string,
  targets: readonly Target[],
  newestFirst: string[],
  corrupt: Map<string, string[]>,
  unreadable: string[],
  suspect: string[],
): string {
  const where = targets.map((t) => t.name).join(', ');
  const lines = [
    wanted === 'latest'
      ? `no committed, valid, non-suspect set on ${where}`
      : `set ${wanted} is not committed on ${where}`,
  ];
  const damaged = corrupt.get(wanted);
  if (damaged)
    lines.push(`its manifest is corrupt on ${damaged.join(', ')} (see \`backproof verify --set ${wanted}\`)`);
  if (suspect.length > 0) lines.push(`suspect sets passed over: ${suspect.join(', ')} (name one with --set to use it)`);
  if (unreadable.length > 0) lines.push(`unreadable targets: ${unreadable.join('; ')}`);
  if (newestFirst.length > 0) lines.push(`newest sets there: ${newestFirst.slice(0, 5).join(', ')}`);
  else lines.push('no set at all was found; check the job name and the targets in the config');
  return lines.join('\n');
}
