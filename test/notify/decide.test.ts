// Who hears what: the decision rules one by one, then a property test over random sequences of runs,
// drills, verifies and stuck locks on random channels: a failed run never produces a success message
// on any channel, a recovery follows the first good run after failures, and a lasting problem is
// not re-sent within repeatEvery.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NotifyEventKind } from '../../src/config/schema.js';
import type { DrillReport } from '../../src/core/drill.js';
import { discordPayload } from '../../src/notifiers/discord.js';
import { pingUrl } from '../../src/notifiers/healthchecks.js';
import { ntfyHeaders } from '../../src/notifiers/ntfy.js';
import { slackPayload } from '../../src/notifiers/slack.js';
import type { ChannelPolicy } from '../../src/notifiers/types.js';
import { decide, type PastDelivery } from '../../src/notify/decide.js';
import {
  backupEvent,
  drillFailureEvent,
  isFailedDrill,
  lockStuckEvent,
  type NotifyEvent,
  type PastRun,
} from '../../src/notify/events.js';
import { renderEvent } from '../../src/notify/render.js';
import type { BackupReport } from '../../src/report/types.js';
import { commandFailed, failedReport, mismatch, successReport, warningReport } from './reports.js';

const HOUR = 3_600_000;
const alerts = (on: NotifyEventKind[], repeatEveryMs = 24 * HOUR): ChannelPolicy => ({
  mode: 'alerts',
  on,
  repeatEveryMs,
});
const delivered = (event: NotifyEvent, at: string, ok = true): PastDelivery => ({
  event: event.kind,
  fingerprint: event.fingerprint,
  at,
  ok,
});

describe('decide', () => {
  const failure = backupEvent(failedReport({ startedAt: '2025-11-04T03:00:00.000Z' }), []);
  const at = (iso: string) => new Date(iso);

  it('sends what the channel listens for, and nothing else', () => {
    assert.equal(decide(failure, alerts(['failure']), [], at('2025-11-04T04:00:00Z')).send, true);
    const no = decide(failure, alerts(['warning', 'recovery']), [], at('2025-11-04T04:00:00Z'));
    assert.deepEqual(no, { send: false, why: "failure is not in this channel's `on`" });
  });

  it("sends a recovery to channels that listen for recoveries or for the run's own status", () => {
    const recovery = backupEvent(warningReport(), [{ status: 'failure', startedAt: '2025-11-03T03:00:00.000Z' }]);
    assert.equal(recovery.kind, 'recovery');
    const now = at('2025-11-04T04:00:00Z');
    assert.equal(decide(recovery, alerts(['recovery']), [], now).send, true);
    assert.equal(decide(recovery, alerts(['warning']), [], now).send, true);
    assert.equal(decide(recovery, alerts(['success']), [], now).send, false);
    // Never held back, even right after another recovery.
    assert.equal(decide(recovery, alerts(['recovery']), [delivered(recovery, '2025-11-04T03:59:00Z')], now).send, true);
  });

  it('pings every backup run and nothing else', () => {
    const pings: ChannelPolicy = { mode: 'pings' };
    const now = at('2025-11-04T04:00:00Z');
    for (const report of [failedReport(), warningReport(), successReport()]) {
      assert.equal(
        decide(backupEvent(report, []), pings, [delivered(failure, '2025-11-04T03:59:00Z')], now).send,
        true,
      );
    }
    const stuck = lockStuckEvent({
      job: 'shop',
      holder: { pid: 1, host: 'h', startedAt: '2025-11-01T00:00:00.000Z', command: 'backup' },
      now,
      rpoMs: HOUR,
    }) as NotifyEvent;
    assert.equal(decide(stuck, pings, [], now).send, false);
  });

  it('holds back the same failure within repeatEvery, then repeats it', () => {
    const past = [delivered(failure, '2025-11-04T04:00:00.000Z')];
    const policy = alerts(['failure'], 24 * HOUR);
    assert.equal(decide(failure, policy, past, at('2025-11-05T03:59:59.999Z')).send, false);
    assert.deepEqual(decide(failure, policy, past, at('2025-11-05T04:00:00.000Z')), {
      send: true,
      why: 'repeatEvery has passed since the last notice',
    });
  });

  it('counts only notices that arrived, of the same problem, in the same streak', () => {
    const policy = alerts(['failure']);
    const now = at('2025-11-04T05:00:00Z');
    assert.equal(decide(failure, policy, [delivered(failure, '2025-11-04T04:00:00Z', false)], now).send, true);
    assert.equal(
      decide(failure, policy, [{ ...delivered(failure, '2025-11-04T04:00:00Z'), fingerprint: 'other' }], now).send,
      true,
    );
    // Notified before this streak began (a good run came between): a new failure, so a new notice.
    assert.equal(decide(failure, policy, [delivered(failure, '2025-11-04T02:59:59Z')], now).send, true);
  });
});

// ── property test ────────────────────────────────────────────────────────────────────────────────

/** A small seeded generator (mulberry32), so a failing sequence can be replayed from its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALL_KINDS: NotifyEventKind[] = [
  'failure',
  'warning',
  'recovery',
  'success',
  'drill-failure',
  'verify-failure',
  'lock-stuck',
];

interface Channel {
  name: string;
  policy: ChannelPolicy;
  deliveries: PastDelivery[];
}

function failedDrill(at: string): DrillReport {
  return {
    job: 'shop',
    setId: '20251104T030000Z-k3x9qa',
    target: 'disk',
    encrypted: false,
    startedAt: at,
    restoredAt: null,
    finishedAt: at,
    rtoMs: null,
    rtoObjectiveMs: null,
    status: 'failure',
    components: [],
    problems: ['app: object: damaged'],
    warnings: [],
    cleanedUp: [],
  };
}

/** Every channel's view of a message: none of them may read as a success when the status is a failure. */
function assertFailureEverywhere(event: NotifyEvent, seed: number): void {
  const message = renderEvent(event, { host: 'web1' });
  const where = `seed ${seed}, event ${event.kind}`;
  assert.equal(message.status, 'failure', where);
  assert.equal(message.document.status, 'failure', where);
  assert.match(message.subject, /^\[backproof\] (FAILURE|DRILL FAILED|VERIFY FAILED|LOCK STUCK): /, where);
  assert.doesNotMatch(message.subject, /SUCCESS|RECOVERED|WARNING/, where);
  assert.equal(pingUrl(new URL('https://hc.example/ping/abc'), message).pathname, '/ping/abc/fail', where);
  assert.equal(ntfyHeaders(message, { tags: [] })['x-priority'], 'high', where);
  assert.equal((discordPayload(message) as { embeds: { color: number }[] }).embeds[0]?.color, 0xd0021b, where);
  assert.match(
    (slackPayload(message) as { text: string }).text,
    /^\[backproof\] (FAILURE|DRILL FAILED|LOCK STUCK): /,
    where,
  );
}

describe('decide and render over random sequences of events (property)', () => {
  it('never tells of success for a failed run, recovers on the first good run, and respects repeatEvery', () => {
    let sequences = 0;
    let failureNotices = 0;
    let heldBack = 0;
    let recoveries = 0;
    for (let seed = 1; seed <= 400; seed++) {
      const next = random(seed);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
      const channels: Channel[] = [
        { name: 'pings', policy: { mode: 'pings' }, deliveries: [] },
        ...Array.from({ length: 3 }, (_, i) => ({
          name: `alerts-${i}`,
          policy: alerts(
            ALL_KINDS.filter(() => next() < 0.6),
            pick([HOUR, 6 * HOUR, 24 * HOUR]),
          ),
          deliveries: [] as PastDelivery[],
        })),
      ];
      const runs: PastRun[] = [];
      const drills: PastRun[] = [];
      /** The model: per channel and fingerprint, the last notice that arrived in the current failure streak. */
      const lastNotice = new Map<string, number>();
      let clock = Date.parse('2025-11-01T00:00:00.000Z');
      const length = 1 + Math.floor(next() * 14);
      for (let step = 0; step < length; step++) {
        clock += Math.floor(next() * 30 * HOUR);
        const startedAt = new Date(clock).toISOString();
        const finishedAt = new Date(clock + 60_000).toISOString();
        const now = new Date(clock + 60_000);
        const roll = next();
        let event: NotifyEvent;
        let report: BackupReport | undefined;
        if (roll < 0.1) {
          const drill = failedDrill(finishedAt);
          assert.ok(isFailedDrill(drill));
          event = drillFailureEvent({
            job: 'shop',
            drill: { report: drill },
            at: finishedAt,
            startedAt,
            runId: null,
            earlier: drills,
          });
          drills.unshift({ status: 'failure', startedAt });
        } else if (roll < 0.15) {
          event = lockStuckEvent({
            job: 'shop',
            holder: { pid: 7, host: 'web1', startedAt: '2025-10-01T00:00:00.000Z', command: 'backup' },
            now,
            rpoMs: 26 * HOUR,
          }) as NotifyEvent;
        } else {
          const status = pick(['success', 'warning', 'failure', 'failure'] as const);
          const options = { startedAt, finishedAt };
          report =
            status === 'failure'
              ? failedReport({ ...options, failures: [pick([mismatch, commandFailed])] })
              : status === 'warning'
                ? warningReport(options)
                : successReport(options);
          const previous = runs.find((r) => r.status !== null);
          event = backupEvent(report, runs);
          // Recovery exactly on the first good run after failures.
          const afterFailure = previous?.status === 'failure';
          assert.equal(event.kind === 'recovery', status !== 'failure' && afterFailure, `seed ${seed} step ${step}`);
          if (status === 'failure') assert.equal(event.kind, 'failure', `seed ${seed}`);
          runs.unshift({ status, startedAt });
          if (status !== 'failure') {
            for (const key of [...lastNotice.keys()]) if (key.includes('|backup|')) lastNotice.delete(key);
          }
        }
        for (const channel of channels) {
          const decision = decide(event, channel.policy, channel.deliveries, now);
          const family = event.kind === 'failure' ? 'backup' : event.kind;
          const key = `${channel.name}|${family}|${event.fingerprint}`;
          if (channel.policy.mode === 'alerts' && channel.policy.on.includes(event.kind) && event.kind === 'failure') {
            const last = lastNotice.get(key);
            const expected = last === undefined || now.getTime() - last >= channel.policy.repeatEveryMs;
            assert.equal(decision.send, expected, `seed ${seed} step ${step} ${channel.name}: ${decision.why}`);
            if (!decision.send) heldBack++;
          }
          if (event.kind === 'recovery' && channel.policy.mode === 'alerts' && channel.policy.on.includes('recovery')) {
            assert.equal(decision.send, true, `seed ${seed}: a recovery always notifies`);
            recoveries++;
          }
          if (!decision.send) continue;
          if (report?.status === 'failure' || event.kind === 'drill-failure' || event.kind === 'lock-stuck') {
            assertFailureEverywhere(event, seed);
            failureNotices++;
          }
          // Some deliveries fail; those do not count for the repeat rule.
          const ok = next() < 0.85;
          channel.deliveries.push({ event: event.kind, fingerprint: event.fingerprint, at: now.toISOString(), ok });
          if (ok && event.kind === 'failure') lastNotice.set(key, now.getTime());
        }
      }
      sequences++;
    }
    // The generator really exercised each rule.
    assert.equal(sequences, 400);
    assert.ok(failureNotices > 500, `failure notices: ${failureNotices}`);
    assert.ok(heldBack > 20, `held back: ${heldBack}`);
    assert.ok(recoveries > 50, `recoveries: ${recoveries}`);
  });
});
