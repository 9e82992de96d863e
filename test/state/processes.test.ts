// The state database under real processes: killed mid-write, and written by two at once.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { openSqlite } from '../../src/lib/sqlite.js';
import { openStateDb } from '../../src/state/store.js';
import { LineChild } from '../helpers/state-spawn.js';

let root: string;
let stateDir: string;
const children: LineChild[] = [];

function writer(...args: string[]): LineChild {
  const child = new LineChild('state-writer.ts', [stateDir, ...args]);
  children.push(child);
  return child;
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'backproof-state-proc-'));
  stateDir = join(root, 'state');
});

afterEach(async () => {
  await Promise.all(children.splice(0).map((child) => child.stop()));
  rmSync(root, { recursive: true, force: true });
});

describe('state database and real processes', () => {
  it('survives a writer killed with SIGKILL mid-loop: intact, and the run shows as unfinished', async () => {
    const child = writer('forever', 'app');
    const { runId } = (await child.next()) as { runId: number };
    let written = 0;
    while (written < 300) written = (await child.next()).written as number;
    child.process.kill('SIGKILL');
    assert.equal((await child.exited).signal, 'SIGKILL');

    const db = openStateDb(stateDir);
    try {
      const check = openSqlite(db.path, { readonly: true });
      try {
        assert.deepEqual(check.pragma('integrity_check', { simple: false }), [{ integrity_check: 'ok' }]);
        assert.deepEqual(check.pragma('foreign_key_check'), []);
      } finally {
        check.close();
      }
      const run = db.getRun(runId);
      assert.equal(run?.status, null);
      assert.equal(run?.finishedAt, null);
      // Every write the child reported is there, each step whole (name and evidence agree).
      const steps = run?.steps ?? [];
      assert.ok(steps.length >= written, `${steps.length} steps, at least ${written} expected`);
      steps.forEach((step, i) => {
        assert.equal(step.name, `step-${i + 1}`);
        assert.deepEqual(step.evidence, { i: i + 1 });
      });
      const abandoned = db.abandonUnfinishedRuns('app', -1, '2025-11-05T00:00:00.000Z');
      assert.deepEqual(
        abandoned.map((r) => [r.id, r.status]),
        [[runId, 'abandoned']],
      );
    } finally {
      db.close();
    }
  });

  it('lets two processes write at once (WAL); both finish and every row is there', async () => {
    const perWriter = 100;
    const a = writer('batch', 'app', String(perWriter));
    const b = writer('batch', 'app', String(perWriter));
    const [readyA, readyB] = await Promise.all([a.next(), b.next()]);
    assert.equal(readyA.ready, true);
    assert.equal(readyA.hostId, readyB.hostId, 'both opened the same new state dir: one host id');
    a.send('go');
    b.send('go');
    const [doneA, doneB] = await Promise.all([a.next(), b.next()]);
    const [exitA, exitB] = await Promise.all([a.exited, b.exited]);
    assert.deepEqual([exitA.code, exitB.code], [0, 0]);

    const ids = [...(doneA.runIds as number[]), ...(doneB.runIds as number[])];
    assert.equal(new Set(ids).size, 2 * perWriter, 'no run id handed out twice');
    const db = openStateDb(stateDir);
    try {
      const runs = db.listRuns('app', 10 * perWriter);
      assert.equal(runs.length, 2 * perWriter);
      for (const run of runs) {
        assert.equal(run.status, 'success');
        const detail = db.getRun(run.id);
        assert.equal(detail?.steps.length, 3);
        assert.equal(detail?.components.length, 1);
      }
    } finally {
      db.close();
    }
  });
});
