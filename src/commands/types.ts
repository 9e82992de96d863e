// The shape of a command: declarative, with the core doing the work.
import type { ParseArgsConfig } from 'node:util';

export interface CommandIO {
  /** Results: the one JSON document with --json, human output otherwise. */
  stdout: NodeJS.WritableStream;
  /** Human progress and messages; never parsed. */
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
}

export interface CommandArgs {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** Global flags. */
  json: boolean;
  config: string | undefined;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** Returns the exit code. Throws ConfigError/UsageError/LockedError for the CLI to map. */
  run(args: CommandArgs, io: CommandIO): Promise<number>;
}

/**
 * A line of the command table: what `backproof --help` shows, and how to load the command. Commands
 * are imported only when they run, so a run loads only its own dependencies (startup time, and a
 * smaller heap for the garbage collector to walk while gigabytes stream through).
 */
export interface CommandEntry {
  name: string;
  /** The command's own `summary`, repeated here for the help text (a test keeps the two equal). */
  summary: string;
  /** Streams object data (backup, restore, verify, drill): the process is tuned for that first. */
  streams: boolean;
  load(): Promise<Command>;
}
