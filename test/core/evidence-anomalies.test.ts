// decideOutcome and the anomaly check: a failure-level finding fails a run whose set is committed
// (as suspect); a warning-level one makes it a warning; a success carries no finding at all.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type CommittedSet,
  committedSet,
  decideOutcome,
  type OutcomeInput,
  type RunOutcome,
  type VerifiedObject,
  verifiedObject,
} from '../../src/core/evidence.js';
import type { Finding } from '../../src/policy/anomaly.js';

const sha = (c: string): string => c.repeat(64);
const AT = '2025-11-04T03:05:00.000Z';

function proof(target: string, name: string): VerifiedObject {
  return verifiedObject(target, name, { bytes: 10, sha256: sha('a') }, { bytes: 10, sha256: sha('a') }, 'reread', AT);
}

function committedOn(target: string): CommittedSet {
  return committedSet({
    target,
    setId: '20251104T030000Z-k3x9qa',
    manifest: proof(target, 'manifest.json'),
    manifestListed: [{ name: 'main.app.sql.zst', bytes: 10, sha256: sha('a') }],
    objects: [proof(target, 'main.app.sql.zst')],
  });
}

const shrank: Finding = {
  id: 'main.app:bytes',
  component: 'main.app',
  metric: 'bytes',
  level: 'failure',
  baseline: 2 ** 50,
  value: 2 ** 49,
  baselineSets: 7,
  changeBp: -5000,
  message: 'main.app: compressed size is 50% smaller than usual (563.0 TB, median of the last 7 sets 1.1 PB)',
};
const fewerRows: Finding = {
  id: 'main.app:rows:app.users',
  component: 'main.app',
  metric: 'rows',
  table: 'app.users',
  level: 'warning',
  baseline: 1000,
  value: 750,
  baselineSets: 7,
  changeBp: -2500,
  message: 'main.app: row count of app.users is 25% lower than usual (750, median of the last 7 sets 1,000)',
};

function outcome(input: Partial<OutcomeInput>): RunOutcome {
  return decideOutcome({
    requiredTargets: ['disk', 'nas'],
    committed: [committedOn('disk'), committedOn('nas')],
    failures: [],
    optionalFailures: [],
    warnings: [],
    anomalies: [],
    ...input,
  });
}

describe('decideOutcome with anomaly findings', () => {
  it('without findings, every set committed: success', () => {
    const result = outcome({});
    assert.equal(result.status, 'success');
    assert.deepEqual(result.anomalies, []);
  });

  it('a failure-level finding fails the run although every set is committed, saying what to do', () => {
    const result = outcome({ anomalies: [shrank] });
    assert.equal(result.status, 'failure');
    assert.equal(result.committed.length, 2, 'the sets stay committed: they are faithful copies');
    assert.deepEqual(result.failures, [
      {
        step: 'anomaly',
        component: 'main.app',
        message:
          `${shrank.message}. The set is committed but marked suspect: \`restore latest\` and retention pass over it. ` +
          'Check the data; once a human has confirmed the change is expected, run `backproof ack main.app:bytes`',
        evidence: {
          finding: 'main.app:bytes',
          metric: 'bytes',
          baseline: 2 ** 50,
          value: 2 ** 49,
          changeBp: -5000,
          baselineSets: 7,
        },
      },
    ]);
    assert.deepEqual(result.anomalies, [shrank]);
    assert.doesNotMatch(JSON.stringify(result.failures), /e\+/, 'no exponent anywhere');
  });

  it('a warning-level finding makes a warning that names the ack', () => {
    const result = outcome({ anomalies: [fewerRows] });
    assert.equal(result.status, 'warning');
    assert.deepEqual(result.warnings, [
      `${fewerRows.message}; if this is expected, run \`backproof ack main.app:rows:app.users\``,
    ]);
    assert.deepEqual(result.anomalies, [fewerRows]);
  });

  it('both levels: a failure, with the warning kept among the warnings', () => {
    const result = outcome({ anomalies: [fewerRows, shrank], warnings: ['app: 1 file changed while read'] });
    assert.equal(result.status, 'failure');
    assert.deepEqual(
      result.failures.map((f) => f.step),
      ['anomaly'],
    );
    assert.equal(result.warnings.length, 2);
    assert.match(result.warnings[1] ?? '', /backproof ack main\.app:rows:app\.users/);
  });

  it('an anomaly failure does not hide a required target without a set', () => {
    const result = outcome({ committed: [committedOn('disk')], anomalies: [shrank] });
    assert.equal(result.status, 'failure');
    assert.deepEqual(
      result.failures.map((f) => `${f.step} ${f.target ?? f.component}`),
      ['commit nas', 'anomaly main.app'],
    );
  });

  it('a success cannot carry findings (checked by tsc)', () => {
    const real = outcome({});
    // @ts-expect-error a success has no anomalies
    const forged: RunOutcome = { ...real, status: 'success', anomalies: [shrank] };
    assert.equal(forged.anomalies.length, 1);
  });
});
