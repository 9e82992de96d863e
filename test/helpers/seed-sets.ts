// Writes a history of committed sets straight through a target's API, as many backups over many
// simulated days would have left it: one object and a manifest per set, each manifest chained to
// the one before (`previous` with its SHA-256), plus the job's owner file. Retention tests need
// hundreds of sets with set ids from the past, which real backups cannot make quickly.
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { manifestKey, objectKey, ownerKey } from '../../src/set/layout.js';
import { MANIFEST_FORMAT, type Manifest, serializeManifest } from '../../src/set/manifest.js';
import type { Target } from '../../src/targets/types.js';

export interface PlannedSet {
  setId: string;
  /** UTC ISO-8601 with milliseconds, like a real run's. */
  startedAt: string;
  suspect: boolean;
  /** Write a manifest that fails validation (a corrupt set); the chain goes past it. */
  corrupt?: boolean;
}

export interface SeededSet extends PlannedSet {
  manifestSha256: string;
  previous: { setId: string; manifestSha256: string } | null;
  /** Every key the set consists of. */
  keys: string[];
}

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');

/** A small deterministic PRNG (mulberry32), so a failing history can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `20240101T031500Z-<6 chars>` for an instant; `tail` makes it unique. */
export function setIdAt(ms: number, tail: string): string {
  const stamp = new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
  return `${stamp}-${tail}`;
}

/**
 * `days` simulated days from `start` (UTC): some days without a run, some with several, now and
 * then a suspect set. Oldest first.
 */
export function simulatedHistory(options: {
  start: string;
  days: number;
  maxPerDay: number;
  seed: number;
  /** Chance that a set is suspect (0..1). */
  suspectRate?: number;
  /**
   * Before the newest `denseDays` days, runs happen only every `sparseEvery` days: a history that
   * spans years without hundreds of sets (default: every day is like the newest).
   */
  sparse?: { denseDays: number; sparseEvery: number };
}): PlannedSet[] {
  const random = prng(options.seed);
  const sets: PlannedSet[] = [];
  const dayMs = 86_400_000;
  const startMs = Date.parse(options.start);
  for (let day = 0; day < options.days; day++) {
    const sparse = options.sparse;
    const quiet = sparse && day < options.days - sparse.denseDays && day % sparse.sparseEvery !== 0;
    const runs = quiet ? 0 : Math.floor(random() * (options.maxPerDay + 1));
    const minutes = new Set<number>();
    for (let i = 0; i < runs; i++) minutes.add(Math.floor(random() * 1440));
    for (const minute of [...minutes].sort((a, b) => a - b)) {
      const ms = startMs + day * dayMs + minute * 60_000 + Math.floor(random() * 60_000);
      const tail = `s${String(sets.length).padStart(5, '0')}`;
      sets.push({
        setId: setIdAt(ms, tail),
        startedAt: new Date(ms).toISOString(),
        suspect: random() < (options.suspectRate ?? 0),
      });
    }
  }
  return sets;
}

/** The owner file a backup from host `hostId` would have written. */
export async function writeOwner(target: Target, job: string, hostId: string, host = 'seed-host'): Promise<void> {
  const record = { format: 'backproof-owner/1', job, hostId, host, createdAt: '2024-01-01T00:00:00.000Z' };
  await put(target, ownerKey(job), Buffer.from(`${JSON.stringify(record, null, 2)}\n`));
}

/** Writes `plan` (oldest first) as committed sets, chained like real backups chain them. */
export async function seedSets(
  target: Target,
  job: string,
  plan: readonly PlannedSet[],
  hostId: string = randomUUID(),
): Promise<SeededSet[]> {
  const seeded: SeededSet[] = [];
  const writes: (() => Promise<void>)[] = [];
  let head: { setId: string; manifestSha256: string } | null = null;
  for (const planned of plan) {
    const data = Buffer.from(`backup ${planned.setId}\n`);
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      job,
      setId: planned.setId,
      host: 'seed-host',
      hostId,
      startedAt: planned.startedAt,
      finishedAt: new Date(Date.parse(planned.startedAt) + 60_000).toISOString(),
      backproofVersion: 'test',
      compression: { algorithm: 'zstd', level: 3 },
      encryption: null,
      objects: [{ name: 'app.out.zst', bytes: data.length, sha256: sha256(data) }],
      components: [
        {
          name: 'app',
          source: 'app',
          kind: 'command',
          object: 'app.out.zst',
          bytes: data.length,
          sha256: sha256(data),
          rawBytes: data.length,
          rawSha256: sha256(data),
        },
      ],
      anomalies: [],
      suspect: planned.suspect,
      warnings: [],
      previous: head,
    };
    const bytes = planned.corrupt ? Buffer.from('{ "format": "backproof/1", cut short') : serializeManifest(manifest);
    writes.push(async () => {
      await put(target, objectKey(job, planned.setId, 'app.out.zst'), data);
      await put(target, manifestKey(job, planned.setId), bytes);
    });
    const manifestSha256 = sha256(bytes);
    seeded.push({
      ...planned,
      manifestSha256,
      previous: head,
      keys: [objectKey(job, planned.setId, 'app.out.zst'), manifestKey(job, planned.setId)].sort(),
    });
    // A corrupt manifest was never a chain head: the next backup links past it.
    if (!planned.corrupt) head = { setId: planned.setId, manifestSha256 };
  }
  await inParallel(writes, SEED_CONCURRENCY);
  return seeded;
}

/**
 * Sets written at once. Each set is still its object, then its manifest; the chain is computed
 * beforehand, so the order between sets does not matter, and one at a time made seeding over
 * SFTP and S3 a round trip per key.
 */
const SEED_CONCURRENCY = 8;

/** Runs `tasks` with at most `limit` at a time; rejects with the first failure, after all settled. */
async function inParallel(tasks: readonly (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const failures: unknown[] = [];
  const worker = async (): Promise<void> => {
    while (next < tasks.length && failures.length === 0) {
      const task = tasks[next++] as () => Promise<void>;
      await task().catch((error: unknown) => {
        failures.push(error);
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  if (failures.length > 0) throw failures[0];
}

export async function put(target: Target, key: string, bytes: Buffer): Promise<void> {
  await target.put(key, Readable.from([bytes]), { signal: AbortSignal.timeout(60_000) });
}
