// `backproof verify` through the real CLI, on sets made by real backups on a local disk, a NAS over
// SFTP and S3: a flipped byte, a deleted object, a corrupt manifest, a middle set deleted (with and
// without a tombstone) and the newest set deleted are each named set by set, with exit 1.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { loadConfig } from '../../src/config/load.js';
import { manifestKey, objectKey, setPrefix } from '../../src/set/layout.js';
import { parseManifest } from '../../src/set/manifest.js';
import { TOMBSTONE_FORMAT, writeTombstone } from '../../src/set/tombstone.js';
import { openStateDb } from '../../src/state/store.js';
import { createTarget } from '../../src/targets/index.js';
import { type CliResult, jsonOf, makeSandbox, runCli, type Sandbox } from '../helpers/cli.js';
import { type RemoteTargets, remoteTargets } from '../helpers/remote-targets.js';
import { services, uniqueName } from '../helpers/services.js';

interface ObjectCheck {
  name: string;
  result: string;
  level?: string;
}
interface SetCheck {
  setId: string;
  ok: boolean;
  manifest: string;
  objects: ObjectCheck[];
  problems: string[];
}
interface TargetCheck {
  target: string;
  ok: boolean;
  sets: SetCheck[];
  incomplete: string[];
  chain: { scope: string; explainedGaps: string[]; headChecked: boolean; problems: string[] } | null;
  problems: string[];
  notes: string[];
}
interface Report {
  job: string;
  selection: string;
  ok: boolean;
  exitCode: number;
  stateDatabase: boolean;
  runId: number | null;
  targets: TargetCheck[];
  problems: string[];
  notes: string[];
}

const TARGETS = ['disk', 'nas', 'cloud'] as const;
type TargetName = (typeof TARGETS)[number];

describe('verify through the CLI on a local disk, a NAS and S3', () => {
  let sandbox: Sandbox;
  let remote: RemoteTargets;
  let client: S3Client;
  let bucket: string;
  let prefix: string;
  let nasRoot: string;
  /** Set ids of the backups made, oldest first. */
  const setIds: string[] = [];
  /** A config like the sandbox's, with a state directory that has no database. */
  let freshConfigPath: string;

  const verify = (...args: string[]) => runCli(['--config', sandbox.configPath, 'verify', ...args]);
  const verifyJson = async (...args: string[]): Promise<{ result: CliResult; report: Report }> => {
    const result = await verify(...args, '--json');
    return { result, report: jsonOf<Report>(result) };
  };
  const targetOf = (report: Report, name: TargetName) => report.targets.find((t) => t.target === name) as TargetCheck;

  // Where each target keeps a key, and how the test reaches behind backproof's back.
  const localFile = (key: string) => join(sandbox.targetDir, key);
  const nasFile = (key: string) => join(nasRoot, key);
  const s3Key = (key: string) => `${prefix}${key}`;
  async function readS3(key: string): Promise<Buffer> {
    const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: s3Key(key) }));
    return Buffer.from((await object.Body?.transformToByteArray()) ?? new Uint8Array());
  }
  async function writeS3(key: string, bytes: Buffer): Promise<void> {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: s3Key(key), Body: bytes }));
  }
  const s3Keys = (under = '') => remote.s3Keys(`${prefix}${under}`);

  /** Reads a key from every target, hands the bytes to `change`, writes the result back in place. */
  async function everywhere(key: string, change: (bytes: Buffer) => Buffer | undefined): Promise<Buffer[]> {
    const originals = [await readFile(localFile(key)), await readFile(nasFile(key)), await readS3(key)];
    const changed = originals.map((bytes) => change(Buffer.from(bytes)));
    await (changed[0] ? writeFile(localFile(key), changed[0]) : rm(localFile(key)));
    await (changed[1] ? writeFile(nasFile(key), changed[1]) : rm(nasFile(key)));
    if (changed[2]) await writeS3(key, changed[2]);
    else await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: s3Key(key) }));
    return originals;
  }
  async function putBack(key: string, originals: Buffer[]): Promise<void> {
    await writeFile(localFile(key), originals[0] as Buffer);
    execFileSync('install', ['-m', '600', '-o', services().ssh.user, '/dev/null', nasFile(key)]);
    await writeFile(nasFile(key), originals[1] as Buffer);
    await writeS3(key, originals[2] as Buffer);
  }
  async function deleteSetEverywhere(setId: string): Promise<void> {
    const dir = setPrefix('demo', setId);
    await rm(localFile(dir), { recursive: true });
    await rm(nasFile(dir), { recursive: true });
    for (const key of await s3Keys(`${dir}/`)) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  }

  before(async () => {
    sandbox = await makeSandbox('bp-verify-');
    const source = join(sandbox.dir, 'app');
    await mkdir(join(source, 'public'), { recursive: true });
    await writeFile(join(source, 'public', 'index.php'), '<?php echo "hello";\n'.repeat(300));
    await writeFile(join(source, 'upload.bin'), randomBytes(200_000));
    remote = await remoteTargets(sandbox.dir, 'vf');
    client = remote.client;
    bucket = remote.bucket;
    const nas = remote.sftpTarget('nas');
    const cloud = remote.s3Target('cloud');
    prefix = String(cloud.prefix);
    nasRoot = remote.nasRoot(nas);
    const config = {
      sources: [{ name: 'app', type: 'files', paths: [source] }],
      targets: [{ name: 'disk', type: 'local', path: sandbox.targetDir }, nas, cloud],
    };
    await sandbox.writeConfig(config);
    freshConfigPath = join(sandbox.dir, 'fresh.yml');
    const fresh = (await readFile(sandbox.configPath, 'utf8')).replace(
      sandbox.stateDir,
      join(sandbox.dir, 'fresh-state'),
    );
    await writeFile(freshConfigPath, fresh);
    for (let i = 0; i < 3; i++) {
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

  it('proves every object of every set on each target, reading S3 back whole, and records the run', async () => {
    const { result, report } = await verifyJson('--set', 'all');
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.equal(report.ok, true);
    assert.equal(report.exitCode, 0);
    assert.equal(report.selection, 'all');
    assert.equal(report.stateDatabase, true);
    assert.deepEqual(report.problems, []);
    const newestFirst = [...setIds].reverse();
    for (const name of TARGETS) {
      const check = targetOf(report, name);
      assert.deepEqual(
        check.sets.map((s) => [s.setId, s.ok, s.manifest]),
        newestFirst.map((id) => [id, true, 'ok']),
        name,
      );
      assert.deepEqual(check.sets[0]?.objects.map((o) => o.name).sort(), [
        'RUNBOOK.md',
        'app.index.jsonl.zst',
        'app.tar.zst',
        'config.redacted.yml',
      ]);
      assert.equal(check.chain?.scope, 'all');
      assert.equal(check.chain?.headChecked, true, `${name}: the chain head from the state database was checked`);
      assert.deepEqual(check.chain?.problems, []);
    }
    const levels = Object.fromEntries(
      report.targets.map((t) => [t.target, [...new Set(t.sets.flatMap((s) => s.objects.map((o) => o.level)))]]),
    );
    assert.deepEqual(levels, { disk: ['reread'], nas: ['remote-hash'], cloud: ['reread'] });

    // Recorded: a verify run, and the level each object reached (S3's now a full read-back).
    assert.ok(report.runId !== null);
    const state = openStateDb(sandbox.stateDir);
    try {
      const run = state.getRun(report.runId);
      assert.equal(run?.command, 'verify');
      assert.equal(run?.status, 'success');
      const newest = setIds.at(-1) as string;
      assert.deepEqual(
        [...new Set(state.objectVerifications('demo', 'cloud', newest).map((v) => v.level))],
        ['reread'],
      );
    } finally {
      state.close();
    }

    // The human form: per target and set, OK, and a verdict; the default is the newest set only.
    const human = await verify();
    assert.equal(human.code, 0, human.stderr);
    for (const name of TARGETS) assert.match(human.stdout, new RegExp(`^${name} \\(`, 'm'));
    assert.equal((human.stdout.match(new RegExp(`^  ${setIds.at(-1)}  OK `, 'gm')) ?? []).length, 3, human.stdout);
    assert.doesNotMatch(human.stdout, new RegExp(setIds[0] as string));
    assert.match(human.stdout, /^verify: OK, 3 set\(s\) on 3 target\(s\) intact$/m);
  });

  it('names one flipped byte in an object on each target kind, then passes again once it is put back', async () => {
    const victim = setIds[1] as string;
    const key = objectKey('demo', victim, 'app.tar.zst');
    const originals = await everywhere(key, (bytes) => {
      bytes[100] = (bytes[100] as number) ^ 0x20; // same size, one byte different
      return bytes;
    });
    try {
      const { result, report } = await verifyJson('--set', 'all');
      assert.equal(result.code, 1, result.stdout);
      assert.equal(report.ok, false);
      for (const name of TARGETS) {
        const check = targetOf(report, name);
        const set = check.sets.find((s) => s.setId === victim);
        assert.equal(set?.ok, false, name);
        assert.deepEqual(
          set?.objects.filter((o) => o.result !== 'ok').map((o) => [o.name, o.result]),
          [['app.tar.zst', 'wrong-hash']],
          name,
        );
        assert.ok(
          check.sets.filter((s) => s.setId !== victim).every((s) => s.ok),
          `${name}: the other sets are fine`,
        );
      }
      for (const name of TARGETS) {
        assert.ok(
          report.problems.some((p) =>
            new RegExp(
              `^target ${name}: set ${victim}: app\\.tar\\.zst has SHA-256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}: its bytes are damaged; take this set from another target`,
            ).test(p),
          ),
          `${name}: ${report.problems.join('\n')}`,
        );
      }
      const human = await verify('--set', victim);
      assert.equal(human.code, 1);
      assert.match(human.stdout, new RegExp(`^  ${victim}  FAILED  `, 'm'));
      assert.match(human.stdout, /^ {4}✗ app\.tar\.zst has SHA-256 .*its bytes are damaged/m);
      assert.match(human.stdout, /^verify: FAILED, 3 problem\(s\)$/m);
    } finally {
      await putBack(key, originals);
    }
    const again = await verify('--set', 'all');
    assert.equal(again.code, 0, again.stdout);
  });

  it('names an object deleted on each target kind', async () => {
    const victim = setIds[2] as string;
    const key = objectKey('demo', victim, 'app.index.jsonl.zst');
    const originals = await everywhere(key, () => undefined);
    try {
      const { result, report } = await verifyJson('--set', victim);
      assert.equal(result.code, 1, result.stdout);
      assert.deepEqual(
        report.problems.map((p) => p.replace(/; take this set.*$/, '')),
        TARGETS.map((name) => `target ${name}: set ${victim}: app.index.jsonl.zst is missing`),
      );
    } finally {
      await putBack(key, originals);
    }
  });

  it('names a corrupt manifest on each target kind, and the next set that links to it', async () => {
    const victim = setIds[1] as string;
    const key = manifestKey('demo', victim);
    const originals = await everywhere(key, (bytes) =>
      Buffer.from(bytes.toString('utf8').replace('"backproof/1"', '"backproof/9"')),
    );
    try {
      const { result, report } = await verifyJson('--set', 'all');
      assert.equal(result.code, 1, result.stdout);
      for (const name of TARGETS) {
        const check = targetOf(report, name);
        assert.equal(check.sets.find((s) => s.setId === victim)?.manifest, 'corrupt', name);
        const problems = check.problems.join('\n');
        assert.match(problems, new RegExp(`set ${victim}: manifest\\.json is corrupt \\(format: `));
        assert.match(
          problems,
          new RegExp(
            `set ${setIds[2]}: it links to set ${victim}, whose manifest\\.json had SHA-256 [0-9a-f]{64} when ${setIds[2]} was made; it now has [0-9a-f]{64} and is corrupt`,
          ),
        );
      }
      // latest looks at the newest set and its own link only: the link to the changed manifest.
      const latest = await verifyJson();
      assert.equal(latest.result.code, 1, latest.result.stdout);
      assert.deepEqual(
        latest.report.problems.map((p) => p.replace(/, whose manifest.*$/, '')),
        TARGETS.map((name) => `target ${name}: set ${setIds[2]}: it links to set ${victim}`),
      );
    } finally {
      await putBack(key, originals);
    }
  });

  it('refuses an unknown target or a malformed --set with exit 2, and verifies one target alone', async () => {
    const unknown = await verify('--target', 'offsite');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no target named "offsite"; the config has: disk, nas, cloud/);
    const bad = await verify('--set', 'yesterday');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--set takes latest, all or a set id/);
    const { result, report } = await verifyJson('--target', 'cloud', '--set', setIds[0] as string);
    assert.equal(result.code, 0, result.stdout);
    assert.deepEqual(
      report.targets.map((t) => [t.target, t.sets.map((s) => s.setId)]),
      [['cloud', [setIds[0]]]],
    );
  });

  it('a target that cannot be read is a problem, and the others are still verified', async () => {
    const text = (await readFile(sandbox.configPath, 'utf8')).replace(
      `bucket: ${bucket}`,
      `bucket: ${uniqueName('gone')}`,
    );
    const broken = join(sandbox.dir, 'broken-bucket.yml');
    await writeFile(broken, text);
    const result = await runCli(['--config', broken, 'verify', '--json']);
    const report = jsonOf<Report>(result);
    assert.equal(result.code, 1, result.stdout);
    assert.deepEqual(
      report.targets.map((t) => [t.target, t.ok]),
      [
        ['disk', true],
        ['nas', true],
        ['cloud', false],
      ],
    );
    assert.match(targetOf(report, 'cloud').problems[0] ?? '', /^cannot read this target: .*bucket/i);
  });

  it('works on a new server with only the config: no state database is needed, none is created, and it says what it skipped', async () => {
    const result = await runCli(['--config', freshConfigPath, 'verify', '--set', 'all', '--json']);
    const report = jsonOf<Report>(result);
    assert.equal(result.code, 0, result.stdout);
    assert.equal(report.stateDatabase, false);
    assert.equal(report.runId, null);
    assert.ok(report.targets.every((t) => t.chain?.headChecked === false));
    assert.match(report.notes.join('\n'), /no state database on this host: the chain heads were not checked/);
    assert.equal(existsSync(join(sandbox.dir, 'fresh-state', 'state.db')), false);
  });

  it('reports a middle set deleted by hand, and accepts one pruned with its tombstone', async () => {
    const [first, middle, third] = setIds as [string, string, string];
    const manifests = await Promise.all(
      TARGETS.map(async (name) => {
        const key = manifestKey('demo', middle);
        const bytes =
          name === 'disk'
            ? await readFile(localFile(key))
            : name === 'nas'
              ? await readFile(nasFile(key))
              : await readS3(key);
        const parsed = parseManifest(bytes, middle);
        assert.ok(parsed.ok);
        return parsed;
      }),
    );
    await deleteSetEverywhere(middle);
    const gap = await verifyJson('--set', 'all');
    assert.equal(gap.result.code, 1, gap.result.stdout);
    assert.deepEqual(
      gap.report.problems.map((p) => p.replace(/: it was deleted outside backproof.*$/, '')),
      TARGETS.map(
        (name) =>
          `target ${name}: set ${third}: it links to set ${middle}, which is not on the target and has no tombstone`,
      ),
    );
    const human = await verify('--set', 'all');
    assert.match(human.stdout, /^ {2}hash chain: FAILED$/m);

    // What prune will do: a tombstone with the set's manifest hash and its own previous link.
    const { config } = await loadConfig(sandbox.configPath);
    for (const [i, targetConfig] of config.targets.entries()) {
      const target = createTarget(targetConfig);
      const parsed = manifests[i];
      assert.ok(parsed?.ok);
      try {
        const written = await writeTombstone(
          target,
          'demo',
          {
            format: TOMBSTONE_FORMAT,
            setId: middle,
            manifestSha256: parsed.sha256,
            previous: parsed.manifest.previous,
            reason: 'retention (written by the test, as prune will)',
            at: new Date().toISOString(),
          },
          { signal: new AbortController().signal, now: () => new Date() },
        );
        assert.equal(written, 'written');
      } finally {
        await target.close();
      }
    }
    assert.equal(manifestOf(manifests[0]).previous?.setId, first, "the tombstone carries the pruned set's own link");
    const pruned = await verifyJson('--set', 'all');
    assert.equal(pruned.result.code, 0, pruned.result.stdout);
    for (const name of TARGETS) assert.deepEqual(targetOf(pruned.report, name).chain?.explainedGaps, [middle], name);
  });

  it('notices the newest set deleted through the chain head in the state database (and says it cannot without one)', async () => {
    const newest = setIds[2] as string; // the middle one is already pruned
    await deleteSetEverywhere(newest);
    const { result, report } = await verifyJson();
    assert.equal(result.code, 1, result.stdout);
    for (const name of TARGETS) {
      const check = targetOf(report, name);
      assert.deepEqual(
        check.sets.map((s) => [s.setId, s.ok]),
        [[setIds[0], true]],
        `${name}: the newest left is intact`,
      );
      assert.match(
        check.chain?.problems.join('\n') ?? '',
        new RegExp(
          `^set ${newest}, the newest set this host committed to this target \\(at [0-9T:.-]+Z\\), is gone, and the newest set there now is the older ${setIds[0]}: the newest sets were deleted outside backproof; run \`backproof backup\` now`,
        ),
        name,
      );
    }
    const human = await verify();
    assert.equal(human.code, 1);
    assert.match(human.stdout, new RegExp(`✗ set ${newest}, the newest set this host committed`));

    const fresh = await runCli(['--config', freshConfigPath, 'verify', '--json']);
    assert.equal(fresh.code, 0, 'without the state database nothing can tell');
    assert.match(jsonOf<Report>(fresh).notes.join('\n'), /deleting the newest sets would go unnoticed/);
  });
});

function manifestOf(result: ReturnType<typeof parseManifest> | undefined) {
  assert.ok(result?.ok);
  return result.manifest;
}
