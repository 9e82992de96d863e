// A PostgreSQL server of a test's own, for tests that kill the server (kill -9 mid-dump) or need to
// know every database on it. The shared test server (test/helpers/services.ts) serves everything else;
// killing it would break the tests running next to this one.
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface PrivatePostgres {
  host: '127.0.0.1';
  port: number;
  socketDir: string;
  dataDir: string;
  /** The postgres superuser's password for TCP logins. */
  adminPassword: string;
  /** Runs SQL as postgres over the socket (`-X -A -t -q`, ON_ERROR_STOP); rows are lines. */
  admin(sql: string, db?: string): Promise<string>;
  /** The postmaster's pid (first line of postmaster.pid). */
  postmasterPid(): Promise<number>;
  /** Stops the server (also after a kill -9: waits for its orphaned backends) and removes its files. */
  stop(): Promise<void>;
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], options: { input?: string; cwd?: string } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: { PATH: process.env.PATH, LC_ALL: 'C' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

async function must(what: string, result: Promise<Result>): Promise<string> {
  const r = await result;
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Pids of processes whose working directory is `dir` (PostgreSQL backends run in the data directory). */
async function processesIn(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cwd = await readlink(`/proc/${entry}/cwd`).catch(() => '');
    if (cwd === dir) pids.push(Number(entry));
  }
  return pids;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const dir = await mkdtemp(join(tmpdir(), 'bp-pg-'));
  await chmod(dir, 0o755);
  const dataDir = join(dir, 'data');
  const socketDir = join(dir, 'run');
  await mkdir(dataDir);
  await mkdir(socketDir);
  await must('chown', run('chown', ['-R', 'postgres:postgres', dir]));
  const port = await freePort();
  const adminPassword = `admin-${Math.random().toString(36).slice(2)}`;
  const asPostgres = (args: string[]) => run('runuser', ['-u', 'postgres', '--', ...args], { cwd: dir });
  const admin = (sql: string, db = 'postgres') =>
    must(
      `psql (private server, database ${db})`,
      run(
        'psql',
        [
          '-X',
          '-A',
          '-t',
          '-q',
          '-v',
          'ON_ERROR_STOP=1',
          '-h',
          socketDir,
          '-p',
          String(port),
          '-U',
          'postgres',
          '-d',
          db,
        ],
        { input: sql },
      ),
    ).then((out) => out.replace(/\n$/, ''));
  const postmasterPid = async () => Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);

  const stop = async (): Promise<void> => {
    await asPostgres([`${PG_BIN}/pg_ctl`, '-D', dataDir, '-m', 'immediate', '-w', '-t', '10', 'stop']);
    // After a kill -9 of the postmaster, its backends exit when they notice; do not leave any behind.
    for (let i = 0; i < 100; i++) {
      const left = await processesIn(dataDir);
      if (left.length === 0) break;
      if (i === 99) for (const pid of left) process.kill(pid, 'SIGKILL');
      await sleep(100);
    }
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await must(
      'initdb',
      asPostgres([
        `${PG_BIN}/initdb`,
        '-D',
        dataDir,
        '-U',
        'postgres',
        '--auth-local=trust',
        '--auth-host=scram-sha-256',
        '-E',
        'UTF8',
        '--locale=C.UTF-8',
        '--no-sync',
      ]),
    );
    await must(
      'pg_ctl start',
      asPostgres([
        `${PG_BIN}/pg_ctl`,
        '-D',
        dataDir,
        '-l',
        join(dir, 'server.log'),
        '-w',
        '-t',
        '30',
        '-o',
        `-c listen_addresses=127.0.0.1 -p ${port} -k ${socketDir} -c fsync=off -c shared_buffers=16MB`,
        'start',
      ]),
    );
    await admin(`ALTER ROLE postgres PASSWORD '${adminPassword}';`);
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
  return { host: '127.0.0.1', port, socketDir, dataDir, adminPassword, admin, postmasterPid, stop };
}
