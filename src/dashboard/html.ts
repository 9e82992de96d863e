// HTML templates that escape by default: every value interpolated into `html`…`` is escaped, unless
// it is already markup made by `html` itself or explicitly marked with `raw` (trusted text only,
// never data). Names from data (jobs, files, tables, messages) can then never become markup.

const MARKUP = Symbol('backproof.markup');

/** Markup that is safe to insert as is: built by `html`, `raw` or `joinHtml`. */
export interface Html {
  readonly [MARKUP]: true;
  readonly text: string;
}

function markup(text: string): Html {
  return { [MARKUP]: true, text };
}

export function isHtml(value: unknown): value is Html {
  return typeof value === 'object' && value !== null && (value as { [MARKUP]?: unknown })[MARKUP] === true;
}

const ENTITIES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text as HTML text or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

/**
 * Interpolation: markup as is; arrays item by item; null, undefined and false as nothing; anything
 * else (strings, numbers) as escaped text.
 */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    out += interpolate(value) + (strings[i + 1] ?? '');
  });
  return markup(out);
}

function interpolate(value: unknown): string {
  if (value === null || value === undefined || value === false) return '';
  if (isHtml(value)) return value.text;
  if (Array.isArray(value)) return value.map(interpolate).join('');
  return escapeHtml(String(value));
}

/** Trusted markup written in this codebase (never data): the one way around escaping. */
export function raw(trusted: string): Html {
  return markup(trusted);
}

export function joinHtml(parts: readonly Html[], separator: Html = markup('')): Html {
  return markup(parts.map((p) => p.text).join(separator.text));
}
