// `verify`: proves again what the targets hold. Every object of each chosen set is read back whole
// (or hashed on the target) and compared with its manifest; every manifest must parse; the hash
// chain must be unbroken except where tombstones explain a gap; the chain head this host remembers
// must still be there. Read-only: no lock, nothing written to any target. The core never prints:
// the command renders the report.
import { hostname } from 'node:os';
import type { JobConfig } from '../config/schema.js';
import { messageOf } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { formatBytes } from '../lib/units.js';
import { measureReadable } from '../pipeline/measure.js';
import { groupSets, isSetId, manifestKey, objectKey, type SetListing } from '../set/layout.js';
import { type Manifest, type ParsedManifest, parseManifest } from '../set/manifest.js';
import { readTombstones, type TombstoneListing } from '../set/tombstone.js';
import type { ChainHeadRecord, StateDb } from '../state/store.js';
import { createTarget } from '../targets/index.js';
import type { Target, VerificationLevel } from '../targets/types.js';
import { selectTargets } from './catalog.js';
import { type Clock, systemClock } from './context.js';
import { readSmallObject } from './target-session.js';

/** `latest` (the newest committed set of each target), `all`, or one set id. */
export type SetSelection = 'latest' | 'all' | (string & {});

export interface VerifyOptions {
  /** Only this target (a name from the config). */
  target?: string;
  set: SetSelection;
  signal: AbortSignal;
  log: Logger;
  /**
   * This host's state database, when it has one: the chain heads it remembers are checked, and the
   * result is recorded (a `verify` run with the level each object reached). Without it, verify
   * still checks everything the targets hold, and says the chain head check was skipped.
   */
  state?: StateDb;
  /** Tests may inject drivers; normally built from the config. */
  targets?: Target[];
  clock?: Clock;
}

export type ObjectResult = 'ok' | 'missing' | 'wrong-size' | 'wrong-hash' | 'unreadable';

export interface ObjectCheck {
  name: string;
  /** What the manifest says. */
  bytes: number;
  sha256: string;
  result: ObjectResult;
  /** What the target holds, as far as it was measured (a wrong size is not hashed). */
  found?: { bytes: number; sha256?: string };
  /** How the bytes were proven (when they were read or hashed). */
  level?: VerificationLevel;
  /** For `unreadable`: the target's error. */
  error?: string;
}

export interface SetCheck {
  setId: string;
  ok: boolean;
  manifest: 'ok' | 'corrupt' | 'unreadable';
  /** SHA-256 of manifest.json as stored now (absent when it could not be read). */
  manifestSha256?: string;
  suspect?: boolean;
  /** The manifest's link to the set before it. */
  previous?: { setId: string; manifestSha256: string } | null;
  objects: ObjectCheck[];
  /** Bytes of the objects proven. */
  bytesVerified: number;
  /** Problems of this set, each naming it and saying what to do. */
  problems: string[];
  /** Things worth knowing that are not errors (a stray file in the set's directory). */
  notes: string[];
}

export interface ChainCheck {
  /** `all`: every link was followed; `selected`: only the links of the chosen sets. */
  scope: 'all' | 'selected';
  /** Pruned sets whose tombstones bridged a gap on the way. */
  explainedGaps: string[];
  /** Whether the chain head remembered in the state database was checked. */
  headChecked: boolean;
  head: ChainHeadRecord | null;
  problems: string[];
  notes: string[];
}

export interface TargetCheck {
  target: string;
  type: string;
  where: string;
  optional: boolean;
  ok: boolean;
  /** Set when the target could not be read. */
  error?: string;
  sets: SetCheck[];
  /** Sets without a manifest: a backup may be writing one (not an error). */
  incomplete: string[];
  /** null when the target could not be read. */
  chain: ChainCheck | null;
  /** Every problem of this target: its sets', its chain's, its own. */
  problems: string[];
  notes: string[];
}

export interface VerifyReport {
  job: string;
  selection: string;
  ok: boolean;
  exitCode: 0 | 1;
  startedAt: string;
  finishedAt: string;
  /** Whether this host's state database was used (chain heads checked, result recorded). */
  stateDatabase: boolean;
  /** The `verify` run recorded in the state database, if it was. */
  runId: number | null;
  targets: TargetCheck[];
  /** Every problem, each prefixed with its target. */
  problems: string[];
  notes: string[];
}

/** Verifies the chosen sets on each target. Throws only UsageError (bad target name) and on interruption. */
export async function runVerify(config: JobConfig, options: VerifyOptions): Promise<VerifyReport> {
  const clock = options.clock ?? systemClock;
  const startedAt = clock.now().toISOString();
  const targets = selectTargets(
    config,
    options.target,
    options.targets ?? config.targets.map((t) => createTarget(t, { log: options.log })),
  );
  const checks: TargetCheck[] = [];
  const spans = new Map<string, { startedAt: string; finishedAt: string }>();
  for (const target of targets) {
    const began = clock.now().toISOString();
    checks.push(await verifyTarget(config.job, target, options));
    spans.set(target.name, { startedAt: began, finishedAt: clock.now().toISOString() });
  }
  const notes: string[] = [];
  if (options.set !== 'latest' && options.set !== 'all') judgeAbsentSet(options.set, checks, options.target);
  if (!options.state) {
    notes.push(
      'no state database on this host: the chain heads were not checked (deleting the newest sets would go unnoticed) and this result is not recorded',
    );
  }
  const problems = checks.flatMap((c) => c.problems.map((p) => `target ${c.target}: ${p}`));
  const ok = problems.length === 0;
  const report: VerifyReport = {
    job: config.job,
    selection: options.set,
    ok,
    exitCode: ok ? 0 : 1,
    startedAt,
    finishedAt: clock.now().toISOString(),
    stateDatabase: options.state !== undefined,
    runId: null,
    targets: checks,
    problems,
    notes,
  };
  if (options.state) {
    try {
      report.runId = recordVerify(options.state, report, spans);
    } catch (error) {
      notes.push(`this result could not be recorded in the state database: ${messageOf(error)}`);
    }
  }
  return report;
}

// ── One target ─────────────────────────────────────────────────────────────────────────────────

interface ReadSet {
  listing: SetListing;
  /** Absent when manifest.json could not be read. */
  parsed?: ParsedManifest;
  readError?: string;
}

async function verifyTarget(job: string, target: Target, options: VerifyOptions): Promise<TargetCheck> {
  const { signal, log } = options;
  const check: TargetCheck = {
    target: target.name,
    type: target.type,
    where: target.describe(),
    optional: target.optional,
    ok: false,
    sets: [],
    incomplete: [],
    chain: null,
    problems: [],
    notes: [],
  };
  try {
    signal.throwIfAborted();
    const groups = groupSets(job, await target.list(`${job}/`));
    const tombstones = await readTombstones(target, job, signal);
    const committed: ReadSet[] = [];
    for (const listing of groups) {
      if (!listing.hasManifest) {
        check.incomplete.push(listing.setId);
        continue;
      }
      const read = await readManifest(target, job, listing, signal);
      if (read) committed.push(read);
      else check.incomplete.push(listing.setId); // removed since the listing
    }
    const chosen = chooseSets(options.set, committed, check);
    for (const set of chosen) {
      log.info(`verifying set ${set.listing.setId} on target ${target.name}`);
      check.sets.push(await verifySet(job, target, set, signal));
    }
    const head = options.state?.getChainHead(job, target.name);
    const verdict = checkChain({
      sets: committed.map(chainSetOf),
      tombstones,
      incomplete: check.incomplete,
      ...(options.state ? { rememberedHead: head ?? null } : {}),
      ...(options.set === 'all' ? {} : { only: new Set(chosen.map((s) => s.listing.setId)) }),
    });
    check.chain = {
      scope: options.set === 'all' ? 'all' : 'selected',
      explainedGaps: verdict.explainedGaps,
      headChecked: verdict.headChecked,
      head: head ?? null,
      problems: verdict.findings.map((f) => f.message),
      notes: verdict.notes,
    };
    check.problems.push(...check.sets.flatMap((s) => s.problems), ...check.chain.problems);
    check.notes.push(...check.sets.flatMap((s) => s.notes), ...verdict.notes);
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    check.error = messageOf(error);
    check.problems.push(
      `cannot read this target: ${check.error}; check that it is reachable and that the credentials work, then run verify again`,
    );
  } finally {
    await target.close().catch(() => {});
  }
  check.ok = check.problems.length === 0;
  return check;
}

async function readManifest(
  target: Target,
  job: string,
  listing: SetListing,
  signal: AbortSignal,
): Promise<ReadSet | undefined> {
  try {
    const bytes = await readSmallObject(target, manifestKey(job, listing.setId), signal);
    return { listing, parsed: parseManifest(bytes, listing.setId) };
  } catch (error) {
    if (target.isNotFound(error)) return undefined;
    if (signal.aborted) throw signal.reason;
    return { listing, readError: messageOf(error) };
  }
}

/** The sets `selection` names on this target, newest first; adds problems when there are none. */
function chooseSets(selection: SetSelection, committed: readonly ReadSet[], check: TargetCheck): ReadSet[] {
  if (selection === 'all' || selection === 'latest') {
    if (committed.length === 0) {
      check.problems.push(
        'no committed set on this target: nothing here proves a backup exists; run `backproof backup`' +
          (check.incomplete.length > 0 ? ` (incomplete, without manifest.json: ${check.incomplete.join(', ')})` : ''),
      );
      return [];
    }
    return selection === 'all' ? [...committed] : committed.slice(0, 1);
  }
  const found = committed.find((s) => s.listing.setId === selection);
  if (found) return [found];
  if (check.incomplete.includes(selection)) {
    check.problems.push(
      `set ${selection} has no manifest.json here: it is incomplete (a backup may still be writing it, or one was killed), ` +
        'so it cannot be restored from this target; verify another set',
    );
  }
  return [];
}

/** A set id asked for but absent: a problem where it was expected (the one target asked for, or everywhere). */
function judgeAbsentSet(setId: string, checks: TargetCheck[], onlyTarget: string | undefined): void {
  const readable = checks.filter((c) => c.error === undefined);
  const absent = readable.filter((c) => c.sets.length === 0 && !c.incomplete.includes(setId));
  const elsewhere = checks.filter((c) => c.sets.length > 0).map((c) => c.target);
  for (const check of absent) {
    if (onlyTarget === undefined && elsewhere.length > 0) {
      check.notes.push(`set ${setId} is not on this target (it is on ${elsewhere.join(', ')})`);
      continue;
    }
    check.problems.push(
      `set ${setId} is not on this target${elsewhere.length > 0 ? ` (it is on ${elsewhere.join(', ')})` : ''}; ` +
        '`backproof list` shows the sets each target holds',
    );
    check.ok = false;
  }
}

// ── One set ────────────────────────────────────────────────────────────────────────────────────

async function verifySet(job: string, target: Target, set: ReadSet, signal: AbortSignal): Promise<SetCheck> {
  const { setId } = set.listing;
  const check: SetCheck = {
    setId,
    ok: false,
    manifest: 'unreadable',
    objects: [],
    bytesVerified: 0,
    problems: [],
    notes: [],
  };
  const anotherCopy = `take this set from another target (\`backproof verify --set ${setId}\` shows which hold it)`;
  if (!set.parsed) {
    check.problems.push(
      `set ${setId}: manifest.json could not be read (${set.readError}); check the target, then run verify again`,
    );
    return check;
  }
  check.manifestSha256 = set.parsed.sha256;
  if (!set.parsed.ok) {
    check.manifest = 'corrupt';
    check.problems.push(
      `set ${setId}: manifest.json is corrupt (${set.parsed.problems.slice(0, 3).join('; ')}): the set cannot be ` +
        `restored or counted from this target; ${anotherCopy}, or use an older set`,
    );
    return check;
  }
  const manifest: Manifest = set.parsed.manifest;
  check.manifest = 'ok';
  check.suspect = manifest.suspect;
  check.previous = manifest.previous ? { ...manifest.previous } : null;
  for (const expected of manifest.objects) {
    signal.throwIfAborted();
    const object = await checkObject(target, objectKey(job, setId, expected.name), expected, signal);
    check.objects.push(object);
    if (object.result === 'ok') check.bytesVerified += expected.bytes;
    else check.problems.push(`set ${setId}: ${objectProblem(object)}; ${anotherCopy}, and make a new backup`);
  }
  const listed = new Set(manifest.objects.map((o) => o.name));
  const extras = set.listing.objects.filter((name) => !listed.has(name));
  if (extras.length > 0) {
    check.notes.push(`set ${setId}: ${extras.join(', ')} in the set's directory are not in its manifest (ignored)`);
  }
  if (set.listing.temporaries.length > 0) {
    check.notes.push(
      `set ${setId}: ${set.listing.temporaries.length} unfinished temporary object(s) in the set's directory; the next backup removes them`,
    );
  }
  check.ok = check.problems.length === 0;
  return check;
}

/**
 * Proves one object: size first (cheap, and a wrong size needs no hashing), then SHA-256. S3's own
 * proof is an ETag, a checksum of what was uploaded, so verify reads S3 objects back whole;
 * local targets re-read, SFTP hashes on the server where it may (or reads back).
 */
async function checkObject(
  target: Target,
  key: string,
  expected: { name: string; bytes: number; sha256: string },
  signal: AbortSignal,
): Promise<ObjectCheck> {
  const check: ObjectCheck = { name: expected.name, bytes: expected.bytes, sha256: expected.sha256, result: 'ok' };
  try {
    const { bytes } = await target.stat(key);
    if (bytes !== expected.bytes) {
      check.result = 'wrong-size';
      check.found = { bytes };
      return check;
    }
    let proof: { bytes: number; sha256: string; level: VerificationLevel };
    if (target.capabilities.verification === 'etag') {
      proof = { ...(await measureReadable(await target.get(key, { signal }))), level: 'reread' };
    } else {
      const seen = await target.verifyObject(key, { signal });
      proof = { bytes: seen.bytes, sha256: seen.sha256, level: seen.level ?? target.capabilities.verification };
    }
    check.found = { bytes: proof.bytes, sha256: proof.sha256 };
    check.level = proof.level;
    if (proof.bytes !== expected.bytes) check.result = 'wrong-size';
    else if (proof.sha256 !== expected.sha256) check.result = 'wrong-hash';
    return check;
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    if (target.isNotFound(error)) {
      check.result = 'missing';
      return check;
    }
    check.result = 'unreadable';
    check.error = messageOf(error);
    return check;
  }
}

function objectProblem(object: ObjectCheck): string {
  switch (object.result) {
    case 'missing':
      return `${object.name} is missing`;
    case 'wrong-size':
      return `${object.name} has ${object.found?.bytes} bytes, the manifest says ${object.bytes}: it was truncated or replaced`;
    case 'wrong-hash':
      return `${object.name} has SHA-256 ${object.found?.sha256}, the manifest says ${object.sha256}: its bytes are damaged`;
    case 'unreadable':
      return `${object.name} could not be read (${object.error}); check the target, then run verify again`;
    case 'ok':
      return `${object.name} is intact`;
  }
}

// ── The hash chain (pure) ──────────────────────────────────────────────────────────────────────

export interface ChainLink {
  setId: string;
  manifestSha256: string;
}

export interface ChainSet {
  setId: string;
  /** SHA-256 of manifest.json as stored now; null when it could not be read. */
  manifestSha256: string | null;
  /** The manifest's `previous`; absent when the manifest is corrupt (its link is unknown). */
  previous?: ChainLink | null;
  corrupt: boolean;
}

export interface ChainInput {
  /** Committed sets on the target (with a manifest.json), in any order. */
  sets: readonly ChainSet[];
  tombstones: readonly TombstoneListing[];
  /** Set ids present without a manifest, to say so when a link points at one. */
  incomplete?: readonly string[];
  /** What the state database remembers: a record, null (nothing recorded), absent (no database). */
  rememberedHead?: ChainHeadRecord | null;
  /** Only these sets' links are followed (and damaged tombstones are not reported); absent: all. */
  only?: ReadonlySet<string>;
}

export type ChainFindingKind =
  | 'links-to-newer'
  | 'unexpected-start'
  | 'manifest-changed'
  | 'skips-sets'
  | 'gap'
  | 'tombstone-mismatch'
  | 'damaged-tombstone'
  | 'head-changed'
  | 'head-missing';

export interface ChainFinding {
  /** The set the finding is about: the later set of a link, or the remembered head. */
  setId: string;
  kind: ChainFindingKind;
  message: string;
}

export interface ChainVerdict {
  findings: ChainFinding[];
  /** Pruned sets whose tombstones bridged a gap, oldest first. */
  explainedGaps: string[];
  headChecked: boolean;
  notes: string[];
}

/**
 * Follows each set's `previous` back to the set before it on the target. A link must name the
 * nearest older committed set with the SHA-256 its manifest has now; a link to a set that is gone
 * is accepted only when a tombstone for exactly that manifest exists, and then the tombstone's own
 * `previous` is followed in turn. Corrupt manifests are skipped (their link is unknown; they are
 * reported as corrupt sets). Then the remembered chain head must still be there, unchanged.
 */
export function checkChain(input: ChainInput): ChainVerdict {
  const sorted = [...input.sets].sort((a, b) => compareIds(a.setId, b.setId));
  const indexOf = new Map(sorted.map((s, i) => [s.setId, i]));
  const good = new Map<string, TombstoneListing & { parsed: { ok: true } }>();
  const damaged = new Map<string, TombstoneListing>();
  for (const listing of input.tombstones) {
    if (listing.parsed.ok) good.set(listing.setId, listing as TombstoneListing & { parsed: { ok: true } });
    else damaged.set(listing.setId, listing);
  }
  const incomplete = new Set(input.incomplete ?? []);
  const findings: ChainFinding[] = [];
  const explained = new Set<string>();
  const notes: string[] = [];
  const follows = (setId: string) => input.only === undefined || input.only.has(setId);

  for (const [i, set] of sorted.entries()) {
    if (set.corrupt || set.previous === undefined || !follows(set.setId)) continue;
    const add = (kind: ChainFindingKind, message: string) => findings.push({ setId: set.setId, kind, message });
    const olderGood = (from: number) => sorted.slice(from, i).filter((s) => !s.corrupt);
    const bridged: string[] = [];
    const via = () => (bridged.length > 0 ? ` (reached through the tombstones of ${bridged.join(', ')})` : '');
    let cursor: ChainLink | null = set.previous;
    for (;;) {
      if (cursor === null) {
        const older = olderGood(0);
        if (older.length > 0) {
          add(
            'unexpected-start',
            `set ${set.setId}: its chain starts here${via()}, yet older sets are on the target ` +
              `(${older.map((s) => s.setId).join(', ')}): they are not part of this chain (copied in, or written by ` +
              'another host under the same job name); find out where they came from',
          );
        } else for (const id of bridged) explained.add(id);
        break;
      }
      const link: ChainLink = cursor;
      // Each step must go back in time (set ids sort by time), or the walk could go in circles.
      if (compareIds(link.setId, bridged.at(-1) ?? set.setId) >= 0) {
        add(
          'links-to-newer',
          `set ${set.setId}: its chain${via()} names ${link.setId}, which is not older: the manifest is inconsistent; ` +
            'do not trust this set until you know why',
        );
        break;
      }
      const at = indexOf.get(link.setId);
      if (at !== undefined) {
        const found = sorted[at] as ChainSet;
        if (found.manifestSha256 !== link.manifestSha256) {
          add(
            'manifest-changed',
            `set ${set.setId}: it links${via()} to set ${link.setId}, whose manifest.json had SHA-256 ` +
              `${link.manifestSha256} when ${set.setId} was made; it now ${
                found.manifestSha256 === null ? 'cannot be read' : `has ${found.manifestSha256}`
              }${found.corrupt ? ' and is corrupt' : ''}: that manifest was changed or replaced afterwards; ` +
              "compare it with another target's copy before trusting either set",
          );
          break;
        }
        const skipped = olderGood(at + 1);
        if (skipped.length > 0) {
          add(
            'skips-sets',
            `set ${set.setId}: it links${via()} to set ${link.setId}, past ${skipped.map((s) => s.setId).join(', ')}, ` +
              'which lie between them on the target: those are not part of this chain (copied in, or written by ' +
              'another host under the same job name); find out where they came from',
          );
        } else for (const id of bridged) explained.add(id);
        break;
      }
      const tombstone = good.get(link.setId);
      if (!tombstone) {
        const broken = damaged.get(link.setId);
        const hint = incomplete.has(link.setId)
          ? ' (its directory is there, but without manifest.json)'
          : broken
            ? ` (its tombstone ${broken.key} is damaged: ${broken.parsed.ok ? '' : broken.parsed.problems.join('; ')})`
            : '';
        add(
          'gap',
          `set ${set.setId}: it links${via()} to set ${link.setId}, which is not on the target and has no tombstone${hint}: ` +
            'it was deleted outside backproof (prune always leaves a tombstone); find out who deleted it, and ' +
            'take that set from another target if you need it',
        );
        break;
      }
      if (tombstone.parsed.tombstone.manifestSha256 !== link.manifestSha256) {
        add(
          'tombstone-mismatch',
          `set ${set.setId}: it links${via()} to set ${link.setId} with manifest SHA-256 ${link.manifestSha256}, but ` +
            `the tombstone of ${link.setId} names ${tombstone.parsed.tombstone.manifestSha256}: the tombstone is not ` +
            'for the set this chain had, so it explains nothing; find out who wrote it',
        );
        break;
      }
      bridged.push(link.setId);
      cursor = tombstone.parsed.tombstone.previous;
    }
  }

  if (input.only === undefined) {
    for (const listing of damaged.values()) {
      findings.push({
        setId: listing.setId,
        kind: 'damaged-tombstone',
        message:
          `tombstone ${listing.key} is damaged (${listing.parsed.ok ? '' : listing.parsed.problems.join('; ')}): ` +
          'it explains no gap; inspect it (the sets themselves are not affected)',
      });
    }
    for (const id of good.keys()) {
      if (indexOf.has(id)) {
        notes.push(
          `set ${id} has a tombstone but is still on the target: a prune was interrupted; the next prune removes it`,
        );
      }
    }
  }

  const head = judgeHead(input.rememberedHead, sorted, indexOf, good);
  findings.push(...head.findings);
  notes.push(...head.notes);
  return {
    findings,
    explainedGaps: [...explained].sort(compareIds),
    headChecked: input.rememberedHead !== undefined && input.rememberedHead !== null,
    notes,
  };
}

/** The chain head this host remembers must still be on the target with the same manifest. */
function judgeHead(
  remembered: ChainHeadRecord | null | undefined,
  sorted: readonly ChainSet[],
  indexOf: ReadonlyMap<string, number>,
  tombstones: ReadonlyMap<string, TombstoneListing & { parsed: { ok: true } }>,
): { findings: ChainFinding[]; notes: string[] } {
  if (remembered === undefined) return { findings: [], notes: [] }; // no database: said once for the whole run
  if (remembered === null) {
    return { findings: [], notes: ['this host has not committed a set to this target: no chain head to check'] };
  }
  const { setId, manifestSha256, committedAt } = remembered;
  const what = `set ${setId}, the newest set this host committed to this target (at ${committedAt})`;
  const at = indexOf.get(setId);
  if (at !== undefined) {
    const found = sorted[at] as ChainSet;
    if (found.manifestSha256 === manifestSha256) return { findings: [], notes: [] };
    return {
      findings: [
        {
          setId,
          kind: 'head-changed',
          message: `${what}, had a manifest.json with SHA-256 ${manifestSha256}; it now ${
            found.manifestSha256 === null ? 'cannot be read' : `has ${found.manifestSha256}`
          }: it was replaced afterwards; compare it with another target's copy`,
        },
      ],
      notes: [],
    };
  }
  const newest = sorted.at(-1);
  const tombstone = tombstones.get(setId);
  if (newest && compareIds(newest.setId, setId) > 0 && tombstone?.parsed.tombstone.manifestSha256 === manifestSha256) {
    return { findings: [], notes: [`${what}, was pruned (its tombstone is there); newer sets follow it`] };
  }
  const message =
    newest && compareIds(newest.setId, setId) > 0
      ? `${what}, is gone without a tombstone, though newer sets are there: it was deleted outside backproof; find out who deleted it`
      : `${what}, is gone, and ${newest ? `the newest set there now is the older ${newest.setId}` : 'no set is left there'}: ` +
        'the newest sets were deleted outside backproof; run `backproof backup` now, and find out who deleted them';
  return { findings: [{ setId, kind: 'head-missing', message }], notes: [] };
}

function chainSetOf(set: ReadSet): ChainSet {
  if (!set.parsed) return { setId: set.listing.setId, manifestSha256: null, corrupt: true };
  if (!set.parsed.ok) return { setId: set.listing.setId, manifestSha256: set.parsed.sha256, corrupt: true };
  const previous = set.parsed.manifest.previous;
  return {
    setId: set.listing.setId,
    manifestSha256: set.parsed.sha256,
    previous: previous ? { setId: previous.setId, manifestSha256: previous.manifestSha256 } : null,
    corrupt: false,
  };
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ── Recording ──────────────────────────────────────────────────────────────────────────────────

/**
 * Records the finished verify in one go (a `verify` run, a step per target, the level each intact
 * object reached), so a verify never leaves an unfinished run for a backup to call abandoned.
 */
function recordVerify(
  state: StateDb,
  report: VerifyReport,
  spans: ReadonlyMap<string, { startedAt: string; finishedAt: string }>,
): number {
  const runId = state.startRun({
    job: report.job,
    command: 'verify',
    startedAt: report.startedAt,
    pid: process.pid,
    host: hostname(),
  });
  let bytes = 0;
  for (const target of report.targets) {
    const span = spans.get(target.target) ?? { startedAt: report.startedAt, finishedAt: report.finishedAt };
    for (const set of target.sets) {
      bytes += set.bytesVerified;
      for (const object of set.objects) {
        if (object.result !== 'ok' || object.level === undefined) continue;
        state.recordObjectVerification(runId, {
          target: target.target,
          setId: set.setId,
          object: object.name,
          bytes: object.bytes,
          sha256: object.sha256,
          level: object.level,
          verifiedAt: span.finishedAt,
        });
      }
    }
    state.recordStep(runId, {
      name: 'verify-target',
      target: target.target,
      status: target.ok ? 'ok' : 'failed',
      startedAt: span.startedAt,
      finishedAt: span.finishedAt,
      message: target.ok
        ? `${target.sets.length} set(s) intact, ${formatBytes(target.sets.reduce((n, s) => n + s.bytesVerified, 0))} read back`
        : target.problems.join('\n'),
      evidence: { sets: target.sets.map((s) => ({ setId: s.setId, ok: s.ok })), problems: target.problems.length },
    });
  }
  state.finishRun(runId, {
    status: report.ok ? 'success' : 'failure',
    exitCode: report.exitCode,
    finishedAt: report.finishedAt,
    bytes,
    report,
  });
  return runId;
}

/** Whether `text` is a valid `--set` value. */
export function isSetSelection(text: string): text is SetSelection {
  return text === 'latest' || text === 'all' || isSetId(text);
}
