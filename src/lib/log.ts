// A small structured logger. The core logs through this; the CLI decides where lines go.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** A logger that drops everything (tests, `--json` runs where the reporter speaks instead). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
