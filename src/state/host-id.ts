// This host's identity on targets: a random id made once per state dir.
// It lives in its own file, `<stateDir>/host-id`, not in state.db: the database is a cache that
// may be deleted, but a new identity would make this host a stranger to its own targets.
import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { messageOf } from '../lib/errors.js';

const hostIdPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Reads `<stateDir>/host-id`, creating it on first use. Safe when several processes start at once. */
export function loadHostId(stateDir: string): string {
  const file = join(stateDir, 'host-id');
  const existing = readHostId(file);
  if (existing !== undefined) return existing;
  createHostId(file);
  return readHostId(file) ?? missing(file);
}

function readHostId(file: string): string | undefined {
  let content: string;
  try {
    content = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read this host's id from ${file}: ${messageOf(error)}`, { cause: error });
  }
  const id = content.trim();
  if (!hostIdPattern.test(id)) {
    // Never replace it silently: targets know this host by that id.
    throw new Error(
      `${file} does not hold a host id (expected a UUID, found ${JSON.stringify(id.slice(0, 60))}); ` +
        'restore it from a backup of the state directory, or copy the hostId from <job>/backproof.json on a target',
    );
  }
  return id;
}

/** Writes a complete temporary file, then links it into place: link(2) never replaces, so the first process wins. */
function createHostId(file: string): void {
  const temporary = `${file}.${process.pid}.${randomUUID()}.tmp`;
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    writeSync(fd, `${randomUUID()}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(temporary, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    unlinkSync(temporary);
  }
  syncDirectory(dirname(file)); // a power cut must not take the id back after a run used it
}

function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function missing(file: string): never {
  throw new Error(`${file} vanished right after it was created; check what else writes to the state directory`);
}
