// A line chart as inline SVG, drawn on the server: time across, an integer quantity up, one line
// per series, a circle per point (its tooltip says what it is), a ring around marked points
// (anomalies, failed runs), and an optional threshold line (an objective). No script, no inline
// style (the CSP forbids both): colours come from classes in the dashboard's stylesheet.
import { formatBytes, formatCount, formatDuration } from '../../lib/units.js';
import { type Html, html } from '../html.js';

export type ChartUnit = 'bytes' | 'count' | 'duration';

export interface ChartPoint {
  /** UTC ISO time. */
  at: string;
  /** An integer: bytes, a count or milliseconds. */
  value: number;
  /** What the point is, for its tooltip (e.g. the set id or run number). */
  label: string;
  /** Set when the point needs attention: the finding or failure, in words. */
  mark?: string;
}

export interface ChartSeries {
  name: string;
  points: ChartPoint[];
}

export interface ChartSpec {
  /** Unique on the page; used for the element ids. */
  id: string;
  title: string;
  unit: ChartUnit;
  series: ChartSeries[];
  threshold?: { value: number; label: string };
}

const WIDTH = 640;
const HEIGHT = 220;
const PLOT = { left: 84, right: WIDTH - 16, top: 14, bottom: HEIGHT - 30 };
/** Distinct series colours in the stylesheet (series-0 … series-5); more series reuse them. */
const SERIES_CLASSES = 6;

export function renderChart(spec: ChartSpec): Html {
  const points = spec.series.flatMap((s) => s.points);
  const titleId = `chart-${spec.id}-title`;
  if (points.length === 0) {
    return html`<figure class="chart" data-chart="${spec.id}"><figcaption id="${titleId}">${spec.title}</figcaption><p class="none">no data yet</p></figure>`;
  }
  const times = points.map((p) => Date.parse(p.at)).filter((t) => Number.isFinite(t));
  const minTime = times.length > 0 ? Math.min(...times) : 0;
  const maxTime = times.length > 0 ? Math.max(...times) : 0;
  const x = (at: string): number => {
    const t = Date.parse(at);
    if (!Number.isFinite(t) || maxTime === minTime) return (PLOT.left + PLOT.right) / 2;
    return PLOT.left + ((t - minTime) / (maxTime - minTime)) * (PLOT.right - PLOT.left);
  };
  const highest = Math.max(0, ...points.map((p) => p.value), spec.threshold?.value ?? 0);
  const { step, top } = niceScale(highest, spec.unit);
  const y = (value: number): number => PLOT.bottom - (Math.max(0, value) / top) * (PLOT.bottom - PLOT.top);

  const ticks: Html[] = [];
  for (let value = 0; value <= top; value += step) {
    ticks.push(
      html`<line class="grid" x1="${n(PLOT.left)}" x2="${n(PLOT.right)}" y1="${n(y(value))}" y2="${n(y(value))}"/><text class="tick" x="${n(PLOT.left - 6)}" y="${n(y(value) + 4)}" text-anchor="end">${valueText(spec.unit, value)}</text>`,
    );
  }
  const series = spec.series.map((s, index) => {
    const cls = `series-${index % SERIES_CLASSES}`;
    const sorted = [...s.points].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    const line =
      sorted.length > 1
        ? html`<polyline class="line ${cls}" points="${sorted.map((p) => `${n(x(p.at))},${n(y(p.value))}`).join(' ')}"/>`
        : html``;
    const dots = sorted.map((p) => {
      const tip = `${s.name}: ${valueText(spec.unit, p.value)}, ${p.label}, ${p.at}${p.mark ? ` (${p.mark})` : ''}`;
      const ring = p.mark
        ? html`<circle class="mark" cx="${n(x(p.at))}" cy="${n(y(p.value))}" r="7"><title>${p.mark}</title></circle>`
        : html``;
      return html`${ring}<circle class="point ${cls}" cx="${n(x(p.at))}" cy="${n(y(p.value))}" r="3.5" data-value="${p.value}"><title>${tip}</title></circle>`;
    });
    return html`<g class="series" data-series="${s.name}">${line}${dots}</g>`;
  });
  const threshold = spec.threshold
    ? html`<line class="threshold" x1="${n(PLOT.left)}" x2="${n(PLOT.right)}" y1="${n(y(spec.threshold.value))}" y2="${n(y(spec.threshold.value))}"><title>${spec.threshold.label}: ${valueText(spec.unit, spec.threshold.value)}</title></line>`
    : html``;
  const legend = spec.series.map(
    (s, index) =>
      html`<li><span class="swatch series-${index % SERIES_CLASSES}" aria-hidden="true"></span>${s.name}</li>`,
  );
  const marked = points.filter((p) => p.mark).length;
  return html`<figure class="chart" data-chart="${spec.id}">
<figcaption id="${titleId}">${spec.title}</figcaption>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-labelledby="${titleId}">
${ticks}
<line class="axis" x1="${n(PLOT.left)}" x2="${n(PLOT.right)}" y1="${n(PLOT.bottom)}" y2="${n(PLOT.bottom)}"/>
<text class="tick" x="${n(PLOT.left)}" y="${HEIGHT - 8}" text-anchor="start">${timeLabel(minTime, maxTime - minTime)}</text>
${maxTime !== minTime ? html`<text class="tick" x="${n(PLOT.right)}" y="${HEIGHT - 8}" text-anchor="end">${timeLabel(maxTime, maxTime - minTime)}</text>` : html``}
${threshold}
${series}
</svg>
<ul class="legend">${legend}${spec.threshold ? html`<li><span class="swatch threshold" aria-hidden="true"></span>${spec.threshold.label}</li>` : html``}${marked > 0 ? html`<li><span class="swatch mark" aria-hidden="true"></span>${marked} marked: needs attention</li>` : html``}</ul>
</figure>`;
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
/** Steps a clock reader expects (no 16m40s ticks): under a second, decimal steps of milliseconds. */
const DURATION_STEPS = [
  ...[1, 2, 5, 10, 15, 30].map((n) => n * SECOND),
  ...[1, 2, 5, 10, 15, 30].map((n) => n * MINUTE),
  ...[1, 2, 3, 6, 12, 24].map((n) => n * HOUR),
];

/**
 * An integer step giving at most 5 intervals (1, 2 or 5 × 10^k; for durations of a second or
 * more, clock steps up to a day, then whole days), and the axis top: a multiple of the step at or
 * above the highest value, at least one step.
 */
export function niceScale(highest: number, unit: ChartUnit = 'count'): { step: number; top: number } {
  const rough = Math.max(1, Math.ceil(highest / 5));
  let step: number;
  if (unit === 'duration' && rough > SECOND) {
    step = DURATION_STEPS.find((s) => s >= rough) ?? 24 * HOUR * decimalStep(Math.ceil(rough / (24 * HOUR)));
  } else {
    step = decimalStep(rough);
  }
  return { step, top: Math.max(step, Math.ceil(highest / step) * step) };
}

/** The smallest of 1, 2, 5 × 10^k at or above `rough` (a positive integer). */
function decimalStep(rough: number): number {
  let magnitude = 1;
  while (magnitude * 10 <= rough) magnitude *= 10;
  return [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough) ?? magnitude * 10;
}

/** A coordinate with one decimal, never an exponent (coordinates stay within the view box). */
function n(value: number): string {
  return (Math.round(value * 10) / 10).toFixed(1);
}

function valueText(unit: ChartUnit, value: number): string {
  const integer = Math.round(value);
  if (unit === 'bytes') return formatBytes(integer);
  if (unit === 'duration') return formatDuration(integer);
  return formatCount(integer);
}

/** Local time of an axis end; with seconds when the whole axis spans less than an hour. */
function timeLabel(ms: number, spanMs: number): string {
  const date = new Date(ms);
  const pad = (v: number) => String(v).padStart(2, '0');
  const minutes = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
  return spanMs < 3_600_000 ? `${minutes}:${pad(date.getSeconds())}` : minutes;
}
