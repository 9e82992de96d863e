// Whether one channel hears one event: a pure function of the event, the channel's policy, what the
// channel was sent before and the time.
//  - pings (healthchecks) hear every backup run's end (and start, sent separately), whatever it was;
//  - alerts hear the kinds in `on`; a recovery also goes to channels that listen for the run's own
//    status (warning, success), and is never held back;
//  - the same problem (kind and fingerprint) notified since its streak began is held back until
//    `repeatEvery` has passed since the last notice that arrived. A notice that failed does not
//    count, so the next run tries again.
import type { ChannelPolicy } from '../notifiers/types.js';
import { isBackupEvent, type NotifyEvent } from './events.js';

/** An earlier delivery on the same channel. */
export interface PastDelivery {
  event: string;
  fingerprint: string;
  at: string;
  ok: boolean;
}

export type Decision = { send: true; why: string } | { send: false; why: string };

export function decide(event: NotifyEvent, policy: ChannelPolicy, past: readonly PastDelivery[], now: Date): Decision {
  if (policy.mode === 'pings') {
    return isBackupEvent(event)
      ? { send: true, why: 'every backup run pings' }
      : { send: false, why: 'pings are for backup runs only' };
  }
  const subscribed =
    policy.on.includes(event.kind) || (event.kind === 'recovery' && policy.on.includes(event.report.status));
  if (!subscribed) return { send: false, why: `${event.kind} is not in this channel's \`on\`` };
  if (event.kind === 'recovery' || event.kind === 'success')
    return { send: true, why: `a ${event.kind} always notifies` };

  const since = Date.parse(event.since);
  let last: number | undefined;
  for (const delivery of past) {
    if (!delivery.ok || delivery.event !== event.kind || delivery.fingerprint !== event.fingerprint) continue;
    const at = Date.parse(delivery.at);
    if (at >= since && (last === undefined || at > last)) last = at;
  }
  if (last === undefined) return { send: true, why: 'first notice of this problem' };
  const elapsed = now.getTime() - last;
  if (elapsed >= policy.repeatEveryMs) return { send: true, why: 'repeatEvery has passed since the last notice' };
  return {
    send: false,
    why: `the same ${event.kind} was notified at ${new Date(last).toISOString()}; it repeats after repeatEvery`,
  };
}
