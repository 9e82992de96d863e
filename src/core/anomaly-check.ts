// The anomaly check of a backup run, before anything is committed: the set about to be committed
// against the newest committed, valid, non-suspect sets of the job, with the acks a human gave.
// History comes from the targets (the truth: a new host has history from its first run), read
// while preparing them; the first readable target in config order answers. Only when none could
// be read does the state database stand in.
import type { JobConfig } from '../config/schema.js';
import { messageOf } from '../lib/errors.js';
import {
  type Ack,
  type AnomalyThresholds,
  type ComponentSample,
  detectAnomalies,
  type Finding,
  type SetSample,
} from '../policy/anomaly.js';
import type { ComponentReport } from '../report/types.js';
import type { ManifestComponent } from '../set/manifest.js';
import type { AckRecord, ComponentHistoryRow, StateDb } from '../state/store.js';
import type { CommittedListing } from './target-session.js';

/** A set of history with the start time that orders it (set ids of one second tie). */
export interface HistorySet {
  setId: string;
  startedAt: string;
  components: ComponentSample[];
}

export interface AnomalyCheck {
  findings: Finding[];
  /** A finding reached failure level: the set is committed with `suspect: true`. */
  suspect: boolean;
  /** `target <name>`, `state database`, `none` (no readable history) or `disabled`. */
  historySource: string;
  historySets: number;
  /** Set when the check itself could not run; the set is then committed unjudged. */
  error?: string;
}

export interface AnomalyCheckInput {
  config: Pick<JobConfig, 'job' | 'anomalies'>;
  state: StateDb;
  runId: number;
  setId: string;
  /** The run's start (the set's startedAt), UTC ISO. */
  startedAt: string;
  checkedAt: string;
  components: readonly ComponentReport[];
  /** Each target's committed sets as listed while preparing it, in config order; undefined: not read. */
  listings: readonly { target: string; listings: readonly CommittedListing[] | undefined }[];
}

/** How many of the newest sets the state database offers as history when no target could be read. */
const STATE_HISTORY_SETS = 100;

/** Runs the check and records it (and its findings) in the state database. */
export function checkAnomalies(input: AnomalyCheckInput): AnomalyCheck {
  const { config, state } = input;
  const check = judge(input);
  state.recordAnomalyCheck(input.runId, {
    job: config.job,
    setId: input.setId,
    setStartedAt: input.startedAt,
    checkedAt: input.checkedAt,
    historySource: check.historySource,
    historySets: check.historySets,
    findings: check.findings,
  });
  return check;
}

function judge(input: AnomalyCheckInput): AnomalyCheck {
  const { config, state } = input;
  const settings = config.anomalies;
  if (!settings.enabled) return { findings: [], suspect: false, historySource: 'disabled', historySets: 0 };
  const readable = input.listings.find((l) => l.listings !== undefined);
  const history = readable?.listings
    ? { source: `target ${readable.target}`, sets: historyFromListings(readable.listings, config.job, input.setId) }
    : { source: 'state database', sets: historyFromState(state.componentHistory(config.job, STATE_HISTORY_SETS)) };
  const source = history.sets.length === 0 && !readable ? 'none' : history.source;
  const current: HistorySet = {
    setId: input.setId,
    startedAt: input.startedAt,
    components: samplesOf(input.components),
  };
  try {
    const findings = detectInOrder(current, history.sets, thresholdsOf(settings), state.acks(config.job));
    return {
      findings,
      suspect: findings.some((f) => f.level === 'failure'),
      historySource: source,
      historySets: history.sets.length,
    };
  } catch (error) {
    return {
      findings: [],
      suspect: false,
      historySource: source,
      historySets: history.sets.length,
      error: messageOf(error),
    };
  }
}

export function thresholdsOf(settings: JobConfig['anomalies']): AnomalyThresholds {
  return {
    window: settings.window,
    minHistory: settings.minHistory,
    dropWarnBp: settings.dropWarn,
    dropFailBp: settings.dropFail,
    growthWarnBp: settings.growthWarn,
    ratioJumpWarnBp: settings.ratioJumpWarn,
  };
}

/**
 * detectAnomalies orders sets by id, and ids made in one second tie on their random tail. Here each
 * set goes in under a key that sorts by its millisecond start first, and acks name sets the same way.
 */
export function detectInOrder(
  current: HistorySet,
  history: readonly HistorySet[],
  thresholds: AnomalyThresholds,
  acks: readonly Pick<AckRecord, 'findingId' | 'setId' | 'setStartedAt'>[],
): Finding[] {
  const sample = (set: HistorySet): SetSample => ({
    setId: orderKey(set.setId, set.startedAt),
    components: set.components,
  });
  const ordered = [...history].sort(newestFirst).map(sample);
  const keyedAcks: Ack[] = acks.map((a) => ({ findingId: a.findingId, setId: orderKey(a.setId, a.setStartedAt) }));
  return detectAnomalies(sample(current), ordered, thresholds, keyedAcks);
}

/**
 * `2025-11-04T03:00:00.123Z 20251104T030000Z-k3x9qa`: stamps in one form sort as time. A start that is
 * not a date falls back to the second in the set id.
 */
export function orderKey(setId: string, startedAt: string): string {
  const ms = Date.parse(startedAt);
  const stamp = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-/.exec(setId);
  const fromId = stamp ? `${stamp[1]}-${stamp[2]}-${stamp[3]}T${stamp[4]}:${stamp[5]}:${stamp[6]}.000Z` : '';
  return `${Number.isNaN(ms) ? fromId : new Date(ms).toISOString()} ${setId}`;
}

function newestFirst(a: HistorySet, b: HistorySet): number {
  const ka = orderKey(a.setId, a.startedAt);
  const kb = orderKey(b.setId, b.startedAt);
  return ka < kb ? 1 : ka > kb ? -1 : 0;
}

/** History from one target's listing: committed sets with a valid manifest of this job, not suspect. */
export function historyFromListings(
  listings: readonly CommittedListing[],
  job: string,
  currentSetId: string,
): HistorySet[] {
  const sets: HistorySet[] = [];
  for (const listing of listings) {
    if (!listing.parsed.ok) continue;
    const manifest = listing.parsed.manifest;
    if (manifest.suspect || manifest.job !== job || manifest.setId === currentSetId) continue;
    sets.push({ setId: manifest.setId, startedAt: manifest.startedAt, components: samplesOf(manifest.components) });
  }
  return sets.sort(newestFirst);
}

/** History from this host's state database: its committed sets, suspect ones left out. */
export function historyFromState(rows: readonly ComponentHistoryRow[]): HistorySet[] {
  const sets = new Map<string, HistorySet>();
  for (const row of rows) {
    if (row.suspect) continue;
    const set = sets.get(row.setId) ?? { setId: row.setId, startedAt: row.startedAt, components: [] };
    set.components.push({
      name: row.component,
      bytes: row.bytes,
      rawBytes: row.rawBytes,
      ...(row.files === null ? {} : { files: row.files }),
      ...(row.tables === null ? {} : { tables: row.tables }),
    });
    sets.set(row.setId, set);
  }
  return [...sets.values()].sort(newestFirst);
}

/** The engine's view of components, from a run report or a manifest. */
export function samplesOf(components: readonly (ComponentReport | ManifestComponent)[]): ComponentSample[] {
  return components.map((c) => ({
    name: c.name,
    bytes: c.bytes,
    rawBytes: c.rawBytes,
    ...(c.files === undefined ? {} : { files: c.files }),
    ...(c.tables === undefined ? {} : { tables: c.tables }),
  }));
}

export interface CheckStep {
  name: 'anomalies' | 'anomaly';
  status: 'ok' | 'warning' | 'failed';
  message: string;
  evidence?: Record<string, unknown>;
}

/** The run's steps for a check: one summary, then one per finding. */
export function stepsOfCheck(check: AnomalyCheck): CheckStep[] {
  const failures = check.findings.filter((f) => f.level === 'failure').length;
  const warnings = check.findings.length - failures;
  const against =
    check.historySource === 'disabled'
      ? 'anomaly checks are disabled (anomalies.enabled: false)'
      : check.historySets === 0
        ? `no committed, non-suspect set to compare with (history: ${check.historySource})`
        : `compared with ${check.historySets} committed, non-suspect set(s) from the ${check.historySource}`;
  const summary: CheckStep = check.error
    ? {
        name: 'anomalies',
        status: 'warning',
        message: `the anomaly check could not run (${check.error}); the set is committed unjudged`,
      }
    : {
        name: 'anomalies',
        status: failures > 0 ? 'failed' : warnings > 0 ? 'warning' : 'ok',
        message:
          check.findings.length === 0
            ? `${against}: nothing unusual`
            : `${against}: ${failures} failure(s), ${warnings} warning(s)${check.suspect ? '; the set is committed as SUSPECT' : ''}`,
        evidence: { historySource: check.historySource, historySets: check.historySets },
      };
  return [
    summary,
    ...check.findings.map(
      (f): CheckStep => ({
        name: 'anomaly',
        status: f.level === 'failure' ? 'failed' : 'warning',
        // The message names the component already.
        message: f.message,
        evidence: { finding: f.id, component: f.component, baseline: f.baseline, value: f.value, changeBp: f.changeBp },
      }),
    ),
  ];
}
