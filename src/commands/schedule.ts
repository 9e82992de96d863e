// `backproof schedule [--systemd | --cron] [--install [--root DIR]]`: timers for backup, verify and
// drill from the config's `schedule`. Prints them; --install writes them (and, on the live system,
// enables the timers); --root DIR writes under DIR and leaves systemctl to the operator.
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import type { JobConfig } from '../config/schema.js';
import { writeFileAtomically } from '../lib/atomic-file.js';
import { ConfigError, messageOf, OperationError, UsageError } from '../lib/errors.js';
import { runCapture } from '../lib/exec.js';
import { ExitCode } from '../lib/exit-codes.js';
import { cronFileName, renderCron } from '../schedule/cron.js';
import { type ScheduledCommand, scheduledJobs, selfInvocation } from '../schedule/jobs.js';
import { renderSystemdUnits, type UnitFile, unitBaseName } from '../schedule/systemd.js';
import { writeJson, writeLines } from './output.js';
import type { Command } from './types.js';

const ALL_COMMANDS: readonly ScheduledCommand[] = ['backup', 'verify', 'drill'];

interface ScheduleResult {
  job: string;
  kind: 'systemd' | 'cron';
  installed: boolean;
  files: { name: string; path: string; text: string }[];
  /** Files of commands the schedule no longer runs, removed by --install. */
  removed: string[];
  /** What the operator still has to run. */
  commands: string[];
  /** What this command ran (an --install on the live system). */
  ran: string[];
}

export const scheduleCommand: Command = {
  name: 'schedule',
  summary: 'systemd timers (default) or cron lines for backup, verify and drill; --install writes them',
  usage: 'backproof [--config FILE] schedule [--systemd | --cron] [--install [--root DIR]] [--json]',
  options: {
    systemd: { type: 'boolean' },
    cron: { type: 'boolean' },
    install: { type: 'boolean' },
    root: { type: 'string' },
  },
  async run(args, io) {
    if (args.values.systemd === true && args.values.cron === true)
      throw new UsageError('choose one of --systemd and --cron');
    const root = args.values.root as string | undefined;
    const install = args.values.install === true;
    if (root !== undefined && !install) throw new UsageError('--root DIR goes with --install');
    const loaded = await loadConfig(resolveConfigPath(args.config, io.env, io.cwd));
    const { config } = loaded;
    const jobs = scheduledJobs(config.schedule);
    if (jobs.length === 0)
      throw new ConfigError('schedule sets backup, verify and drill to false: there is nothing to schedule');
    const user = userInfo().username;
    const common = {
      job: config.job,
      configPath: loaded.path,
      invocation: selfInvocation(),
      jobs,
      randomizedDelayMs: config.schedule.randomizedDelay,
    };
    const base = root === undefined ? '/' : resolve(io.cwd, root);
    let result: ScheduleResult;
    if (args.values.cron === true) {
      let text: string;
      try {
        text = renderCron({ ...common, user });
      } catch (error) {
        throw new ConfigError(messageOf(error));
      }
      const path = join(base, 'etc', 'cron.d', cronFileName(config.job));
      result = {
        job: config.job,
        kind: 'cron',
        installed: false,
        files: [{ name: cronFileName(config.job), path, text }],
        removed: [],
        commands: [],
        ran: [],
      };
      if (install) {
        await writing(join(base, 'etc', 'cron.d'), async () => {
          await mkdir(join(base, 'etc', 'cron.d'), { recursive: true });
          await writeFileAtomically(path, text, 0o644);
        });
        result.installed = true;
      }
    } else {
      let units: UnitFile[];
      try {
        units = renderSystemdUnits({ ...common, ...(process.getuid?.() === 0 ? {} : { user }) });
      } catch (error) {
        throw new ConfigError(messageOf(error));
      }
      const dir = join(base, 'etc', 'systemd', 'system');
      result = {
        job: config.job,
        kind: 'systemd',
        installed: false,
        files: units.map((u) => ({ ...u, path: join(dir, u.name) })),
        removed: [],
        commands: enableCommands(config, units, []),
        ran: [],
      };
      if (install) await installUnits(config, result, units, dir, root === undefined);
    }

    if (args.json) writeJson(io, result);
    else writeLines(io.stdout, renderResult(result));
    return ExitCode.success;
  },
};

function enableCommands(config: JobConfig, units: readonly UnitFile[], stale: readonly string[]): string[] {
  const timers = units.filter((u) => u.name.endsWith('.timer')).map((u) => u.name);
  return [
    ...(stale.length > 0 ? [`systemctl disable --now ${stale.join(' ')}`] : []),
    'systemctl daemon-reload',
    `systemctl enable --now ${timers.join(' ')}`,
    `systemctl list-timers 'backproof-${config.job}-*'`,
  ];
}

async function installUnits(
  config: JobConfig,
  result: ScheduleResult,
  units: readonly UnitFile[],
  dir: string,
  live: boolean,
): Promise<void> {
  await writing(dir, () => mkdir(dir, { recursive: true }));
  // Commands the schedule no longer runs: their old units would keep firing.
  const enabled = new Set(units.map((u) => u.name));
  const staleTimers: string[] = [];
  for (const command of ALL_COMMANDS) {
    for (const suffix of ['.timer', '.service']) {
      const name = `${unitBaseName(config.job, command)}${suffix}`;
      if (enabled.has(name) || !existsSync(join(dir, name))) continue;
      if (suffix === '.timer') staleTimers.push(name);
      result.removed.push(join(dir, name));
    }
  }
  if (live && staleTimers.length > 0) await systemctl(['disable', '--now', ...staleTimers]).catch(() => {});
  await writing(dir, async () => {
    for (const path of result.removed) await rm(path, { force: true });
    for (const file of result.files) await writeFileAtomically(file.path, file.text, 0o644);
  });
  result.installed = true;
  result.commands = enableCommands(config, units, live ? [] : staleTimers);
  if (!live) return;
  const timers = units.filter((u) => u.name.endsWith('.timer')).map((u) => u.name);
  try {
    await systemctl(['daemon-reload']);
    result.ran.push('systemctl daemon-reload');
    await systemctl(['enable', '--now', ...timers]);
    result.ran.push(`systemctl enable --now ${timers.join(' ')}`);
    result.commands = result.commands.slice(-1);
  } catch (error) {
    throw new OperationError(
      `the units are written to ${dir}, but ${messageOf(error)}; run as root: ${result.commands.slice(0, -1).join(' && ')}`,
    );
  }
}

/** A write that fails (no permission, read-only) becomes a message that says where and what to do. */
async function writing(dir: string, write: () => Promise<unknown>): Promise<void> {
  try {
    await write();
  } catch (error) {
    throw new OperationError(
      `cannot write to ${dir}: ${messageOf(error)}; run as root, or pass --root DIR to write the files elsewhere`,
    );
  }
}

async function systemctl(args: string[]): Promise<void> {
  const result = await runCapture('systemctl', args);
  if (result.exitCode !== 0) {
    throw new Error(`systemctl ${args.join(' ')} failed (exit ${result.exitCode}): ${result.stderrTail.trim()}`);
  }
}

function renderResult(result: ScheduleResult): string[] {
  if (!result.installed) {
    const lines: string[] = [];
    for (const file of result.files) lines.push(`# ==> ${file.path} <==`, file.text);
    lines.push(
      result.kind === 'systemd'
        ? `# Install: backproof schedule --install (writes these files, then runs: ${result.commands.slice(0, -1).join(' && ')})`
        : '# Install: backproof schedule --cron --install (cron reads /etc/cron.d by itself)',
    );
    return lines;
  }
  return [
    ...result.removed.map((path) => `removed ${path} (no longer scheduled)`),
    ...result.files.map((file) => `wrote ${file.path}`),
    ...result.ran.map((command) => `ran: ${command}`),
    ...(result.commands.length > 0 ? ['now run:', ...result.commands.map((c) => `  ${c}`)] : []),
  ];
}
