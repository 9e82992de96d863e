// Writes one object to every live target: raw bytes → measure → compress → (encrypt) → measure → fan-out, each
// target writing under a temporary name; then each target proves size and SHA-256 and the object is
// renamed to its final name. Returns per-target proof or error; never throws for a target's failure.
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { type AgeRecipient, createEncryptStream } from '../crypto/age.js';
import { messageOf } from '../lib/errors.js';
import { type CompressionOptions, createCompressor } from '../pipeline/compress.js';
import { fanOut } from '../pipeline/fanout.js';
import { type Measured, MeasureStream } from '../pipeline/measure.js';
import { tempKey } from '../set/layout.js';
import type { PutResult, Target } from '../targets/types.js';
import type { VerifiedObject } from './evidence.js';
import { proveAndPlace } from './prove.js';

export interface ObjectWrite {
  /** Unset when every target failed before the stream ended (nothing to measure). */
  raw?: Measured;
  stored?: Measured;
  /** Per target name: the proof, or why there is none. */
  results: Map<string, { ok: true; proof: VerifiedObject } | { ok: false; error: unknown }>;
}

export interface WriteObjectInput {
  input: Readable;
  name: string;
  /** Final key of the object on each target (same layout everywhere). */
  key: string;
  targets: readonly Target[];
  compression: CompressionOptions | null;
  /** age recipients: the compressed bytes are encrypted once, and the stored (hashed) bytes are the ciphertext. */
  encryption: readonly AgeRecipient[] | null;
  signal: AbortSignal;
  now: () => Date;
  onRawBytes: (bytes: number) => void;
  onStoredBytes: (bytes: number) => void;
  /** The input's size and SHA-256 as its source took them (ComponentStream.rawMeasured): then raw bytes are only counted. */
  rawMeasured?: Promise<Measured>;
  /** Roughly how many bytes the object will have (an upper bound is fine): S3 picks its part size from it. */
  sizeHint?: number;
}

/** Rejects only when the input stream (the source) fails or the run is aborted. */
export async function writeObject(options: WriteObjectInput): Promise<ObjectWrite> {
  const { input, name, key, targets, signal } = options;
  const raw = new MeasureStream(options.onRawBytes, { hash: options.rawMeasured === undefined });
  const stored = new MeasureStream(options.onStoredBytes);
  const stages = [
    input,
    raw,
    ...(options.compression ? [createCompressor(options.compression, signal)] : []),
    // Compress, then encrypt (ciphertext does not compress), then hash: the manifest proves the stored bytes without the key.
    ...(options.encryption ? [createEncryptStream(options.encryption)] : []),
    stored,
  ];
  let pipelineError: unknown;
  const piped = new Promise<void>((resolve) => {
    // biome-ignore lint/suspicious/noExplicitAny: node's pipeline overloads do not accept a spread of streams
    (pipeline as any)(...stages, (error: unknown) => {
      pipelineError = error ?? undefined;
      resolve();
    });
  });

  const writeKeys = new Map(targets.map((t) => [t.name, t.capabilities.atomicRename ? tempKey(key) : key]));
  const putResults = new Map<string, PutResult>();
  const sinkResults = await fanOut(
    stored,
    targets.map((target) => ({
      name: target.name,
      consume: async (stream: Readable) => {
        const put = await target.put(writeKeys.get(target.name) as string, stream, {
          signal,
          ...(options.sizeHint !== undefined ? { sizeHint: options.sizeHint } : {}),
        });
        putResults.set(target.name, put);
      },
    })),
  ).catch((error: unknown) => {
    pipelineError ??= error;
    return undefined;
  });
  await piped;
  if (signal.aborted) {
    await Promise.all(targets.map((t) => t.remove(writeKeys.get(t.name) as string).catch(() => {})));
    throw signal.reason;
  }
  if (sinkResults !== undefined && [...sinkResults.values()].every((r) => !r.ok) && !signal.aborted) {
    // Every target failed, so fan-out stopped reading: a target problem, not the source's.
    await Promise.all(targets.map((t) => t.remove(writeKeys.get(t.name) as string).catch(() => {})));
    const results: ObjectWrite['results'] = new Map();
    for (const [name, result] of sinkResults)
      results.set(name, result.ok ? { ok: false, error: new Error('not written') } : result);
    return { results };
  }
  if (pipelineError !== undefined || sinkResults === undefined) {
    await Promise.all(targets.map((t) => t.remove(writeKeys.get(t.name) as string).catch(() => {})));
    throw signal.aborted ? signal.reason : pipelineError;
  }

  let rawMeasured: Measured;
  try {
    rawMeasured = options.rawMeasured ? checkedCount(await options.rawMeasured, raw.bytes()) : raw.result();
  } catch (error) {
    await Promise.all(targets.map((t) => t.remove(writeKeys.get(t.name) as string).catch(() => {})));
    throw error;
  }
  const storedMeasured = stored.result();
  const results: ObjectWrite['results'] = new Map();
  await Promise.all(
    targets.map(async (target) => {
      const written = writeKeys.get(target.name) as string;
      const sink = sinkResults.get(target.name);
      if (!sink?.ok) {
        results.set(target.name, { ok: false, error: sink?.error ?? new Error('not written') });
        await target.remove(written).catch(() => {});
        return;
      }
      try {
        const put = putResults.get(target.name);
        const proof = await proveAndPlace(target, written, key, name, storedMeasured, signal, options.now, put);
        results.set(target.name, { ok: true, proof });
      } catch (error) {
        results.set(target.name, { ok: false, error });
        await target.remove(written).catch(() => {});
      }
    }),
  );
  return { raw: rawMeasured, stored: storedMeasured, results };
}

/** The source's measurement, once the bytes that actually went through agree with it. */
function checkedCount(measured: Measured, counted: number): Measured {
  if (measured.bytes !== counted) {
    throw new Error(`the source reported ${measured.bytes} raw bytes, but ${counted} went through the pipeline`);
  }
  return measured;
}

/** A one-line reason for a target's failure, for reports. */
export function describeTargetError(error: unknown): string {
  return messageOf(error);
}
