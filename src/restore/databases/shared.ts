// Small pieces both loaders use.
import { once } from 'node:events';
import { type Duplex, Writable } from 'node:stream';
import type { DatabaseConnection } from './types.js';

/** `mariadb 127.0.0.1:13306 as drill`, `postgres socket /run/postgresql as drill`. */
export function describeConnection(connection: DatabaseConnection): string {
  const where = connection.socket ? `socket ${connection.socket}` : `${connection.host}:${connection.port}`;
  return `${connection.kind} ${where} as ${connection.user}`;
}

/** A database name both servers could hold: not empty, no NUL byte. Throws a plain Error otherwise. */
export function checkDatabaseName(db: string): void {
  if (db.length === 0) throw new Error('a database name cannot be empty');
  if (db.includes('\0')) throw new Error(`the database name ${JSON.stringify(db)} contains a NUL character`);
}

/** A sink for a client's stdout, which nobody reads but must be consumed. */
export function discard(): Writable {
  return new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
}

/** The last `count` non-empty lines of what a client said, joined with ` | ` (for one-line messages). */
export function lastLines(text: string, count = 6): string {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .slice(-count)
    .join(' | ');
}

/** Statements in reports are shown on one line, shortened. */
export function oneLine(statement: string, limit = 200): string {
  const flat = statement.replace(/\s+/g, ' ').trim();
  return flat.length > limit ? `${flat.slice(0, limit - 1)}…` : flat;
}

/** Long lists in a report: the first `limit` entries and a count of the rest. */
export function capList(entries: string[], limit = 200): string[] {
  if (entries.length <= limit) return entries;
  return [...entries.slice(0, limit), `… and ${entries.length - limit} more`];
}

/**
 * Resolves once a client's stream has closed, i.e. the client has exited: a failed or aborted
 * pipeline settles at its first error, and a load must not return while its client still runs.
 */
export async function gone(stream: Duplex): Promise<void> {
  if (stream.closed) return;
  const closed = once(stream, 'close').catch(() => {});
  stream.destroy();
  await closed;
}
