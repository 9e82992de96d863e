// prune's core against real targets (a local directory, the test sshd over SFTP, Swift's S3) holding
// histories of sets written through each target's API over many simulated days. The sets that stay
// must be exactly those decideRetention keeps; every deleted set leaves a tombstone with its own
// link; nothing else on the target changes (every key listed before and after, behind backproof's
// back); `verify --set all` still passes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { parseConfigText } from '../../src/config/load.js';
import type { JobConfig } from '../../src/config/schema.js';
import { assertNewestKept, type PruneInput, pruneTarget, runPrune } from '../../src/core/prune.js';
import { runVerify } from '../../src/core/verify.js';
import { silentLogger } from '../../src/lib/log.js';
import { decideRetention, type RetentionRules } from '../../src/policy/retention.js';
import { manifestKey, objectKey, setPrefix, tombstoneKey } from '../../src/set/layout.js';
import { readTombstones, serializeTombstone, TOMBSTONE_FORMAT } from '../../src/set/tombstone.js';
import { createTarget } from '../../src/targets/index.js';
import type { Target } from '../../src/targets/types.js';
import { filesUnder } from '../helpers/files.js';
import {
  type PlannedSet,
  put,
  type SeededSet,
  seedSets,
  setIdAt,
  simulatedHistory,
  writeOwner,
} from '../helpers/seed-sets.js';
import { services, uniqueName } from '../helpers/services.js';

process.env.AWS_EC2_METADATA_DISABLED = 'true';

const JOB = 'demo';
const HOST_ID = randomUUID();

/** A JobConfig with these targets (and a source nobody reads). */
function configWith(targets: Record<string, unknown>[], stateDir: string): JobConfig {
  const text = JSON.stringify({
    job: JOB,
    stateDir,
    sources: [{ name: 'app', type: 'command', command: 'true' }],
    targets,
  });
  return parseConfigText(text, 'test.yml', stateDir);
}

function pruneInput(config: JobConfig, targets: Target[], extra: Partial<PruneInput> = {}): PruneInput {
  return {
    config,
    targets,
    hostId: HOST_ID,
    dryRun: false,
    signal: AbortSignal.timeout(120_000),
    log: silentLogger,
    now: () => new Date(),
    ...extra,
  };
}

/** What decideRetention keeps, asked here on its own from the planned history. */
function expectedKeep(
  plan: readonly PlannedSet[],
  rules: RetentionRules,
  timeZone: string,
): { keep: string[]; drop: string[] } {
  const decisions = decideRetention(
    plan.map((p) => ({ setId: p.setId, startedAt: p.startedAt, suspect: p.suspect, valid: !p.corrupt })),
    rules,
    { timeZone },
  );
  // The history is small: make sure it still gives every rule both a set to keep and one to let go.
  for (const rule of Object.keys(rules)) {
    const keeps = decisions.some((d) => d.keep && d.reasons.some((r) => r.startsWith(`${rule} `)));
    const drops = decisions.some((d) => !d.keep && d.reasons.some((r) => /^\w+/.exec(r)?.[0] === rule));
    assert.ok(keeps && drops, `rule ${rule} keeps a set (${keeps}) and lets one go (${drops})`);
  }
  return {
    keep: decisions.filter((d) => d.keep).map((d) => d.setId),
    drop: decisions.filter((d) => !d.keep).map((d) => d.setId),
  };
}

/** Committed set ids among `keys` (a manifest key is `<job>/YYYY/MM/DD/<setId>/manifest.json`). */
function committedIn(keys: readonly string[]): string[] {
  return keys
    .filter((k) => k.startsWith(`${JOB}/`) && k.endsWith('/manifest.json'))
    .map((k) => k.split('/').at(-2) as string)
    .sort();
}

const sorted = (list: Iterable<string>): string[] => [...list].sort();

// ── each real target kind ────────────────────────────────────────────────────────────────────

interface Kind {
  name: 'local' | 'sftp' | 's3';
  /** Target config (without retention). */
  target(): Promise<Record<string, unknown>>;
  /** Every key the target holds, listed without backproof. */
  keys(): Promise<string[]>;
  /** The driver, when not the one createTarget makes. */
  create?(config: JobConfig['targets'][number]): Target;
  /**
   * Few sets, since prune deletes one at a time, yet every rule keeps some and lets some go, some
   * only by their rule, more than one a day where `maxPerDay` is 2 (seeds picked for that).
   */
  history: { days: number; maxPerDay: number; seed: number; sparse?: { denseDays: number; sparseEvery: number } };
  rules: RetentionRules;
  timeZone: string;
}

describe('prune against each real target kind', { concurrency: true }, () => {
  let dir: string;
  let client: S3Client;
  let bucket: string;
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-prune-'));
    const s3 = services().s3;
    client = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    bucket = uniqueName('prune');
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    await writeFile(join(dir, 's3.secret'), `${s3.secretAccessKey}\n`, { mode: 0o600 });
  });
  after(async () => {
    for (const cleanup of cleanups) await cleanup().catch(() => {});
    for (const key of await s3Keys('').catch(() => [])) {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })).catch(() => {});
    }
    await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
    client.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  async function s3Keys(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key.slice(prefix.length));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  }

  const kinds: Kind[] = [
    (() => {
      const root = () => join(dir, 'local-target');
      return {
        name: 'local' as const,
        target: async () => {
          await mkdir(root());
          return { name: 'disk', type: 'local', path: root() };
        },
        keys: () => filesUnder(root()),
        // More than a year, so every rule (yearly too) has work; daily before the last 50 days would
        // be 200 sets, every 20th day there is plenty for monthly and yearly.
        history: { days: 400, maxPerDay: 1, seed: 117, sparse: { denseDays: 50, sparseEvery: 20 } },
        rules: { last: 3, daily: 7, weekly: 5, monthly: 6, yearly: -1 },
        timeZone: 'UTC',
      };
    })(),
    (() => {
      const ssh = services().ssh;
      const remote = uniqueName('prune');
      const root = join(ssh.home, remote);
      return {
        name: 'sftp' as const,
        target: async () => {
          execFileSync('install', ['-d', '-m', '700', '-o', ssh.user, '-g', ssh.user, root]);
          cleanups.push(() => rm(root, { recursive: true, force: true }));
          return {
            name: 'nas',
            type: 'sftp',
            host: ssh.host,
            port: ssh.port,
            user: ssh.user,
            identityFile: ssh.identityFile,
            knownHosts: ssh.knownHosts,
            path: remote,
          };
        },
        keys: () => filesUnder(root),
        history: { days: 35, maxPerDay: 2, seed: 234 },
        rules: { last: 2, daily: 5, weekly: 3, monthly: 1 },
        timeZone: 'Europe/Berlin',
      };
    })(),
    (() => {
      const prefix = `${uniqueName('p')}/`;
      return {
        name: 's3' as const,
        target: async () => {
          const s3 = services().s3;
          return {
            name: 'cloud',
            type: 's3',
            endpoint: s3.endpoint,
            region: s3.region,
            bucket,
            prefix,
            forcePathStyle: true,
            accessKeyId: s3.accessKeyId,
            secretAccessKeyFile: join(dir, 's3.secret'),
          };
        },
        keys: () => s3Keys(prefix),
        history: { days: 19, maxPerDay: 2, seed: 6 },
        rules: { last: 1, daily: 4, weekly: 2, monthly: 2 },
        timeZone: 'America/New_York',
      };
    })(),
  ];

  for (const kind of kinds) {
    it(`${kind.name}: a dry run changes nothing; prune leaves exactly what the policy keeps, with tombstones, and verify passes`, async () => {
      const targetConfig = { ...(await kind.target()), retention: { ...kind.rules, timeZone: kind.timeZone } };
      const config = configWith([targetConfig], join(dir, `state-${kind.name}`));
      const target = (kind.create ?? createTarget)(config.targets[0] as JobConfig['targets'][number]);
      try {
        const plan = simulatedHistory({ start: '2024-01-01T00:00:00Z', suspectRate: 0.04, ...kind.history });
        assert.ok(plan.length > 20, `a history worth pruning (${plan.length} sets)`);
        (plan[Math.floor(plan.length / 3)] as PlannedSet).suspect = true; // at least one, whatever the seed
        await writeOwner(target, JOB, HOST_ID);
        const seeded = await seedSets(target, JOB, plan, HOST_ID);
        // What prune must not touch: a set a killed backup left (no manifest, no tombstone), another
        // job's set, and a file of the operator's under the job.
        const middle = plan[Math.floor(plan.length / 2)] as PlannedSet;
        const incomplete = setIdAt(Date.parse(middle.startedAt) + 1000, 'zzzzzz');
        await put(target, objectKey(JOB, incomplete, 'app.out.zst'), Buffer.from('half a backup'));
        await put(target, objectKey('other', incomplete, 'app.out.zst'), Buffer.from('another job'));
        await put(target, manifestKey('other', incomplete), Buffer.from('{}'));
        await put(target, `${JOB}/README.txt`, Buffer.from('notes of the operator'));
        const before = await kind.keys();
        const { keep, drop } = expectedKeep(plan, kind.rules, kind.timeZone);
        assert.ok(drop.length > 10, `the policy deletes something (${drop.length} of ${plan.length})`);

        // Dry run: every set listed with its decision and reasons; not a key changes.
        const dry = await runPrune(pruneInput(config, [target], { dryRun: true }));
        assert.deepEqual(await kind.keys(), before);
        const dryTarget = dry.targets[0];
        assert.ok(dryTarget);
        assert.equal(dryTarget.result, 'unchanged');
        assert.deepEqual(sorted(dryTarget.sets.map((s) => s.setId)), sorted(plan.map((p) => p.setId)));
        assert.ok(dryTarget.sets.every((s) => s.reasons.length > 0 && s.deleted === undefined));
        assert.deepEqual(
          sorted(dryTarget.sets.filter((s) => s.decision === 'delete').map((s) => s.setId)),
          sorted(drop),
        );
        assert.deepEqual(dryTarget.deleted, []);
        for (const set of dryTarget.sets.filter((s) => s.suspect)) {
          assert.equal(set.decision, 'keep');
          assert.deepEqual(set.reasons, ['suspect: kept for inspection']);
        }

        // The real prune.
        const report = await runPrune(pruneInput(config, [target]));
        const pruned = report.targets[0];
        assert.ok(pruned);
        assert.deepEqual(pruned.errors, []);
        assert.equal(pruned.result, 'pruned');
        // Suspect sets are kept for a human to look at: that is the only warning.
        assert.equal(report.status, 'warning');
        assert.equal(report.exitCode, 3);
        assert.equal(pruned.warnings.length, 1);
        assert.match(pruned.warnings[0] ?? '', /suspect set\(s\) .* kept for inspection/);
        assert.deepEqual(sorted(pruned.deleted), sorted(drop));
        assert.ok(pruned.sets.every((s) => (s.decision === 'delete') === (s.deleted === true)));

        // Exactly the kept sets remain; the deleted ones are gone whole; a tombstone for each; nothing else moved.
        const after = await kind.keys();
        assert.deepEqual(committedIn(after), sorted(keep));
        const byId = new Map(seeded.map((s) => [s.setId, s]));
        const gone = new Set(drop.flatMap((id) => (byId.get(id) as SeededSet).keys));
        const tombstones = drop.map((id) => tombstoneKey(JOB, id));
        assert.deepEqual(after, sorted([...before.filter((k) => !gone.has(k)), ...tombstones]));
        assert.deepEqual(sorted(pruned.tombstones), sorted(tombstones));

        const written = await readTombstones(target, JOB, AbortSignal.timeout(60_000));
        assert.deepEqual(sorted(written.map((t) => t.setId)), sorted(drop));
        for (const listing of written) {
          assert.ok(listing.parsed.ok, `tombstone ${listing.key} parses`);
          const seededSet = byId.get(listing.setId) as SeededSet;
          const { tombstone } = listing.parsed;
          assert.equal(tombstone.manifestSha256, seededSet.manifestSha256);
          assert.deepEqual(tombstone.previous, seededSet.previous);
          assert.match(tombstone.reason, /^retention \{.*\}: /);
          assert.ok(!Number.isNaN(Date.parse(tombstone.at)));
        }

        // verify --set all: every kept set intact, and every gap in the chain explained by a tombstone.
        const verified = await runVerify(config, {
          set: 'all',
          signal: AbortSignal.timeout(120_000),
          log: silentLogger,
          targets: [target],
        });
        assert.deepEqual(verified.problems, []);
        assert.equal(verified.ok, true);
        assert.deepEqual(verified.targets[0]?.chain?.explainedGaps, sorted(drop));
        assert.deepEqual(verified.targets[0]?.incomplete, [incomplete]);

        // Pruning again deletes nothing more.
        const again = await runPrune(pruneInput(config, [target]));
        assert.equal(again.targets[0]?.result, 'unchanged');
        assert.deepEqual(await kind.keys(), after);
      } finally {
        await target.close();
      }
    });
  }
});

// ── the rest, on local targets ───────────────────────────────────────────────────────────────

describe('prune: what it never deletes, and how it fails', () => {
  let dir: string;
  let counter = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-prune-local-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A fresh local target holding `plan`, owned by this host unless told otherwise. */
  async function localWith(
    plan: PlannedSet[],
    targetExtra: Record<string, unknown>,
    options: { owner?: string | null } = {},
  ) {
    counter += 1;
    const root = join(dir, `t${counter}`);
    await mkdir(root);
    const config = configWith(
      [{ name: `disk${counter}`, type: 'local', path: root, ...targetExtra }],
      join(dir, `state${counter}`),
    );
    const target = createTarget(config.targets[0] as JobConfig['targets'][number]);
    if (options.owner !== null) await writeOwner(target, JOB, options.owner ?? HOST_ID);
    const seeded = await seedSets(target, JOB, plan, HOST_ID);
    return { root, config, target, seeded, keys: () => filesUnder(root) };
  }

  /** One set a day at 03:00 UTC from 2025-03-01, oldest first. */
  function daily(count: number, overrides: Record<number, Partial<PlannedSet>> = {}): PlannedSet[] {
    return Array.from({ length: count }, (_, i) => {
      const ms = Date.parse('2025-03-01T03:00:00Z') + i * 86_400_000;
      return {
        setId: setIdAt(ms, `d${String(i).padStart(5, '0')}`),
        startedAt: new Date(ms).toISOString(),
        suspect: false,
        ...overrides[i],
      };
    });
  }

  it('never counts or deletes a corrupt set; the chain stays explained around it', async () => {
    const plan = daily(10, { 4: { corrupt: true } });
    const { config, target, keys } = await localWith(plan, { retention: { last: 2 } });
    const before = await keys();
    const corruptId = plan[4]?.setId as string;
    const report = await runPrune(pruneInput(config, [target]));
    const pruned = report.targets[0];
    assert.ok(pruned);
    assert.equal(pruned.result, 'pruned');
    assert.equal(report.exitCode, 3, 'a corrupt set needs a look');
    assert.match(pruned.warnings.join('\n'), new RegExp(`${corruptId}.*corrupt manifest`));
    const corrupt = pruned.sets.find((s) => s.setId === corruptId);
    assert.deepEqual(corrupt && { decision: corrupt.decision, valid: corrupt.valid, startedAt: corrupt.startedAt }, {
      decision: 'keep',
      valid: false,
      startedAt: null,
    });
    const expected = expectedKeep(plan, { last: 2 }, 'UTC');
    assert.deepEqual(sorted(pruned.deleted), sorted(expected.drop));
    assert.equal(expected.drop.length, 7);
    const after = await keys();
    assert.deepEqual(committedIn(after), sorted([corruptId, ...expected.keep.filter((id) => id !== corruptId)]));
    for (const key of before.filter((k) => k.includes(corruptId))) assert.ok(after.includes(key), `${key} untouched`);

    const verified = await runVerify(config, {
      set: 'all',
      signal: AbortSignal.timeout(60_000),
      log: silentLogger,
      targets: [target],
    });
    assert.deepEqual(verified.targets[0]?.chain?.problems, []);
    assert.ok(verified.problems.length > 0);
    for (const problem of verified.problems)
      assert.match(problem, new RegExp(`set ${corruptId}: manifest.json is corrupt`));
  });

  it('a suspect newest set is kept and never counted: the newest verified set survives last: 1', async () => {
    const plan = daily(6, { 5: { suspect: true } });
    const { config, target, keys } = await localWith(plan, { retention: { last: 1 } });
    const report = await runPrune(pruneInput(config, [target]));
    const pruned = report.targets[0];
    assert.ok(pruned);
    assert.deepEqual(pruned.errors, []);
    assert.deepEqual(committedIn(await keys()), sorted([plan[5]?.setId as string, plan[4]?.setId as string]));
    assert.deepEqual(sorted(pruned.deleted), sorted(plan.slice(0, 4).map((p) => p.setId)));
    assert.deepEqual(pruned.sets.find((s) => s.setId === plan[4]?.setId)?.reasons, ['last 1 of 1']);
    assert.equal(report.exitCode, 3);
    const verified = await runVerify(config, {
      set: 'all',
      signal: AbortSignal.timeout(60_000),
      log: silentLogger,
      targets: [target],
    });
    assert.deepEqual(verified.problems, []);
  });

  it('leaves an appendOnly target and a target without retention untouched, saying why', async () => {
    const appendOnly = await localWith(daily(5), { retention: { last: 1 }, appendOnly: true });
    const noRules = await localWith(daily(5), {});
    const before = [await appendOnly.keys(), await noRules.keys()];
    const config = configWith(
      [...appendOnly.config.targets, ...noRules.config.targets] as unknown as Record<string, unknown>[],
      join(dir, 'state-skip'),
    );
    const report = await runPrune(pruneInput(config, [appendOnly.target, noRules.target]));
    assert.deepEqual([await appendOnly.keys(), await noRules.keys()], before);
    assert.deepEqual(
      report.targets.map((t) => [t.result, t.skipped]),
      [
        ['skipped', 'appendOnly: never pruned from this host (its retention rules are applied elsewhere)'],
        ['skipped', 'no retention rules: nothing is pruned'],
      ],
    );
    assert.equal(report.exitCode, 0);
  });

  it('refuses a target another host owns (a dry run only warns), and still prunes the others', async () => {
    const foreign = await localWith(daily(5), { retention: { last: 1 } }, { owner: randomUUID() });
    const ours = await localWith(daily(5), { retention: { last: 1 } });
    const config = configWith(
      [...foreign.config.targets, ...ours.config.targets] as unknown as Record<string, unknown>[],
      join(dir, 'state-owner'),
    );
    const foreignBefore = await foreign.keys();

    const dry = await runPrune(pruneInput(config, [foreign.target, ours.target], { dryRun: true }));
    assert.equal(dry.exitCode, 3);
    assert.match(
      dry.targets[0]?.warnings[0] ?? '',
      /a real prune would refuse this target: job demo on this target belongs to host seed-host/,
    );
    assert.equal(dry.targets[0]?.sets.filter((s) => s.decision === 'delete').length, 4);

    const report = await runPrune(pruneInput(config, [foreign.target, ours.target]));
    assert.equal(report.exitCode, 1);
    assert.equal(report.targets[0]?.result, 'failed');
    assert.match(
      report.problems[0] ?? '',
      /^target disk\d+: job demo on this target belongs to host seed-host \(id [0-9a-f-]+\); prune it from that host/,
    );
    assert.deepEqual(await foreign.keys(), foreignBefore);
    assert.equal(report.targets[1]?.result, 'pruned');
    assert.equal(report.targets[1]?.deleted.length, 4);

    // A host with no id yet owns nothing either.
    const noId = await runPrune(pruneInput(config, [ours.target], { hostId: null }));
    assert.match(noId.problems[0] ?? '', /has no host id yet/);
  });

  it('finishes what an interrupted prune left: a tombstoned half-deleted set, and a tombstoned intact one', async () => {
    const plan = daily(6);
    const { config, target, seeded, keys } = await localWith(plan, { retention: { last: 2 } });
    const [first, second] = seeded as [SeededSet, SeededSet];
    // The first was cut off after its manifest went; the second right after its tombstone was written.
    for (const set of [first, second]) {
      await put(
        target,
        tombstoneKey(JOB, set.setId),
        serializeTombstone({
          format: TOMBSTONE_FORMAT,
          setId: set.setId,
          manifestSha256: set.manifestSha256,
          previous: set.previous,
          reason: 'retention {last 2; UTC}: last: beyond the 2 newest',
          at: '2025-03-10T00:00:00.000Z',
        }),
      );
    }
    await target.remove(manifestKey(JOB, first.setId));
    const report = await runPrune(pruneInput(config, [target]));
    const pruned = report.targets[0];
    assert.ok(pruned);
    assert.deepEqual(pruned.errors, []);
    assert.deepEqual(pruned.finished, [first.setId]);
    assert.deepEqual(
      pruned.deleted,
      plan.slice(1, 4).map((p) => p.setId),
    );
    const after = await keys();
    assert.ok(!after.some((k) => k.startsWith(`${setPrefix(JOB, first.setId)}/`)), 'the half-deleted set is gone');
    assert.deepEqual(committedIn(after), sorted(plan.slice(4).map((p) => p.setId)));
    const verified = await runVerify(config, {
      set: 'all',
      signal: AbortSignal.timeout(60_000),
      log: silentLogger,
      targets: [target],
    });
    assert.deepEqual(verified.problems, []);
    assert.deepEqual(
      verified.targets[0]?.chain?.explainedGaps,
      plan.slice(0, 4).map((p) => p.setId),
    );
  });

  it('stops at a tombstone that says something else, deleting nothing more on that target', async () => {
    const plan = daily(5);
    const { config, target, seeded, keys } = await localWith(plan, { retention: { last: 1 } });
    const first = seeded[0] as SeededSet;
    await put(
      target,
      tombstoneKey(JOB, first.setId),
      serializeTombstone({
        format: TOMBSTONE_FORMAT,
        setId: first.setId,
        manifestSha256: 'f'.repeat(64),
        previous: null,
        reason: 'written by someone else',
        at: '2025-03-10T00:00:00.000Z',
      }),
    );
    const before = await keys();
    const report = await runPrune(pruneInput(config, [target]));
    const pruned = report.targets[0];
    assert.ok(pruned);
    assert.equal(pruned.result, 'failed');
    assert.equal(report.exitCode, 1);
    assert.match(pruned.errors[0] ?? '', /tombstones\/.*\.json already exists and says something else/);
    assert.deepEqual(pruned.deleted, []);
    assert.ok(pruned.sets.filter((s) => s.decision === 'delete').every((s) => s.deleted === false));
    assert.deepEqual(await keys(), before);
  });

  it('after a backup: prunes only when the new set is committed, valid and not suspect', async () => {
    const plan = daily(4, { 3: { suspect: true } });
    const { config, target, keys } = await localWith(plan, { retention: { last: 1 } });
    const before = await keys();
    const suspectAfter = await pruneTarget(
      target,
      pruneInput(config, [target], { afterSet: plan[3]?.setId as string }),
    );
    assert.equal(suspectAfter.result, 'skipped');
    assert.match(suspectAfter.skipped ?? '', /is suspect: retention waits for a good set/);
    const missing = setIdAt(Date.parse('2025-04-01T00:00:00Z'), 'nnnnnn');
    const absentAfter = await pruneTarget(target, pruneInput(config, [target], { afterSet: missing }));
    assert.equal(absentAfter.skipped, `this run's set ${missing} is not committed on this target`);
    assert.deepEqual(await keys(), before);
    const goodAfter = await pruneTarget(target, pruneInput(config, [target], { afterSet: plan[2]?.setId as string }));
    assert.equal(goodAfter.result, 'pruned');
    assert.deepEqual(goodAfter.deleted, [plan[0]?.setId, plan[1]?.setId]);
  });

  it('the safety net throws when a decision would delete the newest verified set or the one just committed', () => {
    const candidates = daily(5, { 4: { suspect: true } }).map((p) => ({ ...p, valid: true }));
    const ids = candidates.map((c) => c.setId);
    assert.throws(
      () => assertNewestKept('disk', candidates, new Set([ids[3] as string])),
      new RegExp(
        `retention decided to delete set ${ids[3]}, the newest verified set on target disk; nothing was deleted`,
      ),
    );
    assert.throws(
      () => assertNewestKept('disk', candidates, new Set([ids[1] as string]), ids[1]),
      /newest verified set/,
    );
    // Older sets, and a newer suspect one, may go.
    assertNewestKept('disk', candidates, new Set([ids[0] as string, ids[1] as string, ids[4] as string]));
  });
});
