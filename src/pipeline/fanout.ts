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
  const results = async (): Promise<Map<string, SinkResult>> => {
    const map = new Map<string, SinkResult>();
    for (const branch of branches) map.set(branch.sink.name, await branch.settled);
    return map;
  };

  // 'data' events rather than async iteration: iteration concatenates buffered chunks (a copy of every
  // byte, and garbage to collect); events hand each chunk on as it is.
  const outcome = await new Promise<'ended' | 'stopped' | { error: unknown }>((resolve) => {
    let done = false;
    const finish = (value: 'ended' | 'stopped' | { error: unknown }) => {
      if (done) return;
      done = true;
      source.off('data', onData);
      resolve(value);
    };
    const stopIfAllFailed = (): boolean => {
      if (live().length > 0) return false;
      finish('stopped');
      source.destroy();
      return true;
    };
    function onData(chunk: Buffer): void {
      const waiting: Promise<void>[] = [];
      for (const branch of live()) {
        if (!branch.stream.write(chunk)) waiting.push(drainedOrSettled(branch));
      }
      if (stopIfAllFailed() || waiting.length === 0) return;
      // Every live branch must drain (or fail): the slowest one sets the pace.
      source.pause();
      void Promise.all(waiting).then(() => {
        if (!done && !stopIfAllFailed()) source.resume();
      });
    }
    source.on('data', onData);
    source.once('end', () => finish('ended'));
    source.once('error', (error) => finish({ error }));
    source.once('close', () => {
      // Closed without 'end' or 'error': destroyed by someone else; treat as a failure of the source.
      if (!done) finish({ error: new Error('the stream closed before its end') });
    });
  });

  if (outcome === 'ended') {
    for (const branch of live()) branch.stream.end();
    return results();
  }
  if (outcome === 'stopped') return results();
  const error = outcome.error instanceof Error ? outcome.error : new Error(String(outcome.error));
  for (const branch of branches) branch.stream.destroy(error);
  await Promise.all(branches.map((b) => b.settled));
  throw outcome.error;
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
