// Delivery with a real state database, a real HTTP receiver and an injected clock: each delivery is
// recorded, the repeat rule reads those records, and a failed delivery is recorded and retried later.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { jobConfigSchema } from '../../src/config/schema.js';
import { clearSecrets } from '../../src/lib/redact.js';
import { createNotifiers } from '../../src/notifiers/index.js';
import type { Notifier } from '../../src/notifiers/types.js';
import { deliverEvent } from '../../src/notify/deliver.js';
import { backupEvent, type NotifyEvent } from '../../src/notify/events.js';
import { renderEvent } from '../../src/notify/render.js';
import { openStateDb, type StateDb } from '../../src/state/store.js';
import { type HttpReceiver, startHttpReceiver } from '../helpers/receivers.js';
import { failedReport, successReport } from './reports.js';

const HOUR = 3_600_000;
const retry = { attempts: 2, baseDelayMs: 10 };

describe('deliverEvent', () => {
  let receiver: HttpReceiver;
  let root: string;
  let state: StateDb;
  let clock: Date;
  const now = () => clock;

  before(async () => {
    receiver = await startHttpReceiver();
  });
  after(async () => {
    await receiver.close();
  });
  beforeEach(() => {
    receiver.requests.length = 0;
    receiver.answer(200);
    root = mkdtempSync(join(tmpdir(), 'bp-deliver-'));
    state = openStateDb(join(root, 'state'));
    clock = new Date('2025-11-04T03:01:00.000Z');
  });
  afterEach(() => {
    state.close();
    rmSync(root, { recursive: true, force: true });
    clearSecrets();
  });

  function channels(notify: unknown[]): Notifier[] {
    const config = jobConfigSchema.parse({
      job: 'shop',
      stateDir: root,
      sources: [{ name: 'a', type: 'command', command: 'true' }],
      targets: [{ name: 'disk', type: 'local', path: '/tmp' }],
      notify,
    });
    return createNotifiers(config.notify);
  }

  const send = (event: NotifyEvent, notifiers: Notifier[]) =>
    deliverEvent(event, renderEvent(event, { host: 'web1' }), notifiers, { job: 'shop', state, now, retry });

  it('records each delivery and holds back the same failure until repeatEvery has passed', async () => {
    const notifiers = channels([
      { type: 'webhook', name: 'hourly', url: `${receiver.base}/hourly`, repeatEvery: '1h' },
      { type: 'webhook', name: 'daily', url: `${receiver.base}/daily` },
      { type: 'healthchecks', url: `${receiver.base}/ping` },
    ]);
    const failure = backupEvent(failedReport({ startedAt: '2025-11-04T03:00:00.000Z', runId: null }), []);
    const first = await send(failure, notifiers);
    assert.deepEqual(
      first.map((o) => [o.channel, o.sent, o.ok, o.attempts]),
      [
        ['hourly', true, true, 1],
        ['daily', true, true, 1],
        ['healthchecks', true, true, 1],
      ],
    );
    const recorded = state.notificationsOf('shop', 'daily', { limit: 5 });
    assert.deepEqual(
      recorded.map((n) => [n.event, n.fingerprint, n.at, n.ok, n.subject]),
      [['failure', failure.fingerprint, clock.toISOString(), true, renderEvent(failure, { host: 'web1' }).subject]],
    );

    clock = new Date(clock.getTime() + 59 * 60_000);
    assert.deepEqual(
      (await send(failure, notifiers)).map((o) => [o.channel, o.sent]),
      [
        ['hourly', false],
        ['daily', false],
        ['healthchecks', true],
      ],
    );
    clock = new Date(clock.getTime() + 60_000);
    assert.deepEqual(
      (await send(failure, notifiers)).map((o) => [o.channel, o.sent]),
      [
        ['hourly', true],
        ['daily', false],
        ['healthchecks', true],
      ],
    );
    clock = new Date(clock.getTime() + 24 * HOUR);
    assert.deepEqual(
      (await send(failure, notifiers)).map((o) => [o.channel, o.sent]),
      [
        ['hourly', true],
        ['daily', true],
        ['healthchecks', true],
      ],
    );
    const count = (path: string) => receiver.requests.filter((r) => r.path.replace(/\?.*/, '') === path).length;
    assert.deepEqual([count('/hourly'), count('/daily'), count('/ping/fail')], [3, 2, 4]);
  });

  it('records a failed delivery, which does not count: the next identical failure is sent again', async () => {
    const notifiers = channels([{ type: 'webhook', url: `${receiver.base}/hook` }]);
    const failure = backupEvent(failedReport({ startedAt: '2025-11-04T03:00:00.000Z', runId: null }), []);
    receiver.answer(503);
    const [failed] = await send(failure, notifiers);
    assert.deepEqual(
      { sent: failed?.sent, ok: failed?.ok, attempts: failed?.attempts },
      { sent: true, ok: false, attempts: 2 },
    );
    assert.match(failed?.error ?? '', /answered 503 Service Unavailable.*\(after 2 tries\)$/);
    const [undelivered] = state.undeliveredNotifications('shop', 5);
    assert.equal(undelivered?.channel, 'webhook');
    assert.equal(undelivered?.error, failed?.error);

    receiver.answer(200);
    clock = new Date(clock.getTime() + 60_000);
    const [retried] = await send(failure, notifiers);
    assert.deepEqual({ sent: retried?.sent, ok: retried?.ok }, { sent: true, ok: true });
    assert.deepEqual(state.undeliveredNotifications('shop', 5), []);
  });

  it('sends a recovery even right after another notice', async () => {
    const notifiers = channels([{ type: 'webhook', url: `${receiver.base}/hook`, repeatEvery: '7d' }]);
    const earlier = [{ status: 'failure' as const, startedAt: '2025-11-03T03:00:00.000Z' }];
    const recovery = backupEvent(successReport(), earlier);
    for (let i = 0; i < 2; i++) {
      const [outcome] = await send(recovery, notifiers);
      assert.deepEqual({ sent: outcome?.sent, ok: outcome?.ok }, { sent: true, ok: true });
    }
    assert.equal(receiver.requests.length, 2);
  });

  it('still delivers, and reports it, when the state database cannot record', async () => {
    const notifiers = channels([{ type: 'webhook', url: `${receiver.base}/hook` }]);
    state.close();
    const [outcome] = await send(backupEvent(failedReport({ runId: null }), []), notifiers);
    assert.deepEqual({ sent: outcome?.sent, ok: outcome?.ok }, { sent: true, ok: true });
    assert.match(outcome?.why ?? '', /the delivery history could not be read/);
    assert.match(outcome?.unrecorded ?? '', /could not be recorded/);
    assert.equal(receiver.requests.length, 1);
    state = openStateDb(join(root, 'state'));
  });
});
