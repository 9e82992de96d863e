// `backproof backup [--dry-run] [--take-over]`: run the job now.
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { planBackup, runBackup } from '../core/backup.js';
import { systemClock } from '../core/context.js';
import { LockedError } from '../lib/errors.js';
import { silentLogger } from '../lib/log.js';
import { backupNotifications } from '../notify/notify.js';
import { createTextReporter, renderBackupSummary, renderPlan } from '../report/text.js';
import { silentReporter } from '../report/types.js';
import { stderrLogger, writeJson, writeLines } from './output.js';
import type { Command } from './types.js';

export const backupCommand: Command = {
  name: 'backup',
  summary: 'run the job now (--dry-run: preflight and plan, writes nothing)',
  usage: 'backproof [--config FILE] backup [--dry-run] [--take-over] [--json]',
  options: {
    'dry-run': { type: 'boolean' },
    'take-over': { type: 'boolean' },
  },
  async run(args, io) {
    const { config, raw } = await loadConfig(resolveConfigPath(args.config, io.env, io.cwd));
    // With --json the reporter stays quiet: stdout carries one document, stderr stays free for errors.
    const reporter = args.json ? silentReporter : createTextReporter(io.stderr);
    // The start ping once the lock is held (the reporter hears run-start); the outcome once the run is recorded.
    const notifications = await backupNotifications(config, { log: stderrLogger(io, args.json) });
    const input = {
      config,
      configText: raw,
      takeOver: args.values['take-over'] === true,
      log: silentLogger,
      reporter: notifications.watch(reporter),
      signal: io.signal,
      clock: systemClock,
    };
    if (args.values['dry-run'] === true) {
      const plan = await planBackup(input);
      if (args.json) writeJson(io, plan);
      else writeLines(io.stdout, renderPlan(plan));
      return plan.exitCode;
    }
    let report: Awaited<ReturnType<typeof runBackup>>;
    try {
      report = await runBackup(input);
    } catch (error) {
      if (error instanceof LockedError) await notifications.afterLocked(error);
      throw error;
    }
    // Notifications never change the exit code: the run is decided and recorded already.
    if (args.json) {
      const notified = await notifications.afterRun(report);
      writeJson(io, notified.length > 0 ? { ...report, notifications: notified } : report);
    } else {
      writeLines(io.stdout, renderBackupSummary(report));
      await notifications.afterRun(report);
    }
    return report.exitCode;
  },
};
