// The `sqlite` source: a consistent online copy of a live database (WAL or rollback journal, with
// other processes writing), never a raw file copy. `VACUUM INTO` runs in one read transaction, so
// the copy is one snapshot: every transaction is in it entirely or not at all. The copy is checked
// (`PRAGMA quick_check`), its rows counted per table, then streamed and deleted.
//
// SQLite's Node drivers are synchronous (lib/sqlite.ts: node:sqlite or better-sqlite3), and VACUUM
// INTO of a big database takes minutes. It runs in a child Node process, through the same adapter,
// rather than a worker thread: a worker cannot be stopped in the middle of a native call
// (terminate() waits until SQLite returns, and neither driver has an interrupt), while a child dies
// at once on abort, and a crash in native code cannot take the run down with it.
import { createReadStream } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { addAbortSignal, Readable } from 'node:stream';
import { messageOf, SourceError } from '../lib/errors.js';
import { type CaptureResult, runCapture, toCommandError } from '../lib/exec.js';
import { sqliteChildSetup } from '../lib/sqlite.js';
import type { ComponentFacts, ComponentStream, PreflightFinding, Source, SourceContext } from './types.js';

export interface SqliteSourceOptions {
  /** Source name, also the component name. */
  name: string;
  /** The database file. */
  path: string;
  /**
   * Milliseconds to wait for a lock held by a writer before giving up (busy_timeout). Default 60000.
   * In rollback-journal mode the copy holds a shared lock while it runs, so writers wait for it too.
   */
  busyTimeout?: number;
}

const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');
const DEFAULT_BUSY_TIMEOUT_MS = 60_000;

export function createSqliteSource(options: SqliteSourceOptions): Source {
  return {
    name: options.name,
    type: 'sqlite',
    check: async () => checkDatabase(options),
    estimateRawBytes: async () => (await sizeOf(options.path)) + (await sizeOf(`${options.path}-wal`)),
    async *components(ctx: SourceContext): AsyncIterable<ComponentStream> {
      yield await snapshotComponent(options, ctx);
    },
  };
}

async function checkDatabase(options: SqliteSourceOptions): Promise<PreflightFinding[]> {
  const problem = await describeFileProblem(options.path);
  if (problem) return [{ fatal: true, message: `source ${options.name}: ${problem}` }];
  return [];
}

/** Why `file` cannot be a SQLite database to copy, or undefined when it looks like one. */
async function describeFileProblem(file: string): Promise<string | undefined> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `database file ${file} does not exist; check the source's path`;
    if (code === 'EACCES') return `database file ${file} is not readable by this user`;
    return `cannot open database file ${file}: ${messageOf(error)}`;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) return `${file} is not a regular file; point path at the database file`;
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(SQLITE_HEADER.length), 0, SQLITE_HEADER.length, 0);
    if (bytesRead === 0) return `${file} is empty (0 bytes), so it holds no database; check the source's path`;
    if (bytesRead < SQLITE_HEADER.length || !buffer.equals(SQLITE_HEADER)) {
      return `${file} is not a SQLite database (it does not start with "SQLite format 3")`;
    }
    return undefined;
  } finally {
    await handle.close();
  }
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}

/** What the snapshot child reports on stdout, as one JSON document. */
type SnapshotReply =
  | { ok: true; version: string; quickCheck: string[]; tables: Record<string, number>; warnings: string[] }
  | { ok: false; code: string | null; message: string };

async function snapshotComponent(options: SqliteSourceOptions, ctx: SourceContext): Promise<ComponentStream> {
  const copyPath = path.join(ctx.scratchDir, `${options.name}.sqlite`);
  const component = { name: options.name, kind: 'sqlite', extension: 'sqlite' } as const;
  try {
    const problem = await describeFileProblem(options.path);
    if (problem) throw new SourceError(options.name, problem);
    await rm(copyPath, { force: true }); // VACUUM INTO refuses to overwrite
    ctx.log.debug('sqlite snapshot: VACUUM INTO', { source: options.name, path: options.path, copy: copyPath });
    const result = await runSnapshotChild(options, copyPath, ctx.signal);
    ctx.signal.throwIfAborted();
    const facts = factsFrom(options, result);
    return { ...component, ...streamCopy(options.name, copyPath, facts, ctx) };
  } catch (error) {
    await rm(copyPath, { force: true });
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const failure =
      error instanceof SourceError ? error : new SourceError(options.name, messageOf(error), { cause: error });
    return { ...component, ...failedStreams(failure) };
  }
}

function runSnapshotChild(options: SqliteSourceOptions, copyPath: string, signal: AbortSignal): Promise<CaptureResult> {
  const adapter = sqliteChildSetup();
  return runCapture(process.execPath, [...adapter.execArgv, '--input-type=module', '-e', SNAPSHOT_SCRIPT], {
    signal,
    maxOutputBytes: 64 * 1024 * 1024,
    killGraceMs: 1000,
    env: {
      ...adapter.env,
      BACKPROOF_SQLITE_SOURCE: options.path,
      BACKPROOF_SQLITE_COPY: copyPath,
      BACKPROOF_SQLITE_BUSY_MS: String(options.busyTimeout ?? DEFAULT_BUSY_TIMEOUT_MS),
    },
  });
}

function factsFrom(options: SqliteSourceOptions, result: CaptureResult): ComponentFacts {
  const fail = (message: string, cause?: unknown): never => {
    throw new SourceError(options.name, message, { cause });
  };
  let reply: SnapshotReply | undefined;
  try {
    reply = JSON.parse(result.stdout) as SnapshotReply;
  } catch {
    reply = undefined;
  }
  if (!reply) {
    return fail('the snapshot process failed before it could report', toCommandError('sqlite snapshot', result));
  }
  if (!reply.ok) return fail(describeSqliteError(options, reply.code, reply.message));
  if (reply.quickCheck.length !== 1 || reply.quickCheck[0] !== 'ok') {
    const problems = reply.quickCheck.slice(0, 5).join('; ');
    return fail(`the copy of ${options.path} failed PRAGMA quick_check (${problems}); the database may be corrupt`);
  }
  return { tables: reply.tables, warnings: reply.warnings, dumpTool: `SQLite ${reply.version} VACUUM INTO` };
}

function describeSqliteError(options: SqliteSourceOptions, code: string | null, message: string): string {
  const file = options.path;
  switch (code) {
    case 'SQLITE_NOTADB':
      return `${file} is not a SQLite database (SQLite says: ${message})`;
    case 'SQLITE_BUSY':
    case 'SQLITE_LOCKED':
      return `${file} stayed locked by another process for longer than ${options.busyTimeout ?? DEFAULT_BUSY_TIMEOUT_MS} ms; try again later or raise busyTimeout`;
    case 'SQLITE_CORRUPT':
      return `${file} is corrupt (SQLite says: ${message}); restore it from an earlier backup`;
    case 'SQLITE_CANTOPEN':
      return `cannot open ${file} or write the copy to the scratch directory (SQLite says: ${message})`;
    case 'SQLITE_FULL':
      return `the scratch directory is full while copying ${file} (SQLite says: ${message})`;
    default:
      return `copying ${file} failed: ${message}${code ? ` (${code})` : ''}`;
  }
}

/** Streams the checked copy; it is deleted when the stream ends or fails, and only then do the facts resolve. */
function streamCopy(
  source: string,
  copyPath: string,
  facts: ComponentFacts,
  ctx: SourceContext,
): Pick<ComponentStream, 'data' | 'facts'> {
  const data = addAbortSignal(ctx.signal, createReadStream(copyPath, { highWaterMark: 1024 * 1024 }));
  const settled = new Promise<ComponentFacts>((resolve, reject) => {
    let ended = false;
    data.once('end', () => {
      ended = true;
    });
    data.once('close', () => {
      const outcome = ended
        ? facts
        : new SourceError(source, 'the copy was not read to the end', { cause: data.errored ?? undefined });
      rm(copyPath, { force: true }).then(
        () => (outcome instanceof Error ? reject(ctx.signal.aborted ? ctx.signal.reason : outcome) : resolve(outcome)),
        (error: unknown) => reject(new SourceError(source, `cannot delete the copy ${copyPath}: ${messageOf(error)}`)),
      );
    });
  });
  settled.catch(() => {}); // the core awaits facts after the data; a rejection before that must not crash
  return { data, facts: settled };
}

/** A component that could not be produced: its data errors when read, its facts reject. */
function failedStreams(error: SourceError): Pick<ComponentStream, 'data' | 'facts'> {
  const data = new Readable({
    read() {
      this.destroy(error);
    },
  });
  const facts = Promise.reject(error);
  facts.catch(() => {});
  return { data, facts };
}

// Runs in a child `node --input-type=module -e`. Reads its inputs from the environment and answers
// with one JSON document on stdout; SQLite errors are answered, not thrown, so the parent can
// explain them.
const SNAPSHOT_SCRIPT = String.raw`
const sourcePath = process.env.BACKPROOF_SQLITE_SOURCE;
const copyPath = process.env.BACKPROOF_SQLITE_COPY;
const busyMs = Number(process.env.BACKPROOF_SQLITE_BUSY_MS);
const reply = (value) => process.stdout.write(JSON.stringify(value));
try {
  const { openSqlite } = await import(process.env.BACKPROOF_SQLITE_ADAPTER);
  // Read-only: the copy never writes to the live database. One statement = one read transaction = one snapshot.
  const source = openSqlite(sourcePath, { readonly: true, timeout: busyMs });
  try {
    source.prepare('VACUUM INTO ?').run(copyPath);
  } finally {
    source.close();
  }
  const copy = openSqlite(copyPath, { readonly: true });
  try {
    const quickCheck = copy.pragma('quick_check').map((row) => String(row.quick_check));
    const schema = copy
      .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
      .all();
    const tables = {};
    const warnings = [];
    for (const { name, sql } of schema) {
      const quoted = '"' + name.replaceAll('"', '""') + '"';
      try {
        tables['main.' + name] = copy.prepare('SELECT count(*) FROM main.' + quoted).pluck().get();
      } catch (error) {
        // A virtual table whose module is not compiled in cannot be read; its shadow tables are counted.
        if (!/^\s*CREATE\s+VIRTUAL\s+TABLE/i.test(sql ?? '')) throw error;
        warnings.push('rows of virtual table main.' + name + ' not counted: ' + error.message);
      }
    }
    const version = copy.prepare('SELECT sqlite_version()').pluck().get();
    reply({ ok: true, version, quickCheck, tables, warnings });
  } finally {
    copy.close();
  }
} catch (error) {
  reply({ ok: false, code: typeof error.code === 'string' ? error.code : null, message: String(error.message) });
  process.exitCode = 1;
}
`;
