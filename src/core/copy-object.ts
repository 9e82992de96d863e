// Staged fan-out: copies a verified object from the staging target (a local disk) to another target,
// proves it there, and retries the whole copy on transient errors, since the staged copy can be
// read again from the start.

import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type RetryPolicy, withRetries } from '../lib/retry.js';
import { type Measured, MeasureStream } from '../pipeline/measure.js';
import { tempKey } from '../set/layout.js';
import type { Target } from '../targets/types.js';
import { VerificationMismatch, type VerifiedObject } from './evidence.js';
import { proveAndPlace } from './prove.js';

export interface CopyObjectInput {
  from: Target;
  to: Target;
  key: string;
  name: string;
  /** Size and SHA-256 measured when the object was produced: both copies must match it. */
  expected: Measured;
  signal: AbortSignal;
  now: () => Date;
  onBytes: (bytes: number) => void;
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  policy?: RetryPolicy;
}

export async function copyVerifiedObject(input: CopyObjectInput): Promise<VerifiedObject> {
  const { from, to, key, name, expected, signal } = input;
  return withRetries(
    async () => {
      const written = to.capabilities.atomicRename ? tempKey(key) : key;
      try {
        const reread = new MeasureStream(input.onBytes);
        const body = new PassThrough({ highWaterMark: 1 << 20 });
        const source = await from.get(key, { signal });
        const feeding = pipeline(source, reread, body);
        const putting = to.put(written, body, { signal, sizeHint: expected.bytes });
        // A target that gives up stops reading: unblock the feeder, or it would wait forever.
        putting.catch(() => body.destroy());
        const [fed, put] = await Promise.allSettled([feeding, putting]);
        if (put.status === 'rejected') throw put.reason;
        if (fed.status === 'rejected') throw fed.reason;
        const putResult = put.value;
        // The staged copy itself must still be what was produced; otherwise the upload proves nothing.
        const staged = reread.result();
        if (staged.bytes !== expected.bytes || staged.sha256 !== expected.sha256) {
          throw new VerificationMismatch(from.name, name, expected, staged);
        }
        return await proveAndPlace(to, written, key, name, expected, signal, input.now, putResult);
      } catch (error) {
        await to.remove(written).catch(() => {});
        throw error;
      }
    },
    { signal, ...(input.policy ? { policy: input.policy } : {}), ...(input.onRetry ? { onRetry: input.onRetry } : {}) },
  );
}
