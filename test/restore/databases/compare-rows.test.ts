import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareRows, describeRowDifference } from '../../../src/restore/databases/compare-rows.js';
import { databaseOfComponent } from '../../../src/restore/databases/index.js';

describe('compareRows', () => {
  it('finds nothing when every table has the same rows, empty tables included', () => {
    assert.deepEqual(compareRows({ 'app.a': 3, 'app.b': 0 }, { 'app.b': 0, 'app.a': 3 }), []);
    assert.deepEqual(compareRows({}, {}), []);
  });

  it('names a count that differs, a table that is missing and one the manifest does not list, sorted', () => {
    const differences = compareRows(
      { 'app.users': 1000, 'app.gone': 5, 'app.empty': 0 },
      { 'app.users': 998, 'app.empty': 0, 'app.new': 7 },
    );
    assert.deepEqual(differences, [
      { table: 'app.gone', expected: 5, actual: null },
      { table: 'app.new', expected: null, actual: 7 },
      { table: 'app.users', expected: 1000, actual: 998 },
    ]);
    assert.deepEqual(differences.map(describeRowDifference), [
      'app.gone: 5 rows expected, but the table is missing',
      'app.new: 7 rows found in a table the manifest does not list',
      'app.users: 1000 rows expected, 998 found',
    ]);
  });

  it('tells an empty table from a missing one, and is not fooled by inherited names', () => {
    assert.deepEqual(compareRows({ 'public.t': 0 }, {}), [{ table: 'public.t', expected: 0, actual: null }]);
    assert.deepEqual(compareRows({}, { constructor: 1 }), [{ table: 'constructor', expected: null, actual: 1 }]);
    assert.deepEqual(compareRows({ toString: 2 }, {}), [{ table: 'toString', expected: 2, actual: null }]);
  });

  it('counts up to the largest safe integers exactly', () => {
    const big = Number.MAX_SAFE_INTEGER;
    assert.deepEqual(compareRows({ 'a.t': big }, { 'a.t': big - 1 }), [
      { table: 'a.t', expected: big, actual: big - 1 },
    ]);
    assert.equal(
      describeRowDifference({ table: 'a.t', expected: big, actual: 0 }),
      `a.t: ${big} rows expected, 0 found`,
    );
  });
});

describe('databaseOfComponent', () => {
  it('decodes the percent-encoded database part of a component name', () => {
    assert.equal(databaseOfComponent('main.app'), 'app');
    assert.equal(databaseOfComponent('main.my%20db%2Ex'), 'my db.x');
    assert.equal(databaseOfComponent('main.%75sers'), 'users');
    assert.equal(databaseOfComponent('main.%E6%97%A5%E6%9C%AC'), '日本');
  });
});
