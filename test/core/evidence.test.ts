import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type CommittedSet,
  committedSet,
  decideOutcome,
  type Failure,
  type OutcomeInput,
  type RunOutcome,
  VerificationMismatch,
  type VerifiedObject,
  verifiedObject,
} from '../../src/core/evidence.js';

const sha = (c: string): string => c.repeat(64);
const AT = '2025-11-04T03:05:00.000Z';
const SET_ID = '20251104T030000Z-k3x9qa';

function proof(target: string, name: string, bytes: number, hash: string): VerifiedObject {
  return verifiedObject(target, name, { bytes, sha256: hash }, { bytes, sha256: hash }, 'reread', AT);
}

const listed = [
  { name: 'main.app.sql.zst', bytes: 1000, sha256: sha('a') },
  { name: 'app.tar.zst', bytes: 2 ** 33 + 1, sha256: sha('b') },
];

function objectsOn(target: string): VerifiedObject[] {
  return listed.map((o) => proof(target, o.name, o.bytes, o.sha256));
}

function committedOn(target: string): CommittedSet {
  return committedSet({
    target,
    setId: SET_ID,
    manifest: proof(target, 'manifest.json', 900, sha('c')),
    manifestListed: listed,
    objects: objectsOn(target),
  });
}

const sourceFailure: Failure = { step: 'source', component: 'main.app', message: 'mariadb-dump exited with code 2' };
const nasFailure: Failure = { step: 'write', target: 'nas', message: 'target nas: connection reset' };
const offsiteFailure: Failure = { step: 'write', target: 'offsite', message: 'target offsite: access denied' };

function outcome(input: Partial<OutcomeInput>): RunOutcome {
  return decideOutcome({
    requiredTargets: [],
    committed: [],
    failures: [],
    optionalFailures: [],
    warnings: [],
    anomalies: [],
    ...input,
  });
}

describe('verifiedObject', () => {
  it('mints a proof when size and hash both match', () => {
    const object = verifiedObject(
      'disk',
      'app.tar.zst',
      { bytes: 2 ** 40, sha256: sha('a') },
      { bytes: 2 ** 40, sha256: sha('a') },
      'remote-hash',
      AT,
    );
    assert.equal(object.target, 'disk');
    assert.equal(object.name, 'app.tar.zst');
    assert.equal(object.bytes, 2 ** 40);
    assert.equal(object.sha256, sha('a'));
    assert.equal(object.level, 'remote-hash');
    assert.equal(object.verifiedAt, AT);
  });

  it('throws VerificationMismatch with expected and actual when the size differs', () => {
    assert.throws(
      () =>
        verifiedObject(
          'nas',
          'app.tar.zst',
          { bytes: 100, sha256: sha('a') },
          { bytes: 99, sha256: sha('a') },
          'reread',
          AT,
        ),
      (error: unknown) => {
        assert.ok(error instanceof VerificationMismatch);
        assert.deepEqual(error.evidence, {
          expected: { bytes: 100, sha256: sha('a') },
          actual: { bytes: 99, sha256: sha('a') },
        });
        assert.match(error.message, /target nas: app\.tar\.zst .*expected 100 bytes.*holds 99 bytes/);
        return true;
      },
    );
  });

  it('throws VerificationMismatch when only the hash differs', () => {
    assert.throws(
      () => verifiedObject('nas', 'x.zst', { bytes: 5, sha256: sha('a') }, { bytes: 5, sha256: sha('b') }, 'etag', AT),
      (error: unknown) =>
        error instanceof VerificationMismatch &&
        (error.evidence.actual as { sha256: string }).sha256 === sha('b') &&
        error.message.includes(sha('a')) &&
        error.message.includes(sha('b')),
    );
  });

  it('does not accept a hash in another case or a size of another type as equal', () => {
    assert.throws(
      () => verifiedObject('t', 'x', { bytes: 5, sha256: sha('a') }, { bytes: 5, sha256: sha('A') }, 'reread', AT),
      VerificationMismatch,
    );
    assert.throws(
      () =>
        verifiedObject(
          't',
          'x',
          { bytes: 5, sha256: sha('a') },
          { bytes: '5' as unknown as number, sha256: sha('a') },
          'reread',
          AT,
        ),
      VerificationMismatch,
    );
  });
});

describe('committedSet', () => {
  it('commits a manifest that lists exactly the objects verified on its target', () => {
    const set = committedOn('disk');
    assert.equal(set.target, 'disk');
    assert.equal(set.setId, SET_ID);
    assert.equal(set.manifestSha256, sha('c'));
    assert.equal(set.committedAt, AT);
    assert.deepEqual(
      set.objects.map((o) => o.name),
      ['main.app.sql.zst', 'app.tar.zst', 'manifest.json'],
    );
  });

  it('refuses a manifest listing an object that was not verified', () => {
    assert.throws(
      () =>
        committedSet({
          target: 'disk',
          setId: SET_ID,
          manifest: proof('disk', 'manifest.json', 900, sha('c')),
          manifestListed: listed,
          objects: objectsOn('disk').slice(0, 1),
        }),
      /lists app\.tar\.zst, which was not verified there/,
    );
  });

  it('refuses a manifest whose listed size or hash differs from the proof', () => {
    for (const wrong of [
      { ...listed[1], bytes: 2 ** 33 } as (typeof listed)[number],
      { ...listed[1], sha256: sha('e') } as (typeof listed)[number],
    ]) {
      assert.throws(
        () =>
          committedSet({
            target: 'disk',
            setId: SET_ID,
            manifest: proof('disk', 'manifest.json', 900, sha('c')),
            manifestListed: [listed[0] as (typeof listed)[number], wrong],
            objects: objectsOn('disk'),
          }),
        /which was not verified there/,
      );
    }
  });

  it('refuses a manifest that omits a verified object', () => {
    assert.throws(
      () =>
        committedSet({
          target: 'disk',
          setId: SET_ID,
          manifest: proof('disk', 'manifest.json', 900, sha('c')),
          manifestListed: listed.slice(0, 1),
          objects: objectsOn('disk'),
        }),
      /omits verified objects/,
    );
  });

  it('does not count proofs from another target', () => {
    assert.throws(
      () =>
        committedSet({
          target: 'disk',
          setId: SET_ID,
          manifest: proof('disk', 'manifest.json', 900, sha('c')),
          manifestListed: listed,
          objects: [...objectsOn('nas'), objectsOn('disk')[0] as VerifiedObject],
        }),
      /lists app\.tar\.zst, which was not verified there/,
    );
  });

  it('refuses a manifest verified on another target', () => {
    assert.throws(
      () =>
        committedSet({
          target: 'disk',
          setId: SET_ID,
          manifest: proof('nas', 'manifest.json', 900, sha('c')),
          manifestListed: listed,
          objects: objectsOn('disk'),
        }),
      /another target/,
    );
  });
});

describe('decideOutcome', () => {
  it('is success only when every required target committed and nothing needs a human', () => {
    const result = outcome({ requiredTargets: ['disk', 'nas'], committed: [committedOn('disk'), committedOn('nas')] });
    assert.equal(result.status, 'success');
    assert.deepEqual(result.warnings, []);
    assert.deepEqual(result.failures, []);
    assert.deepEqual(
      result.committed.map((c) => c.target),
      ['disk', 'nas'],
    );
  });

  it('counts an optional target that committed as committed, and still succeeds', () => {
    const result = outcome({ requiredTargets: ['disk'], committed: [committedOn('disk'), committedOn('offsite')] });
    assert.equal(result.status, 'success');
    assert.equal(result.committed.length, 2);
  });

  it('is a warning when a component warned', () => {
    const result = outcome({
      requiredTargets: ['disk'],
      committed: [committedOn('disk')],
      warnings: ['files: storage/x.log changed while it was read'],
    });
    assert.equal(result.status, 'warning');
    assert.deepEqual(result.warnings, ['files: storage/x.log changed while it was read']);
    assert.deepEqual(result.failures, []);
  });

  it('is a warning when an optional target failed, keeping that failure for the report', () => {
    const result = outcome({
      requiredTargets: ['disk'],
      committed: [committedOn('disk')],
      optionalFailures: [offsiteFailure],
    });
    assert.equal(result.status, 'warning');
    assert.deepEqual(result.warnings, [`optional ${offsiteFailure.message}`]);
    assert.deepEqual(result.failures, [offsiteFailure]);
  });

  it('is a failure when a required target has no set, naming that target', () => {
    const result = outcome({ requiredTargets: ['disk', 'nas'], committed: [committedOn('disk')] });
    assert.equal(result.status, 'failure');
    assert.equal(result.failures.length, 1);
    assert.equal(result.failures[0]?.target, 'nas');
    assert.match(result.failures[0]?.message ?? '', /nas holds no committed set/);
    assert.equal(result.committed.length, 1, 'what did get committed is still reported');
  });

  it('is a failure when there is any failure, even with every required target committed', () => {
    const result = outcome({
      requiredTargets: ['disk'],
      committed: [committedOn('disk')],
      failures: [{ step: 'anomaly', message: 'main.app shrank by 80%: suspect' }],
    });
    assert.equal(result.status, 'failure');
    assert.equal(result.failures.length, 1);
  });

  it('does not add a second failure for a required target that already has its own', () => {
    const result = outcome({
      requiredTargets: ['disk', 'nas'],
      committed: [committedOn('disk')],
      failures: [nasFailure],
    });
    assert.equal(result.status, 'failure');
    assert.deepEqual(result.failures, [nasFailure]);
  });

  it('is a failure when nothing is committed, even with no required target and no failure', () => {
    const result = outcome({ requiredTargets: [] });
    assert.equal(result.status, 'failure');
    assert.match(result.failures[0]?.message ?? '', /no target holds a committed set/);
    const onlyOptional = outcome({ requiredTargets: [], optionalFailures: [offsiteFailure] });
    assert.equal(onlyOptional.status, 'failure');
    assert.deepEqual(onlyOptional.warnings, [`optional ${offsiteFailure.message}`]);
  });

  it('a run-wide failure does not add redundant per-target failures', () => {
    const result = outcome({ requiredTargets: ['disk', 'nas'], failures: [sourceFailure] });
    assert.equal(result.status, 'failure');
    assert.deepEqual(result.failures, [sourceFailure]);
  });

  it('keeps warnings and optional failures in a failure', () => {
    const result = outcome({
      requiredTargets: ['disk'],
      failures: [sourceFailure],
      warnings: ['w1'],
      optionalFailures: [offsiteFailure],
    });
    assert.equal(result.status, 'failure');
    assert.deepEqual(result.warnings, ['w1', `optional ${offsiteFailure.message}`]);
  });

  it('does not let a caller turn a failure into success by mutating its inputs afterwards', () => {
    const failures: Failure[] = [nasFailure];
    const result = outcome({ requiredTargets: ['nas'], failures });
    failures.length = 0;
    assert.equal(result.status, 'failure');
    assert.equal(result.failures.length, 1);
  });
});

describe('a success cannot be built without proof', () => {
  // These lines are checked by `tsc --noEmit` (npm test runs it): each @ts-expect-error fails the
  // type check if the line below it ever becomes valid. The branded types (unique symbols that are
  // only declared, never exported as values) make every literal unassignable, so the only ways to
  // a RunOutcome, CommittedSet or VerifiedObject are decideOutcome, committedSet and verifiedObject.
  it('object literals are not assignable to VerifiedObject, CommittedSet or RunOutcome', () => {
    // @ts-expect-error a VerifiedObject needs the brand only verifiedObject() gives
    const forgedObject: VerifiedObject = {
      target: 'disk',
      name: 'app.tar.zst',
      bytes: 1,
      sha256: sha('a'),
      level: 'reread',
      verifiedAt: AT,
    };
    // @ts-expect-error a CommittedSet needs the brand only committedSet() gives
    const forgedSet: CommittedSet = {
      target: 'disk',
      setId: SET_ID,
      manifestSha256: sha('c'),
      objects: [forgedObject],
      committedAt: AT,
    };
    // @ts-expect-error a RunOutcome needs the brand only decideOutcome() gives
    const forgedOutcome: RunOutcome = { status: 'success', committed: [forgedSet], warnings: [], failures: [] };
    // Spreading a real outcome keeps the brand, but the success shape still demands proof.
    const real = outcome({ requiredTargets: ['disk'], committed: [committedOn('disk')] });
    // @ts-expect-error committed must be non-empty for success
    const emptySuccess: RunOutcome = { ...real, status: 'success', committed: [] };
    // @ts-expect-error a success cannot carry failures
    const successWithFailures: RunOutcome = { ...real, status: 'success', failures: [nasFailure] };
    // At runtime the forgeries are plain objects; the point is that they do not compile.
    assert.equal(forgedOutcome.status, 'success');
    assert.equal(emptySuccess.committed.length, 0);
    assert.equal(successWithFailures.failures.length, 1);
  });

  it('decideOutcome never answers success without a committed set for every required target', () => {
    // Exhaustive over small inputs: every combination of committed targets, failures and warnings.
    const targets = ['disk', 'nas', 'offsite'];
    let successes = 0;
    for (let requiredMask = 0; requiredMask < 8; requiredMask++) {
      for (let committedMask = 0; committedMask < 8; committedMask++) {
        for (const failures of [[], [nasFailure], [sourceFailure]] as Failure[][]) {
          for (const warnings of [[], ['w']]) {
            for (const optionalFailures of [[], [offsiteFailure]] as Failure[][]) {
              const requiredTargets = targets.filter((_, i) => requiredMask & (1 << i));
              const committed = targets.filter((_, i) => committedMask & (1 << i)).map(committedOn);
              const result = outcome({ requiredTargets, committed, failures, warnings, optionalFailures });
              const everyRequired = requiredTargets.every((t) => committed.some((c) => c.target === t));
              const expected =
                failures.length > 0 || !everyRequired || committed.length === 0
                  ? 'failure'
                  : warnings.length > 0 || optionalFailures.length > 0
                    ? 'warning'
                    : 'success';
              assert.equal(
                result.status,
                expected,
                JSON.stringify({ requiredTargets, committedMask, failures, warnings }),
              );
              if (result.status === 'success') successes++;
            }
          }
        }
      }
    }
    assert.ok(successes > 0);
  });
});
