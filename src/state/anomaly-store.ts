// Anomaly findings, acks and the size history in the state database: what each backup run's anomaly
// check found, which findings a human accepted (`backproof ack`), and per component per committed
// set the sizes and counts a dashboard charts. Tables: the anomaly migration in src/state/db.ts.
import type { SqliteDatabase } from '../lib/sqlite.js';
import type { Finding, FindingLevel, FindingMetric } from '../policy/anomaly.js';
import { count, fromJson, integer, oneOf, text, utcTimestamp } from './checks.js';

/** One anomaly check of one backup run: what was compared with what, and what it found. */
export interface AnomalyCheckRecord {
  job: string;
  /** The set the run was about to commit. */
  setId: string;
  /** That set's startedAt (the run's start), UTC ISO. */
  setStartedAt: string;
  checkedAt: string;
  /** Where the history came from: `target <name>`, `state database`, `none` or `disabled`. */
  historySource: string;
  /** How many committed, non-suspect sets made the history. */
  historySets: number;
  findings: readonly Finding[];
}

/** A finding as stored: the engine's finding plus where and when it was raised. */
export interface StoredFinding extends Finding {
  job: string;
  runId: number;
  /** The set the finding was raised on. */
  setId: string;
  setStartedAt: string;
  raisedAt: string;
}

export interface AckRecord {
  findingId: string;
  /** The set the acknowledged finding was raised on. */
  findingSetId: string;
  /** From this set on, the finding's value is the normal one (usually findingSetId). */
  setId: string;
  /** startedAt of `setId` (orders it among sets of the same second). */
  setStartedAt: string;
  ackedAt: string;
  /** Who acknowledged it (the OS user), for the record. */
  by: string | null;
}

/** One component of one committed set, with its run: a point of the history charts. */
export interface ComponentHistoryRow {
  setId: string;
  runId: number;
  /** The run's (and set's) start. */
  startedAt: string;
  finishedAt: string | null;
  /** The whole run's duration; null when the run never recorded its end. */
  durationMs: number | null;
  runStatus: string | null;
  /** An anomaly check of that run reached failure level: the set is not history for the next checks. */
  suspect: boolean;
  component: string;
  kind: string;
  bytes: number;
  rawBytes: number;
  files: number | null;
  tables: Record<string, number> | null;
}

export interface AnomalyStore {
  /** Records a run's anomaly check and every finding, in one transaction. */
  recordAnomalyCheck(runId: number, check: AnomalyCheckRecord): void;
  /**
   * The findings of the job's newest checked run that no ack covers: what `status` shows and `ack`
   * accepts. A later run without findings closes them all.
   */
  openFindings(job: string): StoredFinding[];
  /** Every finding of one run, in the order found. */
  findingsOfRun(runId: number): StoredFinding[];
  /** Records an ack; false when the same ack was already recorded (nothing changes). */
  recordAck(job: string, ack: AckRecord): boolean;
  /** The job's acks, oldest first. */
  acks(job: string): AckRecord[];
  /** startedAt of a set this host made (any target), from its run; undefined when unknown here. */
  setStartedAt(job: string, setId: string): string | undefined;
  /**
   * Per component per committed set (one target's record of it; copies are identical), for the
   * newest `limitSets` sets of the job, oldest first: the chartable history.
   */
  componentHistory(job: string, limitSets: number): ComponentHistoryRow[];
}

const levels: readonly FindingLevel[] = ['warning', 'failure'];
const metrics: readonly FindingMetric[] = [
  'bytes',
  'rawBytes',
  'ratio',
  'files',
  'rows',
  'table-vanished',
  'component-vanished',
];

const findingColumns = `f.job, f.run_id AS runId, f.set_id AS setId, c.set_started_at AS setStartedAt,
  c.checked_at AS raisedAt, f.finding_id AS id, f.component, f.metric, f.table_name AS tableName, f.level,
  f.baseline, f.value, f.baseline_sets AS baselineSets, f.change_bp AS changeBp, f.message`;

/** The statements and methods; `write` names the database and operation when a write fails. */
export function anomalyStore(
  db: SqliteDatabase,
  write: <T>(operation: string, runId: number | undefined, fn: () => T) => T,
): AnomalyStore {
  const sql = {
    insertCheck: db.prepare(
      `INSERT INTO anomaly_checks (run_id, job, set_id, set_started_at, checked_at, history_source, history_sets)
       VALUES (@runId, @job, @setId, @setStartedAt, @checkedAt, @historySource, @historySets)`,
    ),
    insertFinding: db.prepare(
      `INSERT INTO anomaly_findings (run_id, job, set_id, finding_id, level, metric, component, table_name,
         baseline, value, baseline_sets, change_bp, message)
       VALUES (@runId, @job, @setId, @findingId, @level, @metric, @component, @tableName,
         @baseline, @value, @baselineSets, @changeBp, @message)`,
    ),
    // The newest check by the run's start (then id): the run whose findings are current.
    openFindings: db.prepare(
      `SELECT ${findingColumns}
       FROM anomaly_findings f JOIN anomaly_checks c ON c.run_id = f.run_id
       WHERE f.run_id = (
           SELECT k.run_id FROM anomaly_checks k JOIN runs r ON r.id = k.run_id
           WHERE k.job = @job ORDER BY r.started_at DESC, r.id DESC LIMIT 1)
         AND NOT EXISTS (
           SELECT 1 FROM anomaly_acks a
           WHERE a.job = f.job AND a.finding_id = f.finding_id AND a.finding_set_id = f.set_id)
       ORDER BY f.id`,
    ),
    findingsOfRun: db.prepare(
      `SELECT ${findingColumns}
       FROM anomaly_findings f JOIN anomaly_checks c ON c.run_id = f.run_id
       WHERE f.run_id = @runId ORDER BY f.id`,
    ),
    insertAck: db.prepare(
      `INSERT INTO anomaly_acks (job, finding_id, finding_set_id, set_id, set_started_at, acked_at, acked_by)
       VALUES (@job, @findingId, @findingSetId, @setId, @setStartedAt, @ackedAt, @by)
       ON CONFLICT (job, finding_id, finding_set_id, set_id) DO NOTHING`,
    ),
    acks: db.prepare(
      `SELECT finding_id AS findingId, finding_set_id AS findingSetId, set_id AS setId,
         set_started_at AS setStartedAt, acked_at AS ackedAt, acked_by AS "by"
       FROM anomaly_acks WHERE job = @job ORDER BY acked_at, id`,
    ),
    setStartedAt: db.prepare(
      `SELECT started_at FROM (
         SELECT r.started_at FROM components c JOIN runs r ON r.id = c.run_id WHERE r.job = @job AND c.set_id = @setId
         UNION ALL
         SELECT set_started_at FROM anomaly_checks WHERE job = @job AND set_id = @setId)
       LIMIT 1`,
    ),
    // One record per set and component: the first recorded (every target holds the same copy).
    componentHistory: db.prepare(
      `WITH firsts AS (
         SELECT min(c.id) AS id FROM components c JOIN runs r ON r.id = c.run_id
         WHERE r.job = @job GROUP BY c.set_id, c.name),
       newest AS (
         SELECT c.set_id FROM components c JOIN runs r ON r.id = c.run_id
         WHERE r.job = @job GROUP BY c.set_id ORDER BY max(r.started_at) DESC, c.set_id DESC LIMIT @limit)
       SELECT c.set_id AS setId, r.id AS runId, r.started_at AS startedAt, r.finished_at AS finishedAt,
         r.status AS runStatus, c.name AS component, c.kind, c.bytes, c.raw_bytes AS rawBytes, c.files, c.tables,
         EXISTS (SELECT 1 FROM anomaly_findings f
                 WHERE f.run_id = r.id AND f.set_id = c.set_id AND f.level = 'failure') AS suspect
       FROM components c JOIN runs r ON r.id = c.run_id
       WHERE c.id IN (SELECT id FROM firsts) AND c.set_id IN (SELECT set_id FROM newest)
       ORDER BY r.started_at, c.set_id, c.id`,
    ),
  };

  const insertCheck = db.transaction((runId: number, check: AnomalyCheckRecord) => {
    const common = { runId, job: check.job, setId: check.setId };
    sql.insertCheck.run({
      ...common,
      setStartedAt: check.setStartedAt,
      checkedAt: check.checkedAt,
      historySource: check.historySource,
      historySets: check.historySets,
    });
    for (const finding of check.findings) sql.insertFinding.run({ ...common, ...findingValues(finding) });
  });

  return {
    recordAnomalyCheck(runId, check) {
      const values: AnomalyCheckRecord = {
        job: text(check.job, 'job'),
        setId: text(check.setId, 'setId'),
        setStartedAt: utcTimestamp(check.setStartedAt, 'setStartedAt'),
        checkedAt: utcTimestamp(check.checkedAt, 'checkedAt'),
        historySource: text(check.historySource, 'historySource'),
        historySets: count(check.historySets, 'historySets'),
        findings: check.findings,
      };
      for (const finding of check.findings) findingValues(finding); // checked before any write
      write('recordAnomalyCheck', runId, () => insertCheck(integer(runId, 'runId'), values));
    },

    openFindings(job) {
      return (sql.openFindings.all({ job }) as FindingRowText[]).map(parseFinding);
    },

    findingsOfRun(runId) {
      return (sql.findingsOfRun.all({ runId }) as FindingRowText[]).map(parseFinding);
    },

    recordAck(job, ack) {
      const values = {
        job: text(job, 'job'),
        findingId: text(ack.findingId, 'findingId'),
        findingSetId: text(ack.findingSetId, 'findingSetId'),
        setId: text(ack.setId, 'setId'),
        setStartedAt: utcTimestamp(ack.setStartedAt, 'setStartedAt'),
        ackedAt: utcTimestamp(ack.ackedAt, 'ackedAt'),
        by: ack.by,
      };
      return write('recordAck', undefined, () => sql.insertAck.run(values).changes === 1);
    },

    acks(job) {
      return sql.acks.all({ job }) as AckRecord[];
    },

    setStartedAt(job, setId) {
      const row = sql.setStartedAt.get({ job, setId }) as { started_at: string } | undefined;
      return row?.started_at;
    },

    componentHistory(job, limitSets) {
      if (!Number.isSafeInteger(limitSets) || limitSets < 1) {
        throw new RangeError(`state database: componentHistory limit must be a positive integer, got ${limitSets}`);
      }
      return (sql.componentHistory.all({ job, limit: limitSets }) as HistoryRowText[]).map(parseHistoryRow);
    },
  };
}

/** A finding's column values, checked: counts are safe integers, the change may be negative. */
function findingValues(finding: Finding) {
  return {
    findingId: text(finding.id, 'finding id'),
    level: oneOf(finding.level, levels, 'finding level'),
    metric: oneOf(finding.metric, metrics, 'finding metric'),
    component: text(finding.component, 'finding component'),
    tableName: finding.table ?? null,
    baseline: count(finding.baseline, 'finding baseline'),
    value: count(finding.value, 'finding value'),
    baselineSets: count(finding.baselineSets, 'finding baselineSets'),
    changeBp: finding.changeBp === null ? null : integer(finding.changeBp, 'finding changeBp'),
    message: text(finding.message, 'finding message'),
  };
}

type FindingRowText = Omit<StoredFinding, 'table'> & { tableName: string | null };

function parseFinding(row: FindingRowText): StoredFinding {
  const { tableName, ...rest } = row;
  // The engine's shape: `table` only when there is one.
  return tableName === null ? rest : { ...rest, table: tableName };
}

type HistoryRowText = Omit<ComponentHistoryRow, 'tables' | 'suspect' | 'durationMs'> & {
  tables: string | null;
  suspect: number;
};

function parseHistoryRow(row: HistoryRowText): ComponentHistoryRow {
  const { tables, suspect, ...rest } = row;
  const durationMs = row.finishedAt === null ? null : Date.parse(row.finishedAt) - Date.parse(row.startedAt);
  return {
    ...rest,
    durationMs,
    suspect: suspect === 1,
    tables: fromJson(tables) as Record<string, number> | null,
  };
}
