// The email channel against a real SMTP server (smtp-server, in this process) that requires AUTH:
// delivered with the configured password, refused with a wrong one (not retried), and never sent
// in clear text unless `security: none` says so.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { jobConfigSchema } from '../../src/config/schema.js';
import { clearSecrets } from '../../src/lib/redact.js';
import { createNotifiers } from '../../src/notifiers/index.js';
import type { Notifier } from '../../src/notifiers/types.js';
import { sendWithRetries } from '../../src/notify/deliver.js';
import { backupEvent } from '../../src/notify/events.js';
import { renderEvent } from '../../src/notify/render.js';
import { type SmtpReceiver, startSmtpReceiver } from '../helpers/receivers.js';
import { failedReport } from '../notify/reports.js';

const PASSWORD = 'c0rrect-h0rse-battery';
const fast = { attempts: 3, baseDelayMs: 10 };

describe('email channel', () => {
  let smtp: SmtpReceiver;
  let dir: string;
  let passwordFile: string;

  beforeEach(async () => {
    smtp = await startSmtpReceiver({ user: 'alerts', password: PASSWORD });
    dir = await mkdtemp(join(tmpdir(), 'bp-email-'));
    passwordFile = join(dir, 'smtp.pass');
    await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  });
  afterEach(async () => {
    clearSecrets();
    await smtp.close();
    await rm(dir, { recursive: true, force: true });
  });

  function email(overrides: Record<string, unknown> = {}): Notifier {
    const config = jobConfigSchema.parse({
      job: 'shop',
      stateDir: '/nonexistent',
      sources: [{ name: 'a', type: 'command', command: 'true' }],
      targets: [{ name: 'disk', type: 'local', path: '/tmp' }],
      notify: [
        {
          type: 'email',
          smtp: `smtp://alerts@127.0.0.1:${smtp.port}`,
          security: 'none',
          passwordFile,
          from: 'backproof@example.com',
          to: ['ops@example.com', 'oncall@example.com'],
          ...overrides,
        },
      ],
    });
    const [notifier] = createNotifiers(config.notify);
    assert.ok(notifier);
    return notifier;
  }

  it('logs in with the password from passwordFile and delivers the rendered message', async () => {
    const message = renderEvent(backupEvent(failedReport(), []), { host: 'web1' });
    assert.deepEqual(await sendWithRetries(email(), message, fast), { ok: true, attempts: 1 });
    const [mail] = await smtp.waitFor(1);
    assert.equal(mail?.user, 'alerts');
    assert.equal(mail?.from, 'backproof@example.com');
    assert.deepEqual(mail?.to, ['ops@example.com', 'oncall@example.com']);
    assert.equal(mail?.mail.subject, '[backproof] FAILURE: job shop — nas: sha256 mismatch on app.tar.zst');
    assert.equal(mail?.mail.text, message.text);
    assert.equal(mail?.mail.headers.get('x-backproof-event'), 'failure');
    assert.equal(mail?.mail.headers.get('x-backproof-job'), 'shop');
    assert.ok(!mail?.raw.includes(PASSWORD));
  });

  it('reports a refused login at once, without retrying, and says to check passwordFile', async () => {
    await writeFile(passwordFile, 'wrong-password\n');
    const result = await sendWithRetries(email(), renderEvent(backupEvent(failedReport(), []), { host: 'h' }), fast);
    assert.equal(result.ok, false);
    assert.equal(result.attempts, 1);
    assert.equal(smtp.refusedLogins, 1);
    assert.match(
      result.error ?? '',
      /^email email: 127\.0\.0\.1:\d+: .*535.*the server refused the login of alerts: check passwordFile$/,
    );
    assert.ok(!(result.error ?? '').includes('wrong-password'));
    assert.equal(smtp.mails.length, 0);
  });

  it('will not send the password in clear text to a server without STARTTLS (the default for smtp://)', async () => {
    const result = await sendWithRetries(
      email({ security: undefined }),
      renderEvent(backupEvent(failedReport(), []), { host: 'h' }),
      fast,
    );
    assert.equal(result.ok, false);
    assert.equal(result.attempts, 1);
    assert.match(result.error ?? '', /STARTTLS|TLS/);
    assert.equal(smtp.refusedLogins, 0);
    assert.equal(smtp.mails.length, 0);
  });

  it('fails at once, naming the file, when the password file is missing', async () => {
    const notifier = email({ passwordFile: join(dir, 'nope.pass') });
    await notifier.prepare();
    const result = await sendWithRetries(notifier, renderEvent(backupEvent(failedReport(), []), { host: 'h' }), fast);
    assert.deepEqual({ ok: result.ok, attempts: result.attempts }, { ok: false, attempts: 1 });
    assert.match(result.error ?? '', /notify email: password: .*nope\.pass does not exist/);
  });
});
