// `backproof daemon`: runs the config's schedule in the foreground (for containers): each backup,
// verify and drill as a child backproof process; SIGTERM or SIGINT stops it cleanly.
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { ConfigError } from '../lib/errors.js';
import { ExitCode } from '../lib/exit-codes.js';
import { redact } from '../lib/redact.js';
import { scheduledJobs, selfInvocation } from '../schedule/jobs.js';
import { writeJson } from './output.js';
import type { Command } from './types.js';

export const daemonCommand: Command = {
  name: 'daemon',
  summary: 'run the schedule in the foreground (containers): each run a child process; SIGTERM stops it',
  usage: 'backproof [--config FILE] daemon [--json]',
  options: {},
  async run(args, io) {
    const loaded = await loadConfig(resolveConfigPath(args.config, io.env, io.cwd));
    const { config } = loaded;
    const jobs = scheduledJobs(config.schedule);
    if (jobs.length === 0)
      throw new ConfigError('schedule sets backup, verify and drill to false: the daemon would have nothing to run');
    // croner loads only here: other commands start without it.
    const { runDaemon } = await import('../schedule/daemon.js');
    const runs = await runDaemon({
      job: config.job,
      configPath: loaded.path,
      jobs,
      randomizedDelayMs: config.schedule.randomizedDelay,
      invocation: selfInvocation(),
      env: io.env,
      signal: io.signal,
      // The log is the daemon's output, on stderr; with --json, stdout gets one document at the end.
      log: (line) => io.stderr.write(redact(`${line}\n`)),
    });
    if (args.json) writeJson(io, { job: config.job, runs });
    return ExitCode.success;
  },
};
