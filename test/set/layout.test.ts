import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  assertObjectName,
  groupSets,
  isObjectName,
  isSetId,
  MANIFEST_NAME,
  manifestKey,
  newSetId,
  objectKey,
  ownerKey,
  setPrefix,
  TEMP_MARKER,
  tempKey,
} from '../../src/set/layout.js';

const SET_ID_PATTERN = /^\d{8}T\d{6}Z-[a-z0-9]{6}$/;

describe('set ids', () => {
  it('are the UTC start time to the second plus six random lowercase characters', () => {
    const id = newSetId(new Date('2025-11-04T03:00:07.999Z'));
    assert.match(id, SET_ID_PATTERN);
    assert.ok(id.startsWith('20251104T030007Z-'), id);
    assert.equal(isSetId(id), true);
  });

  it('sort in the order of their start times, across seconds, days, months and years', () => {
    const times = [
      '2024-12-31T23:59:59.000Z',
      '2025-01-01T00:00:00.000Z',
      '2025-01-01T00:00:01.000Z',
      '2025-02-09T10:00:00.000Z',
      '2025-10-01T00:00:00.000Z',
      '2025-11-04T03:00:00.000Z',
      '2025-11-04T23:00:00.000Z',
    ];
    const ids = times.map((t) => newSetId(new Date(t)));
    const shuffled = [ids[3], ids[0], ids[6], ids[1], ids[5], ids[2], ids[4]] as string[];
    assert.deepEqual([...shuffled].sort(), ids);
  });

  it('differ for two runs started in the same second', () => {
    const at = new Date('2025-11-04T03:00:00Z');
    const ids = new Set(Array.from({ length: 200 }, () => newSetId(at)));
    assert.equal(ids.size, 200);
  });

  it('are recognised only in their exact form', () => {
    assert.equal(isSetId('20251104T030000Z-k3x9qa'), true);
    for (const bad of [
      '',
      '20251104T030000Z',
      '20251104T030000Z-K3X9QA',
      '20251104T030000Z-k3x9q',
      '20251104T030000Z-k3x9qa7',
      '20251104T030000-k3x9qa',
      '2025-11-04T03:00:00Z-k3x9qa',
      ' 20251104T030000Z-k3x9qa',
      '20251104T030000Z-k3x9qa\n',
      '20251104T030000Z-k3x9q.',
      '../20251104T030000Z-k3x9qa',
    ]) {
      assert.equal(isSetId(bad), false, JSON.stringify(bad));
    }
  });
});

describe('keys of a set', () => {
  it('setPrefix puts a set under <job>/<YYYY>/<MM>/<DD>/<setId> from the id itself', () => {
    assert.equal(setPrefix('api-gateway', '20251104T030000Z-k3x9qa'), 'api-gateway/2025/11/04/20251104T030000Z-k3x9qa');
    assert.equal(setPrefix('app', '20250101T000000Z-000000'), 'app/2025/01/01/20250101T000000Z-000000');
  });

  it('setPrefix refuses anything that is not a set id', () => {
    assert.throws(() => setPrefix('app', '../../etc'), /not a set id/);
    assert.throws(() => setPrefix('app', ''), /not a set id/);
  });

  it('owner, manifest and object keys sit where the design says', () => {
    const id = '20251104T030000Z-k3x9qa';
    assert.equal(ownerKey('app'), 'app/backproof.json');
    assert.equal(manifestKey('app', id), `app/2025/11/04/${id}/manifest.json`);
    assert.equal(objectKey('app', id, 'main.app.sql.zst'), `app/2025/11/04/${id}/main.app.sql.zst`);
  });

  it('objectKey refuses a name that would leave the set directory', () => {
    const id = '20251104T030000Z-k3x9qa';
    assert.throws(() => objectKey('app', id, '../other/x'), /not a valid object name/);
    assert.throws(() => objectKey('app', id, 'a/b'), /not a valid object name/);
  });

  it('tempKey marks the key as unfinished and is different every time', () => {
    const key = 'app/2025/11/04/20251104T030000Z-k3x9qa/app.tar.zst';
    const a = tempKey(key);
    const b = tempKey(key);
    assert.ok(a.startsWith(`${key}${TEMP_MARKER}`), a);
    assert.notEqual(a, b);
    assert.equal(isObjectName(a.slice(a.lastIndexOf('/') + 1)), false);
  });
});

describe('object names', () => {
  it('accepts plain basenames up to 255 characters', () => {
    for (const good of [
      'main.app.sql.zst',
      'app.tar.zst',
      'RUNBOOK.md',
      'a',
      '.hidden',
      '...',
      'x'.repeat(255),
      'é.zst',
    ]) {
      assert.equal(isObjectName(good), true, JSON.stringify(good));
      assert.doesNotThrow(() => assertObjectName(good));
    }
  });

  it('refuses slashes, dot names, control characters, the temp marker, empty and overlong names', () => {
    const bad = [
      '',
      '.',
      '..',
      'a/b',
      '/etc',
      '../x',
      'a\\b',
      'a\nb',
      'a\tb',
      'a\u0000b',
      'a\u001fb',
      'a\u007fb',
      `app.tar.zst${TEMP_MARKER}1234abcd`,
      'x'.repeat(256),
    ];
    for (const name of bad) {
      assert.equal(isObjectName(name), false, JSON.stringify(name));
      assert.throws(() => assertObjectName(name), /not a valid object name/);
    }
  });
});

describe('groupSets', () => {
  const job = 'app';
  const newest = '20251105T030000Z-bbbbbb';
  const middle = '20251104T030000Z-aaaaaa';
  const oldest = '20251103T030000Z-cccccc';
  const incomplete = '20251104T120000Z-dddddd';
  const listing = [
    'app/backproof.json',
    'app/tombstones/20251001T030000Z-zzzzzz.json',
    `app/2025/11/03/${oldest}/app.tar.zst`,
    `app/2025/11/03/${oldest}/${MANIFEST_NAME}`,
    `app/2025/11/04/${middle}/app.tar.zst`,
    `app/2025/11/04/${middle}/main.app.sql.zst`,
    `app/2025/11/04/${middle}/${MANIFEST_NAME}`,
    `app/2025/11/04/${middle}/RUNBOOK.md.tmp-0a1b2c3d`,
    `app/2025/11/04/${incomplete}/main.app.sql.zst`,
    `app/2025/11/04/${incomplete}/app.tar.zst.tmp-99887766`,
    `app/2025/11/05/${newest}/${MANIFEST_NAME}`,
    `app/2025/11/05/${newest}/app.tar.zst`,
    // a set directory under the wrong date: not where this id belongs, so not a set
    'app/2025/11/06/20251104T090000Z-eeeeee/manifest.json',
    // not a set id
    'app/2025/11/04/not-a-set/manifest.json',
    // too deep
    `app/2025/11/04/${middle}/sub/dir.txt`,
    // another job whose name starts the same
    `app2/2025/11/04/${middle}/manifest.json`,
    `other/2025/11/04/${middle}/manifest.json`,
    'app/.probe.tmp-01020304',
    'README',
  ];

  it('groups a realistic listing into sets, newest first, ignoring unrelated keys', () => {
    const sets = groupSets(job, listing);
    assert.deepEqual(
      sets.map((s) => s.setId),
      [newest, incomplete, middle, oldest],
    );
    const byId = new Map(sets.map((s) => [s.setId, s]));
    assert.deepEqual(byId.get(middle), {
      setId: middle,
      prefix: `app/2025/11/04/${middle}`,
      objects: ['app.tar.zst', 'main.app.sql.zst'],
      temporaries: [`app/2025/11/04/${middle}/RUNBOOK.md.tmp-0a1b2c3d`],
      hasManifest: true,
    });
    assert.deepEqual(byId.get(incomplete), {
      setId: incomplete,
      prefix: `app/2025/11/04/${incomplete}`,
      objects: ['main.app.sql.zst'],
      temporaries: [`app/2025/11/04/${incomplete}/app.tar.zst.tmp-99887766`],
      hasManifest: false,
    });
    assert.equal(byId.get(newest)?.hasManifest, true);
    assert.deepEqual(byId.get(newest)?.objects, ['app.tar.zst']);
    assert.deepEqual(byId.get(oldest)?.objects, ['app.tar.zst']);
  });

  it('does not depend on the order of the listing', () => {
    const reversed = groupSets(job, [...listing].reverse());
    assert.deepEqual(
      reversed.map((s) => s.setId),
      [newest, incomplete, middle, oldest],
    );
  });

  it('treats a job name with regular-expression characters literally', () => {
    const id = '20251104T030000Z-aaaaaa';
    const sets = groupSets('a.b+', [
      `a.b+/2025/11/04/${id}/manifest.json`,
      `aXb+/2025/11/04/${id}/x`,
      `a.bb/2025/11/04/${id}/y`,
    ]);
    assert.equal(sets.length, 1);
    assert.deepEqual(sets[0]?.objects, []);
    assert.equal(sets[0]?.hasManifest, true);
  });

  it('gives no sets for an empty or unrelated listing', () => {
    assert.deepEqual(groupSets(job, []), []);
    assert.deepEqual(groupSets(job, ['app/backproof.json', 'other/x', 'app/2025/11/04/manifest.json']), []);
  });
});
