// A private sshd for tests that kill, freeze or reconfigure the SSH server: a second sshd on its own
// port with its own host keys, run in the foreground as our child, so the shared server from
// scripts/test-services.sh never goes down under other tests. Also the process-tree helpers it needs.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { closedPort } from './ports.js';

export type HostKeyType = 'ed25519' | 'rsa';

export interface PrivateSshdOptions {
  /** The only account allowed to log in. */
  user: string;
  /** sshd's SetEnv for sessions (e.g. a PATH with fake tools first). */
  setEnv?: string;
  /** The host key types the server offers (default ed25519); known_hosts pins every one of them. */
  hostKeys?: readonly HostKeyType[];
}

export class PrivateSshd {
  private child: ChildProcess | undefined;

  private constructor(
    readonly dir: string,
    readonly port: number,
    /** `ssh-ed25519 AAAA…` per host key type. */
    readonly publicKeys: Readonly<Partial<Record<HostKeyType, string>>>,
  ) {}

  static async start(options: PrivateSshdOptions): Promise<PrivateSshd> {
    const dir = await mkdtemp(join(tmpdir(), 'bp-sshd-'));
    // mkdtemp makes it 0700; sessions of the test account may need to enter it.
    await chmod(dir, 0o755);
    const port = await closedPort();
    const hostKeys = options.hostKeys ?? ['ed25519'];
    const publicKeys: Partial<Record<HostKeyType, string>> = {};
    for (const type of hostKeys) {
      const file = join(dir, `host_${type}`);
      execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-f', file]);
      publicKeys[type] = (await readFile(`${file}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
    }
    const config = [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      ...hostKeys.map((type) => `HostKey ${join(dir, `host_${type}`)}`),
      `PidFile ${join(dir, 'sshd.pid')}`,
      'AuthorizedKeysFile .ssh/authorized_keys',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin no',
      'UsePAM no',
      `AllowUsers ${options.user}`,
      'UseDNS no',
      'Subsystem sftp internal-sftp',
      ...(options.setEnv ? [`SetEnv ${options.setEnv}`] : []),
    ];
    await writeFile(join(dir, 'sshd_config'), `${config.join('\n')}\n`);
    const pins = Object.values(publicKeys).map((key) => `[127.0.0.1]:${port} ${key}\n`);
    await writeFile(join(dir, 'known_hosts'), pins.join(''));
    // sshd refuses to start without its privilege separation directory.
    await mkdir('/run/sshd', { recursive: true });
    const sshd = new PrivateSshd(dir, port, publicKeys);
    try {
      await sshd.run();
    } catch (error) {
      await sshd.stop();
      throw error;
    }
    return sshd;
  }

  get knownHosts(): string {
    return join(this.dir, 'known_hosts');
  }

  /** Starts sshd (again, on the same port) and waits until it greets. */
  async run(): Promise<void> {
    const log = join(this.dir, 'sshd.log');
    const child = spawn('/usr/sbin/sshd', ['-D', '-f', join(this.dir, 'sshd_config'), '-E', log], {
      stdio: 'ignore',
    });
    this.child = child;
    await waitUntilUp(`sshd on port ${this.port}`, child, log, () => greetsWithSsh(this.port));
  }

  /** SIGKILL to sshd and every session it forked, as on a power cut; the number of processes killed. */
  async kill(): Promise<number> {
    const killed = await killTree(this.child);
    this.child = undefined;
    return killed;
  }

  /** SIGSTOP to every session: connections stay open, and nothing answers on them any more. */
  async freeze(): Promise<number> {
    const pid = this.child?.pid;
    const sessions = pid === undefined ? [] : await descendantsOf(pid);
    for (const session of sessions) process.kill(session, 'SIGSTOP');
    return sessions.length;
  }

  async stop(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Whether an SSH server greets on `port`. */
export function greetsWithSsh(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('data', (data: Buffer) => {
      socket.destroy();
      resolve(data.toString('latin1').startsWith('SSH-'));
    });
    socket.once('error', () => resolve(false));
  });
}

/** Polls until `ready()` holds, while `child` lives; fails with `log`'s tail otherwise. */
export async function waitUntilUp(
  what: string,
  child: ChildProcess,
  log: string,
  ready: () => Promise<boolean>,
): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    if (await ready()) return;
    await sleep(50);
  }
  const tail = (await readFile(log, 'utf8').catch(() => '')).slice(-2000);
  throw new Error(`${what} did not come up:\n${tail}`);
}

/**
 * SIGKILL to `child` and every process below it (an sshd's sessions): a crash, not a shutdown.
 * The number of processes killed; 0 when `child` is absent or already gone.
 */
export async function killTree(child: ChildProcess | undefined): Promise<number> {
  if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return 0;
  const exited = once(child, 'exit');
  const victims = [...(await descendantsOf(child.pid)), child.pid];
  for (const victim of victims) {
    try {
      process.kill(victim, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await exited;
  return victims.length;
}

/** Pids of every process below `pid`, from /proc. */
export async function descendantsOf(pid: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    // A process may exit between readdir and readFile.
    const text = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid …; comm may hold spaces and parentheses, so split after the last ')'.
    if (text) parents.set(Number(entry), Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1]));
  }
  const found: number[] = [];
  const walk = (parent: number): void => {
    for (const [child, ppid] of parents) {
      if (ppid !== parent) continue;
      found.push(child);
      walk(child);
    }
  };
  walk(pid);
  return found;
}
