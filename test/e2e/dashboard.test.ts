// The dashboard in a real headless Chromium (Debian's package, driven by playwright-core): after real
// runs of the built CLI (a job that succeeds twice and drills, a job whose dump command fails),
// `serve` with both configs shows each job's health, a click opens the failed run at its failing
// step with its evidence, charts draw their points, names from data that look like markup stay
// text and never run, and screenshots land in test-artifacts/dashboard/.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { stringify } from 'yaml';
import { makeSandbox, PROJECT_ROOT, runCli, type Sandbox, startCli } from '../helpers/cli.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(PROJECT_ROOT, 'test-artifacts', 'dashboard');
/** Markup in names from data: a table name, and a command's error output. */
const SCRIPT_NAME = '<script>window.__xss=1</script>';

describe('dashboard in Chromium', {
  skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium)`,
}, () => {
  let sandbox: Sandbox;
  let serve: { child: ChildProcess; done: Promise<unknown> } | undefined;
  let base = '';
  let browser: BrowserContext | undefined;
  let profile = '';
  let page: Page;
  const dialogs: string[] = [];
  const consoleErrors: string[] = [];

  before(async () => {
    sandbox = await makeSandbox('bp-dashboard-');
    const app = join(sandbox.dir, 'app');
    await mkdir(app);
    await writeFile(join(app, 'index.php'), '<?php echo 1;\n'.repeat(100));
    const db = join(sandbox.dir, 'shop.sqlite');
    execFileSync('sqlite3', [
      db,
      `CREATE TABLE "${SCRIPT_NAME}" (x); INSERT INTO "${SCRIPT_NAME}" VALUES (1), (2), (3); CREATE TABLE users (id); INSERT INTO users VALUES (1);`,
    ]);
    const common = {
      stateDir: sandbox.stateDir,
      targets: [{ name: 'disk', type: 'local', path: sandbox.targetDir }],
      checks: { minFree: { bytes: 0, percent: '0%' } },
    };
    const shop = join(sandbox.dir, 'shop.yml');
    await writeFile(
      shop,
      stringify({
        job: 'shop',
        ...common,
        objectives: { rpo: '26h', rto: '1h' },
        drill: {},
        sources: [
          { name: 'app', type: 'files', paths: [app] },
          { name: 'db', type: 'sqlite', path: db },
        ],
      }),
    );
    const blog = join(sandbox.dir, 'blog.yml');
    await writeFile(
      blog,
      stringify({
        job: 'blog',
        ...common,
        sources: [
          {
            name: 'site',
            type: 'command',
            command: `echo partial; echo '${SCRIPT_NAME} cannot connect to the database' >&2; exit 3`,
          },
        ],
      }),
    );
    for (const args of [['backup'], ['backup'], ['drill']]) {
      const result = await runCli(['--config', shop, ...args]);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    }
    const failed = await runCli(['--config', blog, 'backup']);
    assert.equal(failed.code, 1, failed.stderr);

    serve = startCli(['serve', shop, blog, '--port', '0']);
    base = await new Promise<string>((resolve, reject) => {
      let stderr = '';
      serve?.child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
        const match = /serving (http:\/\/[^/\s]+)\//.exec(stderr);
        if (match?.[1]) resolve(match[1]);
      });
      serve?.child.on('close', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
    });

    await mkdir(ARTIFACTS, { recursive: true });
    profile = await mkdtemp(join(tmpdir(), 'bp-chromium-'));
    const { chromium } = await import('playwright-core');
    // Playwright passes --user-data-dir itself for a persistent context: a fresh profile per run.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 900 },
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    page.on('response', (response) => {
      if (response.status() >= 400) consoleErrors.push(`${response.status()} ${response.url()}`);
    });
  });

  after(async () => {
    await browser?.close();
    if (serve) {
      serve.child.kill('SIGTERM');
      await serve.done;
    }
    if (profile) await rm(profile, { recursive: true, force: true });
    await sandbox?.cleanup();
  });

  /** Nothing from data ran: no dialog, the flag never set, no script element in the page. */
  async function assertNothingRan(where: string): Promise<void> {
    assert.deepEqual(dialogs, [], `${where}: a dialog opened`);
    assert.equal(await page.evaluate(() => (globalThis as unknown as { __xss?: unknown }).__xss), undefined, where);
    assert.equal(await page.locator('script').count(), 0, `${where}: a script element exists`);
  }

  it('the overview shows the healthy job and the failed one, each with its light', async () => {
    const response = await page.goto(`${base}/`);
    assert.equal(response?.status(), 200);
    assert.match(response?.headers()['content-security-policy'] ?? '', /default-src 'none'/);
    const shop = page.locator('section.job[data-job="shop"]');
    const blog = page.locator('section.job[data-job="blog"]');
    assert.equal(await shop.getAttribute('data-health'), 'healthy');
    assert.equal(await blog.getAttribute('data-health'), 'unhealthy');
    assert.equal(await blog.locator('h2 .light').getAttribute('data-light'), 'bad');
    assert.notEqual(await shop.locator('h2 .light').getAttribute('data-light'), 'bad');
    assert.match((await blog.locator('h2').textContent()) ?? '', /UNHEALTHY/);
    assert.match((await shop.locator('tr[data-target="disk"]').textContent()) ?? '', /re-reading every byte/);
    assert.match((await shop.locator('dl.facts').textContent()) ?? '', /measured RTO .*\(objective 1h00m\)/);
    // The stylesheet loaded under the CSP: the failing light is red.
    const red = await blog
      .locator('h2 .light .dot')
      .evaluate(
        (el) =>
          (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle(el)
            .backgroundColor,
      );
    assert.equal(red, 'rgb(207, 34, 46)');
    await page.screenshot({ path: join(ARTIFACTS, 'overview.png'), fullPage: true });
    await assertNothingRan('overview');
  });

  it('a click on the last failure opens the run at its failing step, with its evidence as text', async () => {
    await page.goto(`${base}/`);
    const failure = page.locator('section.job[data-job="blog"] .failure');
    assert.match((await failure.textContent()) ?? '', /source site: the command exited with code 3/);
    await failure.locator('h3 a').first().click();
    await page.waitForURL(/\/jobs\/blog\/runs\/\d+$/);
    const step = page.locator('li.step-failed[data-step="source"]');
    assert.equal(await step.count(), 1);
    assert.match((await step.locator('p').first().textContent()) ?? '', /failed\s.*source/);
    const evidence = step.locator('pre.evidence');
    assert.ok(await evidence.isVisible(), 'the failed step opens its evidence');
    const text = (await evidence.textContent()) ?? '';
    assert.ok(text.includes(`"stderrTail": "${SCRIPT_NAME} cannot connect to the database\\n"`), text);
    assert.equal(await page.locator('svg.timeline g.bar-failed rect').count(), 1);
    await page.screenshot({ path: join(ARTIFACTS, 'failed-run.png'), fullPage: true });
    await assertNothingRan('failed run');
  });

  it('charts draw their points: sizes per set, rows per table, run and drill durations', async () => {
    await page.goto(`${base}/jobs/shop/charts`);
    const sizes = page.locator('figure.chart', { hasText: 'db: size per set' });
    assert.equal(await sizes.locator('svg circle.point').count(), 4, 'stored and raw, for each of the two sets');
    const box = await sizes.locator('svg circle.point').first().boundingBox();
    assert.ok(box && box.width > 0 && box.height > 0, 'the point is drawn on screen');
    const rows = page.locator('figure.chart', { hasText: `db: rows in main.${SCRIPT_NAME}` });
    assert.equal(await rows.count(), 1, 'the table with a markup name has its chart, its name as text');
    assert.deepEqual(
      await rows.locator('svg circle.point').evaluateAll((els) => els.map((el) => el.getAttribute('data-value'))),
      ['3', '3'],
    );
    assert.equal(await page.locator('figure.chart[data-chart="backup-duration"] circle.point').count(), 2);
    assert.equal(await page.locator('figure.chart[data-chart="drill-duration"] circle.point').count(), 2);
    await page.screenshot({ path: join(ARTIFACTS, 'charts.png'), fullPage: true });
    await assertNothingRan('charts');
  });

  it('names that look like markup are shown as text on every page and never run', async () => {
    await page.goto(`${base}/jobs/shop/runs`);
    await page.locator('table.runs tr[data-command="backup"][data-status="success"] a').first().click();
    await page.waitForURL(/\/jobs\/shop\/runs\/\d+$/);
    const table = page.getByText(`main.${SCRIPT_NAME}`, { exact: true });
    assert.ok(await table.isVisible(), 'the table name is visible text');
    await assertNothingRan('run with the markup table');

    await page.goto(`${base}/jobs/shop/drills`);
    const drill = page.locator('section.drill').first();
    assert.equal(await drill.getAttribute('data-status'), 'success');
    assert.match((await drill.textContent()) ?? '', /rows/);
    await page.screenshot({ path: join(ARTIFACTS, 'drills.png'), fullPage: true });
    await assertNothingRan('drills');

    const api = await page.goto(`${base}/api/jobs/shop/runs`);
    assert.match(api?.headers()['content-type'] ?? '', /^application\/json/);
    await assertNothingRan('JSON');
    assert.deepEqual(consoleErrors, [], 'no CSP violation or failed load');
  });
});
