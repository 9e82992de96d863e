// The database loader contract: what restore and drill need from a MariaDB or PostgreSQL server to
// load a plain SQL dump (a database component, decompressed) into a database and check the result.
// Loaders run the servers' own clients (`mariadb`, `psql`); passwords reach them through the
// environment (MYSQL_PWD, PGPASSWORD), never argv.
import type { Readable } from 'node:stream';
import { OperationError } from '../../lib/errors.js';

export type DatabaseKind = 'mariadb' | 'postgres';

/** Where to load: the server, and the account to use. */
export interface DatabaseConnection {
  kind: DatabaseKind;
  host: string;
  port: number;
  /** MariaDB: the Unix socket file; PostgreSQL: the socket directory. When set, host and port are not used. */
  socket?: string;
  user: string;
  /** Already read from its file or variable (see lib/secrets.ts). */
  password?: string;
}

export interface LoadOptions {
  /** Aborting stops the client; a PostgreSQL load then leaves the database as it was. */
  signal: AbortSignal;
  /**
   * Drills: statements that only give objects to accounts the server lacks (or that this user may
   * not act for) are filtered out and listed in {@link LoadReport.skipped}, instead of failing the
   * load. PostgreSQL: `ALTER … OWNER TO`, `GRANT`/`REVOKE`, `ALTER DEFAULT PRIVILEGES`, `CREATE
   * POLICY … TO`, `SET SESSION AUTHORIZATION` blocks. MariaDB: `DEFINER=` clauses of views,
   * triggers, routines and events are rewritten to `DEFINER=CURRENT_USER`.
   * Without it (a real restore), such a statement fails the load with advice to restore the
   * roles (postgres-globals) or users (`<source>.users`) component first.
   */
  tolerateMissingRoles: boolean;
}

/** What a successful load left out or wants a human to know. */
export interface LoadReport {
  /** Statements skipped or rewritten, each with why, e.g. `ALTER TABLE public.t OWNER TO app (role "app" does not exist …)`. */
  skipped: string[];
  warnings: string[];
}

export interface DatabaseLoader {
  readonly kind: DatabaseKind;
  /** For messages: `mariadb 127.0.0.1:13306 as drill`. Never holds a password. */
  describe(): string;
  /** The client tool is installed, the server answers and accepts the account. */
  check(signal: AbortSignal): Promise<{ serverVersion: string }>;
  exists(db: string, signal: AbortSignal): Promise<boolean>;
  /**
   * True when `db` holds nothing a dump would collide with. MariaDB: no table, view, sequence,
   * routine, trigger or event. PostgreSQL: no relation, routine or type in a non-system schema,
   * no schema besides `public`, no extension besides plpgsql.
   */
  isEmpty(db: string, signal: AbortSignal): Promise<boolean>;
  /** Creates an empty database (PostgreSQL: from template0, owned by this user). Fails if it exists. */
  create(db: string, signal: AbortSignal): Promise<void>;
  /** Drops the database if it exists (PostgreSQL 13+: ending other sessions connected to it). */
  dropIfExists(db: string, signal: AbortSignal): Promise<void>;
  /** Names of the databases that start with `prefix` (e.g. drill leftovers), sorted. */
  listDatabases(prefix: string, signal: AbortSignal): Promise<string[]>;
  /**
   * Loads a plain SQL dump (the decompressed component) into `db`. The dump must be complete (its
   * tool's trailer last) or the load fails. MariaDB stops at the first error (statements before it
   * stay loaded); PostgreSQL loads in one transaction, so a failed load leaves `db` as it was.
   */
  load(db: string, sql: Readable, options: LoadOptions): Promise<LoadReport>;
  /**
   * Rows per table of `db`, keyed like the manifest's `tables` of the component that was dumped from
   * `originalDatabase`: MariaDB `<originalDatabase>.<table>`, PostgreSQL `<schema>.<table>`
   * (`originalDatabase` unused). Only what the sources list: base tables (MariaDB), ordinary tables
   * and leaf partitions (PostgreSQL). See {@link databaseOfComponent} in index.ts.
   */
  countRows(db: string, signal: AbortSignal, originalDatabase: string): Promise<Record<string, number>>;
  /** The first column of the first row of `sql` run in `db`, as text; null for SQL NULL or no row. */
  queryScalar(db: string, sql: string, signal: AbortSignal): Promise<string | null>;
}

/** One table whose rows differ: `expected` null when the manifest lacks it, `actual` null when the database does. */
export interface RowDifference {
  table: string;
  expected: number | null;
  actual: number | null;
}

/** A database server refused, or a load failed. The message names the server and says what to do. */
export class DatabaseError extends OperationError {
  override name = 'DatabaseError';
  /** `mariadb 127.0.0.1:13306 as drill`. */
  readonly server: string;
  constructor(server: string, message: string, options: { cause?: unknown } = {}) {
    super(`${server}: ${message}`, options);
    this.server = server;
  }
}
