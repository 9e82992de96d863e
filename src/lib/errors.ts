// The few error classes backproof uses. Every message says what failed, where, and what to do.
// Exit codes are mapped from these in one place: src/lib/exit-codes.ts.

/** A problem in the config file or on the command line: exit 2, shown without a stack trace. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** One line per problem, each starting with its key path (`sources[1].paths`). */
  readonly problems: readonly string[];
  constructor(message: string, problems: readonly string[] = []) {
    super(problems.length > 0 ? `${message}\n${problems.map((p) => `  - ${p}`).join('\n')}` : message);
    this.problems = problems;
  }
}

/** A wrong command line (unknown flag, missing argument): exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A target failed. `permanent` errors (auth, permission, missing bucket) are never retried. */
export class TargetError extends Error {
  override readonly name = 'TargetError';
  readonly target: string;
  readonly permanent: boolean;
  constructor(target: string, message: string, options: { permanent: boolean; cause?: unknown }) {
    super(`target ${target}: ${message}`, { cause: options.cause });
    this.target = target;
    this.permanent = options.permanent;
  }
}

/** A source could not produce a complete, valid component. */
export class SourceError extends Error {
  override readonly name = 'SourceError';
  readonly source: string;
  constructor(source: string, message: string, options: { cause?: unknown } = {}) {
    super(`source ${source}: ${message}`, { cause: options.cause });
    this.source = source;
  }
}

/** A child process failed: the command, how it ended, and the tail of what it said. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  readonly command: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stderrTail: string;
  constructor(
    command: string,
    result: { exitCode: number | null; signal: string | null; stderrTail: string },
    options: { cause?: unknown } = {},
  ) {
    const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
    const tail = result.stderrTail.trim();
    super(`${command} ${how}${tail ? `: ${tail}` : ''}`, { cause: options.cause });
    this.command = command;
    this.exitCode = result.exitCode;
    this.signal = result.signal;
    this.stderrTail = result.stderrTail;
  }
}

/** Who holds a job's lock, as written by the holder when it took the lock. */
export interface LockHolder {
  pid: number;
  host: string;
  startedAt: string;
  command: string;
}

/** Another run of the same job holds the lock: exit 75 (EX_TEMPFAIL). */
export class LockedError extends Error {
  override readonly name = 'LockedError';
  readonly holder: LockHolder | undefined;
  constructor(job: string, holder: LockHolder | undefined) {
    super(
      holder
        ? `job ${job} is locked by pid ${holder.pid} on ${holder.host} (${holder.command}, started ${holder.startedAt}); ` +
            'this run did nothing. If that process is gone, the lock frees itself: run again.'
        : `job ${job} is locked by another process; this run did nothing.`,
    );
    this.job = job;
    this.holder = holder;
  }
  readonly job: string;
}

/** The run was interrupted by SIGINT or SIGTERM: exit 130. */
export class InterruptedError extends Error {
  override readonly name = 'InterruptedError';
  readonly signal: string;
  constructor(signal: string) {
    super(`interrupted by ${signal}`);
    this.signal = signal;
  }
}

/** No bytes moved for `stallTimeout`, or the run went past `maxDuration`. */
export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/**
 * A command could not do its job for a reason its message explains (a set that is not there, a
 * damaged object, a database that refused a load): exit 1, shown without a stack trace.
 */
export class OperationError extends Error {
  override name = 'OperationError';
}

/** Errors whose message is the whole story: the CLI prints them without a stack. */
export function isExplainedError(error: unknown): boolean {
  return (
    error instanceof OperationError ||
    error instanceof TargetError ||
    error instanceof SourceError ||
    error instanceof CommandError ||
    error instanceof TimeoutError ||
    (error instanceof Error && error.name === 'SecretError')
  );
}

/** The message of anything thrown, without a stack. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
