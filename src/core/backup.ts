// A backup run: lock → preflight → sources ─► compress ─► hash ─► targets (tmp → verify → rename)
// → manifest per target → record → unlock. The status comes from evidence only (core/evidence.ts).
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { redactConfigText } from '../config/redact-config.js';
import type { JobConfig } from '../config/schema.js';
import { AGE_SUFFIX, type AgeRecipient, createEncryptStream } from '../crypto/age.js';
import { InterruptedError, messageOf, SourceError } from '../lib/errors.js';
import { ExitCode, exitCodeForStatus } from '../lib/exit-codes.js';
import { acquireJobLock, type JobLock } from '../lib/lock.js';
import type { Logger } from '../lib/log.js';
import { redact } from '../lib/redact.js';
import { formatBytes, formatDuration } from '../lib/units.js';
import { compressedSuffix, compressionToolVersion } from '../pipeline/compress.js';
import type { Measured } from '../pipeline/measure.js';
import { exportMetricsTextfile } from '../report/metrics-textfile.js';
import type { BackupReport, ComponentReport, PlanReport, TargetReport } from '../report/types.js';
import { isObjectName, newSetId, objectKey } from '../set/layout.js';
import { MANIFEST_FORMAT, type Manifest } from '../set/manifest.js';
import { renderRunbook } from '../set/runbook.js';
import { createSource } from '../sources/index.js';
import type { ComponentFacts, ComponentStream, Source, SourceContext } from '../sources/types.js';
import { openStateDb, type StateDb } from '../state/store.js';
import { createTarget } from '../targets/index.js';
import type { Target } from '../targets/types.js';
import { VERSION } from '../version.js';
import { type AnomalyCheck, checkAnomalies, stepsOfCheck } from './anomaly-check.js';
import type { CoreContext } from './context.js';
import { copyVerifiedObject } from './copy-object.js';
import { loadRecipients } from './encryption.js';
import { type CommittedSet, decideOutcome, type Failure, type VerifiedObject } from './evidence.js';
import { describeHook, type HookResult, hookEvidence, runClosingHooks, runHookPhase } from './hooks.js';
import { estimateRunBytes, freeSpaceAt, judgeFreeSpace, needsRawEstimate } from './preflight.js';
import { type PruneTargetReport, retentionAfterBackup, retentionStepOf } from './prune.js';
import { StepLog } from './steps.js';
import {
  type ChainHead,
  type CommittedListing,
  chainHeadOf,
  claimOwnership,
  commitManifest,
  discardSet,
  listCommittedSets,
  removeIncompleteSets,
  writeSmallObject,
} from './target-session.js';

import { startWatchdog } from './watchdog.js';
import { writeObject } from './write-object.js';

const RUNBOOK_NAME = 'RUNBOOK.md';
const CONFIG_NAME = 'config.redacted.yml';

export interface BackupInput extends CoreContext {
  config: JobConfig;
  /** The config file's text: stored in every set as config.redacted.yml (secrets redacted). */
  configText?: string;
  /** Rewrite another host's owner file on the targets (this server replaces that one). */
  takeOver: boolean;
  /** Tests may inject drivers (e.g. a fault-injecting target); normally built from the config. */
  sources?: Source[];
  targets?: Target[];
}

/** Runs one backup of the job. Throws only LockedError (exit 75) and ConfigError; everything else is in the report. */
export async function runBackup(input: BackupInput): Promise<BackupReport> {
  const { config, clock } = input;
  const now = () => clock.now();
  // Bad keys are a config error, found before the lock is taken or anything is written.
  const recipients = await loadRecipients(config.encryption);
  const lock = acquireJobLock(config.stateDir, config.job, 'backup');
  let state: StateDb | undefined;
  try {
    state = openStateDb(config.stateDir);
    return await runLocked(input, lock, state, recipients);
  } finally {
    state?.close();
    lock.release();
    void now;
  }
}

async function runLocked(
  input: BackupInput,
  lock: JobLock,
  state: StateDb,
  recipients: AgeRecipient[] | null,
): Promise<BackupReport> {
  const { config, clock, reporter } = input;
  const now = () => clock.now();
  const startedAt = now();
  const setId = newSetId(startedAt);
  const host = hostname();
  const runId = state.startRun({
    job: config.job,
    command: 'backup',
    startedAt: startedAt.toISOString(),
    pid: process.pid,
    host,
  });
  const steps = new StepLog(reporter, now, { db: state, runId });
  const abandoned = state.abandonUnfinishedRuns(config.job, runId, startedAt.toISOString());
  if (abandoned.length > 0) {
    steps.record({
      name: 'abandoned-runs',
      status: 'warning',
      message: `${abandoned.length} earlier run(s) never finished (killed or crashed): ${abandoned.map((r) => `#${r.id} started ${r.startedAt}`).join(', ')}`,
      evidence: { runs: abandoned.map((r) => r.id) },
    });
  }

  const controller = new AbortController();
  const onOuterAbort = () => controller.abort(input.signal.reason);
  if (input.signal.aborted) onOuterAbort();
  input.signal.addEventListener('abort', onOuterAbort, { once: true });
  const signal = controller.signal;
  const watchdog = startWatchdog(controller, {
    stallTimeoutMs: config.checks.stallTimeout,
    maxDurationMs: config.checks.maxDuration,
  });

  const sources = input.sources ?? config.sources.map((s) => createSource(s, config));
  for (const source of sources) source.warmUp?.();
  // What drivers say during the run reaches the report: a pinned host key is a warning (a human
  // should compare its fingerprint with the server's), notes are steps.
  const targetLog: Logger = {
    debug: () => {},
    info: (message) => steps.record({ name: 'target-note', status: 'ok', message }),
    warn: (message, fields) => {
      const text =
        typeof fields?.fingerprint === 'string'
          ? `${message} (${fields.fingerprint}): check it against the server's own fingerprint`
          : message;
      warnings.push(text);
      steps.record({ name: 'target-note', status: 'warning', message: text });
    },
    error: (message) => {
      warnings.push(message);
      steps.record({ name: 'target-note', status: 'warning', message });
    },
  };
  const allTargets = input.targets ?? config.targets.map((t) => createTarget(t, { log: targetLog }));
  const scratchDir = join(config.stateDir, 'tmp', config.job);
  const failures: Failure[] = [];
  const optionalFailures: Failure[] = [];
  const warnings: string[] = [];
  const components: ComponentReport[] = [];
  const targetReports = new Map<string, TargetReport>(
    allTargets.map((t) => [
      t.name,
      { name: t.name, type: t.type, optional: t.optional, result: 'failed', objects: [] },
    ]),
  );
  const live = new Map<string, Target>();
  const proofs = new Map<string, VerifiedObject[]>();
  /** Raw size estimate per source (preflight): a size hint for targets that choose part sizes. */
  const estimates = new Map<string, number>();
  const chainHeads = new Map<string, ChainHead | null>();
  /** Each prepared target's committed sets: the anomaly check's history. */
  const listingsByTarget = new Map<string, CommittedListing[]>();
  let anomalyCheck: AnomalyCheck | undefined;
  const committed: CommittedSet[] = [];
  let wroteToTargets = false;
  const hookResults: HookResult[] = [];

  /** Objects of this set as produced: what every target must end up holding. */
  const produced: { name: string; key: string; component: string; stored: Measured }[] = [];
  const addProof = (target: Target, proof: VerifiedObject) => {
    const list = proofs.get(target.name) ?? [];
    list.push(proof);
    proofs.set(target.name, list);
    state.recordObjectVerification(runId, {
      target: target.name,
      setId,
      object: proof.name,
      bytes: proof.bytes,
      sha256: proof.sha256,
      level: proof.level,
      verifiedAt: proof.verifiedAt,
    });
  };

  const failTarget = (target: Target, step: string, error: unknown, component?: string) => {
    const failure: Failure = { step, target: target.name, component, message: messageOf(error) };
    const evidence = (error as { evidence?: Record<string, unknown> }).evidence;
    if (evidence) failure.evidence = evidence;
    (target.optional ? optionalFailures : failures).push(failure);
    const report = targetReports.get(target.name);
    if (report) report.error = failure.message;
    live.delete(target.name);
    steps.record({
      name: step,
      status: target.optional ? 'warning' : 'failed',
      message: failure.message,
      target: target.name,
      component,
      evidence,
    });
  };

  reporter.event({
    type: 'run-start',
    job: config.job,
    runId,
    setId,
    startedAt: startedAt.toISOString(),
    targets: allTargets.map((t) => t.name),
    dryRun: false,
  });

  try {
    // Leftovers of a killed run on this host: its scratch files. We hold the lock, so they are stale.
    await rm(scratchDir, { recursive: true, force: true });
    await mkdir(scratchDir, { recursive: true, mode: 0o700 });
    const sourceContext: SourceContext = { signal, log: input.log, scratchDir };

    // ── preflight ─────────────────────────────────────────────────────────────
    const preflightOk = await preflight({
      input,
      state,
      sources,
      targets: allTargets,
      sourceContext,
      steps,
      failTarget,
      failures,
      live,
      estimates,
    });
    signal.throwIfAborted();
    if (!preflightOk) throw new PreflightFailed();

    // ── before hooks: after preflight, before any source is read or anything is written ──────
    const before = await runHookPhase({
      phase: 'before',
      hooks: config.hooks.before,
      context: { job: config.job, runId },
      signal,
      steps,
      now,
      stopAtFailure: true,
    });
    hookResults.push(...before);
    signal.throwIfAborted();
    const failedHook = before.find((h) => !h.ok);
    if (failedHook) {
      // Like a failed preflight: the run stops with nothing written; onError and after hooks still run.
      failures.push({
        step: 'hook:before',
        message: `${describeHook(failedHook)}; nothing was written`,
        evidence: hookEvidence(failedHook),
      });
      throw new PreflightFailed();
    }

    // ── claim, clean, find chain heads ───────────────────────────────────────
    for (const target of [...live.values()]) {
      const began = now();
      try {
        const claim = await claimOwnership(
          target,
          { job: config.job, hostId: state.hostId(), host },
          { takeOver: input.takeOver, signal, now },
        );
        const cleanup = await removeIncompleteSets(target, config.job);
        const listings = await listCommittedSets(target, config.job, signal);
        listingsByTarget.set(target.name, listings);
        const head = chainHeadOf(listings);
        chainHeads.set(target.name, head);
        for (const corrupt of listings.filter((l) => !l.parsed.ok)) {
          warnings.push(
            `target ${target.name}: set ${corrupt.setId} has a corrupt manifest; run \`backproof verify --set all\``,
          );
        }
        const remembered = state.getChainHead(config.job, target.name);
        if (remembered && !listings.some((l) => l.setId === remembered.setId)) {
          warnings.push(
            `target ${target.name}: set ${remembered.setId}, the newest this host committed there (${remembered.committedAt}), ` +
              'is gone: sets were deleted outside backproof',
          );
        }
        const notes = [
          claim === 'created'
            ? 'claimed the job for this host'
            : claim === 'taken-over'
              ? 'took the job over from another host'
              : '',
          cleanup.removedSets.length > 0
            ? `removed ${cleanup.removedSets.length} incomplete set(s): ${cleanup.removedSets.join(', ')}`
            : '',
          cleanup.removedTemporaries > 0 ? `removed ${cleanup.removedTemporaries} temporary object(s)` : '',
          head ? `chain head ${head.setId}` : 'first set on this target',
        ].filter(Boolean);
        steps.record(
          {
            name: 'prepare-target',
            status: 'ok',
            message: notes.join('; '),
            target: target.name,
            evidence: { removedSets: cleanup.removedSets, chainHead: head },
          },
          began,
        );
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        failTarget(target, 'prepare-target', error);
      }
    }

    // ── sources → objects on every live target ───────────────────────────────
    // `.age` is appended to every data object when encrypted: `main.app.sql.zst.age`.
    const suffix = `${compressedSuffix(config.compression.algorithm)}${recipients ? AGE_SUFFIX : ''}`;
    // Staged: sources go to the local target(s) at disk speed; the others are fed afterwards from
    // that verified copy. Direct: one read feeds every target at once.
    const locals = [...live.values()].filter((t) => t.type === 'local');
    const staged = (config.fanOut ?? (locals.length > 0 ? 'staged' : 'direct')) === 'staged' && locals.length > 0;
    const stageNames = new Set(staged ? locals.map((t) => t.name) : [...live.keys()]);
    if (config.fanOut === 'staged' && locals.length === 0) {
      warnings.push('fanOut is staged, but no local target is available this run: all targets were fed directly');
    }
    const componentNames = new Set<string>();
    outer: for (const source of sources) {
      const iterator = source.components(sourceContext)[Symbol.asyncIterator]();
      for (;;) {
        if (live.size === 0) break outer;
        let next: IteratorResult<ComponentStream>;
        try {
          next = await iterator.next();
        } catch (error) {
          if (signal.aborted) throw signal.reason;
          failures.push({ step: 'source', component: source.name, message: messageOf(error) });
          steps.record({ name: 'source', status: 'failed', message: messageOf(error), component: source.name });
          break outer;
        }
        if (next.done) break;
        wroteToTargets = true;
        const ok = await backUpComponent(next.value, source);
        if (!ok) {
          await iterator.return?.().catch(() => {});
          break outer;
        }
      }
    }

    async function backUpComponent(component: ComponentStream, source: Source): Promise<boolean> {
      const began = now();
      const objectName = `${component.name}.${component.extension}.${suffix}`;
      const indexName = component.index ? `${component.name}.index.jsonl.${suffix}` : undefined;
      const problem = !isObjectName(objectName)
        ? `component name ${JSON.stringify(component.name)} does not make a valid object name`
        : componentNames.has(component.name)
          ? `two components are named ${component.name}`
          : undefined;
      componentNames.add(component.name);
      if (
        problem === undefined &&
        component.secret &&
        recipients === null &&
        !allowsUnencryptedSecrets(config, source)
      ) {
        // The config check refuses such jobs; this guards any source that marks a component secret.
        component.data.destroy();
        component.index?.destroy();
        component.facts.catch(() => {});
        const message =
          `component ${component.name} holds secrets and is not written unencrypted: add encryption: ` +
          `{ recipients: ["age1…"] }, or set allowUnencryptedSecrets: true on source ${source.name}`;
        failures.push({ step: 'source', component: component.name, message });
        steps.record({ name: 'source', status: 'failed', message, component: component.name });
        return false;
      }
      if (problem) {
        component.data.destroy();
        component.index?.destroy();
        component.facts.catch(() => {});
        failures.push({ step: 'source', component: component.name, message: `source ${source.name}: ${problem}` });
        return false;
      }
      // A source may fail its stream after it ended (an exit code known late): that failure reaches us
      // through `facts`; without a listener it would crash the process as an unhandled 'error' event.
      component.data.on('error', () => {});
      component.index?.on('error', () => {});
      reporter.event({ type: 'component-start', component: component.name, source: source.name });
      const targets = [...live.values()].filter((t) => stageNames.has(t.name));
      let rawBytes = 0;
      let storedBytes = 0;
      const progress = () =>
        reporter.event({
          type: 'progress',
          component: component.name,
          rawBytes,
          storedBytes,
          elapsedMs: now().getTime() - began.getTime(),
        });
      const estimate = estimates.get(source.name);
      const common = {
        targets,
        // Compression only shrinks (zstd's worst case adds a little): the raw estimate bounds the object.
        ...(estimate ? { sizeHint: estimate + Math.ceil(estimate / 100) + 1024 } : {}),
        compression: config.compression,
        encryption: recipients,
        signal,
        now,
        onRawBytes: (n: number) => {
          rawBytes += n;
          watchdog.touch();
          progress();
        },
        onStoredBytes: (n: number) => {
          storedBytes += n;
        },
      };
      watchdog.streaming(true);
      const [dataWrite, indexWrite] = await Promise.allSettled([
        writeObject({
          ...common,
          input: component.data,
          ...(component.rawMeasured ? { rawMeasured: component.rawMeasured } : {}),
          name: objectName,
          key: objectKey(config.job, setId, objectName),
        }),
        component.index && indexName
          ? writeObject({
              ...common,
              input: component.index,
              name: indexName,
              key: objectKey(config.job, setId, indexName),
              onRawBytes: () => watchdog.touch(),
            })
          : Promise.resolve(undefined),
      ]);
      if (dataWrite.status === 'rejected' || indexWrite.status === 'rejected') component.data.destroy();
      // Targets that failed writing either object are out of this set, whatever the source did.
      for (const write of [dataWrite, indexWrite]) {
        if (write.status !== 'fulfilled' || !write.value) continue;
        for (const target of targets) {
          const result = write.value.results.get(target.name);
          if (result && !result.ok && live.has(target.name))
            failTarget(target, 'write-object', result.error, component.name);
        }
      }
      if (live.size === 0) {
        component.facts.catch(() => {});
        watchdog.streaming(false);
        return false;
      }
      const facts = await component.facts.then(
        (value): { ok: true; value: ComponentFacts } => ({ ok: true, value }),
        (error: unknown): { ok: false; error: unknown } => ({ ok: false, error }),
      );
      watchdog.streaming(false);
      if (signal.aborted) throw signal.reason;
      const sourceProblem = !facts.ok
        ? facts.error
        : dataWrite.status === 'rejected'
          ? dataWrite.reason
          : indexWrite.status === 'rejected'
            ? indexWrite.reason
            : dataWrite.value.raw?.bytes === 0
              ? new SourceError(
                  source.name,
                  `component ${component.name} produced no data; an empty backup is not a backup`,
                )
              : undefined;
      if (sourceProblem !== undefined || dataWrite.status !== 'fulfilled' || indexWrite.status !== 'fulfilled') {
        const message = messageOf(sourceProblem);
        failures.push({ step: 'source', component: component.name, message, evidence: errorEvidence(sourceProblem) });
        steps.record(
          {
            name: 'source',
            status: 'failed',
            message,
            component: component.name,
            evidence: errorEvidence(sourceProblem),
          },
          began,
        );
        return false;
      }
      const written = [dataWrite.value, ...(indexWrite.value ? [indexWrite.value] : [])];
      const names = [objectName, ...(indexName ? [indexName] : [])];
      for (const [i, write] of written.entries()) {
        const name = names[i] as string;
        if (write.stored)
          produced.push({
            name,
            key: objectKey(config.job, setId, name),
            component: component.name,
            stored: write.stored,
          });
      }
      for (const target of targets) {
        for (const write of written) {
          const result = write.results.get(target.name);
          if (!result?.ok) {
            if (live.has(target.name))
              failTarget(target, 'write-object', result?.error ?? 'not written', component.name);
            continue;
          }
          addProof(target, result.proof);
        }
      }
      const { raw, stored } = dataWrite.value;
      if (!facts.ok || !raw || !stored) return false;
      const value = facts.value;
      const report: ComponentReport = {
        name: component.name,
        source: source.name,
        kind: component.kind,
        object: objectName,
        ...(indexName ? { index: indexName } : {}),
        bytes: stored.bytes,
        sha256: stored.sha256,
        rawBytes: raw.bytes,
        rawSha256: raw.sha256,
        ...(value.files !== undefined ? { files: value.files } : {}),
        ...(value.tables !== undefined ? { tables: value.tables } : {}),
        ...(value.dumpTool !== undefined ? { dumpTool: value.dumpTool } : {}),
        ...(value.serverVersion !== undefined ? { serverVersion: value.serverVersion } : {}),
        ...(value.secret ? { secret: true } : {}),
        warnings: value.warnings,
        durationMs: now().getTime() - began.getTime(),
      };
      components.push(report);
      for (const warning of value.warnings) warnings.push(`${component.name}: ${warning}`);
      reporter.event({ type: 'component-done', component: report });
      steps.record(
        {
          name: 'component',
          status: value.warnings.length > 0 ? 'warning' : 'ok',
          message: `${component.name}: ${report.rawBytes} raw bytes stored as ${report.bytes} bytes on ${targets.filter((t) => live.has(t.name)).length} target(s)`,
          component: component.name,
          evidence: {
            bytes: report.bytes,
            sha256: report.sha256,
            rawBytes: report.rawBytes,
            warnings: value.warnings.length,
          },
        },
        began,
      );
      return true;
    }

    // ── commit: the manifest last, per target, only when every component is complete ─────
    if (failures.some((f) => f.step === 'source')) throw new ComponentsFailed();
    if (staged) await feedFromStage();

    async function feedFromStage(): Promise<void> {
      const remotes = [...live.values()].filter((t) => !stageNames.has(t.name));
      if (remotes.length === 0) return;
      watchdog.streaming(true);
      await Promise.all(
        remotes.map(async (target) => {
          const began = now();
          let bytes = 0;
          for (const object of produced) {
            const stage = [...live.values()].find((t) => stageNames.has(t.name));
            if (!stage) {
              failTarget(
                target,
                'upload',
                new Error('no verified local copy is left to upload from (the local target failed)'),
              );
              return;
            }
            try {
              const proof = await copyVerifiedObject({
                from: stage,
                to: target,
                key: object.key,
                name: object.name,
                expected: object.stored,
                signal,
                now,
                onBytes: () => watchdog.touch(),
                onRetry: (error, attempt, delayMs) =>
                  steps.record({
                    name: 'upload-retry',
                    status: 'warning',
                    target: target.name,
                    message: `${object.name}: try ${attempt} failed (${messageOf(error)}); retrying in ${formatDuration(delayMs)}`,
                  }),
              });
              bytes += proof.bytes;
              addProof(target, proof);
            } catch (error) {
              if (signal.aborted) throw signal.reason;
              failTarget(target, 'upload', error, object.component);
              return;
            }
          }
          steps.record(
            {
              name: 'upload',
              status: 'ok',
              target: target.name,
              message: `${produced.length} object(s), ${formatBytes(bytes)}, copied from the verified local copy and verified`,
            },
            began,
          );
        }),
      );
      watchdog.streaming(false);
    }

    // ── anomaly check, before any manifest: every copy of the set carries the same findings ──
    anomalyCheck = checkAnomalies({
      config,
      state,
      runId,
      setId,
      startedAt: startedAt.toISOString(),
      checkedAt: now().toISOString(),
      components,
      listings: allTargets.map((t) => ({ target: t.name, listings: listingsByTarget.get(t.name) })),
    });
    for (const step of stepsOfCheck(anomalyCheck)) steps.record(step);
    if (anomalyCheck.error) warnings.push(`the anomaly check could not run: ${anomalyCheck.error}`);
    const finishedAt = now().toISOString();
    const writeSetFile = async (target: Target, name: string, bytes: Buffer): Promise<VerifiedObject> => {
      const proof = await writeSmallObject(target, objectKey(config.job, setId, name), name, bytes, signal, now);
      state.recordObjectVerification(runId, {
        target: target.name,
        setId,
        object: name,
        bytes: proof.bytes,
        sha256: proof.sha256,
        level: proof.level,
        verifiedAt: proof.verifiedAt,
      });
      return proof;
    };
    // The redacted config holds data too: encrypted when the set is, once, the same bytes on every target.
    const configObject =
      input.configText === undefined
        ? undefined
        : await configObjectOf(Buffer.from(redactConfigText(input.configText), 'utf8'), recipients);
    for (const target of [...live.values()]) {
      const began = now();
      const objects = proofs.get(target.name) ?? [];
      const manifest: Manifest = {
        format: MANIFEST_FORMAT,
        job: config.job,
        setId,
        host,
        hostId: state.hostId(),
        startedAt: startedAt.toISOString(),
        finishedAt,
        backproofVersion: VERSION,
        compression: { algorithm: config.compression.algorithm, level: config.compression.level },
        encryption: recipients ? { format: 'age-encryption.org/v1', recipients: recipients.map((r) => r.text) } : null,
        objects: objects.map((o) => ({ name: o.name, bytes: o.bytes, sha256: o.sha256 })),
        components: components.map(({ warnings: componentWarnings, durationMs, ...rest }) => ({
          ...rest,
          ...(componentWarnings.length > 0 ? { warnings: componentWarnings } : {}),
        })),
        anomalies: anomalyCheck.findings,
        suspect: anomalyCheck.suspect,
        warnings,
        previous: withHead(chainHeads.get(target.name)),
      };
      try {
        // The set explains itself: the config it was made with (secrets redacted) and the plain-tool
        // restore steps for exactly these objects, both verified like any object, both in objects[].
        if (configObject !== undefined) {
          objects.push(await writeSetFile(target, configObject.name, configObject.bytes));
          manifest.objects = objects.map((o) => ({ name: o.name, bytes: o.bytes, sha256: o.sha256 }));
        }
        const runbook = Buffer.from(renderRunbook(manifest, { targetDescription: target.describe() }), 'utf8');
        objects.push(await writeSetFile(target, RUNBOOK_NAME, runbook));
        manifest.objects = objects.map((o) => ({ name: o.name, bytes: o.bytes, sha256: o.sha256 }));
        const set = await commitManifest(target, manifest, objects, signal, now);
        committed.push(set);
        state.setChainHead(config.job, target.name, {
          setId,
          manifestSha256: set.manifestSha256,
          committedAt: set.committedAt,
        });
        for (const component of components) {
          state.recordComponent(runId, {
            target: target.name,
            setId,
            name: component.name,
            kind: component.kind,
            object: component.object,
            bytes: component.bytes,
            sha256: component.sha256,
            rawBytes: component.rawBytes,
            rawSha256: component.rawSha256,
            files: component.files,
            tables: component.tables,
          });
        }
        const report = targetReports.get(target.name);
        if (report) {
          report.result = 'committed';
          report.setId = setId;
          report.manifestSha256 = set.manifestSha256;
          report.objects = set.objects.map((o) => ({ name: o.name, bytes: o.bytes, sha256: o.sha256, level: o.level }));
        }
        reporter.event({ type: 'set-committed', target: target.name, setId, manifestSha256: set.manifestSha256 });
        steps.record(
          {
            name: 'commit',
            status: 'ok',
            message: `set ${setId} committed, manifest sha256 ${set.manifestSha256}`,
            target: target.name,
            evidence: { setId, manifestSha256: set.manifestSha256 },
          },
          began,
        );
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        failTarget(target, 'commit', error);
      }
    }
  } catch (error) {
    if (!(error instanceof PreflightFailed) && !(error instanceof ComponentsFailed)) {
      const reason = signal.aborted ? signal.reason : error;
      failures.push({ step: signal.aborted ? 'aborted' : 'run', message: messageOf(reason) });
      steps.record({ name: signal.aborted ? 'aborted' : 'run', status: 'failed', message: messageOf(reason) });
    }
  } finally {
    watchdog.stop();
    input.signal.removeEventListener('abort', onOuterAbort);
  }

  // ── clean up what will not be committed; a failed run leaves nothing that looks like a backup ──
  const committedTargets = new Set(committed.map((c) => c.target));
  if (wroteToTargets) {
    for (const target of allTargets) {
      if (committedTargets.has(target.name)) continue;
      await discardSet(target, config.job, setId).catch((error: unknown) => {
        warnings.push(
          `target ${target.name}: could not remove this run's partial set ${setId} (${messageOf(error)}); the next run removes it`,
        );
      });
    }
  }
  await rm(scratchDir, { recursive: true, force: true }).catch(() => {});

  const outcomeInput = {
    requiredTargets: allTargets
      .filter((t) => !t.optional && !failures.some((f) => f.target === t.name))
      .map((t) => t.name),
    committed,
    failures,
    optionalFailures,
    warnings,
    anomalies: anomalyCheck?.findings ?? [],
  };
  // ── retention per target, once the outcome is known: never after a failed run, only where this
  // run's set is committed and not suspect; a problem there is a warning (core/prune.ts) ──
  let retention: PruneTargetReport[] = [];
  try {
    retention = await retentionAfterBackup({
      config,
      targets: allTargets,
      hostId: state.hostId(),
      signal: input.signal,
      log: input.log,
      now,
      setId,
      committedTargets: new Set(committed.map((c) => c.target)),
      runStatus: decideOutcome(outcomeInput).status,
    });
  } catch (error) {
    if (input.signal.aborted) controller.abort(input.signal.reason);
    warnings.push(`retention was interrupted (${messageOf(error)}); the committed set is unaffected`);
  }
  for (const report of retention) {
    const step = retentionStepOf(report);
    if (step) steps.record(step);
    for (const error of report.errors) {
      warnings.push(`target ${report.target}: retention failed (the committed set is unaffected): ${error}`);
    }
  }
  await Promise.all(allTargets.map((t) => t.close().catch(() => {})));

  // ── onError hooks (failed runs), then after hooks (every run); a failing one is a warning ──
  const statusBeforeHooks = decideOutcome(outcomeInput).status;
  const closing = await runClosingHooks({
    hooks: config.hooks,
    context: {
      job: config.job,
      runId,
      status: statusBeforeHooks,
      exitCode:
        signal.aborted && signal.reason instanceof InterruptedError
          ? ExitCode.interrupted
          : exitCodeForStatus(statusBeforeHooks),
      ...(committed.length > 0 ? { setId } : {}),
    },
    steps,
    now,
  });
  hookResults.push(...closing.results);
  warnings.push(...closing.warnings);

  const outcome = decideOutcome(outcomeInput);
  const interrupted = signal.aborted && signal.reason instanceof InterruptedError;
  const exitCode = interrupted ? ExitCode.interrupted : exitCodeForStatus(outcome.status);
  const finishedAt = now();
  const setBytes = componentsBytes(components);
  const report: BackupReport = {
    job: config.job,
    runId,
    setId,
    status: outcome.status,
    exitCode,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: finishedAt.getTime() - startedAt.getTime(),
    // Every object of the set (data, indexes, config, runbook), as `list` counts it; the manifest aside.
    bytes: (committed[0]?.objects ?? []).filter((o) => o.name !== 'manifest.json').reduce((sum, o) => sum + o.bytes, 0),
    rawBytes: setBytes.rawBytes,
    components,
    targets: [...targetReports.values()],
    steps: steps.steps,
    warnings: [...outcome.warnings],
    failures: [...outcome.failures],
    hooks: hookResults,
    anomalies: [...(anomalyCheck?.findings ?? [])],
    suspect: anomalyCheck?.suspect ?? false,
    retention,
  };
  // The state database is output too: no registered secret may reach it.
  const storedReport = JSON.parse(redact(JSON.stringify(report))) as BackupReport;
  state.finishRun(runId, {
    status: outcome.status,
    exitCode,
    finishedAt: report.finishedAt,
    bytes: report.bytes,
    report: storedReport,
  });
  // node_exporter's textfile: written from the state database, so after the run is recorded.
  const metricsProblem = await exportMetricsTextfile(config, state);
  if (metricsProblem) steps.record({ name: 'metrics', status: 'warning', message: metricsProblem });
  void lock;
  return report;
}

function withHead(head: ChainHead | null | undefined): Manifest['previous'] {
  return head ? { setId: head.setId, manifestSha256: head.manifestSha256 } : null;
}

class PreflightFailed extends Error {}
class ComponentsFailed extends Error {}

function componentsBytes(components: readonly ComponentReport[]): { rawBytes: number } {
  let rawBytes = 0;
  for (const c of components) rawBytes += c.rawBytes;
  return { rawBytes };
}

function errorEvidence(error: unknown): Record<string, unknown> | undefined {
  if (!error || typeof error !== 'object') return undefined;
  const evidence: Record<string, unknown> = {};
  let current: unknown = error;
  while (current && typeof current === 'object') {
    const e = current as {
      exitCode?: unknown;
      signal?: unknown;
      stderrTail?: unknown;
      command?: unknown;
      cause?: unknown;
    };
    if (e.command !== undefined) evidence.command = e.command;
    if (e.exitCode !== undefined) evidence.exitCode = e.exitCode;
    if (e.signal !== undefined) evidence.signal = e.signal;
    if (e.stderrTail !== undefined) evidence.stderrTail = e.stderrTail;
    current = e.cause;
  }
  return Object.keys(evidence).length > 0 ? evidence : undefined;
}

interface PreflightInput {
  input: BackupInput;
  state: StateDb | undefined;
  sources: readonly Source[];
  targets: readonly Target[];
  sourceContext: SourceContext;
  steps: StepLog;
  failTarget: (target: Target, step: string, error: unknown) => void;
  failures: Failure[];
  live: Map<string, Target>;
  /** Dry run: write no probe, only look. */
  dryRun?: boolean;
  /** Filled with each source's estimate. */
  estimates?: Map<string, number>;
  /** Set to the run's size estimate. */
  estimate?: { bytes: number };
}

/** Fills `live` with the targets that passed; returns false when the run must stop before writing anything. */
async function preflight(p: PreflightInput): Promise<boolean> {
  const { input, steps, failures } = p;
  const { config } = input;
  let ok = true;
  const fatal = (
    name: string,
    message: string,
    extra: { component?: string; target?: string; evidence?: Record<string, unknown> } = {},
  ) => {
    failures.push({ step: `preflight:${name}`, message, ...extra });
    steps.record({ name: `preflight:${name}`, status: 'failed', message, ...extra });
    ok = false;
  };

  try {
    const tool = await compressionToolVersion(config.compression.algorithm);
    steps.record({
      name: 'preflight:compression',
      status: 'ok',
      message: `${config.compression.algorithm} level ${config.compression.level} (${tool})`,
    });
  } catch (error) {
    fatal('compression', messageOf(error));
  }

  let rawEstimate = 0;
  let scratchEstimate = 0;
  const lastCommittedBytes = p.state?.lastCommittedRunBytes(config.job);
  /** Sources not measured (history gives the estimate, see needsRawEstimate): their size hint is the run's estimate. */
  const unmeasured: string[] = [];
  for (const source of p.sources) {
    try {
      const findings = await source.check(p.sourceContext);
      for (const finding of findings) {
        if (finding.fatal) fatal('source', finding.message, { component: source.name });
        else
          steps.record({
            name: 'preflight:source',
            status: 'warning',
            message: finding.message,
            component: source.name,
          });
      }
      if (findings.some((f) => f.fatal)) continue;
      if (!needsRawEstimate(source.type, lastCommittedBytes !== undefined, p.dryRun === true)) {
        unmeasured.push(source.name);
      } else {
        const estimate = await source.estimateRawBytes(p.sourceContext);
        p.estimates?.set(source.name, estimate);
        rawEstimate += estimate;
        if (source.type === 'sqlite') scratchEstimate += estimate;
      }
    } catch (error) {
      fatal('source', messageOf(error), { component: source.name });
    }
  }

  const estimate = estimateRunBytes(lastCommittedBytes, rawEstimate);
  for (const name of unmeasured) p.estimates?.set(name, estimate);
  if (p.estimate) p.estimate.bytes = estimate;
  const rule = { minFreeBytes: config.checks.minFree.bytes, minFreeBasisPoints: config.checks.minFree.percent };
  const scratch = judgeFreeSpace(
    'scratch space',
    p.sourceContext.scratchDir,
    await freeSpaceAt(p.sourceContext.scratchDir),
    scratchEstimate,
    rule,
  );
  if (scratchEstimate > 0 && !scratch.ok) fatal('free-space', scratch.message, { evidence: scratch.evidence });

  for (const target of p.targets) {
    try {
      if (target.free) {
        // A server that cannot tell its free space (no statvfs) is checked by the upload itself.
        const space = await target.free().catch((error: unknown) => {
          if (target.type === 'local') throw error;
          steps.record({
            name: 'preflight:free-space',
            status: 'warning',
            target: target.name,
            message: `free space on ${target.describe()} could not be checked: ${messageOf(error)}`,
          });
          return undefined;
        });
        const verdict = space && judgeFreeSpace(`target ${target.name}`, space.path, space, estimate, rule);
        if (verdict && !verdict.ok) throw Object.assign(new Error(verdict.message), { evidence: verdict.evidence });
      }
      if (p.dryRun) await target.list(`${config.job}/`);
      else await target.probeWritable(config.job);
      p.live.set(target.name, target);
      steps.record({
        name: 'preflight:target',
        status: 'ok',
        message: `${target.describe()} is writable`,
        target: target.name,
      });
    } catch (error) {
      // This target is out of the run (a required one makes it fail), but the others still get their
      // set: a NAS that is down must not cost the night's backup on the local disk.
      p.failTarget(target, 'preflight:target', error);
    }
  }
  if (ok && p.live.size === 0) {
    ok = false;
    steps.record({
      name: 'preflight:target',
      status: 'failed',
      message: 'no target passed preflight; nothing was written',
    });
  }
  return ok;
}

/** `backup --dry-run`: preflight and the plan. Takes no lock, writes nothing (not even the state database). */
export async function planBackup(input: BackupInput): Promise<PlanReport> {
  const { config } = input;
  const now = () => input.clock.now();
  const steps = new StepLog(input.reporter, now);
  const sources = input.sources ?? config.sources.map((s) => createSource(s, config));
  const targets = input.targets ?? config.targets.map((t) => createTarget(t));
  const state = existsSync(join(config.stateDir, 'state.db')) ? openStateDb(config.stateDir) : undefined;
  const failures: Failure[] = [];
  const live = new Map<string, Target>();
  const targetErrors = new Map<string, string>();
  const estimates = new Map<string, number>();
  const estimate = { bytes: 0 };
  const scratchDir = join(config.stateDir, 'tmp', config.job);
  try {
    const ok = await preflight({
      input,
      state,
      sources,
      targets,
      sourceContext: { signal: input.signal, log: input.log, scratchDir },
      steps,
      failTarget: (target, _step, error) => targetErrors.set(target.name, messageOf(error)),
      failures,
      live,
      dryRun: true,
      estimates,
      estimate,
    });
    for (const failure of failures) if (failure.target) targetErrors.set(failure.target, failure.message);
    return {
      job: config.job,
      ok,
      exitCode: ok ? ExitCode.success : ExitCode.failure,
      sources: sources.map((s) => ({ name: s.name, type: s.type, estimatedRawBytes: estimates.get(s.name) ?? null })),
      targets: targets.map((t) => ({
        name: t.name,
        type: t.type,
        where: t.describe(),
        optional: t.optional,
        ok: live.has(t.name),
        message: live.has(t.name) ? 'reachable, enough free space' : (targetErrors.get(t.name) ?? 'not checked'),
      })),
      estimateBytes: estimate.bytes,
      steps: steps.steps,
      failures,
    };
  } finally {
    state?.close();
    await Promise.all(targets.map((t) => t.close().catch(() => {})));
  }
}

/** config.redacted.yml, or config.redacted.yml.age encrypted to the job's recipients. */
async function configObjectOf(
  redacted: Buffer,
  recipients: readonly AgeRecipient[] | null,
): Promise<{ name: string; bytes: Buffer }> {
  if (recipients === null) return { name: CONFIG_NAME, bytes: redacted };
  const chunks: Buffer[] = [];
  const encryptor = createEncryptStream(recipients);
  encryptor.on('data', (chunk: Buffer) => chunks.push(chunk));
  await new Promise<void>((resolve, reject) => {
    encryptor.once('end', resolve);
    encryptor.once('error', reject);
    encryptor.end(redacted);
  });
  return { name: `${CONFIG_NAME}${AGE_SUFFIX}`, bytes: Buffer.concat(chunks) };
}

/** A source's explicit consent to store its secret components unencrypted (`allowUnencryptedSecrets`). */
function allowsUnencryptedSecrets(config: JobConfig, source: Source): boolean {
  const own = config.sources.find((s) => s.name === source.name);
  return own !== undefined && 'allowUnencryptedSecrets' in own && own.allowUnencryptedSecrets === true;
}
