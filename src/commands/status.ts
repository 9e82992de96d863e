// `backproof status`: newest verified set per target and its age against the RPO; exit 1 when unhealthy.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { readCatalog, selectTargets } from '../core/catalog.js';
import { ExitCode } from '../lib/exit-codes.js';
import { inspectJobLock } from '../lib/lock.js';
import { formatDuration } from '../lib/units.js';
import {
  type DrillHealthInput,
  everyCopyDeletable,
  jobHealthy,
  judgeDrill,
  judgeTargetHealth,
} from '../policy/health.js';
import type { NotificationRow } from '../state/notification-store.js';
import { openStateDb, type StoredFinding } from '../state/store.js';
import { displayTime, writeJson, writeLines } from './output.js';
import type { Command } from './types.js';

export const statusCommand: Command = {
  name: 'status',
  summary: 'health per target: newest verified set and its age against the RPO; exit 1 when unhealthy',
  usage: 'backproof [--config FILE] status [--json]',
  options: {},
  async run(args, io) {
    const { config } = await loadConfig(resolveConfigPath(args.config, io.env, io.cwd));
    const catalogs = await readCatalog(config, selectTargets(config, undefined), io.signal);
    const nowMs = Date.now();
    const targets = catalogs.map((catalog) => {
      const newest = catalog.sets.find((s) => s.valid && !s.suspect && s.finishedAt);
      return judgeTargetHealth(
        {
          target: catalog.target,
          optional: catalog.optional,
          ...(catalog.error ? { error: catalog.error } : {}),
          ...(newest?.finishedAt ? { newest: { setId: newest.setId, finishedAt: newest.finishedAt } } : {}),
        },
        nowMs,
        config.objectives?.rpo,
      );
    });
    const lock = inspectJobLock(config.stateDir, config.job);
    // How strongly each target proved its newest set, from this host's history (absent on a new host).
    const verification = new Map<string, string | null>();
    let lastRun: {
      id: number;
      status: string | null;
      startedAt: string;
      finishedAt: string | null;
      exitCode: number | null;
    } | null = null;
    let unfinished: { id: number; startedAt: string; pid: number; host: string }[] = [];
    let lastDrill: DrillHealthInput | undefined;
    // Notifications that failed and that no later delivery on their channel followed: people may not have heard.
    let undelivered: NotificationRow[] = [];
    // Findings of the newest checked run that nobody accepted: unhealthy until acked or a clean run.
    let anomalies: StoredFinding[] = [];
    if (existsSync(join(config.stateDir, 'state.db'))) {
      const state = openStateDb(config.stateDir);
      try {
        for (const t of targets) {
          if (t.newestSetId) {
            verification.set(t.target, weakestLevel(state.objectVerifications(config.job, t.target, t.newestSetId)));
          }
        }
        const runs = state.listRuns(config.job, 200);
        const drillRun = runs.find((r) => r.command === 'drill' && !(lock.held && lock.holder?.pid === r.pid));
        if (drillRun) {
          const report = state.getRun(drillRun.id)?.report as { setId?: unknown; rtoMs?: unknown } | null;
          lastDrill = {
            at: drillRun.startedAt,
            status: drillRun.status,
            setId: typeof report?.setId === 'string' ? report.setId : null,
            rtoMs: typeof report?.rtoMs === 'number' ? report.rtoMs : null,
          };
        }
        const first = runs.find((r) => r.command === 'backup');
        if (first)
          lastRun = {
            id: first.id,
            status: first.status,
            startedAt: first.startedAt,
            finishedAt: first.finishedAt,
            exitCode: first.exitCode,
          };
        anomalies = state.openFindings(config.job);
        unfinished = runs
          .filter((r) => r.status === 'abandoned' || (r.status === null && !(lock.held && lock.holder?.pid === r.pid)))
          .map((r) => ({ id: r.id, startedAt: r.startedAt, pid: r.pid, host: r.host }));
        undelivered = state.undeliveredNotifications(config.job, 20);
      } finally {
        state.close();
      }
    }
    const drill = judgeDrill(lastDrill, {
      expected: config.drill !== undefined,
      nowMs,
      ...(config.objectives?.rto !== undefined ? { rtoObjectiveMs: config.objectives.rto } : {}),
      ...(config.drill ? { maxAgeMs: config.drill.maxAge } : {}),
    });
    // Shown, not judged: the RPO says whether the sets are fresh enough, and a failure that was only an
    // anomaly is settled by `ack`; the line makes sure a human sees it.
    const lastRunFailed = lastRun?.status === 'failure' || lastRun?.status === 'abandoned';
    const warnings: string[] = [];
    if (everyCopyDeletable(config.targets)) {
      warnings.push(
        'every copy can be deleted with credentials held on this host (no target is appendOnly): ' +
          'give one target credentials that cannot delete (S3 Object Lock, a NAS snapshot or pull), then set appendOnly: true',
      );
    }
    const healthy = jobHealthy(targets) && drill.healthy && anomalies.length === 0;
    const exitCode = healthy ? ExitCode.success : ExitCode.failure;
    if (args.json) {
      writeJson(io, {
        job: config.job,
        healthy,
        targets: targets.map((t) => ({ ...t, verification: verification.get(t.target) ?? null })),
        lastRun,
        lastRunFailed,
        lastDrill: drill.last ? { ...drill.last, healthy: drill.healthy, problem: drill.problem } : null,
        drillProblem: drill.problem,
        running: lock.held ? (lock.holder ?? null) : null,
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
              proofWords(verification.get(t.target))
            : '') +
          (t.problem ? `${t.newestSetId ? '; ' : ''}${t.problem}` : ''),
      );
    }
    if (lock.held && lock.holder)
      lines.push(
        `  running now: pid ${lock.holder.pid} on ${lock.holder.host} since ${displayTime(lock.holder.startedAt)}`,
      );
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

const STRENGTH = ['etag', 'remote-hash', 'reread'];
const LEVEL_WORDS: Record<string, string> = {
  reread: 're-reading every byte',
  'remote-hash': 'SHA-256 computed on the server',
  etag: 'size and ETag from the server',
};

/** The weakest level any object of the set reached: the set is only as proven as that. */
function weakestLevel(rows: readonly { level: string }[]): string | null {
  let weakest: string | null = null;
  for (const row of rows) {
    if (weakest === null || STRENGTH.indexOf(row.level) < STRENGTH.indexOf(weakest)) weakest = row.level;
  }
  return weakest;
}

function proofWords(level: string | null | undefined): string {
  if (!level) return '';
  return `, proven by ${LEVEL_WORDS[level] ?? level}`;
}
