// The HTTP side of the dashboard: who may ask (a token when one is set; otherwise only requests
// addressed to a loopback name, against DNS rebinding), what may be asked (GET and HEAD), the
// security headers every answer carries, and errors as pages or JSON that never leak a stack.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { messageOf } from '../lib/errors.js';
import { redact } from '../lib/redact.js';
import { html } from './html.js';
import type { DashboardJobs } from './jobs.js';
import { renderPage } from './pages/layout.js';
import { DashboardError, htmlReply, jsonReply, type Reply } from './reply.js';
import { type DashboardContext, dashboardRouter } from './routes.js';
import { createStatusCache } from './status-cache.js';

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-resource-policy': 'same-origin',
};

export interface DashboardOptions {
  jobs: DashboardJobs;
  /** Required in every request (Bearer, or Basic with the token as password) when set. */
  token?: string | undefined;
  /** Ends reads of the targets when the server stops. */
  signal: AbortSignal;
  /** How long a job's status (a read of its targets) is reused. Default 10 s. */
  statusTtlMs?: number;
}

export type RequestHandler = (request: IncomingMessage, response: ServerResponse) => void;

export function createDashboardHandler(options: DashboardOptions): RequestHandler {
  const context: DashboardContext = {
    jobs: options.jobs,
    statuses: createStatusCache(options.signal, options.statusTtlMs ?? 10_000),
  };
  return (request, response) => {
    void answer(request, options, context)
      .catch((error: unknown) => errorReply(request, error))
      .then((reply) => send(request, response, reply))
      .catch(() => response.destroy()); // the client went away mid-answer: nothing left to tell it
  };
}

async function answer(request: IncomingMessage, options: DashboardOptions, context: DashboardContext): Promise<Reply> {
  if (options.token !== undefined) {
    if (!authorized(request.headers.authorization, options.token)) {
      throw new DashboardError(
        401,
        'a token is required: send "Authorization: Bearer <token>" (or the token as the Basic password)',
      );
    }
  } else if (!loopbackHost(request.headers.host)) {
    throw new DashboardError(
      421,
      `this dashboard answers requests for 127.0.0.1, localhost or [::1] only, not ${JSON.stringify(request.headers.host ?? '')}: ` +
        'open it by that name (e.g. through an SSH tunnel), or serve it with --token-file',
    );
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    throw new DashboardError(405, 'read-only: GET and HEAD only');
  }
  const pathname = pathnameOf(request);
  if (pathname === undefined) throw new DashboardError(400, 'the request names no valid path');
  const match = dashboardRouter.match(pathname);
  if (!match) throw new DashboardError(404, `nothing at ${pathname}: start at the overview, /`);
  return match.handler(match.params, context);
}

function send(request: IncomingMessage, response: ServerResponse, reply: Reply): void {
  const headers: Record<string, string | string[]> = {
    ...SECURITY_HEADERS,
    'content-type': reply.contentType,
    'content-length': String(Buffer.byteLength(reply.body)),
  };
  if (reply.status === 401)
    headers['www-authenticate'] = ['Bearer realm="backproof"', 'Basic realm="backproof", charset="UTF-8"'];
  if (reply.status === 405) headers.allow = 'GET, HEAD';
  response.writeHead(reply.status, headers);
  response.end(request.method === 'HEAD' ? undefined : reply.body);
}

/** What the client sees of an error: its status and message for ours, a short line for anything else. */
function errorReply(request: IncomingMessage, error: unknown): Reply {
  const status = error instanceof DashboardError ? error.status : 500;
  const message =
    error instanceof DashboardError ? error.message : `backproof could not answer: ${redact(messageOf(error))}`;
  const path = pathnameOf(request) ?? '/';
  const wantsHtml = !path.startsWith('/api') && path !== '/metrics' && status !== 401 && status !== 421;
  if (wantsHtml) {
    return htmlReply(
      renderPage({
        title: status === 404 ? 'Not found' : 'Error',
        jobs: [],
        body: html`<p class="problem">${message}</p>`,
      }),
      status,
    );
  }
  return jsonReply({ error: { status, message } }, status);
}

function pathnameOf(request: IncomingMessage): string | undefined {
  try {
    return new URL(request.url ?? '/', 'http://localhost').pathname;
  } catch {
    return undefined;
  }
}

/** Bearer <token>, or Basic with the token as the password (so a browser can ask for it). */
function authorized(header: string | undefined, token: string): boolean {
  const value = header ?? '';
  let given: string | undefined = /^Bearer (.+)$/.exec(value)?.[1];
  if (given === undefined) {
    const basic = /^Basic ([A-Za-z0-9+/=]+)$/.exec(value)?.[1];
    if (basic !== undefined) {
      const decoded = Buffer.from(basic, 'base64').toString('utf8');
      given = decoded.slice(decoded.indexOf(':') + 1);
    }
  }
  const a = Buffer.from(given ?? '');
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The Host header names this machine's loopback: a page on another site cannot rebind to us. */
function loopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  return name === 'localhost' || name === '[::1]' || /^127(\.\d{1,3}){3}$/.test(name);
}
