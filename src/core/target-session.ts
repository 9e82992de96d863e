// One target within one run: claim ownership, clean what broken runs left, find the chain head,
// and finally commit (or discard) this run's set. Everything here runs under the job lock.
import { Readable } from 'node:stream';
import { TargetError } from '../lib/errors.js';
import { groupSets, manifestKey, ownerKey, setPrefix, TEMP_MARKER, tempKey } from '../set/layout.js';
import { type Manifest, parseManifest, serializeManifest, sha256Of } from '../set/manifest.js';
import type { Target } from '../targets/types.js';
import { type CommittedSet, committedSet, type VerifiedObject } from './evidence.js';
import { proveAndPlace } from './prove.js';

export interface OwnerRecord {
  format: 'backproof-owner/1';
  job: string;
  hostId: string;
  host: string;
  createdAt: string;
  takenOverAt?: string;
}

export interface ChainHead {
  setId: string;
  manifestSha256: string;
}

/** Reads a whole (small) object. */
export async function readSmallObject(
  target: Target,
  key: string,
  signal: AbortSignal,
  limit = 64 << 20,
): Promise<Buffer> {
  const stream = await target.get(key, { signal });
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      stream.destroy();
      throw new TargetError(target.name, `${key} is larger than ${limit} bytes; it is not what backproof wrote`, {
        permanent: true,
      });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Writes small bytes the same way as any object: temporary name, proof of size and hash, rename. */
export async function writeSmallObject(
  target: Target,
  key: string,
  name: string,
  bytes: Buffer,
  signal: AbortSignal,
  now: () => Date,
): Promise<VerifiedObject> {
  const written = target.capabilities.atomicRename ? tempKey(key) : key;
  try {
    const put = await target.put(written, Readable.from([bytes]), { signal });
    return await proveAndPlace(
      target,
      written,
      key,
      name,
      { bytes: bytes.length, sha256: sha256Of(bytes) },
      signal,
      now,
      put,
    );
  } catch (error) {
    if (written !== key) await target.remove(written).catch(() => {});
    throw error;
  }
}

/**
 * Makes sure this host owns the job on the target: creates the owner file on first use; refuses
 * (permanent TargetError) when another host owns it, unless `takeOver`.
 */
export async function claimOwnership(
  target: Target,
  owner: Omit<OwnerRecord, 'format' | 'createdAt'>,
  options: { takeOver: boolean; signal: AbortSignal; now: () => Date },
): Promise<'created' | 'owned' | 'taken-over'> {
  const key = ownerKey(owner.job);
  let existing: OwnerRecord | undefined;
  try {
    const parsed = JSON.parse((await readSmallObject(target, key, options.signal)).toString('utf8')) as OwnerRecord;
    existing = parsed;
  } catch (error) {
    if (!target.isNotFound(error)) {
      if (error instanceof SyntaxError) {
        throw new TargetError(
          target.name,
          `${key} is not valid JSON; inspect it, then remove it to let this host claim the job`,
          {
            permanent: true,
          },
        );
      }
      throw error;
    }
  }
  if (existing && existing.hostId === owner.hostId) return 'owned';
  if (existing && !options.takeOver) {
    throw new TargetError(
      target.name,
      `job ${owner.job} on this target belongs to host ${existing.host} (id ${existing.hostId}, since ${existing.createdAt}); ` +
        'this host writes nothing there. If this server replaces that one, run `backproof backup --take-over`; ' +
        'if both are live, give one of them another job name',
      { permanent: true },
    );
  }
  const now = options.now().toISOString();
  const record: OwnerRecord = {
    format: 'backproof-owner/1',
    ...owner,
    createdAt: existing ? existing.createdAt : now,
    ...(existing ? { takenOverAt: now } : {}),
  };
  const bytes = Buffer.from(`${JSON.stringify(record, null, 2)}\n`);
  if (existing) await target.remove(key);
  await writeSmallObject(target, key, 'backproof.json', bytes, options.signal, options.now);
  return existing ? 'taken-over' : 'created';
}

export interface CleanupResult {
  /** Sets without a manifest, removed whole. */
  removedSets: string[];
  /** Temporary keys removed (inside committed sets or loose under the job). */
  removedTemporaries: number;
}

/** Removes incomplete sets and temporaries. Only under the job lock, after ownership is established. */
export async function removeIncompleteSets(target: Target, job: string, keepSetId?: string): Promise<CleanupResult> {
  const keys = await target.list(`${job}/`);
  const result: CleanupResult = { removedSets: [], removedTemporaries: 0 };
  for (const set of groupSets(job, keys)) {
    if (set.setId === keepSetId) continue;
    if (!set.hasManifest) {
      for (const name of set.objects) await target.remove(`${set.prefix}/${name}`);
      for (const key of set.temporaries) await target.remove(key);
      result.removedSets.push(set.setId);
    } else {
      for (const key of set.temporaries) await target.remove(key);
      result.removedTemporaries += set.temporaries.length;
    }
  }
  if (target.abortUnfinishedUploads) result.removedTemporaries += await target.abortUnfinishedUploads(`${job}/`);
  // Loose temporaries (owner file writes, probes) directly under the job.
  for (const key of keys) {
    const rest = key.slice(job.length + 1);
    if (!rest.includes('/') && rest.includes(TEMP_MARKER)) {
      await target.remove(key);
      result.removedTemporaries += 1;
    }
  }
  return result;
}

export interface CommittedListing {
  setId: string;
  manifestKey: string;
  parsed: ReturnType<typeof parseManifest>;
}

/** Committed sets on a target (those with a manifest), newest first, manifests read and validated. */
export async function listCommittedSets(target: Target, job: string, signal: AbortSignal): Promise<CommittedListing[]> {
  const keys = await target.list(`${job}/`);
  const sets = groupSets(job, keys).filter((s) => s.hasManifest);
  const listings: CommittedListing[] = [];
  for (const set of sets) {
    const key = manifestKey(job, set.setId);
    let parsed: ReturnType<typeof parseManifest>;
    try {
      parsed = parseManifest(await readSmallObject(target, key, signal), set.setId);
    } catch (error) {
      if (!target.isNotFound(error)) throw error;
      continue;
    }
    listings.push({ setId: set.setId, manifestKey: key, parsed });
  }
  return listings;
}

/** The newest committed set whose manifest is valid: what the next set's `previous` points at. */
export function chainHeadOf(listings: readonly CommittedListing[]): ChainHead | null {
  for (const listing of listings) {
    if (listing.parsed.ok) return { setId: listing.setId, manifestSha256: listing.parsed.sha256 };
  }
  return null;
}

/** Writes the manifest last, proves it, and returns the committed set. */
export async function commitManifest(
  target: Target,
  manifest: Manifest,
  objects: readonly VerifiedObject[],
  signal: AbortSignal,
  now: () => Date,
): Promise<CommittedSet> {
  const bytes = serializeManifest(manifest);
  const proof = await writeSmallObject(
    target,
    manifestKey(manifest.job, manifest.setId),
    'manifest.json',
    bytes,
    signal,
    now,
  );
  return committedSet({
    target: target.name,
    setId: manifest.setId,
    manifest: proof,
    manifestListed: manifest.objects,
    objects,
  });
}

/** Removes everything this run wrote for a set that will not be committed on this target. */
export async function discardSet(target: Target, job: string, setId: string): Promise<void> {
  const prefix = setPrefix(job, setId);
  const keys = await target.list(`${prefix}/`);
  for (const key of keys) await target.remove(key);
}
