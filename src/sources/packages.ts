// The list of manually installed Debian packages, read from a root's own dpkg and apt state files
// (not by running apt-mark), so it works on a fixture tree or a mounted disk as well as on `/`.
// The list is what `xargs apt-get install -y < packages.txt` needs to bring the server's software back.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { messageOf } from '../lib/errors.js';
import { compareBytes } from '../pipeline/walk.js';

export const DPKG_STATUS = 'var/lib/dpkg/status';
export const APT_EXTENDED_STATES = 'var/lib/apt/extended_states';

export interface PackageList {
  /** Names for `apt-get install`, sorted by byte: `name`, or `name:arch` for a foreign architecture. */
  manual: string[];
  /** Installed packages (every architecture counted). */
  installed: number;
  /** apt's extended_states was there; without it apt counts every installed package as manual. */
  autoStates: boolean;
}

/** The list, or why there is none (a human should hear about it). */
export type PackageListResult = { list: PackageList } | { skipped: string };

/** One stanza of a Debian control file: lower-cased field name → value (first line only). */
export type Stanza = Map<string, string>;

/** Reads `root`'s dpkg status and apt extended_states. Never throws for a missing or unreadable file. */
export async function readManualPackages(root: string): Promise<PackageListResult> {
  const statusPath = join(root, DPKG_STATUS);
  const status = await readOptional(statusPath);
  if (status === undefined) {
    return { skipped: `no ${statusPath} (not a Debian system?): the package list was not captured` };
  }
  if (typeof status !== 'string') {
    return { skipped: `cannot read ${statusPath} (${status.error}): the package list was not captured` };
  }
  const statesPath = join(root, APT_EXTENDED_STATES);
  const states = await readOptional(statesPath);
  if (states !== undefined && typeof states !== 'string') {
    return {
      skipped: `cannot read ${statesPath} (${states.error}): without it manual and automatic packages cannot be told apart, so the package list was not captured`,
    };
  }
  return { list: manualPackages(status, states) };
}

/** The file's text, undefined when it does not exist, or the reason it cannot be read. */
async function readOptional(path: string): Promise<string | undefined | { error: string }> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return { error: messageOf(error) };
  }
}

/**
 * Installed packages not marked `Auto-Installed: 1`, as `apt-mark showmanual` would list them.
 * `extendedStates` undefined: apt has no record, so every installed package is manual.
 */
export function manualPackages(status: string, extendedStates: string | undefined): PackageList {
  const installed = parseControl(status).filter((stanza) => isInstalled(stanza.get('status')));
  const native = nativeArchitecture(installed);
  const automatic = new Set<string>();
  for (const stanza of parseControl(extendedStates ?? '')) {
    const name = stanza.get('package');
    if (name === undefined || stanza.get('auto-installed') !== '1') continue;
    automatic.add(`${name}:${stanza.get('architecture') ?? '*'}`);
  }
  const manual = new Set<string>();
  for (const stanza of installed) {
    const name = stanza.get('package');
    if (name === undefined) continue;
    const arch = stanza.get('architecture') ?? native;
    // apt files `Architecture: all` packages under the native architecture.
    const local = arch === 'all' || arch === native;
    const keys = [`${name}:${arch}`, `${name}:*`, ...(local ? [`${name}:${native}`, `${name}:all`] : [])];
    if (keys.some((key) => automatic.has(key))) continue;
    manual.add(local ? name : `${name}:${arch}`);
  }
  return {
    manual: [...manual].sort(compareBytes),
    installed: installed.length,
    autoStates: extendedStates !== undefined,
  };
}

/**
 * dpkg's third status word is the state; `not-installed` and `config-files` (removed, its
 * configuration kept) are the states of a package that is not there.
 */
function isInstalled(status: string | undefined): boolean {
  const state = status?.split(/\s+/)[2];
  return state !== undefined && state !== 'not-installed' && state !== 'config-files';
}

/** dpkg itself is always of the native architecture; otherwise the most common one wins. */
function nativeArchitecture(installed: Stanza[]): string | undefined {
  const dpkg = installed.find((stanza) => stanza.get('package') === 'dpkg')?.get('architecture');
  if (dpkg !== undefined) return dpkg;
  const counts = new Map<string, number>();
  for (const stanza of installed) {
    const arch = stanza.get('architecture');
    if (arch !== undefined && arch !== 'all') counts.set(arch, (counts.get(arch) ?? 0) + 1);
  }
  let best: string | undefined;
  for (const [arch, count] of counts) if (best === undefined || count > (counts.get(best) ?? 0)) best = arch;
  return best;
}

/**
 * Stanzas of a Debian control file (deb822): separated by blank lines, `Field: value` lines, with
 * continuation lines (starting with a space or tab) and `#` comments ignored.
 */
export function parseControl(text: string): Stanza[] {
  const stanzas: Stanza[] = [];
  let current: Stanza = new Map();
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (current.size > 0) stanzas.push(current);
      current = new Map();
      continue;
    }
    if (line.startsWith(' ') || line.startsWith('\t') || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    current.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  if (current.size > 0) stanzas.push(current);
  return stanzas;
}
