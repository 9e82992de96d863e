// Redaction of nested values: evidence and reports carry tools' output, which may echo a secret.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { clearSecrets, redact, redactDeep, registerSecret } from '../../src/lib/redact.js';

describe('redactDeep', () => {
  afterEach(() => clearSecrets());

  it('masks a secret in every string of a nested value, whatever characters it holds', () => {
    const secret = 'pa"ss\\wörd\n42';
    registerSecret(secret);
    const evidence = {
      stderrTail: `login failed for ${secret}`,
      lines: ['ok', `again ${secret}`],
      nested: { url: 'smtp://user:hunter22@mail.lan:587', count: 3, flag: true, none: null },
    };
    const masked = redactDeep(evidence);
    assert.deepEqual(masked, {
      stderrTail: 'login failed for ***',
      lines: ['ok', 'again ***'],
      nested: { url: 'smtp://user:***@mail.lan:587', count: 3, flag: true, none: null },
    });
    assert.ok(!JSON.stringify(masked).includes('wörd'));
    assert.equal(evidence.lines[1], `again ${secret}`, 'the original is left as it was');
  });

  it('leaves values without secrets equal', () => {
    const value = { a: [1, 'two', { b: false }] };
    assert.deepEqual(redactDeep(value), value);
    assert.equal(redact('plain'), 'plain');
  });
});
