// One run: what it was, its step timeline, every step with its evidence (failed steps open), the
// components it produced (sizes, files, rows per table), its targets, failures, warnings and the
// anomaly findings. The run was redacted by history.ts before it reaches this page.
import { renderTimeline } from '../charts/step-timeline.js';
import { bytesText, countText, durationText, evidenceHtml, statusHtml, timeHtml } from '../format.js';
import type { RunView } from '../history.js';
import { type Html, html } from '../html.js';
import { urls } from '../urls.js';

export function renderRun(job: string, view: RunView): Html {
  const { run } = view;
  const report = asRecord(run.report);
  const failures = records(report?.failures);
  const warnings = (Array.isArray(report?.warnings) ? report.warnings : []).filter(
    (w): w is string => typeof w === 'string',
  );
  const targets = records(report?.targets);
  const reportError = typeof report?.error === 'string' ? report.error : null;
  return html`<dl class="facts run-facts" data-run="${run.id}" data-status="${run.status ?? 'unfinished'}">
<dt>command</dt><dd>${run.command}${run.command === 'drill' ? html` · <a href="${urls.drills(job)}">drill details</a>` : html``}</dd>
<dt>status</dt><dd>${statusHtml(run.status)}${run.exitCode !== null ? html` (exit ${run.exitCode})` : html``}</dd>
<dt>started</dt><dd>${timeHtml(run.startedAt)} on ${run.host} (pid ${run.pid})</dd>
<dt>finished</dt><dd>${timeHtml(run.finishedAt)}</dd>
<dt>duration</dt><dd>${durationText(view.durationMs)}</dd>
<dt>stored</dt><dd>${bytesText(run.bytes)}</dd>
${typeof report?.setId === 'string' ? html`<dt>set</dt><dd><code>${report.setId}</code>${targets.length > 0 && !targets.some((t) => t.result === 'committed') ? html` <span class="tag">not committed on any target</span>` : html``}</dd>` : html``}
</dl>
${reportError ? html`<p class="problem">The run could not complete: ${reportError}</p>` : html``}
${failures.length > 0 ? html`<h2>Failures</h2><ul class="failures">${failures.map((f) => html`<li><strong>${String(f.step ?? '')}</strong>${f.target ? html` on ${String(f.target)}` : html``}${f.component ? html` (${String(f.component)})` : html``}: ${String(f.message ?? '')}</li>`)}</ul>` : html``}
${warnings.length > 0 ? html`<h2>Warnings</h2><ul class="notes">${warnings.map((w) => html`<li>${w}</li>`)}</ul>` : html``}
${renderSteps(view)}
${renderComponents(view)}
${targets.length > 0 ? renderTargets(targets) : html``}
${renderFindings(view)}
<p class="links"><a href="${urls.runs(job)}">all runs</a> · <a href="${urls.apiRun(job, run.id)}">as JSON</a></p>`;
}

function renderSteps(view: RunView): Html {
  const { run } = view;
  if (run.steps.length === 0) return html`<h2>Steps</h2><p class="none">No step was recorded.</p>`;
  const timeline = renderTimeline(
    run.steps.map((s) => ({
      name: s.name,
      status: s.status,
      startedAt: s.startedAt,
      finishedAt: s.finishedAt,
      ...(s.target || s.component ? { where: [s.target, s.component].filter(Boolean).join(' ') } : {}),
    })),
    run.startedAt,
    run.finishedAt,
  );
  const start = Date.parse(run.startedAt);
  const items = run.steps.map((s) => {
    const offset = Date.parse(s.startedAt) - start;
    const took = Date.parse(s.finishedAt) - Date.parse(s.startedAt);
    const evidence =
      s.evidence === null || s.evidence === undefined
        ? html``
        : html`<details${s.status === 'failed' ? html` open` : html``}><summary>evidence</summary>${evidenceHtml(s.evidence)}</details>`;
    return html`<li class="step step-${s.status}" data-step="${s.name}">
<p>${statusHtml(s.status)} <span class="offset">+${durationText(offset)}</span> <strong>${s.name}</strong>${s.target ? html` on ${s.target}` : html``}${s.component ? html` (${s.component})` : html``} <span class="took">${durationText(took)}</span></p>
${s.message ? html`<p class="message">${s.message}</p>` : html``}
${evidence}
</li>`;
  });
  return html`<h2>Steps</h2>${timeline}<ol class="steps">${items}</ol>`;
}

function renderComponents(view: RunView): Html {
  const components = view.run.components;
  if (components.length === 0) return html``;
  const rows = components.map((c) => {
    const tables = c.tables
      ? Object.entries(c.tables).map(([table, rows]) => html`<li><code>${table}</code>: ${countText(rows)} rows</li>`)
      : [];
    return html`<tr data-component="${c.name}">
<td>${c.name}</td><td>${c.kind}</td><td>${c.target}</td>
<td class="num">${bytesText(c.bytes)}</td><td class="num">${bytesText(c.rawBytes)}</td>
<td class="num">${c.files !== null ? countText(c.files) : ''}</td>
<td>${tables.length > 0 ? html`<ul class="tables">${tables}</ul>` : html``}</td>
</tr>`;
  });
  return html`<h2>Components</h2>
<table class="components">
<thead><tr><th>component</th><th>kind</th><th>target</th><th>stored</th><th>raw</th><th>files</th><th>rows per table</th></tr></thead>
<tbody>${rows}</tbody>
</table>`;
}

function renderTargets(targets: readonly Record<string, unknown>[]): Html {
  const rows = targets.map(
    (t) => html`<tr><td>${String(t.name ?? '')}</td><td>${String(t.type ?? '')}</td>
<td>${statusHtml(typeof t.result === 'string' ? t.result : null)}</td>
<td>${typeof t.error === 'string' ? html`<span class="problem">${t.error}</span>` : html``}</td></tr>`,
  );
  return html`<h2>Targets</h2><table class="targets"><thead><tr><th>target</th><th>type</th><th>result</th><th>error</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function renderFindings(view: RunView): Html {
  if (view.findings.length === 0) return html``;
  const items = view.findings.map(
    (f) =>
      html`<li>${statusHtml(f.level === 'failure' ? 'failure' : 'warning')} <code>${f.id}</code>: ${f.message}</li>`,
  );
  return html`<h2>Anomaly findings</h2><ul class="anomalies">${items}</ul>`;
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function records(value: unknown): Record<string, unknown>[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((v): Record<string, unknown>[] => {
    const record = asRecord(v);
    return record ? [record] : [];
  });
}
