// Notification deliveries in the real state database: recorded, read back per channel for the
// repeat rule, and the undelivered ones listed until the channel delivers again.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { NotificationRecord } from '../../src/state/notification-store.js';
import { openStateDb, type StateDb } from '../../src/state/store.js';

let root: string;
let db: StateDb;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'backproof-notify-store-'));
  db = openStateDb(join(root, 'state'));
});

afterEach(() => {
  db.close();
  rmSync(root, { recursive: true, force: true });
});

const at = (minutes: number): string => new Date(Date.UTC(2025, 10, 4, 3, minutes)).toISOString();

function record(overrides: Partial<NotificationRecord> = {}): void {
  db.recordNotification({
    job: 'shop',
    channel: 'email',
    event: 'failure',
    fingerprint: 'f1',
    at: at(0),
    ok: true,
    attempts: 1,
    subject: '[backproof] FAILURE: job shop — x',
    ...overrides,
  });
}

describe('notification store', () => {
  it('reads a channel back newest first, filtered by event and fingerprint', () => {
    const runId = db.startRun({ job: 'shop', command: 'backup', startedAt: at(0), pid: 1, host: 'web1' });
    record({ at: at(1), runId });
    record({ at: at(3), fingerprint: 'f2' });
    record({ at: at(2), event: 'warning' });
    record({ at: at(4), channel: 'webhook' });
    record({ at: at(5), job: 'other' });
    const all = db.notificationsOf('shop', 'email', { limit: 10 });
    assert.deepEqual(
      all.map((n) => [n.at, n.event, n.fingerprint]),
      [
        [at(3), 'failure', 'f2'],
        [at(2), 'warning', 'f1'],
        [at(1), 'failure', 'f1'],
      ],
    );
    const same = db.notificationsOf('shop', 'email', { event: 'failure', fingerprint: 'f1', limit: 10 });
    assert.equal(same.length, 1);
    assert.equal(same[0]?.runId, runId);
    assert.equal(same[0]?.ok, true);
    assert.equal(same[0]?.error, null);
    assert.equal(db.notificationsOf('shop', 'email', { limit: 1 }).length, 1);
  });

  it('lists failed deliveries until the same channel delivers again', () => {
    record({ at: at(1), ok: false, attempts: 3, error: 'webhook hook: the receiver answered 500', channel: 'hook' });
    record({ at: at(2), ok: false, attempts: 1, error: 'email email: refused', channel: 'email' });
    record({ at: at(3), ok: true, channel: 'other' });
    assert.deepEqual(
      db.undeliveredNotifications('shop', 10).map((n) => [n.channel, n.error, n.attempts]),
      [
        ['email', 'email email: refused', 1],
        ['hook', 'webhook hook: the receiver answered 500', 3],
      ],
    );
    record({ at: at(4), ok: true, channel: 'hook', event: 'recovery' });
    assert.deepEqual(
      db.undeliveredNotifications('shop', 10).map((n) => n.channel),
      ['email'],
    );
    // An earlier success does not hide a later failure.
    record({ at: at(5), ok: false, channel: 'hook', error: 'down' });
    assert.deepEqual(
      db.undeliveredNotifications('shop', 10).map((n) => n.channel),
      ['hook', 'email'],
    );
    assert.deepEqual(db.undeliveredNotifications('other-job', 10), []);
  });

  it('refuses inconsistent records: an error exactly when not delivered, UTC times, counts', () => {
    assert.throws(() => record({ ok: false }), /an error exactly when it was not delivered/);
    assert.throws(() => record({ ok: true, error: 'x' }), /an error exactly when it was not delivered/);
    assert.throws(() => record({ at: '2025-11-04 03:00' }), /UTC ISO-8601/);
    assert.throws(() => record({ attempts: -1 }), /attempts must be an integer/);
    assert.throws(() => record({ channel: '' }), /channel must be a non-empty string/);
    assert.throws(() => record({ runId: 999 }), /run 999 does not exist/);
    assert.throws(() => db.notificationsOf('shop', 'email', { limit: 0 }), /positive integer/);
    assert.deepEqual(db.notificationsOf('shop', 'email', { limit: 5 }), []);
  });
});
