import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  everyCopyDeletable,
  jobHealthy,
  judgeDrill,
  judgeTargetHealth,
  type TargetHealth,
} from '../../src/policy/health.js';

const HOUR = 3_600_000;
const RPO = 26 * HOUR;
const NOW = Date.parse('2025-11-05T06:00:00.000Z');
const finishedHoursAgo = (hours: number): string => new Date(NOW - hours * HOUR).toISOString();

describe('judgeTargetHealth', () => {
  it('is healthy when the newest set is younger than the RPO', () => {
    const health = judgeTargetHealth(
      {
        target: 'disk',
        optional: false,
        newest: { setId: '20251105T030000Z-aaaaaa', finishedAt: finishedHoursAgo(3) },
      },
      NOW,
      RPO,
    );
    assert.deepEqual(health, {
      target: 'disk',
      optional: false,
      healthy: true,
      newestSetId: '20251105T030000Z-aaaaaa',
      newestFinishedAt: finishedHoursAgo(3),
      ageMs: 3 * HOUR,
      rpoMs: RPO,
      problem: null,
    });
  });

  it('is healthy at exactly the RPO and unhealthy one millisecond past it', () => {
    const at = (ms: number) =>
      judgeTargetHealth(
        { target: 'disk', optional: false, newest: { setId: 's', finishedAt: new Date(NOW - ms).toISOString() } },
        NOW,
        RPO,
      );
    assert.equal(at(RPO).healthy, true);
    const late = at(RPO + 1);
    assert.equal(late.healthy, false);
    assert.equal(late.ageMs, RPO + 1);
    assert.match(late.problem ?? '', /older than objectives\.rpo/);
  });

  it('is unhealthy when the RPO is exceeded by days', () => {
    const health = judgeTargetHealth(
      { target: 'nas', optional: false, newest: { setId: 's', finishedAt: finishedHoursAgo(24 * 9) } },
      NOW,
      RPO,
    );
    assert.equal(health.healthy, false);
    assert.equal(health.ageMs, 24 * 9 * HOUR);
    assert.equal(health.newestSetId, 's');
  });

  it('is healthy at any age without an RPO', () => {
    const health = judgeTargetHealth(
      { target: 'disk', optional: false, newest: { setId: 's', finishedAt: finishedHoursAgo(24 * 365) } },
      NOW,
      undefined,
    );
    assert.equal(health.healthy, true);
    assert.equal(health.rpoMs, null);
  });

  it('does not report a negative age for a set that finished after "now" (clock skew)', () => {
    const health = judgeTargetHealth(
      { target: 'disk', optional: false, newest: { setId: 's', finishedAt: new Date(NOW + 60_000).toISOString() } },
      NOW,
      RPO,
    );
    assert.equal(health.healthy, true);
    assert.equal(health.ageMs, 0);
  });

  it('is not healthy when the newest set’s finish time is not a date (NaN must not pass the RPO check)', () => {
    // The manifest schema accepts any string as finishedAt, so this reaches health from a bad manifest.
    const health = judgeTargetHealth(
      { target: 'disk', optional: false, newest: { setId: 's', finishedAt: 'yesterday-ish' } },
      NOW,
      RPO,
    );
    assert.equal(health.healthy, false);
    assert.ok(!Number.isNaN(health.ageMs), 'ageMs must be a number or null, never NaN');
  });

  it('is unhealthy without any committed set, and says to run a backup', () => {
    const health = judgeTargetHealth({ target: 'disk', optional: false }, NOW, RPO);
    assert.equal(health.healthy, false);
    assert.equal(health.newestSetId, null);
    assert.equal(health.ageMs, null);
    assert.match(health.problem ?? '', /no committed set.*backproof backup/);
  });

  it('is unhealthy when the target cannot be read, even if the state remembers a fresh set', () => {
    const health = judgeTargetHealth(
      {
        target: 'nas',
        optional: false,
        error: 'connect ECONNREFUSED 10.0.0.5:22',
        newest: { setId: 's', finishedAt: finishedHoursAgo(1) },
      },
      NOW,
      RPO,
    );
    assert.equal(health.healthy, false);
    assert.equal(health.ageMs, null);
    assert.match(health.problem ?? '', /cannot read the target: connect ECONNREFUSED 10\.0\.0\.5:22/);
  });
});

describe('jobHealthy', () => {
  const fresh = { setId: 's', finishedAt: finishedHoursAgo(1) };
  const disk = judgeTargetHealth({ target: 'disk', optional: false, newest: fresh }, NOW, RPO);
  const nasDown = judgeTargetHealth({ target: 'nas', optional: false, error: 'timeout' }, NOW, RPO);
  const offsiteDown = judgeTargetHealth({ target: 'offsite', optional: true, error: 'access denied' }, NOW, RPO);
  const offsiteStale = judgeTargetHealth(
    { target: 'offsite', optional: true, newest: { setId: 'o', finishedAt: finishedHoursAgo(100) } },
    NOW,
    RPO,
  );

  it('is healthy when every target is', () => {
    assert.equal(jobHealthy([disk]), true);
  });

  it('is unhealthy when a required target is', () => {
    assert.equal(jobHealthy([disk, nasDown]), false);
    assert.equal(jobHealthy([nasDown, offsiteDown]), false);
  });

  it('stays healthy when only optional targets are unhealthy, which are still reported as such', () => {
    assert.equal(offsiteDown.healthy, false);
    assert.equal(offsiteStale.healthy, false);
    assert.equal(jobHealthy([disk, offsiteDown, offsiteStale]), true);
  });

  it('is unhealthy when a required target has no set, even if an optional one does', () => {
    const diskEmpty = judgeTargetHealth({ target: 'disk', optional: false }, NOW, RPO);
    const offsiteFresh: TargetHealth = judgeTargetHealth(
      { target: 'offsite', optional: true, newest: fresh },
      NOW,
      RPO,
    );
    assert.equal(jobHealthy([diskEmpty, offsiteFresh]), false);
  });
});

describe('judgeDrill', () => {
  const nowMs = Date.parse('2026-11-28T12:00:00Z');
  const day = 86_400_000;
  const ok = { at: '2026-11-27T07:00:00.000Z', status: 'success' as const, setId: 'x', rtoMs: 60_000 };

  it('without a drill section, no drill is not unhealthy; with one, it is', () => {
    assert.equal(judgeDrill(undefined, { expected: false, nowMs }).healthy, true);
    const expected = judgeDrill(undefined, { expected: true, nowMs, maxAgeMs: 8 * day });
    assert.equal(expected.healthy, false);
    assert.match(expected.problem ?? '', /no drill has run yet/);
  });

  it('a failed or unfinished drill is unhealthy', () => {
    for (const status of ['failure', 'abandoned', null] as const) {
      const judged = judgeDrill({ ...ok, status }, { expected: false, nowMs });
      assert.equal(judged.healthy, false, String(status));
      assert.match(judged.problem ?? '', /the last drill (failed|never finished)/);
    }
  });

  it('a drill slower than the RTO is unhealthy; exactly the RTO is not', () => {
    assert.equal(judgeDrill(ok, { expected: true, nowMs, rtoObjectiveMs: 59_999 }).healthy, false);
    assert.equal(judgeDrill(ok, { expected: true, nowMs, rtoObjectiveMs: 60_000 }).healthy, true);
  });

  it('a drill older than drill.maxAge is unhealthy when drills are expected', () => {
    const old = { ...ok, at: new Date(nowMs - 9 * day).toISOString() };
    const judged = judgeDrill(old, { expected: true, nowMs, maxAgeMs: 8 * day });
    assert.equal(judged.healthy, false);
    assert.match(judged.problem ?? '', /older than drill\.maxAge/);
    assert.equal(
      judgeDrill({ ...ok, at: new Date(nowMs - 8 * day).toISOString() }, { expected: true, nowMs, maxAgeMs: 8 * day })
        .healthy,
      true,
    );
    assert.equal(judgeDrill(old, { expected: false, nowMs, maxAgeMs: 8 * day }).healthy, true);
  });
});

describe('everyCopyDeletable', () => {
  it('is true unless some target is append-only', () => {
    assert.equal(everyCopyDeletable([{}, { appendOnly: false }]), true);
    assert.equal(everyCopyDeletable([{}, { appendOnly: true }]), false);
  });
});
