// Helpers every command uses to speak: one JSON document on stdout with --json, text otherwise.
import type { Logger } from '../lib/log.js';
import { redact } from '../lib/redact.js';
import type { CommandIO } from './types.js';

/** Everything a command prints goes through here (or the reporter), so secrets are masked in one place. */
export function writeJson(io: CommandIO, document: unknown): void {
  io.stdout.write(redact(`${JSON.stringify(document, null, 2)}\n`));
}

export function writeLines(stream: NodeJS.WritableStream, lines: readonly string[]): void {
  if (lines.length > 0) stream.write(redact(`${lines.join('\n')}\n`));
}

/** Local time for humans (data stays UTC ISO). */
export function displayTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** Progress and warnings for humans on stderr (redacted); `quiet` (--json) keeps only warnings and errors. */
export function stderrLogger(io: CommandIO, quiet: boolean): Logger {
  const line = (prefix: string, message: string) => io.stderr.write(redact(`${prefix}${message}\n`));
  return {
    debug() {},
    info: (message) => {
      if (!quiet) line('', message);
    },
    warn: (message) => line('warning: ', message),
    error: (message) => line('error: ', message),
  };
}
