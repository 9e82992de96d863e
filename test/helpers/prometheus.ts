// A strict parser of the Prometheus text exposition format (0.0.4), for tests: it throws on
// anything a scraper could misread, rather than skipping it. Stricter than Prometheus itself:
// no blank lines, HELP and TYPE once per family and before its samples, samples of a family
// together, no duplicate series, no exponent in values, and a final newline.

export interface Series {
  labels: Record<string, string>;
  /** As written. */
  value: string;
}

export interface MetricFamily {
  name: string;
  help: string | undefined;
  type: string | undefined;
  samples: Series[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
/** A plain decimal (no exponent), or NaN/Inf. */
const VALUE = /^(?:[+-]?\d+(?:\.\d+)?|NaN|[+-]Inf)$/;

export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  if (text !== '' && !text.endsWith('\n')) throw new Error('the exposition does not end with a newline');
  const families = new Map<string, MetricFamily>();
  const closed = new Set<string>();
  let current: string | undefined;
  const seen = new Set<string>();
  const family = (name: string, at: string): MetricFamily => {
    if (!METRIC_NAME.test(name)) throw new Error(`${at}: ${JSON.stringify(name)} is not a metric name`);
    if (name !== current) {
      if (closed.has(name)) throw new Error(`${at}: family ${name} is split into two groups`);
      if (current !== undefined) closed.add(current);
      current = name;
    }
    let f = families.get(name);
    if (!f) {
      f = { name, help: undefined, type: undefined, samples: [] };
      families.set(name, f);
    }
    return f;
  };
  const lines = text === '' ? [] : text.slice(0, -1).split('\n');
  lines.forEach((line, index) => {
    const at = `line ${index + 1}`;
    if (line === '') throw new Error(`${at}: blank line`);
    if (line.startsWith('#')) {
      const match = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!match) throw new Error(`${at}: a comment that is neither HELP nor TYPE: ${line}`);
      const [, kind, name = '', rest = ''] = match;
      const f = family(name, at);
      if (f.samples.length > 0) throw new Error(`${at}: ${kind} of ${name} after its samples`);
      if (kind === 'HELP') {
        if (f.help !== undefined) throw new Error(`${at}: second HELP for ${name}`);
        f.help = unescapeText(rest, false, at);
      } else {
        if (f.type !== undefined) throw new Error(`${at}: second TYPE for ${name}`);
        if (!TYPES.has(rest)) throw new Error(`${at}: unknown type ${rest}`);
        f.type = rest;
      }
      return;
    }
    const nameMatch = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (!nameMatch?.[1]) throw new Error(`${at}: no metric name: ${line}`);
    const name = nameMatch[1];
    let pos = name.length;
    const labels: Record<string, string> = {};
    if (line[pos] === '{') {
      pos++;
      while (line[pos] !== '}') {
        const labelMatch = /^([^=]*)="/.exec(line.slice(pos));
        if (!labelMatch) throw new Error(`${at}: bad label at column ${pos + 1}: ${line}`);
        const labelName = labelMatch[1] ?? '';
        if (!LABEL_NAME.test(labelName)) throw new Error(`${at}: ${JSON.stringify(labelName)} is not a label name`);
        if (labelName in labels) throw new Error(`${at}: label ${labelName} twice`);
        pos += labelMatch[0].length;
        let raw = '';
        while (line[pos] !== '"') {
          if (pos >= line.length) throw new Error(`${at}: unterminated label value`);
          if (line[pos] === '\\') {
            raw += line.slice(pos, pos + 2);
            pos += 2;
          } else {
            raw += line[pos];
            pos++;
          }
        }
        labels[labelName] = unescapeText(raw, true, at);
        pos++; // closing quote
        if (line[pos] === ',') pos++;
        else if (line[pos] !== '}') throw new Error(`${at}: expected , or } at column ${pos + 1}: ${line}`);
      }
      pos++;
    }
    if (line[pos] !== ' ') throw new Error(`${at}: expected one space before the value: ${line}`);
    const parts = line.slice(pos + 1).split(' ');
    const [value = '', timestamp] = parts;
    if (parts.length > 2 || !VALUE.test(value)) throw new Error(`${at}: ${JSON.stringify(value)} is not a plain value`);
    if (timestamp !== undefined && !/^-?\d+$/.test(timestamp)) throw new Error(`${at}: bad timestamp ${timestamp}`);
    const f = family(name, at);
    if (f.type === undefined) throw new Error(`${at}: sample of ${name} before its TYPE`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`${at}: duplicate series ${line}`);
    seen.add(key);
    f.samples.push({ labels, value });
  });
  return families;
}

/** Label values may escape \\, \" and \n; HELP text \\ and \n. Anything else is an error. */
function unescapeText(raw: string, label: boolean, at: string): string {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === '\n') throw new Error(`${at}: raw line feed`);
    if (label && c === '"') throw new Error(`${at}: unescaped quote in a label value`);
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = raw[++i];
    if (next === '\\') out += '\\';
    else if (next === 'n') out += '\n';
    else if (label && next === '"') out += '"';
    else throw new Error(`${at}: bad escape \\${next ?? ''}`);
  }
  return out;
}

/** The one sample of `name` whose labels include `labels`; throws when there is not exactly one. */
export function sampleOf(
  families: Map<string, MetricFamily>,
  name: string,
  labels: Record<string, string> = {},
): string {
  const matches = (families.get(name)?.samples ?? []).filter((s) =>
    Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (matches.length !== 1) throw new Error(`${matches.length} samples of ${name} ${JSON.stringify(labels)}`);
  return (matches[0] as Series).value;
}
