// The one place child processes are started. Children get a small explicit environment with
// `LC_ALL=C` (so tool output is parsed the same everywhere), secrets only through `env`, never argv.
// An aborted child gets SIGTERM (its whole process group when asked), then SIGKILL after a grace time.
import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';
import { Duplex, type DuplexOptions, type Readable, type Writable } from 'node:stream';
import { CommandError } from './errors.js';

/** How a child ended. */
export interface ExitInfo {
  /** null when it was killed by a signal. */
  exitCode: number | null;
  signal: string | null;
  /** The last ~4 KiB of what it wrote to stderr, decoded as UTF-8 without a broken first character. */
  stderrTail: string;
}

export interface SpawnOptions {
  /**
   * Added to the child's environment, e.g. `{ MYSQL_PWD: password }`. The child never inherits
   * backproof's whole environment: it gets PATH, HOME, USER, LOGNAME, TMPDIR and TZ, then these,
   * then `LC_ALL=C`, which always wins.
   */
  env?: NodeJS.ProcessEnv;
  /** Aborting stops the child: SIGTERM, then SIGKILL after `killGraceMs`. */
  signal: AbortSignal;
  /** `pipe` gives a writable `stdin`. Default `ignore` (the child reads /dev/null). */
  stdin?: 'pipe' | 'ignore';
  cwd?: string;
  /** Start the child in its own process group and signal the whole group, so grandchildren stop too. Default false. */
  processGroup?: boolean;
  /** Milliseconds between SIGTERM and SIGKILL after an abort. Default 5000. */
  killGraceMs?: number;
}

export interface SpawnedProcess {
  child: ChildProcess;
  /** Present when `stdin: 'pipe'`. */
  stdin: Writable | undefined;
  /** Must be consumed (or destroyed): a child whose stdout is not read blocks, and `done` waits for it. */
  stdout: Readable;
  /**
   * Resolves when the child has exited and its stdout and stderr are closed, whatever the exit code:
   * callers decide what a failure is. Rejects only when the program could not be started
   * (a {@link ProgramNotFoundError} when it is missing).
   */
  done: Promise<ExitInfo>;
}

/** The program to run does not exist (not on PATH, or no such file). */
export class ProgramNotFoundError extends Error {
  override readonly name = 'ProgramNotFoundError';
  readonly program: string;
  constructor(program: string, options: { cause?: unknown } = {}) {
    super(`cannot run ${program}: the program is not installed or not on PATH (${childPath()})`, options);
    this.program = program;
  }
}

const STDERR_TAIL_BYTES = 4096;
const DEFAULT_KILL_GRACE_MS = 5000;
const FALLBACK_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const INHERITED_VARIABLES = ['PATH', 'HOME', 'USER', 'LOGNAME', 'TMPDIR', 'TZ'] as const;

/** The PATH children get (and {@link whichProgram} searches). */
export function childPath(): string {
  return process.env.PATH || FALLBACK_PATH;
}

/** The environment a child gets: the few inherited variables, the caller's, then `LC_ALL=C`. */
export function childEnvironment(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of INHERITED_VARIABLES) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  env.PATH = childPath();
  return { ...env, ...extra, LC_ALL: 'C' };
}

/** Starts a child whose stdout is streamed. See {@link SpawnedProcess}. */
export function spawnStream(command: string, args: string[], options: SpawnOptions): SpawnedProcess {
  const processGroup = options.processGroup ?? false;
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: childEnvironment(options.env),
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
    detached: processGroup,
  });
  const stdout = child.stdout;
  const stderr = child.stderr;
  if (!stdout || !stderr) throw new Error(`spawning ${command} gave no stdout/stderr pipes`);

  const tail = new TailBuffer(STDERR_TAIL_BYTES);
  stderr.on('data', (chunk: Buffer) => tail.push(chunk));
  // A child that dies early makes writes to its stdin fail with EPIPE; the exit status tells the story.
  child.stdin?.on('error', () => {});

  let closed = false;
  let killTimer: NodeJS.Timeout | undefined;
  const sendSignal = (name: NodeJS.Signals): void => {
    if (closed || child.pid === undefined) return;
    try {
      if (processGroup) process.kill(-child.pid, name);
      else child.kill(name);
    } catch (error) {
      // ESRCH: already gone.
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  };
  const terminate = (): void => {
    if (closed || killTimer) return;
    sendSignal('SIGTERM');
    killTimer = setTimeout(() => sendSignal('SIGKILL'), options.killGraceMs ?? DEFAULT_KILL_GRACE_MS);
    // Nobody wants the output of an aborted child; unread output would keep `done` waiting.
    child.stdin?.destroy();
    stdout.destroy();
  };

  const done = new Promise<ExitInfo>((resolve, reject) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      if (child.pid !== undefined) return; // a failed kill() after the start: 'close' still comes
      if (error.code === 'ENOENT') reject(new ProgramNotFoundError(command, { cause: error }));
      else reject(new Error(`cannot run ${command}: ${error.message}`, { cause: error }));
    });
    child.once('close', (exitCode: number | null, signal: NodeJS.Signals | null) => {
      closed = true;
      if (killTimer) clearTimeout(killTimer);
      options.signal.removeEventListener('abort', terminate);
      resolve({ exitCode, signal, stderrTail: tail.text() });
    });
  });

  if (options.signal.aborted) terminate();
  else options.signal.addEventListener('abort', terminate, { once: true });

  return { child, stdin: child.stdin ?? undefined, stdout, done };
}

export interface CaptureResult extends ExitInfo {
  /** UTF-8 stdout, at most `maxOutputBytes` of it. */
  stdout: string;
}

export interface CaptureOptions extends Omit<SpawnOptions, 'stdin' | 'signal'> {
  signal?: AbortSignal;
  /** Stdout beyond this many bytes is read and dropped. Default 1 MiB. */
  maxOutputBytes?: number;
}

/** Runs a short command (a version probe) to the end and returns its output. Rejects only if it cannot start. */
export async function runCapture(
  command: string,
  args: string[],
  options: CaptureOptions = {},
): Promise<CaptureResult> {
  const { signal = new AbortController().signal, maxOutputBytes = 1024 * 1024, ...rest } = options;
  const started = spawnStream(command, args, { ...rest, signal, stdin: 'ignore' });
  const chunks: Buffer[] = [];
  let kept = 0;
  started.stdout.on('data', (chunk: Buffer) => {
    if (kept >= maxOutputBytes) return;
    const part = chunk.subarray(0, maxOutputBytes - kept);
    chunks.push(part);
    kept += part.length;
  });
  started.stdout.on('error', () => {}); // destroyed on abort; `done` reports how the child ended
  const info = await started.done;
  return { ...info, stdout: Buffer.concat(chunks).toString('utf8') };
}

/** The error for a child that ended badly. `display` names the command for humans and never holds a secret. */
export function toCommandError(display: string, info: ExitInfo): CommandError {
  return new CommandError(display, info);
}

/** The absolute path of an executable `name` found on PATH (or `name` itself if it contains a `/`). */
export async function whichProgram(name: string): Promise<string | undefined> {
  const candidates = name.includes('/')
    ? [path.resolve(name)]
    : childPath()
        .split(':')
        .filter((dir) => path.isAbsolute(dir)) // an empty or relative entry would mean the cwd
        .map((dir) => path.join(dir, name));
  for (const candidate of candidates) {
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    const info = await stat(file);
    if (!info.isFile()) return false;
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface ProcessStreamOptions extends Omit<SpawnOptions, 'stdin'> {
  /** Names the command in errors, e.g. `zstd -3`. Never holds a secret. */
  display: string;
  /** true: the writable side feeds the child's stdin. false: stdin is /dev/null and the stream is read-only. */
  input: boolean;
  /**
   * Judges the finished child, knowing how many bytes it wrote to stdout; returns the error to fail
   * with, or undefined for success. Default: success only for exit code 0.
   */
  judge?: (info: ExitInfo, outputBytes: number) => Error | undefined;
  /**
   * Hands the child's output on in chunks of at least this many bytes instead of the 64 KiB reads
   * of its pipe (default 0: as read). What is gathered goes on after `COALESCE_DELAY_MS` at the
   * latest, so a slow child's output still flows and stall detection still sees it.
   */
  coalesceBytes?: number;
}

/** The longest that gathered output waits for more (`coalesceBytes`). */
const COALESCE_DELAY_MS = 20;

/**
 * A child process as one stream: writes go to its stdin, reads come from its stdout, with
 * backpressure both ways. The readable side ends only after the child exited and `judge` accepted
 * the exit; otherwise the stream is destroyed with that error, so truncated output never looks
 * complete. Destroying the stream (or aborting `signal`) stops the child; 'close' comes after it is gone.
 */
export function processStream(command: string, args: string[], options: ProcessStreamOptions): Duplex {
  return new ProcessDuplex(command, args, options);
}

class ProcessDuplex extends Duplex {
  private readonly stopChild = new AbortController();
  private readonly started: SpawnedProcess;
  private readonly outerSignal: AbortSignal;
  private readonly onOuterAbort: () => void;
  private outputBytes = 0;
  private stdinFailure: Error | undefined;
  private readonly coalesceBytes: number;
  private gathered: Buffer[] = [];
  private gatheredBytes = 0;
  private gatherTimer: NodeJS.Timeout | undefined;

  constructor(command: string, args: string[], options: ProcessStreamOptions) {
    // `writable: false` (a read-only child) is supported by Duplex but missing from @types/node.
    const duplexOptions: DuplexOptions & { writable: boolean } = { writable: options.input, highWaterMark: 64 * 1024 };
    super(duplexOptions);
    const { display, input, judge = defaultJudge(display), signal, coalesceBytes = 0, ...spawnOptions } = options;
    this.coalesceBytes = coalesceBytes;
    this.outerSignal = signal;
    this.onOuterAbort = () => this.destroy(signal.reason ?? new Error(`${display}: aborted`));
    this.started = spawnStream(command, args, {
      ...spawnOptions,
      signal: this.stopChild.signal,
      stdin: input ? 'pipe' : 'ignore',
    });
    const { stdin, stdout, done } = this.started;

    stdin?.on('error', (error: Error) => {
      this.stdinFailure ??= error;
    });
    stdout.on('data', (chunk: Buffer) => {
      if (this.destroyed) return;
      this.outputBytes += chunk.length;
      if (!this.forward(chunk)) stdout.pause();
    });
    stdout.on('error', () => {}); // destroyed by us when stopping; the exit status is what counts
    done.then(
      (info) => {
        if (this.destroyed) return;
        const failure =
          judge(info, this.outputBytes) ??
          (this.stdinFailure
            ? new Error(`${display} stopped reading its input before the end`, { cause: this.stdinFailure })
            : undefined);
        if (failure) this.destroy(failure);
        else {
          this.pushGathered();
          this.push(null);
        }
      },
      (error: unknown) => this.destroy(error instanceof Error ? error : new Error(String(error))),
    );

    if (signal.aborted) this.onOuterAbort();
    else signal.addEventListener('abort', this.onOuterAbort, { once: true });
  }

  /** Hands a chunk of output on, or gathers it (`coalesceBytes`); false when the reader wants no more for now. */
  private forward(chunk: Buffer): boolean {
    if (this.coalesceBytes === 0) return this.push(chunk);
    this.gathered.push(chunk);
    this.gatheredBytes += chunk.length;
    if (this.gatheredBytes >= this.coalesceBytes) return this.pushGathered();
    this.gatherTimer ??= setTimeout(() => {
      this.gatherTimer = undefined;
      if (!this.destroyed && !this.pushGathered()) this.started.stdout.pause();
    }, COALESCE_DELAY_MS);
    return true;
  }

  /** Pushes what was gathered as one chunk (one copy, against a trip through every later stream per 64 KiB). */
  private pushGathered(): boolean {
    clearTimeout(this.gatherTimer);
    this.gatherTimer = undefined;
    if (this.gatheredBytes === 0) return true;
    const chunk =
      this.gathered.length === 1 ? (this.gathered[0] as Buffer) : Buffer.concat(this.gathered, this.gatheredBytes);
    this.gathered = [];
    this.gatheredBytes = 0;
    return this.push(chunk);
  }

  override _read(): void {
    this.started.stdout.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const stdin = this.started.stdin;
    if (!stdin) callback(new Error('this stream takes no input'));
    else if (stdin.write(chunk)) callback();
    else stdin.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    // The readable side still ends only after the child's exit is judged.
    this.started.stdin?.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.gatherTimer);
    this.gathered = [];
    this.outerSignal.removeEventListener('abort', this.onOuterAbort);
    this.stopChild.abort();
    this.started.done.then(
      () => callback(error),
      () => callback(error),
    );
  }
}

function defaultJudge(display: string): (info: ExitInfo) => Error | undefined {
  return (info) => (info.exitCode === 0 ? undefined : toCommandError(display, info));
}

/** Keeps the last `limit` bytes written to it. */
class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    let first = this.chunks[0];
    while (first && this.size - first.length >= this.limit) {
      this.chunks.shift();
      this.size -= first.length;
      first = this.chunks[0];
    }
  }

  text(): string {
    let bytes = Buffer.concat(this.chunks);
    if (bytes.length > this.limit) bytes = bytes.subarray(bytes.length - this.limit);
    // A cut in the middle of a UTF-8 character leaves continuation bytes (10xxxxxx) at the start.
    let start = 0;
    while (start < bytes.length && start < 3 && ((bytes[start] ?? 0) & 0xc0) === 0x80) start++;
    return bytes.subarray(start).toString('utf8');
  }
}
