// What the dashboard reads from a job's state database, as plain data (the pages render it, /api
// sends it as JSON): run summaries, one run with its steps, the last failure, drills, and the
// history the charts draw. Every step's evidence and every report passes through `redactDeep`
// again here: the database was written redacted, and a secret must not reach a page even if not.
import { redactDeep } from '../lib/redact.js';
import type { ComponentHistoryRow, RunDetail, RunRow, StateDb, StepRow, StoredFinding } from '../state/store.js';
import { durationBetween } from './format.js';

/** How many runs the lists and charts look back. */
export const HISTORY_RUNS = 200;
/** How many sets the size charts draw. */
export const CHART_SETS = 60;

export interface RunSummary {
  id: number;
  command: string;
  status: RunRow['status'];
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  exitCode: number | null;
  host: string;
  /** Stored bytes (one copy), when the run recorded them. */
  bytes: number | null;
  /** Bytes read from the sources, from the run's report. */
  rawBytes: number | null;
  setId: string | null;
  failedSteps: number;
}

export function runSummaries(state: StateDb, job: string, limit = HISTORY_RUNS): RunSummary[] {
  return state.listRuns(job, limit).map((row) => {
    const detail = state.getRun(row.id);
    const report = asRecord(detail?.report);
    return {
      id: row.id,
      command: row.command,
      status: row.status,
      startedAt: row.startedAt,
      finishedAt: row.finishedAt,
      durationMs: durationBetween(row.startedAt, row.finishedAt),
      exitCode: row.exitCode,
      host: row.host,
      bytes: row.bytes,
      rawBytes: typeof report?.rawBytes === 'number' ? report.rawBytes : null,
      setId: typeof report?.setId === 'string' ? report.setId : null,
      failedSteps: detail?.steps.filter((s) => s.status === 'failed').length ?? 0,
    };
  });
}

export interface RunView {
  run: RunDetail;
  durationMs: number | null;
  /** What the run's anomaly check found. */
  findings: StoredFinding[];
}

/** One run of the job with its steps, components, report and findings; undefined if not this job's. */
export function runView(state: StateDb, job: string, runId: number): RunView | undefined {
  const run = state.getRun(runId);
  if (!run || run.job !== job) return undefined;
  return {
    run: redactDeep(run),
    durationMs: durationBetween(run.startedAt, run.finishedAt),
    findings: state.findingsOfRun(runId),
  };
}

export interface FailureView {
  runId: number;
  command: string;
  status: RunRow['status'];
  startedAt: string;
  finishedAt: string | null;
  /** The steps that failed, with their evidence; empty when the run died before recording one. */
  failedSteps: StepRow[];
  /** The report's failure lines (a run that failed without a failed step, e.g. an anomaly). */
  failures: { step: string; message: string }[];
  /** A newer backup run that succeeded since: the failure is history, not the present. */
  recoveredBy: number | null;
}

/** The newest backup run that failed or was abandoned, with what failed. */
export function lastFailure(state: StateDb, job: string): FailureView | undefined {
  const runs = state.listRuns(job, HISTORY_RUNS).filter((r) => r.command === 'backup');
  const index = runs.findIndex((r) => r.status === 'failure' || r.status === 'abandoned');
  const failed = runs[index];
  if (!failed) return undefined;
  const detail = redactDeep(state.getRun(failed.id));
  const report = asRecord(detail?.report);
  const failures = Array.isArray(report?.failures)
    ? report.failures.flatMap((f) => {
        const failure = asRecord(f);
        return typeof failure?.message === 'string'
          ? [{ step: typeof failure.step === 'string' ? failure.step : '', message: failure.message }]
          : [];
      })
    : [];
  const recovered = runs.slice(0, index).find((r) => r.status === 'success' || r.status === 'warning');
  return {
    runId: failed.id,
    command: failed.command,
    status: failed.status,
    startedAt: failed.startedAt,
    finishedAt: failed.finishedAt,
    failedSteps: detail?.steps.filter((s) => s.status === 'failed') ?? [],
    failures,
    recoveredBy: recovered?.id ?? null,
  };
}

export interface DrillCheckView {
  check: string;
  ok: boolean;
  detail: string;
}

export interface DrillView {
  runId: number;
  status: RunRow['status'];
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  setId: string | null;
  target: string | null;
  rtoMs: number | null;
  rtoObjectiveMs: number | null;
  encrypted: boolean;
  components: { name: string; kind: string; restoredAs: string; checks: DrillCheckView[]; warnings: string[] }[];
  problems: string[];
  warnings: string[];
  /** Why the drill could not run at all (its report then holds only this). */
  error: string | null;
}

/** Every drill of the job, newest first, with what each checked and found. */
export function drillViews(state: StateDb, job: string, limit = HISTORY_RUNS): DrillView[] {
  return state
    .listRuns(job, limit)
    .filter((r) => r.command === 'drill')
    .map((row) => {
      const report = asRecord(redactDeep(state.getRun(row.id)?.report));
      const components = Array.isArray(report?.components) ? report.components.map(asRecord) : [];
      return {
        runId: row.id,
        status: row.status,
        startedAt: row.startedAt,
        finishedAt: row.finishedAt,
        durationMs: durationBetween(row.startedAt, row.finishedAt),
        setId: stringOrNull(report?.setId),
        target: stringOrNull(report?.target),
        rtoMs: numberOrNull(report?.rtoMs),
        rtoObjectiveMs: numberOrNull(report?.rtoObjectiveMs),
        encrypted: report?.encrypted === true,
        components: components.flatMap((c) =>
          c
            ? [
                {
                  name: String(c.name ?? ''),
                  kind: String(c.kind ?? ''),
                  restoredAs: String(c.restoredAs ?? ''),
                  checks: (Array.isArray(c.checks) ? c.checks : []).map((k) => {
                    const check = asRecord(k);
                    return {
                      check: String(check?.check ?? ''),
                      ok: check?.ok === true,
                      detail: String(check?.detail ?? ''),
                    };
                  }),
                  warnings: strings(c.warnings),
                },
              ]
            : [],
        ),
        problems: strings(report?.problems),
        warnings: strings(report?.warnings),
        error: stringOrNull(report?.error),
      };
    });
}

export interface ChartHistory {
  /** Per component per committed set, oldest first. */
  components: ComponentHistoryRow[];
  /** Finished backup runs, oldest first. */
  backups: { runId: number; startedAt: string; durationMs: number; status: RunRow['status'] }[];
  /** Finished drills, oldest first. */
  drills: { runId: number; startedAt: string; durationMs: number; rtoMs: number | null; status: RunRow['status'] }[];
  /** Findings of the runs whose sets are charted, to mark on the points they concern. */
  findings: StoredFinding[];
}

export function chartHistory(state: StateDb, job: string): ChartHistory {
  const components = state.componentHistory(job, CHART_SETS);
  const runs = state.listRuns(job, HISTORY_RUNS).reverse();
  const finished = (command: string) =>
    runs.flatMap((r) => {
      const durationMs = durationBetween(r.startedAt, r.finishedAt);
      return r.command === command && durationMs !== null ? [{ row: r, durationMs }] : [];
    });
  const runIds = new Set(components.map((c) => c.runId));
  for (const { row } of finished('backup')) runIds.add(row.id);
  return {
    components,
    backups: finished('backup').map(({ row, durationMs }) => ({
      runId: row.id,
      startedAt: row.startedAt,
      durationMs,
      status: row.status,
    })),
    drills: finished('drill').map(({ row, durationMs }) => {
      const report = asRecord(state.getRun(row.id)?.report);
      return {
        runId: row.id,
        startedAt: row.startedAt,
        durationMs,
        rtoMs: numberOrNull(report?.rtoMs),
        status: row.status,
      };
    }),
    findings: [...runIds].sort((a, b) => a - b).flatMap((id) => state.findingsOfRun(id)),
  };
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

function numberOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}
