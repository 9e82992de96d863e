// What gets scheduled: backup, verify and drill of one job, each with its schedule, and how to
// start this same backproof again (for unit files, cron lines and the daemon's children).
import { realpathSync } from 'node:fs';
import type { ScheduleConfig } from '../config/schema.js';
import { parseSchedule, type Schedule } from './expression.js';

export type ScheduledCommand = 'backup' | 'verify' | 'drill';

export interface ScheduledJob {
  command: ScheduledCommand;
  /** The command line after `--config FILE`, e.g. ['verify', '--set', 'all']. */
  args: readonly string[];
  schedule: Schedule;
  /** Takes the job lock (so it may find it taken and exit 75). */
  locks: boolean;
}

/** The enabled jobs of a schedule config, in a fixed order. */
export function scheduledJobs(config: ScheduleConfig): ScheduledJob[] {
  const jobs: ScheduledJob[] = [];
  if (config.backup !== false)
    jobs.push({ command: 'backup', args: ['backup'], schedule: parseSchedule(config.backup), locks: true });
  // Weekly, every set: bit rot or tampering in an old set is found while newer ones still exist.
  if (config.verify !== false)
    jobs.push({
      command: 'verify',
      args: ['verify', '--set', 'all'],
      schedule: parseSchedule(config.verify),
      locks: false,
    });
  if (config.drill !== false)
    jobs.push({ command: 'drill', args: ['drill'], schedule: parseSchedule(config.drill), locks: true });
  return jobs;
}

/**
 * The argv that starts this backproof: node, its own flags (e.g. `--import tsx` in development)
 * and the real path of the CLI script, so a unit keeps working when a symlink like
 * /usr/local/bin/backproof is replaced.
 */
export function selfInvocation(): string[] {
  const script = process.argv[1];
  if (!script) throw new Error('cannot tell how backproof was started (process.argv[1] is empty)');
  return [process.execPath, ...process.execArgv, realpathSync(script)];
}
