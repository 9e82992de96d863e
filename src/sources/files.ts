// The `files` source: configured trees as one pax tar stream plus a JSONL index of every entry.
// A worker thread writes the archive (files/archive.ts); this side checks paths, estimates sizes
// and turns the worker's batches into the component's streams, with backpressure.

import type { BigIntStats } from 'node:fs';
import { accessSync, constants, lstatSync, readlinkSync } from 'node:fs';
import { extname } from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { messageOf, SourceError } from '../lib/errors.js';
import { primeAllocatorForStreaming } from '../pipeline/allocator.js';
import type { Measured } from '../pipeline/measure.js';
import { MissingPathError, normalizeRoots, walkTree } from '../pipeline/walk.js';
import {
  type ArchiveWorkerData,
  CONTROL_SLOTS,
  CREDITS,
  STOP,
  type StartMessage,
  type WorkerMessage,
} from './files/protocol.js';
import type { ComponentFacts, ComponentStream, PreflightFinding, Source, SourceContext } from './types.js';

export interface FilesSourceOptions {
  /** Source name, also the component name. */
  name: string;
  /** Absolute paths (resolved by the config loader). Overlapping paths are stored once. */
  paths: string[];
  /** Globs (picomatch, dotfiles included) against the path relative to its configured path; `/…` globs against the absolute path. */
  exclude: string[];
  /** Do not descend into directories on another device than their configured path. */
  oneFileSystem: boolean;
  /**
   * Store entries relative to this directory instead of `/`, and match relative globs against the
   * path relative to it (the system source: relative to its root). Default: none.
   */
  base?: string;
}

export type { IndexEntry, IndexEntryType, OpenedFile } from './files/archive.js';
export { openRegularFile } from './files/archive.js';

/** Output batches: large enough for few, large writes; small enough to keep memory flat. */
const BATCH_BYTES = 1 << 20;
/** Batches the worker may have on their way before the data stream asks for more. */
const INITIAL_CREDITS = 2;
/** How long a stopped worker may take to notice (it checks between reads) before it is terminated. */
const WORKER_STOP_GRACE_MS = 5000;
/** How long a worker booted ahead of need (`warmUp`) waits for a component before it is let go. */
const SPARE_WORKER_IDLE_MS = 60_000;
// The worker module sits beside this one: `.js` when built, `.ts` when run from source under tsx.
const WORKER_URL = new URL(`./files/worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

export function createFilesSource(options: FilesSourceOptions): Source {
  return {
    name: options.name,
    type: 'files',
    check: async () => checkPaths(options),
    warmUp: warmUpArchiveWorker,
    estimateRawBytes: async (ctx) => estimateRawBytes(options, ctx.signal),
    async *components(ctx: SourceContext): AsyncIterable<ComponentStream> {
      yield startComponent(options, ctx.signal);
    },
  };
}

function checkPaths(options: FilesSourceOptions): PreflightFinding[] {
  const findings: PreflightFinding[] = [];
  const prefix = `source ${options.name}:`;
  for (const path of normalizeRoots(options.paths)) {
    let stats: BigIntStats | undefined;
    try {
      stats = lstatSync(path, { bigint: true, throwIfNoEntry: false });
    } catch (error) {
      findings.push({ fatal: true, message: `${prefix} cannot look at path ${path}: ${messageOf(error)}` });
      continue;
    }
    if (stats === undefined) {
      findings.push({ fatal: true, message: `${prefix} path ${path} does not exist` });
    } else if (stats.isSymbolicLink()) {
      findings.push({
        fatal: false,
        message: `${prefix} path ${path} is a symlink (to ${readlinkSync(path)}): only the link will be stored; configure the path it points to in order to back up its contents`,
      });
    } else if (stats.isDirectory() && !canList(path)) {
      findings.push({
        fatal: true,
        message: `${prefix} cannot read directory ${path} (permission denied); run backproof as a user that can read it`,
      });
    }
  }
  return findings;
}

function canList(path: string): boolean {
  try {
    accessSync(path, constants.R_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Sum of the sizes of the regular files that would be stored (hard links once), without reading them. */
async function estimateRawBytes(options: FilesSourceOptions, signal: AbortSignal): Promise<number> {
  let total = 0;
  const seen = new Set<string>();
  let seenEntries = 0;
  for (const path of normalizeRoots(options.paths)) {
    try {
      for (const { entry } of walkTree({ ...options, paths: [path], signal })) {
        if (++seenEntries % 1024 === 0) await yieldToEventLoop(); // lets an abort arrive
        if (!entry?.stats.isFile()) continue;
        if (entry.stats.nlink > 1n) {
          const key = `${entry.stats.dev}:${entry.stats.ino}`;
          if (seen.has(key)) continue;
          seen.add(key);
        }
        total += Number(entry.stats.size);
      }
    } catch (error) {
      if (error instanceof MissingPathError) continue; // check() reports it
      if (signal.aborted) throw error;
      throw new SourceError(options.name, `cannot estimate the size: ${messageOf(error)}`, { cause: error });
    }
  }
  return total;
}

/** The data stream was closed by its consumer before the archive was complete. */
class StoppedError extends Error {
  override readonly name = 'StoppedError';
}

/**
 * The one component. The archive is written by a worker thread (files/worker.ts), started when
 * `data` is first read; its batches arrive as transferred buffers and are pushed as they are.
 */
function startComponent(options: FilesSourceOptions, signal: AbortSignal): ComponentStream {
  let resolveFacts: (facts: ComponentFacts) => void = () => {};
  let rejectFacts: (error: unknown) => void = () => {};
  const facts = new Promise<ComponentFacts>((resolve, reject) => {
    resolveFacts = resolve;
    rejectFacts = reject;
  });
  // The core awaits facts only after the streams; a rejection before that must not crash the process.
  facts.catch(() => {});
  let resolveRaw: (raw: Measured) => void = () => {};
  let rejectRaw: (error: unknown) => void = () => {};
  const rawMeasured = new Promise<Measured>((resolve, reject) => {
    resolveRaw = resolve;
    rejectRaw = reject;
  });
  rawMeasured.catch(() => {});

  const control = new Int32Array(new SharedArrayBuffer(CONTROL_SLOTS * Int32Array.BYTES_PER_ELEMENT));
  let worker: Worker | undefined;
  let workerExited: Promise<void> = Promise.resolve();
  let settled = false;
  /** The worker sent its last batch: the archive is complete once the streams are read. */
  let archiveEnded = false;
  /** Batches the worker may send before it must wait: each is pushed, then given back once `data` wants more. */
  let owedCredits = 0;
  const grant = (count: number): void => {
    Atomics.add(control, CREDITS, count);
    Atomics.notify(control, CREDITS);
  };
  const stopWorker = (): void => {
    Atomics.store(control, STOP, 1);
    Atomics.notify(control, CREDITS);
  };

  const fail = (error: unknown): void => {
    if (settled) return;
    settled = true;
    signal.removeEventListener('abort', onAbort);
    stopWorker();
    const failure = describeFailure(options.name, signal, error);
    // Everything fails together once the worker is gone, its open file closed with it (it stops
    // between two reads), or after a grace period when a read hangs in the kernel (the thread then
    // stays blocked there, but nothing waits for it).
    void stoppedWithin(workerExited, worker, WORKER_STOP_GRACE_MS).then(() => {
      data.destroy(failure as Error);
      index.destroy(failure as Error);
      rejectRaw(failure);
      rejectFacts(failure);
    });
  };
  const onAbort = (): void => fail(signal.reason);

  const startWorker = (): void => {
    primeAllocatorForStreaming();
    grant(INITIAL_CREDITS);
    const workerData: ArchiveWorkerData = {
      walk: {
        paths: options.paths,
        exclude: options.exclude,
        oneFileSystem: options.oneFileSystem,
        base: options.base,
      },
      batchBytes: BATCH_BYTES,
      control: control.buffer as SharedArrayBuffer,
    };
    let spawned: Worker;
    try {
      spawned = takeArchiveWorker();
    } catch (error) {
      fail(error);
      return;
    }
    worker = spawned;
    const start: StartMessage = { type: 'start', job: workerData };
    spawned.postMessage(start);
    workerExited = new Promise((resolve) => spawned.once('exit', () => resolve()));
    spawned.on('message', (message: WorkerMessage) => {
      if (settled) return;
      switch (message.type) {
        case 'batch':
          if (message.index !== '') index.push(message.index);
          if (data.push(Buffer.from(message.buffer, 0, message.length))) grant(1);
          else owedCredits++;
          return;
        case 'end':
          archiveEnded = true;
          resolveRaw(message.raw);
          index.push(null);
          data.push(null);
          Promise.all([finished(data), finished(index)])
            .then(() => {
              settled = true;
              signal.removeEventListener('abort', onAbort);
              resolveFacts({ files: message.entries, warnings: message.warnings });
            })
            .catch(fail);
          return;
        case 'stopped':
          fail(new StoppedError('the data stream was closed'));
          return;
        case 'error':
          fail(Object.assign(new Error(message.message), { code: message.code }));
      }
    });
    spawned.on('error', fail);
    spawned.on('exit', (code) => {
      // Its last message arrives before this; without one, the worker died (a bug, or out of memory).
      if (!archiveEnded) fail(new Error(`the archive worker stopped unexpectedly (exit code ${code})`));
    });
  };

  let started = false;
  const data = new Readable({
    highWaterMark: 2 * BATCH_BYTES,
    read: () => {
      if (!started) {
        started = true;
        startWorker();
      } else if (owedCredits > 0) {
        grant(owedCredits);
        owedCredits = 0;
      }
    },
    destroy: (error, callback) => {
      // Closed before its end (by the consumer, or by a pipeline that failed elsewhere): the archive can never be complete.
      if (!data.readableEnded) fail(new StoppedError('the data stream was closed'));
      callback(error);
    },
  });
  // Index lines are small: they are never held back, so a consumer may read `data` first.
  const index = new Readable({ read() {} });
  // A failure still reaches every consumer (pipeline, finished, iteration, `facts`); these only keep
  // a stream that nobody listens to yet (or any more) from crashing the process with its error.
  data.on('error', () => {});
  index.on('error', () => {});

  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return { name: options.name, kind: 'files', extension: 'tar', data, index, facts, rawMeasured };
}

/** One archive worker booted ahead of need, for the next component to take. */
let spareWorker: { worker: Worker; idleTimer: NodeJS.Timeout } | undefined;

/**
 * Boots an archive worker now, so that its Node environment and modules (about 0.1 s) load on the
 * other core while the run does its preflight, instead of after it. Never keeps the process alive;
 * let go when no component takes it within `SPARE_WORKER_IDLE_MS`. A failure here is no failure:
 * the component then starts its own worker and reports what goes wrong.
 */
export function warmUpArchiveWorker(): void {
  if (spareWorker !== undefined) return;
  let worker: Worker;
  try {
    worker = createArchiveWorker();
  } catch {
    return;
  }
  worker.unref();
  const drop = (): void => {
    if (spareWorker?.worker !== worker) return;
    clearTimeout(spareWorker.idleTimer);
    spareWorker = undefined;
  };
  // A spare that dies before it is taken is simply not used (its taker listens for itself).
  worker.on('error', drop);
  worker.on('exit', drop);
  const idleTimer = setTimeout(() => {
    drop();
    worker.terminate().catch(() => {});
  }, SPARE_WORKER_IDLE_MS);
  idleTimer.unref();
  spareWorker = { worker, idleTimer };
}

/** The spare worker if there is one (then no longer spare), or a new one. Waits for a `StartMessage`. */
function takeArchiveWorker(): Worker {
  const spare = spareWorker;
  if (spare === undefined) return createArchiveWorker();
  spareWorker = undefined;
  clearTimeout(spare.idleTimer);
  spare.worker.ref();
  return spare.worker;
}

/**
 * Built, the worker is a plain module. From source (tests, development), Node 20 does not apply tsx's
 * hooks to worker threads, so a small bootstrap registers tsx there before importing the `.ts` worker.
 */
function createArchiveWorker(): Worker {
  if (!WORKER_URL.pathname.endsWith('.ts')) return new Worker(WORKER_URL);
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER_URL.href)}); });`;
  return new Worker(bootstrap, { eval: true });
}

/** Resolves when the worker has exited, or after `graceMs` (then asking it to terminate). */
async function stoppedWithin(exited: Promise<void>, worker: Worker | undefined, graceMs: number): Promise<void> {
  if (worker === undefined) return;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), graceMs);
  });
  const outcome = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') worker.terminate().catch(() => {});
}

function describeFailure(source: string, signal: AbortSignal, error: unknown): unknown {
  if (signal.aborted) return signal.reason;
  if (error instanceof SourceError) return error;
  if (error instanceof StoppedError) {
    return new SourceError(source, 'the archive was not read to the end: its data stream was closed', {
      cause: error,
    });
  }
  return new SourceError(source, messageOf(error), { cause: error });
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
