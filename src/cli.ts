#!/usr/bin/env node
// Entry point: the command table, global flags, signals, and errors → exit codes in one place.
import { parseArgs } from 'node:util';
import { ackCommand } from './commands/ack.js';
import { backupCommand } from './commands/backup.js';
import { configCommand } from './commands/config.js';
import { daemonCommand } from './commands/daemon.js';
import { drillCommand } from './commands/drill.js';
import { listCommand } from './commands/list.js';
import { pruneCommand } from './commands/prune.js';
import { restoreCommand } from './commands/restore.js';
import { runbookCommand } from './commands/runbook.js';
import { scheduleCommand } from './commands/schedule.js';
import { serveCommand } from './commands/serve.js';
import { statusCommand } from './commands/status.js';
import type { Command, CommandIO } from './commands/types.js';
import { verifyCommand } from './commands/verify.js';
import { ConfigError, InterruptedError, isExplainedError, LockedError, messageOf, UsageError } from './lib/errors.js';
import { ExitCode, exitCodeForError } from './lib/exit-codes.js';
import { redact } from './lib/redact.js';
import { VERSION } from './version.js';

const COMMANDS: readonly Command[] = [
  backupCommand,
  listCommand,
  statusCommand,
  restoreCommand,
  drillCommand,
  verifyCommand,
  pruneCommand,
  ackCommand,
  runbookCommand,
  configCommand,
  scheduleCommand,
  daemonCommand,
  serveCommand,
];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `backproof ${VERSION}: backups that are proven, never assumed.`,
    '',
    'usage: backproof [--config FILE] COMMAND [--json]',
    '  config file: --config FILE, else $BACKPROOF_CONFIG, else ./backproof.yml',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'exit codes: 0 success, 1 failure, 2 usage or config error, 3 success with warnings, 75 locked, 130 interrupted',
    'With --json, stdout holds exactly one JSON document; human text goes to stderr.',
  ].join('\n');
}

interface Global {
  config: string | undefined;
  json: boolean;
  help: boolean;
  version: boolean;
  command: string | undefined;
  rest: string[];
}

/** Global flags may stand anywhere; the first other word is the command. */
function splitGlobal(argv: readonly string[]): Global {
  const global: Global = { config: undefined, json: false, help: false, version: false, command: undefined, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--json') global.json = true;
    else if (arg === '--help' || arg === '-h') global.help = true;
    else if (arg === '--version' || arg === '-V') global.version = true;
    else if (arg === '--config' || arg === '-c') {
      const value = argv[++i];
      if (value === undefined) throw new UsageError('--config needs a file name');
      global.config = value;
    } else if (arg.startsWith('--config=')) global.config = arg.slice('--config='.length);
    else if (global.command === undefined && !arg.startsWith('-')) global.command = arg;
    else global.rest.push(arg);
  }
  return global;
}

export async function main(argv: readonly string[], io: CommandIO): Promise<number> {
  let json = argv.includes('--json');
  try {
    const global = splitGlobal(argv);
    json = global.json;
    if (global.version) {
      io.stdout.write(json ? `${JSON.stringify({ version: VERSION })}\n` : `backproof ${VERSION}\n`);
      return ExitCode.success;
    }
    const command = COMMANDS.find((c) => c.name === global.command);
    if (global.help && !command) {
      io.stdout.write(`${usage()}\n`);
      return ExitCode.success;
    }
    if (!command) {
      throw new UsageError(global.command ? `unknown command ${JSON.stringify(global.command)}` : 'no command given');
    }
    if (global.help) {
      io.stdout.write(`${command.usage}\n  ${command.summary}\n`);
      return ExitCode.success;
    }
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({ args: global.rest, options: command.options, allowPositionals: true, strict: true });
    } catch (error) {
      throw new UsageError(`${messageOf(error)}\nusage: ${command.usage}`);
    }
    return await command.run(
      {
        values: parsed.values as Record<string, string | boolean | string[] | undefined>,
        positionals: parsed.positionals,
        json,
        config: global.config,
      },
      io,
    );
  } catch (error) {
    const exitCode = exitCodeForError(error);
    report(error, exitCode, json, io);
    return exitCode;
  }
}

function report(error: unknown, exitCode: number, json: boolean, io: CommandIO): void {
  const known =
    error instanceof ConfigError ||
    error instanceof UsageError ||
    error instanceof LockedError ||
    error instanceof InterruptedError ||
    isExplainedError(error);
  if (json) {
    const document: Record<string, unknown> = {
      error: { type: (error as Error)?.name ?? 'Error', message: messageOf(error) },
      exitCode,
    };
    if (error instanceof ConfigError) (document.error as Record<string, unknown>).problems = error.problems;
    if (error instanceof LockedError) (document.error as Record<string, unknown>).holder = error.holder ?? null;
    io.stdout.write(redact(`${JSON.stringify(document, null, 2)}\n`));
  }
  if (error instanceof UsageError) {
    io.stderr.write(`backproof: ${error.message}\n\n${usage()}\n`);
  } else if (known) {
    io.stderr.write(redact(`backproof: ${messageOf(error)}\n`));
  } else {
    // Unexpected: the full report, so the person paged can file it.
    io.stderr.write(
      redact(
        `backproof: unexpected error, please report it: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      ),
    );
  }
}

/** Wires the real process: signals abort the run cleanly; a second signal exits at once. */
async function run(): Promise<void> {
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) process.exit(ExitCode.interrupted);
    process.stderr.write(`\nbackproof: ${signal} received, stopping cleanly (send it again to exit at once)\n`);
    controller.abort(new InterruptedError(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const exitCode = await main(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    signal: controller.signal,
  });
  process.exitCode = controller.signal.aborted ? ExitCode.interrupted : exitCode;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
}

await run();
