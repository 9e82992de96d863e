// `backproof prune [--dry-run] [--target T]`: each target's retention, with tombstones.
// A real prune holds the job lock (exit 75 when another run has it) and is recorded as a run;
// `--dry-run` only reads, like `backup --dry-run`: no lock, nothing written anywhere.
// Exit 0: done; 1: a target failed; 3: done, but something needs a look (corrupt or suspect sets).
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { selectTargets } from '../core/catalog.js';
import { type PruneReport, type PruneTargetReport, runPrune } from '../core/prune.js';
import { InterruptedError, messageOf } from '../lib/errors.js';
import { ExitCode } from '../lib/exit-codes.js';
import { acquireJobLock } from '../lib/lock.js';
import { redact } from '../lib/redact.js';
import { loadHostId } from '../state/host-id.js';
import { openStateDb, type StateDb } from '../state/store.js';
import { createTarget } from '../targets/index.js';
import { displayTime, stderrLogger, writeJson, writeLines } from './output.js';
import type { Command } from './types.js';

export const pruneCommand: Command = {
  name: 'prune',
  summary: "apply each target's retention: tombstone, then delete the sets no rule keeps (--dry-run: only list)",
  usage: 'backproof [--config FILE] prune [--dry-run] [--target T] [--json]',
  options: { 'dry-run': { type: 'boolean' }, target: { type: 'string' } },
  async run(args, io) {
    const { config } = await loadConfig(resolveConfigPath(args.config, io.env, io.cwd));
    const log = stderrLogger(io, args.json);
    const dryRun = args.values['dry-run'] === true;
    const targets = selectTargets(
      config,
      args.values.target as string | undefined,
      config.targets.map((t) => createTarget(t, { log })),
    );
    const common = { config, targets, dryRun, signal: io.signal, log, now: () => new Date() };
    const show = (report: PruneReport): number => {
      if (args.json) writeJson(io, report);
      else writeLines(io.stdout, renderPrune(report));
      return report.exitCode;
    };
    if (dryRun) {
      try {
        // Reading the host id must not create one: a dry run writes nothing.
        const hostId = existsSync(join(config.stateDir, 'host-id')) ? loadHostId(config.stateDir) : null;
        return show(await runPrune({ ...common, hostId }));
      } finally {
        await Promise.all(targets.map((t) => t.close().catch(() => {})));
      }
    }

    const lock = acquireJobLock(config.stateDir, config.job, 'prune');
    let state: StateDb | undefined;
    try {
      state = openStateDb(config.stateDir);
      const runId = state.startRun({
        job: config.job,
        command: 'prune',
        startedAt: new Date().toISOString(),
        pid: process.pid,
        host: hostname(),
      });
      let report: PruneReport;
      try {
        report = await runPrune({ ...common, hostId: state.hostId() });
      } catch (error) {
        state.finishRun(runId, {
          status: 'failure',
          exitCode: error instanceof InterruptedError ? ExitCode.interrupted : ExitCode.failure,
          finishedAt: new Date().toISOString(),
          bytes: 0,
          report: { error: messageOf(error) },
        });
        throw error;
      }
      for (const target of report.targets) {
        state.recordStep(runId, {
          name: 'prune-target',
          target: target.target,
          status:
            target.result === 'failed'
              ? 'failed'
              : target.result === 'skipped'
                ? 'skipped'
                : target.warnings.length > 0
                  ? 'warning'
                  : 'ok',
          startedAt: report.startedAt,
          finishedAt: report.finishedAt,
          message: redact(targetSummary(target)),
          evidence: { deleted: target.deleted, finished: target.finished, tombstones: target.tombstones },
        });
      }
      state.finishRun(runId, {
        status: report.status,
        exitCode: report.exitCode,
        finishedAt: report.finishedAt,
        bytes: 0,
        report: JSON.parse(redact(JSON.stringify(report))),
      });
      return show(report);
    } finally {
      state?.close();
      lock.release();
      await Promise.all(targets.map((t) => t.close().catch(() => {})));
    }
  },
};

/** One line per target: what happened. */
export function targetSummary(target: PruneTargetReport): string {
  if (target.result === 'skipped') return `skipped: ${target.skipped ?? ''}`;
  const kept = target.sets.filter((s) => s.decision === 'keep').length;
  const doomed = target.sets.filter((s) => s.decision === 'delete').length;
  const parts = [`${target.sets.length} set(s): ${kept} kept`];
  if (target.deleted.length > 0) parts.push(`${target.deleted.length} deleted (${target.deleted.join(', ')})`);
  else if (doomed > 0) parts.push(`${doomed} to delete`);
  if (target.finished.length > 0) parts.push(`finished an interrupted prune of ${target.finished.join(', ')}`);
  if (target.errors.length > 0) parts.push(`FAILED: ${target.errors.join('; ')}`);
  return parts.join(', ');
}

/** Human lines: per target, every set with its decision and the rules behind it, then the verdict. */
export function renderPrune(report: PruneReport): string[] {
  const lines: string[] = [];
  for (const target of report.targets) {
    const rules = target.rules
      ? `retention ${Object.entries(target.rules)
          .filter(([, count]) => count !== 0)
          .map(([name, count]) => `${name} ${count === -1 ? 'unlimited' : count}`)
          .join(', ')} (${target.timeZone ?? 'UTC'})`
      : 'no retention';
    lines.push(`${target.target} (${target.where}): ${rules}`);
    if (target.result === 'skipped') {
      lines.push(`  skipped: ${target.skipped ?? ''}`);
      continue;
    }
    for (const set of target.sets) {
      const verb =
        set.decision === 'keep' ? 'keep   ' : report.dryRun ? 'WOULD DELETE' : set.deleted ? 'deleted' : 'NOT deleted';
      const when = set.startedAt ? displayTime(set.startedAt) : 'corrupt manifest';
      lines.push(`  ${verb} ${set.setId}  ${when}  ${set.reasons.join('; ')}`);
    }
    if (target.sets.length === 0 && target.errors.length === 0) lines.push('  no committed set');
    for (const id of target.finished) lines.push(`  finished removing ${id} (an interrupted prune had tombstoned it)`);
    for (const warning of target.warnings) lines.push(`  warning: ${warning}`);
    for (const error of target.errors) lines.push(`  FAILED: ${error}`);
  }
  const deleted = report.targets.reduce((n, t) => n + t.deleted.length, 0);
  const doomed = report.targets.reduce((n, t) => n + t.sets.filter((s) => s.decision === 'delete').length, 0);
  const verdict = report.status === 'failure' ? 'FAILED' : report.status === 'warning' ? 'done, with warnings' : 'OK';
  lines.push(
    report.dryRun
      ? `prune --dry-run: ${doomed} set(s) would be deleted; nothing was changed`
      : `prune: ${verdict}, ${deleted} set(s) deleted${deleted > 0 ? ', each after its tombstone was written' : ''}`,
  );
  return lines;
}
