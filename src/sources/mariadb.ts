// The `mariadb` source (MariaDB, also MySQL): one plain-SQL component per database, streamed from
// mariadb-dump (or mysqldump on a MySQL-only host) in one transaction (--single-transaction), and
// without --databases, so the dump never names its database and loads into any: `mariadb NEWDB < dump`.
//
// Nothing is taken on trust. While the dump streams through, mariadb-rows.ts counts the rows of
// every table and checks the tool's trailer; the tool's exit code and stderr are judged; and the
// tables, views and routines the dump holds are compared with what the server lists, because
// mariadb-dump silently leaves out routines the account may not read. Any doubt fails the component.
//
// Component names: `<source>.<database>`, the database name percent-encoded (UTF-8 bytes outside
// [A-Za-z0-9_-] become %XX, reversible with decodeURIComponent). A database named `users` becomes
// `%75sers`, so it can never collide with `<source>.users`, the users-and-grants component.
// The password reaches children only as MYSQL_PWD in their environment, never in argv.
import { pipeline, Readable } from 'node:stream';
import type { MariadbSourceConfig } from '../config/schema.js';
import { messageOf, SourceError } from '../lib/errors.js';
import { type ExitInfo, processStream, runCapture, toCommandError, whichProgram } from '../lib/exec.js';
import { isSecretFileExposed, readSecret } from '../lib/secrets.js';
import {
  CLIENT_CONNECTION_ERRORS,
  CONNECT_TIMEOUT_SECONDS,
  ER_ACCESS_DENIED,
  ER_CANNOT_USER,
  ER_DBACCESS_DENIED,
  ER_NO_SUCH_TABLE,
  ER_NONEXISTING_GRANT,
  ER_SPECIFIC_ACCESS_DENIED,
  ER_TABLEACCESS_DENIED,
  MAX_ALLOWED_PACKET,
} from './mariadb-codes.js';
import { DumpFormatError, type DumpSummary, DumpValidator } from './mariadb-rows.js';
import type { ComponentFacts, ComponentStream, PreflightFinding, Source, SourceContext } from './types.js';

/** Databases that are the server's own: never dumped as databases (users and grants have their own component). */
const SYSTEM_DATABASES = new Set(['information_schema', 'performance_schema', 'mysql', 'sys']);
/** A dump tool is stopped this long after SIGTERM with SIGKILL (it normally dies on SIGTERM at once). */
const KILL_GRACE_MS = 1000;

export function createMariadbSource(config: MariadbSourceConfig): Source {
  return {
    name: config.name,
    type: 'mariadb',
    check: (ctx) => checkSource(config, ctx),
    estimateRawBytes: (ctx) => estimateBytes(config, ctx),
    async *components(ctx: SourceContext): AsyncIterable<ComponentStream> {
      const session = await openSession(config, ctx.signal);
      const databases = await selectDatabases(session, ctx.signal);
      const users = await planUsers(session, ctx.signal);
      for (const [index, database] of databases.entries()) {
        // The users warning rides on the first component, so that it reaches the run's warnings.
        const warnings = index === 0 && users.warning ? [users.warning] : [];
        yield await databaseComponent(session, database, warnings, ctx);
      }
      if (users.dump) yield usersComponent(session, ctx);
    },
  };
}

// ── names ────────────────────────────────────────────────────────────────────────────────────

/** The database part of a component name: UTF-8 bytes outside [A-Za-z0-9_-] as %XX; `users` as `%75sers`. */
export function encodeDatabaseName(database: string): string {
  if (database === 'users') return '%75sers';
  let out = '';
  for (const byte of Buffer.from(database, 'utf8')) {
    const safe =
      (byte >= 0x30 && byte <= 0x39) ||
      (byte >= 0x41 && byte <= 0x5a) ||
      (byte >= 0x61 && byte <= 0x7a) ||
      byte === 0x5f ||
      byte === 0x2d;
    out += safe ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The inverse of {@link encodeDatabaseName}. */
export function decodeDatabaseName(encoded: string): string {
  return decodeURIComponent(encoded);
}

export function componentNameFor(source: string, database: string): string {
  return `${source}.${encodeDatabaseName(database)}`;
}

// ── tools and connections ────────────────────────────────────────────────────────────────────

interface DumpTool {
  path: string;
  /** `mariadb-dump` or `mysqldump`, as found on PATH. */
  program: string;
  flavor: 'mariadb' | 'mysql';
  /** The server release it comes from, e.g. `10.11.19`. */
  version: string;
  /** For facts: `mariadb-dump 10.11.19`. */
  label: string;
}

interface Session {
  config: MariadbSourceConfig;
  dump: DumpTool;
  /** The `mariadb` (or `mysql`) client, for queries. */
  client: string;
  /** Connection options, without the password. */
  connection: string[];
  /** What children get: MYSQL_PWD when a password is configured. */
  env: NodeJS.ProcessEnv;
  /** `127.0.0.1:3306` or `socket /run/mysqld/mysqld.sock`, for messages. */
  where: string;
  serverVersion: string;
  /** The account the server matched, as `'user'@'host'`, for GRANT hints. */
  account: string;
}

/** Reads `mariadb-dump --version` output. Exported for tests. */
export function parseDumpToolVersion(
  program: string,
  output: string,
): { flavor: 'mariadb' | 'mysql'; version: string } | undefined {
  const version =
    /Distrib\s+(\d+\.\d+\.\d+)/.exec(output)?.[1] ??
    /\bfrom\s+(\d+\.\d+\.\d+)/.exec(output)?.[1] ??
    /\bVer\s+(\d+\.\d+\.\d+)/.exec(output)?.[1];
  if (version === undefined) return undefined;
  return { flavor: /MariaDB/i.test(output) || program.startsWith('mariadb') ? 'mariadb' : 'mysql', version };
}

async function findDumpTool(source: string, signal: AbortSignal): Promise<DumpTool> {
  for (const program of ['mariadb-dump', 'mysqldump']) {
    const path = await whichProgram(program);
    if (!path) continue;
    const probe = await runCapture(path, ['--no-defaults', '--version'], { signal });
    const parsed = parseDumpToolVersion(program, probe.stdout);
    if (probe.exitCode !== 0 || !parsed) {
      throw new SourceError(
        source,
        `${path} --version did not tell its version: ${toCommandError(`${program} --version`, probe).message}`,
      );
    }
    return { path, program, ...parsed, label: `${program} ${parsed.version}` };
  }
  throw new SourceError(
    source,
    'mariadb-dump (or mysqldump) is not installed or not on PATH; install the Debian package mariadb-client',
  );
}

async function findClient(source: string): Promise<string> {
  const path = (await whichProgram('mariadb')) ?? (await whichProgram('mysql'));
  if (path) return path;
  throw new SourceError(
    source,
    'the mariadb client (or mysql) is not installed or not on PATH; install the Debian package mariadb-client',
  );
}

/** Finds the tools, reads the password and asks the server who it is. Throws a SourceError saying what is wrong. */
async function openSession(config: MariadbSourceConfig, signal: AbortSignal): Promise<Session> {
  const dump = await findDumpTool(config.name, signal);
  const client = await findClient(config.name);
  let password: string | undefined;
  try {
    password = await readSecret({ file: config.passwordFile, env: config.passwordEnv }, `source ${config.name}`);
  } catch (error) {
    throw new SourceError(config.name, messageOf(error).replace(`source ${config.name}: `, ''), { cause: error });
  }
  const connection = config.socket
    ? ['--protocol=socket', `--socket=${config.socket}`]
    : ['--protocol=tcp', `--host=${config.host}`, `--port=${config.port}`];
  connection.push(`--user=${config.user}`);
  const session: Session = {
    config,
    dump,
    client,
    connection,
    env: password === undefined ? {} : { MYSQL_PWD: password },
    where: config.socket ? `socket ${config.socket}` : `${config.host}:${config.port}`,
    serverVersion: '',
    account: `'${config.user}'@'%'`,
  };
  let rows: string[][];
  try {
    rows = await query(session, 'SELECT VERSION(), CURRENT_USER()', signal);
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    throw new SourceError(config.name, explainQueryError(session, error, password !== undefined), { cause: error });
  }
  session.serverVersion = rows[0]?.[0] ?? 'unknown';
  const current = rows[0]?.[1] ?? '';
  const at = current.lastIndexOf('@');
  if (at > 0) session.account = `'${current.slice(0, at)}'@'${current.slice(at + 1)}'`;
  return session;
}

/** A query the server (or the client) refused. */
class QueryError extends Error {
  override readonly name = 'QueryError';
  /** The server's or client's error number, e.g. 1045. */
  readonly code: number | undefined;
  constructor(message: string, code: number | undefined) {
    super(message);
    this.code = code;
  }
}

/** Runs SQL through the client; returns the rows (tab-separated fields, batch-escaped: use HEX() for names). */
async function query(session: Session, sql: string, signal: AbortSignal): Promise<string[][]> {
  const result = await runCapture(
    session.client,
    [
      '--no-defaults',
      ...session.connection,
      `--connect-timeout=${CONNECT_TIMEOUT_SECONDS}`,
      '--default-character-set=utf8mb4',
      '--batch',
      '--skip-column-names',
      '--execute',
      sql,
    ],
    { env: session.env, signal, maxOutputBytes: 64 * 1024 * 1024, killGraceMs: KILL_GRACE_MS },
  );
  if (result.exitCode !== 0) {
    const said = result.stderrTail.trim();
    const code = /ERROR (\d+)/.exec(said)?.[1];
    throw new QueryError(said || toCommandError('mariadb client', result).message, code ? Number(code) : undefined);
  }
  return result.stdout
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => line.split('\t'));
}

function explainQueryError(session: Session, error: unknown, hasPassword: boolean): string {
  const { config, where } = session;
  if (!(error instanceof QueryError)) return `cannot query the server at ${where}: ${messageOf(error)}`;
  if (error.code === ER_ACCESS_DENIED) {
    return hasPassword
      ? `the server at ${where} refused user ${config.user}: wrong password, or no such account for this client host ` +
          `(${error.message}); check the user and passwordFile/passwordEnv`
      : `the server at ${where} refused user ${config.user} without a password (${error.message}); set passwordFile or passwordEnv`;
  }
  if (error.code !== undefined && CLIENT_CONNECTION_ERRORS.has(error.code)) {
    return `cannot connect to the server at ${where} (${error.message}); is it running and listening there?`;
  }
  return `query failed on the server at ${where}: ${error.message}`;
}

function hexOf(text: string): string {
  return `X'${Buffer.from(text, 'utf8').toString('hex')}'`;
}

function fromHex(hex: string | undefined): string {
  return Buffer.from(hex ?? '', 'hex').toString('utf8');
}

// ── which databases ──────────────────────────────────────────────────────────────────────────

/** The databases to dump, sorted. Throws a SourceError when a configured one is missing or none is left. */
async function selectDatabases(session: Session, signal: AbortSignal): Promise<string[]> {
  const { config } = session;
  let rows: string[][];
  try {
    rows = await query(session, 'SELECT HEX(SCHEMA_NAME) FROM information_schema.SCHEMATA', signal);
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    throw new SourceError(config.name, explainQueryError(session, error, true), { cause: error });
  }
  const present = new Set(rows.map((row) => fromHex(row[0])));
  const excluded = new Set(config.excludeDatabases);
  let selected: string[];
  if (config.databases) {
    const missing = config.databases.filter((db) => !present.has(db));
    if (missing.length > 0) {
      throw new SourceError(
        config.name,
        `${plural(missing.length, 'database')} ${missing.join(', ')} ${missing.length === 1 ? 'does' : 'do'} not exist on ` +
          `the server at ${session.where}, or user ${config.user} has no privileges on ${missing.length === 1 ? 'it' : 'them'}; ` +
          'check the databases list',
      );
    }
    selected = [...new Set(config.databases)];
  } else {
    selected = [...present].filter((db) => !SYSTEM_DATABASES.has(db));
  }
  selected = selected.filter((db) => !excluded.has(db)).sort();
  if (selected.length === 0) {
    throw new SourceError(
      config.name,
      `no database to dump on the server at ${session.where} (user ${config.user} sees none besides the system ones, ` +
        'or all are excluded); an empty backup is not a backup',
    );
  }
  return selected;
}

function plural(count: number, word: string): string {
  return count === 1 ? word : `${word}s`;
}

/** Table names of `database` that excludeTables leaves out. */
function excludedTablesOf(config: MariadbSourceConfig, database: string): Set<string> {
  const prefix = `${database}.`;
  return new Set(config.excludeTables.filter((entry) => entry.startsWith(prefix)).map((e) => e.slice(prefix.length)));
}

// ── what the server says a database holds ────────────────────────────────────────────────────

/** What the server lists in one database (excluded tables and views left out). */
export interface Inventory {
  tables: Set<string>;
  views: Set<string>;
  /** `PROCEDURE name` / `FUNCTION name`. */
  routines: Set<string>;
}

/** Whether the account can see every routine. MariaDB before 11.3 shows others' routines only with SELECT on mysql.proc. */
type RoutineVisibility = 'mysql.proc' | 'information_schema' | 'partial';

async function routineVisibility(session: Session, signal: AbortSignal): Promise<RoutineVisibility> {
  try {
    await query(session, 'SELECT 1 FROM mysql.proc LIMIT 0', signal);
    return 'mysql.proc';
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    if (!(error instanceof QueryError)) throw error;
    // MySQL 8 has no mysql.proc (its information_schema is the data dictionary).
    if (error.code === ER_NO_SUCH_TABLE) return 'information_schema';
    if (error.code === ER_TABLEACCESS_DENIED || error.code === ER_DBACCESS_DENIED) {
      // MariaDB 11.3+ grants SHOW CREATE ROUTINE, which shows routines in information_schema too.
      return isAtLeast(session.serverVersion, [11, 3, 0]) && /MariaDB/i.test(session.serverVersion)
        ? 'information_schema'
        : 'partial';
    }
    throw error;
  }
}

function routinePrivilegeProblem(session: Session): string {
  return (
    'cannot prove that the dump holds every stored procedure and function: ' +
    `user ${session.config.user} may not read mysql.proc, and without it ${session.dump.program} silently leaves out ` +
    `routines the account cannot see; run GRANT SELECT ON mysql.proc TO ${session.account}`
  );
}

async function inventoryOf(
  session: Session,
  database: string,
  visibility: RoutineVisibility,
  signal: AbortSignal,
): Promise<Inventory> {
  const schema = hexOf(database);
  const routinesSql =
    visibility === 'mysql.proc'
      ? `SELECT 'R', type, HEX(name) FROM mysql.proc WHERE db = ${schema} AND type IN ('PROCEDURE', 'FUNCTION')`
      : `SELECT 'R', ROUTINE_TYPE, HEX(ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${schema} ` +
        "AND ROUTINE_TYPE IN ('PROCEDURE', 'FUNCTION')";
  const rows = await query(
    session,
    `SELECT CASE WHEN TABLE_TYPE = 'VIEW' THEN 'V' ELSE 'T' END, '', HEX(TABLE_NAME) FROM information_schema.TABLES ` +
      `WHERE TABLE_SCHEMA = ${schema} AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'VIEW'); ${routinesSql}`,
    signal,
  );
  const excluded = excludedTablesOf(session.config, database);
  const inventory: Inventory = { tables: new Set(), views: new Set(), routines: new Set() };
  for (const [kind, type, hex] of rows) {
    const name = fromHex(hex);
    if (kind === 'T' && !excluded.has(name)) inventory.tables.add(name);
    else if (kind === 'V' && !excluded.has(name)) inventory.views.add(name);
    else if (kind === 'R') inventory.routines.add(`${type} ${name}`);
  }
  return inventory;
}

/**
 * What differs between the dump and the server's lists, or undefined when they agree. `hint` names
 * the dump tool and the account for the GRANT advice. Exported for tests.
 */
export function compareWithServer(
  hint: { program: string; account: string },
  database: string,
  dump: DumpSummary,
  server: Inventory,
): string | undefined {
  const problems: string[] = [];
  const dumped = new Set(dump.tables.keys());
  const missingTables = [...server.tables].filter((t) => !dumped.has(t)).sort();
  const extraTables = [...dumped].filter((t) => !server.tables.has(t)).sort();
  if (missingTables.length > 0) problems.push(`tables missing from the dump: ${missingTables.join(', ')}`);
  if (extraTables.length > 0)
    problems.push(`tables in the dump that the server does not list: ${extraTables.join(', ')}`);
  const missingViews = [...server.views].filter((v) => !dump.views.has(v)).sort();
  if (missingViews.length > 0) problems.push(`views missing from the dump: ${missingViews.join(', ')}`);
  const missingRoutines = [...server.routines].filter((r) => !dump.routines.has(r)).sort();
  if (missingRoutines.length > 0) {
    problems.push(
      `routines missing from the dump: ${missingRoutines.join(', ')} (${hint.program} leaves out routines ` +
        `the account may not read; run GRANT SELECT ON mysql.proc TO ${hint.account})`,
    );
  }
  if (problems.length === 0) return undefined;
  return `the dump of database ${database} does not match what the server lists: ${problems.join('; ')}`;
}

// ── one database ─────────────────────────────────────────────────────────────────────────────

function dumpArguments(session: Session, database: string): string[] {
  const args = [
    '--no-defaults',
    ...session.connection,
    '--default-character-set=utf8mb4',
    `--max-allowed-packet=${MAX_ALLOWED_PACKET}`,
    '--single-transaction',
    '--routines',
    '--triggers',
    '--events',
    '--hex-blob',
    '--no-tablespaces',
  ];
  // MySQL's mysqldump would otherwise write SET @@GLOBAL.GTID_PURGED, which fails on load into another server.
  if (session.dump.flavor === 'mysql') args.push('--set-gtid-purged=OFF');
  for (const table of [...excludedTablesOf(session.config, database)].sort()) {
    args.push(`--ignore-table=${database}.${table}`);
  }
  // One database, no --databases: no CREATE DATABASE, no USE. `--` keeps a name starting with `-` a name.
  args.push('--', database);
  return args;
}

async function databaseComponent(
  session: Session,
  database: string,
  warnings: string[],
  ctx: SourceContext,
): Promise<ComponentStream> {
  const { config } = session;
  const name = componentNameFor(config.name, database);
  const component = { name, kind: 'mariadb', extension: 'sql' } as const;
  const fail = (why: string, cause?: unknown) =>
    new SourceError(config.name, `database ${database}: ${why}`, { cause });

  let before: Inventory;
  let visibility: RoutineVisibility;
  try {
    visibility = await routineVisibility(session, ctx.signal);
    if (visibility === 'partial') throw fail(routinePrivilegeProblem(session));
    before = await inventoryOf(session, database, visibility, ctx.signal);
  } catch (error) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const failure = error instanceof SourceError ? error : fail(explainQueryError(session, error, true), error);
    return { ...component, ...failedStreams(failure) };
  }

  ctx.log.debug('mariadb source: dumping', { source: config.name, database, tool: session.dump.label });
  const started = dumpStream(session, dumpArguments(session, database), `database ${database}`, ctx, fail);
  const validator = new DumpValidator(async (summary) => {
    const hint = { program: session.dump.program, account: session.account };
    if (compareWithServer(hint, database, summary, before) === undefined) return;
    // The lists are read before the dump starts and information_schema has no snapshot: a table
    // created or dropped in between is a race, not a loss. Ask again; the dump must match one of them.
    const after = await inventoryOf(session, database, visibility, ctx.signal);
    const problem = compareWithServer(hint, database, summary, after);
    if (problem !== undefined) throw fail(problem);
  });
  const facts = settle(validator, started, ctx, fail, (summary) => ({
    tables: tablesFacts(database, summary),
    warnings: [...warnings, ...started.stderrWarnings()],
    dumpTool: session.dump.label,
    serverVersion: session.serverVersion,
  }));
  return { ...component, data: validator, facts };
}

function tablesFacts(database: string, summary: DumpSummary): Record<string, number> {
  const tables: Record<string, number> = {};
  for (const table of [...summary.tables.keys()].sort())
    tables[`${database}.${table}`] = summary.tables.get(table) ?? 0;
  return tables;
}

interface StartedDump {
  stream: ReturnType<typeof processStream>;
  /** What the tool said on stderr although it succeeded, as warnings. */
  stderrWarnings(): string[];
}

/** Starts the dump tool; its stream fails (with a SourceError from `fail`) when it exits non-zero or writes nothing. */
function dumpStream(
  session: Session,
  args: string[],
  what: string,
  ctx: SourceContext,
  fail: (why: string, cause?: unknown) => SourceError,
): StartedDump {
  const program = session.dump.program;
  let stderrOnSuccess = '';
  const stream = processStream(session.dump.path, args, {
    display: `${program} of ${what}`,
    env: session.env,
    input: false,
    signal: ctx.signal,
    killGraceMs: KILL_GRACE_MS,
    judge: (info: ExitInfo, outputBytes: number) => {
      if (info.exitCode !== 0) {
        return fail(`${program} ${describeExit(info)}`, toCommandError(`${program} of ${what}`, info));
      }
      if (outputBytes === 0) {
        return fail(`${program} exited 0 but wrote nothing; an empty dump is not a backup${tailOf(info)}`);
      }
      stderrOnSuccess = info.stderrTail.trim();
      return undefined;
    },
  });
  return {
    stream,
    stderrWarnings: () => (stderrOnSuccess ? [`${program} succeeded but said: ${stderrOnSuccess}`] : []),
  };
}

/** Wires the dump through the validator; the facts resolve once the validator ended, or reject with why it did not. */
function settle(
  validator: DumpValidator,
  started: StartedDump,
  ctx: SourceContext,
  fail: (why: string, cause?: unknown) => SourceError,
  factsOf: (summary: DumpSummary) => ComponentFacts,
): Promise<ComponentFacts> {
  // pipeline: a failing tool fails the validator with its error; a destroyed validator stops the tool.
  pipeline(started.stream, validator, () => {});
  const facts = new Promise<ComponentFacts>((resolve, reject) => {
    let ended = false;
    validator.once('end', () => {
      ended = true;
    });
    validator.once('close', () => {
      const summary = validator.summary;
      if (ended && summary) resolve(factsOf(summary));
      else if (ctx.signal.aborted) reject(ctx.signal.reason);
      else if (validator.errored) {
        const error = validator.errored;
        if (error instanceof SourceError) reject(error);
        else if (error instanceof DumpFormatError) reject(fail(error.message, error));
        else reject(fail(messageOf(error), error));
      } else reject(fail('the dump was not read to the end; the dump tool was stopped'));
    });
  });
  facts.catch(() => {}); // the core awaits facts after the data; a rejection before that must not crash
  return facts;
}

function describeExit(info: ExitInfo): string {
  const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.exitCode}`;
  return `${how}${tailOf(info)}`;
}

function tailOf(info: ExitInfo): string {
  const tail = info.stderrTail.trim();
  return tail ? `: ${tail}` : '';
}

/** A component that could not be started: its data errors when read, its facts reject. */
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

// ── users and grants ─────────────────────────────────────────────────────────────────────────

interface UsersPlan {
  dump: boolean;
  /** Why users and grants are not captured (a warning, not a failure). */
  warning?: string;
}

async function planUsers(session: Session, signal: AbortSignal): Promise<UsersPlan> {
  const { config, dump } = session;
  if (!config.users) return { dump: false };
  const skipped = (why: string): UsersPlan => ({
    dump: false,
    warning: `users and grants were not captured: ${why} (or set users: false for source ${config.name})`,
  });
  if (dump.flavor !== 'mariadb') {
    return skipped(`${dump.label} is MySQL's, which has no --system=users; back up users and grants another way`);
  }
  if (!supportsSystemUsers(dump.version)) {
    return skipped(`${dump.label} is too old for --system=users (MariaDB 10.5.9 or later has it)`);
  }
  // SHOW CREATE USER for another account needs SELECT on the mysql database, as mariadb-dump
  // --system=users does: "no such account" means allowed, "access denied" means not.
  try {
    await query(session, "SHOW CREATE USER 'backproof-probe'@'backproof.invalid'", signal);
    return { dump: true };
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    if (error instanceof QueryError) {
      if (error.code === ER_NONEXISTING_GRANT || error.code === ER_CANNOT_USER) return { dump: true };
      if (
        error.code === ER_DBACCESS_DENIED ||
        error.code === ER_TABLEACCESS_DENIED ||
        error.code === ER_SPECIFIC_ACCESS_DENIED
      ) {
        return skipped(
          `user ${config.user} may not read the mysql database; run GRANT SELECT ON mysql.* TO ${session.account} to capture them`,
        );
      }
    }
    return skipped(`cannot tell whether user ${config.user} may read them: ${messageOf(error)}`);
  }
}

function supportsSystemUsers(version: string): boolean {
  // --system came with 10.2.37, 10.3.28, 10.4.18 and 10.5.9.
  return (
    isAtLeast(version, [10, 5, 9]) ||
    (isAtLeast(version, [10, 4, 18]) && !isAtLeast(version, [10, 5, 0])) ||
    (isAtLeast(version, [10, 3, 28]) && !isAtLeast(version, [10, 4, 0])) ||
    (isAtLeast(version, [10, 2, 37]) && !isAtLeast(version, [10, 3, 0]))
  );
}

function isAtLeast(version: string, minimum: [number, number, number]): boolean {
  const parts = (/(\d+)\.(\d+)\.(\d+)/.exec(version) ?? []).slice(1).map(Number);
  for (let i = 0; i < 3; i++) {
    const have = parts[i] ?? 0;
    const need = minimum[i] ?? 0;
    if (have !== need) return have > need;
  }
  return true;
}

function usersComponent(session: Session, ctx: SourceContext): ComponentStream {
  const { config } = session;
  const fail = (why: string, cause?: unknown) =>
    new SourceError(
      config.name,
      `users and grants: ${why} (to back up the databases without them, set users: false for this source)`,
      { cause },
    );
  const args = [
    '--no-defaults',
    ...session.connection,
    '--default-character-set=utf8mb4',
    `--max-allowed-packet=${MAX_ALLOWED_PACKET}`,
    '--system=users',
  ];
  const started = dumpStream(session, args, 'users and grants', ctx, fail);
  const validator = new DumpValidator(() => {});
  const facts = settle(validator, started, ctx, fail, () => ({
    warnings: started.stderrWarnings(),
    dumpTool: session.dump.label,
    serverVersion: session.serverVersion,
    // Password hashes: not plain passwords, but not for everyone's eyes either.
    secret: true,
  }));
  return { name: `${config.name}.users`, kind: 'mariadb', extension: 'sql', data: validator, facts };
}

// ── preflight and estimate ───────────────────────────────────────────────────────────────────

async function checkSource(config: MariadbSourceConfig, ctx: SourceContext): Promise<PreflightFinding[]> {
  const findings: PreflightFinding[] = [];
  try {
    const session = await openSession(config, ctx.signal);
    const databases = await selectDatabases(session, ctx.signal);
    const visibility = await routineVisibility(session, ctx.signal);
    if (visibility === 'partial') {
      findings.push({
        fatal: true,
        message: `source ${config.name}: databases ${databases.join(', ')}: ${routinePrivilegeProblem(session)}`,
      });
    }
    const unmatched = await unmatchedExcludes(session, ctx.signal);
    if (unmatched.length > 0) {
      findings.push({
        fatal: false,
        message:
          `source ${config.name}: excludeTables ${unmatched.join(', ')} ${unmatched.length === 1 ? 'matches' : 'match'} ` +
          'no table or view; write entries as <database>.<table>',
      });
    }
    const users = await planUsers(session, ctx.signal);
    if (users.warning) findings.push({ fatal: false, message: `source ${config.name}: ${users.warning}` });
    if (config.passwordFile && (await isSecretFileExposed(config.passwordFile))) {
      findings.push({
        fatal: false,
        message: `source ${config.name}: passwordFile ${config.passwordFile} is readable by group or others; chmod 600 it`,
      });
    }
  } catch (error) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    findings.push({ fatal: true, message: messageOf(error) });
  }
  return findings;
}

async function unmatchedExcludes(session: Session, signal: AbortSignal): Promise<string[]> {
  const entries = session.config.excludeTables;
  if (entries.length === 0) return [];
  const rows = await query(
    session,
    'SELECT HEX(TABLE_SCHEMA), HEX(TABLE_NAME) FROM information_schema.TABLES ' +
      "WHERE TABLE_SCHEMA NOT IN ('information_schema', 'performance_schema')",
    signal,
  );
  const existing = new Set(rows.map(([schema, table]) => `${fromHex(schema)}.${fromHex(table)}`));
  return entries.filter((entry) => !existing.has(entry));
}

async function estimateBytes(config: MariadbSourceConfig, ctx: SourceContext): Promise<number> {
  const session = await openSession(config, ctx.signal);
  const databases = await selectDatabases(session, ctx.signal);
  const rows = await query(
    session,
    'SELECT CAST(COALESCE(SUM(DATA_LENGTH), 0) AS UNSIGNED) FROM information_schema.TABLES ' +
      `WHERE TABLE_SCHEMA IN (${databases.map(hexOf).join(', ')})`,
    ctx.signal,
  );
  const bytes = Number(rows[0]?.[0] ?? 0);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : 0;
}
