// Exit codes of the command contract, mapped in one place.
import { ConfigError, InterruptedError, LockedError, UsageError } from './errors.js';

export const ExitCode = {
  success: 0,
  failure: 1,
  usage: 2,
  warning: 3,
  locked: 75,
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The exit code for an error that escaped a command. */
export function exitCodeForError(error: unknown): ExitCode {
  if (error instanceof ConfigError || error instanceof UsageError) return ExitCode.usage;
  if (error instanceof LockedError) return ExitCode.locked;
  if (error instanceof InterruptedError) return ExitCode.interrupted;
  return ExitCode.failure;
}

/** The exit code for a finished run's status. */
export function exitCodeForStatus(status: 'success' | 'warning' | 'failure'): ExitCode {
  return status === 'success' ? ExitCode.success : status === 'warning' ? ExitCode.warning : ExitCode.failure;
}
