// `backproof ack FINDING... [--set ID]`: a human checked an anomaly finding and accepts it: from the
// set it was raised on (or --set), its value is the new baseline, and status no longer shows it.
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import type { JobConfig } from '../config/schema.js';
import { selectTargets } from '../core/catalog.js';
import { locateSet, SetNotFoundError } from '../core/locate-set.js';
import { ConfigError, UsageError } from '../lib/errors.js';
import { ExitCode } from '../lib/exit-codes.js';
import { isSetId } from '../set/layout.js';
import { openStateDb, type StateDb, type StoredFinding } from '../state/store.js';
import { stderrLogger, writeJson, writeLines } from './output.js';
import type { Command, CommandIO } from './types.js';

export const ackCommand: Command = {
  name: 'ack',
  summary: 'accept an anomaly finding as the new baseline, once a human has checked it',
  usage: 'backproof [--config FILE] ack FINDING... [--set ID] [--json]',
  options: { set: { type: 'string' } },
  async run(args, io) {
    const { config } = await loadConfig(resolveConfigPath(args.config, io.env, io.cwd));
    const ids = args.positionals;
    if (ids.length === 0) {
      throw new UsageError(
        'name the finding to accept, as `backproof status` prints it, e.g. `backproof ack main.app:rows:app.users`',
      );
    }
    const wantedSet = args.values.set as string | undefined;
    if (wantedSet !== undefined && !isSetId(wantedSet)) {
      throw new UsageError(`--set ${JSON.stringify(wantedSet)} is not a set id (like 20251104T030000Z-k3x9qa)`);
    }
    if (!existsSync(join(config.stateDir, 'state.db'))) throw notOpen(config.job, ids, []);
    const state = openStateDb(config.stateDir);
    try {
      const open = state.openFindings(config.job);
      const chosen = ids.map((id) => open.find((f) => f.id === id));
      const missing = ids.filter((_, i) => chosen[i] === undefined);
      // An id that is not open but was accepted before: saying so is the idempotent answer.
      const accepted = new Set(state.acks(config.job).map((a) => a.findingId));
      const unknown = missing.filter((id) => !accepted.has(id));
      if (unknown.length > 0) throw notOpen(config.job, unknown, open);
      const baseline =
        wantedSet === undefined
          ? undefined
          : { setId: wantedSet, startedAt: await startOf(config, state, wantedSet, io) };
      const ackedAt = new Date().toISOString();
      const by = currentUser();
      const acknowledged: { finding: StoredFinding; baselineSetId: string }[] = [];
      for (const finding of chosen) {
        if (finding === undefined) continue;
        const setId = baseline?.setId ?? finding.setId;
        state.recordAck(config.job, {
          findingId: finding.id,
          findingSetId: finding.setId,
          setId,
          setStartedAt: baseline?.startedAt ?? finding.setStartedAt,
          ackedAt,
          by,
        });
        acknowledged.push({ finding, baselineSetId: setId });
      }
      const stillOpen = state.openFindings(config.job);
      if (args.json) {
        writeJson(io, {
          job: config.job,
          acknowledged: acknowledged.map(({ finding, baselineSetId }) => ({
            id: finding.id,
            level: finding.level,
            message: finding.message,
            raisedOn: finding.setId,
            baselineFrom: baselineSetId,
          })),
          alreadyAcknowledged: missing,
          open: stillOpen,
        });
        return ExitCode.success;
      }
      const lines = acknowledged.map(
        ({ finding, baselineSetId }) =>
          `accepted ${finding.id} (${finding.level}, raised on set ${finding.setId}): from set ${baselineSetId} on, its value is the baseline`,
      );
      for (const id of missing) lines.push(`${id} was already accepted; nothing changed`);
      lines.push(
        stillOpen.length === 0
          ? 'no anomaly finding is open now'
          : `still open: ${stillOpen.map((f) => f.id).join(', ')}`,
      );
      writeLines(io.stdout, lines);
      return ExitCode.success;
    } finally {
      state.close();
    }
  },
};

/** Exit 2, listing what could be accepted instead. */
function notOpen(job: string, ids: readonly string[], open: readonly StoredFinding[]): ConfigError {
  const what = `${ids.join(', ')}: no such open anomaly finding`;
  if (open.length === 0) return new ConfigError(`${what}; no finding is open for job ${job}`);
  return new ConfigError(
    `${what}; the open findings of job ${job} are:`,
    open.map((f) => `${f.id} (${f.level}, set ${f.setId}): ${f.message}`),
  );
}

/** The start of a set named with --set: this host's history knows it, else the targets must hold it. */
async function startOf(config: JobConfig, state: StateDb, setId: string, io: CommandIO): Promise<string> {
  const known = state.setStartedAt(config.job, setId);
  if (known !== undefined) return known;
  const targets = selectTargets(config, undefined);
  try {
    const located = await locateSet(config, targets, setId, io.signal, stderrLogger(io, true));
    return new Date(Date.parse(located.manifest.startedAt)).toISOString();
  } catch (error) {
    if (error instanceof SetNotFoundError) throw new UsageError(`--set ${setId}: ${error.message}`);
    throw error;
  } finally {
    await Promise.all(targets.map((t) => t.close().catch(() => {})));
  }
}

function currentUser(): string | null {
  try {
    return userInfo().username;
  } catch {
    return null;
  }
}
