// Real receivers on loopback for notification tests, inside the test process: an HTTP server that
// records every request and answers with a chosen status, and an SMTP server (smtp-server) that
// requires AUTH with one password and parses what it receives (mailparser).
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export { closedPort } from './ports.js';

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface HttpReceiver {
  /** http://127.0.0.1:PORT */
  base: string;
  requests: ReceivedRequest[];
  /** The status answered from now on (default 200); `hang` never answers. */
  answer(status: number | 'hang'): void;
  /** Resolves once `count` requests have arrived. */
  waitFor(count: number): Promise<ReceivedRequest[]>;
  close(): Promise<void>;
}

export async function startHttpReceiver(): Promise<HttpReceiver> {
  const requests: ReceivedRequest[] = [];
  let status: number | 'hang' = 200;
  const waiters: { count: number; resolve: () => void }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests.push({
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      for (const waiter of waiters.filter((w) => requests.length >= w.count)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
      if (status === 'hang') return;
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status < 300 ? 'ok' : 'no thanks');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    requests,
    answer(next) {
      status = next;
    },
    async waitFor(count) {
      if (requests.length < count) await new Promise<void>((resolve) => waiters.push({ count, resolve }));
      return requests;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface ReceivedMail {
  /** Who logged in (AUTH), and the envelope. */
  user: string | undefined;
  from: string | undefined;
  to: string[];
  mail: ParsedMail;
  /** The message as sent, headers and body, for "no secret anywhere in it" checks. */
  raw: string;
}

export interface SmtpReceiver {
  port: number;
  mails: ReceivedMail[];
  /** Login attempts refused (wrong user or password). */
  refusedLogins: number;
  waitFor(count: number): Promise<ReceivedMail[]>;
  close(): Promise<void>;
}

/** An SMTP server that requires AUTH as `user` with `password` (no TLS: loopback only). */
export async function startSmtpReceiver(credentials: { user: string; password: string }): Promise<SmtpReceiver> {
  const mails: ReceivedMail[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const receiver = { refusedLogins: 0 };
  const server = new SMTPServer({
    authOptional: false,
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === credentials.user && auth.password === credentials.password) {
        callback(null, { user: auth.username });
        return;
      }
      receiver.refusedLogins++;
      callback(new Error('Invalid username or password'));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        simpleParser(raw)
          .then((mail) => {
            const from = session.envelope.mailFrom;
            mails.push({
              user: typeof session.user === 'string' ? session.user : undefined,
              from: from === false ? undefined : from.address,
              to: session.envelope.rcptTo.map((r) => r.address),
              mail,
              raw,
            });
            for (const waiter of waiters.filter((w) => mails.length >= w.count)) {
              waiters.splice(waiters.indexOf(waiter), 1);
              waiter.resolve();
            }
            callback();
          })
          .catch((error: Error) => callback(error));
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.server.address() as AddressInfo;
  return {
    port: address.port,
    mails,
    get refusedLogins() {
      return receiver.refusedLogins;
    },
    async waitFor(count) {
      if (mails.length < count) await new Promise<void>((resolve) => waiters.push({ count, resolve }));
      return mails;
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
