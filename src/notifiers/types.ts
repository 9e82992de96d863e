// The notifier contract: a channel receives one rendered Message (built from a run's report by
// src/notify/render.ts, already redacted) and makes one delivery attempt. Retries, timeouts, the
// repeat rule and recording are the caller's (src/notify/deliver.ts), never a driver's.
import type { NotifyChannelConfig, NotifyEventKind } from '../config/schema.js';

/**
 * What a message reports, decided from the report's own status (never from the event's name alone):
 * `failure` something required is not proven; `warning` a set is committed but needs a look;
 * `success` everything proven; `started` a backup run began (pings only).
 */
export type MessageStatus = 'failure' | 'warning' | 'success' | 'started';

/** The JSON document a webhook receives: everything a receiver needs, nothing secret. */
export interface EventDocument {
  format: 'backproof-event/1';
  /** The event: failure, warning, recovery, success, drill-failure, verify-failure, lock-stuck, or start. */
  kind: NotifyEventKind | 'start';
  status: MessageStatus;
  job: string;
  host: string;
  /** When it happened, UTC ISO-8601. */
  at: string;
  /** The run this is about (state database id), when there is one. */
  runId: number | null;
  subject: string;
  text: string;
  /** Kind-specific facts: failures with their evidence, targets, warnings, problems… */
  facts: Record<string, unknown>;
}

export interface Message {
  kind: NotifyEventKind | 'start';
  status: MessageStatus;
  /** One line: `[backproof] FAILURE: job shop — nas: sha256 mismatch on app.tar.zst`. */
  subject: string;
  /** Plain text: what happened, the evidence, what to do next. */
  text: string;
  document: EventDocument;
  /** Ties a run's start ping to its end ping (healthchecks `rid`): a UUID, one per run. */
  pingId?: string;
}

/**
 * Which events a channel takes: `alerts` channels choose event kinds and repeat a lasting problem
 * at most every `repeatEveryMs`; `pings` (healthchecks) hear every backup run's start and end.
 */
export type ChannelPolicy =
  | { readonly mode: 'alerts'; readonly on: readonly NotifyEventKind[]; readonly repeatEveryMs: number }
  | { readonly mode: 'pings' };

export type NotifierType = NotifyChannelConfig['type'];

export interface Notifier {
  /** Unique among the job's channels: in status, the state database and messages about delivery. */
  readonly name: string;
  readonly type: NotifierType;
  readonly policy: ChannelPolicy;
  /** Longest wait for one attempt. */
  readonly timeoutMs: number;
  /**
   * Reads the channel's secrets now, so they are registered for redaction before any report or
   * message is made. Never throws: a secret that cannot be read fails each send instead.
   */
  prepare(): Promise<void>;
  /**
   * One delivery attempt. Throws NotifyError (with `permanent` when trying again cannot help);
   * stops when `signal` aborts (the caller's timeout).
   */
  send(message: Message, signal: AbortSignal): Promise<void>;
}

export type NotifierFactory<C> = (config: C, name: string) => Notifier;

/** A delivery attempt failed. `permanent`: a wrong URL, a refused login, a 4xx; never retried. */
export class NotifyError extends Error {
  override readonly name = 'NotifyError';
  readonly permanent: boolean;
  constructor(message: string, options: { permanent: boolean; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.permanent = options.permanent;
  }
}
