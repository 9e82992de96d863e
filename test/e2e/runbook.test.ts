// `backproof runbook` through the real CLI: the RUNBOOK.md stored in a set made by a real backup,
// from a local disk or S3, checked against the manifest; a damaged or missing copy is replaced by
// one rendered from the manifest (said on stderr, exit 3); a set nobody has is exit 1.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { manifestKey, objectKey } from '../../src/set/layout.js';
import { parseManifest } from '../../src/set/manifest.js';
import { renderRunbook } from '../../src/set/runbook.js';
import { jsonOf, makeSandbox, runCli, type Sandbox } from '../helpers/cli.js';
import { type RemoteTargets, remoteTargets } from '../helpers/remote-targets.js';

interface RunbookDocument {
  job: string;
  setId: string;
  target: string;
  source: 'stored' | 'rendered';
  reason: string | null;
  runbook: string;
}

describe('runbook through the CLI', () => {
  let sandbox: Sandbox;
  let remote: RemoteTargets;
  let client: S3Client;
  let bucket: string;
  let prefix: string;
  /** Oldest first. */
  const setIds: string[] = [];

  const runbook = (...args: string[]) => runCli(['--config', sandbox.configPath, 'runbook', ...args]);
  const localFile = (key: string) => join(sandbox.targetDir, key);
  async function readS3(key: string): Promise<string> {
    const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}${key}` }));
    return (await object.Body?.transformToString('utf8')) ?? '';
  }
  async function manifestOf(setId: string) {
    const parsed = parseManifest(await readFile(localFile(manifestKey('demo', setId))), setId);
    assert.ok(parsed.ok);
    return parsed.manifest;
  }

  before(async () => {
    sandbox = await makeSandbox('bp-runbook-');
    const source = join(sandbox.dir, 'app');
    await mkdir(source);
    await writeFile(join(source, 'index.php'), '<?php echo "hello";\n'.repeat(100));
    await writeFile(join(source, 'blob.bin'), randomBytes(50_000));
    remote = await remoteTargets(sandbox.dir, 'rb');
    client = remote.client;
    bucket = remote.bucket;
    const cloud = remote.s3Target('cloud');
    prefix = String(cloud.prefix);
    await sandbox.writeConfig({
      sources: [{ name: 'app', type: 'files', paths: [source] }],
      targets: [{ name: 'disk', type: 'local', path: sandbox.targetDir }, cloud],
    });
    for (let i = 0; i < 2; i++) {
      const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
      assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
      setIds.push(jsonOf<{ setId: string }>(result).setId);
    }
  });
  after(async () => {
    await remote?.cleanup();
    client?.destroy();
    await sandbox?.cleanup();
  });

  it("prints the newest set's stored RUNBOOK.md exactly, from the first target", async () => {
    const newest = setIds[1] as string;
    const result = await runbook();
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const stored = await readFile(localFile(objectKey('demo', newest, 'RUNBOOK.md')), 'utf8');
    assert.equal(result.stdout, stored);
    assert.match(result.stdout, new RegExp(`^# Restore runbook: set \`${newest}\` of job \`demo\``));
  });

  it('prints an older set by id, and the copy stored on S3 with --target', async () => {
    const oldest = setIds[0] as string;
    const byId = await runbook('--set', oldest);
    assert.equal(byId.code, 0, byId.stderr);
    assert.equal(byId.stdout, await readFile(localFile(objectKey('demo', oldest, 'RUNBOOK.md')), 'utf8'));
    const fromS3 = await runbook('--set', oldest, '--target', 'cloud');
    assert.equal(fromS3.code, 0, fromS3.stderr);
    assert.equal(fromS3.stdout, await readS3(objectKey('demo', oldest, 'RUNBOOK.md')));
    assert.match(fromS3.stdout, /Stored at: s3 /, "each target's copy describes where it is stored");
  });

  it('--json is one document saying where the runbook came from', async () => {
    const result = await runbook('--json');
    assert.equal(result.code, 0, result.stderr);
    const document = jsonOf<RunbookDocument>(result);
    assert.deepEqual(Object.keys(document).sort(), ['job', 'reason', 'runbook', 'setId', 'source', 'target']);
    assert.equal(document.setId, setIds[1]);
    assert.equal(document.target, 'disk');
    assert.equal(document.source, 'stored');
    assert.equal(document.reason, null);
    assert.equal(
      document.runbook,
      await readFile(localFile(objectKey('demo', setIds[1] as string, 'RUNBOOK.md')), 'utf8'),
    );
  });

  it('renders the runbook from the manifest when the stored one is damaged or missing, says so, and exits 3', async () => {
    const setId = setIds[1] as string;
    const file = localFile(objectKey('demo', setId, 'RUNBOOK.md'));
    const original = await readFile(file);
    const manifest = await manifestOf(setId);
    const expected = renderRunbook(manifest, { targetDescription: `local ${sandbox.targetDir}` });
    try {
      const damaged = Buffer.from(original);
      damaged[10] = (damaged[10] as number) ^ 0x01;
      await writeFile(file, damaged);
      const result = await runbook();
      assert.equal(result.code, 3, result.stderr);
      assert.match(
        result.stderr,
        new RegExp(
          `RUNBOOK\\.md of set ${setId} on target disk is damaged \\(${original.length} bytes with SHA-256 [0-9a-f]{64}; the manifest says ${original.length} bytes with [0-9a-f]{64}\\); printing one rendered from its manifest instead`,
        ),
      );
      assert.equal(result.stdout, expected);
      for (const object of manifest.objects)
        assert.ok(result.stdout.includes(`${object.sha256}  ${object.name}`), object.name);

      await writeFile(file, Buffer.concat([original, Buffer.from('appended\n')]));
      const longer = await runbook('--json');
      assert.equal(longer.code, 3);
      assert.equal(jsonOf<RunbookDocument>(longer).source, 'rendered');
      assert.match(jsonOf<RunbookDocument>(longer).reason ?? '', /^damaged or unreadable \(.*larger than \d+ bytes/);

      await rm(file);
      const missing = await runbook('--json');
      assert.equal(missing.code, 3);
      const document = jsonOf<RunbookDocument>(missing);
      assert.equal(document.source, 'rendered');
      assert.equal(document.reason, 'missing');
      assert.equal(document.runbook, expected);
      assert.match(missing.stderr, /is missing; printing one rendered from its manifest instead/);
    } finally {
      await writeFile(file, original);
    }
  });

  it('reads the next target when the first cannot be read', async () => {
    const text = (await readFile(sandbox.configPath, 'utf8')).replace(
      sandbox.targetDir,
      join(sandbox.dir, 'unmounted'),
    );
    const config = join(sandbox.dir, 'unmounted.yml');
    await writeFile(config, text);
    const result = await runCli(['--config', config, 'runbook', '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(jsonOf<RunbookDocument>(result).target, 'cloud');
    assert.match(result.stderr, /cannot read target disk .*does not exist/);
  });

  it('a set no target has is exit 1, naming what exists; a malformed --set is exit 2', async () => {
    const absent = await runbook('--set', '20200101T000000Z-aaaaaa');
    assert.equal(absent.code, 1);
    assert.match(absent.stderr, /set 20200101T000000Z-aaaaaa is not committed on disk, cloud/);
    assert.match(absent.stderr, new RegExp(`newest sets there: ${setIds[1]}, ${setIds[0]}`));
    assert.equal(absent.stdout, '');
    const json = await runbook('--set', '20200101T000000Z-aaaaaa', '--json');
    assert.equal(json.code, 1);
    assert.equal(jsonOf<{ exitCode: number }>(json).exitCode, 1);
    const malformed = await runbook('--set', 'newest');
    assert.equal(malformed.code, 2);
    assert.match(malformed.stderr, /"newest" is not a set id/);
  });
});
