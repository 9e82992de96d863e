// Every drill of a job: which set it restored from where, what it checked per component and what
// it found, the measured RTO against the objective, and its problems and warnings.
import { durationText, statusHtml, timeHtml } from '../format.js';
import type { DrillView } from '../history.js';
import { type Html, html } from '../html.js';
import { urls } from '../urls.js';

export function renderDrills(job: string, drills: readonly DrillView[] | undefined, expected: boolean): Html {
  if (!drills || drills.length === 0) {
    return html`<p class="none">No drill of ${job} is recorded on this host${expected ? ': run `backproof drill` to prove a set restores' : ''}.</p>`;
  }
  return html`<p class="links"><a href="${urls.apiDrills(job)}">as JSON</a></p>${drills.map((d) => renderDrill(job, d))}`;
}

function renderDrill(job: string, d: DrillView): Html {
  const rto =
    d.rtoMs === null
      ? html`not measured (nothing was restored completely)`
      : html`${durationText(d.rtoMs)}${d.rtoObjectiveMs !== null ? html` <span class="objective">(objective ${durationText(d.rtoObjectiveMs)})</span>` : html``}${d.rtoObjectiveMs !== null && d.rtoMs > d.rtoObjectiveMs ? html` <span class="problem">slower than the objective</span>` : html``}`;
  const components = d.components.map((c) => {
    const checks = c.checks.map(
      (k) =>
        html`<li class="check check-${k.ok ? 'ok' : 'failed'}">${statusHtml(k.ok ? 'ok' : 'failed')} <strong>${k.check}</strong>: ${k.detail}</li>`,
    );
    return html`<li data-component="${c.name}"><p><strong>${c.name}</strong> (${c.kind}) restored as ${c.restoredAs}</p>
<ul class="checks">${checks}${c.warnings.map((w) => html`<li class="check check-warning">${statusHtml('warning')} ${w}</li>`)}</ul></li>`;
  });
  return html`<section class="drill" data-run="${d.runId}" data-status="${d.status ?? 'unfinished'}">
<h2>${statusHtml(d.status)} drill <a href="${urls.run(job, d.runId)}">#${d.runId}</a> ${timeHtml(d.startedAt)}</h2>
<dl class="facts">
<dt>set</dt><dd>${d.setId ? html`<code>${d.setId}</code>` : html`<span class="none">—</span>`}${d.target ? html` from ${d.target}` : html``}${d.encrypted ? html` <span class="tag">encrypted: the private key opened it</span>` : html``}</dd>
<dt>measured RTO</dt><dd>${rto}</dd>
<dt>duration</dt><dd>${durationText(d.durationMs)}</dd>
</dl>
${d.error ? html`<p class="problem">The drill could not run: ${d.error}</p>` : html``}
${d.problems.length > 0 ? html`<h3>Found</h3><ul class="failures">${d.problems.map((p) => html`<li>${p}</li>`)}</ul>` : html``}
${d.warnings.length > 0 ? html`<h3>Warnings</h3><ul class="notes">${d.warnings.map((w) => html`<li>${w}</li>`)}</ul>` : html``}
${components.length > 0 ? html`<h3>Checked</h3><ul class="components">${components}</ul>` : html``}
</section>`;
}
