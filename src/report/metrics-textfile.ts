// The node_exporter textfile export: after each backup run, the job's metrics replace the file in
// one rename, so the collector never reads half a file. The temporary name does not end in .prom,
// which the collector ignores. Mode 0644 whatever the umask: node_exporter runs as its own user.
import { dirname } from 'node:path';
import type { JobConfig } from '../config/schema.js';
import { writeFileAtomically } from '../lib/atomic-file.js';
import { messageOf } from '../lib/errors.js';
import type { StateDb } from '../state/store.js';
import { collectMetrics, renderMetrics } from './metrics.js';

/**
 * Writes the job's metrics to `metrics.textfile` when the config has one. Returns what went wrong
 * (for a warning step), or undefined when the file was written or none is configured.
 */
export async function exportMetricsTextfile(config: JobConfig, state: StateDb): Promise<string | undefined> {
  const path = config.metrics?.textfile;
  if (!path) return undefined;
  try {
    await writeFileAtomically(path, renderMetrics(collectMetrics(config, state)), 0o644);
    return undefined;
  } catch (error) {
    const hint =
      (error as NodeJS.ErrnoException).code === 'ENOENT'
        ? `; create ${dirname(path)} (node_exporter's --collector.textfile.directory) or fix metrics.textfile`
        : '';
    return `could not write the metrics textfile ${path}: ${messageOf(error)}${hint}`;
  }
}
