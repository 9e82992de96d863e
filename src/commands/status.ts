// `backproof status`: newest verified set per target and its age against the RPO; exit 1 when unhealthy.
// The data comes from core/job-status.ts (shared with the dashboard); this file only prints it.
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { collectJobStatus, VERIFICATION_WORDS } from '../core/job-status.js';
import { ExitCode } from '../lib/exit-codes.js';
import { formatDuration } from '../lib/units.js';
import { displayTime, writeJson, writeLines } from './output.js';
import type { Command } from './types.js';

export const statusCommand: Command = {
  name: 'status',
  summary: 'health per target: newest verified set and its age against the RPO; exit 1 when unhealthy',
  usage: 'backproof [--config FILE] status [--json]',
  options: {},
  async run(args, io) {
    const { config } = await loadConfig(resolveConfigPath(args.config, io.env, io.cwd));
    const status = await collectJobStatus(config, io.signal);
    const { healthy, targets, lastRun, lastRunFailed, drill, anomalies, warnings } = status;
    const unfinished = status.unfinishedRuns;
    const undelivered = status.undeliveredNotifications;
    const exitCode = healthy ? ExitCode.success : ExitCode.failure;
    if (args.json) {
      writeJson(io, {
        job: config.job,
        healthy,
        targets,
        lastRun,
        lastRunFailed,
        lastDrill: drill.last ? { ...drill.last, healthy: drill.healthy, problem: drill.problem } : null,
        drillProblem: drill.problem,
        running: status.running.held ? status.running.holder : null,
        unfinishedRuns: unfinished,
        undeliveredNotifications: undelivered,
        anomalies,
        warnings,
      });
      return exitCode;
    }
    const lines = [`job ${config.job}: ${healthy ? 'HEALTHY' : 'UNHEALTHY'}`];
    for (const t of targets) {
      const age = t.ageMs !== null ? `${formatDuration(t.ageMs)} old` : '';
      const rpo = t.rpoMs !== null ? ` (RPO ${formatDuration(t.rpoMs)})` : '';
      lines.push(
        `  ${t.healthy ? '✓' : t.optional ? '!' : '✗'} ${t.target}${t.optional ? ' (optional)' : ''}: ` +
          (t.newestSetId
            ? `newest verified set ${t.newestSetId}, ${displayTime(t.newestFinishedAt ?? '')}, ${age}${rpo}` +
              proofWords(t.verification)
            : '') +
          (t.problem ? `${t.newestSetId ? '; ' : ''}${t.problem}` : ''),
      );
    }
    const holder = status.running.held ? status.running.holder : null;
    if (holder) lines.push(`  running now: pid ${holder.pid} on ${holder.host} since ${displayTime(holder.startedAt)}`);
    if (lastRun) {
      lines.push(
        `  ${lastRunFailed ? '!' : ' '} last run #${lastRun.id}: ${lastRun.status ?? 'unfinished'}, ` +
          `started ${displayTime(lastRun.startedAt)}` +
          (lastRunFailed
            ? '; read why in `backproof status --json` or the journal, fix it, run `backproof backup`'
            : ''),
      );
    }
    if (drill.last) {
      const rto =
        drill.last.rtoMs === null
          ? ''
          : `, measured RTO ${formatDuration(drill.last.rtoMs)}${
              drill.last.rtoObjectiveMs === null ? '' : ` (objective ${formatDuration(drill.last.rtoObjectiveMs)})`
            }`;
      lines.push(
        `  ${drill.healthy ? '✓' : '✗'} last drill ${displayTime(drill.last.at)}: ${drill.last.status ?? 'unfinished'}` +
          `${drill.last.setId ? ` of set ${drill.last.setId}` : ''}${rto}${drill.problem ? `; ${drill.problem}` : ''}`,
      );
    } else if (drill.problem) {
      lines.push(`  ✗ ${drill.problem}`);
    }
    for (const warning of warnings) lines.push(`  ! ${warning}`);
    for (const finding of anomalies) {
      lines.push(
        `  ✗ anomaly ${finding.id} (${finding.level}, set ${finding.setId}): ${finding.message}; ` +
          `check it, then \`backproof ack ${finding.id}\``,
      );
    }
    for (const run of unfinished.slice(0, 5)) {
      lines.push(
        `  ! run #${run.id} (pid ${run.pid}, started ${displayTime(run.startedAt)}) never finished: it was killed or crashed`,
      );
    }
    for (const n of undelivered.slice(0, 5)) {
      lines.push(
        `  ! notification ${n.event} via ${n.channel} (${displayTime(n.at)}) was not delivered: ${n.error ?? 'unknown error'}`,
      );
    }
    writeLines(io.stdout, lines);
    return exitCode;
  },
};

function proofWords(level: string | null | undefined): string {
  if (!level) return '';
  return `, proven by ${VERIFICATION_WORDS[level] ?? level}`;
}
