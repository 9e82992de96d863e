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
