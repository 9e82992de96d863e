// Opens `<stateDir>/state.db`: WAL, synchronous=FULL, busy_timeout 5000, foreign keys on, and the
// schema brought up to date by migrations counted in `PRAGMA user_version`.
import { join } from 'node:path';
import { messageOf } from '../lib/errors.js';
import { openSqlite, type SqliteDatabase, SqliteError } from '../lib/sqlite.js';
import { ensurePrivateDir } from './dir.js';

const busyTimeoutMs = 5000;

/**
 * Migration N (1-based) takes the schema from user_version N-1 to N, in one transaction.
 * Append only: a released migration is never edited, because databases out there already ran it.
 */
const migrations: readonly string[] = [
  `
  CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    command TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT CHECK (status IN ('success', 'warning', 'failure', 'abandoned')),
    exit_code INTEGER,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    bytes INTEGER CHECK (bytes >= 0),
    report TEXT,
    CHECK ((finished_at IS NULL) = (status IS NULL))
  ) STRICT;
  CREATE INDEX runs_by_job ON runs (job, started_at);

  CREATE TABLE steps (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    target TEXT,
    component TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'warning', 'failed', 'skipped')),
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    message TEXT,
    evidence TEXT
  ) STRICT;
  CREATE INDEX steps_by_run ON steps (run_id);

  CREATE TABLE components (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    target TEXT NOT NULL,
    set_id TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    object TEXT NOT NULL,
    bytes INTEGER NOT NULL CHECK (bytes >= 0),
    sha256 TEXT NOT NULL,
    raw_bytes INTEGER NOT NULL CHECK (raw_bytes >= 0),
    raw_sha256 TEXT NOT NULL,
    files INTEGER CHECK (files >= 0),
    tables TEXT
  ) STRICT;
  CREATE INDEX components_by_run ON components (run_id);
  CREATE INDEX components_by_set ON components (target, set_id);

  CREATE TABLE object_verifications (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    target TEXT NOT NULL,
    set_id TEXT NOT NULL,
    object TEXT NOT NULL,
    bytes INTEGER NOT NULL CHECK (bytes >= 0),
    sha256 TEXT NOT NULL,
    level TEXT NOT NULL,
    verified_at TEXT NOT NULL
  ) STRICT;
  CREATE INDEX object_verifications_by_set ON object_verifications (target, set_id, object);
  CREATE INDEX object_verifications_by_run ON object_verifications (run_id);

  CREATE TABLE chain_heads (
    job TEXT NOT NULL,
    target TEXT NOT NULL,
    set_id TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    committed_at TEXT NOT NULL,
    PRIMARY KEY (job, target)
  ) STRICT;
  `,
  // Anomalies: each backup run's check, its findings, and the acks that accept a finding as the new
  // baseline (src/state/anomaly-store.ts).
  `
  CREATE TABLE anomaly_checks (
    run_id INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    job TEXT NOT NULL,
    set_id TEXT NOT NULL,
    set_started_at TEXT NOT NULL,
    checked_at TEXT NOT NULL,
    history_source TEXT NOT NULL,
    history_sets INTEGER NOT NULL CHECK (history_sets >= 0)
  ) STRICT;
  CREATE INDEX anomaly_checks_by_job ON anomaly_checks (job, set_id);

  CREATE TABLE anomaly_findings (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES anomaly_checks (run_id) ON DELETE CASCADE,
    job TEXT NOT NULL,
    set_id TEXT NOT NULL,
    finding_id TEXT NOT NULL,
    level TEXT NOT NULL CHECK (level IN ('warning', 'failure')),
    metric TEXT NOT NULL,
    component TEXT NOT NULL,
    table_name TEXT,
    baseline INTEGER NOT NULL CHECK (baseline >= 0),
    value INTEGER NOT NULL CHECK (value >= 0),
    baseline_sets INTEGER NOT NULL CHECK (baseline_sets >= 0),
    change_bp INTEGER,
    message TEXT NOT NULL,
    UNIQUE (run_id, finding_id)
  ) STRICT;
  CREATE INDEX anomaly_findings_by_set ON anomaly_findings (job, set_id);

  CREATE TABLE anomaly_acks (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    finding_id TEXT NOT NULL,
    finding_set_id TEXT NOT NULL,
    set_id TEXT NOT NULL,
    set_started_at TEXT NOT NULL,
    acked_at TEXT NOT NULL,
    acked_by TEXT,
    UNIQUE (job, finding_id, finding_set_id, set_id)
  ) STRICT;
  `,
  // Notifications: every delivery attempt per channel (the repeat rule reads it; status lists the
  // undelivered). src/state/notification-store.ts.
  `
  CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    run_id INTEGER REFERENCES runs (id) ON DELETE SET NULL,
    at TEXT NOT NULL,
    ok INTEGER NOT NULL CHECK (ok IN (0, 1)),
    attempts INTEGER NOT NULL CHECK (attempts >= 0),
    subject TEXT NOT NULL,
    error TEXT,
    CHECK ((ok = 1) = (error IS NULL))
  ) STRICT;
  CREATE INDEX notifications_by_channel ON notifications (job, channel, at);
  `,
];

/** The user_version of a database this build has migrated. */
export const schemaVersion = migrations.length;

/**
 * Opens (creating if needed) the state database of `stateDir`, ready to use. `readonly`: opens an
 * existing database only to read it (the dashboard), never creating, configuring or migrating it.
 */
export function openDatabase(
  stateDir: string,
  options: { readonly?: boolean } = {},
): { db: SqliteDatabase; path: string } {
  if (options.readonly === true) return openForReading(join(stateDir, 'state.db'));
  const path = join(ensurePrivateDir(stateDir), 'state.db');
  let db: SqliteDatabase;
  try {
    db = openSqlite(path, { timeout: busyTimeoutMs });
  } catch (error) {
    throw new Error(`cannot open the state database ${path}: ${messageOf(error)}`, { cause: error });
  }
  try {
    configure(db, path);
    migrate(db, path);
  } catch (error) {
    db.close();
    if (!(error instanceof SqliteError)) throw error; // ours already name the file
    const damaged = /^SQLITE_(NOTADB|CORRUPT)/.test(error.code);
    throw new Error(
      `cannot prepare the state database ${path}: ${messageOf(error)}` +
        (damaged ? '; move it aside to start a new history (it is a cache: targets keep every set)' : ''),
      { cause: error },
    );
  }
  return { db, path };
}

function openForReading(path: string): { db: SqliteDatabase; path: string } {
  let db: SqliteDatabase;
  try {
    db = openSqlite(path, { timeout: busyTimeoutMs, readonly: true });
  } catch (error) {
    throw new Error(`cannot open the state database ${path} to read it: ${messageOf(error)}`, { cause: error });
  }
  try {
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    const found = db.pragma('user_version', { simple: true }) as number;
    if (found !== schemaVersion) {
      throw new Error(
        `the state database ${path} has schema version ${found}, but this backproof reads version ${schemaVersion}: ` +
          (found < schemaVersion ? 'run `backproof status` once with this version to upgrade it' : 'upgrade backproof'),
      );
    }
  } catch (error) {
    db.close();
    throw error;
  }
  return { db, path };
}

function configure(db: SqliteDatabase, path: string): void {
  db.pragma(`busy_timeout = ${busyTimeoutMs}`);
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  if (mode !== 'wal')
    throw new Error(`the state database ${path} could not switch to WAL (journal_mode is ${String(mode)})`);
  // After WAL: switching to WAL resets synchronous to this build's WAL default (NORMAL), which
  // can lose the last commits on power loss.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
}

function migrate(db: SqliteDatabase, path: string): void {
  const version = (): number => db.pragma('user_version', { simple: true }) as number;
  const found = version();
  if (found > schemaVersion) {
    throw new Error(
      `the state database ${path} has schema version ${found}, newer than this backproof knows (${schemaVersion}): ` +
        'upgrade backproof (or move the database aside to start a new history; targets keep every set)',
    );
  }
  // IMMEDIATE takes the write lock first, so of two processes opening a new database at once, one
  // migrates and the other waits, then sees the new version and does nothing.
  const step = db.transaction((): boolean => {
    const current = version();
    const migration = migrations[current];
    if (migration === undefined) return false;
    db.exec(migration);
    db.pragma(`user_version = ${current + 1}`);
    return true;
  });
  while (step.immediate()) {
    // one migration per transaction, until none is left
  }
}
