// Where things live on a target (design: "Layout on a target"). Keys are relative to the target root.
import { randomBytes } from 'node:crypto';

const SET_ID = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-([a-z0-9]{6})$/;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** `20251104T030000Z-k3x9qa`: sortable by time, unique by its random tail. */
export function newSetId(startedAt: Date): string {
  const stamp = startedAt
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
  const random = [...randomBytes(6)].map((b) => ALPHABET[b % ALPHABET.length]).join('');
  return `${stamp}-${random}`;
}

export function isSetId(text: string): boolean {
  return SET_ID.test(text);
}

/** `<job>/<YYYY>/<MM>/<DD>/<setId>` */
export function setPrefix(job: string, setId: string): string {
  const match = SET_ID.exec(setId);
  if (!match) throw new Error(`not a set id: ${JSON.stringify(setId)}`);
  return `${job}/${match[1]}/${match[2]}/${match[3]}/${setId}`;
}

export function ownerKey(job: string): string {
  return `${job}/backproof.json`;
}

export function manifestKey(job: string, setId: string): string {
  return `${setPrefix(job, setId)}/${MANIFEST_NAME}`;
}

export function objectKey(job: string, setId: string, objectName: string): string {
  assertObjectName(objectName);
  return `${setPrefix(job, setId)}/${objectName}`;
}

export const MANIFEST_NAME = 'manifest.json';

/** Temporary names carry this marker; anything with it is an unfinished write. */
export const TEMP_MARKER = '.tmp-';

export function tempKey(key: string): string {
  return `${key}${TEMP_MARKER}${randomBytes(4).toString('hex')}`;
}

/** Object names are plain basenames: no `/`, no `..`, no control characters, no temp marker. */
export function isObjectName(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= 255 &&
    name !== '.' &&
    name !== '..' &&
    !name.includes('/') &&
    !name.includes('\\') &&
    !name.includes(TEMP_MARKER) &&
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what we refuse
    !/[\u0000-\u001f\u007f]/.test(name)
  );
}

export function assertObjectName(name: string): void {
  if (!isObjectName(name)) throw new Error(`not a valid object name: ${JSON.stringify(name)}`);
}

export interface SetListing {
  setId: string;
  prefix: string;
  /** Object names present (final names only). */
  objects: string[];
  /** Keys of temporary (unfinished) writes. */
  temporaries: string[];
  hasManifest: boolean;
}

/** Groups a target's key listing under `<job>/` into sets, newest first. Unrelated keys are ignored. */
export function groupSets(job: string, keys: readonly string[]): SetListing[] {
  const sets = new Map<string, SetListing>();
  const pattern = new RegExp(`^${escapeRegExp(job)}/(\\d{4})/(\\d{2})/(\\d{2})/([^/]+)/([^/]+)$`);
  for (const key of keys) {
    const match = pattern.exec(key);
    if (!match) continue;
    const setId = match[4] as string;
    const name = match[5] as string;
    if (!isSetId(setId) || setPrefix(job, setId) !== key.slice(0, key.length - name.length - 1)) continue;
    let set = sets.get(setId);
    if (!set) {
      set = { setId, prefix: setPrefix(job, setId), objects: [], temporaries: [], hasManifest: false };
      sets.set(setId, set);
    }
    if (name.includes(TEMP_MARKER)) set.temporaries.push(key);
    else if (name === MANIFEST_NAME) set.hasManifest = true;
    else set.objects.push(name);
  }
  return [...sets.values()].sort((a, b) => (a.setId < b.setId ? 1 : a.setId > b.setId ? -1 : 0));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `<job>/tombstones/`: prune leaves one tombstone here for every set it deletes. */
export function tombstonePrefix(job: string): string {
  return `${job}/tombstones/`;
}

/** `<job>/tombstones/<setId>.json` */
export function tombstoneKey(job: string, setId: string): string {
  if (!isSetId(setId)) throw new Error(`not a set id: ${JSON.stringify(setId)}`);
  return `${tombstonePrefix(job)}${setId}.json`;
}
