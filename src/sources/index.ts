// The registry of source kinds. Adding a kind: a driver file here, a schema entry in config/schema.ts.
import type { JobConfig, SourceConfig } from '../config/schema.js';
import { createCommandSource } from './command.js';
import { createFilesSource } from './files.js';
import { createMariadbSource } from './mariadb.js';
import { createPostgresSource } from './postgres.js';
import { createSqliteSource } from './sqlite.js';
import { createSystemSource } from './system.js';
import type { Source } from './types.js';

export function createSource(config: SourceConfig, job: Pick<JobConfig, 'stateDir' | 'targets'>): Source {
  switch (config.type) {
    case 'files':
      // Never back up our own state (reading the lock file would drop the job lock: POSIX locks are
      // per process) nor the sets on a local target (backups of backups, growing every night).
      return createFilesSource({ ...config, exclude: [...config.exclude, ...protectedGlobs(job)] });
    case 'sqlite':
      return createSqliteSource(config);
    case 'command':
      return createCommandSource(config);
    case 'mariadb':
      return createMariadbSource(config);
    case 'postgres':
      return createPostgresSource(config);
    case 'system':
      return createSystemSource({ ...config, exclude: [...config.exclude, ...protectedGlobs(job)] });
  }
}

function protectedGlobs(job: Pick<JobConfig, 'stateDir' | 'targets'>): string[] {
  const paths = [job.stateDir, ...job.targets.flatMap((t) => (t.type === 'local' ? [t.path] : []))];
  return paths.flatMap((path) => {
    const literal = path.replace(/[\\*?[\]{}()!+@|]/g, '\\$&').replace(/\/+$/, '');
    return [literal, `${literal}/**`];
  });
}
