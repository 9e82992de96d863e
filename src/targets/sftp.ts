// Target `sftp`: a directory on an SSH server (a NAS), over SFTP. One SSH connection per target,
// opened on first use, reused, and reopened on the next call after it drops. Objects are written
// with `wx` (never replacing anything), renamed with plain SFTP rename (which OpenSSH refuses when
// the destination exists), and proved by `sha256sum` on the server where the account may run
// commands, else by reading them back over SFTP.
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import type { Client, ClientChannel, ConnectConfig, SFTPWrapper, Stats } from 'ssh2';
import type { SftpTargetConfig } from '../config/schema.js';
import { TargetError } from '../lib/errors.js';
import { type Logger, silentLogger } from '../lib/log.js';
import { readSecret } from '../lib/secrets.js';
import {
  checkHostKey,
  fingerprintOf,
  hostNameFor,
  keyTypeOf,
  pinHostKey,
  pinnedKeyTypes,
  readKnownHosts,
} from './known-hosts.js';
import type { FreeSpace, ObjectStat, Target, VerificationLevel } from './types.js';

export interface SftpTargetTuning {
  /** Where notable events go (a host key pinned by `acceptNewHostKey`). Default: nowhere. */
  log?: Logger;
  /** How long the TCP connect, SSH handshake and authentication may take, in ms. Default 20000. */
  readyTimeoutMs?: number;
  /** Keepalive interval in ms; three unanswered keepalives drop the connection. Default 15000. */
  keepaliveIntervalMs?: number;
}

/** SFTP status codes (draft-ietf-secsh-filexfer-02), as ssh2 puts them in `error.code`. */
const STATUS = {
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const;

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

/** Bytes per SFTP write or read request, and how many may be outstanding: a bounded window. */
const REQUEST_BYTES = 64 * 1024;
const WRITES_IN_FLIGHT = 32;
const READS_AHEAD = 16;
/** OpenSSH allows 10 channels per connection by default; SFTP holds one. */
const EXEC_CHANNELS = 4;
/** More output than this from `sha256sum` of one file is not what we asked for. */
const EXEC_OUTPUT_LIMIT = 64 * 1024;

/** Host key algorithms ssh2 supports, in its default order of preference. */
const HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/** Errors this module made for objects that do not exist (see `isNotFound`). */
const notFoundErrors = new WeakSet<Error>();

interface Session {
  client: Client;
  sftp: SFTPWrapper;
  /** Absolute path of the target root on the server. */
  root: string;
  closed: boolean;
  /** Rejecters of the requests in flight: the connection ending rejects them all, so nothing hangs. */
  pending: Set<(error: Error) => void>;
  /** How this connection proves objects, probed once. */
  hashing: Promise<VerificationLevel> | undefined;
  execSlots: number;
  execQueue: (() => void)[];
}

type Done<T> = (error: Error | null | undefined, value: T) => void;

export function createSftpTarget(config: SftpTargetConfig, tuning: SftpTargetTuning = {}): Target {
  const name = config.name;
  const log = tuning.log ?? silentLogger;
  const readyTimeout = tuning.readyTimeoutMs ?? 20_000;
  const hostPort = `${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`;
  const where = `sftp ${config.user}@${hostPort}${config.path.startsWith('/') ? '' : '/~/'}${config.path}`;

  let current: Promise<Session> | undefined;

  // ------------------------------------------------------------------------------------------
  // Errors

  const notFound = (action: string, key: string, cause: unknown): TargetError => {
    const error = new TargetError(name, `${action} ${key} failed: no such object on ${where}`, {
      permanent: false,
      cause,
    });
    notFoundErrors.add(error);
    return error;
  };

  const rootMissing = (root: string, cause?: unknown): TargetError =>
    new TargetError(
      name,
      `${root} does not exist or is not a directory on ${hostPort}; create it (ssh ${config.user}@${config.host} mkdir -p ${root}) ` +
        'or check that the NAS share is mounted there',
      { permanent: true, cause },
    );

  /** Turns anything a call threw into a TargetError that says what failed and whether retrying can help. */
  const fail = (action: string, key: string, error: unknown): TargetError => {
    if (error instanceof TargetError) return error;
    const message = error instanceof Error ? error.message : String(error);
    const code = (error as { code?: unknown } | undefined)?.code;
    if (typeof code === 'number') {
      // An answer from the SFTP server: the connection is fine, the request was refused.
      if (code === STATUS.NO_SUCH_FILE) return notFound(action, key, error);
      const hint =
        code === STATUS.PERMISSION_DENIED
          ? ` (check that ${config.user} may read and write ${config.path} on ${config.host})`
          : code === STATUS.OP_UNSUPPORTED
            ? ' (the SFTP server does not support this operation)'
            : '';
      const transient = code === STATUS.NO_CONNECTION || code === STATUS.CONNECTION_LOST;
      return new TargetError(name, `${action} ${key} on ${where} failed: ${message}${hint}`, {
        permanent: !transient,
        cause: error,
      });
    }
    // Anything else is the connection: reset, timeout, server gone. Retrying may help.
    return new TargetError(name, `${action} ${key} on ${where} failed: ${message}`, { permanent: false, cause: error });
  };

  // ------------------------------------------------------------------------------------------
  // Keys and paths

  /** Refuses keys that are absolute or climb out; returns the key normalized ('' for the root). */
  const checkKey = (key: string, allowRoot: boolean): string => {
    const normalized = posix.normalize(key).replace(/\/+$/, '');
    const bad =
      key.startsWith('/') ||
      key.includes('\0') ||
      key.split('/').includes('..') ||
      normalized.startsWith('..') ||
      (!allowRoot && (normalized === '' || normalized === '.'));
    if (bad) {
      throw new TargetError(name, `refusing key outside the target root: ${JSON.stringify(key)}`, { permanent: true });
    }
    return normalized === '.' ? '' : normalized;
  };

  const pathIn = (s: Session, key: string): string => (key === '' ? s.root : posix.join(s.root, key));

  const isBelowRoot = (s: Session, path: string): boolean =>
    path !== s.root && path.startsWith(s.root === '/' ? '/' : `${s.root}/`);

  const keyOf = (s: Session, path: string): string => path.slice(s.root === '/' ? 1 : s.root.length + 1);

  // ------------------------------------------------------------------------------------------
  // The connection

  const session = (): Promise<Session> => {
    if (!current) {
      const attempt: Promise<Session> = openSession(() => {
        if (current === attempt) current = undefined;
      });
      current = attempt;
      attempt.catch(() => {
        if (current === attempt) current = undefined;
      });
    }
    return current;
  };

  const openSession = async (onClosed: () => void): Promise<Session> => {
    const connectFailed = (what: string, error: unknown, permanent: boolean): TargetError =>
      new TargetError(name, what, { permanent, cause: error });

    let privateKey: Buffer;
    try {
      privateKey = await readFile(config.identityFile);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw connectFailed(
        code === 'ENOENT'
          ? `identityFile ${config.identityFile} does not exist; create a key (ssh-keygen -t ed25519 -f ${config.identityFile}) and install its .pub on the server`
          : `cannot read identityFile ${config.identityFile}: ${(error as Error).message}`,
        error,
        true,
      );
    }
    let passphrase: string | undefined;
    try {
      passphrase =
        config.passphraseFile === undefined
          ? undefined
          : await readSecret({ file: config.passphraseFile }, 'passphraseFile');
    } catch (error) {
      throw connectFailed((error as Error).message, error, true);
    }
    let known: Awaited<ReturnType<typeof readKnownHosts>>;
    try {
      known = await readKnownHosts(config.knownHosts);
    } catch (error) {
      throw connectFailed(`cannot read knownHosts ${config.knownHosts}: ${(error as Error).message}`, error, true);
    }

    const { Client: SshClient } = await import('ssh2');
    const client = new SshClient();
    const hostName = hostNameFor(config.host.toLowerCase(), config.port);
    const pinned = pinnedKeyTypes(known.entries, hostName);
    let refusal: TargetError | undefined;

    /** Why the key a server offers is refused, or undefined when it is pinned (or may be pinned now). */
    const refusalOf = (key: Buffer): string | undefined => {
      const offered = `${keyTypeOf(key) || 'unknown type'} ${fingerprintOf(key)}`;
      const verdict = checkHostKey(known.entries, hostName, key);
      switch (verdict.status) {
        case 'known':
          return undefined;
        case 'revoked':
          return (
            `the host key of ${hostName} (${offered}) is marked @revoked in ${config.knownHosts} line ${verdict.line}; ` +
            'refusing to connect. Find out why it was revoked before trusting this server'
          );
        case 'changed': {
          const expected = verdict.expected.map((e) => `${e.keyType} ${e.fingerprint} (line ${e.line})`).join(', ');
          return (
            `HOST KEY CHANGED for ${hostName}: the server offered ${offered}, but ${config.knownHosts} holds ${expected}. ` +
            'Someone may be intercepting the connection, or the NAS was reinstalled. Check the new fingerprint with ' +
            "the NAS's admin; only then remove the old line and pin the new key"
          );
        }
        case 'unknown':
          if (verdict.certAuthorityLines.length > 0) {
            return (
              `${hostName} is known only through @cert-authority (${config.knownHosts} line ${verdict.certAuthorityLines.join(', ')}), ` +
              `and backproof does not verify host certificates; pin the server's own key (it offered ${offered})`
            );
          }
          if (config.acceptNewHostKey) return undefined;
          return (
            `the host key of ${hostName} is not in ${config.knownHosts}${known.exists ? '' : ' (the file does not exist)'}; ` +
            `the server offered ${offered}. Check that fingerprint with the NAS's admin, then pin it: ` +
            `ssh-keyscan -p ${config.port} ${config.host} >> ${config.knownHosts} (or set acceptNewHostKey: true once)`
          );
      }
    };

    const verifyHostKey = (key: Buffer, verify: (ok: boolean) => void): void => {
      const refused = refusalOf(key);
      if (refused !== undefined) {
        refusal = connectFailed(refused, undefined, true);
        verify(false);
      } else if (checkHostKey(known.entries, hostName, key).status === 'known') {
        verify(true);
      } else {
        // Unknown, and acceptNewHostKey: pin it, say so, then go on.
        pinHostKey(config.knownHosts, hostName, key).then(
          () => {
            log.warn(`target ${name}: pinned the host key of ${hostName} into ${config.knownHosts}`, {
              target: name,
              host: hostName,
              keyType: keyTypeOf(key),
              fingerprint: fingerprintOf(key),
            });
            verify(true);
          },
          (error: unknown) => {
            refusal = connectFailed(
              `cannot pin the host key of ${hostName} into ${config.knownHosts}: ${(error as Error).message}`,
              error,
              true,
            );
            verify(false);
          },
        );
      }
    };

    const options: ConnectConfig = {
      host: config.host,
      port: config.port,
      username: config.user,
      privateKey,
      readyTimeout,
      keepaliveInterval: tuning.keepaliveIntervalMs ?? 15_000,
      keepaliveCountMax: 3,
      tryKeyboard: false,
      // Ask for a key type already pinned first, so a server with several keys shows the one we know.
      algorithms: {
        serverHostKey: [
          ...HOST_KEY_ALGORITHMS.filter((a) => pinned.includes(algorithmKeyType(a))),
          ...HOST_KEY_ALGORITHMS.filter((a) => !pinned.includes(algorithmKeyType(a))),
        ] as NonNullable<ConnectConfig['algorithms']>['serverHostKey'],
      },
      hostVerifier: verifyHostKey as ConnectConfig['hostVerifier'],
    };
    if (passphrase !== undefined) options.passphrase = passphrase;

    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (error?: TargetError): void => {
        if (settled) return;
        settled = true;
        if (error) reject(error);
        else resolve();
      };
      client.once('ready', () => settle());
      client.once('close', () =>
        settle(
          refusal ??
            connectFailed(
              `the connection to ${hostPort} closed before SSH was ready; is it an SSH server?`,
              undefined,
              false,
            ),
        ),
      );
      // One listener for the connection's whole life: an unheard 'error' would crash the process.
      client.on('error', (error: Error & { level?: string }) => {
        if (settled) {
          // A fatal error on a live connection: make sure it ends, so the requests in flight reject.
          log.debug(`target ${name}: ${error.message}`, { target: name });
          client.destroy();
          return;
        }
        refusal ??= classifyConnectError(error);
        client.end();
        settle(refusal);
      });
      try {
        client.connect(options);
      } catch (error) {
        // ssh2 parses the key synchronously: a wrong passphrase or a malformed key lands here.
        settle(
          connectFailed(
            `cannot use identityFile ${config.identityFile}: ${(error as Error).message}` +
              (config.passphraseFile === undefined ? ' (if the key has a passphrase, set passphraseFile)' : ''),
            error,
            true,
          ),
        );
      }
    });

    const s: Session = {
      client,
      sftp: undefined as unknown as SFTPWrapper,
      root: '',
      closed: false,
      pending: new Set(),
      hashing: undefined,
      execSlots: EXEC_CHANNELS,
      execQueue: [],
    };
    client.on('close', () => {
      s.closed = true;
      onClosed();
      const lost = new Error(`the connection to ${hostPort} was lost`);
      for (const reject of [...s.pending]) reject(lost);
      s.pending.clear();
    });
    try {
      s.sftp = await run<SFTPWrapper>(s, (done) => client.sftp(done));
      // The SFTP channel closing alone (the server's sftp process died) ends the connection too.
      s.sftp.on('close', () => client.end());
      s.root = config.path.startsWith('/')
        ? posix.normalize(config.path).replace(/(.)\/+$/, '$1')
        : posix.join(await run<string>(s, (done) => s.sftp.realpath('.', done)), config.path).replace(/(.)\/+$/, '$1');
    } catch (error) {
      client.end();
      if (error instanceof TargetError) throw error;
      throw new TargetError(name, `opening the SFTP session on ${where} failed: ${(error as Error).message}`, {
        permanent: typeof (error as { code?: unknown }).code === 'number',
        cause: error,
      });
    }
    return s;
  };

  const classifyConnectError = (error: Error & { level?: string; code?: unknown }): TargetError => {
    const code = typeof error.code === 'string' ? error.code : '';
    if (error.level === 'client-authentication') {
      return new TargetError(
        name,
        `the server ${hostPort} refused key authentication for user ${config.user} with ${config.identityFile}; ` +
          `add ${config.identityFile}.pub to ~${config.user}/.ssh/authorized_keys on the server`,
        { permanent: true, cause: error },
      );
    }
    if (error.level === 'client-timeout') {
      return new TargetError(
        name,
        `connecting to ${hostPort} timed out after ${readyTimeout} ms; check host and port, and that sshd answers there`,
        { permanent: false, cause: error },
      );
    }
    if (code === 'ENOTFOUND') {
      return new TargetError(name, `the host name ${config.host} does not resolve; check the target's host`, {
        permanent: true,
        cause: error,
      });
    }
    if (code === 'ECONNREFUSED') {
      return new TargetError(
        name,
        `nothing accepts connections on ${hostPort} (connection refused); check the port and that sshd runs there`,
        { permanent: false, cause: error },
      );
    }
    if (error.level === 'handshake') {
      return new TargetError(name, `the SSH handshake with ${hostPort} failed: ${error.message}`, {
        permanent: true,
        cause: error,
      });
    }
    return new TargetError(name, `connecting to ${hostPort} failed: ${error.message}`, {
      permanent: false,
      cause: error,
    });
  };

  /** Runs one request on the connection; it rejects, never hangs, when the connection ends. */
  function run<T>(s: Session, start: (done: Done<T>) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (s.closed) return reject(new Error(`the connection to ${hostPort} was lost`));
      s.pending.add(reject);
      try {
        start((error, value) => {
          s.pending.delete(reject);
          if (error) reject(error);
          else resolve(value);
        });
      } catch (error) {
        s.pending.delete(reject);
        reject(error);
      }
    });
  }

  const statPath = (s: Session, path: string): Promise<Stats> => run<Stats>(s, (done) => s.sftp.stat(path, done));

  const closeHandle = (s: Session, handle: Buffer): Promise<void> =>
    run<void>(s, (done) => s.sftp.close(handle, (error) => done(error, undefined)));

  const unlinkPath = (s: Session, path: string): Promise<void> =>
    run<void>(s, (done) => s.sftp.unlink(path, (error) => done(error, undefined)));

  const assertRoot = async (s: Session): Promise<void> => {
    const info = await statPath(s, s.root).catch((error: unknown) => {
      if ((error as { code?: unknown }).code === STATUS.NO_SUCH_FILE) throw rootMissing(s.root, error);
      throw error;
    });
    if ((info.mode & S_IFMT) !== S_IFDIR) throw rootMissing(s.root);
  };

  /** `mkdir -p` below the root, by hand; the root itself must exist. */
  const ensureDirectory = async (s: Session, dir: string): Promise<void> => {
    if (dir === s.root) return assertRoot(s);
    try {
      const info = await statPath(s, dir);
      if ((info.mode & S_IFMT) === S_IFDIR) return;
    } catch (error) {
      if ((error as { code?: unknown }).code !== STATUS.NO_SUCH_FILE) throw error;
    }
    await assertRoot(s);
    let path = s.root;
    for (const part of keyOf(s, dir).split('/')) {
      path = posix.join(path, part);
      try {
        await run<void>(s, (done) => s.sftp.mkdir(path, { mode: 0o700 }, (error) => done(error, undefined)));
      } catch (error) {
        // Already there (another put made it a moment ago) is fine; anything else is not.
        const info = await statPath(s, path).catch(() => undefined);
        if (!info || (info.mode & S_IFMT) !== S_IFDIR) throw error;
      }
    }
  };

  // ------------------------------------------------------------------------------------------
  // Writing

  const openForWrite = async (s: Session, key: string, path: string): Promise<Buffer> => {
    for (let attempt = 1; ; attempt++) {
      await ensureDirectory(s, posix.dirname(path));
      try {
        return await run<Buffer>(s, (done) => s.sftp.open(path, 'wx', { mode: 0o600 }, done));
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        // A concurrent remove may have pruned the fresh, empty directory: make it again, once.
        if (code === STATUS.NO_SUCH_FILE && attempt === 1) continue;
        if (code === STATUS.FAILURE && (await statPath(s, path).catch(() => undefined))) {
          throw new TargetError(
            name,
            `writing ${key} failed: it already exists on ${where}, and backproof never overwrites an object`,
            { permanent: true, cause: error },
          );
        }
        throw error;
      }
    }
  };

  /** Streams `body` into an open handle with a bounded number of writes in flight (backpressure). */
  const writeBody = async (s: Session, handle: Buffer, body: Readable, signal: AbortSignal): Promise<number> => {
    const inFlight = new Set<Promise<void>>();
    let position = 0;
    let writeError: unknown;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      signal.throwIfAborted();
      for (let offset = 0; offset < chunk.length; offset += REQUEST_BYTES) {
        if (writeError !== undefined) throw writeError;
        const piece = chunk.subarray(offset, offset + REQUEST_BYTES);
        const at = position;
        position += piece.length;
        const write: Promise<void> = run<void>(s, (done) =>
          s.sftp.write(handle, piece, 0, piece.length, at, (error) => done(error, undefined)),
        ).then(
          () => {
            inFlight.delete(write);
          },
          (error: unknown) => {
            inFlight.delete(write);
            writeError ??= Object.assign(error as Error, { writtenBefore: at });
            throw error;
          },
        );
        write.catch(() => {}); // seen through writeError and the awaits below
        inFlight.add(write);
        if (inFlight.size >= WRITES_IN_FLIGHT) await abortable(Promise.race(inFlight), signal);
      }
    }
    signal.throwIfAborted();
    await abortable(Promise.all(inFlight), signal);
    if (writeError !== undefined) throw writeError;
    return position;
  };

  /** A write the server refused: OpenSSH says only "Failure" for a full disk or quota; look. */
  const writeRefused = async (s: Session, key: string, path: string, error: Error): Promise<TargetError> => {
    let free = '';
    const space = await statvfs(s, posix.dirname(path)).catch(() => undefined);
    if (space) free = `; ${space.freeBytes} bytes are free there`;
    const at = (error as { writtenBefore?: number }).writtenBefore;
    return new TargetError(
      name,
      `writing ${key} to ${where} failed${at === undefined ? '' : ` after ${at} bytes`}: the server answered "${error.message}"${free}. ` +
        "This usually means the NAS's disk or the account's quota is full: free space there or lower retention",
      { permanent: true, cause: error },
    );
  };

  const put: Target['put'] = async (key, body, { signal }) => {
    const checked = checkKey(key, false);
    signal.throwIfAborted();
    let s: Session | undefined;
    let handle: Buffer | undefined;
    let created = false;
    try {
      s = await session();
      const path = pathIn(s, checked);
      handle = await openForWrite(s, key, path);
      created = true;
      await writeBody(s, handle, body, signal);
      // Durable when we say so: fsync@openssh.com where the server has it.
      const open = handle;
      const live = s;
      await run<void>(live, (done) => live.sftp.ext_openssh_fsync(open, (error) => done(error, undefined))).catch(
        (error: Error) => {
          if (!/does not support/.test(error.message)) throw error;
        },
      );
      handle = undefined;
      await closeHandle(s, open);
      return {}; // proven by verifyObject: a read-back or sha256sum on the server
    } catch (error) {
      if (s && handle) await closeHandle(s, handle).catch(() => {});
      const refused =
        s && created && !s.closed && !signal.aborted && (error as { code?: unknown }).code === STATUS.FAILURE
          ? await writeRefused(s, key, pathIn(s, checked), error as Error)
          : undefined;
      // Remove the partial object, but never one that was there before (`wx` refused to open it).
      if (s && created && !s.closed) await unlinkPath(s, pathIn(s, checked)).catch(() => {});
      if (signal.aborted) throw signal.reason;
      throw refused ?? fail('writing', key, error);
    }
  };

  // ------------------------------------------------------------------------------------------
  // Reading

  const openForRead = async (s: Session, path: string): Promise<{ handle: Buffer; bytes: number }> => {
    const handle = await run<Buffer>(s, (done) => s.sftp.open(path, 'r', done));
    try {
      const info = await run<Stats>(s, (done) => s.sftp.fstat(handle, done));
      if ((info.mode & S_IFMT) !== S_IFREG)
        throw Object.assign(new Error('not a regular file'), { code: STATUS.FAILURE });
      return { handle, bytes: info.size };
    } catch (error) {
      await closeHandle(s, handle).catch(() => {});
      throw error;
    }
  };

  /** A stream of a remote file, reading ahead a bounded number of requests. */
  const remoteReadable = (s: Session, key: string, handle: Buffer, signal: AbortSignal): Readable => {
    let next = 0;
    let ahead: { position: number; result: Promise<Buffer> }[] = [];
    let closed = false;
    const request = (position: number): Promise<Buffer> => {
      const buffer = Buffer.allocUnsafe(REQUEST_BYTES);
      const result = run<number>(s, (done) =>
        s.sftp.read(handle, buffer, 0, REQUEST_BYTES, position, (error, bytesRead) => done(error, bytesRead)),
      ).then((bytesRead) => buffer.subarray(0, bytesRead));
      result.catch(() => {}); // a request dropped after a short read or destroy may still fail
      return result;
    };
    const closeOnce = async (): Promise<void> => {
      if (closed) return;
      closed = true;
      await closeHandle(s, handle).catch(() => {});
    };
    const stream = new Readable({
      highWaterMark: 1 << 20,
      read() {
        while (ahead.length < READS_AHEAD) {
          ahead.push({ position: next, result: request(next) });
          next += REQUEST_BYTES;
        }
        const head = ahead.shift() as { position: number; result: Promise<Buffer> };
        head.result.then(
          (data) => {
            if (stream.destroyed) return;
            if (data.length === 0) {
              ahead = [];
              void closeOnce().then(() => stream.push(null));
              return;
            }
            if (data.length < REQUEST_BYTES) {
              // A short read: the requests queued behind it start at the wrong place. Start over after it.
              ahead = [];
              next = head.position + data.length;
            }
            stream.push(data);
          },
          (error: unknown) => stream.destroy(fail('reading', key, error)),
        );
      },
      destroy(error, callback) {
        ahead = [];
        signal.removeEventListener('abort', onAbort);
        void closeOnce().then(() => callback(error));
      },
    });
    const onAbort = (): void => {
      stream.destroy(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    return stream;
  };

  const get: Target['get'] = async (key, { signal }) => {
    const checked = checkKey(key, false);
    try {
      const s = await session();
      const { handle } = await openForRead(s, pathIn(s, checked));
      return remoteReadable(s, key, handle, signal);
    } catch (error) {
      throw fail('reading', key, error);
    }
  };

  // ------------------------------------------------------------------------------------------
  // Proving

  /** Runs a command on the server; collects its output (bounded) and how it ended. */
  const exec = async (
    s: Session,
    command: string,
    signal: AbortSignal,
  ): Promise<{ exitCode: number | undefined; exitSignal: string | undefined; stdout: string; stderr: string }> => {
    // Bounded channels per connection (sshd's MaxSessions).
    if (s.execSlots === 0) await new Promise<void>((resolve) => s.execQueue.push(resolve));
    else s.execSlots -= 1;
    try {
      const channel = await run<ClientChannel>(s, (done) => s.client.exec(command, done));
      return await run(s, (done) => {
        const stdout: Buffer[] = [];
        const stderr: Buffer[] = [];
        let outBytes = 0;
        let exitCode: number | undefined;
        let exitSignal: string | undefined;
        const collect = (into: Buffer[]) => (chunk: Buffer) => {
          outBytes += chunk.length;
          if (outBytes <= EXEC_OUTPUT_LIMIT) into.push(chunk);
        };
        const onAbort = (): void => {
          channel.close();
          done(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)), undefined as never);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        channel.on('data', collect(stdout));
        channel.stderr.on('data', collect(stderr));
        channel.on('exit', (code: number | null, signalName?: string) => {
          exitCode = code ?? undefined;
          exitSignal = signalName ?? undefined;
        });
        channel.on('close', () => {
          signal.removeEventListener('abort', onAbort);
          if (outBytes > EXEC_OUTPUT_LIMIT) {
            // Not the answer to our question: report it as an error line, which no caller accepts.
            done(undefined, {
              exitCode,
              exitSignal,
              stdout: '',
              stderr: `printed more than ${EXEC_OUTPUT_LIMIT} bytes`,
            });
            return;
          }
          done(undefined, {
            exitCode,
            exitSignal,
            stdout: Buffer.concat(stdout).toString('utf8'),
            stderr: Buffer.concat(stderr).toString('utf8'),
          });
        });
        if (signal.aborted) onAbort();
      });
    } finally {
      const waiting = s.execQueue.shift();
      if (waiting) waiting();
      else s.execSlots += 1;
    }
  };

  /** `sha256sum -- PATH` on the server; any doubt about its answer is a failure, never a pass. */
  const remoteSha256 = async (s: Session, path: string, signal: AbortSignal): Promise<string> => {
    const result = await exec(s, `sha256sum -- ${shellQuote(path)}`, signal);
    const hash = result.exitCode === 0 && result.stderr.trim() === '' ? parseSha256sum(result.stdout, path) : undefined;
    if (hash === undefined) {
      const how =
        result.exitCode === undefined
          ? `ended without an exit status${result.exitSignal ? ` (signal ${result.exitSignal})` : ''}`
          : `exited with code ${result.exitCode}`;
      const said = `${result.stderr.trim()} ${result.stdout.trim()}`.trim().slice(0, 300);
      throw new TargetError(
        name,
        `sha256sum of ${path} on ${hostPort} ${how}${said ? `: ${JSON.stringify(said)}` : ' and printed no hash'}; the object is not proven`,
        // An answer cut short (no exit status, as a loaded server sometimes closes the channel) may be
        // asked again; a wrong or refused answer may not.
        { permanent: result.exitCode !== undefined || result.exitSignal !== undefined },
      );
    }
    return hash;
  };

  /**
   * Decides once per connection whether `sha256sum` on the server can prove objects: it must hash a
   * small probe file, written over SFTP, to the right value. That also proves that the shell sees the
   * same paths as SFTP (on some NAS it does not). Anything else: read objects back over SFTP.
   */
  const probeHashing = async (s: Session, besidePath: string, signal: AbortSignal): Promise<VerificationLevel> => {
    // Beside the object being verified, with a temporary's name: inside a set directory (or directly
    // under the job) where the core removes leftover temporaries, so a probe cut short by a crash is
    // cleaned up by the next run instead of lying around on the NAS.
    const probe = posix.join(posix.dirname(besidePath), `.hashprobe.tmp-${randomBytes(4).toString('hex')}`);
    const data = randomBytes(64);
    let handle: Buffer | undefined;
    try {
      handle = await run<Buffer>(s, (done) => s.sftp.open(probe, 'wx', { mode: 0o600 }, done));
      const open = handle;
      await run<void>(s, (done) => s.sftp.write(open, data, 0, data.length, 0, (error) => done(error, undefined)));
      handle = undefined;
      await closeHandle(s, open);
    } catch (error) {
      if (handle) await closeHandle(s, handle).catch(() => {});
      await unlinkPath(s, probe).catch(() => {});
      if (s.closed) throw error;
      log.info(`target ${name}: cannot write a probe under ${s.root}; objects are verified by reading them back`, {
        target: name,
      });
      return 'reread';
    }
    try {
      const result = await exec(s, `sha256sum -- ${shellQuote(probe)}`, signal).catch((error: unknown) => {
        if (s.closed || signal.aborted) throw error;
        return undefined; // the server refused the channel: no commands here
      });
      const hash =
        result?.exitCode === 0 && result.stderr.trim() === '' ? parseSha256sum(result.stdout, probe) : undefined;
      if (hash === createHash('sha256').update(data).digest('hex')) return 'remote-hash';
      log.info(
        `target ${name}: sha256sum is not usable on ${hostPort} for ${config.user}` +
          `${result?.stderr.trim() ? ` (${result.stderr.trim().slice(0, 200)})` : ''}; objects are verified by reading them back`,
        { target: name },
      );
      return 'reread';
    } finally {
      await unlinkPath(s, probe).catch(() => {});
    }
  };

  const hashingOf = (s: Session, besidePath: string, signal: AbortSignal): Promise<VerificationLevel> => {
    if (!s.hashing) {
      const probing = probeHashing(s, besidePath, signal);
      s.hashing = probing;
      // A probe cut short (connection lost, aborted) decided nothing: probe again next time.
      probing.catch(() => {
        if (s.hashing === probing) s.hashing = undefined;
      });
    }
    return s.hashing;
  };

  const verifyObject: Target['verifyObject'] = async (key, { signal }) => {
    const checked = checkKey(key, false);
    try {
      const s = await session();
      const path = pathIn(s, checked);
      const info = await statPath(s, path);
      if ((info.mode & S_IFMT) !== S_IFREG) {
        throw Object.assign(new Error('not a regular file'), { code: STATUS.FAILURE });
      }
      const level = await hashingOf(s, path, signal);
      if (level === 'remote-hash') {
        return { bytes: info.size, sha256: await remoteSha256(s, path, signal), level };
      }
      const { handle } = await openForRead(s, path);
      const hash = createHash('sha256');
      let bytes = 0;
      for await (const chunk of remoteReadable(s, key, handle, signal) as AsyncIterable<Buffer>) {
        hash.update(chunk);
        bytes += chunk.length;
      }
      return { bytes, sha256: hash.digest('hex'), level };
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw fail('verifying', key, error);
    }
  };

  // ------------------------------------------------------------------------------------------
  // Listing, removing, renaming, free space

  const list: Target['list'] = async (prefix) => {
    const start = checkKey(prefix, true);
    const s = await session().catch((error: unknown) => {
      throw fail('listing', prefix, error);
    });
    const keys: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries: { filename: string; attrs: { mode: number } }[];
      try {
        entries = await run(s, (done) => s.sftp.readdir(dir, done));
      } catch (error) {
        if ((error as { code?: unknown }).code === STATUS.NO_SUCH_FILE) return;
        throw error;
      }
      for (const entry of entries) {
        if (entry.filename === '.' || entry.filename === '..') continue;
        const path = posix.join(dir, entry.filename);
        if ((entry.attrs.mode & S_IFMT) === S_IFDIR) await walk(path);
        else keys.push(keyOf(s, path));
      }
    };
    try {
      // An unmounted NAS share is an error, not an empty target.
      await assertRoot(s);
      await walk(pathIn(s, start));
    } catch (error) {
      throw fail('listing', prefix, error);
    }
    return keys.sort();
  };

  const remove: Target['remove'] = async (key) => {
    const checked = checkKey(key, false);
    try {
      const s = await session();
      const path = pathIn(s, checked);
      try {
        await unlinkPath(s, path);
      } catch (error) {
        if ((error as { code?: unknown }).code !== STATUS.NO_SUCH_FILE) throw error;
      }
      // Prune directories left empty, up to (not including) the root; a full one stops the climb.
      for (let dir = posix.dirname(path); isBelowRoot(s, dir); dir = posix.dirname(dir)) {
        const removed = await run<void>(s, (done) => s.sftp.rmdir(dir, (error) => done(error, undefined))).then(
          () => true,
          () => false,
        );
        if (!removed) break;
      }
    } catch (error) {
      throw fail('removing', key, error);
    }
  };

  const rename: NonNullable<Target['rename']> = async (from, to) => {
    const source = checkKey(from, false);
    const destination = checkKey(to, false);
    let s: Session | undefined;
    try {
      s = await session();
      const target = pathIn(s, destination);
      if (posix.dirname(destination) !== posix.dirname(source)) await ensureDirectory(s, posix.dirname(target));
      const live = s;
      // Plain SFTP rename: OpenSSH links then unlinks, so it refuses to replace an existing object.
      // (posix-rename@openssh.com would replace it: never used here.)
      await run<void>(live, (done) =>
        live.sftp.rename(pathIn(live, source), target, (error) => done(error, undefined)),
      );
    } catch (error) {
      if (s && !s.closed && (error as { code?: unknown }).code === STATUS.FAILURE) {
        const exists = await statPath(s, pathIn(s, destination)).catch(() => undefined);
        if (exists) {
          throw new TargetError(
            name,
            `renaming ${from} failed: ${to} already exists on ${where} and is never replaced`,
            {
              permanent: true,
              cause: error,
            },
          );
        }
      }
      throw fail('renaming', from, error);
    }
  };

  const statvfs = async (s: Session, path: string): Promise<FreeSpace> => {
    const info = await run<Record<string, number>>(s, (done) => s.sftp.ext_openssh_statvfs(path, done));
    const frsize = info.f_frsize || info.f_bsize || 0;
    const freeBytes = (info.f_bavail ?? 0) * frsize;
    const totalBytes = (info.f_blocks ?? 0) * frsize;
    if (!Number.isSafeInteger(freeBytes) || !Number.isSafeInteger(totalBytes)) {
      throw new Error(`statvfs of ${path} gave sizes beyond 2^53 bytes`);
    }
    return { freeBytes, totalBytes, path };
  };

  // Decision: `free` always exists. A server without statvfs@openssh.com (OpenSSH has it; some NAS
  // SFTP servers may not) makes it throw a permanent TargetError saying so, rather than hiding the
  // method after a probe: the factory may not connect, and the core checks `free` before any call.
  const free = async (): Promise<FreeSpace> => {
    try {
      const s = await session();
      await assertRoot(s);
      return await statvfs(s, s.root);
    } catch (error) {
      if (error instanceof Error && /does not support/.test(error.message)) {
        throw new TargetError(
          name,
          `the SFTP server on ${hostPort} does not offer statvfs@openssh.com, so free space cannot be checked there; ` +
            'check it on the NAS instead',
          { permanent: true, cause: error },
        );
      }
      throw fail('checking free space of', config.path, error);
    }
  };

  const close = async (): Promise<void> => {
    const pending = current;
    current = undefined;
    const s = await pending?.catch(() => undefined);
    if (!s || s.closed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => s.client.destroy(), 5000);
      s.client.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      s.client.end();
    });
  };

  return {
    name,
    type: 'sftp',
    optional: config.optional,
    capabilities: { atomicRename: true, freeSpace: true, verification: 'remote-hash' },
    describe: () => where,
    put,
    get,
    async stat(key): Promise<ObjectStat> {
      const checked = checkKey(key, false);
      try {
        const s = await session();
        const info = await statPath(s, pathIn(s, checked));
        if ((info.mode & S_IFMT) !== S_IFREG) {
          throw Object.assign(new Error('not a regular file'), { code: STATUS.FAILURE });
        }
        return { bytes: info.size };
      } catch (error) {
        throw fail('stat of', key, error);
      }
    },
    list,
    remove,
    rename,
    verifyObject,
    free,
    async probeWritable(job) {
      const key = `${checkKey(job, false)}/.probe.tmp-${randomBytes(4).toString('hex')}`;
      const never = new AbortController().signal;
      await put(key, Readable.from([Buffer.from('probe\n')]), { signal: never });
      await remove(key);
    },
    isNotFound(error) {
      let current: unknown = error;
      while (current instanceof Error) {
        if (notFoundErrors.has(current)) return true;
        current = current.cause;
      }
      return false;
    },
    close,
  };
}

/** The key type a host key algorithm names (`rsa-sha2-512` is an `ssh-rsa` key). */
function algorithmKeyType(algorithm: string): string {
  return algorithm.startsWith('rsa-sha2-') ? 'ssh-rsa' : algorithm;
}

/** Quotes one argument for a POSIX shell: single quotes, each embedded `'` written as `'\''`. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * Parses what `sha256sum -- PATH` prints for one file: 64 lowercase hex digits, two spaces, the name.
 * GNU sha256sum escapes a name holding `\` or a newline (and then starts the line with `\`). Returns
 * undefined for anything else: an empty hash or a stray line must never pass as proof.
 */
export function parseSha256sum(output: string, path: string): string | undefined {
  const match = /^(\\?)([0-9a-f]{64}) {2}(.*)\n$/s.exec(output);
  if (!match) return undefined;
  const [, escaped, hash, printed] = match as unknown as [string, string, string, string];
  if (printed.includes('\n')) return undefined; // a second line: not one file's answer
  const name = escaped
    ? printed.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c))
    : printed;
  return name === path ? hash : undefined;
}

/** Races `promise` against `signal`; the abort wins with the signal's reason. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
