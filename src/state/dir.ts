// The state directory: private to the user running backproof, and on a local filesystem.
import { chmodSync, existsSync, mkdirSync, statfsSync, statSync } from 'node:fs';
import { ConfigError, messageOf } from '../lib/errors.js';

// statfs(2) magic numbers of network filesystems. Their byte-range locks are unreliable or
// absent (SQLite's own docs warn about NFS), and WAL needs shared memory between processes on
// one host, so neither the job lock nor the state database can be trusted there.
const networkFilesystems = new Map<number, string>([
  [0x6969, 'NFS'],
  [0x517b, 'SMB'],
  [0xff534d42, 'CIFS'],
  [0xfe534d42, 'SMB2'],
]);

/** Creates `dir` (mode 0700) if missing and refuses a network filesystem. Returns `dir`. */
export function ensurePrivateDir(dir: string): string {
  if (!existsSync(dir)) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700); // the umask may have removed bits we asked for; make it exact
    } catch (error) {
      throw new Error(
        `cannot create the state directory ${dir}: ${messageOf(error)}; ` +
          'set stateDir in the config to a directory this user can write, or run as its owner',
        { cause: error },
      );
    }
  } else if (!statSync(dir).isDirectory()) {
    throw new ConfigError(`stateDir ${dir} exists but is not a directory; point stateDir at a directory`);
  }
  refuseNetworkFilesystem(dir);
  return dir;
}

function refuseNetworkFilesystem(dir: string): void {
  if (process.platform !== 'linux') return; // magic numbers above are Linux's
  const kind = networkFilesystems.get(statfsSync(dir).type >>> 0);
  if (kind) {
    throw new ConfigError(
      `stateDir ${dir} is on ${kind}: backproof's job lock and state database need a local filesystem; ` +
        'point stateDir at a local disk',
    );
  }
}
