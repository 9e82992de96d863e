// `backproof list [--target T]`: committed sets, newest first, read from the targets.
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { readCatalog, selectTargets } from '../core/catalog.js';
import { ExitCode } from '../lib/exit-codes.js';
import { formatBytes } from '../lib/units.js';
import { displayTime, writeJson, writeLines } from './output.js';
import type { Command } from './types.js';

export const listCommand: Command = {
  name: 'list',
  summary: 'committed sets on each target, newest first',
  usage: 'backproof [--config FILE] list [--target T] [--json]',
  options: { target: { type: 'string' } },
  async run(args, io) {
    const { config } = await loadConfig(resolveConfigPath(args.config, io.env, io.cwd));
    const targets = selectTargets(config, args.values.target as string | undefined);
    const catalogs = await readCatalog(config, targets, io.signal);
    const failed = catalogs.some((c) => c.error !== undefined);
    if (args.json) {
      writeJson(io, { job: config.job, targets: catalogs });
      return failed ? ExitCode.failure : ExitCode.success;
    }
    const lines: string[] = [];
    for (const catalog of catalogs) {
      lines.push(`${catalog.target} (${catalog.where}${catalog.optional ? ', optional' : ''}):`);
      if (catalog.error) lines.push(`  cannot read this target: ${catalog.error}`);
      else if (catalog.sets.length === 0) lines.push('  no committed sets');
      for (const set of catalog.sets) {
        if (!set.valid) {
          lines.push(`  ${set.setId}  CORRUPT manifest: ${(set.problems ?? []).slice(0, 3).join('; ')}`);
          continue;
        }
        lines.push(
          `  ${set.setId}  ${displayTime(set.startedAt ?? '')}  ${formatBytes(set.bytes ?? 0).padStart(9)}  ` +
            `${(set.components ?? []).join(', ')}${set.suspect ? '  SUSPECT' : ''}` +
            (set.recipients ? `  encrypted for ${set.recipients.join(', ')}` : ''),
        );
      }
    }
    writeLines(io.stdout, lines);
    return failed ? ExitCode.failure : ExitCode.success;
  },
};
