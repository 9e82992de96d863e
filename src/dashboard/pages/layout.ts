// The page shell: head (the one stylesheet, no script), the navigation across jobs, and the body.
import { VERSION } from '../../version.js';
import { type Html, html } from '../html.js';
import { urls } from '../urls.js';

export interface PageInput {
  title: string;
  /** Every job served, for the navigation. */
  jobs: readonly string[];
  /** The job this page is about, to highlight its links. */
  job?: string;
  body: Html;
}

export function renderPage(input: PageInput): Html {
  const nav = input.jobs.map(
    (job) => html`<li${job === input.job ? html` class="current"` : html``}><span class="job-name">${job}</span>
<a href="${urls.runs(job)}">runs</a> <a href="${urls.drills(job)}">drills</a> <a href="${urls.charts(job)}">charts</a></li>`,
  );
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${input.title} · backproof</title>
<link rel="stylesheet" href="${urls.stylesheet()}">
<link rel="icon" href="data:,">
</head>
<body>
<header class="top"><a class="brand" href="${urls.overview()}">backproof</a>
<nav><ul><li><a href="${urls.overview()}">overview</a></li>${nav}</ul></nav></header>
<main>
<h1>${input.title}</h1>
${input.body}
</main>
<footer>backproof ${VERSION} · read-only · <a href="${urls.apiJobs()}">/api/jobs</a> · <a href="${urls.metrics()}">/metrics</a></footer>
</body>
</html>
`;
}
