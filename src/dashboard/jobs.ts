// The jobs a dashboard shows: config files given on the command line, or directories whose *.yml
// and *.yaml files are configs. Every config must load and every job name must be unique, or the
// dashboard does not start (a half-loaded dashboard would hide a job from the operator).
import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import type { JobConfig } from '../config/schema.js';
import { ConfigError } from '../lib/errors.js';

export interface DashboardJob {
  /** Absolute path of the config file. */
  path: string;
  config: JobConfig;
}

/** The jobs by name, in name order. */
export type DashboardJobs = ReadonlyMap<string, DashboardJob>;

/** Loads every config named by `paths` (files or directories, relative to `cwd`). */
export async function loadDashboardJobs(paths: readonly string[], cwd: string): Promise<DashboardJobs> {
  // The same file named twice (itself and through its directory) is one job, not a clash.
  const files = [...new Set(paths.flatMap((p) => configFilesAt(resolve(cwd, p))))];
  const jobs = new Map<string, DashboardJob>();
  for (const path of files) {
    let config: JobConfig;
    try {
      ({ config } = await loadConfig(path));
    } catch (error) {
      if (error instanceof ConfigError) {
        // Its message names the file already; the problems stay a list.
        const [headline = ''] = error.message.split('\n');
        throw new ConfigError(`serve: ${headline}`, error.problems);
      }
      throw error;
    }
    const earlier = jobs.get(config.job);
    if (earlier) {
      throw new ConfigError(
        `serve: job ${JSON.stringify(config.job)} is named by two configs, ${earlier.path} and ${path}: ` +
          'job names must be unique (they name the directories on the targets); rename one, or serve them apart',
      );
    }
    jobs.set(config.job, { path, config });
  }
  return new Map([...jobs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** A file as itself; a directory as its *.yml/*.yaml files, sorted. */
function configFilesAt(path: string): string[] {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch {
    return [path]; // loadConfig says what is wrong with it
  }
  if (!isDirectory) return [path];
  const names = readdirSync(path)
    .filter((name) => /\.ya?ml$/.test(name) && !name.startsWith('.'))
    .sort();
  const files = names.map((name) => join(path, name)).filter((file) => statSync(file).isFile());
  if (files.length === 0) {
    throw new ConfigError(
      `serve: the directory ${path} holds no config (*.yml or *.yaml); give config files or a directory of them`,
    );
  }
  return files;
}
