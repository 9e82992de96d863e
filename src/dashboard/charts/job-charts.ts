// Which charts a job gets, from its history: per component its stored and raw size (and file
// count), rows per table, backup run durations and drill durations against the RTO. Anomaly
// findings, suspect sets and failed runs become marks on the points they concern.
import type { StoredFinding } from '../../state/store.js';
import type { ChartHistory } from '../history.js';
import type { ChartPoint, ChartSpec } from './line-chart.js';

/** Tables beyond this many (the biggest are kept) are listed, not drawn: a page stays light. */
export const MAX_TABLE_CHARTS = 40;

export interface JobCharts {
  charts: ChartSpec[];
  /** Tables not drawn, as `<component>: <table>`. */
  omittedTables: string[];
}

export function jobCharts(history: ChartHistory, objectives: { rtoMs: number | null }): JobCharts {
  const charts: ChartSpec[] = [];
  const findingsOf = (setId: string, component: string) =>
    history.findings.filter((f) => f.setId === setId && f.component === component);
  const componentNames = [...new Set(history.components.map((c) => c.component))];

  componentNames.forEach((component, index) => {
    const rows = history.components.filter((c) => c.component === component);
    const stored: ChartPoint[] = [];
    const raw: ChartPoint[] = [];
    const files: ChartPoint[] = [];
    for (const row of rows) {
      const findings = findingsOf(row.setId, component);
      const label = `set ${row.setId}`;
      const suspect = row.suspect ? 'suspect set' : undefined;
      stored.push(point(row.startedAt, row.bytes, label, marksOf(findings, ['bytes', 'ratio']) ?? suspect));
      raw.push(point(row.startedAt, row.rawBytes, label, marksOf(findings, ['rawBytes', 'ratio']) ?? suspect));
      if (row.files !== null) files.push(point(row.startedAt, row.files, label, marksOf(findings, ['files'])));
    }
    charts.push({
      id: `size-${index}`,
      title: `${component}: size per set`,
      unit: 'bytes',
      series: [
        { name: 'stored', points: stored },
        { name: 'raw', points: raw },
      ],
    });
    if (files.length > 0) {
      charts.push({
        id: `files-${index}`,
        title: `${component}: files per set`,
        unit: 'count',
        series: [{ name: 'files', points: files }],
      });
    }
  });

  const tables = tableCharts(history, findingsOf);
  charts.push(...tables.charts);

  charts.push({
    id: 'backup-duration',
    title: 'Backup runs: duration',
    unit: 'duration',
    series: [
      {
        name: 'backup',
        points: history.backups.map((r) => point(r.startedAt, r.durationMs, `run #${r.runId}`, failedMark(r.status))),
      },
    ],
  });
  const drillSeries = [
    {
      name: 'drill',
      points: history.drills.map((d) => point(d.startedAt, d.durationMs, `drill #${d.runId}`, failedMark(d.status))),
    },
    {
      name: 'measured RTO',
      points: history.drills.flatMap((d) =>
        d.rtoMs === null
          ? []
          : [
              point(
                d.startedAt,
                d.rtoMs,
                `drill #${d.runId}`,
                objectives.rtoMs !== null && d.rtoMs > objectives.rtoMs ? 'slower than objectives.rto' : undefined,
              ),
            ],
      ),
    },
  ];
  charts.push({
    id: 'drill-duration',
    title: 'Drills: duration and measured RTO',
    unit: 'duration',
    series: drillSeries,
    ...(objectives.rtoMs !== null ? { threshold: { value: objectives.rtoMs, label: 'RTO objective' } } : {}),
  });
  return { charts, omittedTables: tables.omitted };
}

/** One chart per table of each database component, the biggest tables first when there are many. */
function tableCharts(
  history: ChartHistory,
  findingsOf: (setId: string, component: string) => StoredFinding[],
): { charts: ChartSpec[]; omitted: string[] } {
  const all: { component: string; table: string; points: ChartPoint[]; latest: number }[] = [];
  const components = [...new Set(history.components.filter((c) => c.tables).map((c) => c.component))];
  for (const component of components) {
    const rows = history.components.filter((c) => c.component === component);
    const names = [...new Set(rows.flatMap((r) => Object.keys(r.tables ?? {})))].sort();
    for (const table of names) {
      const points: ChartPoint[] = [];
      let latest = 0;
      for (const row of rows) {
        const findings = findingsOf(row.setId, component).filter((f) => f.table === table);
        const count = row.tables?.[table];
        const mark = marksOf(findings, ['rows', 'table-vanished']);
        // A vanished table has no count: its finding is drawn at zero.
        if (count === undefined && mark === undefined) continue;
        points.push(point(row.startedAt, count ?? 0, `set ${row.setId}`, mark));
        latest = count ?? 0;
      }
      all.push({ component, table, points, latest });
    }
  }
  const kept = new Set([...all].sort((a, b) => b.latest - a.latest).slice(0, MAX_TABLE_CHARTS));
  return {
    charts: all
      .filter((t) => kept.has(t))
      .map((t, index) => ({
        id: `rows-${index}`,
        title: `${t.component}: rows in ${t.table}`,
        unit: 'count',
        series: [{ name: 'rows', points: t.points }],
      })),
    omitted: all.filter((t) => !kept.has(t)).map((t) => `${t.component}: ${t.table}`),
  };
}

function point(at: string, value: number, label: string, mark: string | undefined): ChartPoint {
  return mark === undefined ? { at, value, label } : { at, value, label, mark };
}

function marksOf(findings: readonly StoredFinding[], metrics: readonly string[]): string | undefined {
  const relevant = findings.filter((f) => metrics.includes(f.metric));
  return relevant.length > 0 ? relevant.map((f) => `${f.level}: ${f.message}`).join('; ') : undefined;
}

function failedMark(status: string | null): string | undefined {
  return status === 'failure' || status === 'abandoned' ? `run ${status}` : undefined;
}
