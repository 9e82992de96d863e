// `backproof runbook [--set ID|latest] [--target T]`: prints the RUNBOOK.md stored in a set, taken
// from the first target that has the set (the set `restore` would use) and checked against the
// manifest. When the stored copy is missing or damaged, one is rendered from the manifest instead,
// said so on stderr, and the exit code is 3 (success with warnings): the steps are right, but the
// set's own copy needs attention.
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { selectTargets } from '../core/catalog.js';
import { locateSet } from '../core/locate-set.js';
import { readSmallObject } from '../core/target-session.js';
import { messageOf } from '../lib/errors.js';
import { ExitCode } from '../lib/exit-codes.js';
import { redact } from '../lib/redact.js';
import { objectKey } from '../set/layout.js';
import { type Manifest, sha256Of } from '../set/manifest.js';
import { renderRunbook } from '../set/runbook.js';
import type { Target } from '../targets/types.js';
import { stderrLogger, writeJson } from './output.js';
import type { Command } from './types.js';

const RUNBOOK_NAME = 'RUNBOOK.md';

export const runbookCommand: Command = {
  name: 'runbook',
  summary: "print a set's RUNBOOK.md: its disaster-recovery steps with plain tools",
  usage: 'backproof [--config FILE] runbook [--set ID|latest] [--target T] [--json]',
  options: { set: { type: 'string' }, target: { type: 'string' } },
  async run(args, io) {
    const { config } = await loadConfig(resolveConfigPath(args.config, io.env, io.cwd));
    const targets = selectTargets(config, args.values.target as string | undefined);
    try {
      // Throws UsageError for a malformed --set, SetNotFoundError (exit 1) naming what exists instead.
      const located = await locateSet(
        config,
        targets,
        (args.values.set as string | undefined) ?? 'latest',
        io.signal,
        stderrLogger(io, args.json),
      );
      const holder = located.holders[0] as { target: Target };
      const found = await readRunbook(config.job, holder.target, located.manifest, io.signal);
      if (found.reason !== null) {
        io.stderr.write(
          redact(
            `backproof: ${RUNBOOK_NAME} of set ${located.setId} on target ${holder.target.name} is ${found.reason}; ` +
              `printing one rendered from its manifest instead (\`backproof verify --set ${located.setId}\` checks the rest of the set)\n`,
          ),
        );
      }
      if (args.json) {
        writeJson(io, {
          job: config.job,
          setId: located.setId,
          target: holder.target.name,
          source: found.reason === null ? 'stored' : 'rendered',
          reason: found.reason,
          runbook: found.runbook,
        });
      } else {
        io.stdout.write(found.runbook);
      }
      return found.reason === null ? ExitCode.success : ExitCode.warning;
    } finally {
      await Promise.all(targets.map((t) => t.close().catch(() => {})));
    }
  },
};

/** The stored RUNBOOK.md when it matches the manifest's size and SHA-256; otherwise one rendered from the manifest. */
async function readRunbook(
  job: string,
  target: Target,
  manifest: Manifest,
  signal: AbortSignal,
): Promise<{ runbook: string; reason: string | null }> {
  const entry = manifest.objects.find((o) => o.name === RUNBOOK_NAME);
  let reason: string;
  if (!entry) reason = 'not in this set (it was made before backproof stored runbooks)';
  else {
    try {
      // Reading stops one byte past the manifest's size: a longer object is not the right one.
      const bytes = await readSmallObject(target, objectKey(job, manifest.setId, RUNBOOK_NAME), signal, entry.bytes);
      const sha256 = sha256Of(bytes);
      if (bytes.length === entry.bytes && sha256 === entry.sha256) {
        return { runbook: bytes.toString('utf8'), reason: null };
      }
      reason = `damaged (${bytes.length} bytes with SHA-256 ${sha256}; the manifest says ${entry.bytes} bytes with ${entry.sha256})`;
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      reason = target.isNotFound(error) ? 'missing' : `damaged or unreadable (${messageOf(error)})`;
    }
  }
  return { runbook: renderRunbook(manifest, { targetDescription: target.describe() }), reason };
}
