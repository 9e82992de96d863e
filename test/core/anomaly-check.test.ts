// The backup run's anomaly check: history from a target's manifests (or the state database), sets
// ordered by their millisecond start, acks applied, everything recorded in a real state database.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  type AnomalyCheckInput,
  checkAnomalies,
  detectInOrder,
  type HistorySet,
  historyFromListings,
  orderKey,
  stepsOfCheck,
} from '../../src/core/anomaly-check.js';
import type { CommittedListing } from '../../src/core/target-session.js';
import { defaultThresholds } from '../../src/policy/anomaly.js';
import type { ComponentReport } from '../../src/report/types.js';
import { manifestKey } from '../../src/set/layout.js';
import { MANIFEST_FORMAT, type Manifest, parseManifest, serializeManifest } from '../../src/set/manifest.js';
import { openStateDb, type StateDb } from '../../src/state/store.js';

const JOB = 'shop';
const h = (c: string): string => c.repeat(64);
const settings = {
  enabled: true,
  window: 7,
  minHistory: 3,
  dropWarn: 2000,
  dropFail: 5000,
  growthWarn: 10000,
  ratioJumpWarn: 3000,
};

/** Day `day` of November 2025 at 03:00:00 plus `ms`. */
function startOf(day: number, ms = 0): string {
  return new Date(Date.UTC(2025, 10, day, 3, 0, 0, ms)).toISOString();
}
function idOf(day: number, tail: string): string {
  return `202511${String(day).padStart(2, '0')}T030000Z-${tail}`;
}

function component(bytes: number, tables: Record<string, number> = { 'app.users': 1000 }): ComponentReport {
  return {
    name: 'main.app',
    source: 'main',
    kind: 'mariadb',
    object: 'main.app.sql.zst',
    bytes,
    sha256: h('a'),
    rawBytes: bytes * 5,
    rawSha256: h('b'),
    tables,
    warnings: [],
    durationMs: 10,
  };
}

/** A committed set's listing as a target gives it: a real manifest, serialized and parsed back. */
function listing(setId: string, startedAt: string, bytes: number, extra: Partial<Manifest> = {}): CommittedListing {
  const { warnings: _w, durationMs: _d, ...c } = component(bytes);
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    job: JOB,
    setId,
    host: 'web1',
    hostId: 'host-1',
    startedAt,
    finishedAt: startedAt,
    backproofVersion: '0.1.0',
    compression: { algorithm: 'zstd', level: 3 },
    encryption: null,
    objects: [{ name: 'main.app.sql.zst', bytes, sha256: h('a') }],
    components: [c],
    anomalies: [],
    suspect: false,
    warnings: [],
    previous: null,
    ...extra,
  };
  return { setId, manifestKey: manifestKey(JOB, setId), parsed: parseManifest(serializeManifest(manifest), setId) };
}

function corrupt(setId: string): CommittedListing {
  return { setId, manifestKey: manifestKey(JOB, setId), parsed: parseManifest(Buffer.from('{"format":'), setId) };
}

describe('history from a target listing', () => {
  it('takes valid, non-suspect sets of the job, newest first by their millisecond start', () => {
    // Three sets in one second: their random tails sort the other way round than their starts.
    const listings = [
      listing(idOf(3, 'zzzzzz'), startOf(3, 100), 1000),
      listing(idOf(3, 'mmmmmm'), startOf(3, 500), 1001),
      listing(idOf(3, 'aaaaaa'), startOf(3, 900), 1002),
      listing(idOf(2, 'suspec'), startOf(2), 10, { suspect: true }),
      listing(idOf(1, 'other0'), startOf(1), 20, { job: 'other' }),
      corrupt(idOf(1, 'broken')),
      listing(idOf(4, 'curren'), startOf(4), 30),
    ];
    const history = historyFromListings(listings, JOB, idOf(4, 'curren'));
    assert.deepEqual(
      history.map((s) => [s.setId, s.components[0]?.bytes]),
      [
        [idOf(3, 'aaaaaa'), 1002],
        [idOf(3, 'mmmmmm'), 1001],
        [idOf(3, 'zzzzzz'), 1000],
      ],
    );
    assert.deepEqual(history[0]?.components, [
      { name: 'main.app', bytes: 1002, rawBytes: 5010, tables: { 'app.users': 1000 } },
    ]);
  });

  it('orders by the start in any ISO form, and by the set id when the start is not a date', () => {
    assert.equal(orderKey(idOf(3, 'aaaaaa'), '2025-11-03T03:00:00Z'), `2025-11-03T03:00:00.000Z ${idOf(3, 'aaaaaa')}`);
    assert.equal(orderKey(idOf(3, 'aaaaaa'), 'yesterday'), `2025-11-03T03:00:00.000Z ${idOf(3, 'aaaaaa')}`);
    assert.ok(orderKey(idOf(3, 'zzzzzz'), startOf(3, 1)) < orderKey(idOf(3, 'aaaaaa'), startOf(3, 2)));
  });
});

describe('detectInOrder', () => {
  const set = (day: number, tail: string, ms: number, bytes: number): HistorySet => ({
    setId: idOf(day, tail),
    startedAt: startOf(day, ms),
    components: [{ name: 'main.app', bytes, rawBytes: bytes * 5 }],
  });

  it('an ack on a suspect set ignores older history even when an older set of the same second sorts after it', () => {
    // Sets 1 and 2 are normal; set 3 (suspect, not history) shrank and was acked; a set made in the
    // same second just before it has a tail that sorts after the acked set's.
    const history = [set(1, 'aaaaaa', 0, 1000), set(2, 'aaaaaa', 0, 1000), set(3, 'zzzzzz', 100, 1000)];
    const ack = { findingId: 'main.app:bytes', setId: idOf(3, 'aaaaaa'), setStartedAt: startOf(3, 900) };
    const current = set(4, 'cccccc', 0, 400);
    const findings = detectInOrder(current, history, { ...defaultThresholds, minHistory: 1 }, [ack]);
    assert.deepEqual(
      findings.map((f) => f.id),
      ['main.app:rawBytes'],
      'bytes: no set newer than the ack, so no baseline yet; rawBytes was not acked and still fails',
    );
    // Without the ack both fail: the check above is not vacuous.
    const unacked = detectInOrder(current, history, { ...defaultThresholds, minHistory: 1 }, []);
    assert.deepEqual(
      unacked.map((f) => `${f.id} ${f.level}`),
      ['main.app:bytes failure', 'main.app:rawBytes failure'],
    );
  });

  it('an acked set that is history is the new baseline', () => {
    const history = [set(3, 'cccccc', 0, 400), set(2, 'bbbbbb', 0, 1000), set(1, 'aaaaaa', 0, 1000)];
    const ack = { findingId: 'main.app:bytes', setId: idOf(3, 'cccccc'), setStartedAt: startOf(3) };
    const findings = detectInOrder(set(4, 'dddddd', 0, 410), history, { ...defaultThresholds, minHistory: 1 }, [ack]);
    assert.deepEqual(
      findings.map((f) => f.id),
      ['main.app:rawBytes'],
    );
  });
});

describe('checkAnomalies', () => {
  let root: string;
  let state: StateDb;
  let runId: number;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'backproof-anomaly-check-'));
    state = openStateDb(join(root, 'state'));
    runId = state.startRun({ job: JOB, command: 'backup', startedAt: startOf(9), pid: 1, host: 'web1' });
  });
  afterEach(() => {
    state.close();
    rmSync(root, { recursive: true, force: true });
  });

  const history = [1, 2, 3].map((day) => listing(idOf(day, 'aaaaaa'), startOf(day), 1000));
  const input = (overrides: Partial<AnomalyCheckInput>): AnomalyCheckInput => ({
    config: { job: JOB, anomalies: settings },
    state,
    runId,
    setId: idOf(9, 'nownow'),
    startedAt: startOf(9),
    checkedAt: startOf(9, 500),
    components: [component(400)],
    listings: [],
    ...overrides,
  });

  it('judges against the first readable target in config order, and records the check', () => {
    const check = checkAnomalies(
      input({
        listings: [
          { target: 'nas', listings: undefined },
          { target: 'disk', listings: history },
          { target: 'offsite', listings: [] },
        ],
      }),
    );
    assert.equal(check.historySource, 'target disk');
    assert.equal(check.historySets, 3);
    assert.equal(check.suspect, true);
    assert.deepEqual(
      check.findings.map((f) => `${f.id} ${f.level} ${f.baseline} ${f.value}`),
      ['main.app:bytes failure 1000 400', 'main.app:rawBytes failure 5000 2000'],
    );
    assert.deepEqual(
      state.openFindings(JOB).map((f) => [f.id, f.setId, f.setStartedAt]),
      [
        ['main.app:bytes', idOf(9, 'nownow'), startOf(9)],
        ['main.app:rawBytes', idOf(9, 'nownow'), startOf(9)],
      ],
    );
    assert.deepEqual(
      stepsOfCheck(check).map((s) => `${s.name} ${s.status}`),
      ['anomalies failed', 'anomaly failed', 'anomaly failed'],
    );
  });

  it('first runs: no history, no findings, and the check is still recorded (it closes older findings)', () => {
    const check = checkAnomalies(input({ listings: [{ target: 'disk', listings: history.slice(0, 2) }] }));
    assert.deepEqual(check.findings, []);
    assert.equal(check.suspect, false);
    assert.match(
      stepsOfCheck(check)[0]?.message ?? '',
      /2 committed, non-suspect set\(s\) from the target disk: nothing unusual/,
    );
  });

  it('passes the recorded acks to the engine', () => {
    state.recordAck(JOB, {
      findingId: 'main.app:bytes',
      findingSetId: idOf(3, 'aaaaaa'),
      setId: idOf(3, 'aaaaaa'),
      setStartedAt: startOf(3),
      ackedAt: startOf(4),
      by: null,
    });
    const shrunk = [1, 2].map((day) => listing(idOf(day, 'aaaaaa'), startOf(day), 1000));
    const check = checkAnomalies(
      input({
        listings: [{ target: 'disk', listings: [...shrunk, listing(idOf(3, 'aaaaaa'), startOf(3), 400)] }],
      }),
    );
    // bytes: the acked set 3 (400) is the baseline; rawBytes: the median of 2000, 5000, 5000.
    assert.deepEqual(
      check.findings.map((f) => `${f.id} ${f.level}`),
      ['main.app:rawBytes failure'],
    );
  });

  it('falls back to the state database when no target could be read, leaving suspect sets out', () => {
    for (const [day, bytes, suspect] of [
      [1, 1000, false],
      [2, 1000, false],
      [3, 1000, false],
      [4, 10, true],
    ] as const) {
      const past = state.startRun({ job: JOB, command: 'backup', startedAt: startOf(day), pid: 1, host: 'web1' });
      state.recordAnomalyCheck(past, {
        job: JOB,
        setId: idOf(day, 'aaaaaa'),
        setStartedAt: startOf(day),
        checkedAt: startOf(day),
        historySource: 'target disk',
        historySets: 0,
        findings: suspect
          ? [
              {
                id: 'main.app:bytes',
                component: 'main.app',
                metric: 'bytes',
                level: 'failure',
                baseline: 1000,
                value: 10,
                baselineSets: 3,
                changeBp: -9900,
                message: 'shrank',
              },
            ]
          : [],
      });
      const { warnings: _w, durationMs: _d, source: _s, ...c } = component(bytes);
      state.recordComponent(past, { target: 'disk', setId: idOf(day, 'aaaaaa'), ...c });
    }
    const check = checkAnomalies(
      input({ components: [component(1000)], listings: [{ target: 'disk', listings: undefined }] }),
    );
    assert.equal(check.historySource, 'state database');
    assert.equal(check.historySets, 3, 'the suspect set 4 is not history');
    assert.deepEqual(check.findings, [], '1000 bytes is normal against sets 1 to 3');
  });

  it('with nothing readable anywhere, says so and finds nothing', () => {
    const check = checkAnomalies(input({ listings: [{ target: 'disk', listings: undefined }] }));
    assert.equal(check.historySource, 'none');
    assert.deepEqual(check.findings, []);
  });

  it('disabled: no findings, and the check is recorded as disabled', () => {
    const check = checkAnomalies(
      input({
        config: { job: JOB, anomalies: { ...settings, enabled: false } },
        listings: [{ target: 'disk', listings: history }],
      }),
    );
    assert.deepEqual(check, { findings: [], suspect: false, historySource: 'disabled', historySets: 0 });
    assert.match(stepsOfCheck(check)[0]?.message ?? '', /disabled/);
  });

  it('an engine that cannot judge reports why instead of stopping the run', () => {
    const check = checkAnomalies(
      input({
        config: { job: JOB, anomalies: { ...settings, minHistory: 9, window: 7 } },
        listings: [{ target: 'disk', listings: history }],
      }),
    );
    assert.deepEqual(check.findings, []);
    assert.match(check.error ?? '', /minHistory \(9\) exceeds window \(7\)/);
    assert.deepEqual(
      stepsOfCheck(check).map((s) => `${s.name} ${s.status}`),
      ['anomalies warning'],
    );
  });
});
