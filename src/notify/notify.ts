// What commands call: after a backup run is recorded, when a drill or a verify failed, when a backup
// found the lock held longer than the RPO, and the start ping of a backup. Each builds the event from
// the report, renders it, delivers it (deliver.ts) and logs what could not be delivered. None of
// them throws or changes an exit code: the run's result is already decided and recorded.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { JobConfig } from '../config/schema.js';
import type { DrillReport } from '../core/drill.js';
import type { VerifyReport } from '../core/verify.js';
import { type LockedError, messageOf } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { createNotifiers } from '../notifiers/index.js';
import type { Notifier } from '../notifiers/types.js';
import type { BackupReport, Reporter, RunEvent } from '../report/types.js';
import { openStateDb, type StateDb } from '../state/store.js';
import { type DeliveryOutcome, deliverEvent, deliverStart, type RetryPolicy } from './deliver.js';
import {
  backupEvent,
  drillFailureEvent,
  isFailedDrill,
  isFailedVerify,
  lockStuckEvent,
  type NotifyEvent,
  type PastRun,
  verifyFailureEvent,
} from './events.js';
import { renderEvent, renderStart } from './render.js';

export interface NotifyOptions {
  log: Logger;
  now?: () => Date;
  /** An open state database (the caller's); otherwise the job's is opened when it exists. */
  state?: StateDb;
  retry?: RetryPolicy;
  host?: string;
}

/** Notifications around one backup run: the start ping, then the outcome, or a stuck lock. */
export interface BackupNotifications {
  /** Wraps the run's reporter: its `run-start` event (sent once the lock is held) sends the start ping. */
  watch(reporter: Reporter): Reporter;
  /** After the run is recorded: the outcome to every channel that is to hear it. */
  afterRun(report: BackupReport): Promise<DeliveryOutcome[]>;
  /** The run found the job locked: notifies when the holder has held it longer than objectives.rpo. */
  afterLocked(error: LockedError): Promise<DeliveryOutcome[]>;
}

/**
 * Made before the run: the channels' secrets are read (and registered for redaction) first, so a
 * secret that turns up in the run's output, report or stderr tails is masked there too.
 */
export async function backupNotifications(config: JobConfig, options: NotifyOptions): Promise<BackupNotifications> {
  const notifiers = createNotifiers(config.notify);
  await Promise.all(notifiers.map((n) => n.prepare()));
  const now = options.now ?? (() => new Date());
  const host = options.host ?? hostname();
  // One id per run ties the start ping to the end ping (healthchecks measures the run's duration).
  const pingId = randomUUID();
  let started: Promise<unknown> = Promise.resolve();
  return {
    watch(reporter) {
      if (!notifiers.some((n) => n.policy.mode === 'pings')) return reporter;
      return {
        event(event: RunEvent) {
          if (event.type === 'run-start' && !event.dryRun) {
            const start = { job: event.job, at: event.startedAt, runId: event.runId, setId: event.setId };
            const message = { ...renderStart(start, { host }), pingId };
            started = withState(config, options, (state) =>
              deliverStart(message, notifiers, {
                job: config.job,
                state,
                now,
                runId: event.runId,
                ...retryOf(options),
              }),
            )
              .then((outcomes) => warnUndelivered(outcomes, options.log))
              .catch((error: unknown) => options.log.error(`the start ping could not be sent: ${messageOf(error)}`));
          }
          reporter.event(event);
        },
      };
    },
    async afterRun(report) {
      await started; // the start ping goes first
      if (notifiers.length === 0) return [];
      return safely(options.log, () =>
        withState(config, options, async (state) => {
          const earlier = pastRuns(state, config.job, 'backup', report.runId, report.startedAt);
          const event = backupEvent(report, earlier);
          return send(event, notifiers, { config, options, state, now, host, pingId });
        }),
      );
    },
    async afterLocked(error) {
      const event = lockStuckEvent({
        job: config.job,
        holder: error.holder,
        now: now(),
        rpoMs: config.objectives?.rpo,
      });
      if (!event || notifiers.length === 0) return [];
      return safely(options.log, () =>
        withState(config, options, (state) => send(event, notifiers, { config, options, state, now, host })),
      );
    },
  };
}

/** A drill that failed a check, or could not run (`error`); nothing for one that passed. */
export async function notifyDrill(
  config: JobConfig,
  drill:
    | { report: DrillReport; runId: number | null }
    | { error: unknown; set: string; startedAt: string; runId: number | null },
  options: NotifyOptions,
): Promise<DeliveryOutcome[]> {
  if (config.notify.length === 0) return [];
  const now = options.now ?? (() => new Date());
  if ('report' in drill && !isFailedDrill(drill.report)) return [];
  const notifiers = createNotifiers(config.notify);
  return safely(options.log, () =>
    withState(config, options, (state) => {
      const runId = drill.runId;
      const startedAt = 'report' in drill ? drill.report.startedAt : drill.startedAt;
      const failure =
        'report' in drill && isFailedDrill(drill.report)
          ? { report: drill.report }
          : {
              error: 'error' in drill ? messageOf(drill.error) : 'the drill failed',
              set: 'set' in drill ? drill.set : '',
            };
      const event = drillFailureEvent({
        job: config.job,
        drill: failure,
        at: 'report' in drill ? drill.report.finishedAt : now().toISOString(),
        startedAt,
        runId,
        earlier: pastRuns(state, config.job, 'drill', runId, startedAt),
      });
      return send(event, notifiers, { config, options, state, now, host: options.host ?? hostname() });
    }),
  );
}

/** A verify that found a problem; nothing for one that passed. */
export async function notifyVerify(
  config: JobConfig,
  report: VerifyReport,
  options: NotifyOptions,
): Promise<DeliveryOutcome[]> {
  if (config.notify.length === 0 || !isFailedVerify(report)) return [];
  const now = options.now ?? (() => new Date());
  const notifiers = createNotifiers(config.notify);
  return safely(options.log, () =>
    withState(config, options, (state) => {
      const event = verifyFailureEvent(report, pastRuns(state, config.job, 'verify', report.runId, report.startedAt));
      return send(event, notifiers, { config, options, state, now, host: options.host ?? hostname() });
    }),
  );
}

/** A bug in notifying must not become the run's failure (or hide it): it is logged, and nothing was sent. */
async function safely(log: Logger, fn: () => Promise<DeliveryOutcome[]>): Promise<DeliveryOutcome[]> {
  try {
    return await fn();
  } catch (error) {
    log.error(`notifications could not be sent: ${messageOf(error)} (a bug: please report it)`);
    return [];
  }
}

async function send(
  event: NotifyEvent,
  notifiers: readonly Notifier[],
  context: {
    config: JobConfig;
    options: NotifyOptions;
    state: StateDb | undefined;
    now: () => Date;
    host: string;
    pingId?: string;
  },
): Promise<DeliveryOutcome[]> {
  // Secrets first: any that appears in the report is then masked in the message.
  await Promise.all(notifiers.map((n) => n.prepare()));
  const rendered = renderEvent(event, { host: context.host });
  const message = context.pingId ? { ...rendered, pingId: context.pingId } : rendered;
  const outcomes = await deliverEvent(event, message, notifiers, {
    job: context.config.job,
    state: context.state,
    now: context.now,
    ...retryOf(context.options),
  });
  warnUndelivered(outcomes, context.options.log);
  return outcomes;
}

function retryOf(options: NotifyOptions): { retry?: RetryPolicy } {
  return options.retry ? { retry: options.retry } : {};
}

function warnUndelivered(outcomes: readonly DeliveryOutcome[], log: Logger): void {
  for (const outcome of outcomes) {
    if (outcome.unrecorded) log.warn(`notification ${outcome.event} via ${outcome.channel}: ${outcome.unrecorded}`);
    if (outcome.sent && !outcome.ok) {
      log.warn(
        `notification ${outcome.event} via ${outcome.channel} was not delivered: ${outcome.error ?? 'unknown error'}; ` +
          'it is recorded, and `backproof status` lists it',
      );
    }
  }
}

/** Runs `fn` with the caller's state database, or the job's own when it exists (closed afterwards). */
async function withState<T>(
  config: JobConfig,
  options: NotifyOptions,
  fn: (state: StateDb | undefined) => Promise<T>,
): Promise<T> {
  if (options.state) return fn(options.state);
  let state: StateDb | undefined;
  if (existsSync(join(config.stateDir, 'state.db'))) {
    try {
      state = openStateDb(config.stateDir);
    } catch (error) {
      options.log.warn(
        `notifications: the state database could not be opened (${messageOf(error)}); sending without history`,
      );
    }
  }
  try {
    return await fn(state);
  } finally {
    state?.close();
  }
}

/** The job's earlier finished runs of `command` (newest first), this run and later ones aside. */
function pastRuns(
  state: StateDb | undefined,
  job: string,
  command: string,
  runId: number | null,
  startedAt: string,
): PastRun[] {
  if (!state) return [];
  try {
    return state
      .listRuns(job, 500)
      .filter((r) => r.command === command && r.id !== runId && r.startedAt <= startedAt)
      .map((r) => ({ status: r.status, startedAt: r.startedAt }));
  } catch {
    return [];
  }
}
