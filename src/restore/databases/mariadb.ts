// The MariaDB (and MySQL) loader: the `mariadb` client, fed a mariadb-dump stream on stdin.
//
// A load is `mariadb --binary-mode --database=DB` without --force, so the first error stops it (the
// statements before it stay: MariaDB DDL cannot be rolled back; restore and drill load into a new
// database and drop it on failure). On the way in, the dump is checked to be complete (mariadb-dump's
// trailer last, no statement cut short: mariadb-rows.ts) and its DEFINER clauses are looked at
// (mariadb-definers.ts): a view, trigger, routine or event that must run as an account this server
// lacks, or that this user may not name, is rewritten to DEFINER=CURRENT_USER when missing roles
// are tolerated (drills), and fails the load otherwise (a real restore must not create objects
// that fail when used).
//
// Names: databases always travel as `--database=NAME` or backtick-quoted identifiers, and as hex
// literals inside queries. The password reaches the client only as MYSQL_PWD in its environment.
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { messageOf } from '../../lib/errors.js';
import { type ExitInfo, ProgramNotFoundError, processStream, runCapture, whichProgram } from '../../lib/exec.js';
import {
  CLIENT_CONNECTION_ERRORS,
  CONNECT_TIMEOUT_SECONDS,
  ER_ACCESS_DENIED,
  ER_DBACCESS_DENIED,
  ER_NO_SUCH_TABLE,
  ER_SPECIFIC_ACCESS_DENIED,
  ER_TABLEACCESS_DENIED,
  MAX_ALLOWED_PACKET,
} from '../../sources/mariadb-codes.js';
import { DumpFormatError, DumpValidator } from '../../sources/mariadb-rows.js';
import { type Account, DefinerScanner, type DumpPiece, formatAccount } from './mariadb-definers.js';
import { capList, checkDatabaseName, describeConnection, discard, gone, lastLines } from './shared.js';
import {
  type DatabaseConnection,
  DatabaseError,
  type DatabaseLoader,
  type LoadOptions,
  type LoadReport,
} from './types.js';

const KILL_GRACE_MS = 2000;
/** Tables counted per query (a UNION ALL of COUNT(*)s). */
const COUNT_BATCH = 200;
const CLIENT_PACKAGE = 'mariadb-client';

export function createMariadbLoader(connection: DatabaseConnection): DatabaseLoader {
  const server = describeConnection(connection);
  const env: NodeJS.ProcessEnv = connection.password === undefined ? {} : { MYSQL_PWD: connection.password };
  const connectArgs = [
    '--no-defaults', // must come first: no ~/.my.cnf, no /etc/mysql settings
    ...(connection.socket
      ? ['--protocol=socket', `--socket=${connection.socket}`]
      : ['--protocol=tcp', `--host=${connection.host}`, `--port=${connection.port}`]),
    `--user=${connection.user}`,
    `--connect-timeout=${CONNECT_TIMEOUT_SECONDS}`,
    '--default-character-set=utf8mb4',
  ];
  const fail = (message: string, cause?: unknown) => new DatabaseError(server, message, { cause });

  let clientPath: Promise<string> | undefined;
  const client = (): Promise<string> => {
    clientPath ??= (async () => {
      const path = (await whichProgram('mariadb')) ?? (await whichProgram('mysql'));
      if (path) return path;
      clientPath = undefined; // installing it later must work without a restart
      throw fail(
        `the mariadb client (or mysql) is not installed or not on PATH; install the Debian package ${CLIENT_PACKAGE}`,
      );
    })();
    return clientPath;
  };

  /** Runs SQL; returns stdout. Rejects with a {@link QueryFailure}, or the abort reason. */
  const run = async (sql: string, signal: AbortSignal, extra: string[] = []): Promise<string> => {
    const path = await client();
    const result = await runCapture(path, [...connectArgs, ...extra, '--execute', sql], {
      env,
      signal,
      killGraceMs: KILL_GRACE_MS,
      maxOutputBytes: 64 * 1024 * 1024,
    }).catch((error: unknown) => {
      if (error instanceof ProgramNotFoundError)
        throw fail(`${path} cannot be run; reinstall ${CLIENT_PACKAGE}`, error);
      throw error;
    });
    signal.throwIfAborted();
    if (result.exitCode !== 0) throw QueryFailure.from(result);
    return result.stdout;
  };

  /** Rows of a `--batch --skip-column-names` query, fields split on tabs (use HEX() for names). */
  const rows = async (sql: string, signal: AbortSignal, extra: string[] = []): Promise<string[][]> => {
    const out = await run(sql, signal, ['--batch', '--skip-column-names', ...extra]);
    return out
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => line.split('\t'));
  };

  /** Turns a failure into a DatabaseError saying what to do; `doing` names the step. */
  const explain = (error: unknown, doing: string, privilegeHint?: string): unknown => {
    if (!(error instanceof QueryFailure)) return error;
    const said = error.message;
    if (error.code === ER_ACCESS_DENIED) {
      return fail(
        `the server refused user ${connection.user}: wrong password, or no such account for this client host (${said}); ` +
          'check the user and its passwordFile/passwordEnv',
        error,
      );
    }
    if (error.code !== undefined && CLIENT_CONNECTION_ERRORS.has(error.code)) {
      return fail(`cannot connect (${said}); is the server running and listening there?`, error);
    }
    if (
      privilegeHint &&
      (error.code === ER_DBACCESS_DENIED ||
        error.code === ER_TABLEACCESS_DENIED ||
        error.code === ER_SPECIFIC_ACCESS_DENIED)
    ) {
      return fail(`${doing}: user ${connection.user} lacks the privilege (${said}); ${privilegeHint}`, error);
    }
    return fail(`${doing} failed: ${said}`, error);
  };

  const databaseName = (db: string): string => {
    try {
      checkDatabaseName(db);
    } catch (error) {
      throw fail(messageOf(error));
    }
    return db;
  };

  const drillGrantHint =
    `grant it on the databases it must create, e.g. GRANT ALL ON \`backproof\\_drill\\_%\`.* TO ${connection.user} ` +
    '(drills), or use an account that may create databases';

  return {
    kind: 'mariadb',
    describe: () => server,

    async check(signal) {
      try {
        const [row] = await rows('SELECT VERSION()', signal);
        return { serverVersion: row?.[0] ?? 'unknown' };
      } catch (error) {
        throw explain(error, 'asking the server for its version');
      }
    },

    async exists(db, signal) {
      const name = databaseName(db);
      try {
        const [row] = await rows(
          `SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${hexOf(name)}`,
          signal,
        );
        return row?.[0] !== '0';
      } catch (error) {
        throw explain(error, `looking for database ${name}`);
      }
    },

    async isEmpty(db, signal) {
      const name = hexOf(databaseName(db));
      const sql =
        `SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${name}) + ` +
        `(SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${name}) + ` +
        `(SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ${name}) + ` +
        `(SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ${name})`;
      try {
        const [row] = await rows(sql, signal);
        return row?.[0] === '0';
      } catch (error) {
        throw explain(error, `listing what database ${db} holds`);
      }
    },

    async create(db, signal) {
      const name = databaseName(db);
      try {
        await run(`CREATE DATABASE ${quoteIdentifier(name)} CHARACTER SET utf8mb4`, signal);
      } catch (error) {
        throw explain(error, `creating database ${name}`, drillGrantHint);
      }
    },

    async dropIfExists(db, signal) {
      const name = databaseName(db);
      try {
        await run(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)}`, signal);
      } catch (error) {
        throw explain(error, `dropping database ${name}`, drillGrantHint);
      }
    },

    async listDatabases(prefix, signal) {
      try {
        const found = await rows('SELECT HEX(SCHEMA_NAME) FROM information_schema.SCHEMATA', signal);
        return found
          .map((row) => fromHex(row[0]))
          .filter((name) => name.startsWith(prefix))
          .sort();
      } catch (error) {
        throw explain(error, 'listing databases');
      }
    },

    async load(db, sql, options) {
      let name: string;
      let path: string;
      let definers: Awaited<ReturnType<typeof definerPolicy>>;
      try {
        name = databaseName(db);
        path = await client();
        definers = await definerPolicy(options);
      } catch (error) {
        sql.destroy(); // whatever feeds it (a decompressor) must stop too
        throw error;
      }
      const validator = new DumpValidator(() => {});
      const loading = processStream(
        path,
        [...connectArgs, `--max-allowed-packet=${MAX_ALLOWED_PACKET}`, '--binary-mode', `--database=${name}`],
        {
          display: `mariadb client loading database ${name}`,
          input: true,
          env,
          signal: options.signal,
          killGraceMs: KILL_GRACE_MS,
          judge: (info) => (info.exitCode === 0 ? undefined : loadFailure(name, info)),
        },
      );
      try {
        await pipeline(sql, validator, new DefinerFilter(definers.decide), loading, discard(), {
          signal: options.signal,
        });
      } catch (error) {
        await gone(loading);
        options.signal.throwIfAborted();
        if (error instanceof DatabaseError) throw error;
        if (error instanceof DumpFormatError) {
          throw fail(
            `loading database ${name}: the dump is not a complete mariadb-dump dump (${error.message}); ` +
              'the statements before that point were loaded. Drop the database and restore from an intact copy',
            error,
          );
        }
        throw explain(error, `loading database ${name}`);
      }
      return definers.report();
    },

    async countRows(db, signal, originalDatabase) {
      const name = databaseName(db);
      try {
        const tables = (
          await rows(
            `SELECT HEX(TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${hexOf(name)} ` +
              "AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')",
            signal,
          )
        ).map((row) => fromHex(row[0]));
        const counts: Record<string, number> = {};
        for (let start = 0; start < tables.length; start += COUNT_BATCH) {
          const batch = tables.slice(start, start + COUNT_BATCH);
          const sql = batch
            .map((table, k) => `SELECT ${k}, COUNT(*) FROM ${quoteIdentifier(name)}.${quoteIdentifier(table)}`)
            .join(' UNION ALL ');
          for (const [index, count] of await rows(sql, signal)) {
            const table = batch[Number(index)];
            if (table === undefined) throw new Error(`unexpected row ${index} from a COUNT(*) query`);
            counts[`${originalDatabase}.${table}`] = toCount(count, table);
          }
        }
        return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      } catch (error) {
        throw explain(error, `counting the rows of database ${name}`);
      }
    },

    async queryScalar(db, sqlText, signal) {
      const name = databaseName(db);
      try {
        // XML output tells NULL (xsi:nil) from the text 'NULL', which --batch does not.
        return firstXmlField(await run(sqlText, signal, [`--database=${name}`, '--xml']));
      } catch (error) {
        throw explain(error, `running ${JSON.stringify(sqlText)} in database ${name}`);
      }
    },
  };

  /** Why a load failed, from the client's stderr (`ERROR 1064 (42000) at line 12: …`). */
  function loadFailure(db: string, info: ExitInfo): DatabaseError {
    const said =
      clientSaid(info.stderrTail) || (info.signal ? `killed by ${info.signal}` : `exit code ${info.exitCode}`);
    const code = Number(/ERROR (\d+)/.exec(info.stderrTail)?.[1] ?? Number.NaN);
    const doing = `loading database ${db}`;
    if (code === ER_ACCESS_DENIED || CLIENT_CONNECTION_ERRORS.has(code)) {
      const explained = explain(new QueryFailure(said, code), doing);
      if (explained instanceof DatabaseError) return explained;
    }
    if (code === ER_SPECIFIC_ACCESS_DENIED && /SUPER|SET USER/i.test(said)) {
      return fail(
        `${doing}: user ${connection.user} may not create an object that runs as another account (${said}); ` +
          'load as an account with the SET USER privilege, or restore the users component first',
      );
    }
    if (code === ER_DBACCESS_DENIED || code === ER_TABLEACCESS_DENIED || code === ER_SPECIFIC_ACCESS_DENIED) {
      return fail(`${doing}: user ${connection.user} lacks a privilege the dump needs (${said}); ${drillGrantHint}`);
    }
    if (/max_allowed_packet/i.test(said) || code === 1153) {
      return fail(
        `${doing}: a statement is larger than the server's max_allowed_packet (${said}); ` +
          'raise max_allowed_packet on the server (e.g. SET GLOBAL max_allowed_packet = 1073741824) and load again',
      );
    }
    if (code === 1050) {
      return fail(
        `${doing}: the database already holds a table the dump creates (${said}); load into an empty database`,
      );
    }
    return fail(`${doing} failed; the statements before the failing one were loaded (${said})`);
  }

  /** What to do with each DEFINER account, and the report of what was rewritten. */
  async function definerPolicy(options: LoadOptions): Promise<{
    decide: (account: Account) => Promise<'keep' | 'rewrite'>;
    report: () => LoadReport;
  }> {
    const { signal } = options;
    let current: Account;
    let canSetUser: boolean;
    try {
      const [row] = await rows('SELECT HEX(CURRENT_USER())', signal);
      const text = fromHex(row?.[0]);
      const at = text.lastIndexOf('@');
      current = { user: text.slice(0, at), host: text.slice(at + 1) };
      const grantee = `'${current.user}'@'${current.host}'`;
      const privileges = await rows(
        `SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ${hexOf(grantee)}`,
        signal,
      );
      canSetUser = privileges.some(([privilege]) => privilege === 'SUPER' || privilege === 'SET USER');
    } catch (error) {
      throw explain(error, 'asking the server who this user is');
    }

    const decisions = new Map<string, Promise<'keep' | 'rewrite'>>();
    const rewritten = new Map<string, { account: Account; reason: string; count: number }>();
    const keyOf = (account: Account) => `${account.user}\0${account.host.toLowerCase()}`;

    const judge = async (account: Account): Promise<'keep' | 'rewrite'> => {
      if (account.user === current.user && account.host.toLowerCase() === current.host.toLowerCase()) return 'keep';
      const what = `the dump creates views, triggers, routines or events that run as ${formatAccount(account)} (DEFINER)`;
      let reason: string;
      let advice: string;
      if (!canSetUser) {
        reason = `user ${connection.user} may not name another account as DEFINER (that needs the SET USER or SUPER privilege)`;
        advice = 'load as an account with the SET USER privilege (after restoring the users component, <source>.users)';
      } else {
        const exists = await accountExists(account, signal);
        if (exists !== false) return 'keep';
        reason = 'that account does not exist on this server';
        advice = 'restore the users and grants component of the set (<source>.users) first, or create the account';
      }
      if (!options.tolerateMissingRoles) throw fail(`${what}, but ${reason}; ${advice}, then load again`);
      rewritten.set(keyOf(account), { account, reason, count: 0 });
      return 'rewrite';
    };

    return {
      decide: async (account) => {
        const key = keyOf(account);
        let decision = decisions.get(key);
        if (!decision) {
          decision = judge(account);
          decisions.set(key, decision);
        }
        const verdict = await decision;
        const entry = rewritten.get(key);
        if (entry) entry.count++;
        return verdict;
      },
      report: () => ({
        skipped: capList(
          [...rewritten.values()].map(
            ({ account, reason, count }) =>
              `DEFINER=${formatAccount(account)} of ${count} view(s), trigger(s), routine(s) or event(s) ` +
              `rewritten to DEFINER=CURRENT_USER: ${reason}`,
          ),
        ),
        warnings: [],
      }),
    };
  }

  /** Whether the account exists: undefined when this user may not read the account tables. */
  async function accountExists(account: Account, signal: AbortSignal): Promise<boolean | undefined> {
    // MariaDB 10.4+ keeps accounts in mysql.global_priv (mysql.user is a view); MySQL in mysql.user.
    // A definer written without a host may be a role, stored with an empty host.
    const where =
      `User = ${hexOf(account.user)} AND (Host = ${hexOf(account.host)}` +
      `${account.host === '%' ? " OR Host = ''" : ''})`;
    for (const table of ['mysql.global_priv', 'mysql.user']) {
      try {
        const [row] = await rows(`SELECT COUNT(*) FROM ${table} WHERE ${where}`, signal);
        return row?.[0] !== '0';
      } catch (error) {
        signal.throwIfAborted();
        if (!(error instanceof QueryFailure)) throw error;
        if (error.code === ER_NO_SUCH_TABLE) continue;
        if (error.code === ER_TABLEACCESS_DENIED || error.code === ER_DBACCESS_DENIED) return undefined;
        throw explain(error, `looking for account ${formatAccount(account)}`);
      }
    }
    return undefined;
  }
}

/** The client refused a query or could not connect; `code` is the server's or client's error number. */
class QueryFailure extends Error {
  override readonly name = 'QueryFailure';
  readonly code: number | undefined;
  constructor(message: string, code: number | undefined) {
    super(message);
    this.code = code;
  }

  static from(info: ExitInfo): QueryFailure {
    const said = clientSaid(info.stderrTail);
    const code = /ERROR (\d+)/.exec(said)?.[1];
    const how = info.signal
      ? `the client was killed by ${info.signal}`
      : `the client exited with code ${info.exitCode}`;
    return new QueryFailure(said || how, code === undefined ? undefined : Number(code));
  }
}

/** Passes the dump through, replacing the DEFINER clauses `decide` says to rewrite. */
class DefinerFilter extends Transform {
  private readonly scanner = new DefinerScanner();

  constructor(private readonly decide: (account: Account) => Promise<'keep' | 'rewrite'>) {
    super({ highWaterMark: 64 * 1024 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.emitPieces(this.scanner.push(chunk)).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    this.emitPieces(this.scanner.end()).then(() => callback(), callback);
  }

  private async emitPieces(pieces: DumpPiece[]): Promise<void> {
    for (const piece of pieces) {
      if (Buffer.isBuffer(piece)) this.push(piece);
      else if ((await this.decide(piece.account)) === 'keep') this.push(piece.bytes);
      else this.push(Buffer.from('DEFINER=CURRENT_USER'));
    }
  }
}

/**
 * What the client said, for messages: from its first `ERROR nnnn` line on (it echoes the failing
 * statement between dashes before it), else its last lines.
 */
function clientSaid(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  const at = lines.findIndex((line) => /^ERROR \d+/.test(line));
  return at === -1 ? lastLines(stderr) : lines.slice(at, at + 3).join(' | ');
}

/** `name` as a backtick-quoted identifier. */
export function quoteIdentifier(name: string): string {
  return `\`${name.replaceAll('`', '``')}\``;
}

/** A string as a hex literal: no quoting or escaping problem whatever it holds. */
function hexOf(text: string): string {
  return `X'${Buffer.from(text, 'utf8').toString('hex')}'`;
}

function fromHex(hex: string | undefined): string {
  return Buffer.from(hex ?? '', 'hex').toString('utf8');
}

function toCount(text: string | undefined, table: string): number {
  const count = Number(text);
  if (!Number.isSafeInteger(count) || count < 0) throw new Error(`COUNT(*) of table ${table} gave ${text}`);
  return count;
}

/** The first field of the first row of `mariadb --xml` output; null for NULL or no row. Exported for tests. */
export function firstXmlField(xml: string): string | null {
  const match = /<field name="[^"]*"(\s+xsi:nil="true")?\s*(?:\/>|>([\s\S]*?)<\/field>)/.exec(xml);
  if (!match || match[1] !== undefined) return null;
  return (match[2] ?? '').replace(/&(lt|gt|amp|quot|apos|#x[0-9a-fA-F]+|#\d+);/g, (_, entity: string) => {
    if (entity === 'lt') return '<';
    if (entity === 'gt') return '>';
    if (entity === 'amp') return '&';
    if (entity === 'quot') return '"';
    if (entity === 'apos') return "'";
    const code = entity.startsWith('#x') ? Number.parseInt(entity.slice(2), 16) : Number(entity.slice(1));
    return String.fromCodePoint(code);
  });
}
