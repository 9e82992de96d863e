// The job lock: one `backup`, `prune` or `drill` of a job at a time, taken before anything else.
//
// How it works: `<stateDir>/locks/<job>.lock` is an empty SQLite file. The holder keeps a
// connection open inside `BEGIN EXCLUSIVE`, which is an fcntl() byte-range lock. The kernel drops
// it when the process ends in any way, kill -9 included, so there is no stale lock to remove by
// hand and no pid to test for liveness (hence no pid-reuse mistakes). `<job>.lock.json` names the
// holder, for the message of whoever finds the lock taken. The files stay after release: deleting
// a lock file races with a process that has just opened it.
//
// `<job>.lock.gate` is a second lock, held for milliseconds around taking, releasing and
// inspecting the lock. Under the gate, "the lock is taken" and "the holder file is the holder's"
// are the same fact, so:
//  - a run that finds the lock taken names the real holder: never a dead run's leftover file,
//    never nothing because the winner has not written its file yet;
//  - inspectJobLock may probe the lock (a shared lock for microseconds) without ever making a
//    starting run fail: a starter waits for the gate instead of meeting the probe.
//
// Inside one process, SQLite tracks locks per file across connections, so a second acquire in
// the same process fails with LockedError just like one from another process.
// Hazard: fcntl() locks belong to the process, and closing ANY descriptor of the lock file drops
// them all. Nothing in this process may open `<stateDir>/locks/*.lock` with node:fs (SQLite itself
// is careful about this); a files source must not read the state directory.
//
// NFS and SMB are not supported: their byte-range locks are unreliable (an NFS server restart or
// a lost lease can silently drop them). ensurePrivateDir refuses them on Linux.
import { existsSync, readFileSync, renameSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ensurePrivateDir } from '../state/dir.js';
import { ConfigError, LockedError, type LockHolder, messageOf } from './errors.js';
import { openSqlite, type SqliteDatabase, type SqliteOpenOptions } from './sqlite.js';

export interface JobLock {
  readonly holder: LockHolder;
  /** Drops the lock. Idempotent. Never throws: the lock also goes when the process ends. */
  release(): void;
}

export interface AcquireOptions {
  /** The clock for the holder's startedAt. Default: the system clock. */
  now?: () => Date;
}

/** Longest wait for the gate; another process holds it only for milliseconds. */
const gateWaitMs = 5000;

interface LockPaths {
  lock: string;
  gate: string;
  holder: string;
  holderTemp: string;
}

/** Takes the job's lock or throws LockedError naming the holder. Does not wait for the holder. */
export function acquireJobLock(stateDir: string, job: string, command: string, options: AcquireOptions = {}): JobLock {
  const paths = lockPaths(stateDir, job, { create: true });
  return withGate(paths, job, () => {
    const connection = lockExclusively(paths.lock, 0); // busy timeout 0: never wait for a holder
    if (!connection) throw new LockedError(job, readHolder(paths.holder));
    const holder: LockHolder = {
      pid: process.pid,
      host: hostname(),
      startedAt: (options.now?.() ?? new Date()).toISOString(),
      command,
    };
    try {
      writeHolder(paths, holder);
    } catch (error) {
      connection.close();
      throw new Error(`cannot write the lock holder file ${paths.holder}: ${messageOf(error)}; check the disk`, {
        cause: error,
      });
    }
    return heldLock(paths, job, holder, connection);
  });
}

/**
 * Whether the job's lock is held right now, and by whom. Never takes the lock itself and never
 * makes a starting run fail (see the gate above). Creates nothing when the job was never locked.
 */
export function inspectJobLock(stateDir: string, job: string): { held: boolean; holder?: LockHolder } {
  const paths = lockPaths(stateDir, job, { create: false });
  if (!existsSync(paths.lock)) return { held: false };
  try {
    return withGate(paths, job, () => {
      if (!isLockTaken(paths.lock)) return { held: false };
      const holder = readHolder(paths.holder);
      return holder ? { held: true, holder } : { held: true };
    });
  } catch (error) {
    // The gate stayed busy: someone is stuck taking or releasing the lock (e.g. SIGSTOPped).
    if (error instanceof LockedError) return { held: true };
    throw error;
  }
}

function lockPaths(stateDir: string, job: string, options: { create: boolean }): LockPaths {
  checkJobName(job);
  const dir = join(stateDir, 'locks');
  if (options.create) {
    ensurePrivateDir(stateDir);
    ensurePrivateDir(dir);
  }
  const lock = join(dir, `${job}.lock`);
  return { lock, gate: `${lock}.gate`, holder: `${lock}.json`, holderTemp: `${lock}.json.tmp` };
}

/** The job name becomes a file name; the config schema should already forbid these. */
function checkJobName(job: string): void {
  if (job === '' || job === '.' || job === '..' || /[/\\\0]/.test(job) || Buffer.byteLength(job) > 200) {
    throw new ConfigError(
      `job name ${JSON.stringify(job)} cannot be used as a lock file name: use letters, digits, '.', '_' and '-'`,
    );
  }
}

/** Runs `fn` holding the job's gate. Throws LockedError when the gate stays busy. */
function withGate<T>(paths: LockPaths, job: string, fn: () => T): T {
  const gate = lockExclusively(paths.gate, gateWaitMs);
  if (!gate) throw new LockedError(job, undefined);
  try {
    return fn();
  } finally {
    gate.close(); // ends the transaction, which drops the gate
  }
}

/**
 * An open connection inside `BEGIN EXCLUSIVE` on `file`, waiting at most `waitMs` for others;
 * undefined when they still hold it. The file stays empty: nothing is ever written to it.
 */
function lockExclusively(file: string, waitMs: number): SqliteDatabase | undefined {
  for (let attempt = 1; ; attempt++) {
    const connection = openLockFile(file, { timeout: waitMs });
    try {
      // The open transaction is what holds the lock. No `locking_mode = EXCLUSIVE`: it would keep
      // every lock the connection ever took, and two waiters for the gate could deadlock.
      connection.pragma('journal_mode = MEMORY'); // no -journal file next to it, ever
      connection.exec('BEGIN EXCLUSIVE');
      return connection;
    } catch (error) {
      connection.close();
      if (isBusy(error)) return undefined;
      // Something overwrote the empty file. SQLite reports that only after it got its shared
      // lock, so nobody holds this lock: empty the file and try once more. (truncateSync opens
      // the file with node:fs; that is safe here only because this process holds no lock on it.)
      if (isNotADatabase(error) && attempt === 1) {
        truncateSync(file);
        continue;
      }
      throw new Error(`cannot take the lock ${file}: ${messageOf(error)}`, { cause: error });
    }
  }
}

/** A shared-lock probe: fails with SQLITE_BUSY only while someone holds the exclusive lock. */
function isLockTaken(file: string): boolean {
  const probe = openLockFile(file, { readonly: true, timeout: 0 });
  try {
    probe.pragma('schema_version');
    return false;
  } catch (error) {
    if (isBusy(error)) return true;
    if (isNotADatabase(error)) return false; // see lockExclusively: not held; the next acquire repairs it
    throw new Error(`cannot inspect the job lock ${file}: ${messageOf(error)}`, { cause: error });
  } finally {
    probe.close(); // SQLite keeps this process's other locks on the file: it defers the close
  }
}

function openLockFile(file: string, options: SqliteOpenOptions): SqliteDatabase {
  try {
    return openSqlite(file, options);
  } catch (error) {
    throw new Error(`cannot open the lock file ${file}: ${messageOf(error)}; check the state directory's permissions`, {
      cause: error,
    });
  }
}

function heldLock(paths: LockPaths, job: string, holder: LockHolder, connection: SqliteDatabase): JobLock {
  let released = false;
  const drop = (): void => {
    try {
      removeFile(paths.holder); // first, while the lock is still ours
    } catch {
      // Harmless if it stays: a holder file is only read while the lock is taken, and the next
      // holder replaces it.
    }
    connection.close();
  };
  return {
    holder,
    release() {
      if (released) return;
      released = true;
      try {
        withGate(paths, job, drop);
      } catch {
        // The gate stayed busy: release anyway. The worst case is that a run starting this very
        // moment names no holder in its message.
      } finally {
        if (connection.open) drop();
      }
    },
  };
}

function writeHolder(paths: LockPaths, holder: LockHolder): void {
  // One fixed temporary name is safe: only the gate's holder writes it.
  writeFileSync(paths.holderTemp, `${JSON.stringify(holder)}\n`, { mode: 0o600 });
  renameSync(paths.holderTemp, paths.holder);
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const value: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (typeof value !== 'object' || value === null) return undefined;
    const { pid, host, startedAt, command } = value as Record<string, unknown>;
    if (typeof pid !== 'number' || typeof host !== 'string') return undefined;
    if (typeof startedAt !== 'string' || typeof command !== 'string') return undefined;
    return { pid, host, startedAt, command };
  } catch {
    return undefined; // missing or unreadable: the error message just names no holder
  }
}

function removeFile(file: string): void {
  try {
    unlinkSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

function isBusy(error: unknown): boolean {
  return /^SQLITE_(BUSY|LOCKED)/.test(sqliteCode(error));
}

function isNotADatabase(error: unknown): boolean {
  return /^SQLITE_(NOTADB|CORRUPT)/.test(sqliteCode(error));
}

function sqliteCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}
