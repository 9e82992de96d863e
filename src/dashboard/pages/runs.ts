// The runs of a job, newest first: command, status, when, how long, how much.
import { bytesText, durationText, statusHtml, timeHtml } from '../format.js';
import type { RunSummary } from '../history.js';
import { type Html, html } from '../html.js';
import { urls } from '../urls.js';

export function renderRuns(job: string, runs: readonly RunSummary[] | undefined): Html {
  if (!runs || runs.length === 0) {
    return html`<p class="none">No run of ${job} is recorded on this host yet.</p>`;
  }
  const rows = runs.map(
    (r) => html`<tr data-run="${r.id}" data-command="${r.command}" data-status="${r.status ?? 'unfinished'}">
<td><a href="${urls.run(job, r.id)}">#${r.id}</a></td>
<td>${r.command}</td>
<td>${statusHtml(r.status)}${r.failedSteps > 0 ? html` <span class="tag">${r.failedSteps} failed step${r.failedSteps === 1 ? '' : 's'}</span>` : html``}</td>
<td>${timeHtml(r.startedAt)}</td>
<td class="num">${durationText(r.durationMs)}</td>
<td class="num">${bytesText(r.bytes)}</td>
<td class="num">${bytesText(r.rawBytes)}</td>
<td>${r.setId ? html`<code>${r.setId}</code>` : html``}</td>
</tr>`,
  );
  return html`<p class="links"><a href="${urls.apiRuns(job)}">as JSON</a></p>
<table class="runs">
<thead><tr><th>run</th><th>command</th><th>status</th><th>started</th><th>duration</th><th>stored</th><th>read</th><th>set</th></tr></thead>
<tbody>${rows}</tbody>
</table>`;
}
