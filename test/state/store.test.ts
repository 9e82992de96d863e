import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { openSqlite, type SqliteDatabase } from '../../src/lib/sqlite.js';
import { openStateDb, type StateDb } from '../../src/state/store.js';

let root: string;
let db: StateDb;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'backproof-store-'));
  db = openStateDb(join(root, 'state'));
});

afterEach(() => {
  db.close();
  rmSync(root, { recursive: true, force: true });
});

/** 2025-11-04T03:00:00.000Z plus `minutes`. */
const at = (minutes: number): string => new Date(Date.UTC(2025, 10, 4, 3, minutes)).toISOString();
const sha = (c: string): string => c.repeat(64);
const MAX = Number.MAX_SAFE_INTEGER; // 2^53-1
const ABOVE_INT32 = 2 ** 31 + 7;

function start(job = 'app', minutes = 0, command = 'backup'): number {
  return db.startRun({ job, command, startedAt: at(minutes), pid: 4242, host: 'web1' });
}

function finish(runId: number, status: 'success' | 'warning' | 'failure', bytes = 100, minutes = 30): void {
  db.finishRun(runId, { status, exitCode: status === 'success' ? 0 : 1, finishedAt: at(minutes), bytes, report: {} });
}

function component(runId: number, overrides: Partial<Parameters<StateDb['recordComponent']>[1]> = {}): void {
  db.recordComponent(runId, {
    target: 'disk',
    setId: '20251104T030000Z-abc123',
    name: 'main.app',
    kind: 'mariadb',
    object: 'main.app.sql.zst',
    bytes: 1000,
    sha256: sha('a'),
    rawBytes: 5000,
    rawSha256: sha('b'),
    ...overrides,
  });
}

/** A second connection, to see what is really stored. */
function raw<T>(fn: (connection: SqliteDatabase) => T): T {
  const connection = openSqlite(db.path, { readonly: true });
  try {
    return fn(connection);
  } finally {
    connection.close();
  }
}

describe('runs', () => {
  it('round-trips a run from start to finish, report included', () => {
    const runId = start();
    const started = db.getRun(runId);
    assert.deepEqual(started, {
      id: runId,
      job: 'app',
      command: 'backup',
      startedAt: at(0),
      finishedAt: null,
      status: null,
      exitCode: null,
      pid: 4242,
      host: 'web1',
      bytes: null,
      report: null,
      steps: [],
      components: [],
    });
    const report = { status: 'warning', warnings: ['file changed while read'], nested: { sizes: [0, MAX] } };
    db.finishRun(runId, { status: 'warning', exitCode: 3, finishedAt: at(5), bytes: ABOVE_INT32, report });
    const finished = db.getRun(runId);
    assert.equal(finished?.status, 'warning');
    assert.equal(finished?.exitCode, 3);
    assert.equal(finished?.finishedAt, at(5));
    assert.equal(finished?.bytes, ABOVE_INT32);
    assert.deepEqual(finished?.report, report);
  });

  it('keeps a run that never finishes unfinished: status and finishedAt null', () => {
    const runId = start();
    const [row] = db.listRuns('app', 10);
    assert.equal(row?.id, runId);
    assert.equal(row?.status, null);
    assert.equal(row?.finishedAt, null);
  });

  it('refuses to finish a run twice or a run that does not exist, and keeps the first ending', () => {
    const runId = start();
    finish(runId, 'success', 10, 5);
    assert.throws(() => finish(runId, 'failure'), /run \d+ already ended \(success at 2025-11-04T03:05:00\.000Z\)/);
    assert.equal(db.getRun(runId)?.status, 'success');
    assert.throws(() => finish(9999, 'success'), /finishRun: run 9999 does not exist/);
  });

  it('lists runs of one job, newest first, up to the limit', () => {
    const a = start('app', 0);
    const b = start('app', 10);
    const other = start('other', 20);
    const c = start('app', 5);
    assert.deepEqual(
      db.listRuns('app', 10).map((r) => r.id),
      [b, c, a],
    );
    assert.deepEqual(
      db.listRuns('app', 2).map((r) => r.id),
      [b, c],
    );
    assert.deepEqual(
      db.listRuns('other', 10).map((r) => r.id),
      [other],
    );
    assert.deepEqual(db.listRuns('nobody', 10), []);
    assert.throws(() => db.listRuns('app', 0), /limit must be a positive integer/);
  });

  it('returns undefined for a run that does not exist', () => {
    assert.equal(db.getRun(12345), undefined);
  });

  it('normalises UTC timestamps to one sortable form and rejects other zones', () => {
    const runId = db.startRun({ job: 'app', command: 'backup', startedAt: '2025-11-04T03:00:00Z', pid: 1, host: 'h' });
    assert.equal(db.getRun(runId)?.startedAt, '2025-11-04T03:00:00.000Z');
    for (const startedAt of ['2025-11-04T04:00:00+01:00', '2025-11-04 03:00:00', 'yesterday', '2025-13-40T99:00:00Z']) {
      assert.throws(
        () => db.startRun({ job: 'app', command: 'backup', startedAt, pid: 1, host: 'h' }),
        /startedAt must be a UTC ISO-8601 timestamp/,
        startedAt,
      );
    }
    assert.equal(db.listRuns('app', 10).length, 1, 'nothing written by the rejected calls');
  });
});

describe('abandonUnfinishedRuns', () => {
  it("marks the job's other unfinished runs abandoned, returns them, and touches nothing else", () => {
    const dead1 = start('app', 0);
    const done = start('app', 1);
    finish(done, 'success');
    const dead2 = start('app', 2);
    const otherJob = start('other', 3);
    const current = start('app', 4);

    const abandoned = db.abandonUnfinishedRuns('app', current, at(4));
    assert.deepEqual(
      abandoned.map((r) => r.id),
      [dead1, dead2],
    );
    for (const run of abandoned) {
      assert.equal(run.status, 'abandoned');
      assert.equal(run.finishedAt, at(4));
      assert.equal(run.exitCode, null);
      assert.equal(db.getRun(run.id)?.status, 'abandoned');
    }
    assert.equal(db.getRun(done)?.status, 'success');
    assert.equal(db.getRun(otherJob)?.status, null);
    assert.equal(db.getRun(current)?.status, null);
    assert.deepEqual(db.abandonUnfinishedRuns('app', current, at(5)), [], 'a second call finds none');
    assert.throws(() => finish(dead1, 'success'), /already ended \(abandoned/);
  });
});

describe('steps', () => {
  it('round-trips steps in recording order, with and without the optional fields', () => {
    const runId = start();
    const evidence = { objects: [{ name: 'a.zst', bytes: MAX }], reached: 'reread' };
    db.recordStep(runId, {
      name: 'verify',
      target: 'nas',
      component: 'main.app',
      status: 'warning',
      startedAt: at(1),
      finishedAt: at(2),
      message: 'slow',
      evidence,
    });
    db.recordStep(runId, { name: 'preflight', status: 'skipped', startedAt: at(3), finishedAt: at(3) });
    const steps = db.getRun(runId)?.steps ?? [];
    assert.equal(steps.length, 2);
    assert.deepEqual(
      steps.map(({ id: _id, ...rest }) => rest),
      [
        {
          runId,
          name: 'verify',
          target: 'nas',
          component: 'main.app',
          status: 'warning',
          startedAt: at(1),
          finishedAt: at(2),
          message: 'slow',
          evidence,
        },
        {
          runId,
          name: 'preflight',
          target: null,
          component: null,
          status: 'skipped',
          startedAt: at(3),
          finishedAt: at(3),
          message: null,
          evidence: null,
        },
      ],
    );
  });

  it('refuses a step for a run that does not exist, or with an unknown status', () => {
    assert.throws(
      () => db.recordStep(777, { name: 'x', status: 'ok', startedAt: at(0), finishedAt: at(0) }),
      /recordStep: run 777 does not exist/,
    );
    const runId = start();
    assert.throws(
      () =>
        db.recordStep(runId, {
          name: 'x',
          status: 'done' as 'ok',
          startedAt: at(0),
          finishedAt: at(0),
        }),
      /step status must be one of ok, warning, failed, skipped/,
    );
    assert.deepEqual(db.getRun(runId)?.steps, []);
  });
});

describe('components', () => {
  it('round-trips components with files and tables, and without them', () => {
    const runId = start();
    component(runId, { name: 'app', kind: 'files', object: 'app.tar.zst', files: 12_345 });
    component(runId, { tables: { 'app.users': 1000, 'app.empty': 0 } });
    const components = db.getRun(runId)?.components ?? [];
    assert.deepEqual(
      components.map(({ id: _id, ...rest }) => rest),
      [
        {
          runId,
          target: 'disk',
          setId: '20251104T030000Z-abc123',
          name: 'app',
          kind: 'files',
          object: 'app.tar.zst',
          bytes: 1000,
          sha256: sha('a'),
          rawBytes: 5000,
          rawSha256: sha('b'),
          files: 12_345,
          tables: null,
        },
        {
          runId,
          target: 'disk',
          setId: '20251104T030000Z-abc123',
          name: 'main.app',
          kind: 'mariadb',
          object: 'main.app.sql.zst',
          bytes: 1000,
          sha256: sha('a'),
          rawBytes: 5000,
          rawSha256: sha('b'),
          files: null,
          tables: { 'app.users': 1000, 'app.empty': 0 },
        },
      ],
    );
  });

  it('refuses a component for a run that does not exist', () => {
    assert.throws(() => component(31337), /recordComponent: run 31337 does not exist/);
  });
});

describe('sizes', () => {
  it('round-trips every size and count from 0 through 2^31 to 2^53-1 exactly, stored as INTEGER', () => {
    for (const size of [0, 1, 2 ** 31 - 1, 2 ** 31, ABOVE_INT32, 2 ** 32 + 1, 10 ** 15, MAX]) {
      const runId = start();
      component(runId, { bytes: size, rawBytes: size, files: size, tables: { 'app.big': size } });
      db.recordObjectVerification(runId, {
        target: 'disk',
        setId: `set-${size}`,
        object: 'o.zst',
        bytes: size,
        sha256: sha('c'),
        level: 'reread',
        verifiedAt: at(1),
      });
      finish(runId, 'success', size);
      const run = db.getRun(runId);
      const [c] = run?.components ?? [];
      assert.equal(run?.bytes, size);
      assert.equal(c?.bytes, size);
      assert.equal(c?.rawBytes, size);
      assert.equal(c?.files, size);
      assert.equal(c?.tables?.['app.big'], size);
      assert.equal(db.objectVerifications('app', 'disk', `set-${size}`)[0]?.bytes, size);
      assert.equal(db.lastCommittedRunBytes('app'), size);
    }
    const types = raw((c) =>
      c
        .prepare(
          `SELECT DISTINCT typeof(bytes) FROM runs UNION SELECT DISTINCT typeof(bytes) FROM components
           UNION SELECT DISTINCT typeof(raw_bytes) FROM components UNION SELECT DISTINCT typeof(bytes) FROM object_verifications`,
        )
        .pluck()
        .all(),
    );
    assert.deepEqual(types, ['integer']);
  });

  it('rejects sizes that are not exact integers, before writing anything', () => {
    const runId = start();
    for (const bytes of [1.5, -1, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY, 2.9094e8 + 0.5]) {
      assert.throws(() => component(runId, { bytes }), /bytes must be an integer from 0 to 2\^53-1/, String(bytes));
      assert.throws(() => finish(runId, 'success', bytes), /bytes must be an integer/, String(bytes));
    }
    assert.throws(() => component(runId, { tables: { 'app.t': 0.5 } }), /tables\["app\.t"\] must be an integer/);
    assert.throws(() => component(runId, { files: -3 }), /files must be an integer/);
    const run = db.getRun(runId);
    assert.deepEqual(run?.components, []);
    assert.equal(run?.status, null);
  });
});

describe('object verifications', () => {
  it('returns the newest verification per object of a set on a target, for that job only', () => {
    const first = start('app', 0);
    const second = start('app', 60);
    const otherJob = start('other', 0);
    const record = (runId: number, object: string, level: string, minutes: number, setId = 'S', target = 'nas') =>
      db.recordObjectVerification(runId, {
        target,
        setId,
        object,
        bytes: 10,
        sha256: sha('d'),
        level,
        verifiedAt: at(minutes),
      });
    record(first, 'a.zst', 'remote-hash', 1);
    record(first, 'b.zst', 'remote-hash', 1);
    record(second, 'a.zst', 'reread', 61); // a later `verify` read it back whole
    record(first, 'c.zst', 'etag', 1, 'S', 'offsite'); // other target
    record(first, 'd.zst', 'etag', 1, 'T'); // other set
    record(otherJob, 'e.zst', 'reread', 1); // other job, same target and set id

    const rows = db.objectVerifications('app', 'nas', 'S');
    assert.deepEqual(
      rows.map(({ id: _id, ...rest }) => rest),
      [
        {
          runId: second,
          target: 'nas',
          setId: 'S',
          object: 'a.zst',
          bytes: 10,
          sha256: sha('d'),
          level: 'reread',
          verifiedAt: at(61),
        },
        {
          runId: first,
          target: 'nas',
          setId: 'S',
          object: 'b.zst',
          bytes: 10,
          sha256: sha('d'),
          level: 'remote-hash',
          verifiedAt: at(1),
        },
      ],
    );
    assert.deepEqual(db.objectVerifications('app', 'nas', 'missing'), []);
  });

  it('refuses a verification for a run that does not exist', () => {
    assert.throws(
      () =>
        db.recordObjectVerification(5, {
          target: 'nas',
          setId: 'S',
          object: 'a',
          bytes: 1,
          sha256: sha('e'),
          level: 'reread',
          verifiedAt: at(0),
        }),
      /recordObjectVerification: run 5 does not exist/,
    );
  });
});

describe('chain heads', () => {
  it('stores, replaces and reads the head per job and target', () => {
    assert.equal(db.getChainHead('app', 'nas'), undefined);
    const first = { setId: 'S1', manifestSha256: sha('1'), committedAt: at(10) };
    const second = { setId: 'S2', manifestSha256: sha('2'), committedAt: at(20) };
    db.setChainHead('app', 'nas', first);
    db.setChainHead('app', 'disk', first);
    db.setChainHead('app', 'nas', second);
    assert.deepEqual(db.getChainHead('app', 'nas'), second);
    assert.deepEqual(db.getChainHead('app', 'disk'), first);
    assert.equal(db.getChainHead('other', 'nas'), undefined);
  });
});

describe('lastCommittedRunBytes', () => {
  it('is the bytes of the newest success or warning run that recorded a committed set', () => {
    assert.equal(db.lastCommittedRunBytes('app'), undefined);

    const old = start('app', 0);
    component(old);
    finish(old, 'success', 111);
    const warned = start('app', 10);
    component(warned);
    finish(warned, 'warning', 222);
    const failed = start('app', 20); // committed a suspect set, but the run failed
    component(failed);
    finish(failed, 'failure', 333);
    const drill = start('app', 30, 'drill'); // succeeded without committing anything
    finish(drill, 'success', 444);
    const running = start('app', 40); // not finished
    component(running);
    const otherJob = start('other', 50);
    component(otherJob);
    finish(otherJob, 'success', 555);

    assert.equal(db.lastCommittedRunBytes('app'), 222);
    assert.equal(db.lastCommittedRunBytes('other'), 555);
  });
});

describe('close', () => {
  it('is idempotent, and the database refuses use afterwards', () => {
    db.close();
    db.close();
    assert.throws(() => db.listRuns('app', 1), /not open/);
  });
});
