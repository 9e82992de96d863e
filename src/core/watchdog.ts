// Fails a hung run: no bytes moved for `stallTimeout` while data is streaming, or the whole run
// past `maxDuration`. It aborts the run's controller with a TimeoutError as the reason.
import { TimeoutError } from '../lib/errors.js';
import { formatDuration } from '../lib/units.js';

export interface Watchdog {
  /** Call on every chunk that moves. */
  touch(): void;
  /** Stall detection only runs while streaming (verification re-reads report no bytes). */
  streaming(active: boolean): void;
  stop(): void;
}

export function startWatchdog(
  controller: AbortController,
  limits: { stallTimeoutMs: number; maxDurationMs: number },
  now: () => number = Date.now,
): Watchdog {
  const startedAt = now();
  let lastMove = startedAt;
  let active = false;
  const period = Math.max(50, Math.min(5_000, Math.floor(Math.min(limits.stallTimeoutMs, limits.maxDurationMs) / 10)));
  const timer = setInterval(() => {
    const at = now();
    if (at - startedAt > limits.maxDurationMs) {
      controller.abort(
        new TimeoutError(
          `the run went past checks.maxDuration (${formatDuration(limits.maxDurationMs)}) and was stopped; ` +
            'look for a slow target or source, or raise checks.maxDuration',
        ),
      );
    } else if (active && at - lastMove > limits.stallTimeoutMs) {
      controller.abort(
        new TimeoutError(
          `no bytes moved for checks.stallTimeout (${formatDuration(limits.stallTimeoutMs)}); the run was stopped. ` +
            'A source or target is hung: check the source command or the target mount',
        ),
      );
    }
  }, period);
  timer.unref();
  return {
    touch() {
      lastMove = now();
    },
    streaming(value) {
      active = value;
      lastMove = now();
    },
    stop() {
      clearInterval(timer);
    },
  };
}
