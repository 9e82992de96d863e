// Delivery: for each channel, decide (decide.ts), send with a timeout per attempt and a few short
// retries for transient errors, and record the delivery in the state database. Never throws: a
// notification that cannot be delivered is recorded and reported back, and changes nothing else.
import { setTimeout as sleep } from 'node:timers/promises';
import { messageOf } from '../lib/errors.js';
import { redact } from '../lib/redact.js';
import { formatDuration } from '../lib/units.js';
import { type Message, type Notifier, NotifyError } from '../notifiers/types.js';
import type { NotificationRecord, StateDb } from '../state/store.js';
import { decide } from './decide.js';
import type { NotifyEvent } from './events.js';

export interface RetryPolicy {
  /** Tries in all, the first included. */
  attempts: number;
  /** Delay before the second try; doubles each time. */
  baseDelayMs: number;
}

/** A few tries, close together: a notice that is late by minutes is worse than one recorded as failed. */
export const notifyRetryPolicy: RetryPolicy = { attempts: 3, baseDelayMs: 500 };

export interface DeliveryOutcome {
  channel: string;
  type: string;
  event: string;
  /** Whether the channel was to hear this event at all (and why, or why not). */
  sent: boolean;
  why: string;
  /** Delivered; false when it was sent and failed, or held back. */
  ok: boolean;
  attempts: number;
  /** Why it was not delivered (redacted). */
  error?: string;
  /** Set when the state database could not record it (the repeat rule and status will not know of it). */
  unrecorded?: string;
}

export interface DeliverOptions {
  job: string;
  state?: StateDb | undefined;
  now: () => Date;
  retry?: RetryPolicy;
}

/** Sends `message` about `event` to every channel that is to hear it; records each delivery. */
export async function deliverEvent(
  event: NotifyEvent,
  message: Message,
  notifiers: readonly Notifier[],
  options: DeliverOptions,
): Promise<DeliveryOutcome[]> {
  return Promise.all(
    notifiers.map(async (notifier): Promise<DeliveryOutcome> => {
      const base = { channel: notifier.name, type: notifier.type, event: event.kind };
      let decision: ReturnType<typeof decide>;
      try {
        const past =
          notifier.policy.mode === 'alerts' && options.state
            ? options.state.notificationsOf(options.job, notifier.name, {
                event: event.kind,
                fingerprint: event.fingerprint,
                limit: 50,
              })
            : [];
        decision = decide(event, notifier.policy, past, options.now());
      } catch (error) {
        // The history could not be read: better a repeated notice than a lost one.
        decision = { send: true, why: `the delivery history could not be read (${messageOf(error)})` };
      }
      if (!decision.send) return { ...base, sent: false, why: decision.why, ok: false, attempts: 0 };
      const result = await sendWithRetries(notifier, message, options.retry ?? notifyRetryPolicy);
      const unrecorded = record(options, {
        job: options.job,
        channel: notifier.name,
        event: event.kind,
        fingerprint: event.fingerprint,
        runId: event.runId ?? undefined,
        at: options.now().toISOString(),
        ok: result.ok,
        attempts: result.attempts,
        subject: message.subject,
        ...(result.error !== undefined ? { error: result.error } : {}),
      });
      return { ...base, sent: true, why: decision.why, ...result, ...unrecorded };
    }),
  );
}

/** The start ping of a backup run, to the ping channels only; recorded like any delivery. */
export async function deliverStart(
  message: Message,
  notifiers: readonly Notifier[],
  options: DeliverOptions & { runId: number | null },
): Promise<DeliveryOutcome[]> {
  const pings = notifiers.filter((n) => n.policy.mode === 'pings');
  return Promise.all(
    pings.map(async (notifier): Promise<DeliveryOutcome> => {
      const result = await sendWithRetries(notifier, message, options.retry ?? notifyRetryPolicy);
      const unrecorded = record(options, {
        job: options.job,
        channel: notifier.name,
        event: 'start',
        fingerprint: 'start',
        runId: options.runId ?? undefined,
        at: options.now().toISOString(),
        ok: result.ok,
        attempts: result.attempts,
        subject: message.subject,
        ...(result.error !== undefined ? { error: result.error } : {}),
      });
      return {
        channel: notifier.name,
        type: notifier.type,
        event: 'start',
        sent: true,
        why: 'a backup run started',
        ...result,
        ...unrecorded,
      };
    }),
  );
}

/** Tries until delivered, a permanent error, or the tries are used up; each try within the channel's timeout. */
export async function sendWithRetries(
  notifier: Notifier,
  message: Message,
  policy: RetryPolicy,
): Promise<{ ok: boolean; attempts: number; error?: string }> {
  let attempts = 0;
  for (;;) {
    attempts++;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), notifier.timeoutMs);
    try {
      await notifier.send(message, controller.signal);
      return { ok: true, attempts };
    } catch (error) {
      const timedOut = controller.signal.aborted;
      const permanent = !timedOut && error instanceof NotifyError && error.permanent;
      if (permanent || attempts >= policy.attempts) {
        const why = timedOut
          ? `${notifier.type} ${notifier.name}: no answer within ${formatDuration(notifier.timeoutMs)}`
          : messageOf(error);
        const tries = attempts === 1 ? '' : ` (after ${attempts} tries)`;
        return { ok: false, attempts, error: redact(`${why}${tries}`) };
      }
    } finally {
      clearTimeout(timer);
    }
    await sleep(policy.baseDelayMs * 2 ** (attempts - 1));
  }
}

/** A delivery the state database cannot take is still reported to the caller; it never stops the others. */
function record(options: DeliverOptions, record: NotificationRecord): { unrecorded?: string } {
  if (!options.state) return {};
  try {
    options.state.recordNotification(record);
    return {};
  } catch (error) {
    return { unrecorded: redact(`the delivery could not be recorded: ${messageOf(error)}`) };
  }
}
