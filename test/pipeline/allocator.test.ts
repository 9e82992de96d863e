// Priming the allocator: after it, buffers that are freed and allocated again reuse their pages
// instead of faulting fresh ones in. Counted in minor page faults (/proc/self/stat), not timed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTempDir } from '../helpers/tree.js';

describe('primeAllocatorForStreaming', () => {
  let work: string;
  let script: string;

  before(async () => {
    work = await makeTempDir();
    script = join(work, 'churn.mjs');
    const allocator = new URL('../../src/pipeline/allocator.ts', import.meta.url).href;
    // 1024 buffers of 1 MiB, each filled, at most 8 alive, freed whenever the collector runs: a stream's churn.
    await writeFile(
      script,
      `import { readFileSync } from 'node:fs';
const { primeAllocatorForStreaming } = await import(${JSON.stringify(allocator)});
const minorFaults = () => Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[7]);
if (process.argv[2] === 'prime') {
  primeAllocatorForStreaming();
  primeAllocatorForStreaming(); // idempotent
  globalThis.gc();
}
const live = [];
const before = minorFaults();
for (let i = 0; i < 1024; i++) {
  const buffer = Buffer.allocUnsafeSlow(1 << 20);
  buffer.fill(i & 255);
  live.push(buffer);
  if (live.length > 8) live.shift();
}
process.stdout.write(String(minorFaults() - before));
`,
    );
  });

  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  function faultsOf(mode: 'plain' | 'prime'): number {
    const run = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', script, mode], {
      cwd: new URL('../..', import.meta.url).pathname,
      encoding: 'utf8',
    });
    assert.equal(run.status, 0, run.stderr);
    return Number(run.stdout);
  }

  test('freed buffers are reused: far fewer page faults for the same churn', () => {
    const plain = faultsOf('plain');
    const primed = faultsOf('prime');
    // 1 GiB of pages is 262,144 faults if every buffer is fresh. glibc's defaults give much of it back
    // and fault it in again; primed, the pages of freed buffers are reused.
    assert.ok(plain > 40_000, `without priming: ${plain} faults (is this glibc?)`);
    assert.ok(primed < plain / 3, `primed: ${primed} faults, plain: ${plain}`);
  });
});

describe('prepareForStreaming', () => {
  let work: string;
  let script: string;

  before(async () => {
    work = await makeTempDir();
    script = join(work, 'collect.mjs');
    const allocator = new URL('../../src/pipeline/allocator.ts', import.meta.url).href;
    await writeFile(
      script,
      `const { prepareForStreaming } = await import(${JSON.stringify(allocator)});
globalThis.gc();
prepareForStreaming();
prepareForStreaming(); // idempotent
globalThis.gc();
`,
    );
  });

  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('takes effect at run time: the next full collection sets its limit 5x the live heap', () => {
    // V8 prints the factor of each new limit with --trace-gc-verbose; its own factors stay within 1.1-4.
    const run = spawnSync(process.execPath, ['--expose-gc', '--trace-gc-verbose', '--import', 'tsx', script], {
      cwd: new URL('../..', import.meta.url).pathname,
      encoding: 'utf8',
    });
    assert.equal(run.status, 0, run.stderr);
    // In order: collections of V8's own choosing (at least the first gc()), then the one after prepareForStreaming.
    const factors = [...run.stdout.matchAll(/\[HeapController\] Limit: .*\((\d+\.\d)\)/g)].map((m) => Number(m[1]));
    const own = factors.slice(0, -1);
    assert.ok(own.length > 0, `V8 traced the limits of its collections: ${run.stdout.slice(0, 500)}`);
    assert.ok(
      own.every((f) => f <= 4),
      `V8's own factors: ${own.join(', ')}`,
    );
    assert.equal(factors.at(-1), 5, `after prepareForStreaming: ${factors.join(', ')}`);
  });
});
