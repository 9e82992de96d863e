#!/usr/bin/env node
// Entry point: the command table, global flags, signals, and errors → exit codes in one place.
import { parseArgs } from 'node:util';
import type { Command, CommandEntry, CommandIO } from './commands/types.js';
import { ConfigError, InterruptedError, isExplainedError, LockedError, messageOf, UsageError } from './lib/errors.js';
import { ExitCode, exitCodeForError } from './lib/exit-codes.js';
import { redact } from './lib/redact.js';
import { prepareForStreaming } from './pipeline/allocator.js';
import { VERSION } from './version.js';

// Each command is imported when it runs: `backup` loads neither the dashboard nor the restore and
// drill code, and `--help` loads no command at all. test/cli.test.ts keeps the summaries in step.
const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'backup',
    summary: 'run the job now (--dry-run: preflight and plan, writes nothing)',
    streams: true,
    load: async () => (await import('./commands/backup.js')).backupCommand,
  },
  {
    name: 'list',
    summary: 'committed sets on each target, newest first',
    streams: false,
    load: async () => (await import('./commands/list.js')).listCommand,
  },
  {
    name: 'status',
    summary: 'health per target: newest verified set and its age against the RPO; exit 1 when unhealthy',
    streams: false,
    load: async () => (await import('./commands/status.js')).statusCommand,
  },
  {
    name: 'restore',
    summary: 'restore a set, a component or one path to a directory, or a database component into a database',
    streams: true,
    load: async () => (await import('./commands/restore.js')).restoreCommand,
  },
  {
    name: 'drill',
    summary: 'full restore test: fetch, verify, extract, load into a scratch database, reconcile, measure the RTO',
    streams: true,
    load: async () => (await import('./commands/drill.js')).drillCommand,
  },
  {
    name: 'verify',
    summary: 'read every object of a set back from the targets, check it and the hash chain; exit 1 on any problem',
    streams: true,
    load: async () => (await import('./commands/verify.js')).verifyCommand,
  },
  {
    name: 'prune',
    summary: "apply each target's retention: tombstone, then delete the sets no rule keeps (--dry-run: only list)",
    streams: false,
    load: async () => (await import('./commands/prune.js')).pruneCommand,
  },
  {
    name: 'ack',
    summary: 'accept an anomaly finding as the new baseline, once a human has checked it',
    streams: false,
    load: async () => (await import('./commands/ack.js')).ackCommand,
  },
  {
    name: 'runbook',
    summary: "print a set's RUNBOOK.md: its disaster-recovery steps with plain tools",
    streams: false,
    load: async () => (await import('./commands/runbook.js')).runbookCommand,
  },
  {
    name: 'config',
    summary: 'check: validate the config; schema: print its JSON Schema',
    streams: false,
    load: async () => (await import('./commands/config.js')).configCommand,
  },
  {
    name: 'schedule',
    summary: 'systemd timers (default) or cron lines for backup, verify and drill; --install writes them',
    streams: false,
    load: async () => (await import('./commands/schedule.js')).scheduleCommand,
  },
  {
    name: 'daemon',
    summary: 'run the schedule in the foreground (containers): each run a child process; SIGTERM stops it',
    streams: false,
    load: async () => (await import('./commands/daemon.js')).daemonCommand,
  },
  {
    name: 'serve',
    summary: 'read-only dashboard, /api and /metrics for one or more jobs (127.0.0.1 unless a token is set)',
    streams: false,
    load: async () => (await import('./commands/serve.js')).serveCommand,
  },
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
    const entry = COMMANDS.find((c) => c.name === global.command);
    if (global.help && !entry) {
      io.stdout.write(`${usage()}\n`);
      return ExitCode.success;
    }
    if (!entry) {
      throw new UsageError(global.command ? `unknown command ${JSON.stringify(global.command)}` : 'no command given');
    }
    if (entry.streams) prepareForStreaming();
    const command: Command = await entry.load();
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
