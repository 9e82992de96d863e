// What every core operation is given: explicit, so tests can inject a clock and a signal.
import type { Logger } from '../lib/log.js';
import type { Reporter } from '../report/types.js';

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

export interface CoreContext {
  log: Logger;
  reporter: Reporter;
  /** Aborted on SIGINT/SIGTERM; the core also aborts on stall and maxDuration. */
  signal: AbortSignal;
  clock: Clock;
}
