// Server-side SVG charts: points where the data says, marks on anomalies, integer axes, escaped
// names, and the job's charts built from its history (sizes, rows per table, durations).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jobCharts, MAX_TABLE_CHARTS } from '../../src/dashboard/charts/job-charts.js';
import { type ChartSpec, niceScale, renderChart } from '../../src/dashboard/charts/line-chart.js';
import { renderTimeline } from '../../src/dashboard/charts/step-timeline.js';
import type { ChartHistory } from '../../src/dashboard/history.js';
import { formatDuration } from '../../src/lib/units.js';
import type { ComponentHistoryRow, StoredFinding } from '../../src/state/store.js';

const at = (day: number): string => new Date(Date.UTC(2025, 10, 1 + day, 3, 0, 0)).toISOString();

/** The circles of class `cls` as { cx, cy, value }. */
function circles(svg: string, cls: string): { cx: number; cy: number; value: number | null }[] {
  return [...svg.matchAll(/<circle class="([^"]*)" cx="([^"]+)" cy="([^"]+)"[^>]*?(?:data-value="(\d+)")?>/g)]
    .filter((m) => (m[1] ?? '').split(' ').includes(cls))
    .map((m) => ({ cx: Number(m[2]), cy: Number(m[3]), value: m[4] === undefined ? null : Number(m[4]) }));
}

describe('renderChart', () => {
  const spec: ChartSpec = {
    id: 'sizes',
    title: 'app: size per set',
    unit: 'bytes',
    series: [
      {
        name: 'stored',
        points: [
          { at: at(0), value: 1_000, label: 'set a' },
          { at: at(1), value: 3_000, label: 'set b' },
          { at: at(3), value: 500, label: 'set c', mark: 'failure: dropped by 83%' },
        ],
      },
      { name: 'raw', points: [{ at: at(0), value: 9_000, label: 'set a' }] },
    ],
  };

  it('draws one circle per point, in time order left to right, higher values higher up', () => {
    const svg = renderChart(spec).text;
    const stored = circles(svg, 'series-0');
    assert.equal(stored.length, 3);
    assert.equal(circles(svg, 'point').length, 4);
    const [a, b, c] = stored as [(typeof stored)[0], (typeof stored)[0], (typeof stored)[0]];
    assert.ok(a.cx < b.cx && b.cx < c.cx, 'time runs left to right');
    assert.ok(b.cx - a.cx < c.cx - b.cx, 'spacing follows time (1 day, then 2 days)');
    assert.ok(b.cy < a.cy && a.cy < c.cy, 'y grows upwards: 3000 above 1000 above 500');
    assert.deepEqual(
      stored.map((p) => p.value),
      [1000, 3000, 500],
    );
    assert.match(svg, /<polyline class="line series-0" points="[\d. ,]+"\/>/);
    assert.doesNotMatch(svg, /<polyline class="line series-1"/, 'a lone point needs no line');
  });

  it('rings a marked point and says why in its tooltip and the legend', () => {
    const svg = renderChart(spec).text;
    const marks = circles(svg, 'mark');
    assert.equal(marks.length, 1);
    const marked = circles(svg, 'series-0')[2];
    assert.deepEqual([marks[0]?.cx, marks[0]?.cy], [marked?.cx, marked?.cy]);
    assert.match(svg, /<title>failure: dropped by 83%<\/title>/);
    assert.match(svg, /1 marked: needs attention/);
  });

  it('labels the y axis in the unit with integer ticks, and never prints an exponent', () => {
    const huge: ChartSpec = {
      id: 'huge',
      title: 'huge',
      unit: 'bytes',
      series: [
        {
          name: 'stored',
          points: [
            { at: at(0), value: 0, label: 'a' },
            { at: '2025-11-01T03:00:00.001Z', value: 10 ** 15, label: 'b' },
          ],
        },
      ],
    };
    for (const chart of [spec, huge]) {
      const svg = renderChart(chart).text;
      assert.doesNotMatch(svg, /\d[eE][+-]?\d/, 'no float exponent anywhere');
      for (const value of svg.matchAll(/ (?:cx|cy|x|y|x1|x2|y1|y2)="([^"]+)"/g)) {
        assert.match(value[1] ?? '', /^-?\d+(\.\d)?$/, `coordinate ${value[1]}`);
      }
    }
    assert.match(renderChart(huge).text, />1\.0 PB</);
    assert.match(renderChart(spec).text, />10\.0 kB</, 'the axis top is a round step above 9000');
  });

  it('niceScale: steps of 1, 2 or 5 × 10^k, at most 5 intervals, the top at or above the highest value', () => {
    for (const highest of [
      0,
      1,
      2,
      5,
      7,
      9,
      10,
      11,
      99,
      101,
      999_999,
      2 ** 40,
      10 ** 15,
      Number.MAX_SAFE_INTEGER / 16,
    ]) {
      const { step, top } = niceScale(highest);
      assert.ok(Number.isSafeInteger(step) && Number.isSafeInteger(top), `${highest}: ${step} ${top}`);
      assert.match(String(step), /^[125]0*$/, `${highest}: step ${step}`);
      assert.ok(top >= highest && top >= step, `${highest}: top ${top}`);
      assert.ok(top / step <= 5, `${highest}: ${top / step} intervals`);
    }
  });

  it('niceScale for durations: clock steps from a second up (no 16m40s ticks), whole days beyond', () => {
    const clockSteps = [1, 2, 5, 10, 15, 30]
      .flatMap((n) => [n * 1000, n * 60_000])
      .concat([1, 2, 3, 6, 12, 24].map((n) => n * 3_600_000));
    for (const highest of [
      0,
      700,
      4_000,
      59_000,
      61_000,
      1_000_000,
      3_600_000,
      5 * 3_600_000,
      86_400_000 * 9,
      86_400_000 * 400,
    ]) {
      const { step, top } = niceScale(highest, 'duration');
      assert.ok(top >= highest && top / step <= 5, `${highest}: ${step} ${top}`);
      const clockLike =
        step < 1000 ? /^[125]0*$/.test(String(step)) : clockSteps.includes(step) || step % 86_400_000 === 0;
      assert.ok(clockLike, `${highest}: step ${formatDuration(step)}`);
    }
    assert.equal(niceScale(1_000_000, 'duration').step, 300_000, '16m40s: ticks every 5 minutes');
    assert.deepEqual(niceScale(3_600_000, 'duration'), { step: 900_000, top: 3_600_000 });
  });

  it('draws a threshold line with its label', () => {
    const svg = renderChart({
      id: 'd',
      title: 'drills',
      unit: 'duration',
      series: [{ name: 'drill', points: [{ at: at(0), value: 1_000, label: 'drill #1' }] }],
      threshold: { value: 3_600_000, label: 'RTO objective' },
    }).text;
    assert.match(svg, /<line class="threshold"[^>]*><title>RTO objective: 1h00m<\/title>/);
    assert.equal(circles(svg, 'point').length, 1);
  });

  it('says "no data yet" and draws nothing when there is no point', () => {
    const out = renderChart({ id: 'e', title: 'empty', unit: 'count', series: [{ name: 'rows', points: [] }] }).text;
    assert.match(out, /no data yet/);
    assert.doesNotMatch(out, /<svg/);
  });

  it('escapes titles, series names, labels and marks from data', () => {
    const evil = '<script>window.__x=1</script>';
    const out = renderChart({
      id: 'x',
      title: `rows in ${evil}`,
      unit: 'count',
      series: [{ name: evil, points: [{ at: at(0), value: 1, label: evil, mark: evil }] }],
    }).text;
    assert.doesNotMatch(out, /<script/);
    assert.match(out, /rows in &lt;script&gt;window.__x=1&lt;\/script&gt;/);
    assert.doesNotMatch(out, /style=/, 'no inline style: the CSP forbids it');
  });
});

function row(day: number, over: Partial<ComponentHistoryRow> = {}): ComponentHistoryRow {
  return {
    setId: `set-${day}`,
    runId: day + 1,
    startedAt: at(day),
    finishedAt: at(day),
    durationMs: 1000,
    runStatus: 'success',
    suspect: false,
    component: 'main.app',
    kind: 'mariadb',
    bytes: 1000 + day,
    rawBytes: 5000 + day,
    files: null,
    tables: { 'app.users': 100 + day, 'app.orders': 10 },
    ...over,
  };
}

function finding(over: Partial<StoredFinding>): StoredFinding {
  return {
    id: 'main.app:bytes',
    component: 'main.app',
    metric: 'bytes',
    level: 'failure',
    baseline: 1000,
    value: 100,
    baselineSets: 3,
    changeBp: -9000,
    message: 'main.app stored size dropped by 90%',
    job: 'shop',
    runId: 4,
    setId: 'set-3',
    setStartedAt: at(3),
    raisedAt: at(3),
    ...over,
  };
}

describe('jobCharts', () => {
  const history: ChartHistory = {
    components: [
      row(0),
      row(1),
      row(2),
      // set-3 lost app.orders: the vanished table is drawn at 0, marked
      row(3, { bytes: 100, suspect: true, tables: { 'app.users': 103 } }),
      row(0, { component: 'app', kind: 'files', files: 7, tables: null }),
      row(3, { component: 'app', kind: 'files', files: 2, tables: null }),
    ],
    backups: [
      { runId: 1, startedAt: at(0), durationMs: 1200, status: 'success' },
      { runId: 9, startedAt: at(4), durationMs: 300, status: 'failure' },
    ],
    drills: [{ runId: 5, startedAt: at(2), durationMs: 9000, rtoMs: 8000, status: 'success' }],
    findings: [
      finding({}),
      finding({
        id: 'main.app:table-vanished:app.orders',
        metric: 'table-vanished',
        table: 'app.orders',
        message: 'table app.orders vanished',
      }),
      finding({ id: 'app:files', component: 'app', metric: 'files', level: 'warning', message: 'files dropped' }),
    ],
  };
  const { charts, omittedTables } = jobCharts(history, { rtoMs: 3_600_000 });
  const byTitle = (title: string) => charts.find((c) => c.title === title);

  it('charts every component size (stored and raw) per set, marking the anomaly and the suspect set', () => {
    const sizes = byTitle('main.app: size per set');
    assert.ok(sizes, charts.map((c) => c.title).join(', '));
    const [stored, raw] = sizes.series;
    assert.deepEqual(
      stored?.points.map((p) => p.value),
      [1000, 1001, 1002, 100],
    );
    assert.match(stored?.points[3]?.mark ?? '', /failure: main\.app stored size dropped by 90%/);
    assert.equal(raw?.points[3]?.mark, 'suspect set', 'raw size had no finding, but the set is suspect');
    assert.equal(stored?.points[0]?.mark, undefined);
  });

  it('charts files per set for a files component, with its finding', () => {
    const files = byTitle('app: files per set');
    assert.deepEqual(
      files?.series[0]?.points.map((p) => [p.value, p.mark]),
      [
        [7, undefined],
        [2, 'warning: files dropped'],
      ],
    );
    assert.equal(byTitle('main.app: files per set'), undefined, 'a database component has no file count');
  });

  it('charts rows per table; a vanished table appears at 0 with its finding', () => {
    const users = byTitle('main.app: rows in app.users');
    assert.deepEqual(
      users?.series[0]?.points.map((p) => p.value),
      [100, 101, 102, 103],
    );
    const orders = byTitle('main.app: rows in app.orders');
    assert.deepEqual(
      orders?.series[0]?.points.map((p) => [p.value, p.mark]),
      [
        [10, undefined],
        [10, undefined],
        [10, undefined],
        [0, 'failure: table app.orders vanished'],
      ],
    );
    assert.deepEqual(omittedTables, []);
  });

  it('charts backup durations (a failed run marked) and drills against the RTO objective', () => {
    const backups = byTitle('Backup runs: duration');
    assert.deepEqual(
      backups?.series[0]?.points.map((p) => [p.value, p.mark]),
      [
        [1200, undefined],
        [300, 'run failure'],
      ],
    );
    const drills = byTitle('Drills: duration and measured RTO');
    assert.deepEqual(drills?.threshold, { value: 3_600_000, label: 'RTO objective' });
    assert.deepEqual(
      drills?.series.map((s) => s.points.map((p) => p.value)),
      [[9000], [8000]],
    );
  });

  it(`draws at most ${MAX_TABLE_CHARTS} tables, the biggest, and lists the others`, () => {
    const tables = Object.fromEntries(Array.from({ length: MAX_TABLE_CHARTS + 3 }, (_, i) => [`t${i}`, i]));
    const many = jobCharts(
      { components: [row(0, { tables })], backups: [], drills: [], findings: [] },
      { rtoMs: null },
    );
    assert.equal(many.charts.filter((c) => c.title.includes(': rows in ')).length, MAX_TABLE_CHARTS);
    assert.deepEqual(many.omittedTables.sort(), ['main.app: t0', 'main.app: t1', 'main.app: t2']);
    assert.equal(many.charts.find((c) => c.id === 'drill-duration')?.threshold, undefined, 'no objective, no line');
  });
});

describe('renderTimeline', () => {
  it('draws one bar per step inside the run, coloured by status, wider for longer steps', () => {
    const svg = renderTimeline(
      [
        { name: 'preflight', status: 'ok', startedAt: at(0), finishedAt: at(0) },
        {
          name: 'component',
          where: '<b>app</b>',
          status: 'failed',
          startedAt: at(0),
          finishedAt: '2025-11-01T03:00:30.000Z',
        },
      ],
      at(0),
      '2025-11-01T03:01:00.000Z',
    ).text;
    const bars = [...svg.matchAll(/<g class="bar bar-(\w+)">.*?<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"/g)];
    assert.deepEqual(
      bars.map((b) => b[1]),
      ['ok', 'failed'],
    );
    const widths = bars.map((b) => Number(b[3]));
    assert.ok((widths[0] ?? 0) >= 2 && (widths[1] ?? 0) > (widths[0] ?? 0) * 10, widths.join(' '));
    assert.match(svg, /component \(&lt;b&gt;app&lt;\/b&gt;\)/);
    assert.equal(renderTimeline([], at(0), null).text, '');
  });
});
