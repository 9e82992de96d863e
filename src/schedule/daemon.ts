// `backproof daemon`: the schedule run in-process (croner), for containers without systemd or cron.
// Each run is a child `backproof` process, so a crash cannot take the daemon down, and runs of the
// same job never overlap: a child that finds the job lock taken exits 75 at once, and that is logged
// as a skipped run. Stopping (SIGTERM/SIGINT) ends the schedule, sends each running child one
// SIGTERM (it stops cleanly and records its run) and waits for them.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cron } from 'croner';
import { ExitCode } from '../lib/exit-codes.js';
import { formatDuration } from '../lib/units.js';
import { toCronerPattern } from './expression.js';
import type { ScheduledJob } from './jobs.js';

export type DaemonRunOutcome =
  | 'success'
  | 'warning'
  | 'failure'
  | 'config-error'
  | 'locked'
  | 'interrupted'
  | 'crashed';

export interface DaemonRun {
  command: string;
  startedAt: string;
  finishedAt: string;
  exitCode: number | null;
  signal: string | null;
  outcome: DaemonRunOutcome;
}

export interface DaemonInput {
  job: string;
  /** Absolute. */
  configPath: string;
  jobs: readonly ScheduledJob[];
  randomizedDelayMs: number;
  /** How to start backproof (see selfInvocation). */
  invocation: readonly string[];
  /** The children's environment: the daemon's own (secrets from passwordEnv live there). */
  env: NodeJS.ProcessEnv;
  /** Aborting stops the daemon. */
  signal: AbortSignal;
  /** One line of the daemon's log (children's output included, prefixed with their command). */
  log: (line: string) => void;
  now?: () => Date;
  /** In [0, 1): picks each run's delay within randomizedDelay. */
  random?: () => number;
}

const OUTCOMES: Readonly<Record<number, DaemonRunOutcome>> = {
  [ExitCode.success]: 'success',
  [ExitCode.warning]: 'warning',
  [ExitCode.failure]: 'failure',
  [ExitCode.usage]: 'config-error',
  [ExitCode.locked]: 'locked',
  [ExitCode.interrupted]: 'interrupted',
};

/** A daemon runs for months: it remembers only this many of its newest runs (for --json at the end). */
const RUNS_KEPT = 1000;

/** How long the output of an exited child may still be read (see 'close' below). */
const OUTPUT_GRACE_MS = 2000;

/** Runs the schedule until `signal` aborts; resolves with its newest runs once the last child has ended. */
export async function runDaemon(input: DaemonInput): Promise<DaemonRun[]> {
  const now = input.now ?? (() => new Date());
  const random = input.random ?? Math.random;
  const log = (line: string) => input.log(`${now().toISOString()} ${line}`);
  const runs: DaemonRun[] = [];
  let total = 0;
  const running = new Set<Promise<void>>();
  const children = new Set<ChildProcess>();

  const start = async (job: ScheduledJob): Promise<void> => {
    const delay = Math.floor(random() * (input.randomizedDelayMs + 1));
    if (delay > 0) {
      log(`${job.command}: due; starting in ${formatDuration(delay)} (randomizedDelay)`);
      try {
        await sleep(delay, undefined, { signal: input.signal });
      } catch {
        return; // stopping
      }
    }
    if (input.signal.aborted) return;
    const [program = process.execPath, ...rest] = input.invocation;
    const startedAt = now();
    // Not through lib/exec.ts: this child is backproof itself, with the daemon's whole environment,
    // in its own process group (a terminal's Ctrl-C must not reach it besides the daemon's one SIGTERM).
    const child = spawn(program, [...rest, '--config', input.configPath, ...job.args], {
      env: input.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    children.add(child);
    log(`${job.command}: started (pid ${child.pid ?? '?'})`);
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) createInterface({ input: stream }).on('line', (line) => input.log(`[${job.command}] ${line}`));
    }
    const ended = await new Promise<{ exitCode: number | null; signal: string | null; error?: Error }>((resolve) => {
      let grace: NodeJS.Timeout | undefined;
      child.once('error', (error) => resolve({ exitCode: null, signal: null, error }));
      // 'close' comes once the output is read to the end; a stray grandchild holding the pipe open
      // must not hold the daemon, so after the exit it gets a short grace, then the pipes are cut.
      child.once('exit', (exitCode, signal) => {
        grace = setTimeout(() => {
          child.stdout?.destroy();
          child.stderr?.destroy();
          resolve({ exitCode, signal });
        }, OUTPUT_GRACE_MS);
      });
      child.once('close', (exitCode, signal) => {
        clearTimeout(grace);
        resolve({ exitCode, signal });
      });
    });
    children.delete(child);
    const finishedAt = now();
    // A child stopped by our SIGTERM before it could handle signals (still starting) was interrupted.
    const outcome: DaemonRunOutcome =
      ended.exitCode === null
        ? input.signal.aborted && ended.signal === 'SIGTERM'
          ? 'interrupted'
          : 'crashed'
        : (OUTCOMES[ended.exitCode] ?? 'crashed');
    runs.push({
      command: job.command,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      exitCode: ended.exitCode,
      signal: ended.signal,
      outcome,
    });
    total += 1;
    if (runs.length > RUNS_KEPT) runs.shift();
    const took = formatDuration(finishedAt.getTime() - startedAt.getTime());
    if (ended.error) log(`${job.command}: could not start ${program}: ${ended.error.message}`);
    else if (outcome === 'locked')
      log(
        `${job.command}: skipped: another run of job ${input.job} holds its lock (exit 75); the next trigger tries again`,
      );
    else if (outcome === 'crashed')
      log(
        `${job.command}: crashed (${ended.signal ? `killed by ${ended.signal}` : `exit ${ended.exitCode}`}) after ${took}`,
      );
    else
      log(
        `${job.command}: finished: ${outcome} (${ended.signal ? ended.signal : `exit ${ended.exitCode}`}) after ${took}`,
      );
  };

  const crons = input.jobs.map(
    (job) =>
      new Cron(toCronerPattern(job.schedule), { name: `backproof-${input.job}-${job.command}`, catch: true }, () => {
        if (input.signal.aborted) return;
        const run = start(job).catch((error: unknown) => log(`${job.command}: ${String(error)}`));
        running.add(run);
        void run.finally(() => running.delete(run));
      }),
  );
  for (const [i, job] of input.jobs.entries()) {
    const next = crons[i]?.nextRun();
    log(
      `${job.command}: scheduled "${job.schedule.text}" (${toCronerPattern(job.schedule)}), ` +
        `next ${next ? next.toISOString() : 'never'}`,
    );
  }
  log(`daemon for job ${input.job} running (pid ${process.pid}); SIGTERM stops it`);

  await new Promise<void>((resolve) => {
    if (input.signal.aborted) resolve();
    else input.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  for (const cron of crons) cron.stop();
  if (children.size > 0) log(`stopping: asking ${children.size} running child(ren) to stop cleanly`);
  for (const child of children) child.kill('SIGTERM');
  while (running.size > 0) await Promise.all([...running]);
  log(`daemon for job ${input.job} stopped after ${total} run(s)`);
  return runs;
}
