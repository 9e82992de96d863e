// `restore --component C --into-database NAME`: loads one database component into a database on the
// server of the source that made it (the config's connection and password). The object is fetched
// whole and verified before a single statement runs; a database that already holds tables is
// refused unless --force. PostgreSQL loads in one transaction, so a failed load leaves nothing.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobConfig } from '../config/schema.js';
import { OperationError, UsageError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { readSecret } from '../lib/secrets.js';
import { createDatabaseLoader } from '../restore/databases/index.js';
import type { Target } from '../targets/types.js';
import { locateSet } from './locate-set.js';
import { setDecoding } from './set-decoding.js';
import { fetchVerified, openRaw } from './set-objects.js';

export interface DatabaseRestoreRequest {
  set: string;
  component: string;
  database: string;
  force: boolean;
}

export interface DatabaseRestoreReport {
  job: string;
  setId: string;
  component: string;
  target: string;
  database: string;
  /** `mariadb 127.0.0.1:3306 as backup`, never a password. */
  server: string;
  created: boolean;
  startedAt: string;
  finishedAt: string;
  warnings: string[];
}

export async function runDatabaseRestore(
  config: JobConfig,
  targets: Target[],
  request: DatabaseRestoreRequest,
  ctx: { signal: AbortSignal; log: Logger; identityFile?: string },
): Promise<DatabaseRestoreReport> {
  const startedAt = new Date().toISOString();
  const located = await locateSet(config, targets, request.set, ctx.signal, ctx.log);
  const component = located.manifest.components.find((c) => c.name === request.component);
  if (!component) {
    throw new UsageError(
      `set ${located.setId} has no component ${JSON.stringify(request.component)}; it has: ${located.manifest.components
        .map((c) => c.name)
        .join(', ')}`,
    );
  }
  if ((component.kind !== 'mariadb' && component.kind !== 'postgres') || component.tables === undefined) {
    throw new UsageError(
      `${component.name} is a ${component.kind} component${component.kind === 'mariadb' ? ' of users and grants' : ''}, ` +
        'not a database dump; restore it with --to DIR and load it by hand (see `backproof runbook`)',
    );
  }
  const decoding = await setDecoding(located.manifest, config.encryption, ctx.identityFile);
  const source = config.sources.find((s) => s.name === component.source);
  if (!source || source.type !== component.kind) {
    throw new UsageError(
      `--into-database loads into the server of source ${JSON.stringify(component.source)}, but the config has no ` +
        `${component.kind} source of that name; add it (host, port, user, passwordFile) or restore with --to DIR`,
    );
  }
  const password = await readSecret(
    { file: source.passwordFile, env: source.passwordEnv },
    `source ${source.name}: ${source.passwordFile ? 'passwordFile' : 'passwordEnv'}`,
  );
  const loader = createDatabaseLoader({
    kind: component.kind,
    host: source.host,
    port: source.port,
    ...('socket' in source && source.socket ? { socket: source.socket } : {}),
    user: source.user,
    ...(password !== undefined ? { password } : {}),
  });
  await loader.check(ctx.signal);
  const exists = await loader.exists(request.database, ctx.signal);
  if (exists && !request.force && !(await loader.isEmpty(request.database, ctx.signal))) {
    throw new OperationError(
      `database ${request.database} on ${loader.describe()} is not empty; restore into a new name, ` +
        'or pass --force to load into it anyway',
    );
  }

  // The object is staged beside the state (sized for backups), not in /tmp (often a small tmpfs).
  const scratch = join(config.stateDir, 'tmp');
  await mkdir(scratch, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(join(scratch, `restore-${config.job}-`));
  let created = false;
  try {
    const objectFile = join(dir, component.object);
    ctx.log.info(`fetching ${component.object}`);
    const target = await fetchVerified(located, config.job, component.object, objectFile, ctx.signal, ctx.log);
    if (!exists) {
      await loader.create(request.database, ctx.signal);
      created = true;
    }
    ctx.log.info(`loading ${component.name} into ${request.database} on ${loader.describe()}`);
    const raw = openRaw(objectFile, decoding, component, ctx.signal);
    const report = await loader.load(request.database, raw.stream, {
      signal: ctx.signal,
      tolerateMissingRoles: false,
    });
    raw.check();
    return {
      job: config.job,
      setId: located.setId,
      component: component.name,
      target,
      database: request.database,
      server: loader.describe(),
      created,
      startedAt,
      finishedAt: new Date().toISOString(),
      warnings: [...report.warnings, ...report.skipped],
    };
  } catch (error) {
    // A database this restore created and could not fill is dropped: nothing half-restored stays.
    if (created) await loader.dropIfExists(request.database, AbortSignal.timeout(60_000)).catch(() => {});
    throw error;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
