import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { editDistance, formatKeyPath, markGenerated, problemsOf, suggestKey } from '../../src/config/errors.js';
import { jobConfigSchema } from '../../src/config/schema.js';

describe('formatKeyPath', () => {
  it('writes keys with dots and indexes in brackets', () => {
    assert.equal(formatKeyPath(['targets', 0, 'pth']), 'targets[0].pth');
    assert.equal(formatKeyPath(['sources', 1, 'paths', 2]), 'sources[1].paths[2]');
    assert.equal(formatKeyPath(['job']), 'job');
    assert.equal(formatKeyPath([]), '(top level)');
  });

  it('quotes keys that would be misread', () => {
    assert.equal(formatKeyPath(['checks', 'min free']), 'checks["min free"]');
    assert.equal(formatKeyPath(['a.b']), '["a.b"]');
    assert.equal(formatKeyPath(['1']), '["1"]');
  });
});

describe('editDistance', () => {
  it('counts insertions, deletions and substitutions', () => {
    assert.equal(editDistance('', ''), 0);
    assert.equal(editDistance('path', 'path'), 0);
    assert.equal(editDistance('pth', 'path'), 1);
    assert.equal(editDistance('paths', 'path'), 1);
    assert.equal(editDistance('patj', 'path'), 1);
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('abc', ''), 3);
  });
});

describe('suggestKey', () => {
  const known = ['name', 'type', 'path', 'paths', 'exclude', 'oneFileSystem'];

  it('suggests the closest key within two edits', () => {
    assert.equal(suggestKey('pth', known), 'path');
    assert.equal(suggestKey('nme', known), 'name');
    assert.equal(suggestKey('typ', known), 'type');
    assert.equal(suggestKey('excludes', known), 'exclude');
  });

  it('ignores case and accepts prefixes of three letters or more', () => {
    assert.equal(suggestKey('onefilesystem', known), 'oneFileSystem');
    assert.equal(suggestKey('oneFile', known), 'oneFileSystem');
    assert.equal(suggestKey('excludePatterns', known), 'exclude');
  });

  it('suggests nothing when no key is close', () => {
    assert.equal(suggestKey('colour', known), undefined);
    assert.equal(suggestKey('retention', known), undefined);
    assert.equal(suggestKey('x', []), undefined);
  });
});

describe('problemsOf', () => {
  it('splits one zod issue about several unknown keys into one problem per key', () => {
    const input = {
      job: 'a',
      sources: [{ name: 'a', type: 'files', paths: ['/a'], pths: 1, colour: 2 }],
      targets: [{ name: 'b', type: 'local', path: '/b' }],
    };
    const result = jobConfigSchema.safeParse(input, { error: markGenerated });
    assert.equal(result.success, false);
    assert.deepEqual(problemsOf(result.error?.issues ?? [], input), [
      { path: ['sources', 0, 'pths'], message: 'unknown key; did you mean "paths"?', unknownKey: true },
      {
        path: ['sources', 0, 'colour'],
        message: 'unknown key; the keys allowed here are: name, type, paths, exclude, oneFileSystem',
        unknownKey: true,
      },
    ]);
  });

  it('never passes on a message zod made up', () => {
    const inputs: unknown[] = [
      { job: 1, sources: 'x', targets: [{}], fanOut: 3, compression: [], checks: { minFree: null } },
      { job: 'a', sources: [null, 5, { type: 'files', name: 'a', paths: [1, ''] }], targets: [] },
      'text',
    ];
    for (const input of inputs) {
      const result = jobConfigSchema.safeParse(input, { error: markGenerated });
      const found = problemsOf(result.error?.issues ?? [], input);
      assert.ok(found.length > 0);
      for (const problem of found) {
        assert.equal(problem.message.includes(String.fromCharCode(0)), false, problem.message);
        assert.doesNotMatch(problem.message, /Invalid input|Invalid option|Too small|Unrecognized/, problem.message);
        assert.match(problem.message, /; /, `no fix in: ${problem.message}`);
      }
    }
  });
});
