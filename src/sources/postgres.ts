// The `postgres` source: one plain-SQL component per database (`pg_dump -Fp`, streamed), plus the
// cluster's roles and tablespaces (`pg_dumpall --globals-only`) as `<source>.globals`.
//
// Consistency: before each pg_dump, a psql session opens a REPEATABLE READ transaction, exports its
// snapshot and lists the database's tables in it; pg_dump then runs with `--snapshot`, so the dump and
// the table list describe the same instant, and every transaction is in the dump entirely or not at all.
// The dump is validated as it streams (postgres-rows.ts): exit code, non-empty, trailer last, and rows
// per table counted from its COPY blocks, which must be exactly the tables the catalog listed.
//
// Tables in the facts are `<schema>.<table>` for every table that holds rows: ordinary tables and the
// leaf partitions of partitioned tables. A partitioned parent holds no rows of its own (pg_dump writes
// no COPY block for it), so it is not listed; its rows are counted in its partitions. Views,
// materialized views (refreshed on restore) and foreign tables hold no dumped rows and are not listed.
//
// Dumps never name their database (no -C, so no CREATE DATABASE and no \connect): they load into any
// database with `psql -d NEWDB -f dump`. Ownership and privilege statements are kept.
// The password reaches the tools through PGPASSWORD in their environment, never argv.
import { pipeline, Readable } from 'node:stream';
import type { PostgresSourceConfig } from '../config/schema.js';
import { messageOf, SourceError } from '../lib/errors.js';
import {
  type ExitInfo,
  ProgramNotFoundError,
  processStream,
  runCapture,
  spawnStream,
  toCommandError,
  whichProgram,
} from '../lib/exec.js';
import { readSecret } from '../lib/secrets.js';
import {
  CLUSTER_DUMP_TRAILER,
  createPgDumpValidator,
  DATABASE_DUMP_TRAILER,
  judgeScan,
  PgDumpScanner,
  type TableName,
  tablesRecord,
} from './postgres-rows.js';
import type { ComponentFacts, ComponentStream, PreflightFinding, Source, SourceContext } from './types.js';

const CLIENT_PACKAGE = 'postgresql-client';
/** Connecting must not hang a run on an unreachable host; libpq waits forever by default. */
const CONNECT_TIMEOUT_SECONDS = '30';
/** A globals dump is small (roles, tablespaces); it is held in memory so that failing is only a warning. */
const MAX_GLOBALS_BYTES = 64 * 1024 * 1024;
const KILL_GRACE_MS = 1000;
/** Tried in order to read server-wide facts (pg_dumpall does the same), then the configured databases. */
const MAINTENANCE_DATABASES = ['postgres', 'template1'];

export function createPostgresSource(config: PostgresSourceConfig): Source {
  return {
    name: config.name,
    type: 'postgres',
    check: (ctx) => checkSource(config, ctx),
    estimateRawBytes: (ctx) => estimateRawBytes(config, ctx),
    components: (ctx) => dumpComponents(config, ctx),
  };
}

// ---------------------------------------------------------------------------------------------
// Names

/**
 * The component name part for a database: bytes outside `[A-Za-z0-9_-]` percent-encoded (UTF-8),
 * so `my db.x` → `my%20db%2Ex`; reversed by {@link decodeDatabaseName}. A database named `globals` is
 * written `%67lobals`, so it never collides with the `<source>.globals` component.
 */
export function encodeDatabaseName(database: string): string {
  const encoded = [...Buffer.from(database, 'utf8')]
    .map((b) => {
      const ch = String.fromCharCode(b);
      return /[A-Za-z0-9_-]/.test(ch) ? ch : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    })
    .join('');
  return encoded === 'globals' ? '%67lobals' : encoded;
}

export function decodeDatabaseName(part: string): string {
  return decodeURIComponent(part);
}

export function databaseComponentName(source: string, database: string): string {
  return `${source}.${encodeDatabaseName(database)}`;
}

// ---------------------------------------------------------------------------------------------
// Connections

interface Connection {
  config: PostgresSourceConfig;
  /** PGPASSWORD and friends, for every child. */
  env: NodeJS.ProcessEnv;
}

/** A psql or pg_dump failure explained for humans, with the tool's own words. */
class PostgresFailure extends Error {
  override readonly name = 'PostgresFailure';
}

async function connect(config: PostgresSourceConfig): Promise<Connection> {
  const password = await readSecret(
    { file: config.passwordFile, env: config.passwordEnv },
    `source ${config.name}: ${config.passwordFile !== undefined ? 'passwordFile' : 'passwordEnv'}`,
  );
  const env: NodeJS.ProcessEnv = { PGCONNECT_TIMEOUT: CONNECT_TIMEOUT_SECONDS };
  if (password !== undefined) env.PGPASSWORD = password;
  return { config, env };
}

/** `-d` takes a connection string when the name holds `=`: always pass one, quoted. */
function dbnameConninfo(database: string): string {
  return `dbname='${database.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function serverArgs(config: PostgresSourceConfig): string[] {
  return ['-h', config.host, '-p', String(config.port), '-U', config.user, '--no-password'];
}

function psqlArgs(config: PostgresSourceConfig, database: string): string[] {
  return ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', ...serverArgs(config), '-d', dbnameConninfo(database)];
}

function where(config: PostgresSourceConfig): string {
  return `PostgreSQL at ${config.host}:${config.port}`;
}

/** What went wrong, in words an operator can act on, from a client's stderr. */
export function explainClientError(config: PostgresSourceConfig, stderr: string, database?: string): string {
  const tail = stderr.trim().split('\n').slice(-6).join(' | ');
  const said = tail ? ` (${tail})` : '';
  const user = config.user;
  if (/password authentication failed/i.test(stderr)) {
    return `${where(config)} refused the password of user ${user}; check passwordFile/passwordEnv${said}`;
  }
  if (/no password supplied/i.test(stderr)) {
    return `${where(config)} asks for a password for user ${user}, and none is configured; set passwordFile or passwordEnv${said}`;
  }
  if (/role ".*" does not exist/i.test(stderr)) {
    return `user ${user} does not exist on ${where(config)}; create it or fix the source's user${said}`;
  }
  if (/database ".*" does not exist/i.test(stderr)) {
    return `database ${database ?? '?'} does not exist on ${where(config)}; fix databases/excludeDatabases${said}`;
  }
  if (/permission denied for database/i.test(stderr)) {
    return `user ${user} may not connect to database ${database ?? '?'}; GRANT CONNECT ON DATABASE to it${said}`;
  }
  if (/server version mismatch/i.test(stderr)) {
    const server = /server version: (\d+)/.exec(stderr)?.[1];
    const install = server ? `postgresql-client-${server}` : 'the postgresql-client package of the server version';
    return `pg_dump is older than the server and refuses to dump it; install ${install} (Debian's pg_dump wrapper then uses the newest client)${said}`;
  }
  if (/permission denied|must be owner|must be superuser|row-level security/i.test(stderr)) {
    return `user ${user} lacks privileges to dump database ${database ?? '?'}; GRANT pg_read_all_data TO ${user} (PostgreSQL 14+), or dump as the owner${said}`;
  }
  if (/no pg_hba\.conf entry/i.test(stderr)) {
    return `${where(config)} does not accept this connection (pg_hba.conf); allow user ${user} from this host${said}`;
  }
  if (
    /server closed the connection|terminating connection|connection to server was lost|server process/i.test(stderr)
  ) {
    return `the connection to ${where(config)} was lost during the dump: the server crashed, restarted or ended the session${said}`;
  }
  if (
    /could not connect|connection refused|timeout expired|could not translate host name|No such file or directory/i.test(
      stderr,
    )
  ) {
    return `cannot connect to ${where(config)}: is the server running and reachable?${said}`;
  }
  return tail || 'no error message';
}

/** Runs one query whose single row and column is JSON (`-A -t`). */
async function queryJson<T>(conn: Connection, database: string, sql: string, signal?: AbortSignal): Promise<T> {
  const result = await runCapture('psql', [...psqlArgs(conn.config, database), '-c', sql], {
    env: conn.env,
    killGraceMs: KILL_GRACE_MS,
    maxOutputBytes: 64 * 1024 * 1024,
    ...(signal ? { signal } : {}),
  });
  if (result.exitCode !== 0) {
    throw new PostgresFailure(explainClientError(conn.config, result.stderrTail, database), {
      cause: toCommandError('psql', result),
    });
  }
  try {
    return JSON.parse(result.stdout) as T;
  } catch (error) {
    throw new PostgresFailure(`psql answered something that is not JSON: ${result.stdout.slice(0, 200)}`, {
      cause: error,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Server facts

interface DatabaseInfo {
  name: string;
  /** datallowconn AND NOT datistemplate */
  dumpable: boolean;
  /** The user has CONNECT on it. */
  connect: boolean;
}

interface ServerInfo {
  /** SHOW server_version, e.g. `15.18 (Debian 15.18-0+deb12u1)`. */
  version: string;
  versionNum: number;
  superuser: boolean;
  databases: DatabaseInfo[];
  /** The database the facts were read from, also used by pg_dumpall. */
  maintenanceDatabase: string;
}

const SERVER_INFO_SQL = `SELECT pg_catalog.jsonb_build_object(
  'version', pg_catalog.current_setting('server_version'),
  'versionNum', pg_catalog.current_setting('server_version_num')::int,
  'superuser', coalesce((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false),
  'databases', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
      'name', datname,
      'dumpable', datallowconn AND NOT datistemplate,
      'connect', pg_catalog.has_database_privilege(oid, 'CONNECT')) ORDER BY datname)
    FROM pg_catalog.pg_database), '[]'::jsonb))`;

// pg_database_size walks a database's files: only asked for the estimate. It needs CONNECT.
const DATABASE_SIZES_SQL = `SELECT coalesce(pg_catalog.jsonb_object_agg(datname, pg_catalog.pg_database_size(oid)), '{}'::jsonb)
  FROM pg_catalog.pg_database WHERE datallowconn AND pg_catalog.has_database_privilege(oid, 'CONNECT')`;

async function readServerInfo(conn: Connection, signal?: AbortSignal): Promise<ServerInfo> {
  const candidates = [...new Set([...MAINTENANCE_DATABASES, ...(conn.config.databases ?? [])])];
  let lastFailure: unknown;
  for (const database of candidates) {
    try {
      const info = await queryJson<Omit<ServerInfo, 'maintenanceDatabase'>>(conn, database, SERVER_INFO_SQL, signal);
      return { ...info, maintenanceDatabase: database };
    } catch (error) {
      lastFailure = error;
      const reason = messageOf(error);
      // Only a missing or forbidden database is worth another try; a wrong password is wrong everywhere.
      if (!/database .* does not exist|may not connect to database|not currently accepting connections/.test(reason)) {
        throw error;
      }
    }
  }
  throw lastFailure;
}

/** The databases to dump, in order, and the configured ones that do not exist. */
function selectDatabases(
  config: PostgresSourceConfig,
  info: ServerInfo,
): { selected: string[]; missing: string[]; forbidden: string[] } {
  const excluded = new Set(config.excludeDatabases);
  const byName = new Map(info.databases.map((d) => [d.name, d]));
  const wanted = config.databases
    ? [...new Set(config.databases)]
    : info.databases.filter((d) => d.dumpable).map((d) => d.name);
  const selected = wanted.filter((name) => !excluded.has(name));
  return {
    selected,
    missing: selected.filter((name) => !byName.has(name)),
    forbidden: selected.filter((name) => byName.get(name)?.connect === false),
  };
}

interface ToolVersion {
  /** `pg_dump 15.18` */
  label: string;
  major: number;
}

async function toolVersion(program: string, signal?: AbortSignal): Promise<ToolVersion> {
  let result: Awaited<ReturnType<typeof runCapture>>;
  try {
    result = await runCapture(program, ['--version'], signal ? { signal } : {});
  } catch (error) {
    if (error instanceof ProgramNotFoundError) throw new PostgresFailure(missingProgram(program), { cause: error });
    throw error;
  }
  const version = /\(PostgreSQL\)\s+((\d+)\S*)/.exec(result.stdout);
  if (result.exitCode !== 0 || !version) {
    // Debian's pg_wrapper without any postgresql-client-NN says so on stderr.
    const said = result.stderrTail.trim() || result.stdout.trim();
    throw new PostgresFailure(
      `\`${program} --version\` did not print a version${said ? ` (${said})` : ''}; install the Debian package ${CLIENT_PACKAGE}`,
      { cause: toCommandError(`${program} --version`, result) },
    );
  }
  return { label: `${program} ${version[1]}`, major: Number(version[2]) };
}

function missingProgram(program: string): string {
  return `${program} is not installed (or not on PATH); install the Debian package ${CLIENT_PACKAGE}`;
}

/** Major version of `server_version_num`: 150018 → 15, 90624 → 9. */
function serverMajor(versionNum: number): number {
  return Math.floor(versionNum / 10000);
}

function tooOldClient(tool: ToolVersion, info: ServerInfo): string | undefined {
  const server = serverMajor(info.versionNum);
  if (tool.major >= server) return undefined;
  return (
    `${tool.label} is older than the server (PostgreSQL ${info.version}) and refuses to dump it; ` +
    `install the Debian package postgresql-client-${server} (Debian's pg_dump wrapper then uses the newest client)`
  );
}

interface Server {
  conn: Connection;
  info: ServerInfo;
  /** pg_dump's version. */
  tool: ToolVersion;
}

/** The password read, the server asked for its facts, pg_dump's version known. */
async function reachServer(config: PostgresSourceConfig, signal: AbortSignal): Promise<Server> {
  const conn = await connect(config);
  const info = await readServerInfo(conn, signal);
  const tool = await toolVersion('pg_dump', signal);
  return { conn, info, tool };
}

// ---------------------------------------------------------------------------------------------
// Preflight and estimate

async function checkSource(config: PostgresSourceConfig, ctx: SourceContext): Promise<PreflightFinding[]> {
  const fatal = (message: string): PreflightFinding => ({ fatal: true, message: `source ${config.name}: ${message}` });
  const programs = ['pg_dump', 'psql', ...(config.globals ? ['pg_dumpall'] : [])];
  const missing: PreflightFinding[] = [];
  for (const program of programs) {
    if (!(await whichProgram(program))) missing.push(fatal(missingProgram(program)));
  }
  if (missing.length > 0) return missing;

  let server: Server;
  try {
    server = await reachServer(config, ctx.signal);
  } catch (error) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    return [fatal(messageOf(error))];
  }
  const { info, tool } = server;
  const findings: PreflightFinding[] = [];
  const old = tooOldClient(tool, info);
  if (old) findings.push(fatal(old));
  const { selected, missing: absent, forbidden } = selectDatabases(config, info);
  for (const name of absent) {
    findings.push(fatal(`database ${name} does not exist on ${where(config)}; fix databases/excludeDatabases`));
  }
  for (const name of forbidden) {
    findings.push(fatal(`user ${config.user} may not connect to database ${name}; GRANT CONNECT ON DATABASE to it`));
  }
  if (selected.length === 0) findings.push(fatal(noDatabases(config)));
  ctx.log.debug('postgres preflight', { source: config.name, server: info.version, tool: tool.label, selected });
  return findings;
}

function noDatabases(config: PostgresSourceConfig): string {
  return `there is no database to dump on ${where(config)} (databases: ${JSON.stringify(config.databases ?? 'all')}, excludeDatabases: ${JSON.stringify(config.excludeDatabases)})`;
}

async function estimateRawBytes(config: PostgresSourceConfig, ctx: SourceContext): Promise<number> {
  try {
    const conn = await connect(config);
    const info = await readServerInfo(conn, ctx.signal);
    const sizes = await queryJson<Record<string, number>>(
      conn,
      info.maintenanceDatabase,
      DATABASE_SIZES_SQL,
      ctx.signal,
    );
    return selectDatabases(config, info).selected.reduce((sum, name) => sum + (sizes[name] ?? 0), 0);
  } catch (error) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    ctx.log.warn('postgres: cannot read database sizes for the estimate', {
      source: config.name,
      error: messageOf(error),
    });
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Components

async function* dumpComponents(config: PostgresSourceConfig, ctx: SourceContext): AsyncIterable<ComponentStream> {
  const fail = (error: unknown): never => {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw error instanceof SourceError ? error : new SourceError(config.name, messageOf(error), { cause: error });
  };
  let server: Server;
  try {
    server = await reachServer(config, ctx.signal);
  } catch (error) {
    return fail(error);
  }
  const { conn, info, tool } = server;
  const old = tooOldClient(tool, info);
  if (old) return fail(new SourceError(config.name, old));
  const { selected, missing, forbidden } = selectDatabases(config, info);
  if (selected.length === 0) return fail(new SourceError(config.name, noDatabases(config)));

  // Globals first: when they cannot be had, the warning rides on the first database's facts.
  const pendingWarnings: string[] = [];
  if (config.globals) {
    const globals = await dumpGlobals(conn, info, ctx);
    if (globals.component) yield globals.component;
    else pendingWarnings.push(globals.warning);
  }

  for (const database of selected) {
    const name = databaseComponentName(config.name, database);
    if (missing.includes(database)) {
      yield failedComponent(
        name,
        new SourceError(
          config.name,
          `database ${database}: it does not exist on ${where(config)}; fix databases/excludeDatabases`,
        ),
      );
    } else if (forbidden.includes(database)) {
      yield failedComponent(
        name,
        new SourceError(
          config.name,
          `database ${database}: user ${config.user} may not connect to it; GRANT CONNECT ON DATABASE to it`,
        ),
      );
    } else {
      yield await databaseComponent({ conn, info, tool, database, name, warnings: pendingWarnings.splice(0) }, ctx);
    }
  }
}

/** A component that could not be produced: its data errors when read, its facts reject. */
function failedComponent(
  name: string,
  error: Error,
  kind: 'postgres' | 'postgres-globals' = 'postgres',
): ComponentStream {
  const data = new Readable({
    read() {
      this.destroy(error);
    },
  });
  const facts = Promise.reject(error);
  facts.catch(() => {});
  return { name, kind, extension: 'sql', data, facts };
}

// ---------------------------------------------------------------------------------------------
// One database

/** A psql session holding the snapshot pg_dump imports, and what the catalog says in it. */
interface SnapshotSession {
  snapshot: string;
  /** The database's encoding: pg_dump writes names in it. */
  encoding: string;
  tables: TableName[];
  /** Ends the transaction and the session; resolves when psql is gone. Safe to call twice. */
  close(): Promise<void>;
}

interface CatalogReply {
  snapshot: string;
  encoding: string;
  /** [schema, table] as hex bytes in the database encoding. */
  tables: [string, string][];
}

// Every table pg_dump writes rows for: ordinary tables and leaf partitions (relkind r), not temporary,
// not in system schemas, not owned by an extension unless it is one of its configuration tables.
const CATALOG_SQL = `SELECT pg_catalog.jsonb_build_object(
  'snapshot', pg_catalog.pg_export_snapshot(),
  'encoding', pg_catalog.current_setting('server_encoding'),
  'tables', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
      pg_catalog.encode(pg_catalog.convert_to(n.nspname::text, pg_catalog.current_setting('server_encoding')), 'hex'),
      pg_catalog.encode(pg_catalog.convert_to(c.relname::text, pg_catalog.current_setting('server_encoding')), 'hex')))
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND c.relpersistence <> 't'
      AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
      AND (NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                       WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e')
           OR EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE c.oid = ANY (e.extconfig)))), '[]'::jsonb));
`;

function nameDecoding(encoding: string): 'utf8' | 'latin1' {
  // Single-byte encodings keep their bytes one to one as latin1; the names only need to compare equal.
  return encoding === 'UTF8' || encoding === 'SQL_ASCII' ? 'utf8' : 'latin1';
}

async function openSnapshotSession(
  conn: Connection,
  info: ServerInfo,
  database: string,
  signal: AbortSignal,
): Promise<SnapshotSession> {
  const child = spawnStream('psql', psqlArgs(conn.config, database), {
    env: conn.env,
    signal,
    stdin: 'pipe',
    killGraceMs: KILL_GRACE_MS,
  });
  const stdin = child.stdin;
  if (!stdin) throw new Error('psql was started without stdin');
  const setup = [
    // pg_dump may run for hours; a server-wide idle timeout must not end the transaction it imports.
    ...(info.versionNum >= 90600 ? ['SET idle_in_transaction_session_timeout = 0;'] : []),
    'SET statement_timeout = 0;',
    'BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;',
    CATALOG_SQL,
  ].join('\n');
  stdin.write(`${setup}\n`);

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      stdin.end(); // psql ends the transaction (rollback) and exits at end of input
      await child.done.catch(() => undefined);
    })();
    return closed;
  };

  const line = await new Promise<Buffer | undefined>((resolve) => {
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      if (chunk.includes(0x0a)) {
        child.stdout.off('data', onData);
        child.stdout.off('end', onEnd);
        child.stdout.resume(); // anything after is not needed, but must not block psql
        const all = Buffer.concat(chunks);
        resolve(all.subarray(0, all.indexOf(0x0a)));
      }
    };
    const onEnd = (): void => resolve(undefined);
    child.stdout.on('data', onData);
    child.stdout.once('end', onEnd);
    child.stdout.on('error', () => resolve(undefined));
  });
  if (!line) {
    const exit = await child.done.catch((error: unknown) => {
      throw error instanceof ProgramNotFoundError
        ? new PostgresFailure(missingProgram('psql'), { cause: error })
        : error;
    });
    if (signal.aborted) throw signal.reason;
    throw new PostgresFailure(explainClientError(conn.config, exit.stderrTail, database), {
      cause: toCommandError('psql', exit),
    });
  }
  let reply: CatalogReply;
  try {
    reply = JSON.parse(line.toString('latin1')) as CatalogReply;
  } catch (error) {
    await close();
    throw new PostgresFailure(`psql answered something that is not JSON: ${line.toString('utf8').slice(0, 200)}`, {
      cause: error,
    });
  }
  const decoding = nameDecoding(reply.encoding);
  const decode = (hex: string) => Buffer.from(hex, 'hex').toString(decoding);
  return {
    snapshot: reply.snapshot,
    encoding: reply.encoding,
    tables: reply.tables.map(([schema, table]) => ({ schema: decode(schema), table: decode(table) })),
    close,
  };
}

/** The entries of `excludeTables` for this database: `<db>.<schema>.<table>`, or `<db>.<table>` in public. */
export function excludedTables(
  excludeTables: readonly string[],
  database: string,
): { entry: string; name: TableName }[] {
  const prefix = `${database}.`;
  return excludeTables
    .filter((entry) => entry.startsWith(prefix) && entry.length > prefix.length)
    .map((entry) => {
      const rest = entry.slice(prefix.length);
      const dot = rest.indexOf('.');
      const name =
        dot < 0 ? { schema: 'public', table: rest } : { schema: rest.slice(0, dot), table: rest.slice(dot + 1) };
      return { entry, name };
    });
}

/** A pg_dump name pattern that matches exactly this table: double quotes make every character literal. */
function exactPattern(name: TableName): string {
  const quote = (part: string) => `"${part.replace(/"/g, '""')}"`;
  return `${quote(name.schema)}.${quote(name.table)}`;
}

interface DatabaseDump {
  conn: Connection;
  info: ServerInfo;
  tool: ToolVersion;
  database: string;
  /** The component name. */
  name: string;
  /** Warnings to report with this component (e.g. globals that could not be dumped). */
  warnings: string[];
}

async function databaseComponent(dump: DatabaseDump, ctx: SourceContext): Promise<ComponentStream> {
  const { conn, info, tool, database, name } = dump;
  const { config } = conn;
  const failure = (reason: string, cause?: unknown) =>
    new SourceError(config.name, `database ${database}: ${reason}`, { cause });

  let session: SnapshotSession;
  try {
    session = await openSnapshotSession(conn, info, database, ctx.signal);
  } catch (error) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    return failedComponent(name, failure(messageOf(error), error));
  }

  const warnings = [...dump.warnings];
  const excluded = excludedTables(config.excludeTables, database);
  const isExcluded = (t: TableName) => excluded.some((e) => e.name.schema === t.schema && e.name.table === t.table);
  for (const { entry, name: table } of excluded) {
    if (!session.tables.some((t) => t.schema === table.schema && t.table === table.table)) {
      warnings.push(
        `excludeTables entry ${entry} matches no table (${table.schema}.${table.table}) in database ${database}`,
      );
    }
  }
  const expectedTables = session.tables.filter((t) => !isExcluded(t));

  const args = [
    '--format=plain',
    ...serverArgs(config),
    `--snapshot=${session.snapshot}`,
    ...excluded.map((e) => `--exclude-table=${exactPattern(e.name)}`),
    '-d',
    dbnameConninfo(database),
  ];
  let stderrOnSuccess = '';
  const dumpProcess = processStream('pg_dump', args, {
    display: `pg_dump of database ${database}`,
    input: false,
    env: conn.env,
    signal: ctx.signal,
    killGraceMs: KILL_GRACE_MS,
    judge: (exit: ExitInfo) => {
      if (exit.exitCode === 0) {
        stderrOnSuccess = exit.stderrTail.trim();
        return undefined;
      }
      const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.exitCode}`;
      return failure(
        `pg_dump ${how}: ${explainClientError(config, exit.stderrTail, database)}`,
        toCommandError('pg_dump', exit),
      );
    },
  });

  let valid: ReturnType<typeof tablesRecord> | undefined;
  const data = createPgDumpValidator({
    trailer: DATABASE_DUMP_TRAILER,
    nameEncoding: nameDecoding(session.encoding),
    what: `the pg_dump output`,
    expectedTables,
    fail: (reason) => failure(reason),
    onValid: (scan) => {
      valid = tablesRecord(scan.tables);
    },
    // pg_dump has imported the snapshot before it writes anything: the session may end now.
    onFirstBytes: () => void session.close(),
  });
  pipeline(dumpProcess, data, () => {});

  const facts = new Promise<ComponentFacts>((resolve, reject) => {
    let ended = false;
    data.once('end', () => {
      ended = true;
    });
    data.once('close', () => {
      void session.close().then(() => {
        if (ended && valid) {
          if (stderrOnSuccess) warnings.push(`pg_dump said: ${stderrOnSuccess}`);
          resolve({ tables: valid, warnings, dumpTool: tool.label, serverVersion: info.version });
        } else if (ctx.signal.aborted) {
          reject(ctx.signal.reason);
        } else {
          const error = data.errored ?? dumpProcess.errored;
          reject(
            error instanceof SourceError
              ? error
              : failure(error ? messageOf(error) : 'the dump was not read to the end; pg_dump was stopped', error),
          );
        }
      });
    });
  });
  facts.catch(() => {}); // the core awaits facts after the data; a rejection before that must not crash
  return { name, kind: 'postgres', extension: 'sql', data, facts };
}

// ---------------------------------------------------------------------------------------------
// Globals

/** Roles and tablespaces; a failure here is a warning, never a failed run. */
async function dumpGlobals(
  conn: Connection,
  info: ServerInfo,
  ctx: SourceContext,
): Promise<{ component: ComponentStream; warning?: undefined } | { component?: undefined; warning: string }> {
  const { config } = conn;
  const name = `${config.name}.globals`;
  const warn = (reason: string) => ({
    warning: `roles and tablespaces (pg_dumpall --globals-only) were not backed up: ${reason}`,
  });
  let tool: ToolVersion;
  try {
    tool = await toolVersion('pg_dumpall', ctx.signal);
  } catch (error) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    return warn(messageOf(error));
  }
  // Password hashes are only readable by superusers (pg_authid); others get roles without them.
  const args = [
    '--globals-only',
    ...(info.superuser ? [] : ['--no-role-passwords']),
    ...serverArgs(config),
    '-l',
    dbnameConninfo(info.maintenanceDatabase),
  ];
  const child = spawnStream('pg_dumpall', args, { env: conn.env, signal: ctx.signal, killGraceMs: KILL_GRACE_MS });
  const chunks: Buffer[] = [];
  let bytes = 0;
  let tooBig = false;
  const scanner = new PgDumpScanner({ trailer: CLUSTER_DUMP_TRAILER });
  child.stdout.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > MAX_GLOBALS_BYTES) {
      tooBig = true;
      child.stdout.destroy();
      return;
    }
    chunks.push(chunk);
    scanner.write(chunk);
  });
  child.stdout.on('error', () => {});
  let exit: ExitInfo;
  try {
    exit = await child.done;
  } catch (error) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    return warn(error instanceof ProgramNotFoundError ? missingProgram('pg_dumpall') : messageOf(error));
  }
  if (ctx.signal.aborted) throw ctx.signal.reason;
  if (tooBig) return warn(`its output is larger than ${MAX_GLOBALS_BYTES} bytes`);
  if (exit.exitCode !== 0) {
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.exitCode}`;
    return warn(`pg_dumpall ${how}: ${explainClientError(config, exit.stderrTail)}`);
  }
  const problem = judgeScan({ what: 'the pg_dumpall output', trailer: CLUSTER_DUMP_TRAILER }, scanner.end());
  if (problem) return warn(problem);

  const warnings = exit.stderrTail.trim() ? [`pg_dumpall said: ${exit.stderrTail.trim()}`] : [];
  const facts: ComponentFacts = {
    warnings,
    dumpTool: tool.label,
    serverVersion: info.version,
    // A superuser's globals hold the roles' password hashes.
    ...(info.superuser ? { secret: true } : {}),
  };
  return {
    component: {
      name,
      kind: 'postgres-globals',
      extension: 'sql',
      data: Readable.from(chunks, { objectMode: false }),
      facts: Promise.resolve(facts),
    },
  };
}
