// Tombstones (`<job>/tombstones/<setId>.json`): prune writes one before it deletes a set, so
// `verify --set all` can tell a gap in the hash chain that retention made from one nobody can
// explain. A tombstone keeps the deleted set's own `previous`, so the chain can be followed
// through several pruned sets in a row. Parsing never throws: a damaged tombstone is a problem
// named by its key, and it explains no gap.
import { z } from 'zod';
import { readSmallObject, writeSmallObject } from '../core/target-session.js';
import { messageOf, TargetError } from '../lib/errors.js';
import type { Target } from '../targets/types.js';
import { isSetId, TEMP_MARKER, tombstoneKey, tombstonePrefix } from './layout.js';

export const TOMBSTONE_FORMAT = 'backproof-tombstone/1';

/** Tombstones are a few hundred bytes; anything much larger is not one of ours. */
const TOMBSTONE_LIMIT = 1 << 20;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');
const setIdText = z.string().refine(isSetId, 'must be a set id like 20251104T030000Z-k3x9qa');
const linkSchema = z.looseObject({ setId: setIdText, manifestSha256: sha256Hex });

const tombstoneSchema = z
  .looseObject({
    format: z.literal(TOMBSTONE_FORMAT),
    setId: setIdText,
    manifestSha256: sha256Hex,
    previous: linkSchema.nullable(),
    reason: z.string().min(1),
    at: z.iso.datetime(),
  })
  .superRefine((tombstone, ctx) => {
    // Set ids sort by time; a link to a newer set would make the chain go in circles.
    if (tombstone.previous && tombstone.previous.setId >= tombstone.setId) {
      ctx.addIssue({
        code: 'custom',
        path: ['previous', 'setId'],
        message: `must name an older set than ${tombstone.setId}`,
      });
    }
  });

export type Tombstone = z.output<typeof tombstoneSchema>;
export type TombstoneLink = z.output<typeof linkSchema>;

export type ParsedTombstone = { ok: true; tombstone: Tombstone } | { ok: false; problems: string[] };

export interface TombstoneListing {
  key: string;
  /** The set the file name says it is for. */
  setId: string;
  parsed: ParsedTombstone;
}

export function serializeTombstone(tombstone: Tombstone): Buffer {
  return Buffer.from(`${JSON.stringify(tombstone, null, 2)}\n`, 'utf8');
}

/** Parses and validates tombstone bytes. `expectedSetId` (from the file name), when given, must match. */
export function parseTombstone(bytes: Buffer, expectedSetId?: string): ParsedTombstone {
  let data: unknown;
  try {
    data = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    return { ok: false, problems: [`not JSON: ${(error as Error).message}`] };
  }
  const result = tombstoneSchema.safeParse(data);
  if (!result.success) {
    return {
      ok: false,
      problems: result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`),
    };
  }
  if (expectedSetId !== undefined && result.data.setId !== expectedSetId) {
    return { ok: false, problems: [`setId is ${result.data.setId}, but the file is named for ${expectedSetId}`] };
  }
  return { ok: true, tombstone: result.data };
}

/**
 * Every tombstone of `job` on the target, oldest set first. Unfinished writes (temporary names),
 * subdirectories and files not ending in `.json` are not tombstones and are skipped; a `.json` file
 * not named after a set id is listed as damaged.
 */
export async function readTombstones(target: Target, job: string, signal: AbortSignal): Promise<TombstoneListing[]> {
  const prefix = tombstonePrefix(job);
  const listings: TombstoneListing[] = [];
  for (const key of await target.list(prefix)) {
    const name = key.slice(prefix.length);
    if (name.includes('/') || name.includes(TEMP_MARKER) || !name.endsWith('.json')) continue;
    const setId = name.slice(0, -'.json'.length);
    if (!isSetId(setId)) {
      listings.push({ key, setId, parsed: { ok: false, problems: [`${name} is not named <setId>.json`] } });
      continue;
    }
    let bytes: Buffer;
    try {
      bytes = await readSmallObject(target, key, signal, TOMBSTONE_LIMIT);
    } catch (error) {
      if (target.isNotFound(error)) continue; // removed since the listing
      if (signal.aborted) throw signal.reason;
      // Too large, or refused: either way it explains nothing, and verify names it.
      listings.push({ key, setId, parsed: { ok: false, problems: [`cannot be read: ${messageOf(error)}`] } });
      continue;
    }
    listings.push({ key, setId, parsed: parseTombstone(bytes, setId) });
  }
  return listings.sort((a, b) => (a.setId < b.setId ? -1 : a.setId > b.setId ? 1 : 0));
}

/**
 * Writes the tombstone of a set about to be deleted, proven like any object (temporary name,
 * size and hash checked, rename). Idempotent for a prune that is run again after an interruption:
 * an existing tombstone for the same set, manifest and previous link is kept ('exists'); one that
 * says something else is refused (permanent TargetError), because it would rewrite history.
 */
export async function writeTombstone(
  target: Target,
  job: string,
  tombstone: Tombstone,
  options: { signal: AbortSignal; now: () => Date },
): Promise<'written' | 'exists'> {
  const checked = tombstoneSchema.safeParse(tombstone);
  if (!checked.success) {
    throw new Error(
      `refusing to write an invalid tombstone for ${JSON.stringify(tombstone.setId)}: ` +
        checked.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; '),
    );
  }
  const key = tombstoneKey(job, tombstone.setId);
  const existing = await readExisting(target, key, options.signal);
  if (existing !== undefined) {
    const parsed = parseTombstone(existing, tombstone.setId);
    if (parsed.ok && sameLinks(parsed.tombstone, tombstone)) return 'exists';
    throw new TargetError(
      target.name,
      `${key} already exists and says something else (${
        parsed.ok ? `manifest ${parsed.tombstone.manifestSha256}` : `damaged: ${parsed.problems.join('; ')}`
      }); inspect it before pruning set ${tombstone.setId} again`,
      { permanent: true },
    );
  }
  const bytes = serializeTombstone(tombstone);
  await writeSmallObject(target, key, `${tombstone.setId}.json`, bytes, options.signal, options.now);
  return 'written';
}

async function readExisting(target: Target, key: string, signal: AbortSignal): Promise<Buffer | undefined> {
  try {
    return await readSmallObject(target, key, signal, TOMBSTONE_LIMIT);
  } catch (error) {
    if (target.isNotFound(error)) return undefined;
    throw error;
  }
}

function sameLinks(a: Tombstone, b: Tombstone): boolean {
  return (
    a.setId === b.setId &&
    a.manifestSha256 === b.manifestSha256 &&
    (a.previous?.setId ?? null) === (b.previous?.setId ?? null) &&
    (a.previous?.manifestSha256 ?? null) === (b.previous?.manifestSha256 ?? null)
  );
}
