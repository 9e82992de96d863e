// The `command` source: the standard output of a shell command (`redis-cli --rdb -`), run by
// `/bin/sh -c` in its own process group so that stopping it stops everything it started.
// It succeeds only if the command exits 0 and wrote at least one byte: an empty dump is no backup.
import { SourceError } from '../lib/errors.js';
import { type ExitInfo, processStream, toCommandError, whichProgram } from '../lib/exec.js';
import type { ComponentFacts, ComponentStream, PreflightFinding, Source, SourceContext } from './types.js';

export interface CommandSourceOptions {
  /** Source name, also the component name. */
  name: string;
  /** Run by `/bin/sh -c`. Never shown in messages (it may hold a secret); the source name is. */
  command: string;
  /** Extension of the output, without dot, e.g. `rdb`. */
  extension: string;
  /** Milliseconds the command may run before it is stopped and the component fails. Default: no limit of its own. */
  timeout?: number;
}

const SHELL = '/bin/sh';

export function createCommandSource(options: CommandSourceOptions): Source {
  return {
    name: options.name,
    type: 'command',
    check: async () => shellFindings(options.name, SHELL),
    // Nothing tells how much a command will write without running it.
    estimateRawBytes: async () => 0,
    async *components(ctx: SourceContext): AsyncIterable<ComponentStream> {
      yield runCommand(options, ctx);
    },
  };
}

/** Preflight: the shell must exist; nothing else can be known without running the command. Exported for tests. */
export async function shellFindings(source: string, shell: string): Promise<PreflightFinding[]> {
  if (await whichProgram(shell)) return [];
  return [{ fatal: true, message: `source ${source}: ${shell} is missing or not executable; it runs the command` }];
}

function runCommand(options: CommandSourceOptions, ctx: SourceContext): ComponentStream {
  const { name } = options;
  // The child stops on the run's abort (with its reason) or on this source's own timeout.
  const stop = new AbortController();
  const onAbort = (): void => stop.abort(ctx.signal.reason);
  if (ctx.signal.aborted) onAbort();
  else ctx.signal.addEventListener('abort', onAbort, { once: true });
  const timer =
    options.timeout === undefined
      ? undefined
      : setTimeout(
          () =>
            stop.abort(
              new SourceError(name, `the command did not finish within ${options.timeout} ms; it was stopped`),
            ),
          options.timeout,
        );

  let stderrOnSuccess = '';
  const data = processStream(SHELL, ['-c', options.command], {
    display: `the command of source ${name}`,
    // The operator's command runs in backproof's own environment (a systemd EnvironmentFile may hold
    // what it needs, e.g. REDISCLI_AUTH), like a shell hook would; only LC_ALL is forced to C.
    env: process.env,
    input: false,
    processGroup: true,
    signal: stop.signal,
    judge: (info: ExitInfo, outputBytes: number) => {
      if (info.exitCode !== 0) {
        return new SourceError(name, describeExit(info), { cause: toCommandError(`source ${name} command`, info) });
      }
      if (outputBytes === 0) {
        return new SourceError(
          name,
          `the command exited 0 but wrote nothing to standard output; an empty dump is not a backup${tailOf(info)}`,
        );
      }
      stderrOnSuccess = info.stderrTail;
      return undefined;
    },
  });

  const facts = new Promise<ComponentFacts>((resolve, reject) => {
    let ended = false;
    data.once('end', () => {
      ended = true;
    });
    data.once('close', () => {
      if (timer) clearTimeout(timer);
      ctx.signal.removeEventListener('abort', onAbort);
      if (ended) {
        // Tools chatter on stderr (progress, notices) even when all went well: a debug line, not a warning.
        if (stderrOnSuccess.trim()) ctx.log.debug('command source stderr', { source: name, stderr: stderrOnSuccess });
        resolve({ warnings: [], dumpTool: `${SHELL} -c` });
      } else if (ctx.signal.aborted) {
        reject(ctx.signal.reason);
      } else if (data.errored) {
        const error = data.errored;
        reject(error instanceof SourceError ? error : new SourceError(name, error.message, { cause: error }));
      } else {
        reject(new SourceError(name, 'the output was not read to the end; the command was stopped'));
      }
    });
  });
  facts.catch(() => {}); // the core awaits facts after the data; a rejection before that must not crash
  return { name, kind: 'command', extension: options.extension, data, facts };
}

function describeExit(info: ExitInfo): string {
  const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.exitCode}`;
  return `the command ${how}${tailOf(info)}`;
}

function tailOf(info: ExitInfo): string {
  const tail = info.stderrTail.trim();
  return tail ? `: ${tail}` : '';
}
