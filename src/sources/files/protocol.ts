// What the files source's main side and its archive worker tell each other. The worker boots
// first and waits for one `StartMessage` (so it can boot while the run does its preflight). Batches
// travel as transferred ArrayBuffers (no copy); flow control is a credit counter in shared memory,
// so the worker can block on it (Atomics.wait) between batches without an event loop of its own.
import type { Measured } from '../../pipeline/measure.js';
import type { WalkOptions } from '../../pipeline/walk.js';

/** Slots of the shared Int32Array. */
export const CREDITS = 0;
/** Non-zero: stop at the next check (abort, or the consumer went away). */
export const STOP = 1;
export const CONTROL_SLOTS = 2;

export interface ArchiveWorkerData {
  walk: Omit<WalkOptions, 'signal'>;
  batchBytes: number;
  /** `CONTROL_SLOTS` Int32 slots. */
  control: SharedArrayBuffer;
}

/** The one message the main side sends: the archive to write. The worker exits after it. */
export interface StartMessage {
  type: 'start';
  job: ArchiveWorkerData;
}

export type WorkerMessage =
  | { type: 'batch'; buffer: ArrayBuffer; length: number; index: string }
  | { type: 'end'; entries: number; warnings: string[]; raw: Measured }
  | { type: 'stopped' }
  | { type: 'error'; message: string; code: string | undefined };
