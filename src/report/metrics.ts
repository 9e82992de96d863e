// Prometheus text exposition (format 0.0.4) of a job's health, from the state database: what the
// textfile export writes after each backup run and what `serve` exposes at /metrics. Every metric
// is a gauge named backproof_*; times are Unix seconds, sizes bytes, all printed as plain decimals.
// The state database is this host's history: for what the targets hold right now, see `status`.
import type { JobConfig } from '../config/schema.js';
import type { RunRow, StateDb } from '../state/store.js';
import { VERSION } from '../version.js';

type Status = 'success' | 'warning' | 'failure';
const STATUSES: readonly Status[] = ['success', 'warning', 'failure'];

/** Everything the metrics say about one job; built by {@link collectMetrics}, or by hand in tests. */
export interface JobMetrics {
  job: string;
  version: string;
  objectives: { rpoMs: number | null; rtoMs: number | null };
  /** The newest finished backup run. */
  lastRun: {
    status: Status;
    exitCode: number;
    finishedAt: string;
    durationMs: number;
    bytes: number;
    rawBytes: number | null;
  } | null;
  /** When the newest backup run with status success finished. */
  lastSuccessAt: string | null;
  /** Per target: the newest set this host committed there (its chain head). */
  targets: { target: string; setId: string; committedAt: string }[];
  /** The components of each target's newest set. */
  components: { target: string; component: string; bytes: number; rawBytes: number; files: number | null }[];
  /** Open anomaly findings (not acknowledged) by level. */
  openAnomalies: { warning: number; failure: number };
  lastDrill: { status: Status; finishedAt: string; rtoMs: number | null } | null;
  lastSuccessfulDrillAt: string | null;
  lastVerify: { status: Status; finishedAt: string } | null;
}

/** How many runs back to look for drills, verifies and the components of each target's newest set. */
const HISTORY_RUNS = 200;

/** Reads the job's metrics from the state database. */
export function collectMetrics(config: JobConfig, state: StateDb): JobMetrics {
  const runs = state.listRuns(config.job, HISTORY_RUNS);
  const finished = (command: string) => runs.filter((r) => r.command === command && isStatus(r.status));
  const backups = finished('backup');
  const drills = finished('drill');
  const verifies = finished('verify');

  const last = backups[0];
  let lastRun: JobMetrics['lastRun'] = null;
  if (last?.finishedAt) {
    const report = state.getRun(last.id)?.report as { rawBytes?: unknown } | null | undefined;
    lastRun = {
      status: last.status as Status,
      exitCode: last.exitCode ?? 1,
      finishedAt: last.finishedAt,
      durationMs: Math.max(0, Date.parse(last.finishedAt) - Date.parse(last.startedAt)),
      bytes: last.bytes ?? 0,
      rawBytes: typeof report?.rawBytes === 'number' ? report.rawBytes : null,
    };
  }

  const targets: JobMetrics['targets'] = [];
  for (const target of config.targets) {
    const head = state.getChainHead(config.job, target.name);
    if (head) targets.push({ target: target.name, setId: head.setId, committedAt: head.committedAt });
  }

  // The components of each head set, from the run that committed it.
  const components: JobMetrics['components'] = [];
  const wanted = new Map(targets.map((t) => [t.target, t.setId]));
  for (const run of runs) {
    if (wanted.size === 0) break;
    if (run.command !== 'backup' || (run.status !== 'success' && run.status !== 'warning')) continue;
    const detail = state.getRun(run.id);
    for (const c of detail?.components ?? []) {
      if (wanted.get(c.target) !== c.setId) continue;
      components.push({ target: c.target, component: c.name, bytes: c.bytes, rawBytes: c.rawBytes, files: c.files });
    }
    for (const c of detail?.components ?? []) if (wanted.get(c.target) === c.setId) wanted.delete(c.target);
  }

  const findings = state.openFindings(config.job);
  const drill = drills[0];
  let lastDrill: JobMetrics['lastDrill'] = null;
  if (drill?.finishedAt) {
    const report = state.getRun(drill.id)?.report as { rtoMs?: unknown } | null | undefined;
    lastDrill = {
      status: drill.status as Status,
      finishedAt: drill.finishedAt,
      rtoMs: typeof report?.rtoMs === 'number' ? report.rtoMs : null,
    };
  }
  const verify = verifies[0];
  return {
    job: config.job,
    version: VERSION,
    objectives: { rpoMs: config.objectives?.rpo ?? null, rtoMs: config.objectives?.rto ?? null },
    lastRun,
    lastSuccessAt: backups.find((r) => r.status === 'success')?.finishedAt ?? null,
    targets,
    components,
    openAnomalies: {
      warning: findings.filter((f) => f.level === 'warning').length,
      failure: findings.filter((f) => f.level === 'failure').length,
    },
    lastDrill,
    lastSuccessfulDrillAt: drills.find((r) => r.status === 'success')?.finishedAt ?? null,
    lastVerify: verify?.finishedAt ? { status: verify.status as Status, finishedAt: verify.finishedAt } : null,
  };
}

function isStatus(status: RunRow['status']): boolean {
  return status === 'success' || status === 'warning' || status === 'failure';
}

// ---------------------------------------------------------------------------------------------
// Rendering

type Labels = Readonly<Record<string, string>>;
interface Sample {
  labels: Labels;
  /** Already formatted: an integer or a plain decimal, never an exponent. */
  value: string;
}
interface Family {
  name: string;
  help: string;
  samples: Sample[];
}

/** Renders the metrics of one or more jobs; each family's HELP and TYPE appear once. */
export function renderMetrics(jobs: JobMetrics | readonly JobMetrics[]): string {
  const families = new Map<string, Family>();
  const add = (name: string, help: string, labels: Labels, value: string) => {
    const family = families.get(name) ?? { name, help, samples: [] };
    family.samples.push({ labels, value });
    families.set(name, family);
  };
  for (const m of Array.isArray(jobs) ? jobs : [jobs as JobMetrics]) {
    const job = { job: m.job };
    add(
      'backproof_info',
      'Which backproof version wrote these metrics (always 1).',
      { ...job, version: m.version },
      '1',
    );
    if (m.objectives.rpoMs !== null)
      add('backproof_rpo_seconds', 'Recovery point objective from the config.', job, seconds(m.objectives.rpoMs));
    if (m.objectives.rtoMs !== null)
      add('backproof_rto_seconds', 'Recovery time objective from the config.', job, seconds(m.objectives.rtoMs));
    if (m.lastRun) {
      const r = m.lastRun;
      add('backproof_last_run_timestamp_seconds', 'When the newest backup run finished.', job, timestamp(r.finishedAt));
      for (const status of STATUSES)
        add(
          'backproof_last_run_status',
          'Status of the newest backup run: 1 for its status, 0 for the others.',
          { ...job, status },
          r.status === status ? '1' : '0',
        );
      add('backproof_last_run_exit_code', 'Exit code of the newest backup run.', job, integer(r.exitCode));
      add('backproof_last_run_duration_seconds', 'How long the newest backup run took.', job, seconds(r.durationMs));
      add('backproof_last_run_bytes', 'Bytes stored by the newest backup run (one copy).', job, integer(r.bytes));
      if (r.rawBytes !== null)
        add('backproof_last_run_raw_bytes', 'Bytes read from the sources by the newest run.', job, integer(r.rawBytes));
    }
    if (m.lastSuccessAt)
      add(
        'backproof_last_success_timestamp_seconds',
        'When the newest backup run with status success finished.',
        job,
        timestamp(m.lastSuccessAt),
      );
    for (const t of m.targets)
      add(
        'backproof_target_last_commit_timestamp_seconds',
        'When this host last committed a verified set on the target.',
        { ...job, target: t.target },
        timestamp(t.committedAt),
      );
    for (const c of m.components) {
      const labels = { ...job, target: c.target, component: c.component };
      add(
        'backproof_component_bytes',
        "Stored bytes of the component in the target's newest set.",
        labels,
        integer(c.bytes),
      );
      add(
        'backproof_component_raw_bytes',
        "Raw bytes of the component in the target's newest set.",
        labels,
        integer(c.rawBytes),
      );
      if (c.files !== null)
        add(
          'backproof_component_files',
          "Entries of a files component in the target's newest set.",
          labels,
          integer(c.files),
        );
    }
    for (const level of ['warning', 'failure'] as const)
      add(
        'backproof_anomalies_open',
        'Anomaly findings of the newest checked run that nobody acknowledged.',
        { ...job, level },
        integer(m.openAnomalies[level]),
      );
    if (m.lastDrill) {
      const d = m.lastDrill;
      add(
        'backproof_last_drill_timestamp_seconds',
        'When the newest restore drill finished.',
        job,
        timestamp(d.finishedAt),
      );
      for (const status of STATUSES)
        add(
          'backproof_last_drill_status',
          'Status of the newest restore drill: 1 for its status, 0 for the others.',
          { ...job, status },
          d.status === status ? '1' : '0',
        );
      if (d.rtoMs !== null)
        add('backproof_last_drill_rto_seconds', 'Restore time measured by the newest drill.', job, seconds(d.rtoMs));
    }
    if (m.lastSuccessfulDrillAt)
      add(
        'backproof_last_drill_success_timestamp_seconds',
        'When the newest successful restore drill finished.',
        job,
        timestamp(m.lastSuccessfulDrillAt),
      );
    if (m.lastVerify) {
      add(
        'backproof_last_verify_timestamp_seconds',
        'When the newest verify run finished.',
        job,
        timestamp(m.lastVerify.finishedAt),
      );
      for (const status of STATUSES)
        add(
          'backproof_last_verify_status',
          'Status of the newest verify run: 1 for its status, 0 for the others.',
          { ...job, status },
          m.lastVerify.status === status ? '1' : '0',
        );
    }
  }
  const lines: string[] = [];
  for (const family of families.values()) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} gauge`);
    for (const sample of family.samples) lines.push(`${family.name}${labelText(sample.labels)} ${sample.value}`);
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

function labelText(labels: Labels): string {
  const pairs = Object.entries(labels).map(([name, value]) => `${name}="${escapeLabel(value)}"`);
  return pairs.length > 0 ? `{${pairs.join(',')}}` : '';
}

/** Label values escape backslash, double quote and line feed. */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text escapes backslash and line feed. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function integer(n: number): string {
  if (!Number.isSafeInteger(n)) throw new RangeError(`metric value ${n} is not a safe integer`);
  return String(n);
}

/** Milliseconds as seconds with up to 3 decimals, by integer arithmetic: 1500 → "1.5". */
function seconds(ms: number): string {
  const whole = integer(Math.trunc(ms));
  const negative = whole.startsWith('-');
  const digits = (negative ? whole.slice(1) : whole).padStart(4, '0');
  const fraction = digits.slice(-3).replace(/0+$/, '');
  return `${negative ? '-' : ''}${digits.slice(0, -3)}${fraction ? `.${fraction}` : ''}`;
}

/** A UTC ISO time as Unix seconds. */
function timestamp(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new RangeError(`metric time ${JSON.stringify(iso)} is not a time`);
  return seconds(ms);
}
