// The HTTP channels against a real HTTP server on loopback: the payload each one sends (webhook,
// Slack, Discord, ntfy, healthchecks), and what happens when the receiver fails, is down or hangs.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { jobConfigSchema } from '../../src/config/schema.js';
import { clearSecrets, redact } from '../../src/lib/redact.js';
import { createNotifiers } from '../../src/notifiers/index.js';
import type { Message, Notifier } from '../../src/notifiers/types.js';
import { sendWithRetries } from '../../src/notify/deliver.js';
import { backupEvent } from '../../src/notify/events.js';
import { renderEvent, renderStart } from '../../src/notify/render.js';
import { closedPort, type HttpReceiver, startHttpReceiver } from '../helpers/receivers.js';
import { failedReport, successReport, warningReport } from '../notify/reports.js';

const fast = { attempts: 3, baseDelayMs: 10 };

function notifiersOf(notify: unknown[]): Notifier[] {
  const config = jobConfigSchema.parse({
    job: 'shop',
    stateDir: '/nonexistent',
    sources: [{ name: 'a', type: 'command', command: 'true' }],
    targets: [{ name: 'disk', type: 'local', path: '/tmp' }],
    notify,
  });
  return createNotifiers(config.notify);
}

function only(notify: unknown): Notifier {
  const [notifier] = notifiersOf([notify]);
  assert.ok(notifier);
  return notifier;
}

const failure = (): Message => renderEvent(backupEvent(failedReport(), []), { host: 'web1' });

describe('HTTP channels', () => {
  let receiver: HttpReceiver;
  let dir: string;

  before(async () => {
    receiver = await startHttpReceiver();
  });
  after(async () => {
    await receiver.close();
  });
  beforeEach(async () => {
    receiver.requests.length = 0;
    receiver.answer(200);
    dir = await mkdtemp(join(tmpdir(), 'bp-channels-'));
  });
  afterEach(async () => {
    clearSecrets();
    await rm(dir, { recursive: true, force: true });
  });

  /** A urlFile (mode 0600) holding a URL of the receiver with a secret token in its path. */
  async function urlFile(path: string): Promise<{ file: string; url: string }> {
    const url = `${receiver.base}${path}`;
    const file = join(dir, `${path.replace(/\W/g, '_')}.url`);
    await writeFile(file, `${url}\n`);
    await chmod(file, 0o600);
    return { file, url };
  }

  it('webhook: POSTs the event document as JSON to the URL from urlFile', async () => {
    const { file } = await urlFile('/hook/s3cr3t-t0ken');
    const notifier = only({ type: 'webhook', urlFile: file });
    const message = failure();
    assert.deepEqual(await sendWithRetries(notifier, message, fast), { ok: true, attempts: 1 });
    const [request] = receiver.requests;
    assert.equal(request?.method, 'POST');
    assert.equal(request?.path, '/hook/s3cr3t-t0ken');
    assert.equal(request?.headers['content-type'], 'application/json');
    assert.match(String(request?.headers['user-agent']), /^backproof\//);
    const document = JSON.parse(request?.body ?? '{}') as Record<string, unknown>;
    assert.equal(document.format, 'backproof-event/1');
    assert.equal(document.kind, 'failure');
    assert.equal(document.status, 'failure');
    assert.equal(document.subject, message.subject);
    assert.equal(document.job, 'shop');
  });

  it('slack: the incoming-webhook shape, with the subject as text and the body in a code block', async () => {
    const { file } = await urlFile('/slack/T0/B0/xyz');
    const notifier = only({ type: 'slack', urlFile: file });
    const message = renderEvent(backupEvent(failedReport({ warnings: ['a <b> & c'] }), []), { host: 'web1' });
    assert.equal((await sendWithRetries(notifier, message, fast)).ok, true);
    const payload = JSON.parse(receiver.requests[0]?.body ?? '{}') as {
      text: string;
      blocks: { type: string; text: { type: string; text: string } }[];
    };
    assert.equal(payload.text, message.subject);
    assert.equal(payload.blocks[0]?.text.text, `*${message.subject}*`);
    assert.equal(payload.blocks[1]?.text.type, 'mrkdwn');
    assert.match(payload.blocks[1]?.text.text ?? '', /^```backproof: the backup of job shop FAILED/);
    assert.match(payload.blocks[1]?.text.text ?? '', /a &lt;b&gt; &amp; c/);
  });

  it('discord: one embed with the subject as title and a failure colour; mentions off', async () => {
    const { file } = await urlFile('/discord/123/abc');
    const notifier = only({ type: 'discord', urlFile: file });
    const message = failure();
    assert.equal((await sendWithRetries(notifier, message, fast)).ok, true);
    const payload = JSON.parse(receiver.requests[0]?.body ?? '{}') as {
      content: string;
      embeds: { title: string; description: string; color: number; timestamp: string }[];
      allowed_mentions: { parse: unknown[] };
    };
    assert.equal(payload.content, message.subject);
    assert.equal(payload.embeds[0]?.title, message.subject);
    assert.equal(payload.embeds[0]?.color, 0xd0021b);
    assert.equal(payload.embeds[0]?.timestamp, message.document.at);
    assert.match(payload.embeds[0]?.description ?? '', /^```\nbackproof: the backup/);
    assert.deepEqual(payload.allowed_mentions, { parse: [] });
  });

  it('ntfy: the body as text, the subject as an RFC 2047 X-Title, priority and tags; the token as a bearer', async () => {
    const { file } = await urlFile('/backups-4f9a');
    const tokenFile = join(dir, 'ntfy.token');
    await writeFile(tokenFile, 'tk_secret123\n', { mode: 0o600 });
    const notifier = only({ type: 'ntfy', urlFile: file, tokenFile, tags: ['srv1'] });
    const message = failure();
    assert.equal((await sendWithRetries(notifier, message, fast)).ok, true);
    const request = receiver.requests[0];
    const title = String(request?.headers['x-title']);
    const encoded = /^=\?UTF-8\?B\?([A-Za-z0-9+/=]+)\?=$/.exec(title)?.[1];
    assert.ok(encoded, title);
    assert.equal(Buffer.from(encoded, 'base64').toString('utf8'), message.subject); // the subject has an em dash
    assert.equal(request?.headers['x-priority'], 'high');
    assert.equal(request?.headers['x-tags'], 'backproof,rotating_light,srv1');
    assert.equal(request?.headers.authorization, 'Bearer tk_secret123');
    assert.equal(request?.body, message.text);

    receiver.requests.length = 0;
    const ok = renderEvent(backupEvent(successReport(), []), { host: 'web1' });
    assert.equal((await sendWithRetries(only({ type: 'ntfy', urlFile: file, priority: 'low' }), ok, fast)).ok, true);
    assert.equal(receiver.requests[0]?.headers['x-priority'], 'low');
    assert.equal(receiver.requests[0]?.headers['x-tags'], 'backproof,white_check_mark');
  });

  it('healthchecks: URL/start, URL for a committed set, URL/fail with the report for a failure, one rid per run', async () => {
    const { file } = await urlFile('/ping/0f2c-uuid');
    const notifier = only({ type: 'healthchecks', urlFile: file });
    assert.equal(notifier.policy.mode, 'pings');
    const rid = '6f1c3f1e-0000-4000-8000-000000000001';
    const start = {
      ...renderStart({ job: 'shop', at: '2025-11-04T03:00:00.000Z', runId: 1, setId: 's' }, { host: 'h' }),
      pingId: rid,
    };
    for (const message of [
      start,
      { ...renderEvent(backupEvent(successReport(), []), { host: 'h' }), pingId: rid },
      { ...renderEvent(backupEvent(warningReport(), []), { host: 'h' }), pingId: rid },
      { ...failure(), pingId: rid },
    ]) {
      assert.equal((await sendWithRetries(notifier, message, fast)).ok, true);
    }
    assert.deepEqual(
      receiver.requests.map((r) => r.path),
      [
        `/ping/0f2c-uuid/start?rid=${rid}`,
        `/ping/0f2c-uuid?rid=${rid}`,
        `/ping/0f2c-uuid?rid=${rid}`,
        `/ping/0f2c-uuid/fail?rid=${rid}`,
      ],
    );
    assert.equal(receiver.requests[0]?.body, '');
    assert.match(receiver.requests[3]?.body ?? '', /FAILED[\s\S]*What failed:[\s\S]*Run log/);
  });

  it('retries a 500 a few times, then reports it as not delivered, without the secret URL', async () => {
    const { file, url } = await urlFile('/hook/s3cr3t-t0ken');
    receiver.answer(500);
    const result = await sendWithRetries(only({ type: 'webhook', urlFile: file }), failure(), fast);
    assert.equal(result.ok, false);
    assert.equal(result.attempts, 3);
    assert.equal(receiver.requests.length, 3);
    assert.match(
      result.error ?? '',
      /^webhook webhook: the receiver answered 500 Internal Server Error: no thanks \(after 3 tries\)$/,
    );
    assert.ok(!(result.error ?? '').includes('s3cr3t'), result.error);
    assert.equal(redact(`posting to ${url}`), 'posting to ***');
  });

  it('does not retry a 4xx: a wrong URL stays wrong', async () => {
    const { file } = await urlFile('/gone');
    receiver.answer(404);
    const result = await sendWithRetries(only({ type: 'slack', urlFile: file }), failure(), fast);
    assert.deepEqual(
      { ok: result.ok, attempts: result.attempts, requests: receiver.requests.length },
      { ok: false, attempts: 1, requests: 1 },
    );
    assert.match(result.error ?? '', /the receiver answered 404/);
  });

  it('retries a receiver that is down, then reports it as not delivered', async () => {
    const port = await closedPort();
    const result = await sendWithRetries(
      only({ type: 'discord', url: `http://127.0.0.1:${port}/down` }),
      failure(),
      fast,
    );
    assert.equal(result.ok, false);
    assert.equal(result.attempts, 3);
    assert.match(result.error ?? '', /discord discord: the request failed \(ECONNREFUSED\) \(after 3 tries\)/);
  });

  it('gives up on a receiver that never answers after the timeout', async () => {
    const { file } = await urlFile('/slow');
    receiver.answer('hang');
    const result = await sendWithRetries(only({ type: 'webhook', urlFile: file, timeout: '200ms' }), failure(), {
      attempts: 2,
      baseDelayMs: 10,
    });
    assert.equal(result.ok, false);
    assert.equal(result.attempts, 2);
    assert.match(result.error ?? '', /webhook webhook: no answer within 200ms \(after 2 tries\)/);
    await receiver.waitFor(2);
  });

  it('fails at once, naming the file, when urlFile cannot be read; prepare() does not throw', async () => {
    const notifier = only({ type: 'webhook', urlFile: join(dir, 'missing.url') });
    await notifier.prepare();
    const result = await sendWithRetries(notifier, failure(), fast);
    assert.equal(result.ok, false);
    assert.equal(result.attempts, 1);
    assert.match(result.error ?? '', /missing\.url does not exist; create it \(mode 0600\) holding the secret/);
    assert.equal(receiver.requests.length, 0);
  });

  it('refuses a urlFile that does not hold an http(s) URL, without printing what it holds', async () => {
    const file = join(dir, 'bad.url');
    await writeFile(file, 'ftp://files.example/secret-path\n', { mode: 0o600 });
    const result = await sendWithRetries(only({ type: 'webhook', urlFile: file }), failure(), fast);
    assert.equal(result.attempts, 1);
    assert.match(result.error ?? '', /the configured URL is not http:\/\/ or https:\/\//);
    assert.ok(!(result.error ?? '').includes('secret-path'));
  });

  it('registers every URL for redaction as soon as the channels are prepared', async () => {
    const { file, url } = await urlFile('/hook/another-t0ken');
    const inline = `${receiver.base}/inline/not-so-secret`;
    const notifiers = notifiersOf([
      { type: 'webhook', urlFile: file },
      { type: 'slack', url: inline },
    ]);
    assert.deepEqual(
      notifiers.map((n) => n.name),
      ['webhook', 'slack'],
    );
    await Promise.all(notifiers.map((n) => n.prepare()));
    assert.equal(redact(`a ${url}/fail b ${inline} c`), 'a ***/fail b *** c');
  });
});
