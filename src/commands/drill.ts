// `backproof drill [--target T] [--set ID|latest]`: the full restore test, recorded for `status`.
// Exit 1 when a check failed, 3 when it passed but over the RTO objective (or with warnings), else 0.
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { selectTargets } from '../core/catalog.js';
import { type DrillReport, runDrill } from '../core/drill.js';
import { ConfigError, messageOf, UsageError } from '../lib/errors.js';
import { ExitCode, exitCodeForStatus } from '../lib/exit-codes.js';
import { acquireJobLock } from '../lib/lock.js';
import { formatDuration } from '../lib/units.js';
import { notifyDrill } from '../notify/notify.js';
import { openStateDb, type StateDb } from '../state/store.js';
import { createTarget } from '../targets/index.js';
import { stderrLogger, writeJson, writeLines } from './output.js';
import type { Command } from './types.js';

const SCRATCH_STEP = 'scratch-database';

export const drillCommand: Command = {
  name: 'drill',
  summary: 'full restore test: fetch, verify, extract, load into a scratch database, reconcile, measure the RTO',
  usage: 'backproof [--config FILE] drill [--target T] [--set ID|latest] [--identity KEYFILE] [--json]',
  options: { target: { type: 'string' }, set: { type: 'string' }, identity: { type: 'string' } },
  async run(args, io) {
    const { config } = await loadConfig(resolveConfigPath(args.config, io.env, io.cwd));
    const log = stderrLogger(io, args.json);
    const lock = acquireJobLock(config.stateDir, config.job, 'drill');
    let state: StateDb | undefined;
    const targets = selectTargets(
      config,
      (args.values.target as string | undefined) ?? config.targets[0]?.name,
      config.targets.map((t) => createTarget(t, { log })),
    );
    try {
      state = openStateDb(config.stateDir);
      const startedAt = new Date().toISOString();
      const runId = state.startRun({
        job: config.job,
        command: 'drill',
        startedAt,
        pid: process.pid,
        host: hostname(),
      });
      const abandonedDatabases = scratchDatabasesOfUnfinishedDrills(state, config.job, runId);
      const setArg = (args.values.set as string | undefined) ?? 'latest';
      let report: DrillReport;
      try {
        report = await runDrill({
          config,
          targets,
          set: setArg,
          signal: io.signal,
          log,
          abandonedDatabases,
          ...(typeof args.values.identity === 'string' ? { identityFile: resolve(io.cwd, args.values.identity) } : {}),
          onScratchDatabase: (server, database) => {
            const at = new Date().toISOString();
            state?.recordStep(runId, {
              name: SCRATCH_STEP,
              status: 'ok',
              startedAt: at,
              finishedAt: at,
              message: `creating ${database} on the ${server} drill server`,
              evidence: { server, database },
            });
          },
        });
      } catch (error) {
        state.finishRun(runId, {
          status: 'failure',
          exitCode: ExitCode.failure,
          finishedAt: new Date().toISOString(),
          bytes: 0,
          report: { error: messageOf(error) },
        });
        // A drill that could not run proves nothing either: people hear of it (a typo or an interruption aside).
        if (!io.signal.aborted && !(error instanceof UsageError || error instanceof ConfigError)) {
          await notifyDrill(config, { error, set: setArg, startedAt, runId }, { log, state });
        }
        throw error;
      }
      const exitCode = exitCodeForStatus(report.status);
      state.finishRun(runId, {
        status: report.status,
        exitCode,
        finishedAt: report.finishedAt,
        bytes: 0,
        report,
      });
      await notifyDrill(config, { report, runId }, { log, state });
      if (args.json) writeJson(io, report);
      else writeLines(io.stdout, renderDrill(report));
      return exitCode;
    } finally {
      state?.close();
      lock.release();
      await Promise.all(targets.map((t) => t.close().catch(() => {})));
    }
  },
};

/** Scratch databases named by drills that never finished: the next drill drops them. */
function scratchDatabasesOfUnfinishedDrills(state: StateDb, job: string, current: number): string[] {
  const names: string[] = [];
  for (const run of state.listRuns(job, 200)) {
    if (run.id === current || run.command !== 'drill' || (run.status !== null && run.status !== 'abandoned')) continue;
    for (const step of state.getRun(run.id)?.steps ?? []) {
      const database = (step.evidence as { database?: unknown } | null)?.database;
      if (step.name === SCRATCH_STEP && typeof database === 'string') names.push(database);
    }
  }
  return names;
}

export function renderDrill(report: DrillReport): string[] {
  const lines = [
    `drill of set ${report.setId} (from ${report.target}): ${report.status.toUpperCase()}`,
    report.rtoMs === null
      ? '  measured RTO: none (the set did not restore)'
      : `  measured RTO: ${formatDuration(report.rtoMs)}${
          report.rtoObjectiveMs === null
            ? ' (no rto objective in the config)'
            : ` (objective ${formatDuration(report.rtoObjectiveMs)}: ${report.rtoMs > report.rtoObjectiveMs ? 'OVER' : 'within'})`
        }`,
  ];
  for (const component of report.components) {
    lines.push(`  ${component.name} (${component.kind}, ${component.restoredAs}):`);
    for (const check of component.checks)
      lines.push(`    ${check.ok ? 'ok    ' : 'FAILED'} ${check.check}: ${check.detail}`);
  }
  for (const problem of report.problems) lines.push(`problem: ${problem}`);
  for (const warning of report.warnings) lines.push(`warning: ${warning}`);
  for (const cleaned of report.cleanedUp) lines.push(`cleaned up after an earlier drill: ${cleaned}`);
  return lines;
}
