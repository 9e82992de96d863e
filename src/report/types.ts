// What the core tells the outside world. The core never prints: it emits events to a Reporter, and
// the CLI picks a text, JSON or silent one.
import type { Failure, RunStatus } from '../core/evidence.js';
import type { HookResult } from '../core/hooks.js';
import type { PruneTargetReport } from '../core/prune.js';
import type { Finding } from '../policy/anomaly.js';

export type StepStatus = 'ok' | 'warning' | 'failed' | 'skipped';

export type RunEvent =
  | {
      type: 'run-start';
      job: string;
      runId: number;
      setId: string;
      startedAt: string;
      targets: string[];
      dryRun: boolean;
    }
  | { type: 'step'; name: string; status: StepStatus; message: string; target?: string; component?: string }
  | { type: 'component-start'; component: string; source: string }
  | { type: 'progress'; component: string; rawBytes: number; storedBytes: number; elapsedMs: number }
  | { type: 'component-done'; component: ComponentReport }
  | { type: 'set-committed'; target: string; setId: string; manifestSha256: string };

export interface Reporter {
  event(event: RunEvent): void;
}

export const silentReporter: Reporter = { event() {} };

export interface ComponentReport {
  name: string;
  source: string;
  kind: string;
  object: string;
  index?: string;
  bytes: number;
  sha256: string;
  rawBytes: number;
  rawSha256: string;
  files?: number;
  tables?: Record<string, number>;
  dumpTool?: string;
  serverVersion?: string;
  /** Holds secrets (TLS keys, .env files): encryption will be required for it. */
  secret?: boolean;
  warnings: string[];
  durationMs: number;
}

export interface TargetReport {
  name: string;
  type: string;
  optional: boolean;
  /** committed: the set is proven on this target; failed: it is not; skipped: optional and unreachable. */
  result: 'committed' | 'failed' | 'skipped';
  setId?: string;
  manifestSha256?: string;
  objects: { name: string; bytes: number; sha256: string; level: string }[];
  error?: string;
}

export interface StepReport {
  name: string;
  status: StepStatus;
  message: string;
  target?: string;
  component?: string;
  startedAt: string;
  finishedAt: string;
  evidence?: Record<string, unknown>;
}

export interface BackupReport {
  job: string;
  runId: number | null;
  setId: string;
  status: RunStatus;
  exitCode: number;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** Stored bytes of the set's objects, data and indexes (one target's copy; the manifest aside). */
  bytes: number;
  rawBytes: number;
  components: ComponentReport[];
  targets: TargetReport[];
  steps: StepReport[];
  warnings: string[];
  failures: Failure[];
  /** What the before, onError and after hooks did, in the order they ran. */
  hooks: HookResult[];
  /** What the anomaly check found before the set was committed (empty when it did not run). */
  anomalies: Finding[];
  /** A finding reached failure level: the set was committed with `suspect: true`. */
  suspect: boolean;
  /** Retention per target after the set was committed (core/prune.ts); skipped targets say why. */
  retention: PruneTargetReport[];
}

/** `backup --dry-run`: preflight and the plan; nothing written, so no status of a backup. */
export interface PlanReport {
  job: string;
  ok: boolean;
  exitCode: number;
  sources: { name: string; type: string; estimatedRawBytes: number | null }[];
  targets: { name: string; type: string; where: string; optional: boolean; ok: boolean; message: string }[];
  estimateBytes: number;
  steps: StepReport[];
  failures: Failure[];
}
