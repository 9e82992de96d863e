// The sftp target against the real OpenSSH server from scripts/test-services.sh: `bpnas` (a shell
// account: sha256sum on the server) and `bpsftp` (chrooted, SFTP only: read-back). Tests that stop
// sshd or change what the server runs start a private sshd of their own, so the shared one never
// goes down under other tests.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  chmod,
  chown,
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { SftpTargetConfig } from '../../src/config/schema.js';
import { TargetError } from '../../src/lib/errors.js';
import type { Logger } from '../../src/lib/log.js';
import { fingerprintOf } from '../../src/targets/known-hosts.js';
import { createSftpTarget, parseSha256sum, type SftpTargetTuning, shellQuote } from '../../src/targets/sftp.js';
import type { Target, VerificationLevel } from '../../src/targets/types.js';
import { closedPort } from '../helpers/ports.js';
import { PrivateSshd } from '../helpers/private-sshd.js';
import { services, uniqueName } from '../helpers/services.js';
import { tampered } from './faulty.js';
import { bodyOf, sha256, targetConformance } from './suite.js';

const MiB = 1 << 20;
const never = new AbortController().signal;
const ssh = () => services().ssh;

type Account = 'nas' | 'sftp-only';

function configFor(account: Account, path: string, extra: Partial<SftpTargetConfig> = {}): SftpTargetConfig {
  const s = ssh();
  const who =
    account === 'nas'
      ? { user: s.user, identityFile: s.identityFile }
      : { user: s.sftpOnly.user, identityFile: s.sftpOnly.identityFile };
  return {
    name: 'nas',
    type: 'sftp',
    host: s.host,
    port: s.port,
    knownHosts: s.knownHosts,
    acceptNewHostKey: false,
    path,
    optional: false,
    ...who,
    ...extra,
  };
}

interface Root {
  /** The root as the target's `path`. */
  remote: string;
  /** The same directory on this machine. */
  local: string;
}

/** A fresh directory owned by the account, under its home (nas) or its chroot's upload dir (sftp-only). */
async function freshRoot(account: Account): Promise<Root> {
  const s = ssh();
  const name = uniqueName('sftp');
  const base = account === 'nas' ? s.home : s.sftpOnly.localPath;
  const local = join(base, name);
  const owner = await stat(base);
  await mkdir(local, { mode: 0o700 });
  await chown(local, owner.uid, owner.gid);
  return { remote: account === 'nas' ? local : `${s.sftpOnly.path}/${name}`, local };
}

/** Every regular file under `dir`, relative, sorted. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? e.path, e.name).slice(dir.length + 1))
    .sort();
}

/** The target, with every verifyObject checked for the level it must reach, then reported without it. */
function expectingLevel(target: Target, level: VerificationLevel): Target {
  return {
    ...target,
    async verifyObject(key, options) {
      const { level: seen, ...proof } = await target.verifyObject(key, options);
      assert.equal(seen, level, `verifyObject(${key}) reached ${seen}, expected ${level}`);
      return proof;
    },
  };
}

async function assertTargetError(
  promise: Promise<unknown>,
  expected: { permanent: boolean; message: RegExp[]; notFound?: boolean; absent?: string[] },
  target?: Target,
): Promise<TargetError> {
  let caught: TargetError | undefined;
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof TargetError, `expected a TargetError, got ${String(error)}`);
    assert.equal(error.target, 'nas');
    assert.equal(error.permanent, expected.permanent, `permanent should be ${expected.permanent}: ${error.message}`);
    for (const pattern of expected.message) assert.match(error.message, pattern);
    for (const text of expected.absent ?? [])
      assert.ok(!error.message.includes(text), `leaks ${text}: ${error.message}`);
    if (target) assert.equal(target.isNotFound(error), expected.notFound ?? false, error.message);
    caught = error;
    return true;
  });
  return caught as TargetError;
}

function conformanceFor(account: Account, level: VerificationLevel): void {
  targetConformance(`sftp (${account}: ${level})`, async () => {
    const root = await freshRoot(account);
    const target = createSftpTarget(configFor(account, root.remote));
    return {
      target: expectingLevel(target, level),
      cleanup: () => rm(root.local, { recursive: true, force: true }),
      tamper: async (key, how) => {
        const file = join(root.local, key);
        await writeFile(file, tampered(await readFile(file), how));
      },
    };
  });
}

conformanceFor('nas', 'remote-hash');
conformanceFor('sftp-only', 'reread');

/** Runs `fn` with a fresh root for `account` and a target on it; closes and removes both after. */
async function withTarget(
  account: Account,
  fn: (target: Target, root: Root) => Promise<void>,
  extra: Partial<SftpTargetConfig> = {},
  tuning: SftpTargetTuning = {},
): Promise<void> {
  const root = await freshRoot(account);
  const target = createSftpTarget(configFor(account, root.remote, extra), tuning);
  try {
    await fn(target, root);
  } finally {
    await target.close();
    await rm(root.local, { recursive: true, force: true });
  }
}

/** Runs `fn` with a fresh root for `account`, removed after. */
async function withRoot(account: Account, fn: (root: Root) => Promise<void>): Promise<void> {
  const root = await freshRoot(account);
  try {
    await fn(root);
  } finally {
    await rm(root.local, { recursive: true, force: true });
  }
}

async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `backproof-sftp-${prefix}-`));
}

/** A logger that keeps what it is told. */
function recordingLogger(): Logger & { lines: { level: string; message: string; fields?: Record<string, unknown> }[] } {
  const lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  const record = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push({ level, message, ...(fields ? { fields } : {}) });
  };
  return { lines, debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
}

/** A pattern matching `text` as it is. */
function literally(text: string): RegExp {
  return new RegExp(text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&'));
}

function serverKeyBlob(): Buffer {
  return Buffer.from(ssh().hostPublicKey.split(' ')[1] as string, 'base64');
}

function hostField(): string {
  return `[${ssh().host}]:${ssh().port}`;
}

/** A port nothing listens on (bound, then released). */
describe('sftp target: accounts and paths', () => {
  it('proves objects with sha256sum for a shell account and by reading back for an SFTP-only one', async () => {
    const data = randomBytes(3 * MiB + 17);
    for (const [account, level] of [
      ['nas', 'remote-hash'],
      ['sftp-only', 'reread'],
    ] as const) {
      await withTarget(account, async (target) => {
        await target.put('job/set/object.bin', bodyOf(data), { signal: never });
        assert.deepEqual(await target.verifyObject('job/set/object.bin', { signal: never }), {
          bytes: data.length,
          sha256: sha256(data),
          level,
        });
      });
    }
  });

  it('describes itself as sftp user@host:port/path, and a relative path as under the login directory', async () => {
    const s = ssh();
    await withTarget('nas', async (target, root) => {
      assert.equal(target.describe(), `sftp ${s.user}@${s.host}:${s.port}${root.remote}`);
    });
    const relative = createSftpTarget(configFor('nas', 'backups/nas'));
    assert.equal(relative.describe(), `sftp ${s.user}@${s.host}:${s.port}/~/backups/nas`);
    await relative.close();
  });

  it('resolves a relative path against the login directory', async () => {
    const name = uniqueName('rel');
    const local = join(ssh().home, name);
    const owner = await stat(ssh().home);
    await mkdir(local);
    await chown(local, owner.uid, owner.gid);
    const target = createSftpTarget(configFor('nas', name));
    try {
      await target.put('a/b.txt', bodyOf(Buffer.from('relative')), { signal: never });
      assert.equal(await readFile(join(local, 'a/b.txt'), 'utf8'), 'relative');
      assert.equal((await target.free?.())?.path, local);
    } finally {
      await target.close();
      await rm(local, { recursive: true, force: true });
    }
  });

  it('refuses to work on a missing root: no empty listing, no write, nothing created', async () => {
    const missing = join(ssh().home, uniqueName('gone'));
    const target = createSftpTarget(configFor('nas', missing));
    try {
      const expected = { permanent: true, message: [/does not exist/, /mkdir -p/, /mounted/] };
      await assertTargetError(target.list('job/'), expected, target);
      await assertTargetError(target.put('job/x', bodyOf(Buffer.from('x')), { signal: never }), expected, target);
      await assertTargetError(target.probeWritable('job'), expected, target);
      assert.equal(existsSync(missing), false, 'the missing root was not created');
    } finally {
      await target.close();
    }
  });

  it('creates objects 0600 and directories 0700 owned by the account', async () => {
    await withTarget('nas', async (target, root) => {
      await target.put('job/2025/11/04/set/obj.tmp-1', bodyOf(Buffer.from('x')), { signal: never });
      await target.rename?.('job/2025/11/04/set/obj.tmp-1', 'job/2025/11/04/set/obj');
      const file = await stat(join(root.local, 'job/2025/11/04/set/obj'));
      assert.equal(file.mode & 0o777, 0o600);
      assert.equal(file.uid, (await stat(ssh().home)).uid);
      for (const dir of ['job', 'job/2025', 'job/2025/11/04/set']) {
        assert.equal((await stat(join(root.local, dir))).mode & 0o777, 0o700, dir);
      }
    });
  });

  it('never overwrites with put, and says so', async () => {
    await withTarget('nas', async (target, root) => {
      const original = randomBytes(MiB);
      await target.put('job/x', bodyOf(original), { signal: never });
      await assertTargetError(target.put('job/x', bodyOf(Buffer.from('replacement')), { signal: never }), {
        permanent: true,
        message: [/already exists/, /never overwrites/],
      });
      assert.equal(sha256(await readFile(join(root.local, 'job/x'))), sha256(original), 'the original is intact');
    });
  });

  it('renames with plain SFTP rename, which refuses to replace, and leaves both objects as they were', async () => {
    await withTarget('sftp-only', async (target, root) => {
      await target.put('set/a', bodyOf(Buffer.from('first')), { signal: never });
      await target.put('set/a.tmp-1', bodyOf(Buffer.from('second')), { signal: never });
      await assertTargetError(target.rename?.('set/a.tmp-1', 'set/a') ?? Promise.resolve(), {
        permanent: true,
        message: [/already exists/, /never replaced/],
      });
      assert.equal(await readFile(join(root.local, 'set/a'), 'utf8'), 'first');
      assert.equal(await readFile(join(root.local, 'set/a.tmp-1'), 'utf8'), 'second');
    });
  });

  it('removes empty parent directories up to, but not including, the root', async () => {
    await withTarget('nas', async (target, root) => {
      await target.put('job/2025/11/04/set/a', bodyOf(Buffer.from('a')), { signal: never });
      await target.put('job/keep', bodyOf(Buffer.from('k')), { signal: never });
      await target.remove('job/2025/11/04/set/a');
      assert.deepEqual(await readdir(join(root.local, 'job')), ['keep']);
      await target.remove('job/keep');
      assert.deepEqual(await readdir(root.local), []);
      assert.equal(existsSync(root.local), true);
    });
  });

  it('hashes keys holding spaces, quotes and shell syntax on the server without running any of it', async () => {
    await withTarget('nas', async (target, root) => {
      const keys = [
        `q/it's a "quoted" name.bin`,
        'q/$(touch pwned) `touch pwned2`; touch pwned3 & |.bin',
        "q/'; touch pwned4; echo '",
        'q/back\\slash and\nnewline.bin',
      ];
      for (const key of keys) {
        const data = randomBytes(1000);
        await target.put(key, bodyOf(data), { signal: never });
        assert.deepEqual(await target.verifyObject(key, { signal: never }), {
          bytes: 1000,
          sha256: sha256(data),
          level: 'remote-hash',
        });
      }
      assert.deepEqual(await target.list('q/'), [...keys].sort());
      const home = ssh().home;
      for (const stray of ['pwned', 'pwned2', 'pwned3', 'pwned4']) {
        assert.equal(existsSync(join(home, stray)), false, `${stray} was created: a key ran as a command`);
        assert.equal(existsSync(join(root.local, stray)), false);
      }
    });
  });

  it('reports free space exactly as df -B1 does, for the filesystem under its root', async () => {
    await withRoot('nas', async (root) => {
      const mount = join(root.local, 'fs');
      await withTmpfs(mount, 'size=8m', async () => {
        const onTmpfs = createSftpTarget(configFor('nas', mount));
        try {
          await onTmpfs.put('filler', bodyOf(randomBytes(3 * MiB)), { signal: never });
          const space = await onTmpfs.free?.();
          assert.ok(space);
          const [avail, size] = dfBytes(mount);
          assert.equal(space.freeBytes, avail);
          assert.equal(space.totalBytes, size);
          assert.equal(space.totalBytes, 8 * MiB);
          assert.ok(space.freeBytes <= 5 * MiB, `3 MiB of 8 MiB used, yet ${space.freeBytes} bytes free`);
          assert.equal(space.path, mount);
        } finally {
          await onTmpfs.close();
        }
      });
    });
  });

  it('reports free space for a chrooted SFTP-only account too', async () => {
    await withTarget('sftp-only', async (target, root) => {
      const space = await target.free?.();
      assert.ok(space);
      assert.equal(space.path, root.remote);
      assert.ok(space.totalBytes > 0 && space.freeBytes <= space.totalBytes);
      const [, size] = dfBytes(root.local);
      assert.equal(space.totalBytes, size);
    });
  });

  it('fails a write to a full disk with a permanent "full" error and no partial file', async () => {
    await withRoot('nas', async (root) => {
      const mount = join(root.local, 'full');
      await withTmpfs(mount, 'size=1m', async () => {
        const onTmpfs = createSftpTarget(configFor('nas', mount));
        try {
          const error = await assertTargetError(
            onTmpfs.put('job/set/big.tmp-1', bodyOf(randomBytes(2 * MiB)), { signal: never }),
            {
              permanent: true,
              message: [/job\/set\/big\.tmp-1/, /disk or the account's quota is full/, /bytes are free/],
            },
            onTmpfs,
          );
          // Which request meets the full disk first (a write, or the close that flushes) depends on
          // timing; when it is a write, the message says how far it got.
          assert.match(error.message, /after \d+ bytes|failed: the server answered/);
          assert.deepEqual(await filesUnder(mount), [], 'the partial object was removed');
          await onTmpfs.put('job/set/small', bodyOf(Buffer.from('fits')), { signal: never });
          assert.equal(await readFile(join(mount, 'job/set/small'), 'utf8'), 'fits');
        } finally {
          await onTmpfs.close();
        }
      });
    });
  });
});

/** df -B1 of the filesystem holding `path`: [available, size]. */
function dfBytes(path: string): [number, number] {
  const [line] = execFileSync('df', ['-B1', '--output=avail,size', path], {
    encoding: 'utf8',
    env: { ...process.env, LC_ALL: 'C' },
  })
    .trim()
    .split('\n')
    .slice(1);
  const [avail, size] = (line ?? '').trim().split(/\s+/).map(Number);
  return [avail as number, size as number];
}

/** Mounts a tmpfs owned by bpnas on `dir` (created) for the duration of `fn`, then unmounts it. */
async function withTmpfs(dir: string, options: string, fn: () => Promise<void>): Promise<void> {
  const owner = await stat(ssh().home);
  await mkdir(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `${options},uid=${owner.uid},gid=${owner.gid},mode=0700`, 'tmpfs', dir]);
  try {
    await fn();
  } finally {
    try {
      execFileSync('umount', [dir]);
    } catch {
      execFileSync('umount', ['-l', dir]); // something still holds it open: detach anyway
    }
    await rm(dir, { recursive: true, force: true });
  }
}

describe('sftp target: what verifyObject sees after the server side changed', () => {
  for (const account of ['nas', 'sftp-only'] as const) {
    it(`${account}: an object truncated after put reports its real size and hash`, async () => {
      await withTarget(account, async (target, root) => {
        const data = randomBytes(2 * MiB);
        await target.put('set/o.bin', bodyOf(data), { signal: never });
        const cut = data.subarray(0, MiB + 5);
        await writeFile(join(root.local, 'set/o.bin'), cut);
        const seen = await target.verifyObject('set/o.bin', { signal: never });
        assert.equal(seen.bytes, cut.length);
        assert.equal(seen.sha256, sha256(cut));
      });
    });

    it(`${account}: an object deleted after put is not found, not proven`, async () => {
      await withTarget(account, async (target, root) => {
        await target.put('set/o.bin', bodyOf(randomBytes(1000)), { signal: never });
        await unlink(join(root.local, 'set/o.bin'));
        await assertTargetError(
          target.verifyObject('set/o.bin', { signal: never }),
          { permanent: false, message: [/no such object/], notFound: true },
          target,
        );
      });
    });

    it(`${account}: an object the account cannot read fails verification`, async () => {
      await withTarget(account, async (target, root) => {
        await target.put('set/o.bin', bodyOf(randomBytes(1000)), { signal: never });
        await chmod(join(root.local, 'set/o.bin'), 0o000);
        await assertTargetError(
          target.verifyObject('set/o.bin', { signal: never }),
          { permanent: true, message: [/set\/o\.bin/, /Permission denied/i] },
          target,
        );
      });
    });
  }
});

describe('sftp target: aborts', () => {
  for (const account of ['nas', 'sftp-only'] as const) {
    it(`${account}: verifyObject and get stop with the abort's reason`, async () => {
      await withTarget(account, async (target) => {
        await target.put('set/o.bin', bodyOf(randomBytes(4 * MiB)), { signal: never });
        const reason = new Error('run interrupted');
        const aborted = new AbortController();
        aborted.abort(reason);
        await assert.rejects(target.verifyObject('set/o.bin', { signal: aborted.signal }), (error) => error === reason);

        const midway = new AbortController();
        const stream = await target.get('set/o.bin', { signal: midway.signal });
        let read = 0;
        await assert.rejects(
          (async () => {
            for await (const chunk of stream as AsyncIterable<Buffer>) {
              read += chunk.length;
              if (read >= MiB) midway.abort(reason);
            }
          })(),
          (error) => error === reason,
        );
        assert.ok(read < 4 * MiB, `the read stopped early (${read} bytes)`);
        // The connection is still good for the next call.
        assert.equal((await target.verifyObject('set/o.bin', { signal: never })).bytes, 4 * MiB);
      });
    });
  }
});

describe('sftp target: host keys', () => {
  let dir: string;
  before(async () => {
    dir = await tempDir('hostkeys');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A target on bpnas's home (which exists) with its own known_hosts. */
  const targetWith = (knownHosts: string, extra: Partial<SftpTargetConfig> = {}, tuning: SftpTargetTuning = {}) =>
    createSftpTarget(configFor('nas', ssh().home, { knownHosts, ...extra }), tuning);

  it('refuses an unknown host, permanently, with its fingerprint and how to pin it', async () => {
    const knownHosts = join(dir, 'absent', 'known_hosts');
    const target = targetWith(knownHosts);
    try {
      const s = ssh();
      await assertTargetError(target.list('x/'), {
        permanent: true,
        message: [
          /not in .*known_hosts/,
          /does not exist/,
          literally(fingerprintOf(serverKeyBlob())),
          literally(`ssh-keyscan -p ${s.port} ${s.host} >> ${knownHosts}`),
          /acceptNewHostKey/,
        ],
      });
      assert.equal(existsSync(knownHosts), false, 'nothing was pinned');
    } finally {
      await target.close();
    }
  });

  it('refuses an unknown host when the file only knows others', async () => {
    const knownHosts = join(dir, 'others');
    await writeFile(knownHosts, `nas.lan ${ssh().hostPublicKey}\n[127.0.0.1]:1 ${ssh().hostPublicKey}\n`);
    const target = targetWith(knownHosts);
    try {
      await assertTargetError(target.list('x/'), { permanent: true, message: [/not in/, /ssh-keyscan/] });
    } finally {
      await target.close();
    }
  });

  it('acceptNewHostKey pins the key (0600 file), logs its fingerprint, and the pin holds for ssh and for backproof', async () => {
    const knownHosts = join(dir, 'pinned', 'known_hosts');
    const log = recordingLogger();
    const first = targetWith(knownHosts, { acceptNewHostKey: true }, { log });
    try {
      await first.list('x/');
    } finally {
      await first.close();
    }
    assert.equal((await stat(knownHosts)).mode & 0o777, 0o600);
    assert.equal(await readFile(knownHosts, 'utf8'), `${hostField()} ${ssh().hostPublicKey}\n`);
    const pinned = log.lines.filter((l) => l.level === 'warn');
    assert.equal(pinned.length, 1, JSON.stringify(log.lines));
    assert.equal(pinned[0]?.fields?.fingerprint, fingerprintOf(serverKeyBlob()));
    assert.match(pinned[0]?.message ?? '', /pinned the host key/);

    // A second connection, now strict, trusts the pin; and so does OpenSSH's own client.
    const second = targetWith(knownHosts);
    try {
      assert.deepEqual(await second.list(`${uniqueName('none')}/`), []);
    } finally {
      await second.close();
    }
    const s = ssh();
    const out = execFileSync(
      'ssh',
      [
        ...['-p', String(s.port), '-i', s.identityFile, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes'],
        ...[
          '-o',
          `UserKnownHostsFile=${knownHosts}`,
          '-o',
          'StrictHostKeyChecking=yes',
          '-o',
          'GlobalKnownHostsFile=/dev/null',
        ],
        `${s.user}@${s.host}`,
        'echo pinned-ok',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(out.trim(), 'pinned-ok');
    assert.equal(await readFile(knownHosts, 'utf8'), `${hostField()} ${ssh().hostPublicKey}\n`, 'pinned once');
  });

  it('refuses a changed host key naming both fingerprints, even with acceptNewHostKey, and pins nothing', async () => {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'impostor')]);
    const impostor = (await readFile(join(dir, 'impostor.pub'), 'utf8')).split(' ').slice(0, 2).join(' ');
    const impostorFingerprint = fingerprintOf(Buffer.from(impostor.split(' ')[1] as string, 'base64'));
    const knownHosts = join(dir, 'changed');
    const content = `# pinned long ago\n${hostField()} ${impostor}\n`;
    await writeFile(knownHosts, content);
    for (const acceptNewHostKey of [false, true]) {
      const target = targetWith(knownHosts, { acceptNewHostKey });
      try {
        await assertTargetError(target.list('x/'), {
          permanent: true,
          message: [
            /HOST KEY CHANGED/,
            literally(fingerprintOf(serverKeyBlob())),
            literally(`${impostorFingerprint} (line 2)`),
          ],
        });
      } finally {
        await target.close();
      }
      assert.equal(await readFile(knownHosts, 'utf8'), content, 'the known_hosts file is untouched');
    }
  });

  it('asks a server with several host keys for the type that is pinned', async () => {
    const sshd = await PrivateSshd.start({ user: ssh().user, hostKeys: ['ed25519', 'rsa'] });
    try {
      for (const [pinned, other] of [
        ['rsa', 'ed25519'],
        ['ed25519', 'rsa'],
      ] as const) {
        const knownHosts = join(dir, `only-${pinned}`);
        await writeFile(knownHosts, `[127.0.0.1]:${sshd.port} ${sshd.publicKeys[pinned]}\n`);
        const target = createSftpTarget({ ...configFor('nas', ssh().home), port: sshd.port, knownHosts });
        try {
          assert.deepEqual(await target.list(`${uniqueName('none')}/`), [], `${pinned} pinned, ${other} not`);
        } finally {
          await target.close();
        }
      }
    } finally {
      await sshd.stop();
    }
  });

  it('accepts the server through a hashed known_hosts entry (ssh-keygen -H)', async () => {
    const knownHosts = join(dir, 'hashed');
    await copyFile(ssh().knownHosts, knownHosts);
    execFileSync('ssh-keygen', ['-q', '-H', '-f', knownHosts], { stdio: 'ignore' });
    assert.ok(!(await readFile(knownHosts, 'utf8')).includes('127.0.0.1'), 'the entry is hashed');
    const target = targetWith(knownHosts);
    try {
      assert.deepEqual(await target.list(`${uniqueName('none')}/`), []);
    } finally {
      await target.close();
    }
  });

  it('refuses a key marked @revoked, even where a plain line pins it', async () => {
    const knownHosts = join(dir, 'revoked');
    await writeFile(knownHosts, `${hostField()} ${ssh().hostPublicKey}\n@revoked * ${ssh().hostPublicKey}\n`);
    const target = targetWith(knownHosts, { acceptNewHostKey: true });
    try {
      await assertTargetError(target.list('x/'), { permanent: true, message: [/@revoked/, /line 2/] });
    } finally {
      await target.close();
    }
  });

  it('refuses a host known only through @cert-authority, saying host certificates are not verified', async () => {
    const knownHosts = join(dir, 'ca');
    await writeFile(knownHosts, `@cert-authority ${hostField()} ${ssh().hostPublicKey}\n`);
    const target = targetWith(knownHosts, { acceptNewHostKey: true });
    try {
      await assertTargetError(target.list('x/'), {
        permanent: true,
        message: [/@cert-authority/, /does not verify host certificates/],
      });
      assert.equal((await readFile(knownHosts, 'utf8')).split('\n').length, 2, 'nothing was pinned');
    } finally {
      await target.close();
    }
  });
});

describe('sftp target: client keys and unreachable servers', () => {
  let dir: string;
  before(async () => {
    dir = await tempDir('keys');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const targetWith = (extra: Partial<SftpTargetConfig>, tuning: SftpTargetTuning = {}) =>
    createSftpTarget(configFor('nas', ssh().home, extra), tuning);

  it('fails permanently when the server refuses the client key, saying where the public key goes', async () => {
    const identityFile = join(dir, 'stranger');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', identityFile]);
    const target = targetWith({ identityFile });
    try {
      await assertTargetError(target.put('x', bodyOf(Buffer.from('x')), { signal: never }), {
        permanent: true,
        message: [/refused key authentication for user bpnas/, /authorized_keys/, literally(identityFile)],
      });
    } finally {
      await target.close();
    }
  });

  it('fails permanently on a missing identity file', async () => {
    const target = targetWith({ identityFile: join(dir, 'no-such-key') });
    try {
      await assertTargetError(target.list('x/'), { permanent: true, message: [/identityFile .* does not exist/] });
    } finally {
      await target.close();
    }
  });

  it('uses passphraseFile for an encrypted key, and never shows the passphrase', async () => {
    const passphrase = 'correct horse battery staple';
    const identityFile = join(dir, 'locked');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-f', identityFile]);
    const wrongFile = join(dir, 'wrong.pass');
    const rightFile = join(dir, 'right.pass');
    await writeFile(wrongFile, 'not the passphrase\n', { mode: 0o600 });
    await writeFile(rightFile, `${passphrase}\n`, { mode: 0o600 });
    const cases: [Partial<SftpTargetConfig>, RegExp[]][] = [
      [{ identityFile }, [/cannot use identityFile/, /set passphraseFile/]],
      [{ identityFile, passphraseFile: wrongFile }, [/cannot use identityFile/]],
      [{ identityFile, passphraseFile: join(dir, 'absent.pass') }, [/absent\.pass does not exist/]],
      // The right passphrase unlocks the key; the server does not know this key, so auth is refused.
      [{ identityFile, passphraseFile: rightFile }, [/refused key authentication/]],
    ];
    for (const [extra, message] of cases) {
      const target = targetWith(extra);
      try {
        await assertTargetError(target.list('x/'), {
          permanent: true,
          message,
          absent: [passphrase, 'not the passphrase'],
        });
      } finally {
        await target.close();
      }
    }
  });

  it('fails, transiently and at once, when nothing listens on the port', async () => {
    const target = targetWith({ port: await closedPort() });
    try {
      await assertTargetError(target.put('x', bodyOf(Buffer.from('x')), { signal: never }), {
        permanent: false,
        message: [/connection refused/, /check the port/],
      });
    } finally {
      await target.close();
    }
  });

  it('fails transiently, not hanging, when the port accepts but never speaks SSH', async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    const target = targetWith({ port }, { readyTimeoutMs: 1000 });
    try {
      await assertTargetError(target.list('x/'), { permanent: false, message: [/timed out after 1000 ms/] });
    } finally {
      await target.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('fails transiently when the peer closes the connection before SSH is ready', async () => {
    const rude: Server = createServer((socket) => {
      socket.on('error', () => {});
      socket.resume(); // read what the client says, so its close reaches us
      socket.end('not ssh\r\n');
    });
    await new Promise<void>((resolve) => rude.listen(0, '127.0.0.1', resolve));
    const { port } = rude.address() as { port: number };
    const target = targetWith({ port }, { readyTimeoutMs: 5000 });
    try {
      await assertTargetError(target.list('x/'), {
        permanent: false,
        message: [new RegExp(`127\\.0\\.0\\.1:${port}`)],
      });
    } finally {
      await target.close();
      await new Promise<void>((resolve) => rude.close(() => resolve()));
    }
  });
});

describe('sftp target: the server dies or lies', () => {
  it('rejects (transiently) a put when sshd is killed mid-upload, leaves nothing at the final key, and reconnects', async () => {
    const sshd = await PrivateSshd.start({ user: ssh().user });
    const root = await freshRoot('nas');
    const target = createSftpTarget({ ...configFor('nas', root.remote), port: sshd.port, knownHosts: sshd.knownHosts });
    try {
      // The connection is up and proven before the upload starts.
      await target.put('set/before', bodyOf(Buffer.from('before')), { signal: never });
      const finalKey = 'set/big.bin';
      const tempKey = `${finalKey}.tmp-1`;
      const piece = randomBytes(256 * 1024);
      let produced = 0;
      let killed = 0;
      async function* body() {
        while (produced < 256 * MiB) {
          if (produced === 4 * MiB) killed = await sshd.kill();
          produced += piece.length;
          yield piece;
        }
      }
      await assertTargetError(target.put(tempKey, Readable.from(body()), { signal: never }), {
        permanent: false,
        message: [/set\/big\.bin\.tmp-1/, /connection .* was lost|No response from server/],
      });
      assert.ok(killed >= 2, `killed sshd and its session (${killed} processes)`);
      assert.ok(produced < 256 * MiB, 'put stopped reading its body');
      assert.equal(existsSync(join(root.local, finalKey)), false, 'nothing in place of the final key');

      // While the server is down, calls fail (transiently) rather than hang.
      await assertTargetError(target.stat('set/before'), { permanent: false, message: [/connection refused/] });

      // The server is back: the next call reconnects by itself, and the core's cleanup works.
      await sshd.run();
      await assertTargetError(
        target.stat(finalKey),
        { permanent: false, message: [/no such object/], notFound: true },
        target,
      );
      await target.remove(tempKey);
      assert.deepEqual(await target.list('set/'), ['set/before']);
      assert.deepEqual(await filesUnder(root.local), ['set/before']);
    } finally {
      await target.close();
      await sshd.stop();
      await rm(root.local, { recursive: true, force: true });
    }
  });

  it('rejects the pending call when a frozen server stops answering keepalives', async () => {
    const sshd = await PrivateSshd.start({ user: ssh().user });
    const root = await freshRoot('nas');
    const target = createSftpTarget(
      { ...configFor('nas', root.remote), port: sshd.port, knownHosts: sshd.knownHosts },
      { keepaliveIntervalMs: 200 },
    );
    try {
      await target.put('set/a', bodyOf(Buffer.from('a')), { signal: never });
      assert.ok((await sshd.freeze()) >= 1, 'froze the session');
      await assertTargetError(target.stat('set/a'), { permanent: false, message: [/connection .* was lost/] });
    } finally {
      await target.close();
      await sshd.stop();
      await rm(root.local, { recursive: true, force: true });
    }
  });

  it('opens a new connection after close()', async () => {
    await withTarget('nas', async (target) => {
      await target.put('a', bodyOf(Buffer.from('a')), { signal: never });
      await target.close();
      assert.deepEqual(await target.list(''), ['a']);
    });
  });

  describe('a sha256sum on the server that misbehaves after the probe', () => {
    let sshd: PrivateSshd;
    let bin: string;
    const modeFile = () => join(bin, 'mode');
    before(async () => {
      bin = await tempDir('fakebin');
      await chmod(bin, 0o755);
      // Honest for the probe (so the account counts as able to hash), then does what `mode` says.
      await writeFile(
        join(bin, 'sha256sum'),
        [
          '#!/bin/sh',
          'case "$2" in *.hashprobe.tmp-*) exec /usr/bin/sha256sum "$@" ;; esac',
          `mode=$(cat ${join(bin, 'mode')})`,
          'case "$mode" in',
          '  empty) exit 0 ;;',
          '  blank-hash) printf \'  %s\\n\' "$2" ;;',
          '  short-hash) printf \'%s  %s\\n\' "$(/usr/bin/sha256sum "$2" | cut -c1-63)" "$2" ;;',
          '  other-name) /usr/bin/sha256sum "$2" | sed \'s/  .*/  other/\' ;;',
          '  two-lines) /usr/bin/sha256sum "$2"; /usr/bin/sha256sum "$2" ;;',
          '  stderr) /usr/bin/sha256sum "$2"; echo "sha256sum: read error" >&2 ;;',
          '  exit1) /usr/bin/sha256sum "$2"; exit 1 ;;',
          '  killed) kill -9 $$ ;;',
          '  flood) /usr/bin/sha256sum "$2"; yes | head -c 100000 ;;',
          '  honest) exec /usr/bin/sha256sum "$@" ;;',
          'esac',
          '',
        ].join('\n'),
        { mode: 0o755 },
      );
      sshd = await PrivateSshd.start({ user: ssh().user, setEnv: `PATH=${bin}:/usr/bin:/bin` });
    });
    after(async () => {
      await sshd.stop();
      await rm(bin, { recursive: true, force: true });
    });

    it('fails verification, never passing it, whatever the wrong answer', async () => {
      const root = await freshRoot('nas');
      const target = createSftpTarget({
        ...configFor('nas', root.remote),
        port: sshd.port,
        knownHosts: sshd.knownHosts,
      });
      try {
        const data = randomBytes(100_000);
        await target.put('set/o.bin', bodyOf(data), { signal: never });
        await writeFile(modeFile(), 'honest\n');
        assert.deepEqual(await target.verifyObject('set/o.bin', { signal: never }), {
          bytes: data.length,
          sha256: sha256(data),
          level: 'remote-hash',
        });
        for (const [mode, said] of [
          ['empty', /exited with code 0 and printed no hash/],
          ['blank-hash', /exited with code 0/],
          ['short-hash', /exited with code 0/],
          ['other-name', /other/],
          ['two-lines', /exited with code 0/],
          ['stderr', /read error/],
          ['exit1', /exited with code 1/],
          ['killed', /without an exit status|exited with code 137/],
          ['flood', /more than 65536 bytes/],
        ] as const) {
          await writeFile(modeFile(), `${mode}\n`);
          await assertTargetError(
            target.verifyObject('set/o.bin', { signal: never }),
            { permanent: true, message: [/sha256sum of .*set\/o\.bin/, /not proven/, said] },
            target,
          );
        }
      } finally {
        await target.close();
        await rm(root.local, { recursive: true, force: true });
      }
    });
  });
});

describe('sftp target: parsing sha256sum output', () => {
  const hash = 'a'.repeat(64);
  it('accepts exactly one line: 64 lowercase hex digits, two spaces, the path', () => {
    assert.equal(parseSha256sum(`${hash}  /r/a b.bin\n`, '/r/a b.bin'), hash);
  });
  it('unescapes a name sha256sum escaped (backslash, newline)', () => {
    assert.equal(parseSha256sum(`\\${hash}  /r/a\\\\b\\nc\n`, '/r/a\\b\nc'), hash);
  });
  it('refuses everything else', () => {
    for (const output of [
      '',
      '\n',
      `  /r/x\n`,
      `${hash}  /r/x`,
      `${hash} /r/x\n`,
      `${hash.slice(1)}  /r/x\n`,
      `${hash.toUpperCase()}  /r/x\n`,
      `${hash}  /r/y\n`,
      `${hash}  /r/x\n${hash}  /r/x\n`,
      `${'g'.repeat(64)}  /r/x\n`,
      `sha256sum: /r/x: No such file or directory\n`,
    ]) {
      assert.equal(parseSha256sum(output, '/r/x'), undefined, JSON.stringify(output));
    }
  });
  it('quotes for the shell so that sh gives back the very same argument', () => {
    for (const text of ["it's", 'a "b" $(c) `d` \\e; f & g | h', "''", '', 'new\nline']) {
      const echoed = execFileSync('sh', ['-c', `printf %s ${shellQuote(text)}`], { encoding: 'utf8' });
      assert.equal(echoed, text);
    }
  });
});
