// A fault-injecting wrapper around any target, for tests: a dropped connection part-way through an
// upload, bytes changed on the target after they were written, a failing rename, verification or
// listing. Faults go through the inner target's own API, so they work on every target kind.
import { once } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import { TargetError } from '../../src/lib/errors.js';
import type { PutResult, Target } from '../../src/targets/types.js';

export interface Faults {
  /**
   * `put` hands only the first this-many bytes of the body to the inner target, which stores them
   * (a partial object is left behind, as a dropped connection may leave one), then rejects. A body
   * no longer than this is written whole and the put succeeds.
   */
  failPutAfterBytes?: number;
  /**
   * After a successful `put`, the stored object is changed before anyone verifies it: `corrupt`
   * flips one byte in the middle (same size; an empty object gains a byte), `truncate` keeps the
   * first half (an empty object stays empty).
   */
  tamperAfterPut?: 'corrupt' | 'truncate';
  failRename?: boolean;
  failVerify?: boolean;
  failList?: boolean;
  /** Whether injected TargetErrors are permanent. Default true. */
  permanent?: boolean;
  /** Only keys this accepts are affected (default: every key). `list` uses its prefix. */
  only?: (key: string) => boolean;
}

export interface FaultyTarget extends Target {
  /** One line per fault that fired (`put app/x.tmp-1 after 1048576 bytes`), so a test can prove it did. */
  readonly injected: readonly string[];
}

/** What `tamperAfterPut` does to an object's bytes. Exported so tests can compute the expected result. */
export function tampered(data: Buffer, how: 'corrupt' | 'truncate'): Buffer {
  if (how === 'truncate') return Buffer.from(data.subarray(0, Math.floor(data.length / 2)));
  if (data.length === 0) return Buffer.from([0x42]);
  const copy = Buffer.from(data);
  const middle = Math.floor(copy.length / 2);
  copy[middle] = (copy[middle] as number) ^ 0xff;
  return copy;
}

export function faultyTarget(inner: Target, faults: Faults): FaultyTarget {
  const injected: string[] = [];
  const applies = (key: string): boolean => faults.only?.(key) ?? true;
  const fault = (what: string): TargetError => {
    injected.push(what);
    return new TargetError(inner.name, `injected fault: ${what}`, { permanent: faults.permanent ?? true });
  };

  const tamper = async (key: string, how: 'corrupt' | 'truncate', signal: AbortSignal): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of (await inner.get(key, { signal })) as AsyncIterable<Buffer>) chunks.push(chunk);
    const changed = tampered(Buffer.concat(chunks), how);
    await inner.remove(key);
    await inner.put(key, Readable.from([changed]), { signal });
    injected.push(`${how} ${key}`);
  };

  /** Passes the first `limit` bytes of `body` to the inner put, then fails. */
  const putPart = async (
    key: string,
    body: Readable,
    limit: number,
    options: { signal: AbortSignal },
  ): Promise<'whole' | 'cut'> => {
    const part = new PassThrough();
    const stored = inner.put(key, part, options);
    stored.catch(() => {}); // awaited below; this only keeps an early rejection from going unobserved
    let passed = 0;
    let cut = false;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        const room = limit - passed;
        if (chunk.length > room) {
          if (room > 0) part.write(chunk.subarray(0, room));
          passed = limit;
          cut = true;
          break; // stops reading the body, as a dead connection would
        }
        passed += chunk.length;
        if (!part.write(chunk)) await Promise.race([once(part, 'drain'), stored]);
      }
    } catch (error) {
      part.destroy(error instanceof Error ? error : new Error(String(error)));
      await stored.catch(() => {});
      throw error;
    }
    part.end();
    await stored;
    return cut ? 'cut' : 'whole';
  };

  const wrapper: FaultyTarget = {
    get name() {
      return inner.name;
    },
    get type() {
      return inner.type;
    },
    get optional() {
      return inner.optional;
    },
    get capabilities() {
      return inner.capabilities;
    },
    injected,
    describe: () => inner.describe(),

    async put(key, body, options) {
      if (!applies(key)) return inner.put(key, body, options);
      let result: PutResult = {};
      if (faults.failPutAfterBytes !== undefined) {
        const limit = faults.failPutAfterBytes;
        if ((await putPart(key, body, limit, options)) === 'cut') throw fault(`put ${key} after ${limit} bytes`);
      } else {
        result = await inner.put(key, body, options);
      }
      if (faults.tamperAfterPut) {
        await tamper(key, faults.tamperAfterPut, options.signal);
        return {}; // a proof taken while writing predates the tampering: verifyObject must look again
      }
      // Verification is to fail: the proof must come from verifyObject, not from put.
      return faults.failVerify ? {} : result;
    },
    get: (key, options) => inner.get(key, options),
    stat: (key) => inner.stat(key),
    async list(prefix) {
      if (faults.failList && applies(prefix)) throw fault(`list ${prefix}`);
      return inner.list(prefix);
    },
    remove: (key) => inner.remove(key),
    async verifyObject(key, options) {
      if (faults.failVerify && applies(key)) throw fault(`verifyObject ${key}`);
      return inner.verifyObject(key, options);
    },
    probeWritable: (job) => inner.probeWritable(job),
    isNotFound: (error) => inner.isNotFound(error),
    close: () => inner.close(),
  };
  if (inner.rename) {
    const rename = inner.rename.bind(inner);
    wrapper.rename = async (from, to) => {
      if (faults.failRename && applies(from)) throw fault(`rename ${from} to ${to}`);
      return rename(from, to);
    };
  }
  if (inner.free) wrapper.free = inner.free.bind(inner);
  return wrapper;
}
