// What a route answers: a status, a content type and a body, built by these helpers so every HTML
// page and JSON document passes through the redactor on its way out.
import { redact, redactDeep } from '../lib/redact.js';
import type { Html } from './html.js';

export interface Reply {
  status: number;
  contentType: string;
  body: string;
}

export function htmlReply(page: Html, status = 200): Reply {
  return { status, contentType: 'text/html; charset=utf-8', body: redact(page.text) };
}

export function jsonReply(document: unknown, status = 200): Reply {
  return {
    status,
    contentType: 'application/json; charset=utf-8',
    body: redact(`${JSON.stringify(redactDeep(document), null, 2)}\n`),
  };
}

export function textReply(text: string, contentType: string, status = 200): Reply {
  return { status, contentType, body: redact(text) };
}

/** A request the dashboard cannot answer: 404 (unknown page, job or run) and the like. */
export class DashboardError extends Error {
  override readonly name = 'DashboardError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
