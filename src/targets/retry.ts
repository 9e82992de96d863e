// A wrapper that retries a target's idempotent calls on transient errors (reset, timeout, 5xx), with
// backoff. `put` is passed through: a live stream cannot be replayed, so a whole upload is retried by
// the core from a staged copy instead (core/copy-object.ts), and a driver retries its own parts.
import { defaultRetryPolicy, type RetryPolicy, withRetries } from '../lib/retry.js';
import type { Target } from './types.js';

export function withTargetRetries(
  target: Target,
  options: {
    policy?: RetryPolicy;
    onRetry?: (call: string, error: unknown, attempt: number, delayMs: number) => void;
  } = {},
): Target {
  const policy = options.policy ?? defaultRetryPolicy;
  const idle = new AbortController().signal;
  const retry = <T>(call: string, signal: AbortSignal, action: () => Promise<T>): Promise<T> =>
    withRetries(() => action(), {
      policy,
      signal,
      onRetry: (error, attempt, delayMs) => options.onRetry?.(call, error, attempt, delayMs),
      // A missing object is the target's answer: asking again cannot change it (and costs seconds).
      isAnswer: (error) => target.isNotFound(error),
    });
  const wrapped: Target = {
    name: target.name,
    type: target.type,
    optional: target.optional,
    capabilities: target.capabilities,
    describe: () => target.describe(),
    put: (key, body, putOptions) => target.put(key, body, putOptions),
    get: (key, getOptions) => retry(`get ${key}`, getOptions.signal, () => target.get(key, getOptions)),
    stat: (key) => retry(`stat ${key}`, idle, () => target.stat(key)),
    list: (prefix) => retry(`list ${prefix}`, idle, () => target.list(prefix)),
    remove: (key) => retry(`remove ${key}`, idle, () => target.remove(key)),
    verifyObject: (key, verifyOptions) =>
      retry(`verify ${key}`, verifyOptions.signal, () => target.verifyObject(key, verifyOptions)),
    probeWritable: (job) => retry('probe', idle, () => target.probeWritable(job)),
    isNotFound: (error) => target.isNotFound(error),
    close: () => target.close(),
  };
  const { rename, free, abortUnfinishedUploads } = target;
  if (rename) wrapped.rename = (from, to) => retry(`rename ${from}`, idle, () => rename.call(target, from, to));
  if (free) wrapped.free = () => retry('free', idle, () => free.call(target));
  if (abortUnfinishedUploads) {
    wrapped.abortUnfinishedUploads = (prefix) =>
      retry(`abort uploads ${prefix}`, idle, () => abortUnfinishedUploads.call(target, prefix));
  }
  return wrapped;
}
