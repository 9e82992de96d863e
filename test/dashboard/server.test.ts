// The dashboard's HTTP side in process, over a real socket, against a state database seeded with a
// failed run (hostile names, a secret in its evidence), a successful run and a drill: what each page
// and JSON document says, the security headers, who may ask and how, and that it never writes.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadDashboardJobs } from '../../src/dashboard/jobs.js';
import { createDashboardHandler, SECURITY_HEADERS } from '../../src/dashboard/server.js';
import { clearSecrets, registerSecret } from '../../src/lib/redact.js';
import { openStateDb } from '../../src/state/store.js';

const SECRET = 'hunter2-very-secret-password';
const EVIL = '<script>window.__xss=1</script>';
const at = (s: number) => new Date(Date.UTC(2025, 10, 4, 3, 0, s)).toISOString();

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw request, so the Host header can be anything. */
function ask(url: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const yaml = (job: string, dir: string, stateDir: string, extra = '') =>
  [
    `job: ${job}`,
    `stateDir: ${stateDir}`,
    `targets: [{ name: disk, type: local, path: ${join(dir, 'target')} }]`,
    `sources: [{ name: app, type: files, paths: [${join(dir, 'app')}] }]`,
    extra,
    '',
  ].join('\n');

describe('dashboard over HTTP', () => {
  let dir: string;
  let stateDir: string;
  let neverRanStateDir: string;
  const servers: Server[] = [];
  let base: string;
  let failedRunId: number;
  let goodRunId: number;
  const controller = new AbortController();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-dash-http-'));
    stateDir = join(dir, 'state');
    neverRanStateDir = join(dir, 'never-ran-state');
    await mkdir(join(dir, 'target'));
    await mkdir(join(dir, 'configs'));
    await writeFile(join(dir, 'configs', 'blog.yml'), yaml('blog', dir, stateDir));
    await writeFile(
      join(dir, 'configs', 'shop.yml'),
      yaml('shop', dir, stateDir, 'objectives: { rto: 1h }\ndrill: {}'),
    );
    await writeFile(join(dir, 'configs', 'wiki.yml'), yaml('wiki', dir, neverRanStateDir));

    const state = openStateDb(stateDir);
    failedRunId = state.startRun({ job: 'blog', command: 'backup', startedAt: at(0), pid: 1, host: 'web1' });
    state.recordStep(failedRunId, { name: 'preflight', status: 'ok', startedAt: at(0), finishedAt: at(1) });
    state.recordStep(failedRunId, {
      name: 'component',
      component: `app${EVIL}`,
      status: 'failed',
      startedAt: at(1),
      finishedAt: at(3),
      message: `cannot read /srv/${EVIL}/index.php`,
      // Written unredacted on purpose: the dashboard redacts again.
      evidence: { stderr: `dump: password=${SECRET} rejected`, path: `/srv/${EVIL}` },
    });
    state.finishRun(failedRunId, {
      status: 'failure',
      exitCode: 1,
      finishedAt: at(4),
      bytes: 0,
      report: { failures: [{ step: 'component', message: 'cannot read' }] },
    });
    goodRunId = state.startRun({ job: 'shop', command: 'backup', startedAt: at(10), pid: 2, host: 'web1' });
    state.recordStep(goodRunId, {
      name: 'commit',
      target: 'disk',
      status: 'ok',
      startedAt: at(10),
      finishedAt: at(12),
    });
    state.recordComponent(goodRunId, {
      target: 'disk',
      setId: 'set-1',
      name: 'db',
      kind: 'sqlite',
      object: 'db.sqlite.zst',
      bytes: 200,
      sha256: 'a'.repeat(64),
      rawBytes: 12_288,
      rawSha256: 'b'.repeat(64),
      tables: { [`main.${EVIL}`]: 2, 'main.users': 1 },
    });
    state.finishRun(goodRunId, {
      status: 'success',
      exitCode: 0,
      finishedAt: at(12),
      bytes: 200,
      report: { setId: 'set-1', rawBytes: 12_288 },
    });
    const drill = state.startRun({ job: 'shop', command: 'drill', startedAt: at(20), pid: 3, host: 'web1' });
    state.finishRun(drill, {
      status: 'success',
      exitCode: 0,
      finishedAt: at(22),
      bytes: 0,
      report: {
        setId: 'set-1',
        target: 'disk',
        rtoMs: 1500,
        rtoObjectiveMs: 3_600_000,
        status: 'success',
        components: [
          {
            name: 'db',
            kind: 'sqlite',
            restoredAs: 'sqlite',
            checks: [{ check: 'rows', ok: true, detail: `2 tables, rows match (${EVIL})` }],
            warnings: [],
          },
        ],
        problems: [],
        warnings: [],
      },
    });
    state.close();

    registerSecret(SECRET);
    const jobs = await loadDashboardJobs([join(dir, 'configs')], dir);
    const server = createServer(createDashboardHandler({ jobs, signal: controller.signal }));
    servers.push(server);
    base = await listen(server);
  });

  after(async () => {
    controller.abort();
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    clearSecrets();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers every page, document and error with the security headers', async () => {
    for (const path of [
      '/',
      '/assets/dashboard.css',
      '/api/jobs',
      '/metrics',
      '/nowhere',
      '/api/nowhere',
      '/jobs/x/runs',
    ]) {
      const answer = await ask(`${base}${path}`);
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
        assert.equal(answer.headers[name], value, `${path}: ${name}`);
      }
    }
    const csp = SECURITY_HEADERS['content-security-policy'] ?? '';
    for (const part of [
      "default-src 'none'",
      "style-src 'self'",
      "img-src 'self' data:",
      "form-action 'none'",
      "frame-ancestors 'none'",
      "base-uri 'none'",
    ]) {
      assert.ok(csp.includes(part), part);
    }
    assert.equal(SECURITY_HEADERS['x-content-type-options'], 'nosniff');
    assert.equal(SECURITY_HEADERS['cache-control'], 'no-store');
    assert.equal(SECURITY_HEADERS['referrer-policy'], 'no-referrer');
  });

  it('shows each job with its health, and the failed job with its failing step and its evidence, redacted and escaped', async () => {
    const { status, body, headers } = await ask(`${base}/`);
    assert.equal(status, 200);
    assert.match(String(headers['content-type']), /^text\/html; charset=utf-8/);
    assert.match(body, /<section class="job" data-job="blog" data-health="unhealthy">/);
    assert.match(body, /<section class="job" data-job="wiki" data-health="unhealthy">/);
    const blog = body.slice(body.indexOf('data-job="blog"'), body.indexOf('data-job="shop"'));
    assert.match(
      blog,
      new RegExp(`<h3>Last failure: <a href="/jobs/blog/runs/${failedRunId}">run #${failedRunId}</a>`),
    );
    assert.match(blog, /<li class="step step-failed" data-step="component">/);
    assert.ok(blog.includes('cannot read /srv/&lt;script&gt;window.__xss=1&lt;/script&gt;/index.php'), blog);
    assert.ok(blog.includes('password=*** rejected'), 'the secret in the evidence is masked');
    assert.ok(!body.includes(SECRET));
    assert.doesNotMatch(body, /<script/i, 'no script at all, and no name from data became one');
    assert.doesNotMatch(body, /\sstyle=/, 'no inline style: the CSP would block it');
  });

  it('shows a run with its step timeline, evidence and rows per table; the JSON says the same, redacted', async () => {
    const page = await ask(`${base}/jobs/blog/runs/${failedRunId}`);
    assert.equal(page.status, 200);
    assert.match(page.body, /<svg class="timeline"/);
    assert.match(page.body, /<g class="bar bar-failed">/);
    assert.match(page.body, /<details open><summary>evidence<\/summary><pre class="evidence">/);
    assert.ok(!page.body.includes(SECRET) && page.body.includes('password=***'));
    assert.doesNotMatch(page.body, /<script/i);

    const shop = await ask(`${base}/jobs/shop/runs/${goodRunId}`);
    assert.ok(shop.body.includes('<code>main.&lt;script&gt;window.__xss=1&lt;/script&gt;</code>: 2 rows'));

    const json = await ask(`${base}/api/jobs/blog/runs/${failedRunId}`);
    assert.equal(json.status, 200);
    assert.match(String(json.headers['content-type']), /^application\/json/);
    const document = JSON.parse(json.body) as {
      run: { steps: { status: string; evidence: { stderr: string } | null }[] };
    };
    assert.equal(document.run.steps[1]?.status, 'failed');
    assert.equal(document.run.steps[1]?.evidence?.stderr, 'dump: password=*** rejected');
  });

  it('answers 404 for an unknown job, a run of another job and a malformed run number or path', async () => {
    assert.equal((await ask(`${base}/jobs/nope/runs`)).status, 404);
    assert.equal((await ask(`${base}/jobs/shop/runs/${failedRunId}`)).status, 404, 'run of blog under shop');
    assert.equal((await ask(`${base}/jobs/shop/runs/1e3`)).status, 404);
    assert.equal((await ask(`${base}/jobs/%E0%A4%A/runs`)).status, 404);
    const api = await ask(`${base}/api/jobs/shop/runs/99999`);
    assert.equal(api.status, 404);
    assert.match(JSON.parse(api.body).error.message, /job shop has no run #99999/);
    const evil = await ask(`${base}/jobs/${encodeURIComponent(EVIL)}/runs`);
    assert.equal(evil.status, 404);
    assert.ok(evil.body.includes('&lt;script&gt;') && !/<script/i.test(evil.body), 'the unknown name is escaped');
  });

  it('lists drills with what they checked, and draws charts with their points', async () => {
    const drills = await ask(`${base}/jobs/shop/drills`);
    assert.match(
      drills.body,
      /<li class="check check-ok">.*<strong>rows<\/strong>: 2 tables, rows match \(&lt;script&gt;/,
    );
    assert.match(drills.body, /measured RTO<\/dt><dd>1\.5s <span class="objective">\(objective 1h00m\)/);
    const charts = await ask(`${base}/jobs/shop/charts`);
    assert.equal(
      (charts.body.match(/<circle class="point/g) ?? []).length,
      7,
      'size 2, rows 2, backup 1, drill and its RTO 2',
    );
    const data = JSON.parse((await ask(`${base}/api/jobs/shop/charts`)).body) as { charts: { title: string }[] };
    assert.ok(data.charts.some((c) => c.title === `db: rows in main.${EVIL}`));
  });

  it('serves JSON for all jobs at /api/jobs and metrics for all jobs at /metrics', async () => {
    const jobs = JSON.parse((await ask(`${base}/api/jobs`)).body) as { jobs: { job: string; healthy: boolean }[] };
    assert.deepEqual(
      jobs.jobs.map((j) => [j.job, j.healthy]),
      [
        ['blog', false],
        ['shop', false],
        ['wiki', false],
      ],
    );
    const metrics = await ask(`${base}/metrics`);
    assert.match(String(metrics.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(metrics.body, /backproof_last_run_status\{job="blog",status="failure"\} 1/);
    assert.match(metrics.body, /backproof_last_drill_rto_seconds\{job="shop"\} 1\.5/);
  });

  it('is read-only: POST gets 405, HEAD gets the headers without a body, and a job that never ran creates nothing', async () => {
    const post = await ask(`${base}/`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    const head = await ask(`${base}/api/jobs`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.ok(Number(head.headers['content-length']) > 0);
    for (const path of [
      '/',
      '/jobs/wiki/runs',
      '/jobs/wiki/drills',
      '/jobs/wiki/charts',
      '/api/jobs/wiki/runs',
      '/metrics',
    ]) {
      assert.equal((await ask(`${base}${path}`)).status, 200, path);
    }
    assert.equal(existsSync(neverRanStateDir), false, 'no state dir or database was created for wiki');
  });

  it('without a token, answers only requests addressed to a loopback name (no DNS rebinding)', async () => {
    const port = new URL(base).port;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, '[::1]', 'localhost']) {
      assert.equal((await ask(`${base}/api`, { headers: { host } })).status, 200, host);
    }
    for (const host of [`evil.example:${port}`, 'evil.example', '127.0.0.1.evil.example', '10.0.0.5']) {
      const answer = await ask(`${base}/api`, { headers: { host } });
      assert.equal(answer.status, 421, host);
      assert.match(answer.body, /answers requests for 127\.0\.0\.1, localhost or \[::1\] only/);
    }
  });

  it('with a token, asks for it on every address (401) and takes it as Bearer or as the Basic password', async () => {
    const token = 'a-long-random-token-for-the-test';
    const jobs = await loadDashboardJobs([join(dir, 'configs', 'shop.yml')], dir);
    const server = createServer(createDashboardHandler({ jobs, token, signal: controller.signal }));
    servers.push(server);
    const url = await listen(server);
    for (const path of ['/', '/assets/dashboard.css', '/api/jobs', '/metrics']) {
      const answer = await ask(`${url}${path}`);
      assert.equal(answer.status, 401, path);
      assert.ok(String(answer.headers['www-authenticate']).includes('Basic realm="backproof"'));
      assert.ok(!answer.body.includes('shop'), 'nothing about the jobs before the token');
    }
    const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    assert.equal((await ask(`${url}/`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    assert.equal((await ask(`${url}/`, { headers: { authorization: basic('ops', token) } })).status, 200);
    assert.equal((await ask(`${url}/`, { headers: { authorization: `Bearer ${token}x` } })).status, 401);
    assert.equal((await ask(`${url}/`, { headers: { authorization: basic(token, 'nope') } })).status, 401);
    assert.equal(
      (await ask(`${url}/`, { headers: { authorization: `Bearer ${token}`, host: 'backups.example.com' } })).status,
      200,
      'with a token, any Host may ask',
    );
  });
});
