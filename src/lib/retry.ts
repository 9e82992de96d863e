// Bounded retries with exponential backoff and jitter, for transient errors only.
import { setTimeout as sleep } from 'node:timers/promises';
import { TargetError } from './errors.js';

export interface RetryPolicy {
  /** Tries in all, the first included. */
  attempts: number;
  /** Delay before the second try; doubles each time, with ±25% jitter. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const defaultRetryPolicy: RetryPolicy = { attempts: 4, baseDelayMs: 1_000, maxDelayMs: 30_000 };

/** Transient unless it says otherwise: a TargetError knows; an abort never is. */
export function isTransient(error: unknown): boolean {
  if (error instanceof TargetError) return !error.permanent;
  if (
    error instanceof Error &&
    (error.name === 'AbortError' || error.name === 'InterruptedError' || error.name === 'TimeoutError')
  ) {
    return false;
  }
  return false;
}

export async function withRetries<T>(
  action: (attempt: number) => Promise<T>,
  options: {
    policy?: RetryPolicy;
    signal: AbortSignal;
    onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
    /** An answer, not a fault: thrown at once even when it looks transient (e.g. "no such file"). */
    isAnswer?: (error: unknown) => boolean;
  },
): Promise<T> {
  const policy = options.policy ?? defaultRetryPolicy;
  for (let attempt = 1; ; attempt++) {
    try {
      return await action(attempt);
    } catch (error) {
      if (options.signal.aborted) throw options.signal.reason;
      if (attempt >= policy.attempts || !isTransient(error) || options.isAnswer?.(error)) throw error;
      const base = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      const delayMs = Math.round(base * (0.75 + Math.random() * 0.5));
      options.onRetry?.(error, attempt, delayMs);
      await sleep(delayMs, undefined, { signal: options.signal }).catch(() => {
        throw options.signal.reason;
      });
    }
  }
}
