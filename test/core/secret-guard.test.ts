// The run-time guard of core/backup.ts: a component a source marks `secret` is never written
// unencrypted. The config check refuses the only built-in such source (system) before a run, so the
// guard is reached here with a fake source injected into runBackup (BackupInput.sources), under a
// name the config gives a plain files source.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { parseConfigText } from '../../src/config/load.js';
import { runBackup } from '../../src/core/backup.js';
import { systemClock } from '../../src/core/context.js';
import { silentLogger } from '../../src/lib/log.js';
import { silentReporter } from '../../src/report/types.js';
import type { ComponentStream, Source } from '../../src/sources/types.js';
import { filesUnder } from '../helpers/files.js';

const AGE_HEADER = 'age-encryption.org/v1\n';

/** What the fake source did: which components it was asked for and how often their data was read. */
interface Trace {
  yielded: string[];
  reads: Map<string, number>;
  destroyed: Map<string, boolean>;
}

/** A component of `bytes` that counts the reads of its data stream. */
function component(name: string, bytes: Buffer, secret: boolean, trace: Trace): ComponentStream {
  trace.reads.set(name, 0);
  const data = new Readable({
    read() {
      trace.reads.set(name, (trace.reads.get(name) ?? 0) + 1);
      this.push(bytes);
      this.push(null);
    },
  });
  data.on('close', () => trace.destroyed.set(name, data.destroyed && !data.readableEnded));
  const facts = new Promise<{ warnings: string[]; secret?: boolean }>((resolve, reject) => {
    data.on('end', () => resolve({ warnings: [], ...(secret ? { secret: true } : {}) }));
    data.on('error', reject);
    data.on('close', () => {
      if (!data.readableEnded) reject(new Error(`${name} was destroyed before its end`));
    });
  });
  return { name, kind: 'command', extension: 'out', data, facts, ...(secret ? { secret: true } : {}) };
}

/** Source `name`: a plain component, then a secret one holding `secretBytes`, then one more plain one. */
function fakeSource(name: string, secretBytes: Buffer, trace: Trace): Source {
  return {
    name,
    type: 'files',
    async check() {
      return [];
    },
    async estimateRawBytes() {
      return 1024;
    },
    async *components() {
      for (const [suffix, bytes, secret] of [
        ['plain', Buffer.from('nothing to hide\n'), false],
        ['secrets', secretBytes, true],
        ['after', Buffer.from('asked for after the secrets\n'), false],
      ] as const) {
        trace.yielded.push(`${name}.${suffix}`);
        yield component(`${name}.${suffix}`, bytes, secret, trace);
      }
    },
  };
}

describe('the run-time guard against writing secret components unencrypted', () => {
  let dir: string;
  let targetDir: string;
  let trace: Trace;
  const secret = Buffer.from(`SECRET-GUARD-${randomBytes(8).toString('hex')} private key\n`);

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'backproof-secret-guard-'));
    targetDir = join(dir, 'target');
    await mkdir(targetDir);
    await mkdir(join(dir, 'vault'));
    trace = { yielded: [], reads: new Map(), destroyed: new Map() };
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs a job of one source (YAML flow map), served by the fake source under its name, plus more YAML (encryption). */
  function backUp(sourceYaml: string, encryptionYaml = '') {
    const config = parseConfigText(
      `job: guard\nstateDir: ${join(dir, 'state')}\n` +
        `sources: [${sourceYaml}]\n` +
        `targets: [{ name: disk, type: local, path: "${targetDir}" }]\n` +
        'checks: { minFree: { bytes: 0, percent: "0%" } }\n' +
        encryptionYaml,
      join(dir, 'backproof.yml'),
      dir,
    );
    const name = config.sources[0]?.name ?? 'missing';
    return runBackup({
      config,
      takeOver: false,
      sources: [fakeSource(name, secret, trace)],
      log: silentLogger,
      reporter: silentReporter,
      signal: new AbortController().signal,
      clock: systemClock,
    });
  }

  /** Every byte on the target, file by file. */
  async function held(): Promise<Map<string, Buffer>> {
    const all = new Map<string, Buffer>();
    for (const file of await filesUnder(targetDir)) all.set(file, await readFile(join(targetDir, file)));
    return all;
  }

  it('without encryption: fails the run naming the component, the fix and the source; reads no byte of it; commits nothing', async () => {
    const report = await backUp(`{ name: vault, type: files, paths: ["${join(dir, 'vault')}"] }`);
    assert.equal(report.status, 'failure', JSON.stringify(report.failures));
    assert.equal(report.exitCode, 1);
    const failure = report.failures.find((f) => f.component === 'vault.secrets');
    assert.ok(failure, JSON.stringify(report.failures));
    assert.equal(failure.step, 'source');
    assert.match(failure.message, /^component vault\.secrets holds secrets and is not written unencrypted: /);
    assert.match(failure.message, /add encryption: \{ recipients: \["age1…"\] \}/);
    assert.match(failure.message, /allowUnencryptedSecrets: true on source vault$/);
    assert.ok(
      report.steps.some((s) => s.name === 'source' && s.status === 'failed' && s.component === 'vault.secrets'),
      JSON.stringify(report.steps),
    );

    assert.equal(trace.reads.get('vault.secrets'), 0, 'the secret data was never read');
    assert.equal(trace.destroyed.get('vault.secrets'), true, 'the secret data stream was destroyed');
    assert.equal(trace.reads.get('vault.plain'), 1, 'the component before it was backed up');
    assert.deepEqual(trace.yielded, ['vault.plain', 'vault.secrets'], 'no component is asked for after it');

    const files = await held();
    assert.equal(
      [...files.keys()].some((f) => f.endsWith('manifest.json')),
      false,
      `no set is committed: ${[...files.keys()].join(', ')}`,
    );
    for (const [file, bytes] of files) {
      assert.equal(bytes.includes(secret), false, `${file} holds the secret`);
      assert.doesNotMatch(file, /vault\.secrets/, `${file} is an object of the secret component`);
    }
  });

  it('with encryption: the secret component is written, as an age file, and the set says it is secret', async () => {
    const keyFile = join(dir, 'age.key');
    execFileSync('age-keygen', ['-o', keyFile], { stdio: 'ignore' });
    const recipient = execFileSync('age-keygen', ['-y', keyFile], { encoding: 'utf8' }).trim();
    const report = await backUp(
      `{ name: vault, type: files, paths: ["${join(dir, 'vault')}"] }`,
      `encryption: { recipients: ["${recipient}"] }\n`,
    );
    assert.equal(report.status, 'success', JSON.stringify(report.failures));
    assert.deepEqual(trace.yielded, ['vault.plain', 'vault.secrets', 'vault.after']);

    const files = await held();
    const manifestFile = [...files.keys()].find((f) => f.endsWith('manifest.json'));
    assert.ok(manifestFile, [...files.keys()].join(', '));
    const manifest = JSON.parse((files.get(manifestFile) as Buffer).toString('utf8')) as {
      components: { name: string; object: string; secret?: boolean }[];
    };
    const stored = manifest.components.find((c) => c.name === 'vault.secrets');
    assert.equal(stored?.secret, true);
    assert.match(stored?.object ?? '', /\.age$/);
    const object = [...files].find(([file]) => file.endsWith(`/${stored?.object}`));
    assert.ok(object, `${stored?.object} is on the target`);
    assert.equal(object[1].subarray(0, AGE_HEADER.length).toString('latin1'), AGE_HEADER);
    const plain = execFileSync('sh', ['-c', 'age -d -i "$1" | zstd -q -d -c', 'sh', keyFile], { input: object[1] });
    assert.deepEqual(plain, secret, 'the key opens exactly the secret bytes');
    for (const [file, bytes] of files) assert.equal(bytes.includes(secret), false, `${file} holds the secret in clear`);
  });

  it('with the source’s explicit consent (allowUnencryptedSecrets: true): written unencrypted, as asked', async () => {
    const report = await backUp(
      `{ name: vault, type: system, root: "${join(dir, 'vault')}", allowUnencryptedSecrets: true }`,
    );
    assert.equal(report.status, 'success', JSON.stringify(report.failures));
    assert.deepEqual(trace.yielded, ['vault.plain', 'vault.secrets', 'vault.after']);
    const object = [...(await held())].find(([file]) => /\/vault\.secrets\.out\.(zst|gz)$/.test(file));
    assert.ok(object, 'the secret component is on the target, unencrypted');
    assert.deepEqual(execFileSync('zstd', ['-q', '-d', '-c'], { input: object[1] }), secret);
  });
});
