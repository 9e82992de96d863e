import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { MANIFEST_FORMAT, type Manifest, parseManifest, serializeManifest, sha256Of } from '../../src/set/manifest.js';

const SET_ID = '20251104T030000Z-k3x9qa';
const sha = (c: string): string => c.repeat(64);

function validManifest(): Manifest {
  return {
    format: MANIFEST_FORMAT,
    job: 'app',
    setId: SET_ID,
    host: 'web1',
    hostId: 'host-1234',
    startedAt: '2025-11-04T03:00:00.000Z',
    finishedAt: '2025-11-04T03:04:10.000Z',
    backproofVersion: '0.1.0',
    compression: { algorithm: 'zstd', level: 3 },
    encryption: null,
    objects: [
      { name: 'main.app.sql.zst', bytes: 2 ** 40 + 3, sha256: sha('a') },
      { name: 'files.tar.zst', bytes: 0, sha256: sha('b') },
      { name: 'files.index.jsonl.zst', bytes: 77, sha256: sha('c') },
    ],
    components: [
      {
        name: 'main.app',
        source: 'main',
        kind: 'mariadb',
        object: 'main.app.sql.zst',
        bytes: 2 ** 40 + 3,
        sha256: sha('a'),
        rawBytes: Number.MAX_SAFE_INTEGER,
        rawSha256: sha('d'),
        tables: { 'app.users': 1200, 'app.sessions': 0 },
        dumpTool: 'mariadb-dump 10.11.6',
        serverVersion: '10.11.6-MariaDB',
      },
      {
        name: 'files',
        source: 'files',
        kind: 'files',
        object: 'files.tar.zst',
        index: 'files.index.jsonl.zst',
        bytes: 0,
        sha256: sha('b'),
        rawBytes: 10240,
        rawSha256: sha('e'),
        files: 12,
        warnings: ['storage/x.log changed while it was read'],
      },
    ],
    anomalies: [],
    suspect: false,
    warnings: [],
    previous: { setId: '20251103T030000Z-aaaaaa', manifestSha256: sha('f') },
  };
}

/** A valid manifest as plain JSON data, to break in one place. */
function data(): Record<string, unknown> {
  return JSON.parse(JSON.stringify(validManifest())) as Record<string, unknown>;
}

function bytesOf(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/** Parses, asserts the result is a failure and returns its problems. Any throw fails the test. */
function problemsOf(bytes: Buffer, expectedSetId?: string): string[] {
  const result = parseManifest(bytes, expectedSetId);
  assert.equal(result.ok, false, 'a corrupt manifest must not parse');
  if (result.ok) return [];
  assert.equal(result.sha256, createHash('sha256').update(bytes).digest('hex'));
  assert.ok(result.problems.length > 0);
  return result.problems;
}

function assertProblem(problems: string[], pattern: RegExp): void {
  assert.ok(
    problems.some((p) => pattern.test(p)),
    `no problem matches ${pattern}: ${JSON.stringify(problems)}`,
  );
}

describe('manifest round trip', () => {
  it('parses what it serialized into an equal manifest, with the sha256 of the exact bytes', () => {
    const manifest = validManifest();
    const bytes = serializeManifest(manifest);
    const parsed = parseManifest(bytes, SET_ID);
    assert.equal(parsed.ok, true, parsed.ok ? '' : parsed.problems.join('\n'));
    if (!parsed.ok) return;
    assert.deepEqual(parsed.manifest, manifest);
    assert.equal(parsed.sha256, sha256Of(bytes));
    assert.equal(parsed.sha256, createHash('sha256').update(bytes).digest('hex'));
  });

  it('serializes as UTF-8 JSON ending with a newline, sizes written as plain integers', () => {
    const text = serializeManifest(validManifest()).toString('utf8');
    assert.ok(text.endsWith('}\n'));
    assert.ok(text.includes(`"rawBytes": ${Number.MAX_SAFE_INTEGER}`), 'MAX_SAFE_INTEGER written whole');
    assert.ok(!/\de[+-]?\d/.test(text.replace(/"[0-9a-f]{64}"/g, '""')), 'no exponent anywhere');
  });

  it('accepts an encrypted set with recipients and a first set without previous', () => {
    const value = data();
    value.encryption = { recipients: ['age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq'] };
    value.previous = null;
    const parsed = parseManifest(bytesOf(value), SET_ID);
    assert.equal(parsed.ok, true, parsed.ok ? '' : parsed.problems.join('\n'));
  });

  it('keeps unknown fields everywhere when read, and writes them back', () => {
    const value = data();
    value.futureField = { nested: [1, 2, 3] };
    (value.objects as Record<string, unknown>[])[0] = {
      ...(value.objects as Record<string, unknown>[])[0],
      storageClass: 'GLACIER',
    };
    (value.components as Record<string, unknown>[])[1] = {
      ...(value.components as Record<string, unknown>[])[1],
      owner: 'www-data',
    };
    value.compression = { algorithm: 'zstd', level: 3, long: 27 };
    value.previous = { setId: '20251103T030000Z-aaaaaa', manifestSha256: sha('f'), note: 'x' };
    const parsed = parseManifest(bytesOf(value), SET_ID);
    assert.equal(parsed.ok, true, parsed.ok ? '' : parsed.problems.join('\n'));
    if (!parsed.ok) return;
    const again = JSON.parse(serializeManifest(parsed.manifest).toString('utf8')) as Record<string, unknown>;
    assert.deepEqual(again, value);
  });
});

describe('corrupt manifests give ok: false with the problem named, never a throw', () => {
  it('not JSON at all, truncated JSON, or not valid UTF-8', () => {
    assertProblem(problemsOf(Buffer.from('this is not json')), /not JSON/);
    const full = serializeManifest(validManifest());
    assertProblem(problemsOf(full.subarray(0, full.length - 10)), /not JSON/);
    assertProblem(problemsOf(Buffer.alloc(0)), /not JSON/);
    assertProblem(problemsOf(Buffer.from([0xff, 0xfe, 0x00, 0x7b])), /not JSON/);
  });

  it('JSON that is not an object', () => {
    for (const text of ['null', '[]', '42', '"manifest"', 'true']) problemsOf(Buffer.from(text));
  });

  it('a missing required field, named by its key', () => {
    for (const field of ['format', 'job', 'setId', 'objects', 'components', 'suspect', 'previous', 'finishedAt']) {
      const value = data();
      delete value[field];
      assertProblem(problemsOf(bytesOf(value)), new RegExp(`^${field}\\b`));
    }
  });

  it('a missing field inside an object or component, named by its path', () => {
    const value = data();
    delete (value.objects as Record<string, unknown>[])[1]?.sha256;
    assertProblem(problemsOf(bytesOf(value)), /^objects\.1\.sha256\b/);
    const other = data();
    delete (other.components as Record<string, unknown>[])[0]?.rawSha256;
    assertProblem(problemsOf(bytesOf(other)), /^components\.0\.rawSha256\b/);
  });

  it('another format', () => {
    const value = data();
    value.format = 'backproof/2';
    assertProblem(problemsOf(bytesOf(value)), /^format\b/);
  });

  it('a bad sha256: short, uppercase, not hex', () => {
    for (const bad of ['abc', sha('A'), sha('g'), `${sha('a')}0`, '']) {
      const value = data();
      ((value.objects as Record<string, unknown>[])[0] as Record<string, unknown>).sha256 = bad;
      assertProblem(problemsOf(bytesOf(value)), /^objects\.0\.sha256\b/);
    }
    const chain = data();
    chain.previous = { setId: '20251103T030000Z-aaaaaa', manifestSha256: 'nope' };
    assertProblem(problemsOf(bytesOf(chain)), /^previous\.manifestSha256\b/);
  });

  it('an object name that is a path, a dot name or a temporary', () => {
    for (const bad of ['../etc/passwd', 'a/b', '/abs', '..', '.', '', 'x.tmp-12345678', 'a\nb']) {
      const value = data();
      const objects = value.objects as Record<string, unknown>[];
      (objects[0] as Record<string, unknown>).name = bad;
      ((value.components as Record<string, unknown>[])[0] as Record<string, unknown>).object = bad;
      const problems = problemsOf(bytesOf(value));
      assertProblem(problems, /^objects\.0\.name\b/);
    }
  });

  it('a component whose object or index is a path', () => {
    const value = data();
    ((value.components as Record<string, unknown>[])[1] as Record<string, unknown>).index = '../x.jsonl';
    assertProblem(problemsOf(bytesOf(value)), /^components\.1\.index\b/);
  });

  it('a negative, fractional, unsafe, string or exponent size', () => {
    for (const bad of [-1, 1.5, 0.1, 2 ** 53, 2 ** 60, '100', null]) {
      const value = data();
      ((value.objects as Record<string, unknown>[])[2] as Record<string, unknown>).bytes = bad;
      assertProblem(problemsOf(bytesOf(value)), /^objects\.2\.bytes\b/);
    }
    const rows = data();
    ((rows.components as Record<string, unknown>[])[0] as Record<string, unknown>).tables = { 'app.users': -5 };
    assertProblem(problemsOf(bytesOf(rows)), /^components\.0\.tables\b/);
    const text = serializeManifest(validManifest()).toString('utf8').replace('"bytes": 77', '"bytes": 7.7e1.5');
    problemsOf(Buffer.from(text));
  });

  it('a component naming an object that objects[] lacks', () => {
    const value = data();
    ((value.components as Record<string, unknown>[])[0] as Record<string, unknown>).object = 'gone.sql.zst';
    assertProblem(problemsOf(bytesOf(value)), /component main\.app names gone\.sql\.zst, which objects\[\] lacks/);
    const index = data();
    (index.objects as unknown[]).splice(2, 1);
    assertProblem(problemsOf(bytesOf(index)), /component files names files\.index\.jsonl\.zst/);
  });

  it('an object listed twice', () => {
    const value = data();
    const objects = value.objects as Record<string, unknown>[];
    objects.push({ ...objects[0], sha256: sha('9') });
    assertProblem(problemsOf(bytesOf(value)), /object main\.app\.sql\.zst is listed twice/);
  });

  it('no objects or no components', () => {
    const empty = data();
    empty.objects = [];
    empty.components = [];
    const problems = problemsOf(bytesOf(empty));
    assertProblem(problems, /^objects\b/);
    assertProblem(problems, /^components\b/);
  });

  it('a setId that is not the set directory it was read from', () => {
    const bytes = serializeManifest(validManifest());
    assertProblem(
      problemsOf(bytes, '20251105T030000Z-zzzzzz'),
      /setId is 20251104T030000Z-k3x9qa.*20251105T030000Z-zzzzzz/,
    );
  });

  it('wrong types for booleans, lists and nested objects', () => {
    const cases: [string, unknown, RegExp][] = [
      ['suspect', 'false', /^suspect\b/],
      ['warnings', 'none', /^warnings\b/],
      ['anomalies', {}, /^anomalies\b/],
      ['compression', 'zstd', /^compression\b/],
      ['encryption', { recipients: 'age1x' }, /^encryption\.recipients\b/],
      ['objects', { 0: {} }, /^objects\b/],
    ];
    for (const [field, bad, pattern] of cases) {
      const value = data();
      value[field] = bad;
      assertProblem(problemsOf(bytesOf(value)), pattern);
    }
  });

  it('a __proto__ key and deep nesting do not throw or pollute', () => {
    const text = serializeManifest(validManifest())
      .toString('utf8')
      .replace(
        '"anomalies": []',
        `"anomalies": ${'['.repeat(5000)}${']'.repeat(5000)}, "__proto__": { "polluted": true }`,
      );
    const parsed = parseManifest(Buffer.from(text), SET_ID);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    if (parsed.ok) assert.equal((parsed.manifest as Record<string, unknown>).polluted, undefined);
  });
});
