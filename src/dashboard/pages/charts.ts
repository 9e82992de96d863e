// A job's history as charts: sizes per component, rows per table, run and drill durations.
import type { JobCharts } from '../charts/job-charts.js';
import { renderChart } from '../charts/line-chart.js';
import { type Html, html } from '../html.js';
import { urls } from '../urls.js';

export function renderCharts(job: string, charts: JobCharts | undefined): Html {
  if (!charts) return html`<p class="none">No run of ${job} is recorded on this host yet.</p>`;
  const omitted = charts.omittedTables;
  return html`<p class="links"><a href="${urls.apiCharts(job)}">as JSON</a> · marked points (a ring) need attention: an anomaly, a suspect set, a failed run</p>
<div class="charts">${charts.charts.map((c) => renderChart(c))}</div>
${omitted.length > 0 ? html`<p class="none">${omitted.length} smaller tables are not drawn: ${omitted.join(', ')}</p>` : html``}`;
}
