// `backproof verify [--target T] [--set ID|latest|all]`: read every object of the chosen sets back
// from the targets, check them against their manifests, and check the hash chain. Exit 1 on any problem.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { isSetSelection, runVerify, type SetCheck, type TargetCheck, type VerifyReport } from '../core/verify.js';
import { messageOf, UsageError } from '../lib/errors.js';
import { redact } from '../lib/redact.js';
import { formatBytes } from '../lib/units.js';
import { notifyVerify } from '../notify/notify.js';
import { openStateDb, type StateDb } from '../state/store.js';
import { stderrLogger, writeJson, writeLines } from './output.js';
import type { Command, CommandIO } from './types.js';

export const verifyCommand: Command = {
  name: 'verify',
  summary: 'read every object of a set back from the targets, check it and the hash chain; exit 1 on any problem',
  usage: 'backproof [--config FILE] verify [--target T] [--set ID|latest|all] [--json]',
  options: { target: { type: 'string' }, set: { type: 'string' } },
  async run(args, io) {
    const { config } = await loadConfig(resolveConfigPath(args.config, io.env, io.cwd));
    const set = (args.values.set as string | undefined) ?? 'latest';
    if (!isSetSelection(set)) {
      throw new UsageError(
        `--set takes latest, all or a set id like 20251104T030000Z-k3x9qa, not ${JSON.stringify(set)}`,
      );
    }
    const state = openExistingState(config.stateDir, io);
    try {
      const log = stderrLogger(io, args.json);
      const report = await runVerify(config, {
        set,
        ...(typeof args.values.target === 'string' ? { target: args.values.target } : {}),
        signal: io.signal,
        log,
        ...(state ? { state } : {}),
      });
      await notifyVerify(config, report, { log, ...(state ? { state } : {}) });
      if (args.json) writeJson(io, report);
      else writeLines(io.stdout, renderVerify(report));
      return report.exitCode;
    } finally {
      state?.close();
    }
  },
};

/** The state database if this host has one; verify never creates it (a new server has only the config). */
function openExistingState(stateDir: string, io: CommandIO): StateDb | undefined {
  if (!existsSync(join(stateDir, 'state.db'))) return undefined;
  try {
    return openStateDb(stateDir);
  } catch (error) {
    io.stderr.write(redact(`backproof: ${messageOf(error)}; verifying without it\n`));
    return undefined;
  }
}

const LEVEL_WORDS: Record<string, string> = {
  reread: 'read back',
  'remote-hash': 'hashed on the server',
  etag: 'ETag only',
};

/** Human lines: per target, each set OK or FAILED with its reasons, then the chain, then the verdict. */
export function renderVerify(report: VerifyReport): string[] {
  const lines: string[] = [];
  for (const target of report.targets) lines.push(...renderTarget(target));
  for (const note of report.notes) lines.push(`note: ${note}`);
  const sets = report.targets.reduce((n, t) => n + t.sets.length, 0);
  lines.push(
    report.ok
      ? `verify: OK, ${sets} set(s) on ${report.targets.length} target(s) intact`
      : `verify: FAILED, ${report.problems.length} problem(s)`,
  );
  return lines;
}

function renderTarget(target: TargetCheck): string[] {
  const lines = [`${target.target} (${target.where}${target.optional ? ', optional' : ''}):`];
  if (target.error !== undefined) {
    lines.push(`  FAILED: ${target.problems.join('; ')}`);
    return lines;
  }
  for (const set of target.sets) lines.push(...renderSet(set));
  const setProblems = new Set(target.sets.flatMap((s) => s.problems));
  for (const problem of target.problems.filter((p) => !setProblems.has(p) && !target.chain?.problems.includes(p))) {
    lines.push(`  FAILED: ${problem}`);
  }
  if (target.incomplete.length > 0) {
    lines.push(`  incomplete (no manifest.json; a backup may be writing one): ${target.incomplete.join(', ')}`);
  }
  const chain = target.chain;
  if (chain) {
    const pruned = chain.explainedGaps.length > 0 ? `; pruned, with tombstones: ${chain.explainedGaps.join(', ')}` : '';
    const head = chain.headChecked ? `; chain head ${chain.head?.setId} checked` : '';
    const scope = chain.scope === 'all' ? 'hash chain' : 'hash chain (links of the sets above)';
    if (chain.problems.length === 0) lines.push(`  ${scope}: OK${pruned}${head}`);
    else {
      lines.push(`  ${scope}: FAILED${pruned}`);
      for (const problem of chain.problems) lines.push(`    ✗ ${problem}`);
    }
  }
  for (const note of target.notes) lines.push(`  note: ${note}`);
  return lines;
}

function renderSet(set: SetCheck): string[] {
  const levels = [...new Set(set.objects.flatMap((o) => (o.level ? [LEVEL_WORDS[o.level] ?? o.level] : [])))];
  const summary =
    set.manifest === 'ok'
      ? `${set.objects.length} object(s), ${formatBytes(set.objects.reduce((n, o) => n + o.bytes, 0))}` +
        (levels.length > 0 ? `, ${levels.join(' and ')}` : '') +
        (set.suspect ? ', SUSPECT' : '')
      : `manifest ${set.manifest}`;
  const lines = [`  ${set.setId}  ${set.ok ? 'OK    ' : 'FAILED'}  ${summary}`];
  const prefix = `set ${set.setId}: `;
  for (const problem of set.problems) {
    lines.push(`    ✗ ${problem.startsWith(prefix) ? problem.slice(prefix.length) : problem}`);
  }
  return lines;
}
