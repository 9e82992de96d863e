import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ConfigError, LockedError } from '../../src/lib/errors.js';
import { acquireJobLock, inspectJobLock, type JobLock } from '../../src/lib/lock.js';
import { LineChild } from '../helpers/state-spawn.js';

let root: string;
let stateDir: string;
const children: LineChild[] = [];
const locks: JobLock[] = [];

function holder(job = 'app', command = 'backup'): LineChild {
  const child = new LineChild('lock-holder.ts', [stateDir, job, command]);
  children.push(child);
  return child;
}

function acquire(job = 'app', command = 'backup', now?: () => Date): JobLock {
  const lock = acquireJobLock(stateDir, job, command, now ? { now } : {});
  locks.push(lock);
  return lock;
}

function lockedErrorOf(fn: () => unknown): LockedError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof LockedError, `expected LockedError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected LockedError, but the lock was taken');
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'backproof-lock-'));
  stateDir = join(root, 'state', 'nested');
});

afterEach(async () => {
  for (const lock of locks.splice(0)) lock.release();
  await Promise.all(children.splice(0).map((child) => child.stop()));
  rmSync(root, { recursive: true, force: true });
});

describe('acquireJobLock in one process', () => {
  it('creates the state directory and its locks directory with mode 0700', () => {
    acquire();
    assert.equal(statSync(stateDir).mode & 0o777, 0o700);
    assert.equal(statSync(join(stateDir, 'locks')).mode & 0o777, 0o700);
  });

  it('records who holds the lock, in the lock and in the holder file', () => {
    const lock = acquire('app', 'prune', () => new Date('2025-11-04T03:00:00Z'));
    const expected = { pid: process.pid, host: hostname(), startedAt: '2025-11-04T03:00:00.000Z', command: 'prune' };
    assert.deepEqual(lock.holder, expected);
    assert.deepEqual(JSON.parse(readFileSync(join(stateDir, 'locks', 'app.lock.json'), 'utf8')), expected);
    assert.deepEqual(inspectJobLock(stateDir, 'app'), { held: true, holder: expected });
  });

  it('refuses a second acquire in the same process, naming the holder', () => {
    const first = acquire();
    const error = lockedErrorOf(() => acquire('app', 'drill'));
    assert.equal(error.job, 'app');
    assert.deepEqual(error.holder, first.holder);
    assert.match(error.message, new RegExp(`pid ${process.pid} on .*\\(backup, started `));
  });

  it('frees the lock on release: the holder file goes and the next acquire works', () => {
    acquire().release();
    assert.equal(existsSync(join(stateDir, 'locks', 'app.lock.json')), false);
    assert.deepEqual(inspectJobLock(stateDir, 'app'), { held: false });
    const again = acquire('app', 'drill');
    assert.equal(again.holder.command, 'drill');
  });

  it('makes release idempotent: a second release does not drop a later holder', () => {
    const first = acquire();
    first.release();
    const second = acquire();
    first.release();
    lockedErrorOf(() => acquire());
    assert.equal(inspectJobLock(stateDir, 'app').held, true);
    second.release();
  });

  it('locks each job separately', () => {
    acquire('app');
    const other = acquire('db');
    assert.equal(other.holder.pid, process.pid);
    assert.equal(inspectJobLock(stateDir, 'db').held, true);
  });

  it('ignores a leftover holder file that names a live process when nobody holds the lock (no pid checks)', () => {
    acquire().release();
    const stale = { pid: 1, host: hostname(), startedAt: '2020-01-01T00:00:00.000Z', command: 'backup' };
    writeFileSync(join(stateDir, 'locks', 'app.lock.json'), JSON.stringify(stale));
    assert.deepEqual(inspectJobLock(stateDir, 'app'), { held: false });
    assert.equal(acquire().holder.pid, process.pid);
  });

  it('repairs lock and gate files that something overwrote with garbage', () => {
    acquire().release();
    for (const file of ['app.lock', 'app.lock.gate']) {
      writeFileSync(join(stateDir, 'locks', file), 'this is not a SQLite database, and it is long enough to matter');
    }
    assert.deepEqual(inspectJobLock(stateDir, 'app'), { held: false });
    assert.equal(acquire().holder.pid, process.pid);
    lockedErrorOf(() => acquire());
    assert.equal(statSync(join(stateDir, 'locks', 'app.lock')).size, 0);
  });

  it('leaves no journal or temporary files next to the lock', () => {
    acquire('app');
    inspectJobLock(stateDir, 'app');
    assert.deepEqual(readdirSync(join(stateDir, 'locks')).sort(), ['app.lock', 'app.lock.gate', 'app.lock.json']);
  });

  it('rejects job names that are not file names, before creating anything', () => {
    for (const job of ['', '.', '..', 'a/b', '../escape', 'nul\0byte']) {
      assert.throws(() => acquireJobLock(stateDir, job, 'backup'), ConfigError, `job ${JSON.stringify(job)}`);
    }
    assert.equal(existsSync(stateDir), false);
  });
});

describe('inspectJobLock', () => {
  it('reports an unknown job as free and creates nothing', () => {
    assert.deepEqual(inspectJobLock(stateDir, 'app'), { held: false });
    assert.equal(existsSync(stateDir), false);
  });

  it('does not drop the lock of its own process (SQLite defers the close of the probe)', async () => {
    const lock = acquire();
    assert.equal(inspectJobLock(stateDir, 'app').held, true);
    assert.equal(inspectJobLock(stateDir, 'app').held, true);
    const other = holder();
    const answer = await other.request('acquire');
    assert.equal(answer.ok, false);
    assert.deepEqual(answer.holder, lock.holder);
  });
});

describe('the job lock across processes', () => {
  it('lets exactly one of two racing processes take it; the other is told the winner', async () => {
    const a = holder('app', 'backup');
    const b = holder('app', 'prune');
    await Promise.all([a.request('ping'), b.request('ping')]);
    a.send('acquire');
    b.send('acquire');
    const [answerA, answerB] = await Promise.all([a.next(), b.next()]);
    const winners = [answerA, answerB].filter((answer) => answer.ok === true);
    assert.equal(winners.length, 1, `exactly one winner: ${JSON.stringify([answerA, answerB])}`);
    const [winner, loser, loserAnswer] = answerA.ok === true ? [a, b, answerB] : [b, a, answerA];
    assert.equal(loserAnswer.error, 'LockedError');
    const named = loserAnswer.holder as { pid: number; host: string; command: string; startedAt: string };
    assert.equal(named.pid, winner.pid);
    assert.equal(named.host, hostname());
    assert.equal(named.command, winner === a ? 'backup' : 'prune');
    assert.match(named.startedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.match(String(loserAnswer.message), new RegExp(`pid ${winner.pid} on `));

    // Seen from a third process too; and once the winner releases, the loser gets it.
    assert.deepEqual(inspectJobLock(stateDir, 'app'), { held: true, holder: named });
    assert.deepEqual(await winner.request('release'), { ok: true });
    const retry = await loser.request('acquire');
    assert.equal(retry.ok, true);
    assert.equal((retry.holder as { pid: number }).pid, loser.pid);
  });

  it('frees the lock of a holder killed with SIGKILL at once', async () => {
    const child = holder();
    const taken = await child.request('acquire');
    assert.equal(taken.ok, true);
    lockedErrorOf(() => acquire());

    child.process.kill('SIGKILL');
    const exit = await child.exited;
    assert.equal(exit.signal, 'SIGKILL');

    assert.deepEqual(inspectJobLock(stateDir, 'app'), { held: false });
    const lock = acquire('app', 'drill');
    assert.equal(lock.holder.pid, process.pid);
    const written = JSON.parse(readFileSync(join(stateDir, 'locks', 'app.lock.json'), 'utf8')) as { pid: number };
    assert.equal(written.pid, process.pid, 'the dead holder file is replaced');
  });

  it('frees the lock when the holder exits without releasing', async () => {
    const child = holder();
    assert.equal((await child.request('acquire')).ok, true);
    child.process.stdin?.end(); // the helper exits when its stdin ends, lock still taken
    assert.equal((await child.exited).code, 0);
    assert.equal(acquire().holder.pid, process.pid);
  });

  it('never makes a starting run fail while another process inspects the lock in a loop', async () => {
    const inspector = holder();
    const runner = holder();
    assert.deepEqual(await inspector.request('inspect-loop'), { looping: true });
    const cycled = await runner.request('cycle 200');
    inspector.send('stop');
    const inspected = await inspector.next();
    assert.deepEqual(cycled, { acquired: 200, locked: 0 });
    assert.ok((inspected.inspections as number) > 0, 'the inspector ran');
  });

  it('is refused to another process while this process holds it, and given after release', async () => {
    const lock = acquire();
    const child = holder();
    const refused = await child.request('acquire');
    assert.equal(refused.ok, false);
    assert.deepEqual(refused.holder, lock.holder);
    assert.deepEqual(await child.request('inspect'), { held: true, holder: lock.holder });
    lock.release();
    assert.deepEqual(await child.request('inspect'), { held: false });
    assert.equal((await child.request('acquire')).ok, true);
  });
});
