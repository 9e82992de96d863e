// verify's core: the hash chain as a pure function, then runVerify against real local targets
// holding sets written byte by byte here (the e2e tests use sets made by real backups).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { parseConfigText } from '../../src/config/load.js';
import type { JobConfig } from '../../src/config/schema.js';
import {
  type ChainInput,
  type ChainSet,
  checkChain,
  isSetSelection,
  runVerify,
  type VerifyOptions,
} from '../../src/core/verify.js';
import { UsageError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/log.js';
import { manifestKey, objectKey, tombstoneKey } from '../../src/set/layout.js';
import { MANIFEST_FORMAT, type Manifest, serializeManifest } from '../../src/set/manifest.js';
import {
  serializeTombstone,
  TOMBSTONE_FORMAT,
  type Tombstone,
  type TombstoneListing,
} from '../../src/set/tombstone.js';
import { openStateDb, type StateDb } from '../../src/state/store.js';
import { createLocalTarget } from '../../src/targets/local.js';
import type { Target } from '../../src/targets/types.js';

const A = '20251101T030000Z-aaaaaa';
const B = '20251102T030000Z-bbbbbb';
const C = '20251103T030000Z-cccccc';
const D = '20251104T030000Z-dddddd';
const E = '20251105T030000Z-eeeeee';
const h = (c: string): string => c.repeat(64);

// ── checkChain ─────────────────────────────────────────────────────────────────────────────────

/** A chain of intact sets, each linking the one before with its hash (`h(letter)`). */
function chain(...ids: string[]): ChainSet[] {
  return ids.map((setId, i) => ({
    setId,
    manifestSha256: hashOf(setId),
    previous: i === 0 ? null : { setId: ids[i - 1] as string, manifestSha256: hashOf(ids[i - 1] as string) },
    corrupt: false,
  }));
}
/** The manifest hash these tests give a set: its id's last letter, 64 times. */
function hashOf(setId: string): string {
  return h(setId.at(-1) as string);
}
function linkTo(setId: string, manifestSha256 = hashOf(setId)) {
  return { setId, manifestSha256 };
}
function tomb(setId: string, previous: { setId: string; manifestSha256: string } | null, sha = hashOf(setId)) {
  const tombstone: Tombstone = {
    format: TOMBSTONE_FORMAT,
    setId,
    manifestSha256: sha,
    previous,
    reason: 'retention',
    at: '2025-11-10T00:00:00.000Z',
  };
  return { key: `shop/tombstones/${setId}.json`, setId, parsed: { ok: true, tombstone } } satisfies TombstoneListing;
}
function verdict(input: Partial<ChainInput> & Pick<ChainInput, 'sets'>) {
  return checkChain({ tombstones: [], ...input });
}
const kinds = (v: ReturnType<typeof checkChain>) => v.findings.map((f) => [f.setId, f.kind]);

describe('checkChain', () => {
  it('accepts an unbroken chain, in any order', () => {
    const v = verdict({ sets: chain(A, B, C, D).reverse() });
    assert.deepEqual(v.findings, []);
    assert.deepEqual(v.explainedGaps, []);
    assert.equal(v.headChecked, false);
  });

  it('accepts an empty target and a single first set', () => {
    assert.deepEqual(verdict({ sets: [] }).findings, []);
    assert.deepEqual(verdict({ sets: chain(A) }).findings, []);
  });

  it('reports a set deleted from the middle, naming both sets', () => {
    const sets = chain(A, B, C).filter((s) => s.setId !== B);
    const v = verdict({ sets });
    assert.deepEqual(kinds(v), [[C, 'gap']]);
    assert.match(
      v.findings[0]?.message ?? '',
      new RegExp(
        `^set ${C}: it links to set ${B}, which is not on the target and has no tombstone: it was deleted outside backproof`,
      ),
    );
  });

  it('accepts a gap a tombstone explains, and says which sets were pruned', () => {
    const sets = chain(A, B, C).filter((s) => s.setId !== B);
    const v = verdict({ sets, tombstones: [tomb(B, linkTo(A))] });
    assert.deepEqual(v.findings, []);
    assert.deepEqual(v.explainedGaps, [B]);
  });

  it('follows tombstones through several pruned sets in a row', () => {
    const sets = chain(A, B, C, D).filter((s) => s.setId === A || s.setId === D);
    const v = verdict({ sets, tombstones: [tomb(C, linkTo(B)), tomb(B, linkTo(A))] });
    assert.deepEqual(v.findings, []);
    assert.deepEqual(v.explainedGaps, [B, C]);
  });

  it('reports the first unexplained set when only some of a run of pruned sets have tombstones', () => {
    const sets = chain(A, B, C, D).filter((s) => s.setId === A || s.setId === D);
    const v = verdict({ sets, tombstones: [tomb(C, linkTo(B))] });
    assert.deepEqual(kinds(v), [[D, 'gap']]);
    assert.match(
      v.findings[0]?.message ?? '',
      new RegExp(`links \\(reached through the tombstones of ${C}\\) to set ${B}, which is not on the target`),
    );
    assert.deepEqual(v.explainedGaps, [], 'a gap that is not fully explained explains nothing');
  });

  it('accepts pruned sets before the oldest one back to the start of the chain', () => {
    const sets = chain(A, B, C).filter((s) => s.setId === C);
    assert.deepEqual(verdict({ sets, tombstones: [tomb(B, linkTo(A)), tomb(A, null)] }).findings, []);
    const missing = verdict({ sets, tombstones: [tomb(B, linkTo(A))] });
    assert.deepEqual(kinds(missing), [[C, 'gap']]);
  });

  it('does not let a tombstone of another manifest explain a gap', () => {
    const sets = chain(A, B, C).filter((s) => s.setId !== B);
    const v = verdict({ sets, tombstones: [tomb(B, linkTo(A), h('9'))] });
    assert.deepEqual(kinds(v), [[C, 'tombstone-mismatch']]);
    assert.match(v.findings[0]?.message ?? '', new RegExp(`the tombstone of ${B} names ${h('9')}`));
  });

  it('reports a damaged tombstone, and it explains nothing', () => {
    const sets = chain(A, B, C).filter((s) => s.setId !== B);
    const damaged: TombstoneListing = {
      key: `shop/tombstones/${B}.json`,
      setId: B,
      parsed: { ok: false, problems: ['not JSON: x'] },
    };
    const v = verdict({ sets, tombstones: [damaged] });
    assert.deepEqual(kinds(v), [
      [C, 'gap'],
      [B, 'damaged-tombstone'],
    ]);
    assert.match(
      v.findings[0]?.message ?? '',
      /\(its tombstone shop\/tombstones\/20251102T030000Z-bbbbbb\.json is damaged: not JSON: x\)/,
    );
  });

  it('says when the set a link names is there without its manifest', () => {
    const sets = chain(A, B, C).filter((s) => s.setId !== B);
    const v = verdict({ sets, incomplete: [B] });
    assert.match(
      v.findings[0]?.message ?? '',
      /which is not on the target and has no tombstone \(its directory is there, but without manifest\.json\)/,
    );
  });

  it('reports a manifest changed after the next set linked it', () => {
    const sets = chain(A, B, C);
    (sets[1] as ChainSet).manifestSha256 = h('7');
    const v = verdict({ sets });
    assert.deepEqual(kinds(v), [[C, 'manifest-changed']]);
    assert.match(
      v.findings[0]?.message ?? '',
      new RegExp(`had SHA-256 ${hashOf(B)} when ${C} was made; it now has ${h('7')}:`),
    );
  });

  it("names a corrupt manifest the next set links to, and does not follow the corrupt set's own link", () => {
    const sets = chain(A, B, C);
    sets[1] = { setId: B, manifestSha256: h('7'), corrupt: true };
    const v = verdict({ sets });
    assert.deepEqual(kinds(v), [[C, 'manifest-changed']]);
    assert.match(v.findings[0]?.message ?? '', /it now has 7{64} and is corrupt/);
  });

  it('accepts a link past a set whose manifest was already corrupt (reported as a corrupt set instead)', () => {
    const sets: ChainSet[] = [
      ...chain(A),
      { setId: B, manifestSha256: null, corrupt: true },
      { setId: C, manifestSha256: hashOf(C), previous: linkTo(A), corrupt: false },
    ];
    assert.deepEqual(verdict({ sets }).findings, []);
  });

  it('reports a link that skips intact sets lying between', () => {
    const sets = chain(A, B, C);
    (sets[2] as ChainSet).previous = linkTo(A);
    const v = verdict({ sets });
    assert.deepEqual(kinds(v), [[C, 'skips-sets']]);
    assert.match(v.findings[0]?.message ?? '', new RegExp(`to set ${A}, past ${B}, which lie between them`));
  });

  it('reports a chain that starts over while older sets are there', () => {
    const sets = chain(A, B, C);
    (sets[2] as ChainSet).previous = null;
    const v = verdict({ sets });
    assert.deepEqual(kinds(v), [[C, 'unexpected-start']]);
    assert.match(v.findings[0]?.message ?? '', new RegExp(`yet older sets are on the target \\(${A}, ${B}\\)`));
  });

  it('refuses a link to a set that is not older, and cannot be led in circles by tombstones', () => {
    const sets = chain(A, B, C);
    (sets[1] as ChainSet).previous = linkTo(C);
    assert.deepEqual(kinds(verdict({ sets })), [[B, 'links-to-newer']]);
    // Tombstones the schema would refuse (previous not older), built by hand: the walk still stops.
    const loop = [tomb(B, linkTo(C)), tomb(C, linkTo(B))];
    const v = verdict({
      sets: [{ setId: D, manifestSha256: hashOf(D), previous: linkTo(C), corrupt: false }],
      tombstones: loop,
    });
    assert.deepEqual(kinds(v), [[D, 'links-to-newer']]);
  });

  it("with `only`, follows just the chosen sets' links and leaves damaged tombstones alone", () => {
    const sets = chain(A, B, C, D).filter((s) => s.setId !== B);
    const damaged: TombstoneListing = { key: 'k', setId: E, parsed: { ok: false, problems: ['x'] } };
    assert.deepEqual(kinds(verdict({ sets, tombstones: [damaged], only: new Set([D]) })), []);
    assert.deepEqual(kinds(verdict({ sets, tombstones: [damaged], only: new Set([C]) })), [[C, 'gap']]);
  });

  it('notes a set that has a tombstone but is still there (an interrupted prune), without failing', () => {
    const v = verdict({ sets: chain(A, B, C), tombstones: [tomb(A, null)] });
    assert.deepEqual(v.findings, []);
    assert.deepEqual(v.notes, [
      `set ${A} has a tombstone but is still on the target: a prune was interrupted; the next prune removes it`,
    ]);
  });

  describe('the chain head remembered in the state database', () => {
    const remembered = (setId: string, sha = hashOf(setId)) => ({
      setId,
      manifestSha256: sha,
      committedAt: '2025-11-05T03:10:00.000Z',
    });

    it('is skipped without a database, and noted when this host never committed there', () => {
      const none = verdict({ sets: chain(A, B) });
      assert.equal(none.headChecked, false);
      assert.deepEqual(none.notes, []);
      const never = verdict({ sets: chain(A, B), rememberedHead: null });
      assert.equal(never.headChecked, false);
      assert.deepEqual(never.notes, ['this host has not committed a set to this target: no chain head to check']);
    });

    it('passes when it is the newest set, or older than the newest', () => {
      for (const head of [C, B]) {
        const v = verdict({ sets: chain(A, B, C), rememberedHead: remembered(head) });
        assert.deepEqual(v.findings, [], head);
        assert.equal(v.headChecked, true);
      }
    });

    it('notices the newest sets deleted', () => {
      const v = verdict({ sets: chain(A, B, C, D).slice(0, 2), rememberedHead: remembered(D) });
      assert.deepEqual(kinds(v), [[D, 'head-missing']]);
      assert.match(
        v.findings[0]?.message ?? '',
        new RegExp(
          `set ${D}, the newest set this host committed to this target \\(at 2025-11-05T03:10:00.000Z\\), is gone, and the newest set there now is the older ${B}: the newest sets were deleted outside backproof`,
        ),
      );
    });

    it('notices every set deleted', () => {
      const v = verdict({ sets: [], rememberedHead: remembered(D) });
      assert.match(v.findings[0]?.message ?? '', /is gone, and no set is left there/);
    });

    it('notices a head deleted below newer sets, unless its tombstone says it was pruned', () => {
      const sets = chain(A, B, C).filter((s) => s.setId !== B);
      const gone = verdict({ sets, rememberedHead: remembered(B), only: new Set([C]) });
      assert.deepEqual(kinds(gone), [
        [C, 'gap'],
        [B, 'head-missing'],
      ]);
      const pruned = verdict({ sets, rememberedHead: remembered(B), tombstones: [tomb(B, linkTo(A))] });
      assert.deepEqual(pruned.findings, []);
      assert.match(pruned.notes.join('\n'), /was pruned \(its tombstone is there\); newer sets follow it/);
    });

    it("notices the head's manifest replaced", () => {
      const v = verdict({ sets: chain(A, B), rememberedHead: remembered(B, h('0')) });
      assert.deepEqual(kinds(v), [[B, 'head-changed']]);
      assert.match(
        v.findings[0]?.message ?? '',
        new RegExp(`had a manifest.json with SHA-256 ${h('0')}; it now has ${hashOf(B)}: it was replaced`),
      );
    });
  });
});

// ── runVerify on real local targets ──────────────────────────────────────────────────────────

const never = new AbortController().signal;
const JOB = 'shop';

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function putFile(root: string, key: string, bytes: Buffer | string): Promise<void> {
  await mkdir(dirname(join(root, key)), { recursive: true });
  await writeFile(join(root, key), bytes);
}

/** Writes a committed set the way backup lays it out: objects, then manifest.json. */
async function writeSet(
  root: string,
  setId: string,
  previous: { setId: string; manifestSha256: string } | null,
  contents: Record<string, string> = { 'app.tar.zst': `tar of ${setId}`, 'RUNBOOK.md': `# runbook of ${setId}\n` },
): Promise<{ setId: string; manifestSha256: string }> {
  const objects = Object.entries(contents).map(([name, text]) => {
    const bytes = Buffer.from(text);
    return { name, bytes: bytes.length, sha256: sha256(bytes) };
  });
  for (const [name, text] of Object.entries(contents)) await putFile(root, objectKey(JOB, setId, name), text);
  const app = objects[0] as { name: string; bytes: number; sha256: string };
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    job: JOB,
    setId,
    host: 'web1',
    hostId: 'host-1',
    startedAt: '2025-11-01T03:00:00.000Z',
    finishedAt: '2025-11-01T03:01:00.000Z',
    backproofVersion: '0.1.0',
    compression: { algorithm: 'zstd', level: 3 },
    encryption: null,
    objects,
    components: [
      {
        name: 'app',
        source: 'app',
        kind: 'files',
        object: app.name,
        bytes: app.bytes,
        sha256: app.sha256,
        rawBytes: 10,
        rawSha256: h('e'),
      },
    ],
    anomalies: [],
    suspect: false,
    warnings: [],
    previous,
  };
  const bytes = serializeManifest(manifest);
  await putFile(root, manifestKey(JOB, setId), bytes);
  return { setId, manifestSha256: sha256(bytes) };
}

function configFor(roots: Record<string, string>, stateDir: string): JobConfig {
  const targets = Object.entries(roots)
    .map(([name, path]) => `  - { name: ${name}, type: local, path: ${path} }`)
    .join('\n');
  const text = `job: ${JOB}\nstateDir: ${stateDir}\nsources:\n  - { name: app, type: files, paths: [/srv/app] }\ntargets:\n${targets}\n`;
  return parseConfigText(text, 'test.yml', '/');
}

describe('runVerify', () => {
  let dir: string;
  let disk: string;
  let spare: string;
  let stateDir: string;
  let config: JobConfig;
  let state: StateDb | undefined;
  let sets: { setId: string; manifestSha256: string }[];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-verify-'));
    disk = join(dir, 'disk');
    spare = join(dir, 'spare');
    stateDir = join(dir, 'state');
    await mkdir(disk);
    await mkdir(spare);
    config = configFor({ disk, spare }, stateDir);
    const a = await writeSet(disk, A, null);
    const b = await writeSet(disk, B, a);
    const c = await writeSet(disk, C, b);
    sets = [a, b, c];
    await writeSet(spare, A, null);
  });
  afterEach(async () => {
    state?.close();
    state = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  const verify = (options: Partial<VerifyOptions> = {}) =>
    runVerify(config, { set: 'all', signal: never, log: silentLogger, ...options });
  const objectFile = (setId: string, name: string) => join(disk, objectKey(JOB, setId, name));

  it('proves every object of every set by reading it back, and says the chain head was not checked', async () => {
    const report = await verify();
    assert.equal(report.ok, true, report.problems.join('\n'));
    assert.equal(report.exitCode, 0);
    assert.equal(report.stateDatabase, false);
    assert.equal(report.runId, null);
    const diskCheck = report.targets[0];
    assert.deepEqual(
      diskCheck?.sets.map((s) => [s.setId, s.ok, s.manifest, s.objects.map((o) => [o.name, o.result, o.level])]),
      [C, B, A].map((id) => [
        id,
        true,
        'ok',
        [
          ['app.tar.zst', 'ok', 'reread'],
          ['RUNBOOK.md', 'ok', 'reread'],
        ],
      ]),
    );
    assert.equal(
      diskCheck?.sets[0]?.bytesVerified,
      Buffer.byteLength(`tar of ${C}`) + Buffer.byteLength(`# runbook of ${C}\n`),
    );
    assert.deepEqual(diskCheck?.chain?.problems, []);
    assert.equal(diskCheck?.chain?.headChecked, false);
    assert.match(report.notes.join('\n'), /no state database on this host: the chain heads were not checked/);
  });

  it('names a flipped byte, a truncation and a deletion, object by object', async () => {
    const tar = objectFile(C, 'app.tar.zst');
    const original = await readFile(tar);
    const flipped = Buffer.from(original);
    flipped[3] = (flipped[3] as number) ^ 0x01;
    await writeFile(tar, flipped);
    await truncate(objectFile(B, 'app.tar.zst'), 2);
    await unlink(objectFile(A, 'RUNBOOK.md'));
    const report = await verify();
    assert.equal(report.ok, false);
    assert.equal(report.exitCode, 1);
    const results = report.targets[0]?.sets.map((s) => s.objects.map((o) => [o.name, o.result]));
    assert.deepEqual(results, [
      [
        ['app.tar.zst', 'wrong-hash'],
        ['RUNBOOK.md', 'ok'],
      ],
      [
        ['app.tar.zst', 'wrong-size'],
        ['RUNBOOK.md', 'ok'],
      ],
      [
        ['app.tar.zst', 'ok'],
        ['RUNBOOK.md', 'missing'],
      ],
    ]);
    const problems = report.problems.join('\n');
    assert.match(
      problems,
      new RegExp(
        `target disk: set ${C}: app.tar.zst has SHA-256 ${sha256(flipped)}, the manifest says ${sha256(original)}: its bytes are damaged; take this set from another target`,
      ),
    );
    assert.match(
      problems,
      new RegExp(
        `target disk: set ${B}: app.tar.zst has 2 bytes, the manifest says ${original.length}: it was truncated or replaced`,
      ),
    );
    assert.match(problems, new RegExp(`target disk: set ${A}: RUNBOOK.md is missing`));
    assert.equal(report.targets[1]?.ok, true, 'the other target is judged on its own');
  });

  it("names a corrupt manifest, and the next set's link to it", async () => {
    await writeFile(join(disk, manifestKey(JOB, B)), '{"format": "backproof/1", "setId": ');
    const report = await verify();
    const problems = report.problems.join('\n');
    assert.match(problems, new RegExp(`set ${B}: manifest.json is corrupt \\(not JSON: `));
    assert.match(
      problems,
      new RegExp(
        `set ${C}: it links to set ${B}, whose manifest.json had SHA-256 ${sets[1]?.manifestSha256} when ${C} was made; it now has [0-9a-f]{64} and is corrupt`,
      ),
    );
    assert.equal(report.targets[0]?.sets.find((s) => s.setId === B)?.manifest, 'corrupt');
  });

  it('reports a whole middle set deleted, and accepts one pruned with its tombstone', async () => {
    await rm(join(disk, JOB, '2025', '11', '02'), { recursive: true });
    const gap = await verify({ target: 'disk' });
    assert.equal(gap.ok, false);
    assert.deepEqual(gap.problems, [
      `target disk: set ${C}: it links to set ${B}, which is not on the target and has no tombstone: it was deleted ` +
        'outside backproof (prune always leaves a tombstone); find out who deleted it, and take that set from another target if you need it',
    ]);
    const tombstone: Tombstone = {
      format: TOMBSTONE_FORMAT,
      setId: B,
      manifestSha256: sets[1]?.manifestSha256 as string,
      previous: sets[0] ?? null,
      reason: 'retention',
      at: '2025-11-10T00:00:00.000Z',
    };
    await putFile(disk, tombstoneKey(JOB, B), serializeTombstone(tombstone));
    const pruned = await verify({ target: 'disk' });
    assert.equal(pruned.ok, true, pruned.problems.join('\n'));
    assert.deepEqual(pruned.targets[0]?.chain?.explainedGaps, [B]);
  });

  it('lists incomplete sets and stray files without failing', async () => {
    await putFile(disk, objectKey(JOB, D, 'app.tar.zst'), 'a backup writing right now');
    await putFile(disk, `${objectKey(JOB, C, 'app.tar.zst')}.tmp-0a0b0c0d`, 'half');
    await putFile(disk, objectKey(JOB, C, 'notes.txt'), 'someone left this');
    const report = await verify({ target: 'disk' });
    assert.equal(report.ok, true, report.problems.join('\n'));
    assert.deepEqual(report.targets[0]?.incomplete, [D]);
    const notes = report.targets[0]?.notes.join('\n') ?? '';
    assert.match(notes, new RegExp(`set ${C}: notes.txt in the set's directory are not in its manifest`));
    assert.match(notes, new RegExp(`set ${C}: 1 unfinished temporary object`));
  });

  it('latest verifies only the newest set and its own link', async () => {
    await rm(join(disk, JOB, '2025', '11', '01'), { recursive: true }); // breaks B's link, not C's
    await writeFile(objectFile(B, 'app.tar.zst'), 'XXXXXXXXXXXXXXXXXXXXXXXX');
    const latest = await verify({ set: 'latest', target: 'disk' });
    assert.equal(latest.ok, true, latest.problems.join('\n'));
    assert.deepEqual(
      latest.targets[0]?.sets.map((s) => s.setId),
      [C],
    );
    assert.equal(latest.targets[0]?.chain?.scope, 'selected');
    const all = await verify({ set: 'all', target: 'disk' });
    assert.equal(all.ok, false);
    assert.equal(all.problems.length, 2, all.problems.join('\n'));
  });

  it('verifies one set by id; a set on no target, or an incomplete one, is a problem', async () => {
    const one = await verify({ set: A });
    assert.equal(one.ok, true, one.problems.join('\n'));
    assert.deepEqual(
      one.targets.map((t) => t.sets.map((s) => s.setId)),
      [[A], [A]],
    );

    const onlyDisk = await verify({ set: B });
    assert.equal(onlyDisk.ok, true, 'a set on some targets is fine when no target was named');
    assert.match(
      onlyDisk.targets[1]?.notes.join('\n') ?? '',
      new RegExp(`set ${B} is not on this target \\(it is on disk\\)`),
    );

    const named = await verify({ set: B, target: 'spare' });
    assert.deepEqual(named.problems, [
      `target spare: set ${B} is not on this target; \`backproof list\` shows the sets each target holds`,
    ]);

    const nowhere = await verify({ set: E });
    assert.equal(nowhere.ok, false);
    assert.equal(nowhere.problems.length, 2);

    await unlink(join(disk, manifestKey(JOB, C)));
    const incomplete = await verify({ set: C, target: 'disk' });
    assert.match(incomplete.problems.join('\n'), new RegExp(`set ${C} has no manifest.json here: it is incomplete`));
  });

  it('a target that cannot be read is a problem; the others are still verified', async () => {
    await rm(spare, { recursive: true });
    const report = await verify();
    assert.equal(report.ok, false);
    assert.equal(report.targets[0]?.ok, true);
    assert.equal(report.targets[1]?.chain, null);
    assert.match(
      report.problems.join('\n'),
      new RegExp(`target spare: cannot read this target: target spare: ${spare} does not exist`),
    );
  });

  it('a target with no committed set is a problem', async () => {
    await rm(join(spare, JOB), { recursive: true });
    const report = await verify({ target: 'spare' });
    assert.deepEqual(report.problems, [
      'target spare: no committed set on this target: nothing here proves a backup exists; run `backproof backup`',
    ]);
  });

  it('refuses an unknown target name before touching anything', async () => {
    await assert.rejects(
      verify({ target: 'offsite' }),
      (e: unknown) => e instanceof UsageError && /no target named "offsite"/.test(e.message),
    );
  });

  it('with a state database: checks the chain head and records the run with the level each object reached', async () => {
    state = openStateDb(stateDir);
    state.setChainHead(JOB, 'disk', {
      ...(sets[2] as { setId: string; manifestSha256: string }),
      committedAt: '2025-11-03T03:01:00.000Z',
    });
    const report = await verify({ state, target: 'disk' });
    assert.equal(report.ok, true, report.problems.join('\n'));
    assert.equal(report.targets[0]?.chain?.headChecked, true);
    assert.ok(report.runId !== null);
    const run = state.getRun(report.runId);
    assert.equal(run?.command, 'verify');
    assert.equal(run?.status, 'success');
    assert.equal(run?.exitCode, 0);
    assert.deepEqual(
      run?.steps.map((s) => [s.name, s.target, s.status]),
      [['verify-target', 'disk', 'ok']],
    );
    assert.deepEqual(
      state.objectVerifications(JOB, 'disk', C).map((v) => [v.object, v.level, v.runId]),
      [
        ['RUNBOOK.md', 'reread', report.runId],
        ['app.tar.zst', 'reread', report.runId],
      ],
    );

    // The newest set deleted: the remembered head notices, and the failure is recorded too.
    await rm(join(disk, JOB, '2025', '11', '03'), { recursive: true });
    const after = await verify({ state, target: 'disk' });
    assert.equal(after.ok, false);
    assert.match(
      after.problems.join('\n'),
      new RegExp(
        `set ${C}, the newest set this host committed to this target .* is gone, and the newest set there now is the older ${B}`,
      ),
    );
    const failed = state.getRun(after.runId as number);
    assert.equal(failed?.status, 'failure');
    assert.equal(failed?.exitCode, 1);
  });

  it("reads objects of an ETag-level target back itself instead of trusting the target's own proof", async () => {
    const local = createLocalTarget({ name: 'disk', path: disk, optional: false });
    const liar: Target = {
      ...local,
      capabilities: { ...local.capabilities, verification: 'etag' },
      // What an S3 target may answer from its memory of the upload: the right hash, whatever is stored.
      verifyObject: async () => ({ bytes: 0, sha256: h('0') }),
    };
    await writeFile(objectFile(C, 'app.tar.zst'), 'tar of 20251103T030000Z-ccccCC');
    const report = await verify({ targets: [liar] });
    assert.deepEqual(
      report.targets[0]?.sets[0]?.objects.map((o) => [o.name, o.result, o.level]),
      [
        ['app.tar.zst', 'wrong-hash', 'reread'],
        ['RUNBOOK.md', 'ok', 'reread'],
      ],
    );
  });

  it('stops at once when interrupted', async () => {
    const controller = new AbortController();
    controller.abort(new Error('interrupted by SIGTERM'));
    await assert.rejects(verify({ signal: controller.signal }), /interrupted by SIGTERM/);
  });
});

describe('isSetSelection', () => {
  it('takes latest, all and set ids, nothing else', () => {
    for (const ok of ['latest', 'all', A]) assert.equal(isSetSelection(ok), true, ok);
    for (const bad of ['', 'newest', 'ALL', `${A}x`, '../x']) assert.equal(isSetSelection(bad), false, bad);
  });
});
