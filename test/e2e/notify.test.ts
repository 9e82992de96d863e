// Notifications through the real CLI, to real receivers on loopback in this process: an SMTP server
// that requires AUTH and an HTTP server for the webhook, Slack, Discord, ntfy and healthchecks
// channels. Secrets are planted in the config (a password file, URLs in url files) and in the failing
// command's stderr; none may reach any message or output.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { acquireJobLock } from '../../src/lib/lock.js';
import { jsonOf, makeSandbox, runCli, type Sandbox } from '../helpers/cli.js';
import { filesUnder } from '../helpers/files.js';
import {
  closedPort,
  type HttpReceiver,
  type SmtpReceiver,
  startHttpReceiver,
  startSmtpReceiver,
} from '../helpers/receivers.js';

const SMTP_PASSWORD = 'Pl4nted-smtp-pa55word';
const HOUR = 3_600_000;

interface Outcome {
  channel: string;
  event: string;
  sent: boolean;
  ok: boolean;
  error?: string;
}

interface Report {
  status: string;
  exitCode: number;
  runId: number;
  notifications?: Outcome[];
}

interface Document {
  kind: string;
  status: string;
  subject: string;
  text: string;
  facts: Record<string, unknown>;
}

describe('notifications end to end', () => {
  let sandbox: Sandbox;
  let http: HttpReceiver;
  let smtp: SmtpReceiver;
  let flagFile: string;
  const secrets: string[] = [SMTP_PASSWORD];

  before(async () => {
    http = await startHttpReceiver();
    smtp = await startSmtpReceiver({ user: 'alerts', password: SMTP_PASSWORD });
  });
  after(async () => {
    await http.close();
    await smtp.close();
  });
  beforeEach(async () => {
    sandbox = await makeSandbox('bp-notify-');
    http.requests.length = 0;
    http.answer(200);
    smtp.mails.length = 0;
    flagFile = join(sandbox.dir, 'fail');
  });
  afterEach(async () => {
    await sandbox.cleanup();
  });

  /** A url file (0600) holding a receiver URL with a secret token; the URL joins the planted secrets. */
  async function urlFile(name: string, url = `${http.base}/${name}/t0ken-${name}-9f3e`): Promise<string> {
    const file = join(sandbox.dir, `${name}.url`);
    await writeFile(file, `${url}\n`);
    await chmod(file, 0o600);
    secrets.push(url);
    return file;
  }

  /**
   * A command source that fails while the flag file exists, printing the planted secrets to stderr
   * (a careless tool would), and succeeds otherwise.
   */
  async function writeConfig(notify: unknown[], extra: Record<string, unknown> = {}): Promise<void> {
    const passwordFile = join(sandbox.dir, 'smtp.pass');
    await writeFile(passwordFile, `${SMTP_PASSWORD}\n`, { mode: 0o600 });
    const leak = `cat '${passwordFile}' ${notify.flatMap((n) => ((n as { urlFile?: string }).urlFile ? [`'${(n as { urlFile: string }).urlFile}'`] : [])).join(' ')} >&2`;
    await sandbox.writeConfig({
      sources: [
        {
          name: 'redis',
          type: 'command',
          command: `if [ -e '${flagFile}' ]; then echo 'Could not connect to Redis at 127.0.0.1:6379' >&2; ${leak}; exit 1; fi; echo data`,
          extension: 'rdb',
        },
      ],
      notify,
      ...extra,
    });
  }

  const email = (port: number, overrides: Record<string, unknown> = {}) => ({
    type: 'email',
    smtp: `smtp://alerts@127.0.0.1:${port}`,
    security: 'none',
    passwordFile: join(sandbox.dir, 'smtp.pass'),
    from: 'backproof@example.com',
    to: ['ops@example.com'],
    ...overrides,
  });

  const documents = (path: string): Document[] =>
    http.requests.filter((r) => r.path.startsWith(path)).map((r) => JSON.parse(r.body) as Document);

  function assertNoSecret(text: string, where: string): void {
    for (const secret of secrets) assert.ok(!text.includes(secret), `${where} holds the secret ${secret}`);
  }

  it('sends the failure of a real failed run to every channel, truthfully and without a secret', async () => {
    await writeFile(flagFile, '');
    const notify = [
      email(smtp.port),
      { type: 'webhook', urlFile: await urlFile('hook') },
      { type: 'slack', urlFile: await urlFile('slack') },
      { type: 'discord', urlFile: await urlFile('discord') },
      { type: 'ntfy', urlFile: await urlFile('ntfy') },
      { type: 'healthchecks', urlFile: await urlFile('hc') },
    ];
    await writeConfig(notify);
    const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    assert.equal(result.code, 1, result.stderr);
    const report = jsonOf<Report>(result);
    assert.equal(report.status, 'failure');
    assert.deepEqual(
      report.notifications?.map((n) => [n.channel, n.event, n.sent, n.ok]),
      [
        ['email', 'failure', true, true],
        ['webhook', 'failure', true, true],
        ['slack', 'failure', true, true],
        ['discord', 'failure', true, true],
        ['ntfy', 'failure', true, true],
        ['healthchecks', 'failure', true, true],
      ],
    );

    // The mail: authenticated with the configured password, the right subject and body.
    const [mail] = smtp.mails;
    assert.equal(smtp.mails.length, 1);
    assert.equal(mail?.user, 'alerts');
    assert.match(mail?.mail.subject ?? '', /^\[backproof\] FAILURE: job demo — redis: /);
    const body = mail?.mail.text ?? '';
    assert.match(body, /the backup of job demo FAILED on host /);
    assert.match(body, /No backup was committed by this run\. Earlier sets are untouched\./);
    assert.match(body, /1\. step source, component redis: /);
    assert.match(body, /exit code: 1\n/);
    assert.match(
      body,
      /stderr \(last lines\):\n(?: {7}\| .*\n)*? {7}\| Could not connect to Redis at 127\.0\.0\.1:6379\n/,
    );
    assert.match(body, /What to do next:\n {2}- Source redis did not produce a complete component/);
    assert.match(body, /\*\*\*/, 'the planted secrets were masked, not dropped');

    // Every HTTP channel got its own payload shape.
    const hook = documents('/hook/');
    assert.equal(hook.length, 1);
    assert.equal(hook[0]?.kind, 'failure');
    assert.equal(hook[0]?.status, 'failure');
    assert.equal(hook[0]?.subject, mail?.mail.subject);
    const slack = http.requests.find((r) => r.path.startsWith('/slack/'));
    assert.equal((JSON.parse(slack?.body ?? '{}') as { text: string }).text, mail?.mail.subject);
    const discord = http.requests.find((r) => r.path.startsWith('/discord/'));
    assert.equal((JSON.parse(discord?.body ?? '{}') as { embeds: { color: number }[] }).embeds[0]?.color, 0xd0021b);
    const ntfy = http.requests.find((r) => r.path.startsWith('/ntfy/'));
    assert.equal(ntfy?.headers['x-priority'], 'high');
    assert.match(ntfy?.body ?? '', /FAILED/);
    const pings = http.requests.filter((r) => r.path.startsWith('/hc/')).map((r) => r.path.replace(/\?.*/, ''));
    assert.deepEqual(pings, ['/hc/t0ken-hc-9f3e/start', '/hc/t0ken-hc-9f3e/fail']);
    const rids = http.requests
      .filter((r) => r.path.startsWith('/hc/'))
      .map((r) => new URL(r.path, http.base).searchParams.get('rid'));
    assert.equal(rids[0], rids[1]);
    assert.match(rids[0] ?? '', /^[0-9a-f-]{36}$/);

    // No secret anywhere: mail, HTTP bodies and headers, the CLI's output, the stored report and deliveries.
    assertNoSecret(mail?.raw ?? '', 'the mail');
    for (const request of http.requests) {
      assertNoSecret(request.body, `the body to ${request.path.split('/')[1]}`);
      assertNoSecret(JSON.stringify(request.headers), `the headers to ${request.path.split('/')[1]}`);
    }
    assertNoSecret(result.stdout + result.stderr, 'the CLI output');
    const stored = execFileSync(
      'sqlite3',
      [join(sandbox.stateDir, 'state.db'), 'SELECT report FROM runs; SELECT subject, error FROM notifications;'],
      { encoding: 'utf8' },
    );
    assert.match(stored, /FAILURE: job demo/);
    assertNoSecret(stored, 'the state database');
  });

  it('pings start and success for a good run, and sends nothing to alert channels that do not listen for success', async () => {
    await writeConfig([
      { type: 'webhook', urlFile: await urlFile('hook') },
      { type: 'healthchecks', urlFile: await urlFile('hc') },
    ]);
    const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(
      jsonOf<Report>(result).notifications?.map((n) => [n.channel, n.sent]),
      [
        ['webhook', false],
        ['healthchecks', true],
      ],
    );
    assert.deepEqual(
      http.requests.map((r) => r.path.replace(/\?.*/, '')),
      ['/hc/t0ken-hc-9f3e/start', '/hc/t0ken-hc-9f3e'],
    );
  });

  it('keeps the exit code when receivers are down or answer 500, and status lists what was not delivered', async () => {
    const down = await closedPort();
    http.answer(500);
    await writeConfig([
      { type: 'webhook', name: 'ops-hook', url: `http://127.0.0.1:${down}/hook`, on: ['success', 'failure'] },
      { type: 'slack', urlFile: await urlFile('slack'), on: ['success', 'failure'] },
      email(down, { name: 'mail' }),
    ]);
    // A good run stays a success: exit 0.
    const good = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    assert.equal(good.code, 0, good.stderr);
    assert.deepEqual(
      jsonOf<Report>(good).notifications?.map((n) => [n.channel, n.event, n.sent, n.ok]),
      [
        ['ops-hook', 'success', true, false],
        ['slack', 'success', true, false],
        ['mail', 'success', false, false],
      ],
    );
    assert.match(good.stderr, /warning: notification success via ops-hook was not delivered: .*ECONNREFUSED/);
    assert.match(good.stderr, /warning: notification success via slack was not delivered: .*answered 500/);
    // A failed run stays a failure: exit 1.
    await writeFile(flagFile, '');
    const bad = await runCli(['--config', sandbox.configPath, 'backup']);
    assert.equal(bad.code, 1, bad.stderr);
    assert.match(bad.stdout, /^FAILURE: no backup was committed/);
    assert.match(bad.stderr, /notification failure via mail was not delivered: .*ECONNREFUSED/);

    const status = await runCli(['--config', sandbox.configPath, 'status', '--json']);
    const undelivered = jsonOf<{ undeliveredNotifications: { channel: string; event: string; error: string }[] }>(
      status,
    ).undeliveredNotifications;
    assert.deepEqual(undelivered.map((n) => [n.channel, n.event]).sort(), [
      ['mail', 'failure'],
      ['ops-hook', 'failure'],
      ['ops-hook', 'success'],
      ['slack', 'failure'],
      ['slack', 'success'],
    ]);
    assert.match(undelivered.find((n) => n.channel === 'slack')?.error ?? '', /500.*\(after 3 tries\)/);
    const text = await runCli(['--config', sandbox.configPath, 'status']);
    assert.match(
      text.stdout,
      /! notification failure via slack \(.*\) was not delivered: slack slack: the receiver answered 500/,
    );
    assertNoSecret(status.stdout + text.stdout, 'status');
  });

  it('notifies a lasting failure once, again after repeatEvery, and a recovery on the first good run', async () => {
    await writeConfig([{ type: 'webhook', urlFile: await urlFile('hook'), repeatEvery: '24h' }]);
    const run = async (expected: number) => {
      const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
      assert.equal(result.code, expected, result.stderr);
      return jsonOf<Report>(result);
    };
    await writeFile(flagFile, '');
    await run(1);
    const second = await run(1);
    assert.deepEqual(
      second.notifications?.map((n) => [n.event, n.sent]),
      [['failure', false]],
    );
    assert.equal(documents('/hook/').length, 1);

    // A day later (the history moved back 25 hours): the same failure is notified again.
    const db = join(sandbox.stateDir, 'state.db');
    const back = `strftime('%Y-%m-%dT%H:%M:%fZ', %s, '-25 hours')`;
    execFileSync('sqlite3', [
      db,
      `UPDATE runs SET started_at = ${back.replace('%s', 'started_at')}, finished_at = ${back.replace('%s', 'finished_at')};` +
        `UPDATE notifications SET at = ${back.replace('%s', 'at')};`,
    ]);
    const third = await run(1);
    assert.deepEqual(
      third.notifications?.map((n) => [n.event, n.sent, n.ok]),
      [['failure', true, true]],
    );
    assert.equal(documents('/hook/').length, 2);

    // Fixed: the first good run is a recovery, and says after how many failed runs.
    await rm(flagFile);
    const fixed = await run(0);
    assert.deepEqual(
      fixed.notifications?.map((n) => [n.event, n.sent, n.ok]),
      [['recovery', true, true]],
    );
    const recovery = documents('/hook/')[2];
    assert.equal(recovery?.kind, 'recovery');
    assert.equal(recovery?.status, 'success');
    assert.match(
      recovery?.subject ?? '',
      /^\[backproof\] RECOVERED: job demo — set \S+ committed and verified on disk after 3 failed run\(s\)$/,
    );
  });

  it('notifies a lock held longer than the RPO, and not one held for less', async () => {
    await writeConfig([{ type: 'webhook', urlFile: await urlFile('hook'), on: ['lock-stuck'] }], {
      objectives: { rpo: '26h' },
    });
    const fresh = acquireJobLock(sandbox.stateDir, 'demo', 'backup');
    try {
      const result = await runCli(['--config', sandbox.configPath, 'backup']);
      assert.equal(result.code, 75, result.stderr);
      assert.equal(http.requests.length, 0);
    } finally {
      fresh.release();
    }
    const stuck = acquireJobLock(sandbox.stateDir, 'demo', 'backup', { now: () => new Date(Date.now() - 30 * HOUR) });
    try {
      const result = await runCli(['--config', sandbox.configPath, 'backup']);
      assert.equal(result.code, 75, result.stderr);
      assert.match(result.stderr, /is locked by pid \d+/);
    } finally {
      stuck.release();
    }
    const [document] = documents('/hook/');
    assert.equal(document?.kind, 'lock-stuck');
    assert.equal(document?.status, 'failure');
    assert.match(
      document?.subject ?? '',
      new RegExp(
        `^\\[backproof\\] LOCK STUCK: job demo — pid ${process.pid} on \\S+ \\(backup\\) has held the lock for 30h00m, longer than the RPO \\(26h00m\\)$`,
      ),
    );
  });

  it('notifies a failed verify and a failed drill of a damaged set', async () => {
    await writeConfig([{ type: 'webhook', urlFile: await urlFile('hook'), on: ['verify-failure', 'drill-failure'] }]);
    const backup = await runCli(['--config', sandbox.configPath, 'backup']);
    assert.equal(backup.code, 0, backup.stderr);
    const verifyOk = await runCli(['--config', sandbox.configPath, 'verify']);
    assert.equal(verifyOk.code, 0, verifyOk.stderr);
    assert.equal(http.requests.length, 0, 'a passing verify is not news');
    const [object] = (await filesUnder(sandbox.targetDir)).filter((f) => f.endsWith('redis.rdb.zst'));
    assert.ok(object);
    await writeFile(join(sandbox.targetDir, object), 'damaged');

    const verify = await runCli(['--config', sandbox.configPath, 'verify']);
    assert.equal(verify.code, 1, verify.stderr);
    const drill = await runCli(['--config', sandbox.configPath, 'drill']);
    assert.equal(drill.code, 1, drill.stderr);
    const [verified, drilled] = documents('/hook/');
    assert.equal(verified?.kind, 'verify-failure');
    assert.match(verified?.subject ?? '', /^\[backproof\] VERIFY FAILED: job demo — /);
    assert.match(verified?.text ?? '', /redis\.rdb\.zst/);
    assert.equal(drilled?.kind, 'drill-failure');
    assert.match(drilled?.subject ?? '', /^\[backproof\] DRILL FAILED: job demo — /);
    assert.equal(documents('/hook/').length, 2);
  });
});
