// `backproof serve [--host 127.0.0.1] [--port 8080] [--token-file F]`: read-only HTTP for monitoring.
// Today it serves /metrics (Prometheus text, from the state database, read afresh on every scrape);
// the dashboard pages and /api come with the dashboard. Loopback by default; any other address
// needs a token, sent as `Authorization: Bearer <token>`, or the command refuses to start.
import { timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import type { JobConfig } from '../config/schema.js';
import { UsageError } from '../lib/errors.js';
import { readSecret } from '../lib/secrets.js';
import { collectMetrics, renderMetrics } from '../report/metrics.js';
import { openStateDb } from '../state/store.js';
import type { Command } from './types.js';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export const serveCommand: Command = {
  name: 'serve',
  summary: 'read-only HTTP for monitoring: /metrics in Prometheus format (127.0.0.1 unless a token is set)',
  usage: 'backproof [--config FILE] serve [--host 127.0.0.1] [--port 8080] [--token-file F]',
  options: { host: { type: 'string' }, port: { type: 'string' }, 'token-file': { type: 'string' } },
  async run(args, io) {
    const host = (args.values.host as string | undefined) ?? '127.0.0.1';
    const port = Number((args.values.port as string | undefined) ?? '8080');
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new UsageError(`--port ${args.values.port} is not a TCP port`);
    if (!LOOPBACK.has(host) && isIP(host) === 0) throw new UsageError(`--host ${host} is not an IP address`);
    const tokenFile = args.values['token-file'] as string | undefined;
    if (!LOOPBACK.has(host) && tokenFile === undefined) {
      throw new UsageError(
        `--host ${host} would let anyone on that network read this job's health: give --token-file FILE ` +
          '(a secret clients send as "Authorization: Bearer <token>"), or keep the default 127.0.0.1',
      );
    }
    const token = tokenFile === undefined ? undefined : await readSecret({ file: tokenFile }, '--token-file');
    const { config } = await loadConfig(resolveConfigPath(args.config, io.env, io.cwd));

    const server = createServer((request, response) => {
      try {
        answer(config, token, request, response);
      } catch (error) {
        response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        response.end(`backproof could not answer: ${(error as Error).message}\n`);
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    const address = server.address();
    const shown = typeof address === 'object' && address ? `${host}:${address.port}` : `${host}:${port}`;
    io.stderr.write(`backproof: serving http://${shown}/metrics for job ${config.job} (read-only)\n`);
    await new Promise<void>((resolve) => {
      if (io.signal.aborted) resolve();
      io.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw io.signal.reason;
  },
};

function answer(
  config: JobConfig,
  token: string | undefined,
  request: IncomingMessage,
  response: ServerResponse,
): void {
  const headers = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
  if (token !== undefined && !authorized(request.headers.authorization, token)) {
    response.writeHead(401, { ...headers, 'www-authenticate': 'Bearer', 'content-type': 'text/plain' });
    response.end('a token is required: send "Authorization: Bearer <token>"\n');
    return;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { ...headers, allow: 'GET, HEAD', 'content-type': 'text/plain' });
    response.end('read-only: GET only\n');
    return;
  }
  const path = new URL(request.url ?? '/', 'http://localhost').pathname;
  if (path !== '/metrics') {
    response.writeHead(404, { ...headers, 'content-type': 'text/plain' });
    response.end('not found: this backproof serves /metrics\n');
    return;
  }
  response.writeHead(200, { ...headers, 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
  response.end(request.method === 'HEAD' ? undefined : metricsText(config));
}

/** Metrics from the state database as it is now; a job that never ran has only its static series. */
function metricsText(config: JobConfig): string {
  if (!existsSync(join(config.stateDir, 'state.db'))) return renderMetrics([]);
  const state = openStateDb(config.stateDir);
  try {
    return renderMetrics(collectMetrics(config, state));
  } finally {
    state.close();
  }
}

function authorized(header: string | undefined, token: string): boolean {
  const given = Buffer.from(/^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '');
  const wanted = Buffer.from(token);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}
