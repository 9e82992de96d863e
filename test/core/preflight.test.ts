import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseConfigText } from '../../src/config/load.js';
import { planBackup, runBackup } from '../../src/core/backup.js';
import { systemClock } from '../../src/core/context.js';
import {
  estimateRunBytes,
  type FreeSpaceRule,
  formatBasisPoints,
  freeSpaceAt,
  judgeFreeSpace,
  needsRawEstimate,
} from '../../src/core/preflight.js';
import { silentLogger } from '../../src/lib/log.js';
import { silentReporter } from '../../src/report/types.js';
import { createFilesSource } from '../../src/sources/files.js';
import type { Source } from '../../src/sources/types.js';

const PATH = '/var/backups/backproof';
const MAX = Number.MAX_SAFE_INTEGER; // 2^53 - 1
const rule = (minFreeBytes: number, minFreeBasisPoints: number): FreeSpaceRule => ({
  minFreeBytes,
  minFreeBasisPoints,
});

function judge(freeBytes: number, totalBytes: number, estimateBytes: number, r: FreeSpaceRule) {
  const verdict = judgeFreeSpace('target disk', PATH, { freeBytes, totalBytes }, estimateBytes, r);
  assert.ok(!/e\+|e-\d|NaN|Infinity/.test(verdict.message), `no exponent or NaN in: ${verdict.message}`);
  assert.ok(verdict.message.includes(PATH), `the message names the path: ${verdict.message}`);
  assert.ok(verdict.message.startsWith('target disk: '), verdict.message);
  assert.deepEqual(verdict.evidence, {
    path: PATH,
    freeBytes,
    totalBytes,
    estimateBytes,
    minFreeBytes: r.minFreeBytes,
    minFreeBasisPoints: r.minFreeBasisPoints,
  });
  return verdict;
}

describe('judgeFreeSpace', () => {
  it('passes an empty run on an empty rule, even with zero bytes free', () => {
    assert.equal(judge(0, 0, 0, rule(0, 0)).ok, true);
    assert.equal(judge(0, 1000, 0, rule(0, 0)).ok, true);
  });

  it('fails a zero-byte filesystem against any floor', () => {
    const verdict = judge(0, 0, 0, rule(1, 0));
    assert.equal(verdict.ok, false);
    assert.match(verdict.message, /only 0 B free of 0 B/);
    assert.match(verdict.message, /Nothing was written/);
  });

  it('is exact at 2^32 + 1 bytes, where 32-bit arithmetic would wrap', () => {
    const free = 2 ** 32 + 1;
    assert.equal(judge(free, 2 ** 40, 1, rule(2 ** 32, 0)).ok, true, 'leaves exactly the floor');
    assert.equal(judge(free, 2 ** 40, 2, rule(2 ** 32, 0)).ok, false, 'one byte short of the floor');
    assert.equal(judge(free, free, 0, rule(0, 10000)).ok, true, '100% free is 100%');
  });

  it('is exact at 2^50 bytes with a percentage', () => {
    const total = 2 ** 50;
    const half = 2 ** 49;
    assert.equal(judge(half, total, 0, rule(0, 5000)).ok, true, 'exactly 50% left');
    assert.equal(judge(half, total, 1, rule(0, 5000)).ok, false, 'one byte under 50%');
    assert.equal(judge(half + 1, total, 1, rule(0, 5000)).ok, true);
  });

  it('is exact near 2^53, where a float product of bytes and basis points would round', () => {
    // MAX * 10000 is far above 2^53: done in floats, "one byte short" would be lost in rounding.
    assert.equal(judge(MAX, MAX, 0, rule(MAX, 10000)).ok, true);
    assert.equal(judge(MAX, MAX, 1, rule(0, 10000)).ok, false, 'one byte short of 100%');
    assert.equal(judge(MAX - 1, MAX, 0, rule(MAX, 0)).ok, false, 'one byte short of the floor');
    const tenth = Math.floor(MAX / 10); // 900719925474099.1 → the boundary for 10% is between integers
    assert.equal(judge(tenth + 1, MAX, 0, rule(0, 1000)).ok, true);
    assert.equal(judge(tenth, MAX, 0, rule(0, 1000)).ok, false);
  });

  it('fails on the floor alone when the percentage is fine', () => {
    // 1 TB disk, 500 GB free, run of 100 GB: 40% left, but the floor asks for 450 GB.
    const verdict = judge(500e9, 1e12, 100e9, rule(450e9, 1000));
    assert.equal(verdict.ok, false);
    assert.match(verdict.message, /only 500\.0 GB free of 1\.0 TB/);
    assert.match(verdict.message, /at least 450\.0 GB and 10% free/);
    assert.equal(judge(500e9, 1e12, 100e9, rule(400e9, 1000)).ok, true, 'the same with a floor that fits');
  });

  it('fails on the percentage alone when the floor is fine', () => {
    // 100 TB disk, 6 TB free, run of 2 TB: 4 TB left is above a 1 GB floor but below 5%.
    const verdict = judge(6e12, 100e12, 2e12, rule(1e9, 500));
    assert.equal(verdict.ok, false);
    assert.match(verdict.message, /and 5% free/);
    assert.equal(judge(6e12, 100e12, 1e12, rule(1e9, 500)).ok, true, '5% left exactly');
  });

  it('fails when the run does not fit at all, with no rule', () => {
    const verdict = judge(10, 1000, 11, rule(0, 0));
    assert.equal(verdict.ok, false);
    assert.match(verdict.message, /needs about 11 B/);
  });

  it('shows fractional percentages without floats', () => {
    const verdict = judge(100, 1000, 0, rule(0, 1250));
    assert.equal(verdict.ok, false);
    assert.match(verdict.message, /and 12\.5% free/);
  });

  it('says how much the run needs in the message when it passes', () => {
    const verdict = judge(2 ** 40, 2 ** 41, 2 ** 30, rule(2 ** 30, 100));
    assert.equal(verdict.ok, true);
    assert.match(verdict.message, /1\.1 TB free at \/var\/backups\/backproof; this run needs about 1\.1 GB/);
  });
});

describe('formatBasisPoints', () => {
  it('writes whole, one-decimal and two-decimal percentages exactly', () => {
    const cases: [number, string][] = [
      [0, '0%'],
      [5, '0.05%'],
      [10, '0.1%'],
      [99, '0.99%'],
      [1000, '10%'],
      [1250, '12.5%'],
      [1205, '12.05%'],
      [3333, '33.33%'],
      [10000, '100%'],
    ];
    for (const [bp, text] of cases) assert.equal(formatBasisPoints(bp), text, String(bp));
  });
});

describe('estimateRunBytes', () => {
  it('uses the sources’ raw size on a first run', () => {
    assert.equal(estimateRunBytes(undefined, 0), 0);
    assert.equal(estimateRunBytes(undefined, 2 ** 40), 2 ** 40);
  });

  it('adds 50% to the last committed run, rounded up to a whole byte', () => {
    assert.equal(estimateRunBytes(100, 999), 150);
    assert.equal(estimateRunBytes(101, 0), 152);
    assert.equal(estimateRunBytes(1, 0), 2);
    assert.equal(estimateRunBytes(0, 5), 0, 'the raw size is only for the first run');
    assert.equal(estimateRunBytes(2 ** 40, 0), 2 ** 40 + 2 ** 39);
  });

  it('stays an integer for large odd sizes', () => {
    const last = 2 ** 52 + 1;
    const estimate = estimateRunBytes(last, 0);
    assert.ok(Number.isSafeInteger(estimate));
    assert.equal(BigInt(estimate), BigInt(last) + (BigInt(last) + 1n) / 2n);
  });
});

describe('freeSpaceAt', () => {
  it('reports the filesystem of the nearest existing parent of a path not created yet', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'backproof-preflight-'));
    try {
      const space = await freeSpaceAt(join(dir, 'not', 'yet', 'there'));
      assert.equal(space.path, dir);
      assert.ok(Number.isSafeInteger(space.freeBytes) && Number.isSafeInteger(space.totalBytes));
      const [size] = execFileSync('df', ['-B1', '--output=size', dir], { encoding: 'utf8', env: { LC_ALL: 'C' } })
        .trim()
        .split('\n')
        .slice(1)
        .map(Number);
      assert.equal(space.totalBytes, size);
      assert.ok(space.freeBytes <= space.totalBytes);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects for a path under a file, instead of climbing past it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'backproof-preflight-'));
    try {
      execFileSync('touch', [join(dir, 'file')]);
      await assert.rejects(freeSpaceAt(join(dir, 'file', 'below')), { code: 'ENOTDIR' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('needsRawEstimate', () => {
  it('measures every source on a first run, and in a dry run', () => {
    for (const type of ['files', 'system', 'sqlite', 'command', 'mariadb']) {
      assert.equal(needsRawEstimate(type, false, false), true, type);
      assert.equal(needsRawEstimate(type, true, true), true, type);
    }
  });

  it('with history, measures only what is judged on its own: a sqlite copy in scratch space', () => {
    assert.equal(needsRawEstimate('files', true, false), false);
    assert.equal(needsRawEstimate('system', true, false), false);
    assert.equal(needsRawEstimate('mariadb', true, false), false);
    assert.equal(needsRawEstimate('sqlite', true, false), true);
  });
});

describe('preflight of a backup run', () => {
  /** A real files source that counts how often preflight asks for its raw size (a walk of the whole tree). */
  function countingFilesSource(path: string): { source: Source; estimates: () => number } {
    const files = createFilesSource({ name: 'app', paths: [path], exclude: [], oneFileSystem: false });
    let calls = 0;
    return {
      source: {
        ...files,
        estimateRawBytes: (ctx) => {
          calls++;
          return files.estimateRawBytes(ctx);
        },
      },
      estimates: () => calls,
    };
  }

  it('walks the tree for the estimate on the first run only; a dry run always does', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'backproof-preflight-'));
    try {
      await mkdir(join(dir, 'app', 'sub'), { recursive: true });
      await writeFile(join(dir, 'app', 'sub', 'file.txt'), 'x'.repeat(10_000));
      await mkdir(join(dir, 'target'));
      const config = parseConfigText(
        `job: walk\nstateDir: ${join(dir, 'state')}\n` +
          `sources: [{ name: app, type: files, paths: ["${join(dir, 'app')}"] }]\n` +
          `targets: [{ name: disk, type: local, path: "${join(dir, 'target')}" }]\n`,
        join(dir, 'backproof.yml'),
        dir,
      );
      const { source, estimates } = countingFilesSource(join(dir, 'app'));
      const input = {
        config,
        takeOver: false,
        sources: [source],
        log: silentLogger,
        reporter: silentReporter,
        signal: new AbortController().signal,
        clock: systemClock,
      };
      const first = await runBackup(input);
      assert.equal(first.status, 'success', JSON.stringify(first.failures));
      assert.equal(estimates(), 1, 'a first run walks the tree for its estimate');

      const second = await runBackup(input);
      assert.equal(second.status, 'success', JSON.stringify(second.failures));
      assert.equal(estimates(), 1, 'with a committed run in history, the estimate comes from it: no walk');
      const freeSpace = second.steps.find((s) => s.name === 'preflight:target');
      assert.ok(freeSpace, 'the target was still checked');

      const plan = await planBackup(input);
      assert.equal(plan.ok, true);
      assert.equal(estimates(), 2, "a dry run shows each source's raw size, so it walks");
      assert.equal(plan.sources[0]?.estimatedRawBytes, 10_000);
      // The estimate of the plan is history's: the last set's size plus half.
      assert.equal(plan.estimateBytes, estimateRunBytes(second.bytes, 0));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
