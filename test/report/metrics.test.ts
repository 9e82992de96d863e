// The Prometheus exposition: checked by a strict parser (test/helpers/prometheus.ts), from hand-made
// data (escaping, number formats) and from a real state database (what the textfile export reads).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfigText } from '../../src/config/load.js';
import { collectMetrics, escapeLabel, type JobMetrics, renderMetrics } from '../../src/report/metrics.js';
import { openStateDb, type StateDb } from '../../src/state/store.js';
import { parsePrometheusText, sampleOf } from '../helpers/prometheus.js';

function emptyMetrics(job = 'demo'): JobMetrics {
  return {
    job,
    version: '9.9.9',
    objectives: { rpoMs: null, rtoMs: null },
    lastRun: null,
    lastSuccessAt: null,
    targets: [],
    components: [],
    openAnomalies: { warning: 0, failure: 0 },
    lastDrill: null,
    lastSuccessfulDrillAt: null,
    lastVerify: null,
  };
}

describe('the strict exposition parser (so the tests below can fail)', () => {
  const valid = '# HELP a_b Help.\n# TYPE a_b gauge\na_b{x="1"} 2\n';
  it('accepts a valid exposition', () => {
    assert.equal(sampleOf(parsePrometheusText(valid), 'a_b', { x: '1' }), '2');
  });
  for (const [what, text] of [
    ['no final newline', valid.slice(0, -1)],
    ['an unescaped quote in a label value', '# TYPE a gauge\na{x="a"b"} 1\n'],
    ['an unknown escape', '# TYPE a gauge\na{x="a\\tb"} 1\n'],
    ['a sample before TYPE', 'a 1\n# TYPE a gauge\n'],
    ['a second TYPE', '# TYPE a gauge\n# TYPE a gauge\na 1\n'],
    ['an exponent', '# TYPE a gauge\na 2.9094e+08\n'],
    ['a duplicate series', '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n'],
    ['a split family', '# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x="2"} 1\n'],
    ['a blank line', '# TYPE a gauge\n\na 1\n'],
    ['a bad label name', '# TYPE a gauge\na{1x="1"} 1\n'],
  ] as const) {
    it(`rejects ${what}`, () => assert.throws(() => parsePrometheusText(text)));
  }
});

describe('renderMetrics', () => {
  it('escapes label values so any name survives a round trip', () => {
    const hostile = 'a"b\\c\nd}e,f=g';
    const metrics: JobMetrics = {
      ...emptyMetrics(),
      targets: [{ target: hostile, setId: 's', committedAt: '2025-11-04T03:00:00.000Z' }],
      components: [{ target: hostile, component: `${hostile}2`, bytes: 1, rawBytes: 2, files: null }],
    };
    const families = parsePrometheusText(renderMetrics(metrics));
    assert.equal(sampleOf(families, 'backproof_component_bytes', { target: hostile, component: `${hostile}2` }), '1');
    assert.equal(escapeLabel(hostile), 'a\\"b\\\\c\\nd}e,f=g');
  });

  it('prints sizes up to 2^53-1 as integers and times as plain decimal seconds', () => {
    const metrics: JobMetrics = {
      ...emptyMetrics(),
      objectives: { rpoMs: 26 * 3600_000, rtoMs: 5 },
      lastRun: {
        status: 'warning',
        exitCode: 3,
        finishedAt: '2025-11-04T03:00:01.500Z',
        durationMs: 1500,
        bytes: Number.MAX_SAFE_INTEGER,
        rawBytes: 10 ** 15,
      },
      lastDrill: { status: 'success', finishedAt: '2025-11-04T05:00:00.000Z', rtoMs: 0 },
    };
    const text = renderMetrics(metrics);
    assert.doesNotMatch(text, /\de[+-]?\d/i);
    const f = parsePrometheusText(text);
    assert.equal(sampleOf(f, 'backproof_last_run_bytes'), '9007199254740991');
    assert.equal(sampleOf(f, 'backproof_last_run_raw_bytes'), '1000000000000000');
    assert.equal(sampleOf(f, 'backproof_last_run_duration_seconds'), '1.5');
    assert.equal(sampleOf(f, 'backproof_last_run_timestamp_seconds'), '1762225201.5');
    assert.equal(sampleOf(f, 'backproof_rpo_seconds'), '93600');
    assert.equal(sampleOf(f, 'backproof_rto_seconds'), '0.005');
    assert.equal(sampleOf(f, 'backproof_last_drill_rto_seconds'), '0');
    assert.equal(sampleOf(f, 'backproof_last_run_status', { status: 'warning' }), '1');
    assert.equal(sampleOf(f, 'backproof_last_run_status', { status: 'success' }), '0');
    assert.equal(sampleOf(f, 'backproof_last_run_exit_code'), '3');
  });

  it('refuses a size that is not a safe integer rather than print an exponent', () => {
    const metrics: JobMetrics = {
      ...emptyMetrics(),
      components: [{ target: 't', component: 'c', bytes: 2 ** 70, rawBytes: 1, files: null }],
    };
    assert.throws(() => renderMetrics(metrics), /not a safe integer/);
  });

  it('names every family backproof_*, with HELP and TYPE gauge once, also across jobs', () => {
    const families = parsePrometheusText(renderMetrics([emptyMetrics('a'), emptyMetrics('b')]));
    assert.ok(families.size > 0);
    for (const family of families.values()) {
      assert.match(family.name, /^backproof_/);
      assert.equal(family.type, 'gauge');
      assert.ok(family.help && family.help.length > 0);
    }
    assert.equal(sampleOf(families, 'backproof_info', { job: 'b' }), '1');
    assert.equal(families.get('backproof_anomalies_open')?.samples.length, 4);
    // Nothing is invented for what never happened.
    assert.equal(families.has('backproof_last_run_status'), false);
    assert.equal(families.has('backproof_last_drill_timestamp_seconds'), false);
  });
});

describe('collectMetrics from a real state database', () => {
  let dir: string;
  let state: StateDb;
  const config = () =>
    parseConfigText(
      `job: shop
stateDir: ${dir}
objectives: { rpo: 26h, rto: 4h }
sources: [{ name: app, type: files, paths: [/srv] }]
targets: [{ name: disk, type: local, path: /backups }, { name: nas, type: local, path: /nas }]
`,
      'test.yml',
      '/',
    );

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-metrics-'));
    state = openStateDb(dir);
    const run = (command: string, startedAt: string) =>
      state.startRun({ job: 'shop', command, startedAt, pid: process.pid, host: 'h' });
    // An older good backup on both targets…
    const good = run('backup', '2025-11-03T03:00:00.000Z');
    for (const target of ['disk', 'nas']) {
      state.recordComponent(good, {
        target,
        setId: 'S1',
        name: 'app',
        kind: 'files',
        object: 'app.tar.zst',
        bytes: 1000,
        sha256: 'a'.repeat(64),
        rawBytes: 5000,
        rawSha256: 'b'.repeat(64),
        files: 42,
      });
      state.setChainHead('shop', target, {
        setId: 'S1',
        manifestSha256: 'c'.repeat(64),
        committedAt: '2025-11-03T03:00:09.000Z',
      });
    }
    state.finishRun(good, {
      status: 'success',
      exitCode: 0,
      finishedAt: '2025-11-03T03:00:10.000Z',
      bytes: 1200,
      report: { rawBytes: 5000 },
    });
    // …a drill and a verify…
    const drill = run('drill', '2025-11-03T07:00:00.000Z');
    state.finishRun(drill, {
      status: 'success',
      exitCode: 0,
      finishedAt: '2025-11-03T07:05:00.000Z',
      bytes: 0,
      report: { rtoMs: 123_456 },
    });
    const verify = run('verify', '2025-11-03T08:00:00.000Z');
    state.finishRun(verify, {
      status: 'failure',
      exitCode: 1,
      finishedAt: '2025-11-03T08:00:30.000Z',
      bytes: 0,
      report: {},
    });
    // …then a newer backup that committed only on disk, with a warning-level anomaly…
    const partial = run('backup', '2025-11-04T03:00:00.000Z');
    state.recordComponent(partial, {
      target: 'disk',
      setId: 'S2',
      name: 'app',
      kind: 'files',
      object: 'app.tar.zst',
      bytes: 700,
      sha256: 'd'.repeat(64),
      rawBytes: 3000,
      rawSha256: 'e'.repeat(64),
      files: 40,
    });
    state.setChainHead('shop', 'disk', {
      setId: 'S2',
      manifestSha256: 'f'.repeat(64),
      committedAt: '2025-11-04T03:00:08.000Z',
    });
    state.recordAnomalyCheck(partial, {
      job: 'shop',
      setId: 'S2',
      setStartedAt: '2025-11-04T03:00:00.000Z',
      checkedAt: '2025-11-04T03:00:07.000Z',
      historySource: 'target disk',
      historySets: 3,
      findings: [
        {
          id: 'app:bytes',
          component: 'app',
          metric: 'bytes',
          level: 'warning',
          baseline: 1000,
          value: 700,
          baselineSets: 3,
          changeBp: -3000,
          message: 'app shrank by 30%',
        },
      ],
    });
    state.finishRun(partial, {
      status: 'warning',
      exitCode: 3,
      finishedAt: '2025-11-04T03:00:12.000Z',
      bytes: 800,
      report: { rawBytes: 3000 },
    });
    // …and a newest one that failed.
    const failed = run('backup', '2025-11-05T03:00:00.000Z');
    state.finishRun(failed, {
      status: 'failure',
      exitCode: 1,
      finishedAt: '2025-11-05T03:00:02.250Z',
      bytes: 0,
      report: {},
    });
  });
  after(async () => {
    state.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reports the newest run, the newest success, each target head and its components, drills and anomalies', () => {
    const metrics = collectMetrics(config(), state);
    const f = parsePrometheusText(renderMetrics(metrics));
    assert.equal(sampleOf(f, 'backproof_last_run_status', { job: 'shop', status: 'failure' }), '1');
    assert.equal(sampleOf(f, 'backproof_last_run_duration_seconds'), '2.25');
    assert.equal(sampleOf(f, 'backproof_last_run_bytes'), '0');
    assert.equal(f.has('backproof_last_run_raw_bytes'), false);
    assert.equal(
      sampleOf(f, 'backproof_last_success_timestamp_seconds'),
      String(Date.parse('2025-11-03T03:00:10Z') / 1000),
    );
    assert.equal(
      sampleOf(f, 'backproof_target_last_commit_timestamp_seconds', { target: 'disk' }),
      String(Date.parse('2025-11-04T03:00:08Z') / 1000),
    );
    assert.equal(
      sampleOf(f, 'backproof_target_last_commit_timestamp_seconds', { target: 'nas' }),
      String(Date.parse('2025-11-03T03:00:09Z') / 1000),
    );
    // Each target's own newest set: S2 on disk, still S1 on nas.
    assert.equal(sampleOf(f, 'backproof_component_bytes', { target: 'disk', component: 'app' }), '700');
    assert.equal(sampleOf(f, 'backproof_component_bytes', { target: 'nas', component: 'app' }), '1000');
    assert.equal(sampleOf(f, 'backproof_component_files', { target: 'nas', component: 'app' }), '42');
    assert.equal(sampleOf(f, 'backproof_component_raw_bytes', { target: 'disk', component: 'app' }), '3000');
    assert.equal(sampleOf(f, 'backproof_anomalies_open', { level: 'warning' }), '1');
    assert.equal(sampleOf(f, 'backproof_anomalies_open', { level: 'failure' }), '0');
    assert.equal(sampleOf(f, 'backproof_last_drill_status', { status: 'success' }), '1');
    assert.equal(sampleOf(f, 'backproof_last_drill_rto_seconds'), '123.456');
    assert.equal(
      sampleOf(f, 'backproof_last_drill_success_timestamp_seconds'),
      String(Date.parse('2025-11-03T07:05:00Z') / 1000),
    );
    assert.equal(sampleOf(f, 'backproof_last_verify_status', { status: 'failure' }), '1');
    assert.equal(sampleOf(f, 'backproof_rpo_seconds'), '93600');
    assert.equal(sampleOf(f, 'backproof_rto_seconds'), '14400');
  });
});
