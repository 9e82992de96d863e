// A run's steps on a time line, as inline SVG: one bar per step, from its start to its end within
// the run, coloured by status through stylesheet classes. Instant steps get a minimal width.
import { type Html, html } from '../html.js';

export interface TimelineStep {
  name: string;
  status: string;
  startedAt: string;
  finishedAt: string;
  /** Target or component, shown after the name. */
  where?: string;
}

const WIDTH = 640;
const LABEL = 200;
const ROW = 18;

export function renderTimeline(
  steps: readonly TimelineStep[],
  runStartedAt: string,
  runFinishedAt: string | null,
): Html {
  if (steps.length === 0) return html``;
  const start = Date.parse(runStartedAt);
  const ends = steps.map((s) => Date.parse(s.finishedAt)).filter(Number.isFinite);
  const end = Math.max(runFinishedAt ? Date.parse(runFinishedAt) : start, ...ends, start + 1);
  const span = end - start;
  const x = (iso: string): number => {
    const t = Date.parse(iso);
    const offset = Number.isFinite(t) ? Math.min(Math.max(t - start, 0), span) : 0;
    return LABEL + (offset / span) * (WIDTH - LABEL - 8);
  };
  const height = steps.length * ROW + 6;
  const bars = steps.map((s, i) => {
    const left = x(s.startedAt);
    const width = Math.max(2, x(s.finishedAt) - left);
    const y = i * ROW + 3;
    const label = s.where ? `${s.name} (${s.where})` : s.name;
    return html`<g class="bar bar-${s.status}"><text x="${LABEL - 6}" y="${y + 12}" text-anchor="end">${truncate(label, 30)}</text><rect x="${n(left)}" y="${y}" width="${n(width)}" height="${ROW - 6}"><title>${label}: ${s.status}, ${s.startedAt} → ${s.finishedAt}</title></rect></g>`;
  });
  return html`<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${height}" role="img" aria-label="step timeline">${bars}</svg>`;
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function n(value: number): string {
  return (Math.round(value * 10) / 10).toFixed(1);
}
