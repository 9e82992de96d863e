// The last two steps of every object write, on every target: prove the stored bytes, then give them
// their final name (when they were written under a temporary one). Nothing else mints a proof.
import type { PutResult, Target } from '../targets/types.js';
import { type VerifiedObject, verifiedObject } from './evidence.js';

/** `put` is what the target's `put` returned: a proof it took while writing spares a second read. */
export async function proveAndPlace(
  target: Target,
  written: string,
  key: string,
  name: string,
  expected: { bytes: number; sha256: string },
  signal: AbortSignal,
  now: () => Date,
  put: PutResult = {},
): Promise<VerifiedObject> {
  const actual = put.verified ?? (await target.verifyObject(written, { signal }));
  const proof = verifiedObject(
    target.name,
    name,
    expected,
    actual,
    actual.level ?? target.capabilities.verification,
    now().toISOString(),
  );
  if (written !== key) {
    if (!target.rename) throw new Error(`target ${target.name} declares atomicRename but has no rename`);
    await target.rename(written, key);
  }
  return proof;
}
