// The overview: every job at a glance. Per job a health light; per target the newest verified set
// and its age against the RPO; the last drill and its measured RTO against the objective; open
// anomalies; and the last failure with the step that failed and its evidence.
import type { JobStatus } from '../../core/job-status.js';
import { VERIFICATION_WORDS } from '../../core/job-status.js';
import { durationText, evidenceHtml, type Light, lightHtml, statusHtml, timeHtml } from '../format.js';
import type { FailureView } from '../history.js';
import { type Html, html } from '../html.js';
import { urls } from '../urls.js';

export type OverviewJob =
  | { job: string; status: JobStatus; lastFailure: FailureView | undefined }
  | { job: string; error: string };

export function renderOverview(jobs: readonly OverviewJob[]): Html {
  const unhealthy = jobs.filter((j) => !('status' in j) || !j.status.healthy).length;
  const summary =
    unhealthy === 0
      ? html`<p class="summary summary-ok">Every job is healthy.</p>`
      : html`<p class="summary summary-bad">${unhealthy} of ${jobs.length} job${jobs.length === 1 ? '' : 's'} need${unhealthy === 1 ? 's' : ''} attention.</p>`;
  return html`${summary}${jobs.map((j) => ('status' in j ? renderJob(j.status, j.lastFailure) : renderUnreadable(j)))}`;
}

function renderUnreadable(job: { job: string; error: string }): Html {
  return html`<section class="job" data-job="${job.job}" data-health="unknown">
<h2>${lightHtml('bad', 'cannot tell')} ${job.job}</h2>
<p class="problem">Its health could not be read: ${job.error}</p>
</section>`;
}

function jobLight(status: JobStatus): { light: Light; word: string } {
  if (!status.healthy) return { light: 'bad', word: 'UNHEALTHY' };
  const needsLook =
    status.warnings.length > 0 ||
    status.lastRunFailed ||
    status.unfinishedRuns.length > 0 ||
    status.undeliveredNotifications.length > 0;
  return needsLook ? { light: 'warn', word: 'healthy, needs a look' } : { light: 'ok', word: 'healthy' };
}

function renderJob(status: JobStatus, failure: FailureView | undefined): Html {
  const { light, word } = jobLight(status);
  const job = status.job;
  return html`<section class="job" data-job="${job}" data-health="${status.healthy ? 'healthy' : 'unhealthy'}">
<h2>${lightHtml(light, word)} ${job}</h2>
<p class="links"><a href="${urls.runs(job)}">runs</a> · <a href="${urls.drills(job)}">drills</a> · <a href="${urls.charts(job)}">charts</a></p>
${renderTargets(status)}
<dl class="facts">
<dt>last run</dt><dd>${renderLastRun(status)}</dd>
<dt>last drill</dt><dd>${renderDrill(status)}</dd>
<dt>open anomalies</dt><dd>${renderAnomalies(status)}</dd>
${status.running.held ? html`<dt>running now</dt><dd>${status.running.holder ? html`pid ${status.running.holder.pid} on ${status.running.holder.host} since ${timeHtml(status.running.holder.startedAt)}` : 'yes'}</dd>` : html``}
</dl>
${renderNotes(status)}
${failure ? renderFailure(job, failure) : html``}
</section>`;
}

function renderTargets(status: JobStatus): Html {
  const rows = status.targets.map((t) => {
    const light: Light = t.healthy ? 'ok' : t.optional ? 'warn' : 'bad';
    const age =
      t.ageMs === null
        ? html`<span class="none">—</span>`
        : html`${durationText(t.ageMs)} old${t.rpoMs !== null ? html` <span class="objective">(RPO ${durationText(t.rpoMs)})</span>` : html``}`;
    return html`<tr data-target="${t.target}">
<td>${lightHtml(light, t.healthy ? 'ok' : t.optional ? 'degraded' : 'failing')}</td>
<td>${t.target}${t.optional ? html` <span class="tag">optional</span>` : html``}</td>
<td>${t.newestSetId ? html`<code>${t.newestSetId}</code><br>${timeHtml(t.newestFinishedAt)}` : html`<span class="none">none</span>`}</td>
<td>${age}</td>
<td>${t.verification ? (VERIFICATION_WORDS[t.verification] ?? t.verification) : html`<span class="none">—</span>`}</td>
<td>${t.problem ? html`<span class="problem">${t.problem}</span>` : html``}</td>
</tr>`;
  });
  return html`<table class="targets">
<thead><tr><th>health</th><th>target</th><th>newest verified set</th><th>age</th><th>proven by</th><th>problem</th></tr></thead>
<tbody>${rows}</tbody>
</table>`;
}

function renderLastRun(status: JobStatus): Html {
  const run = status.lastRun;
  if (!run) return html`<span class="none">no backup recorded on this host</span>`;
  return html`<a href="${urls.run(status.job, run.id)}">run #${run.id}</a> ${statusHtml(run.status)} started ${timeHtml(run.startedAt)}`;
}

function renderDrill(status: JobStatus): Html {
  const { last, healthy, problem } = status.drill;
  const light = lightHtml(healthy ? 'ok' : 'bad', healthy ? 'ok' : 'failing');
  if (!last)
    return problem ? html`${light} ${problem}` : html`<span class="none">none (no drill section in the config)</span>`;
  const rto =
    last.rtoMs === null
      ? html``
      : html`, measured RTO ${durationText(last.rtoMs)}${last.rtoObjectiveMs !== null ? html` <span class="objective">(objective ${durationText(last.rtoObjectiveMs)})</span>` : html``}`;
  return html`${light} ${timeHtml(last.at)} ${statusHtml(last.status)}${last.setId ? html` of set <code>${last.setId}</code>` : html``}${rto}${problem ? html`; <span class="problem">${problem}</span>` : html``} · <a href="${urls.drills(status.job)}">all drills</a>`;
}

function renderAnomalies(status: JobStatus): Html {
  if (status.anomalies.length === 0) return html`none`;
  const items = status.anomalies.map(
    (f) =>
      html`<li>${statusHtml(f.level === 'failure' ? 'failure' : 'warning')} <code>${f.id}</code> (set <code>${f.setId}</code>): ${f.message}; check it, then <code>backproof ack ${f.id}</code></li>`,
  );
  return html`<ul class="anomalies">${items}</ul>`;
}

function renderNotes(status: JobStatus): Html {
  const notes: Html[] = [
    ...status.warnings.map((w) => html`<li>${w}</li>`),
    ...status.unfinishedRuns
      .slice(0, 5)
      .map(
        (r) =>
          html`<li>run <a href="${urls.run(status.job, r.id)}">#${r.id}</a> (pid ${r.pid}, started ${timeHtml(r.startedAt)}) never finished: it was killed or crashed</li>`,
      ),
    ...status.undeliveredNotifications
      .slice(0, 5)
      .map(
        (n) =>
          html`<li>notification ${n.event} via ${n.channel} (${timeHtml(n.at)}) was not delivered: ${n.error ?? 'unknown error'}</li>`,
      ),
  ];
  return notes.length > 0 ? html`<ul class="notes">${notes}</ul>` : html``;
}

function renderFailure(job: string, failure: FailureView): Html {
  const steps = failure.failedSteps.map(
    (s) => html`<li class="step step-failed" data-step="${s.name}">
<p>${statusHtml(s.status)} <strong>${s.name}</strong>${s.target ? html` on ${s.target}` : html``}${s.component ? html` (${s.component})` : html``}: ${s.message ?? ''}</p>
${evidenceHtml(s.evidence)}
</li>`,
  );
  const lines =
    failure.failedSteps.length === 0
      ? failure.failures.map(
          (f) => html`<li class="step step-failed"><p><strong>${f.step}</strong>: ${f.message}</p></li>`,
        )
      : [];
  const since =
    failure.recoveredBy !== null
      ? html` <span class="tag">since then: <a href="${urls.run(job, failure.recoveredBy)}">run #${failure.recoveredBy}</a> succeeded</span>`
      : html``;
  return html`<div class="failure" data-run="${failure.runId}">
<h3>Last failure: <a href="${urls.run(job, failure.runId)}">run #${failure.runId}</a> ${statusHtml(failure.status)} ${timeHtml(failure.startedAt)}${since}</h3>
${steps.length + lines.length > 0 ? html`<ol class="steps">${steps}${lines}</ol>` : html`<p class="none">no step was recorded: the run was killed before it could say why</p>`}
</div>`;
}
