// The state database's typed API: run history, steps, components, object verifications and each
// target's chain head. History and cache only: targets are the truth.
import { messageOf } from '../lib/errors.js';
import { type SqliteDatabase, SqliteError } from '../lib/sqlite.js';
import { anomalyStore } from './anomaly-store.js';
import { count, fromJson, integer, oneOf, tableCounts, text, toJson, utcTimestamp } from './checks.js';
import { openDatabase } from './db.js';
import { loadHostId } from './host-id.js';
import { notificationStore } from './notification-store.js';
import type {
  ChainHeadRecord,
  ComponentRow,
  ObjectVerificationRow,
  RunDetail,
  RunRow,
  RunStatus,
  StateDb,
  StepRow,
  StepStatus,
} from './types.js';

export type { AckRecord, AnomalyCheckRecord, ComponentHistoryRow, StoredFinding } from './anomaly-store.js';
export type { NotificationRecord, NotificationRow } from './notification-store.js';
export type {
  ChainHeadRecord,
  ComponentRecord,
  ComponentRow,
  ObjectVerificationRecord,
  ObjectVerificationRow,
  RunDetail,
  RunFinish,
  RunRow,
  RunStart,
  RunStatus,
  StateDb,
  StepRecord,
  StepRow,
  StepStatus,
} from './types.js';

const runStatuses: readonly RunStatus[] = ['success', 'warning', 'failure'];
const stepStatuses: readonly StepStatus[] = ['ok', 'warning', 'failed', 'skipped'];

const runColumns = `id, job, command, started_at AS startedAt, finished_at AS finishedAt, status,
  exit_code AS exitCode, pid, host, bytes`;
const stepColumns = `id, run_id AS runId, name, target, component, status, started_at AS startedAt,
  finished_at AS finishedAt, message, evidence`;
const componentColumns = `id, run_id AS runId, target, set_id AS setId, name, kind, object, bytes, sha256,
  raw_bytes AS rawBytes, raw_sha256 AS rawSha256, files, tables`;
const verificationColumns = `id, runId, target, setId, object, bytes, sha256, level, verifiedAt`;

/**
 * Opens `<stateDir>/state.db` (created with its directory, mode 0700, when missing). `readonly`: an
 * existing database, only read (writes throw); nothing is created or migrated.
 */
export function openStateDb(stateDir: string, options: { readonly?: boolean } = {}): StateDb {
  const { db, path } = openDatabase(stateDir, options);
  const sql = prepareStatements(db);
  let hostId: string | undefined;

  /** Runs one write and names the database and the operation if it fails. */
  const write = <T>(operation: string, runId: number | undefined, fn: () => T): T => {
    try {
      return fn();
    } catch (error) {
      if (error instanceof SqliteError && error.code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
        throw new Error(`state database ${path}: ${operation}: run ${runId} does not exist (start it with startRun)`, {
          cause: error,
        });
      }
      throw new Error(`state database ${path}: ${operation} failed: ${messageOf(error)}`, { cause: error });
    }
  };

  const readRun = db.transaction((runId: number): RunDetail | undefined => {
    const run = sql.getRun.get(runId) as (RunRow & { report: string | null }) | undefined;
    if (!run) return undefined;
    const { report, ...row } = run;
    return {
      ...row,
      report: fromJson(report),
      steps: (sql.stepsOfRun.all(runId) as StepRowText[]).map(parseStep),
      components: (sql.componentsOfRun.all(runId) as ComponentRowText[]).map(parseComponent),
    };
  });

  return {
    path,
    ...anomalyStore(db, write),
    ...notificationStore(db, write),

    hostId() {
      hostId ??= loadHostId(stateDir);
      return hostId;
    },

    startRun(input) {
      const values = {
        job: text(input.job, 'job'),
        command: text(input.command, 'command'),
        startedAt: utcTimestamp(input.startedAt, 'startedAt'),
        pid: count(input.pid, 'pid'),
        host: text(input.host, 'host'),
      };
      return write('startRun', undefined, () => (sql.insertRun.get(values) as { id: number }).id);
    },

    finishRun(runId, input) {
      const values = {
        runId: integer(runId, 'runId'),
        status: oneOf(input.status, runStatuses, 'status'),
        exitCode: integer(input.exitCode, 'exitCode'),
        finishedAt: utcTimestamp(input.finishedAt, 'finishedAt'),
        bytes: count(input.bytes, 'bytes'),
        report: toJson(input.report, 'report'),
      };
      const changes = write('finishRun', runId, () => sql.finishRun.run(values).changes);
      if (changes === 1) return;
      const run = sql.getRun.get(runId) as RunRow | undefined;
      throw new Error(
        run
          ? `state database ${path}: finishRun: run ${runId} already ended (${run.status} at ${run.finishedAt}); a run is finished once`
          : `state database ${path}: finishRun: run ${runId} does not exist (start it with startRun)`,
      );
    },

    abandonUnfinishedRuns(job, exceptRunId, at) {
      const values = {
        job: text(job, 'job'),
        exceptRunId: integer(exceptRunId, 'exceptRunId'),
        at: utcTimestamp(at, 'at'),
      };
      const rows = write('abandonUnfinishedRuns', undefined, () => sql.abandonRuns.all(values) as RunRow[]);
      return rows.sort((a, b) => a.id - b.id);
    },

    recordStep(runId, step) {
      const values = {
        runId: integer(runId, 'runId'),
        name: text(step.name, 'step name'),
        target: step.target ?? null,
        component: step.component ?? null,
        status: oneOf(step.status, stepStatuses, 'step status'),
        startedAt: utcTimestamp(step.startedAt, 'step startedAt'),
        finishedAt: utcTimestamp(step.finishedAt, 'step finishedAt'),
        message: step.message ?? null,
        evidence: toJson(step.evidence, 'step evidence'),
      };
      write('recordStep', runId, () => sql.insertStep.run(values));
    },

    recordComponent(runId, c) {
      const values = {
        runId: integer(runId, 'runId'),
        target: text(c.target, 'target'),
        setId: text(c.setId, 'setId'),
        name: text(c.name, 'component name'),
        kind: text(c.kind, 'component kind'),
        object: text(c.object, 'object'),
        bytes: count(c.bytes, 'bytes'),
        sha256: text(c.sha256, 'sha256'),
        rawBytes: count(c.rawBytes, 'rawBytes'),
        rawSha256: text(c.rawSha256, 'rawSha256'),
        files: c.files === undefined ? null : count(c.files, 'files'),
        tables: c.tables === undefined ? null : toJson(tableCounts(c.tables, 'tables'), 'tables'),
      };
      write('recordComponent', runId, () => sql.insertComponent.run(values));
    },

    recordObjectVerification(runId, o) {
      const values = {
        runId: integer(runId, 'runId'),
        target: text(o.target, 'target'),
        setId: text(o.setId, 'setId'),
        object: text(o.object, 'object'),
        bytes: count(o.bytes, 'bytes'),
        sha256: text(o.sha256, 'sha256'),
        level: text(o.level, 'level'),
        verifiedAt: utcTimestamp(o.verifiedAt, 'verifiedAt'),
      };
      write('recordObjectVerification', runId, () => sql.insertVerification.run(values));
    },

    setChainHead(job, target, head) {
      const values = {
        job: text(job, 'job'),
        target: text(target, 'target'),
        setId: text(head.setId, 'setId'),
        manifestSha256: text(head.manifestSha256, 'manifestSha256'),
        committedAt: utcTimestamp(head.committedAt, 'committedAt'),
      };
      write('setChainHead', undefined, () => sql.upsertChainHead.run(values));
    },

    getChainHead(job, target) {
      return sql.getChainHead.get({ job, target }) as ChainHeadRecord | undefined;
    },

    listRuns(job, limit) {
      if (!Number.isSafeInteger(limit) || limit < 1) {
        throw new RangeError(`state database: listRuns limit must be a positive integer, got ${String(limit)}`);
      }
      return sql.listRuns.all({ job, limit }) as RunRow[];
    },

    getRun(runId) {
      return readRun(runId);
    },

    lastCommittedRunBytes(job) {
      const row = sql.lastCommittedRunBytes.get({ job }) as { bytes: number } | undefined;
      return row?.bytes;
    },

    objectVerifications(job, target, setId) {
      return sql.objectVerifications.all({ job, target, setId }) as ObjectVerificationRow[];
    },

    close() {
      if (db.open) db.close();
    },
  };
}

function prepareStatements(db: SqliteDatabase) {
  return {
    insertRun: db.prepare(
      `INSERT INTO runs (job, command, started_at, pid, host)
       VALUES (@job, @command, @startedAt, @pid, @host) RETURNING id`,
    ),
    finishRun: db.prepare(
      `UPDATE runs SET status = @status, exit_code = @exitCode, finished_at = @finishedAt, bytes = @bytes, report = @report
       WHERE id = @runId AND finished_at IS NULL`,
    ),
    abandonRuns: db.prepare(
      `UPDATE runs SET status = 'abandoned', finished_at = @at
       WHERE job = @job AND finished_at IS NULL AND id <> @exceptRunId
       RETURNING ${runColumns}`,
    ),
    getRun: db.prepare(`SELECT ${runColumns}, report FROM runs WHERE id = ?`),
    listRuns: db.prepare(
      `SELECT ${runColumns} FROM runs WHERE job = @job ORDER BY started_at DESC, id DESC LIMIT @limit`,
    ),
    insertStep: db.prepare(
      `INSERT INTO steps (run_id, name, target, component, status, started_at, finished_at, message, evidence)
       VALUES (@runId, @name, @target, @component, @status, @startedAt, @finishedAt, @message, @evidence)`,
    ),
    stepsOfRun: db.prepare(`SELECT ${stepColumns} FROM steps WHERE run_id = ? ORDER BY id`),
    insertComponent: db.prepare(
      `INSERT INTO components (run_id, target, set_id, name, kind, object, bytes, sha256, raw_bytes, raw_sha256, files, tables)
       VALUES (@runId, @target, @setId, @name, @kind, @object, @bytes, @sha256, @rawBytes, @rawSha256, @files, @tables)`,
    ),
    componentsOfRun: db.prepare(`SELECT ${componentColumns} FROM components WHERE run_id = ? ORDER BY id`),
    insertVerification: db.prepare(
      `INSERT INTO object_verifications (run_id, target, set_id, object, bytes, sha256, level, verified_at)
       VALUES (@runId, @target, @setId, @object, @bytes, @sha256, @level, @verifiedAt)`,
    ),
    // The newest per object: by the caller's verifiedAt, then by recording order.
    objectVerifications: db.prepare(
      `SELECT ${verificationColumns} FROM (
         SELECT v.id, v.run_id AS runId, v.target, v.set_id AS setId, v.object, v.bytes, v.sha256, v.level,
                v.verified_at AS verifiedAt,
                row_number() OVER (PARTITION BY v.object ORDER BY v.verified_at DESC, v.id DESC) AS newness
         FROM object_verifications v JOIN runs r ON r.id = v.run_id
         WHERE r.job = @job AND v.target = @target AND v.set_id = @setId
       ) WHERE newness = 1 ORDER BY object`,
    ),
    upsertChainHead: db.prepare(
      `INSERT INTO chain_heads (job, target, set_id, manifest_sha256, committed_at)
       VALUES (@job, @target, @setId, @manifestSha256, @committedAt)
       ON CONFLICT (job, target) DO UPDATE SET
         set_id = excluded.set_id, manifest_sha256 = excluded.manifest_sha256, committed_at = excluded.committed_at`,
    ),
    getChainHead: db.prepare(
      `SELECT set_id AS setId, manifest_sha256 AS manifestSha256, committed_at AS committedAt
       FROM chain_heads WHERE job = @job AND target = @target`,
    ),
    // "Committed a set": ended success or warning, and recorded the components of a committed set.
    lastCommittedRunBytes: db.prepare(
      `SELECT bytes FROM runs r
       WHERE job = @job AND status IN ('success', 'warning') AND bytes IS NOT NULL
         AND EXISTS (SELECT 1 FROM components c WHERE c.run_id = r.id)
       ORDER BY started_at DESC, id DESC LIMIT 1`,
    ),
  };
}

type StepRowText = Omit<StepRow, 'evidence'> & { evidence: string | null };
type ComponentRowText = Omit<ComponentRow, 'tables'> & { tables: string | null };

function parseStep(row: StepRowText): StepRow {
  return { ...row, evidence: fromJson(row.evidence) };
}

function parseComponent(row: ComponentRowText): ComponentRow {
  return { ...row, tables: fromJson(row.tables) as Record<string, number> | null };
}
