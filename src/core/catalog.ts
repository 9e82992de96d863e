// What exists on the targets: committed sets read from each target (the source of truth), newest first.
import type { JobConfig } from '../config/schema.js';
import { messageOf, UsageError } from '../lib/errors.js';
import { createTarget } from '../targets/index.js';
import type { Target } from '../targets/types.js';
import { listCommittedSets } from './target-session.js';

export interface SetSummary {
  setId: string;
  /** false: the manifest is corrupt; `problems` says why. Such a set is never restored or counted. */
  valid: boolean;
  startedAt?: string;
  finishedAt?: string;
  host?: string;
  bytes?: number;
  rawBytes?: number;
  components?: string[];
  suspect?: boolean;
  /** The age public keys the set was encrypted for; absent when it is not encrypted. */
  recipients?: string[];
  manifestSha256: string;
  previous?: string | null;
  problems?: string[];
}

export interface TargetCatalog {
  target: string;
  type: string;
  where: string;
  optional: boolean;
  /** Set when the target could not be read. */
  error?: string;
  sets: SetSummary[];
}

export function selectTargets(config: JobConfig, name: string | undefined, injected?: Target[]): Target[] {
  const all = injected ?? config.targets.map((t) => createTarget(t));
  if (name === undefined) return all;
  const chosen = all.filter((t) => t.name === name);
  if (chosen.length === 0) {
    throw new UsageError(
      `no target named ${JSON.stringify(name)}; the config has: ${all.map((t) => t.name).join(', ')}`,
    );
  }
  return chosen;
}

export async function readCatalog(config: JobConfig, targets: Target[], signal: AbortSignal): Promise<TargetCatalog[]> {
  const catalogs: TargetCatalog[] = [];
  for (const target of targets) {
    const catalog: TargetCatalog = {
      target: target.name,
      type: target.type,
      where: target.describe(),
      optional: target.optional,
      sets: [],
    };
    try {
      for (const listing of await listCommittedSets(target, config.job, signal)) {
        if (!listing.parsed.ok) {
          catalog.sets.push({
            setId: listing.setId,
            valid: false,
            manifestSha256: listing.parsed.sha256,
            problems: listing.parsed.problems,
          });
          continue;
        }
        const m = listing.parsed.manifest;
        catalog.sets.push({
          setId: listing.setId,
          valid: true,
          startedAt: m.startedAt,
          finishedAt: m.finishedAt,
          host: m.host,
          bytes: m.objects.reduce((sum, o) => sum + o.bytes, 0),
          rawBytes: m.components.reduce((sum, c) => sum + c.rawBytes, 0),
          components: m.components.map((c) => c.name),
          suspect: m.suspect,
          ...(m.encryption ? { recipients: m.encryption.recipients } : {}),
          manifestSha256: listing.parsed.sha256,
          previous: m.previous?.setId ?? null,
        });
      }
    } catch (error) {
      catalog.error = messageOf(error);
    } finally {
      await target.close().catch(() => {});
    }
    catalogs.push(catalog);
  }
  return catalogs;
}
