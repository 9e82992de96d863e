// Reading a located set's objects back: each one fetched whole into a local file and verified
// against the manifest (size and SHA-256) before anything reads its contents, trying every target
// that holds the set; then decrypted and decompressed with the raw size and SHA-256 checked at the end.
import { rm } from 'node:fs/promises';
import { pipeline, type Readable } from 'node:stream';
import { messageOf, OperationError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { MeasureStream } from '../pipeline/measure.js';
import { fetchObject } from '../restore/fetch.js';
import { objectKey } from '../set/layout.js';
import type { Manifest, ManifestComponent, ManifestObject } from '../set/manifest.js';
import type { LocatedSet } from './locate-set.js';
import { openDecoded, type SetDecoding } from './set-decoding.js';

export class ObjectUnavailableError extends OperationError {
  override name = 'ObjectUnavailableError';
}

/** The manifest's entry for an object name. The manifest schema guarantees components name listed objects. */
export function objectEntry(manifest: Manifest, name: string): ManifestObject {
  const entry = manifest.objects.find((o) => o.name === name);
  if (!entry) throw new Error(`manifest of ${manifest.setId} does not list ${name}`);
  return entry;
}

/**
 * Fetches `objectName` into `file`, verified. Tries each holder in config order; a damaged or
 * missing copy on one target is logged and the next target is tried. Returns the target used.
 */
export async function fetchVerified(
  located: LocatedSet,
  job: string,
  objectName: string,
  file: string,
  signal: AbortSignal,
  log: Logger,
): Promise<string> {
  const expected = objectEntry(located.manifest, objectName);
  const key = objectKey(job, located.setId, objectName);
  const failures: string[] = [];
  for (const holder of located.holders) {
    try {
      await fetchObject(holder.target, key, expected, file, { signal });
      return holder.target.name;
    } catch (error) {
      signal.throwIfAborted();
      await rm(file, { force: true });
      failures.push(`${holder.target.name}: ${messageOf(error)}`);
      if (holder !== located.holders.at(-1))
        log.warn(`${objectName} from ${holder.target.name} failed; trying the next target`);
    }
  }
  throw new ObjectUnavailableError(
    `no target holds a good copy of ${objectName} of set ${located.setId}:\n  ${failures.join('\n  ')}\n` +
      'run `backproof verify --set all` to see which sets are intact, and restore an older set',
  );
}

export interface RawStream {
  /** The decompressed bytes. */
  stream: Readable;
  /** Call after `stream` was read to its end: throws unless the raw size and SHA-256 match the manifest. */
  check(): void;
}

/** Decrypts and decompresses a verified object file; `check()` proves the raw bytes are the ones backed up. */
export function openRaw(
  file: string,
  decoding: SetDecoding,
  component: ManifestComponent,
  signal: AbortSignal,
): RawStream {
  const measure = new MeasureStream();
  pipeline(openDecoded(file, decoding, signal), measure, () => {
    // errors reach the consumer through `measure`, which pipeline destroys with them
  });
  return {
    stream: measure,
    check() {
      const raw = measure.result();
      if (raw.bytes !== component.rawBytes || raw.sha256 !== component.rawSha256) {
        throw new OperationError(
          `component ${component.name} decompressed to ${raw.bytes} bytes with SHA-256 ${raw.sha256}, ` +
            `but the manifest says ${component.rawBytes} bytes with ${component.rawSha256}: ` +
            'the object verified but its contents are not what was backed up; restore another set',
        );
      }
    },
  };
}

/** `main.app.sql.zst(.age)` → `main.app.sql`: what the component's raw bytes are called when restored as a file. */
export function rawFileName(component: ManifestComponent): string {
  return component.object.replace(/\.(zst|gz)(\.age)?$/, '');
}

/** Tree components (files, system archives) restore as a tree; every other kind as one file. */
export function isTreeComponent(component: ManifestComponent): boolean {
  return component.index !== undefined;
}
