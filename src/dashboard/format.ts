// Small display pieces shared by the pages: times (UTC in the data, local on screen), sizes,
// durations, health lights and status badges. Everything goes through `html`, so it is escaped.
import { formatBytes, formatCount, formatDuration } from '../lib/units.js';
import { type Html, html } from './html.js';

/** Local time for humans; the UTC ISO time stays in `datetime` and the tooltip. */
export function timeHtml(iso: string | null | undefined): Html {
  if (!iso) return html`<span class="none">—</span>`;
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return html`${iso}`;
  const pad = (n: number) => String(n).padStart(2, '0');
  const local =
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  return html`<time datetime="${iso}" title="${iso}">${local}</time>`;
}

export function bytesText(bytes: number | null | undefined): string {
  return typeof bytes === 'number' && Number.isSafeInteger(bytes) ? formatBytes(bytes) : '—';
}

export function countText(n: number | null | undefined): string {
  return typeof n === 'number' && Number.isSafeInteger(n) ? formatCount(n) : '—';
}

export function durationText(ms: number | null | undefined): string {
  return typeof ms === 'number' && Number.isFinite(ms) ? formatDuration(Math.max(0, Math.round(ms))) : '—';
}

/** Milliseconds between two UTC ISO times, or null when either is missing. */
export function durationBetween(startedAt: string, finishedAt: string | null): number | null {
  if (!finishedAt) return null;
  const ms = Date.parse(finishedAt) - Date.parse(startedAt);
  return Number.isFinite(ms) ? Math.max(0, ms) : null;
}

export type Light = 'ok' | 'warn' | 'bad' | 'unknown';

/** A health light with its word (colour is never the only signal). */
export function lightHtml(light: Light, word: string): Html {
  return html`<span class="light light-${light}" data-light="${light}"><span class="dot" aria-hidden="true"></span>${word}</span>`;
}

/** A run or step status as a badge: success/ok green, warning amber, failure red, unfinished grey. */
export function statusHtml(status: string | null): Html {
  const word = status ?? 'unfinished';
  const light: Light =
    status === 'success' || status === 'ok' || status === 'committed'
      ? 'ok'
      : status === 'warning' || status === 'skipped'
        ? 'warn'
        : status === 'failure' || status === 'failed' || status === 'abandoned'
          ? 'bad'
          : 'unknown';
  return html`<span class="badge badge-${light}" data-status="${word}">${word}</span>`;
}

/** Evidence as indented JSON text (the caller redacts it first). */
export function evidenceHtml(evidence: unknown): Html {
  if (evidence === null || evidence === undefined) return html``;
  return html`<pre class="evidence">${JSON.stringify(evidence, null, 2)}</pre>`;
}
