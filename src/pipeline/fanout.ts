// One read of a stream feeds several consumers at once (one per target). The slowest consumer sets
// the pace (backpressure); a consumer that fails is dropped without stopping or corrupting the others.
import { PassThrough, type Readable } from 'node:stream';

export interface FanOutSink {
  name: string;
  /** Consumes the stream it is given completely; rejects if it fails. */
  consume(stream: Readable): Promise<void>;
}

export type SinkResult = { ok: true } | { ok: false; error: unknown };

interface Branch {
  sink: FanOutSink;
  stream: PassThrough;
  settled: Promise<SinkResult>;
  failed: boolean;
}

/**
 * Feeds `source` to every sink. Resolves with each sink's result once the source has ended and every
 * sink has settled. Rejects (after destroying every branch) if the source itself fails; stops reading
 * early, destroying the source, when every sink has failed.
 */
export async function fanOut(source: Readable, sinks: FanOutSink[]): Promise<Map<string, SinkResult>> {
  const branches: Branch[] = sinks.map((sink) => {
    const stream = new PassThrough({ highWaterMark: 1 << 20 });
    // The consumer sees a branch's error through its own read; once it has settled, nobody listens,
    // and an unobserved 'error' event would crash the process.
    stream.on('error', () => {});
    const branch: Branch = { sink, stream, failed: false, settled: Promise.resolve({ ok: true }) };
    branch.settled = sink.consume(stream).then(
      (): SinkResult => ({ ok: true }),
      (error: unknown): SinkResult => {
        branch.failed = true;
        stream.destroy();
        return { ok: false, error };
      },
    );
    return branch;
  });

  const live = () => branches.filter((b) => !b.failed);
  try {
    for await (const chunk of source) {
      const waiting: Promise<unknown>[] = [];
      for (const branch of live()) {
        if (!branch.stream.write(chunk)) waiting.push(drainedOrSettled(branch));
      }
      if (live().length === 0) {
        source.destroy();
        break;
      }
      // Every live branch must drain (or fail): the slowest one sets the pace.
      if (waiting.length > 0) await Promise.all(waiting);
      if (live().length === 0) {
        source.destroy();
        break;
      }
    }
  } catch (error) {
    for (const branch of branches) branch.stream.destroy(error instanceof Error ? error : new Error(String(error)));
    await Promise.all(branches.map((b) => b.settled));
    throw error;
  }
  for (const branch of live()) branch.stream.end();
  const results = new Map<string, SinkResult>();
  for (const branch of branches) results.set(branch.sink.name, await branch.settled);
  return results;
}

/** Resolves when the branch drains or settles (a failed branch never drains), leaving no listener behind. */
function drainedOrSettled(branch: Branch): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      branch.stream.off('drain', done);
      resolve();
    };
    branch.stream.on('drain', done);
    void branch.settled.then(done);
  });
}
