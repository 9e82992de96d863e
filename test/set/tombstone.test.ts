import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TargetError } from '../../src/lib/errors.js';
import { tombstoneKey, tombstonePrefix } from '../../src/set/layout.js';
import {
  parseTombstone,
  readTombstones,
  serializeTombstone,
  TOMBSTONE_FORMAT,
  type Tombstone,
  writeTombstone,
} from '../../src/set/tombstone.js';
import { createLocalTarget } from '../../src/targets/local.js';
import type { Target } from '../../src/targets/types.js';

const never = new AbortController().signal;
const now = () => new Date('2025-11-10T04:00:00.000Z');
const sha = (c: string): string => c.repeat(64);
const PRUNED = '20251104T030000Z-k3x9qa';
const BEFORE = '20251103T030000Z-aaaaaa';

function tombstone(overrides: Partial<Tombstone> = {}): Tombstone {
  return {
    format: TOMBSTONE_FORMAT,
    setId: PRUNED,
    manifestSha256: sha('a'),
    previous: { setId: BEFORE, manifestSha256: sha('b') },
    reason: 'retention: not kept by last 3, daily 7',
    at: '2025-11-10T04:00:00.000Z',
    ...overrides,
  };
}

const bytesOf = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

describe('tombstone parsing', () => {
  it('round-trips through serialize and parse, keeping unknown fields', () => {
    const written = { ...tombstone(), prunedBy: 'host-1' } as Tombstone;
    const parsed = parseTombstone(serializeTombstone(written), PRUNED);
    assert.equal(parsed.ok, true);
    assert.deepEqual(parsed.ok && parsed.tombstone, written);
  });

  it('accepts the first set of a chain (previous null)', () => {
    const parsed = parseTombstone(bytesOf(tombstone({ previous: null })));
    assert.equal(parsed.ok, true);
  });

  const broken: [string, unknown, RegExp][] = [
    ['another format', { ...tombstone(), format: 'backproof-tombstone/2' }, /^format: /],
    ['a short hash', { ...tombstone(), manifestSha256: 'abc' }, /^manifestSha256: must be 64 lowercase hex digits/],
    ['an upper-case hash', { ...tombstone(), manifestSha256: sha('A') }, /^manifestSha256: /],
    ['a set id of another shape', { ...tombstone(), setId: 'yesterday' }, /^setId: must be a set id/],
    [
      'a previous link to a newer set',
      tombstone({ previous: { setId: '20251105T030000Z-bbbbbb', manifestSha256: sha('b') } }),
      /^previous\.setId: must name an older set than 20251104T030000Z-k3x9qa/,
    ],
    [
      'a previous link to itself',
      tombstone({ previous: { setId: PRUNED, manifestSha256: sha('b') } }),
      /^previous\.setId: must name an older set/,
    ],
    ['no reason', { ...tombstone(), reason: '' }, /^reason: /],
    ['a local time', { ...tombstone(), at: '2025-11-10T05:00:00+01:00' }, /^at: /],
    ['previous missing', (({ previous, ...rest }) => rest)(tombstone()), /^previous: /],
    ['an array', [], /^\(root\): /],
  ];
  for (const [what, value, problem] of broken) {
    it(`names the problem of ${what} instead of throwing`, () => {
      const parsed = parseTombstone(bytesOf(value));
      assert.equal(parsed.ok, false);
      assert.ok(!parsed.ok && parsed.problems.some((p) => problem.test(p)), JSON.stringify(parsed));
    });
  }

  it('says when bytes are not JSON', () => {
    const parsed = parseTombstone(Buffer.from('{"format": "backproof-tombstone/1",'));
    assert.ok(!parsed.ok && /^not JSON: /.test(parsed.problems[0] ?? ''), JSON.stringify(parsed));
  });

  it('refuses a tombstone filed under another set id', () => {
    const parsed = parseTombstone(bytesOf(tombstone()), BEFORE);
    assert.deepEqual(parsed, {
      ok: false,
      problems: [`setId is ${PRUNED}, but the file is named for ${BEFORE}`],
    });
  });
});

describe('tombstones on a target', () => {
  let root: string;
  let target: Target;
  const job = 'shop';

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'bp-tombstone-'));
    target = createLocalTarget({ name: 'disk', path: root, optional: false });
  });
  after(async () => {
    await target.close();
    await rm(root, { recursive: true, force: true });
  });

  const put = async (key: string, bytes: Buffer | string) => {
    await mkdir(dirname(join(root, key)), { recursive: true });
    await writeFile(join(root, key), bytes);
  };

  it('lives at <job>/tombstones/<setId>.json', () => {
    assert.equal(tombstonePrefix(job), 'shop/tombstones/');
    assert.equal(tombstoneKey(job, PRUNED), `shop/tombstones/${PRUNED}.json`);
    assert.throws(() => tombstoneKey(job, '../evil'), /not a set id/);
  });

  it('writes a proven tombstone, leaves no temporary, and reads it back', async () => {
    assert.deepEqual(await readTombstones(target, job, never), [], 'no tombstones directory: none');
    assert.equal(await writeTombstone(target, job, tombstone(), { signal: never, now }), 'written');
    assert.deepEqual(await readdir(join(root, job, 'tombstones')), [`${PRUNED}.json`]);
    const stored = await readFile(join(root, tombstoneKey(job, PRUNED)));
    assert.deepEqual(stored, serializeTombstone(tombstone()));
    assert.deepEqual(await readTombstones(target, job, never), [
      { key: tombstoneKey(job, PRUNED), setId: PRUNED, parsed: { ok: true, tombstone: tombstone() } },
    ]);
  });

  it('is idempotent for a prune run again: the same links are kept, not rewritten', async () => {
    const before = await readFile(join(root, tombstoneKey(job, PRUNED)));
    const again = tombstone({ reason: 'a second prune', at: '2025-11-11T04:00:00.000Z' });
    assert.equal(await writeTombstone(target, job, again, { signal: never, now }), 'exists');
    assert.deepEqual(await readFile(join(root, tombstoneKey(job, PRUNED))), before);
  });

  it('refuses to replace a tombstone that says something else', async () => {
    const other = tombstone({ manifestSha256: sha('c') });
    await assert.rejects(
      writeTombstone(target, job, other, { signal: never, now }),
      (error: unknown) =>
        error instanceof TargetError &&
        error.permanent &&
        error.message.includes(
          `${tombstoneKey(job, PRUNED)} already exists and says something else (manifest ${sha('a')})`,
        ),
    );
    const stillThere = await readTombstones(target, job, never);
    assert.equal(stillThere[0]?.parsed.ok && stillThere[0].parsed.tombstone.manifestSha256, sha('a'));
  });

  it('refuses to write an invalid tombstone, and writes nothing', async () => {
    const invalid = tombstone({ setId: BEFORE, previous: { setId: PRUNED, manifestSha256: sha('b') } });
    await assert.rejects(
      writeTombstone(target, job, invalid, { signal: never, now }),
      /refusing to write an invalid tombstone for "20251103T030000Z-aaaaaa": previous\.setId: must name an older set/,
    );
    assert.deepEqual(await readdir(join(root, job, 'tombstones')), [`${PRUNED}.json`]);
  });

  it('lists damaged tombstones by name, skips temporaries and other files, sorts by set id', async () => {
    const damagedId = '20251101T030000Z-dddddd';
    await put(`${tombstonePrefix(job)}${damagedId}.json`, '{"format": "backproof-tombstone/1"');
    await put(`${tombstonePrefix(job)}20251102T030000Z-eeeeee.json`, serializeTombstone(tombstone()));
    await put(`${tombstonePrefix(job)}not-a-set.json`, serializeTombstone(tombstone()));
    await put(`${tombstonePrefix(job)}20251105T030000Z-ffffff.json.tmp-0a1b2c3d`, 'half written');
    await put(`${tombstonePrefix(job)}README.txt`, 'notes');
    await put(`${tombstonePrefix(job)}@eaDir/thumb.json`, '{}');
    const listed = await readTombstones(target, job, never);
    assert.deepEqual(
      listed.map((l) => [l.setId, l.parsed.ok]),
      [
        [damagedId, false],
        ['20251102T030000Z-eeeeee', false],
        [PRUNED, true],
        ['not-a-set', false],
      ],
    );
    const problems = Object.fromEntries(listed.map((l) => [l.setId, l.parsed.ok ? [] : l.parsed.problems]));
    assert.match(problems[damagedId]?.[0] ?? '', /^not JSON: /);
    assert.deepEqual(problems['20251102T030000Z-eeeeee'], [
      `setId is ${PRUNED}, but the file is named for 20251102T030000Z-eeeeee`,
    ]);
    assert.deepEqual(problems['not-a-set'], ['not-a-set.json is not named <setId>.json']);
  });

  it('lists a tombstone it cannot read as damaged, naming why', async () => {
    const huge = '20251020T030000Z-hhhhhh';
    await put(`${tombstonePrefix(job)}${huge}.json`, Buffer.alloc((1 << 20) + 1, 0x20));
    const listed = (await readTombstones(target, job, never)).find((l) => l.setId === huge);
    assert.ok(listed && !listed.parsed.ok, JSON.stringify(listed));
    assert.match(
      listed.parsed.ok ? '' : (listed.parsed.problems[0] ?? ''),
      /^cannot be read: .*larger than 1048576 bytes/,
    );
  });
});
