// `backproof restore --set ID|latest [--target T] [--component C] [--path P] --to DIR [--force]`
// `backproof restore --set ID|latest --component C --into-database NAME [--force]`
import { resolve } from 'node:path';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { selectTargets } from '../core/catalog.js';
import { runRestore } from '../core/restore.js';
import { runDatabaseRestore } from '../core/restore-database.js';
import { UsageError } from '../lib/errors.js';
import { ExitCode } from '../lib/exit-codes.js';
import { formatBytes, formatCount } from '../lib/units.js';
import { createTarget } from '../targets/index.js';
import { stderrLogger, writeJson, writeLines } from './output.js';
import type { Command } from './types.js';

export const restoreCommand: Command = {
  name: 'restore',
  summary: 'restore a set, a component or one path to a directory, or a database component into a database',
  usage:
    'backproof [--config FILE] restore --set ID|latest [--target T] [--component C] [--path P] --to DIR [--force] [--allow-devices] [--allow-outside-symlinks] [--identity KEYFILE] [--json]\n' +
    '       backproof [--config FILE] restore --set ID|latest [--target T] --component C --into-database NAME [--force] [--identity KEYFILE] [--json]',
  options: {
    set: { type: 'string' },
    target: { type: 'string' },
    component: { type: 'string' },
    path: { type: 'string' },
    to: { type: 'string' },
    'into-database': { type: 'string' },
    force: { type: 'boolean' },
    'allow-devices': { type: 'boolean' },
    'allow-outside-symlinks': { type: 'boolean' },
    identity: { type: 'string' },
  },
  async run(args, io) {
    const value = (name: string) => args.values[name] as string | undefined;
    const set = value('set');
    if (set === undefined)
      throw new UsageError('restore needs --set ID or --set latest (`backproof list` shows the sets)');
    const to = value('to');
    const database = value('into-database');
    if ((to === undefined) === (database === undefined)) {
      throw new UsageError('restore needs exactly one of --to DIR (files) or --into-database NAME (with --component)');
    }
    const { config } = await loadConfig(resolveConfigPath(args.config, io.env, io.cwd));
    const log = stderrLogger(io, args.json);
    // An encrypted set needs the age private key: --identity, else the config's encryption.identityFile.
    const identity =
      value('identity') !== undefined ? { identityFile: resolve(io.cwd, value('identity') as string) } : {};
    const targets = selectTargets(
      config,
      value('target'),
      config.targets.map((t) => createTarget(t, { log })),
    );
    try {
      if (database !== undefined) {
        const component = value('component');
        if (component === undefined) throw new UsageError('--into-database needs --component (a database component)');
        if (value('path') !== undefined)
          throw new UsageError('--path restores files; it does not go with --into-database');
        const report = await runDatabaseRestore(
          config,
          targets,
          { set, component, database, force: args.values.force === true },
          { signal: io.signal, log, ...identity },
        );
        if (args.json) writeJson(io, report);
        else {
          writeLines(io.stdout, [
            `restored ${report.component} of set ${report.setId} (from ${report.target}) into database ${report.database} on ${report.server}`,
            ...report.warnings.map((w) => `warning: ${w}`),
          ]);
        }
        return report.warnings.length > 0 ? ExitCode.warning : ExitCode.success;
      }
      const report = await runRestore(
        config,
        targets,
        {
          set,
          to: resolve(io.cwd, to as string),
          force: args.values.force === true,
          allowDevices: args.values['allow-devices'] === true,
          allowOutsideSymlinks: args.values['allow-outside-symlinks'] === true,
          ...(value('component') !== undefined ? { component: value('component') } : {}),
          ...(value('path') !== undefined ? { path: value('path') } : {}),
        },
        { signal: io.signal, log, ...identity },
      );
      if (args.json) writeJson(io, report);
      else {
        writeLines(io.stdout, [
          `restored set ${report.setId} to ${report.destination}:`,
          ...report.components.map(
            (c) =>
              `  ${c.name} (${c.kind}, from ${c.target}): ${c.entries !== undefined ? `${formatCount(c.entries)} entries, ` : ''}` +
              `${formatBytes(c.bytes)} → ${c.restoredTo}`,
          ),
          ...report.warnings.map((w) => `warning: ${w}`),
        ]);
      }
      return report.warnings.length > 0 ? ExitCode.warning : ExitCode.success;
    } finally {
      await Promise.all(targets.map((t) => t.close().catch(() => {})));
    }
  },
};
