// email: one plain-text message over SMTP (nodemailer, loaded on first use). STARTTLS is required
// on smtp:// unless `security: none`; smtps:// is TLS from the first byte. The password comes from
// passwordFile or passwordEnv and is registered for redaction when read.
import { readFile } from 'node:fs/promises';
import { type EmailNotifyConfig, parseSmtpUrl } from '../config/schema.js';
import { messageOf } from '../lib/errors.js';
import { readSecret } from '../lib/secrets.js';
import { type NotifierFactory, NotifyError } from './types.js';

/** SMTP errors a second try cannot fix: a refused login, TLS the server will not do, a bad address. */
const PERMANENT_CODES = new Set([
  'EAUTH',
  'ENOAUTH',
  'ETLS',
  'EREQUIRETLS',
  'ECONFIG',
  'EENVELOPE',
  'EFILEACCESS',
  'EURLACCESS',
]);

/** Whether an SMTP failure is permanent: a 5xx reply (except 503, a session in the wrong state), or a code above. */
export function isPermanentSmtpError(error: unknown): boolean {
  const { code, responseCode } = error as { code?: unknown; responseCode?: unknown };
  if (typeof responseCode === 'number' && responseCode >= 400) return responseCode >= 500 && responseCode !== 503;
  return typeof code === 'string' && PERMANENT_CODES.has(code);
}

function advice(error: unknown, user: string | undefined): string {
  const code = (error as { code?: unknown }).code;
  if (code === 'EAUTH') return `; the server refused the login of ${user ?? 'the user'}: check passwordFile`;
  if (code === 'ETLS') return '; the server did not do TLS as configured: check `security` (and caFile)';
  return '';
}

export const email: NotifierFactory<EmailNotifyConfig> = (config, name) => {
  const smtp = parseSmtpUrl(config.smtp);
  const security = config.security ?? (smtp.secure ? 'tls' : 'starttls');
  let password: Promise<string | undefined> | undefined;
  const readPassword = async () => {
    try {
      return await readSecret({ file: config.passwordFile, env: config.passwordEnv }, `notify ${name}: password`);
    } catch (error) {
      throw new NotifyError(messageOf(error), { permanent: true, cause: error });
    }
  };
  return {
    name,
    type: 'email',
    policy: { mode: 'alerts', on: config.on, repeatEveryMs: config.repeatEvery },
    timeoutMs: config.timeout,
    async prepare() {
      password ??= readPassword();
      await password.catch(() => {});
    },
    async send(message, signal) {
      password ??= readPassword();
      const pass = await password;
      const ca = config.caFile === undefined ? undefined : await readFile(config.caFile, 'utf8');
      const nodemailer = await import('nodemailer');
      const transport = nodemailer.createTransport({
        host: smtp.host,
        port: smtp.port,
        secure: security === 'tls',
        requireTLS: security === 'starttls',
        ignoreTLS: security === 'none',
        ...(smtp.user !== undefined && pass !== undefined ? { auth: { user: smtp.user, pass } } : {}),
        ...(ca !== undefined ? { tls: { ca } } : {}),
        connectionTimeout: config.timeout,
        greetingTimeout: config.timeout,
        socketTimeout: config.timeout,
        // The message is text we made; it never names files or URLs to attach.
        disableFileAccess: true,
        disableUrlAccess: true,
      });
      const aborted = new Promise<never>((_resolve, reject) => {
        const onAbort = () => reject(new NotifyError(`email ${name}: no answer in time`, { permanent: false }));
        if (signal.aborted) onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
      });
      try {
        await Promise.race([
          transport.sendMail({
            from: config.from,
            to: config.to,
            subject: message.subject,
            text: message.text,
            headers: { 'X-Backproof-Event': message.kind, 'X-Backproof-Job': message.document.job },
          }),
          aborted,
        ]);
      } catch (error) {
        if (error instanceof NotifyError) throw error;
        throw new NotifyError(
          `email ${name}: ${smtp.host}:${smtp.port}: ${messageOf(error)}${advice(error, smtp.user)}`,
          { permanent: isPermanentSmtpError(error), cause: error },
        );
      } finally {
        aborted.catch(() => {});
        transport.close();
      }
    },
  };
};
