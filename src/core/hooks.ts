// Hooks: the operator's own commands around a backup run (maintenance mode on before, off after).
// Each runs by /bin/sh -c in its own process group, so a timeout or an abort stops it and everything
// it started. Its exit code, duration and the tails of its output go in the run report and the steps.
// Environment: what command sources get (PATH, HOME, USER, LOGNAME, TMPDIR, TZ, LC_ALL=C), plus
// BACKPROOF_JOB, BACKPROOF_RUN_ID, BACKPROOF_HOOK, and when known BACKPROOF_STATUS,
// BACKPROOF_EXIT_CODE and BACKPROOF_SET_ID (only once a set is committed on some target).
import type { HookConfig } from '../config/schema.js';
import { messageOf } from '../lib/errors.js';
import { spawnStream } from '../lib/exec.js';
import { redact } from '../lib/redact.js';
import { formatDuration } from '../lib/units.js';
import type { StepLog } from './steps.js';

export type HookPhase = 'before' | 'after' | 'onError';

/** What one hook did: the `hooks` section of a run report. */
export interface HookResult {
  phase: HookPhase;
  command: string;
  /** Exited 0 within its timeout. */
  ok: boolean;
  /** null when it was killed by a signal or never started. */
  exitCode: number | null;
  signal: string | null;
  /** Killed because it ran past its timeout. */
  timedOut: boolean;
  startedAt: string;
  durationMs: number;
  /** The last ~4 KiB of each stream, secrets masked. */
  stdoutTail: string;
  stderrTail: string;
  /** Why it could not run at all, or that the run was interrupted. */
  error?: string;
}

export interface HookContext {
  job: string;
  runId: number;
  status?: 'success' | 'warning' | 'failure';
  exitCode?: number;
  setId?: string;
}

export interface RunHookOptions {
  phase: HookPhase;
  context: HookContext;
  /** Aborting stops the hook (its whole process group). */
  signal?: AbortSignal;
  now: () => Date;
  /** Between SIGTERM and SIGKILL when the hook is stopped. Default 5000. */
  killGraceMs?: number;
}

const OUTPUT_TAIL_BYTES = 4096;

/** Runs one hook to its end, its timeout or an abort. Never throws: a hook that cannot start is a failed result. */
export async function runHook(hook: HookConfig, options: RunHookOptions): Promise<HookResult> {
  const started = options.now();
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error(`hook timed out after ${formatDuration(hook.timeout)}`));
  }, hook.timeout);
  const onAbort = () => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });

  const result = (fields: Partial<HookResult>): HookResult => {
    const exitCode = fields.exitCode ?? null;
    const interrupted = !timedOut && controller.signal.aborted;
    const error = fields.error ?? (interrupted ? `stopped: ${messageOf(options.signal?.reason)}` : undefined);
    return {
      phase: options.phase,
      command: redact(hook.command),
      ok: exitCode === 0 && !timedOut && !interrupted,
      exitCode,
      signal: fields.signal ?? null,
      timedOut,
      startedAt: started.toISOString(),
      durationMs: Math.max(0, options.now().getTime() - started.getTime()),
      stdoutTail: redact(fields.stdoutTail ?? ''),
      stderrTail: redact(fields.stderrTail ?? ''),
      ...(error !== undefined ? { error } : {}),
    };
  };

  try {
    const child = spawnStream('/bin/sh', ['-c', hook.command], {
      env: hookEnvironment(options.phase, options.context),
      signal: controller.signal,
      processGroup: true,
      ...(options.killGraceMs !== undefined ? { killGraceMs: options.killGraceMs } : {}),
    });
    let stdout = Buffer.alloc(0);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout = Buffer.concat([stdout, chunk]);
      if (stdout.length > 2 * OUTPUT_TAIL_BYTES) stdout = stdout.subarray(stdout.length - OUTPUT_TAIL_BYTES);
    });
    child.stdout.on('error', () => {}); // destroyed when the hook is stopped; how it ended is what counts
    const info = await child.done;
    return result({
      exitCode: info.exitCode,
      signal: info.signal,
      stdoutTail: tailText(stdout),
      stderrTail: info.stderrTail,
    });
  } catch (error) {
    return result({ error: `could not start: ${messageOf(error)}` });
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

function hookEnvironment(phase: HookPhase, context: HookContext): NodeJS.ProcessEnv {
  return {
    BACKPROOF_JOB: context.job,
    BACKPROOF_RUN_ID: String(context.runId),
    BACKPROOF_HOOK: phase,
    ...(context.status !== undefined ? { BACKPROOF_STATUS: context.status } : {}),
    ...(context.exitCode !== undefined ? { BACKPROOF_EXIT_CODE: String(context.exitCode) } : {}),
    ...(context.setId !== undefined ? { BACKPROOF_SET_ID: context.setId } : {}),
  };
}

/** The last OUTPUT_TAIL_BYTES as UTF-8, without a broken first character. */
function tailText(bytes: Buffer): string {
  let tail = bytes.length > OUTPUT_TAIL_BYTES ? bytes.subarray(bytes.length - OUTPUT_TAIL_BYTES) : bytes;
  let start = 0;
  while (start < tail.length && start < 3 && ((tail[start] ?? 0) & 0xc0) === 0x80) start++;
  tail = tail.subarray(start);
  return tail.toString('utf8');
}

/** One line: which hook, how it ended, and the last line it wrote to stderr (or stdout). */
export function describeHook(result: HookResult): string {
  const how = result.error
    ? result.error
    : result.timedOut
      ? `was killed after its timeout (${formatDuration(result.durationMs)})`
      : result.signal
        ? `was killed by ${result.signal}`
        : `exited with code ${result.exitCode}`;
  const said = lastLine(result.stderrTail) || lastLine(result.stdoutTail);
  return `${result.phase} hook \`${result.command}\` ${how}${result.ok ? ` in ${formatDuration(result.durationMs)}` : ''}${
    !result.ok && said ? `: ${said}` : ''
  }`;
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return (lines.at(-1) ?? '').trim();
}

/** What a step's evidence holds about a hook. */
export function hookEvidence(result: HookResult): Record<string, unknown> {
  return {
    command: result.command,
    exitCode: result.exitCode,
    signal: result.signal,
    timedOut: result.timedOut,
    durationMs: result.durationMs,
    stdoutTail: result.stdoutTail,
    stderrTail: result.stderrTail,
  };
}

export interface HookPhaseInput extends RunHookOptions {
  hooks: readonly HookConfig[];
  steps: StepLog;
  /** Stop at the first hook that fails (before hooks: the run must not go on). */
  stopAtFailure: boolean;
}

/** Runs a phase's hooks in order, each recorded as a step `hook:<phase>`. */
export async function runHookPhase(input: HookPhaseInput): Promise<HookResult[]> {
  const { hooks, steps, stopAtFailure, ...options } = input;
  const results: HookResult[] = [];
  for (const hook of hooks) {
    const began = options.now();
    const result = await runHook(hook, options);
    results.push(result);
    steps.record(
      {
        name: `hook:${options.phase}`,
        status: result.ok ? 'ok' : input.phase === 'before' ? 'failed' : 'warning',
        message: describeHook(result),
        evidence: hookEvidence(result),
      },
      began,
    );
    if (!result.ok && stopAtFailure) break;
  }
  return results;
}

export interface ClosingHooksInput {
  hooks: { after: readonly HookConfig[]; onError: readonly HookConfig[] };
  /** The run's outcome before these hooks ran. */
  context: HookContext & { status: 'success' | 'warning' | 'failure'; exitCode: number };
  steps: StepLog;
  now: () => Date;
  killGraceMs?: number;
}

/**
 * The end of a run: onError hooks when it failed, then after hooks whatever the outcome. They are
 * cleanup (maintenance mode off), so an interrupted run still runs them, each bounded by its own
 * timeout. Returns their results and one warning per failed hook (a success becomes a warning).
 */
export async function runClosingHooks(
  input: ClosingHooksInput,
): Promise<{ results: HookResult[]; warnings: string[] }> {
  const common = {
    context: input.context,
    steps: input.steps,
    now: input.now,
    stopAtFailure: false,
    ...(input.killGraceMs !== undefined ? { killGraceMs: input.killGraceMs } : {}),
  };
  const results = [
    ...(input.context.status === 'failure'
      ? await runHookPhase({ ...common, phase: 'onError', hooks: input.hooks.onError })
      : []),
    ...(await runHookPhase({ ...common, phase: 'after', hooks: input.hooks.after })),
  ];
  return { results, warnings: results.filter((r) => !r.ok).map(describeHook) };
}
