// Each job's status, read at most once per `ttlMs`: a page and its JSON, or several people looking
// at once, share one read of the targets (remote targets are slow to list). A failed read is not
// kept, so the next request tries again.
import type { JobConfig } from '../config/schema.js';
import { collectJobStatus, type JobStatus } from '../core/job-status.js';

export interface StatusCache {
  get(config: JobConfig): Promise<JobStatus>;
}

export function createStatusCache(
  signal: AbortSignal,
  ttlMs: number,
  // The dashboard only reads: the state database is opened read-only.
  collect: (config: JobConfig, signal: AbortSignal) => Promise<JobStatus> = (config, signal) =>
    collectJobStatus(config, signal, Date.now(), { readonly: true }),
): StatusCache {
  const entries = new Map<string, { at: number; status: Promise<JobStatus> }>();
  return {
    get(config) {
      const now = Date.now();
      const entry = entries.get(config.job);
      if (entry && now - entry.at < ttlMs) return entry.status;
      const status = collect(config, signal);
      entries.set(config.job, { at: now, status });
      status.catch(() => {
        if (entries.get(config.job)?.status === status) entries.delete(config.job);
      });
      return status;
    },
  };
}
