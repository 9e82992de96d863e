// Sizes beyond 2^32 stay exact integers everywhere: manifest, report, index, human output.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeSandbox, runCli } from '../helpers/cli.js';

// A sparse file: cheap on disk, 4 GiB and a bit through the pipeline.
const BIG = 2 ** 32 + 12_345;
/**
 * A number written with an exponent, as JavaScript prints one (2.9094e+08, 1e-7: the sign is always
 * there), so hex digests and UUIDs ("46e1") do not match.
 */
const EXPONENT = /\d(\.\d+)?e[+-]\d/i;
/** JSON text with every string literal emptied: what is left outside strings are the numbers. */
const numbersOnly = (json: string) => json.replace(/"(?:[^"\\]|\\.)*"/g, '""');

describe('sizes beyond 2^32', () => {
  it('are recorded exactly and never printed with an exponent', async () => {
    // Not makeSandbox's default prefix: "bp-e2e-" and a random digit read as an exponent ("2e-9").
    const sandbox = await makeSandbox('bp-sizes-');
    const source = join(sandbox.dir, 'data');
    await mkdir(source);
    // On tmpfs a hole reads as the shared zero page: on ext4 the first read of a fresh sparse file
    // fills 4 GiB of page cache (about 10 s of system time, and other tests' cache evicted).
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'tmpfs', source]);
    try {
      await writeFile(join(source, 'empty'), '');
      await writeFile(join(source, 'big.img'), '');
      await truncate(join(source, 'big.img'), BIG);
      await sandbox.writeConfig({ sources: [{ name: 'data', type: 'files', paths: [source] }] });
      // One run of 4 GiB, in human form: its summary and progress lines are checked here, and its
      // report as the state database holds it, the very JSON text `backup --json` prints for a run
      // (core/backup.ts stores JSON.stringify of the report it returns).
      const backup = await runCli(['--config', sandbox.configPath, 'backup']);
      assert.equal(backup.code, 0, backup.stderr);
      assert.match(backup.stdout, /4\.3 GB raw/);
      assert.doesNotMatch(backup.stdout + backup.stderr, EXPONENT);
      const reportText = execFileSync('sqlite3', [join(sandbox.stateDir, 'state.db'), 'SELECT report FROM runs'], {
        encoding: 'utf8',
      }).trim();
      assert.doesNotMatch(numbersOnly(reportText), /\d[eE]/, 'no number in the JSON report has an exponent');
      const report = JSON.parse(reportText) as { status: string; rawBytes: number; components: { rawBytes: number }[] };
      assert.equal(report.status, 'success');
      // pax tar: headers and padding around the file; the raw stream is larger than the file itself.
      assert.ok(Number.isSafeInteger(report.rawBytes) && report.rawBytes > BIG);
      const setDir = execFileSync('find', [sandbox.targetDir, '-name', 'manifest.json', '-printf', '%h'], {
        encoding: 'utf8',
      });
      const manifestText = await readFile(join(setDir, 'manifest.json'), 'utf8');
      assert.doesNotMatch(numbersOnly(manifestText), /\d[eE]/);
      const manifest = JSON.parse(manifestText);
      assert.equal(manifest.components[0].rawBytes, report.rawBytes);
      const measured = Number(
        execFileSync('sh', ['-c', 'zstd -q -d -c "$1" | wc -c', 'sh', join(setDir, 'data.tar.zst')], {
          encoding: 'utf8',
        }).trim(),
      );
      assert.equal(measured, report.rawBytes, 'rawBytes is the exact length of the tar stream');
      const index = execFileSync('zstd', ['-q', '-d', '-c', join(setDir, 'data.index.jsonl.zst')], {
        encoding: 'utf8',
      });
      const big = index
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { path: string; size?: number })
        .find((e) => e.path.endsWith('big.img'));
      assert.equal(big?.size, BIG);
      assert.match(index, new RegExp(`"size":${BIG}\\b`), 'written as a plain integer');

      const human = await runCli(['--config', sandbox.configPath, 'list']);
      assert.equal(human.code, 0);
      assert.doesNotMatch(human.stdout + human.stderr, EXPONENT);
      const listed = await runCli(['--config', sandbox.configPath, 'list', '--json']);
      assert.equal(listed.code, 0);
      assert.match(listed.stdout, new RegExp(`"rawBytes": ${report.rawBytes}\\b`), listed.stdout);
      assert.doesNotMatch(numbersOnly(listed.stdout), /\d[eE]/);
    } finally {
      execFileSync('umount', [source]);
      await sandbox.cleanup();
    }
  });
});
