// The real servers the tests use (MariaDB, PostgreSQL, sshd, S3), as started by
// scripts/test-services.sh and described by its services.json. Tests run in parallel against the
// same servers: every test must use its own databases, users, buckets and remote directories
// (see uniqueName).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SERVICES_SCRIPT = fileURLToPath(new URL('../../scripts/test-services.sh', import.meta.url));
export const DEFAULT_SERVICES_DIR = '/tmp/backproof-services';

export type ServiceName = 'mariadb' | 'postgres' | 'ssh' | 's3';
export const SERVICE_NAMES: readonly ServiceName[] = ['mariadb', 'postgres', 'ssh', 's3'];

export interface MariadbService {
  host: string;
  port: number;
  /** Unix socket; root logs in over it (and over TCP) without a password. */
  socket: string;
  adminUser: string;
  version: string;
  /** mariadbd's pid file. */
  pidFile: string;
  log: string;
}

export interface PostgresService {
  host: string;
  port: number;
  /** Socket directory: `trust` for every local user. TCP needs a password (scram-sha-256). */
  socketDir: string;
  adminUser: string;
  /** The superuser's password for TCP logins (0600, root's). */
  adminPasswordFile: string;
  version: string;
  /** postmaster.pid: its first line is the postmaster's pid. */
  pidFile: string;
  log: string;
}

export interface SftpOnlyAccount {
  /** Chrooted, `ForceCommand internal-sftp`: no exec, like a Synology non-admin user. */
  user: string;
  identityFile: string;
  /** The writable directory as the SFTP session sees it. */
  path: string;
  /** The same directory on this machine. */
  localPath: string;
}

export interface SshService {
  host: string;
  port: number;
  /** One line for `[127.0.0.1]:port` with the server's host key. */
  knownHosts: string;
  /** `ssh-ed25519 AAAA...` */
  hostPublicKey: string;
  /** A normal account (key only) that may exec `sha256sum`. */
  user: string;
  identityFile: string;
  /** That user's home on this machine (and on the server: they are the same machine). */
  home: string;
  sftpOnly: SftpOnlyAccount;
  sshdPidFile: string;
  log: string;
}

export interface S3Service {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle: boolean;
  server: 'swift';
  version: string;
  pidFiles: string[];
  log: string;
}

export interface Services {
  dir: string;
  script: string;
  mariadb: MariadbService;
  postgres: PostgresService;
  ssh: SshService;
  s3: S3Service;
}

/** The services directory: `$BACKPROOF_SERVICES_DIR`, default /tmp/backproof-services. */
export function servicesDir(): string {
  return process.env.BACKPROOF_SERVICES_DIR || DEFAULT_SERVICES_DIR;
}

let cached: { file: string; services: Services } | undefined;

/** The running services, from `$BACKPROOF_SERVICES_DIR/services.json`. Throws saying how to start them. */
export function services(): Services {
  const file = join(servicesDir(), 'services.json');
  if (cached?.file === file) return cached.services;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(
      `${file} is missing: the test servers are not running. Start them with \`bash scripts/test-services.sh start\` (npm test does this), or set BACKPROOF_SERVICES_DIR to where they run.`,
      { cause: error },
    );
  }
  let parsed: Services;
  try {
    parsed = JSON.parse(text) as Services;
  } catch (error) {
    throw new Error(`${file} is not valid JSON: rerun \`bash scripts/test-services.sh start\` to rewrite it`, {
      cause: error,
    });
  }
  for (const name of SERVICE_NAMES) {
    if (typeof parsed[name] !== 'object' || parsed[name] === null) {
      throw new Error(`${file} has no "${name}" entry: rerun \`bash scripts/test-services.sh start\``);
    }
  }
  cached = { file, services: parsed };
  return parsed;
}

/** The postgres superuser's password (for TCP logins). */
export function postgresAdminPassword(): string {
  return readFileSync(services().postgres.adminPasswordFile, 'utf8').trim();
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(
  file: string,
  args: readonly string[],
  input: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: { ...env, LC_ALL: 'C' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    // A client that exits early (bad option) closes stdin: that is reported by the exit code, not EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}

function failure(what: string, result: RunResult, sql: string): Error {
  const how = result.signal ? `was killed by ${result.signal}` : `exited ${result.code}`;
  return new Error(`${what} ${how}: ${result.stderr.trim() || '(no stderr)'}\nSQL: ${sql}`);
}

/** Drops the one newline a client ends its output with, keeping the rest as is. */
function withoutFinalNewline(text: string): string {
  return text.endsWith('\n') ? text.slice(0, -1) : text;
}

/**
 * Runs SQL (statements separated by `;`) with the `mariadb` client as root over the socket,
 * `--batch --skip-column-names`: rows are lines, columns are tab-separated. Rejects on any error.
 */
export async function mariadbAdmin(sql: string, db?: string): Promise<string> {
  const m = services().mariadb;
  const args = [
    '--no-defaults',
    `--socket=${m.socket}`,
    `--user=${m.adminUser}`,
    '--default-character-set=utf8mb4',
    '--batch',
    '--skip-column-names',
  ];
  if (db !== undefined) args.push(`--database=${db}`);
  const result = await run('mariadb', args, sql, { PATH: process.env.PATH });
  if (result.code !== 0) throw failure(`mariadb${db ? ` (database ${db})` : ''}`, result, sql);
  return withoutFinalNewline(result.stdout);
}

/**
 * Runs SQL with `psql` as the postgres superuser over the socket (`-X -A -t -v ON_ERROR_STOP=1`):
 * rows are lines, columns are `|`-separated. Statements run one by one (not in one transaction),
 * so `CREATE DATABASE` works. Rejects on the first error.
 */
export async function psqlAdmin(sql: string, db = 'postgres'): Promise<string> {
  const p = services().postgres;
  const args = ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-h', p.socketDir, '-p', String(p.port)];
  args.push('-U', p.adminUser, '-d', db, '-f', '-');
  const result = await run('psql', args, sql, { PATH: process.env.PATH });
  if (result.code !== 0) throw failure(`psql (database ${db})`, result, sql);
  return withoutFinalNewline(result.stdout);
}

/**
 * Stops and starts one server again (`scripts/test-services.sh restart NAME`), for tests that kill
 * one. Other tests share these servers, so a test that does this must tolerate (and cause) a short outage.
 */
export async function restartService(name: ServiceName): Promise<void> {
  if (!SERVICE_NAMES.includes(name))
    throw new Error(`unknown service ${String(name)} (known: ${SERVICE_NAMES.join(', ')})`);
  const env = { ...process.env, BACKPROOF_SERVICES_DIR: servicesDir() };
  const result = await run('bash', [SERVICES_SCRIPT, 'restart', name], undefined, env);
  if (result.code !== 0) {
    throw new Error(
      `\`bash ${SERVICES_SCRIPT} restart ${name}\` exited ${result.code ?? result.signal}:\n${result.stderr}`,
    );
  }
}

/**
 * Config of a `mariadb` source named `shop` and a `postgres` source named `main` (no globals),
 * each backing up the one given database of the shared test servers, as the admin user.
 */
export function testDatabaseSources(databases: { mariadb: string; postgres: string }): Record<string, unknown>[] {
  const { mariadb, postgres: pg } = services();
  return [
    {
      name: 'shop',
      type: 'mariadb',
      host: '127.0.0.1',
      port: mariadb.port,
      user: 'root',
      databases: [databases.mariadb],
    },
    {
      name: 'main',
      type: 'postgres',
      host: pg.host,
      port: pg.port,
      user: pg.adminUser,
      passwordFile: pg.adminPasswordFile,
      databases: [databases.postgres],
      globals: false,
    },
  ];
}

let counter = 0;

/**
 * A short name no other test (in this process or another, in this run or an earlier one) uses:
 * lowercase letters and digits only, starting with a letter, at most 30 characters, so it is valid
 * unquoted as a MariaDB/PostgreSQL database or user name, an S3 bucket name and a directory name.
 * `prefix` is lowercased and stripped to [a-z0-9] (and cut to 12 characters) to say what it is for.
 */
export function uniqueName(prefix = 't'): string {
  let clean = prefix
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '')
    .slice(0, 12);
  if (!/^[a-z]/.test(clean)) clean = `t${clean}`.slice(0, 12);
  counter += 1;
  const random = randomBytes(8).readBigUInt64BE().toString(36).padStart(10, '0').slice(-10);
  return `${clean}${process.pid.toString(36)}${counter.toString(36)}${random}`.slice(0, 30);
}

let privateOffset = 0;

export interface PrivateServices {
  dir: string;
  /** The started services' entries (only those asked for). */
  services: Partial<Services>;
  /** kill -9 of a service's main process and its children (open sessions too): a crash, not a shutdown. */
  kill(name: ServiceName): Promise<void>;
  /** Starts a killed service again (same ports, same data). */
  restart(name: ServiceName): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a private set of servers beside the shared ones (own directory, ports moved by an offset),
 * for tests that kill a server: killing a shared one would break tests running in parallel.
 * Offsets differ per process (pid) and per call.
 */
export async function privateServices(names: readonly ServiceName[]): Promise<PrivateServices> {
  privateOffset += 1;
  const offset = 100 + ((process.pid % 40) * 20 + privateOffset) * 7;
  const dir = join(tmpdir(), `bp-private-services-${process.pid}-${privateOffset}`);
  const env = { ...process.env, BACKPROOF_SERVICES_DIR: dir, BACKPROOF_SERVICES_PORT_OFFSET: String(offset) };
  const started = await run('bash', [SERVICES_SCRIPT, 'start', ...names], undefined, env);
  if (started.code !== 0) {
    await run('bash', [SERVICES_SCRIPT, 'stop'], undefined, env);
    throw new Error(`private services (${names.join(', ')}) did not start:\n${started.stderr}`);
  }
  const parsed = JSON.parse(readFileSync(join(dir, 'services.json'), 'utf8')) as Partial<Services>;
  return {
    dir,
    services: parsed,
    async kill(name) {
      const entry = parsed[name] as { pidFile?: string; pidFiles?: string[]; sshdPidFile?: string } | undefined;
      const files = [entry?.pidFile, entry?.sshdPidFile, ...(entry?.pidFiles ?? [])].filter((f): f is string => !!f);
      if (files.length === 0) throw new Error(`no pid file for private ${name}`);
      for (const file of files) {
        const pid = Number(readFileSync(file, 'utf8').split('\n')[0]?.trim());
        if (!Number.isSafeInteger(pid) || pid <= 1) continue;
        // Children first (sshd's per-connection processes), then the server itself.
        await run('pkill', ['-KILL', '-P', String(pid)], undefined, process.env);
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    },
    async restart(name) {
      const result = await run('bash', [SERVICES_SCRIPT, 'restart', name], undefined, env);
      if (result.code !== 0) throw new Error(`private ${name} did not restart:\n${result.stderr}`);
    },
    async stop() {
      await run('bash', [SERVICES_SCRIPT, 'stop'], undefined, env);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
