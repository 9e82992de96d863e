// Findings, acks and the chartable history in a real state database file.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { openSqlite } from '../../src/lib/sqlite.js';
import type { Finding } from '../../src/policy/anomaly.js';
import { openStateDb, type StateDb } from '../../src/state/store.js';

let root: string;
let db: StateDb;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'backproof-anomaly-store-'));
  db = openStateDb(join(root, 'state'));
});

afterEach(() => {
  db.close();
  rmSync(root, { recursive: true, force: true });
});

const P50 = 2 ** 50;
const MAX = Number.MAX_SAFE_INTEGER;
const sha = (c: string): string => c.repeat(64);
/** 2025-11-04T03:00:00.000Z plus `minutes`. */
const at = (minutes: number): string => new Date(Date.UTC(2025, 10, 4, 3, minutes)).toISOString();
const setOf = (n: number): string => `20251104T03${String(n).padStart(2, '0')}00Z-set${String(n).padStart(3, '0')}`;

function finding(overrides: Partial<Finding> = {}): Finding {
  return {
    id: 'main.app:bytes',
    component: 'main.app',
    metric: 'bytes',
    level: 'failure',
    baseline: 1000,
    value: 400,
    baselineSets: 7,
    changeBp: -6000,
    message: 'main.app: compressed size is 60% smaller than usual',
    ...overrides,
  };
}

/** A backup run at minute `n` that checked set `setOf(n)`, found `findings`, and (unless `committed` is false) committed it. */
function run(n: number, findings: Finding[], options: { committed?: boolean; bytes?: number; rows?: number } = {}) {
  const runId = db.startRun({ job: 'app', command: 'backup', startedAt: at(n), pid: 1, host: 'web1' });
  db.recordAnomalyCheck(runId, {
    job: 'app',
    setId: setOf(n),
    setStartedAt: at(n),
    checkedAt: at(n),
    historySource: 'target disk',
    historySets: n,
    findings,
  });
  if (options.committed !== false) {
    for (const target of ['disk', 'nas']) {
      db.recordComponent(runId, {
        target,
        setId: setOf(n),
        name: 'main.app',
        kind: 'mariadb',
        object: 'main.app.sql.zst',
        bytes: options.bytes ?? 1000,
        sha256: sha('a'),
        rawBytes: (options.bytes ?? 1000) * 5,
        rawSha256: sha('b'),
        tables: { 'app.users': options.rows ?? 10 },
      });
    }
  }
  const failed = findings.some((f) => f.level === 'failure');
  db.finishRun(runId, {
    status: failed ? 'failure' : 'success',
    exitCode: failed ? 1 : 0,
    finishedAt: new Date(Date.parse(at(n)) + 90_000).toISOString(),
    bytes: options.bytes ?? 1000,
    report: {},
  });
  return runId;
}

describe('anomaly findings in the state database', () => {
  it('round-trips findings with sizes near 2^50 exactly, stored as integers', () => {
    const big = finding({ baseline: P50 + 3, value: P50 - 1, changeBp: -1 });
    const huge = finding({
      id: 'main.app:rows:app.users',
      metric: 'rows',
      table: 'app.users',
      level: 'warning',
      baseline: 0,
      value: MAX,
      changeBp: null,
    });
    const growth = finding({ id: 'main.app:rawBytes', metric: 'rawBytes', level: 'warning', changeBp: MAX });
    const runId = run(1, [big, huge, growth]);
    const stored = db.findingsOfRun(runId);
    assert.deepEqual(
      stored.map(({ job, runId: _r, setId, setStartedAt, raisedAt, ...f }) => f),
      [big, huge, growth],
    );
    assert.equal(stored[0]?.baseline, 1125899906842627);
    assert.equal(stored[0]?.value, 1125899906842623);
    assert.deepEqual(
      [stored[0]?.setId, stored[0]?.setStartedAt, stored[0]?.job],
      [setOf(1), at(1), 'app'],
      'where the finding was raised',
    );
    const connection = openSqlite(db.path, { readonly: true });
    try {
      const types = connection
        .prepare(
          `SELECT typeof(baseline) AS b, typeof(value) AS v, typeof(change_bp) AS c FROM anomaly_findings ORDER BY id`,
        )
        .all();
      assert.deepEqual(types, [
        { b: 'integer', v: 'integer', c: 'integer' },
        { b: 'integer', v: 'integer', c: 'null' },
        { b: 'integer', v: 'integer', c: 'integer' },
      ]);
    } finally {
      connection.close();
    }
  });

  it('refuses a finding it cannot store exactly, and then writes nothing of the check', () => {
    const runId = db.startRun({ job: 'app', command: 'backup', startedAt: at(0), pid: 1, host: 'web1' });
    const check = (findings: Finding[]) =>
      db.recordAnomalyCheck(runId, {
        job: 'app',
        setId: setOf(0),
        setStartedAt: at(0),
        checkedAt: at(0),
        historySource: 'none',
        historySets: 0,
        findings,
      });
    assert.throws(() => check([finding(), finding({ id: 'x', value: 2 ** 53 })]), /value must be an integer from 0/);
    assert.throws(() => check([finding({ changeBp: 0.5 })]), /changeBp must be an integer/);
    assert.throws(() => check([finding({ level: 'fatal' as 'failure' })]), /level must be one of warning, failure/);
    assert.deepEqual(db.findingsOfRun(runId), []);
    assert.deepEqual(db.openFindings('app'), [], 'no check was recorded');
  });

  it('a finding id is recorded once per run', () => {
    const runId = db.startRun({ job: 'app', command: 'backup', startedAt: at(0), pid: 1, host: 'web1' });
    assert.throws(
      () =>
        db.recordAnomalyCheck(runId, {
          job: 'app',
          setId: setOf(0),
          setStartedAt: at(0),
          checkedAt: at(0),
          historySource: 'none',
          historySets: 0,
          findings: [finding(), finding()],
        }),
      /recordAnomalyCheck failed: .*UNIQUE/,
    );
    assert.deepEqual(db.findingsOfRun(runId), [], 'the transaction rolled back');
  });
});

describe('open findings and acks', () => {
  it('open findings are those of the newest checked run, until acked or until a clean run', () => {
    run(1, [finding({ id: 'a:bytes', component: 'a' })]);
    run(2, [finding({ id: 'b:bytes', component: 'b' }), finding({ id: 'c:files', component: 'c', level: 'warning' })]);
    assert.deepEqual(
      db.openFindings('app').map((f) => `${f.id} ${f.setId}`),
      [`b:bytes ${setOf(2)}`, `c:files ${setOf(2)}`],
    );
    assert.deepEqual(db.openFindings('other'), [], 'per job');

    // A run that failed before its check changes nothing.
    const failed = db.startRun({ job: 'app', command: 'backup', startedAt: at(3), pid: 1, host: 'web1' });
    db.finishRun(failed, { status: 'failure', exitCode: 1, finishedAt: at(4), bytes: 0, report: {} });
    assert.equal(db.openFindings('app').length, 2);

    assert.equal(
      db.recordAck('app', {
        findingId: 'b:bytes',
        findingSetId: setOf(2),
        setId: setOf(2),
        setStartedAt: at(2),
        ackedAt: at(5),
        by: 'ops',
      }),
      true,
    );
    assert.deepEqual(
      db.openFindings('app').map((f) => f.id),
      ['c:files'],
    );
    // Recording the same ack again changes nothing.
    assert.equal(
      db.recordAck('app', {
        findingId: 'b:bytes',
        findingSetId: setOf(2),
        setId: setOf(2),
        setStartedAt: at(2),
        ackedAt: at(6),
        by: null,
      }),
      false,
    );
    assert.deepEqual(db.acks('app'), [
      { findingId: 'b:bytes', findingSetId: setOf(2), setId: setOf(2), setStartedAt: at(2), ackedAt: at(5), by: 'ops' },
    ]);

    // The same finding raised again on a later set is open again: the ack was for set 2.
    run(7, [finding({ id: 'b:bytes', component: 'b' })]);
    assert.deepEqual(
      db.openFindings('app').map((f) => `${f.id} ${f.setId}`),
      [`b:bytes ${setOf(7)}`],
    );
    run(8, []);
    assert.deepEqual(db.openFindings('app'), [], 'a clean run closes everything');
  });

  it('refuses an ack with a start time that is not UTC ISO', () => {
    assert.throws(
      () =>
        db.recordAck('app', {
          findingId: 'a:bytes',
          findingSetId: setOf(1),
          setId: setOf(1),
          setStartedAt: '2025-11-04 03:00',
          ackedAt: at(1),
          by: null,
        }),
      /setStartedAt must be a UTC ISO-8601 timestamp/,
    );
    assert.deepEqual(db.acks('app'), []);
  });

  it('knows the start of the sets it made or checked', () => {
    run(1, []);
    run(2, [], { committed: false });
    assert.equal(db.setStartedAt('app', setOf(1)), at(1));
    assert.equal(db.setStartedAt('app', setOf(2)), at(2), 'checked but never committed');
    assert.equal(db.setStartedAt('app', setOf(3)), undefined);
    assert.equal(db.setStartedAt('other', setOf(1)), undefined);
  });
});

describe('component history for charts', () => {
  it('one point per set and component, oldest first, with run duration and the suspect flag', () => {
    run(1, [], { bytes: P50 + 1, rows: P50 - 7 });
    run(2, [finding()], { bytes: 400 });
    run(3, [], { committed: false });
    run(4, [finding({ level: 'warning' })], { bytes: 900, rows: 0 });
    const history = db.componentHistory('app', 10);
    assert.deepEqual(
      history.map((h) => [h.setId, h.component, h.bytes, h.rawBytes, h.tables, h.suspect, h.durationMs, h.runStatus]),
      [
        [setOf(1), 'main.app', P50 + 1, (P50 + 1) * 5, { 'app.users': P50 - 7 }, false, 90_000, 'success'],
        [setOf(2), 'main.app', 400, 2000, { 'app.users': 10 }, true, 90_000, 'failure'],
        [setOf(4), 'main.app', 900, 4500, { 'app.users': 0 }, false, 90_000, 'success'],
      ],
      'two targets hold each set, charted once; the uncommitted set 3 is absent',
    );
    assert.deepEqual(
      db.componentHistory('app', 2).map((h) => h.setId),
      [setOf(2), setOf(4)],
      'the newest sets',
    );
    assert.deepEqual(db.componentHistory('other', 10), []);
    assert.throws(() => db.componentHistory('app', 0), /limit must be a positive integer/);
  });

  it('a run that never finished has no duration', () => {
    const runId = db.startRun({ job: 'app', command: 'backup', startedAt: at(1), pid: 1, host: 'web1' });
    db.recordComponent(runId, {
      target: 'disk',
      setId: setOf(1),
      name: 'app',
      kind: 'files',
      object: 'app.tar.zst',
      bytes: 10,
      sha256: sha('a'),
      rawBytes: 20,
      rawSha256: sha('b'),
      files: 3,
    });
    const [point] = db.componentHistory('app', 1);
    assert.equal(point?.durationMs, null);
    assert.equal(point?.files, 3);
    assert.equal(point?.tables, null);
    assert.equal(point?.suspect, false);
  });
});
