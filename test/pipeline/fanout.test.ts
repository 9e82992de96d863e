import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { type FanOutSink, fanOut } from '../../src/pipeline/fanout.js';

const MiB = 1 << 20;
const CHUNK = 64 * 1024;

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A source of `data` in 64 KiB chunks that counts how much has been pulled from it, and can fail part-way. */
function countingSource(data: Buffer, options: { failAfter?: number } = {}) {
  const state = { pulled: 0, finished: false, error: new Error('disk read error in the source') };
  async function* chunks() {
    for (let offset = 0; offset < data.length; offset += CHUNK) {
      if (options.failAfter !== undefined && offset >= options.failAfter) throw state.error;
      const chunk = data.subarray(offset, offset + CHUNK);
      state.pulled += chunk.length;
      yield chunk;
    }
    state.finished = true;
  }
  const stream = Readable.from(chunks(), { objectMode: false, highWaterMark: CHUNK });
  return { stream, state };
}

interface Recorder {
  sink: FanOutSink;
  received: () => Buffer;
  bytes: () => number;
  sawError: () => unknown;
}

/** A sink that keeps everything it reads. `pace` runs before each chunk is taken (a slow disk, a slow network). */
function recordingSink(
  name: string,
  options: { pace?: () => Promise<void>; failAfter?: number; onChunk?: (total: number) => void } = {},
): Recorder {
  const chunks: Buffer[] = [];
  let total = 0;
  let seen: unknown;
  return {
    sink: {
      name,
      async consume(stream) {
        try {
          for await (const chunk of stream as AsyncIterable<Buffer>) {
            if (options.pace) await options.pace();
            chunks.push(Buffer.from(chunk));
            total += chunk.length;
            options.onChunk?.(total);
            if (options.failAfter !== undefined && total >= options.failAfter) {
              throw new Error(`${name}: connection reset after ${total} bytes`);
            }
          }
        } catch (error) {
          seen = error;
          throw error;
        }
      },
    },
    received: () => Buffer.concat(chunks),
    bytes: () => total,
    sawError: () => seen,
  };
}

/** Several turns of the event loop per chunk: much slower than a sink that takes chunks as they come. */
const slowly = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await yieldToLoop();
};

describe('fanOut', () => {
  it('gives every sink every byte, in order, when one sink is much slower (backpressure, bounded buffering)', async () => {
    const data = randomBytes(24 * MiB + 12345);
    const { stream, state } = countingSource(data);
    let maxAhead = 0;
    const fast = recordingSink('fast');
    const slow = recordingSink('slow', {
      pace: slowly,
      onChunk: (total) => {
        maxAhead = Math.max(maxAhead, state.pulled - total);
      },
    });
    const results = await fanOut(stream, [fast.sink, slow.sink]);
    assert.deepEqual(results.get('fast'), { ok: true });
    assert.deepEqual(results.get('slow'), { ok: true });
    assert.equal(sha256(fast.received()), sha256(data));
    assert.equal(sha256(slow.received()), sha256(data));
    assert.equal(slow.bytes(), data.length);
    // Without backpressure the whole source would be pulled while the slow sink had barely begun.
    // With it, the source is never far ahead of the slowest sink: a few buffers of 1 MiB.
    assert.ok(maxAhead < 6 * MiB, `the source ran ${maxAhead} bytes ahead of the slow sink`);
  });

  it('keeps feeding the other sink when one fails part-way', async () => {
    const data = randomBytes(8 * MiB + 7);
    const { stream } = countingSource(data);
    const good = recordingSink('good');
    const bad = recordingSink('bad', { failAfter: 3 * MiB, pace: slowly });
    const results = await fanOut(stream, [bad.sink, good.sink]);
    assert.deepEqual(results.get('good'), { ok: true });
    const failed = results.get('bad');
    assert.equal(failed?.ok, false);
    assert.match(String((failed as { error: unknown }).error), /bad: connection reset/);
    assert.equal(sha256(good.received()), sha256(data));
    assert.ok(bad.bytes() >= 3 * MiB && bad.bytes() < data.length);
    assert.deepEqual(
      bad.received(),
      data.subarray(0, bad.bytes()),
      'what the failed sink got was not corrupted either',
    );
  });

  it('keeps backpressure from a slow sink after another sink has failed', async () => {
    const data = randomBytes(24 * MiB);
    const { stream, state } = countingSource(data);
    let maxAhead = 0;
    const slow = recordingSink('slow', {
      pace: slowly,
      onChunk: (total) => {
        maxAhead = Math.max(maxAhead, state.pulled - total);
      },
    });
    const bad = recordingSink('bad', { failAfter: MiB });
    const results = await fanOut(stream, [bad.sink, slow.sink]);
    assert.equal(results.get('bad')?.ok, false);
    assert.deepEqual(results.get('slow'), { ok: true });
    assert.equal(sha256(slow.received()), sha256(data));
    // One failed target must not make the run buffer the whole source in memory for the others.
    assert.ok(maxAhead < 6 * MiB, `the source ran ${maxAhead} bytes ahead of the slow sink`);
  });

  it('keeps feeding the other sink when one fails before reading anything', async () => {
    const data = randomBytes(4 * MiB);
    const { stream } = countingSource(data);
    const good = recordingSink('good');
    const results = await fanOut(stream, [
      {
        name: 'refused',
        consume: async () => {
          throw new Error('permission denied');
        },
      },
      good.sink,
    ]);
    assert.equal(results.get('refused')?.ok, false);
    assert.deepEqual(results.get('good'), { ok: true });
    assert.equal(sha256(good.received()), sha256(data));
  });

  it('stops reading the source when every sink has failed', async () => {
    const data = randomBytes(32 * MiB);
    const { stream, state } = countingSource(data);
    const a = recordingSink('a', { failAfter: MiB });
    const b = recordingSink('b', { failAfter: 2 * MiB, pace: slowly });
    const results = await fanOut(stream, [a.sink, b.sink]);
    assert.equal(results.get('a')?.ok, false);
    assert.equal(results.get('b')?.ok, false);
    assert.equal(state.finished, false, 'the source was not read to its end');
    assert.ok(state.pulled < 12 * MiB, `pulled ${state.pulled} bytes after every sink had failed`);
    assert.equal(stream.destroyed, true, 'the source is released');
  });

  it('rejects with the source’s error, and every sink sees an error instead of a clean end', async () => {
    const data = randomBytes(8 * MiB);
    const { stream, state } = countingSource(data, { failAfter: 5 * MiB });
    const a = recordingSink('a');
    const b = recordingSink('b', { pace: slowly });
    await assert.rejects(fanOut(stream, [a.sink, b.sink]), (error) => error === state.error);
    assert.ok(a.sawError() instanceof Error, 'sink a saw an error');
    assert.ok(b.sawError() instanceof Error, 'sink b saw an error');
    assert.ok(a.bytes() <= 5 * MiB && b.bytes() <= 5 * MiB);
  });

  it('gives an empty source to every sink as an empty stream', async () => {
    const { stream } = countingSource(Buffer.alloc(0));
    const a = recordingSink('a');
    const b = recordingSink('b');
    const results = await fanOut(stream, [a.sink, b.sink]);
    assert.deepEqual([...results.values()], [{ ok: true }, { ok: true }]);
    assert.equal(a.bytes(), 0);
    assert.equal(b.bytes(), 0);
  });
});
