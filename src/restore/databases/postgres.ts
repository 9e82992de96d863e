// The PostgreSQL loader: `psql`, fed a plain pg_dump stream on stdin.
//
// A load is `psql -X -v ON_ERROR_STOP=1 --single-transaction -f -`: the first error stops it and
// rolls everything back, so a failed load leaves the database as it was. The dump is checked on the
// way in (postgres-rows.ts: COPY data not cut short, trailer last, no \connect); if it is not
// complete, psql is killed before it sees the end of its input, so it never commits a partial load.
// When missing roles are tolerated (drills), ownership and privilege statements for roles the server
// lacks, or that this user may not act as, are filtered out (postgres-roles.ts) and reported.
//
// Names: databases are double-quoted identifiers in SQL, `dbname='…'` connection strings for -d,
// and hex-decoded literals in queries. The password reaches psql only as PGPASSWORD.
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { messageOf } from '../../lib/errors.js';
import { type ExitInfo, ProgramNotFoundError, processStream, runCapture, whichProgram } from '../../lib/exec.js';
import { createPgDumpValidator, DATABASE_DUMP_TRAILER } from '../../sources/postgres-rows.js';
import { type RoleFacts, RoleStatementFilter, type SkippedStatement } from './postgres-roles.js';
import { capList, checkDatabaseName, describeConnection, discard, gone, lastLines } from './shared.js';
import { type DatabaseConnection, DatabaseError, type DatabaseLoader, type LoadReport } from './types.js';

const CLIENT_PACKAGE = 'postgresql-client';
/** libpq waits forever for an unreachable host by default. */
const CONNECT_TIMEOUT_SECONDS = '30';
const KILL_GRACE_MS = 2000;
/** Where server-wide statements run (CREATE/DROP DATABASE), tried in order, as pg_dumpall does. */
const MAINTENANCE_DATABASES = ['postgres', 'template1'];

/** The dump is not complete; psql was stopped before it could commit. */
class IncompleteDump extends Error {
  override readonly name = 'IncompleteDump';
}

/** psql said no; `stderr` is what it said. */
class PsqlFailure extends Error {
  override readonly name = 'PsqlFailure';
  readonly stderr: string;
  constructor(info: ExitInfo) {
    const said = lastLines(info.stderrTail);
    super(said || (info.signal ? `psql was killed by ${info.signal}` : `psql exited with code ${info.exitCode}`));
    this.stderr = info.stderrTail;
  }
}

interface ServerFacts {
  version: string;
  versionNum: number;
}

export function createPostgresLoader(connection: DatabaseConnection): DatabaseLoader {
  const server = describeConnection(connection);
  const env: NodeJS.ProcessEnv = {
    PGCONNECT_TIMEOUT: CONNECT_TIMEOUT_SECONDS,
    // Names and values come back in UTF-8 whatever the database's encoding (a dump sets its own).
    PGCLIENTENCODING: 'UTF8',
    PGAPPNAME: 'backproof',
  };
  if (connection.password !== undefined) env.PGPASSWORD = connection.password;
  const serverArgs = [
    '-h',
    connection.socket ?? connection.host,
    '-p',
    String(connection.port),
    '-U',
    connection.user,
    '--no-password',
  ];
  const fail = (message: string, cause?: unknown) => new DatabaseError(server, message, { cause });

  /** Runs psql with `args` (after the connection options); returns stdout or rejects with a PsqlFailure. */
  const psql = async (
    database: string,
    args: string[],
    signal: AbortSignal,
    extraEnv: NodeJS.ProcessEnv = {},
  ): Promise<string> => {
    const result = await runCapture(
      'psql',
      ['-X', '-q', '-v', 'ON_ERROR_STOP=1', ...serverArgs, '-d', conninfo(database), ...args],
      { env: { ...env, ...extraEnv }, signal, killGraceMs: KILL_GRACE_MS, maxOutputBytes: 64 * 1024 * 1024 },
    ).catch((error: unknown) => {
      if (error instanceof ProgramNotFoundError) {
        throw fail(`psql is not installed or not on PATH; install the Debian package ${CLIENT_PACKAGE}`, error);
      }
      throw error;
    });
    signal.throwIfAborted();
    if (result.exitCode !== 0) throw new PsqlFailure(result);
    return result.stdout;
  };

  /** One query whose single value is JSON. */
  const queryJson = async <T>(
    database: string,
    sql: string,
    signal: AbortSignal,
    extraEnv?: NodeJS.ProcessEnv,
  ): Promise<T> => {
    const out = await psql(database, ['-A', '-t', '-c', sql], signal, extraEnv);
    try {
      return JSON.parse(out) as T;
    } catch (error) {
      throw fail(`psql answered something that is not JSON: ${out.slice(0, 200)}`, error);
    }
  };

  /** A query in the maintenance database (postgres, else template1). */
  const maintenance = async <T>(sql: string, signal: AbortSignal): Promise<T> => {
    let last: unknown;
    for (const database of MAINTENANCE_DATABASES) {
      try {
        return await queryJson<T>(database, sql, signal);
      } catch (error) {
        last = error;
        if (
          !(error instanceof PsqlFailure) ||
          !/database ".*" does not exist|permission denied for database/.test(error.message)
        ) {
          throw error;
        }
      }
    }
    throw last;
  };

  /** A failure explained; `doing` names the step, `privilegeHint` says what to grant. */
  const explain = (error: unknown, doing: string, privilegeHint?: string): unknown => {
    if (!(error instanceof PsqlFailure)) return error;
    const said = error.message;
    const user = connection.user;
    if (/password authentication failed/i.test(said)) {
      return fail(
        `the server refused the password of user ${user}; check its passwordFile/passwordEnv (${said})`,
        error,
      );
    }
    if (/no password supplied/i.test(said)) {
      return fail(
        `the server wants a password for user ${user}, and none is configured; set passwordFile or passwordEnv (${said})`,
        error,
      );
    }
    if (/FATAL:.*role ".*" does not exist/i.test(said)) {
      return fail(`user ${user} does not exist on this server; create it or fix the configured user (${said})`, error);
    }
    if (/no pg_hba\.conf entry/i.test(said)) {
      return fail(
        `the server does not accept this connection (pg_hba.conf); allow user ${user} from this host (${said})`,
        error,
      );
    }
    if (
      /could not connect|connection refused|timeout expired|could not translate host name|No such file or directory|server closed the connection/i.test(
        said,
      )
    ) {
      return fail(`cannot connect (${said}); is the server running and reachable?`, error);
    }
    if (privilegeHint && /permission denied|must be owner|must be superuser|must be a member/i.test(said)) {
      return fail(`${doing}: user ${user} lacks the privilege (${said}); ${privilegeHint}`, error);
    }
    return fail(`${doing} failed: ${said}`, error);
  };

  let facts: Promise<ServerFacts> | undefined;
  const serverFacts = (signal: AbortSignal): Promise<ServerFacts> => {
    facts ??= maintenance<ServerFacts>(
      `SELECT pg_catalog.jsonb_build_object('version', pg_catalog.current_setting('server_version'),
         'versionNum', pg_catalog.current_setting('server_version_num')::int)`,
      signal,
    ).catch((error: unknown) => {
      facts = undefined;
      throw explain(error, 'asking the server for its version');
    });
    return facts;
  };

  const databaseName = (db: string): string => {
    try {
      checkDatabaseName(db);
    } catch (error) {
      throw fail(messageOf(error));
    }
    return db;
  };

  const createHint = `ALTER ROLE ${quoteIdentifier(connection.user)} CREATEDB (drills need it), or use a role that may create databases`;

  return {
    kind: 'postgres',
    describe: () => server,

    async check(signal) {
      if (!(await whichProgram('psql'))) {
        throw fail(`psql is not installed or not on PATH; install the Debian package ${CLIENT_PACKAGE}`);
      }
      return { serverVersion: (await serverFacts(signal)).version };
    },

    async exists(db, signal) {
      const name = databaseName(db);
      try {
        return await maintenance<boolean>(
          `SELECT pg_catalog.to_jsonb(EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = ${literal(name)}))`,
          signal,
        );
      } catch (error) {
        throw explain(error, `looking for database ${name}`);
      }
    },

    async isEmpty(db, signal) {
      const name = databaseName(db);
      try {
        const objects = await queryJson<number>(name, IS_EMPTY_SQL, signal);
        return objects === 0;
      } catch (error) {
        throw explain(error, `listing what database ${name} holds`);
      }
    },

    async create(db, signal) {
      const name = databaseName(db);
      try {
        // template0: nothing a local template1 holds (extensions, tables) can collide with the dump.
        await maintenanceCommand(`CREATE DATABASE ${quoteIdentifier(name)} TEMPLATE template0`, signal);
      } catch (error) {
        throw explain(error, `creating database ${name}`, createHint);
      }
    },

    async dropIfExists(db, signal) {
      const name = databaseName(db);
      try {
        const { versionNum } = await serverFacts(signal);
        // WITH (FORCE) (13+) ends sessions still connected, e.g. of a killed drill.
        const force = versionNum >= 130000 ? ' WITH (FORCE)' : '';
        await maintenanceCommand(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)}${force}`, signal);
      } catch (error) {
        throw explain(error, `dropping database ${name}`, 'only its owner (or a superuser) may drop it');
      }
    },

    async listDatabases(prefix, signal) {
      try {
        const names = await maintenance<string[]>(
          "SELECT coalesce(pg_catalog.jsonb_agg(datname ORDER BY datname), '[]'::jsonb) FROM pg_catalog.pg_database",
          signal,
        );
        return names.filter((name) => name.startsWith(prefix)).sort();
      } catch (error) {
        throw explain(error, 'listing databases');
      }
    },

    async load(db, sql, options) {
      const skipped: SkippedStatement[] = [];
      let name: string;
      let facts: RoleFacts | undefined;
      try {
        name = databaseName(db);
        if (options.tolerateMissingRoles) facts = await roleFacts(options.signal);
      } catch (error) {
        sql.destroy(); // whatever feeds it (a decompressor) must stop too
        throw error;
      }
      const stages: NodeJS.ReadWriteStream[] = [
        createPgDumpValidator({
          trailer: DATABASE_DUMP_TRAILER,
          what: 'the dump',
          fail: (reason) => new IncompleteDump(reason),
          onValid: () => {},
        }),
      ];
      if (facts) stages.push(new RoleStatementFilter(facts, (s) => skipped.push(s)));
      const loading = processStream(
        'psql',
        ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction', ...serverArgs, '-d', conninfo(name), '-f', '-'],
        {
          display: `psql loading database ${name}`,
          input: true,
          env,
          signal: options.signal,
          killGraceMs: KILL_GRACE_MS,
          judge: (info) => (info.exitCode === 0 ? undefined : loadFailure(name, info)),
        },
      );
      try {
        await pipeline([sql, ...stages, loading, discard()], { signal: options.signal });
      } catch (error) {
        await gone(loading);
        options.signal.throwIfAborted();
        if (error instanceof DatabaseError) throw error;
        if (error instanceof ProgramNotFoundError) {
          throw fail(`psql is not installed or not on PATH; install the Debian package ${CLIENT_PACKAGE}`, error);
        }
        if (error instanceof IncompleteDump) {
          throw fail(
            `loading database ${name}: ${error.message}; psql was stopped before the end, so nothing was loaded. ` +
              'Restore from an intact copy of the set',
            error,
          );
        }
        throw fail(`loading database ${name} failed: ${messageOf(error)}; nothing was loaded`, error);
      }
      return report(skipped);
    },

    async countRows(db, signal) {
      const name = databaseName(db);
      try {
        // row_security off: a policy that would hide rows fails the count instead of shrinking it.
        const reply = await queryJson<{ encoding: string; tables: [string, string, string][] }>(
          name,
          COUNT_ROWS_SQL,
          signal,
          {
            PGOPTIONS: '-c row_security=off',
          },
        );
        const decoding = reply.encoding === 'UTF8' || reply.encoding === 'SQL_ASCII' ? 'utf8' : 'latin1';
        const decode = (hex: string) => Buffer.from(hex, 'hex').toString(decoding);
        const counts: Record<string, number> = {};
        for (const [schema, table, rows] of reply.tables) {
          const count = Number(rows);
          if (!Number.isSafeInteger(count) || count < 0)
            throw new Error(`count(*) of ${decode(schema)}.${decode(table)} gave ${rows}`);
          counts[`${decode(schema)}.${decode(table)}`] = count;
        }
        return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      } catch (error) {
        throw explain(error, `counting the rows of database ${name}`);
      }
    },

    async queryScalar(db, sqlText, signal) {
      const name = databaseName(db);
      // Unaligned, NUL-separated (no text value holds a NUL), NULL shown as a marker no value can be.
      const marker = `\u0001null-${randomBytes(8).toString('hex')}\u0001`;
      try {
        const out = await psql(name, ['-A', '-t', '-z', '-0', '-P', `null=${marker}`, '-c', sqlText], signal);
        return firstUnalignedField(out, marker);
      } catch (error) {
        throw explain(error, `running ${JSON.stringify(sqlText)} in database ${name}`);
      }
    },
  };

  /** CREATE/DROP DATABASE cannot run in a transaction: one plain command in the maintenance database. */
  async function maintenanceCommand(sql: string, signal: AbortSignal): Promise<void> {
    let last: unknown;
    for (const database of MAINTENANCE_DATABASES) {
      try {
        await psql(database, ['-c', sql], signal);
        return;
      } catch (error) {
        last = error;
        if (
          !(error instanceof PsqlFailure) ||
          !/database ".*" does not exist|permission denied for database/.test(error.message)
        ) {
          throw error;
        }
      }
    }
    throw last;
  }

  async function roleFacts(signal: AbortSignal): Promise<RoleFacts> {
    const { versionNum } = await serverFacts(signal);
    // Owner changes need membership (PostgreSQL 16+: the SET option of it).
    const option = versionNum >= 160000 ? 'SET' : 'MEMBER';
    try {
      const reply = await maintenance<{ user: string; superuser: boolean; roles: Record<string, boolean> }>(
        `SELECT pg_catalog.jsonb_build_object('user', current_user,
           'superuser', coalesce((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false),
           'roles', coalesce((SELECT pg_catalog.jsonb_object_agg(rolname, pg_catalog.pg_has_role(current_user, oid, '${option}'))
                              FROM pg_catalog.pg_roles), '{}'::jsonb))`,
        signal,
      );
      return { user: reply.user, superuser: reply.superuser, roles: new Map(Object.entries(reply.roles)), server };
    } catch (error) {
      throw explain(error, 'listing the roles of the server');
    }
  }

  /** Why a load failed, from psql's stderr (`psql:<stdin>:12: ERROR:  …`). Nothing was committed. */
  function loadFailure(db: string, info: ExitInfo): DatabaseError {
    const failure = new PsqlFailure(info);
    const said = failure.message;
    const doing = `loading database ${db}`;
    const nothing = 'nothing was loaded (the load is one transaction)';
    const missingRole = /ERROR:\s+role "((?:[^"]|"")*)" does not exist/.exec(said)?.[1];
    if (missingRole !== undefined) {
      return fail(
        `${doing}: the dump gives objects or privileges to role "${missingRole}", which does not exist on this server; ` +
          `${nothing}. Restore the roles first (the set's postgres-globals component, <source>.globals), ` +
          `or create the role, then load again (${said})`,
      );
    }
    const foreignRole = /must be (?:a )?member of role "((?:[^"]|"")*)"|must be able to SET ROLE "((?:[^"]|"")*)"/.exec(
      said,
    );
    if (foreignRole) {
      return fail(
        `${doing}: user ${connection.user} may not give objects to role "${foreignRole[1] ?? foreignRole[2]}"; ${nothing}. ` +
          `Load as a superuser or a member of that role (${said})`,
      );
    }
    if (/ERROR:.*already exists/.test(said)) {
      return fail(
        `${doing}: the database already holds objects the dump creates; ${nothing}. Load into an empty database (${said})`,
      );
    }
    if (/ERROR:\s+(permission denied|must be owner|must be superuser)/.test(said)) {
      return fail(
        `${doing}: user ${connection.user} lacks a privilege the dump needs; ${nothing}. ` +
          `Load as the database owner or a superuser (${said})`,
      );
    }
    if (/extension ".*" is not available|could not open extension control file/.test(said)) {
      return fail(
        `${doing}: the dump needs an extension this server lacks; ${nothing}. Install it on the server (${said})`,
      );
    }
    const explained = explain(failure, doing);
    if (explained instanceof DatabaseError && !/failed: /.test(explained.message)) return explained;
    return fail(`${doing} failed; ${nothing} (${said})`);
  }
}

function report(skipped: SkippedStatement[]): LoadReport {
  return { skipped: capList(skipped.map((s) => `${s.statement} — skipped: ${s.reason}`)), warnings: [] };
}

/** A `-d` argument: a connection string, so a name holding `=` is never taken for one. */
function conninfo(database: string): string {
  return `dbname='${database.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** `name` as a double-quoted identifier. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** A text literal that no quoting rule can break: UTF-8 bytes in hex, decoded by the server. */
function literal(text: string): string {
  return `pg_catalog.convert_from(pg_catalog.decode('${Buffer.from(text, 'utf8').toString('hex')}', 'hex'), 'UTF8')`;
}

/** Non-system schemas: everything a dump can create lives in them. */
const USER_SCHEMA = "n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'";

const IS_EMPTY_SQL = `SELECT
  (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE ${USER_SCHEMA})
  + (SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE ${USER_SCHEMA})
  + (SELECT count(*) FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
       WHERE ${USER_SCHEMA} AND t.typrelid = 0)
  + (SELECT count(*) FROM pg_catalog.pg_namespace n WHERE ${USER_SCHEMA} AND n.nspname <> 'public')
  + (SELECT count(*) FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql')`;

// The tables the postgres source lists (src/sources/postgres.ts CATALOG_SQL): ordinary tables and
// leaf partitions, not temporary, not in system schemas, not owned by an extension unless they are
// one of its configuration tables; names as hex bytes in the server encoding, as the source reads them.
const COUNT_ROWS_SQL = `SELECT pg_catalog.jsonb_build_object(
  'encoding', pg_catalog.current_setting('server_encoding'),
  'tables', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
      pg_catalog.encode(pg_catalog.convert_to(n.nspname::text, pg_catalog.current_setting('server_encoding')), 'hex'),
      pg_catalog.encode(pg_catalog.convert_to(c.relname::text, pg_catalog.current_setting('server_encoding')), 'hex'),
      (pg_catalog.xpath('/row/c/text()', pg_catalog.query_to_xml(
         pg_catalog.format('SELECT count(*) AS c FROM ONLY %I.%I', n.nspname, c.relname), false, true, '')))[1]::text))
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND c.relpersistence <> 't'
      AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
      AND (NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                       WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e')
           OR EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE c.oid = ANY (e.extconfig)))), '[]'::jsonb))`;

/**
 * The first field of the first row of `psql -A -t -z -0 -P null=MARKER` output (fields and rows
 * end with NUL); null for NULL (the marker) or no row. Exported for tests.
 */
export function firstUnalignedField(output: string, nullMarker: string): string | null {
  if (output.length === 0) return null;
  const end = output.indexOf('\0');
  const field = end === -1 ? output : output.slice(0, end);
  return field === nullMarker ? null : field;
}
