// The state database's typed surface: rows as the rest of backproof sees them (camelCase, JSON
// parsed, sizes as integers). The database is history and cache; targets are the truth.
import type { AnomalyStore } from './anomaly-store.js';
import type { NotificationStore } from './notification-store.js';

export type RunStatus = 'success' | 'warning' | 'failure';
export type StepStatus = 'ok' | 'warning' | 'failed' | 'skipped';

export interface RunRow {
  id: number;
  job: string;
  command: string;
  startedAt: string;
  /** null while the run is unfinished. */
  finishedAt: string | null;
  /** null while unfinished; 'abandoned' when a later run found it unfinished (it had died). */
  status: RunStatus | 'abandoned' | null;
  exitCode: number | null;
  pid: number;
  host: string;
  /** Bytes stored by the run, set when it finishes. */
  bytes: number | null;
}

export interface StepRow {
  id: number;
  runId: number;
  name: string;
  target: string | null;
  component: string | null;
  status: StepStatus;
  startedAt: string;
  finishedAt: string;
  message: string | null;
  /** Parsed JSON; null when none was recorded. */
  evidence: unknown;
}

export interface ComponentRow {
  id: number;
  runId: number;
  target: string;
  setId: string;
  name: string;
  kind: string;
  object: string;
  bytes: number;
  sha256: string;
  rawBytes: number;
  rawSha256: string;
  files: number | null;
  /** Rows per table ("<schema>.<table>"), for database components. */
  tables: Record<string, number> | null;
}

export interface ObjectVerificationRow {
  id: number;
  runId: number;
  target: string;
  setId: string;
  object: string;
  bytes: number;
  sha256: string;
  /** How strongly the target proved the object: a VerificationLevel (src/targets/types.ts). */
  level: string;
  verifiedAt: string;
}

export interface ChainHeadRecord {
  setId: string;
  manifestSha256: string;
  committedAt: string;
}

export interface RunStart {
  job: string;
  command: string;
  startedAt: string;
  pid: number;
  host: string;
}

export interface RunFinish {
  status: RunStatus;
  exitCode: number;
  finishedAt: string;
  bytes: number;
  /** The run's report, stored as JSON. */
  report: unknown;
}

export interface StepRecord {
  name: string;
  target?: string;
  component?: string;
  status: StepStatus;
  startedAt: string;
  finishedAt: string;
  message?: string;
  evidence?: unknown;
}

export interface ComponentRecord {
  target: string;
  setId: string;
  name: string;
  kind: string;
  object: string;
  bytes: number;
  sha256: string;
  rawBytes: number;
  rawSha256: string;
  files?: number;
  tables?: Record<string, number>;
}

export interface ObjectVerificationRecord {
  target: string;
  setId: string;
  object: string;
  bytes: number;
  sha256: string;
  level: string;
  verifiedAt: string;
}

export type RunDetail = RunRow & { steps: StepRow[]; components: ComponentRow[]; report: unknown };

/**
 * Every method is one transaction. Timestamps are UTC ISO-8601 strings from the caller's clock
 * (stored in `Date#toISOString` form); sizes and counts are integers up to 2^53-1.
 */
export interface StateDb extends AnomalyStore, NotificationStore {
  readonly path: string;
  /** A random id made once per state dir (stored in it): this host's identity on targets. */
  hostId(): string;
  startRun(input: RunStart): number;
  /** A run that never calls finishRun stays unfinished: status null, finished_at null. */
  finishRun(runId: number, input: RunFinish): void;
  /**
   * Marks the job's unfinished runs (other than `exceptRunId`) as abandoned; the caller holds the
   * job lock, so they are certainly dead. Returns them, as they are now.
   */
  abandonUnfinishedRuns(job: string, exceptRunId: number, at: string): RunRow[];
  recordStep(runId: number, step: StepRecord): void;
  recordComponent(runId: number, component: ComponentRecord): void;
  recordObjectVerification(runId: number, verification: ObjectVerificationRecord): void;
  setChainHead(job: string, target: string, head: ChainHeadRecord): void;
  getChainHead(job: string, target: string): ChainHeadRecord | undefined;
  /** Newest first (by startedAt, then by id). */
  listRuns(job: string, limit: number): RunRow[];
  /** The run with its steps and components (in recording order) and its parsed report (null if none). */
  getRun(runId: number): RunDetail | undefined;
  /**
   * Stored bytes of the newest run of `job` that committed a set (success or warning, with at
   * least one recorded component), for the free-space estimate.
   */
  lastCommittedRunBytes(job: string): number | undefined;
  /** Newest verification per object for a set on a target (status shows the level); by object name. */
  objectVerifications(job: string, target: string, setId: string): ObjectVerificationRow[];
  /** Idempotent. */
  close(): void;
}
