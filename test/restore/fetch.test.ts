// fetchObject against a real local target: a good copy, a flipped byte, a truncated and a longer
// object, a missing one, a read that fails part-way and an abort; a bad copy never stays on disk.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { RestoreError } from '../../src/restore/errors.js';
import { type ExpectedObject, fetchObject } from '../../src/restore/fetch.js';
import { createLocalTarget } from '../../src/targets/local.js';
import type { Target } from '../../src/targets/types.js';
import { makeTempDir, sha256sum } from '../helpers/tree.js';

const never = new AbortController().signal;
const KEY = 'job/2025/11/04/20251104T030000Z-abc123/app.tar.zst';

describe('fetchObject', () => {
  let work: string;
  let targetRoot: string;
  let staging: string;
  let target: Target;
  let content: Buffer;
  let expected: ExpectedObject;
  let file: string;

  beforeEach(async () => {
    work = await makeTempDir();
    targetRoot = join(work, 'target');
    staging = join(work, 'staging');
    await mkdir(targetRoot);
    await mkdir(staging);
    target = createLocalTarget({ name: 'disk', path: targetRoot, optional: false });
    content = randomBytes(3 * 1024 * 1024 + 77);
    await target.put(KEY, Readable.from([content]), { signal: never });
    expected = {
      name: 'app.tar.zst',
      bytes: content.length,
      sha256: createHash('sha256').update(content).digest('hex'),
    };
    file = join(staging, 'app.tar.zst');
  });

  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  /** Replaces the stored object's bytes behind the target's back. */
  async function tamper(bytes: Buffer): Promise<void> {
    await writeFile(join(targetRoot, KEY), bytes);
  }

  async function failsNaming(pattern: RegExp, on: Target = target): Promise<RestoreError> {
    let caught: unknown;
    await assert.rejects(
      fetchObject(on, KEY, expected, file, { signal: never }).catch((error: unknown) => {
        caught = error;
        throw error;
      }),
    );
    assert.ok(caught instanceof RestoreError, `not a RestoreError: ${String(caught)}`);
    assert.match(caught.message, pattern);
    assert.deepEqual(await readdir(staging), [], 'the bad copy was removed');
    return caught;
  }

  test('a good copy lands in the file, mode 0600, with the bytes sha256sum agrees on', async () => {
    await fetchObject(target, KEY, expected, file, { signal: never });
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await stat(file)).size, expected.bytes);
    assert.equal(sha256sum(file), expected.sha256);
  });

  test('one flipped byte: the copy is removed and the error names object, target, both sizes and hashes, and what to do', async () => {
    const damaged = Buffer.from(content);
    damaged[1000] = (damaged[1000] as number) ^ 0x01;
    await tamper(damaged);
    const error = await failsNaming(/object app\.tar\.zst on target disk \(job\/2025\/.*\/app\.tar\.zst\) is damaged/);
    const actual = createHash('sha256').update(damaged).digest('hex');
    assert.ok(error.message.includes(`the manifest says ${expected.bytes} bytes with SHA-256 ${expected.sha256}`));
    assert.ok(error.message.includes(`the target gave ${expected.bytes} bytes with SHA-256 ${actual}`));
    assert.match(error.message, /restore from another target \(--target\) or from an older set \(--set\)/);
  });

  test('a truncated object is refused with its real size', async () => {
    const half = content.subarray(0, 1_000_000);
    await tamper(half);
    const error = await failsNaming(/is damaged/);
    assert.ok(
      error.message.includes(
        `the target gave 1000000 bytes with SHA-256 ${createHash('sha256').update(half).digest('hex')}`,
      ),
    );
  });

  test('an object longer than the manifest says is refused as soon as it is', async () => {
    await tamper(Buffer.concat([content, Buffer.from('trailing garbage')]));
    await failsNaming(new RegExp(`the target gave more than ${expected.bytes} bytes`));
  });

  test('a missing object', async () => {
    await target.remove(KEY);
    await failsNaming(/object app\.tar\.zst on target disk \(.*\) is missing: the set's manifest lists it/);
  });

  test('a read that fails part-way (a dropped connection)', async () => {
    const dropping: Target = {
      ...target,
      async get() {
        return Readable.from(
          (async function* () {
            yield content.subarray(0, 1024 * 1024);
            throw new Error('connection reset by peer');
          })(),
        );
      },
    };
    await failsNaming(
      /reading object app\.tar\.zst on target disk .* failed: connection reset by peer; try again/,
      dropping,
    );
  });

  test('an existing file is never overwritten', async () => {
    await writeFile(file, 'someone else’s file');
    await assert.rejects(fetchObject(target, KEY, expected, file, { signal: never }), (error: unknown) => {
      assert.ok(error instanceof RestoreError);
      assert.match(error.message, /cannot create .*app\.tar\.zst to fetch object app\.tar\.zst on target disk.*EEXIST/);
      return true;
    });
    assert.equal(await readFile(file, 'utf8'), 'someone else’s file');
  });

  test('an abort part-way rejects with the reason and removes the partial copy', async () => {
    const controller = new AbortController();
    const endless: Target = {
      ...target,
      async get() {
        let sent = 0;
        return new Readable({
          read() {
            sent += 64 * 1024;
            if (sent === 1024 * 1024) controller.abort(new Error('interrupted by SIGTERM'));
            this.push(Buffer.alloc(64 * 1024));
          },
        });
      },
    };
    const big = { ...expected, bytes: 2 ** 40 };
    await assert.rejects(fetchObject(endless, KEY, big, file, { signal: controller.signal }), /interrupted by SIGTERM/);
    assert.deepEqual(await readdir(staging), []);
  });
});
