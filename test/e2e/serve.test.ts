// `backproof serve`: /metrics over real HTTP after a real backup, loopback by default, a token
// required on any other address (refused without one, 401 without the header), and SIGTERM stops it;
// several jobs from config files or a directory, refused (exit 2) when two share a job name or one
// does not load. The pages themselves are tested in a browser: dashboard.test.ts.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { CLI, makeSandbox, runCli, type Sandbox } from '../helpers/cli.js';
import { parsePrometheusText } from '../helpers/prometheus.js';

interface Served {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
}

/** Starts `serve` on a free port and waits for the line that says where it listens. */
async function serve(sandbox: Sandbox, extra: string[], configs = ['--config', sandbox.configPath]): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'serve', ...configs, '--port', '0', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, BACKPROOF_CONFIG: undefined },
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
      const match = /serving (http:\/\/[^/\s]+)\/ \(dashboard, \/api, \/metrics\)/.exec(stderr);
      if (match?.[1]) resolve(match[1]);
    });
    void exited.then((code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
  return { child, url, exited };
}

describe('serve /metrics', () => {
  let sandbox: Sandbox;
  const running: Served[] = [];

  before(async () => {
    sandbox = await makeSandbox('bp-serve-');
    const app = join(sandbox.dir, 'app');
    await mkdir(app);
    await writeFile(join(app, 'index.php'), '<?php echo 1;\n'.repeat(200));
    await sandbox.writeConfig({ sources: [{ name: 'app', type: 'files', paths: [app] }] });
    const backup = await runCli(['--config', sandbox.configPath, 'backup']);
    assert.equal(backup.code, 0, backup.stderr);
  });
  after(async () => {
    for (const served of running) served.child.kill('SIGKILL');
    await sandbox.cleanup();
  });

  it('serves Prometheus text about the job on 127.0.0.1, read-only, and stops cleanly on SIGTERM', async () => {
    const served = await serve(sandbox, []);
    running.push(served);
    assert.match(served.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const response = await fetch(`${served.url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const families = parsePrometheusText(await response.text());
    const names = [...families.keys()];
    assert.ok(names.length > 0 && names.every((n) => n.startsWith('backproof_')), names.join(', '));
    assert.ok(
      names.some((n) => n.includes('last_success')),
      `a last-success metric is there: ${names.join(', ')}`,
    );
    assert.equal((await fetch(`${served.url}/metrics`, { method: 'POST' })).status, 405);
    assert.equal((await fetch(`${served.url}/nowhere`)).status, 404);
    served.child.kill('SIGTERM');
    assert.equal(await served.exited, 130);
  });

  it('refuses another address without a token (exit 2); with one, a request without it gets 401', async () => {
    const refused = await runCli(['--config', sandbox.configPath, 'serve', '--host', '0.0.0.0', '--port', '0']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--token-file/);

    const tokenFile = join(sandbox.dir, 'token');
    await writeFile(tokenFile, 'a-long-random-token-for-the-test\n', { mode: 0o600 });
    const served = await serve(sandbox, ['--host', '0.0.0.0', '--token-file', tokenFile]);
    running.push(served);
    const url = served.url.replace('0.0.0.0', '127.0.0.1');
    assert.equal((await fetch(`${url}/metrics`)).status, 401);
    const wrong = await fetch(`${url}/metrics`, {
      headers: { authorization: 'Bearer a-long-random-token-for-the-tesT' },
    });
    assert.equal(wrong.status, 401);
    const right = await fetch(`${url}/metrics`, {
      headers: { authorization: 'Bearer a-long-random-token-for-the-test' },
    });
    assert.equal(right.status, 200);
    assert.match(await right.text(), /^# HELP backproof_/m);
    served.child.kill('SIGTERM');
    assert.equal(await served.exited, 130);
  });

  it('serves several jobs from config files and directories; two configs of one job, or one that does not load, exit 2', async () => {
    const dir = join(sandbox.dir, 'conf.d');
    await mkdir(dir);
    const other = (job: string) =>
      stringify({
        job,
        stateDir: join(sandbox.dir, `state-${job}`),
        targets: [{ name: 'disk', type: 'local', path: sandbox.targetDir }],
        sources: [{ name: 'app', type: 'files', paths: [join(sandbox.dir, 'app')] }],
      });
    await writeFile(join(dir, 'blog.yml'), other('blog'));
    await writeFile(join(dir, 'wiki.yaml'), other('wiki'));
    const served = await serve(sandbox, [], [sandbox.configPath, dir]);
    running.push(served);
    const jobs = (await (await fetch(`${served.url}/api/jobs`)).json()) as { jobs: { job: string }[] };
    assert.deepEqual(
      jobs.jobs.map((j) => j.job),
      ['blog', 'demo', 'wiki'],
    );
    const metrics = await (await fetch(`${served.url}/metrics`)).text();
    assert.match(metrics, /backproof_info\{job="demo"/, 'metrics of the job that ran');
    served.child.kill('SIGTERM');
    assert.equal(await served.exited, 130);
    assert.equal(existsSync(join(sandbox.dir, 'state-blog')), false, 'serving a job creates nothing for it');

    await writeFile(join(dir, 'again.yml'), other('demo'));
    const twice = await runCli(['serve', sandbox.configPath, dir, '--port', '0']);
    assert.equal(twice.code, 2, twice.stderr);
    assert.match(twice.stderr, /job "demo" is named by two configs, .*backproof\.yml and .*again\.yml/);

    await writeFile(join(dir, 'again.yml'), 'job: broken\nsources: []\n');
    const broken = await runCli(['serve', dir, '--port', '0']);
    assert.equal(broken.code, 2, broken.stderr);
    assert.match(broken.stderr, /serve: .*again\.yml is not a valid backproof config/);
  });
});
