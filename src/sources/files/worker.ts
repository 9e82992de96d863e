// The archive worker: writes the files source's tar in its own thread, so the tree walk, the reads
// and the per-file hashes run beside the main thread's compression piping and stream hashing, and a
// read that hangs (a dead NFS server) blocks this thread, never the main event loop.
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { messageOf } from '../../lib/errors.js';
import { type ArchiveSink, writeArchive } from './archive.js';
import { type ArchiveWorkerData, CREDITS, STOP, type StartMessage, type WorkerMessage } from './protocol.js';

/** Thrown inside the worker when the main side asked it to stop. */
class StopRequested extends Error {
  override readonly name = 'StopRequested';
}

function run(data: ArchiveWorkerData): WorkerMessage {
  const control = new Int32Array(data.control);
  const port = parentPort;
  if (port === null) throw new Error('the archive worker must run in a worker thread');
  const throwIfStopped = (): void => {
    if (Atomics.load(control, STOP) !== 0) throw new StopRequested();
  };
  // The raw stream's hash is taken here, from each batch just before it changes hands: bytes still
  // in the cache, and off the main thread, which hashes the compressed stream.
  const rawHash = createHash('sha256');
  let rawBytes = 0;
  const sink: ArchiveSink = {
    throwIfStopped,
    send(batch, length, index) {
      // Block until the main side has room for one more batch (or tells us to stop).
      for (;;) {
        throwIfStopped();
        const credits = Atomics.load(control, CREDITS);
        if (credits > 0) break;
        Atomics.wait(control, CREDITS, credits);
      }
      Atomics.sub(control, CREDITS, 1);
      rawHash.update(batch.subarray(0, length));
      rawBytes += length;
      const message: WorkerMessage = { type: 'batch', buffer: batch.buffer as ArrayBuffer, length, index };
      port.postMessage(message, [batch.buffer as ArrayBuffer]);
    },
  };
  try {
    const result = writeArchive(data.walk, sink, data.batchBytes);
    return {
      type: 'end',
      entries: result.entries,
      warnings: result.warnings,
      raw: { bytes: rawBytes, sha256: rawHash.digest('hex') },
    };
  } catch (error) {
    if (error instanceof StopRequested) return { type: 'stopped' };
    return { type: 'error', message: messageOf(error), code: (error as NodeJS.ErrnoException).code };
  }
}

// Booted ahead of need, the worker waits for its job; with the listener gone after it, nothing keeps
// the thread alive once the result is posted.
parentPort?.once('message', (message: StartMessage) => {
  parentPort?.postMessage(run(message.job));
});
