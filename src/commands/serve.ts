// `backproof serve [CONFIG|DIR ...] [--host 127.0.0.1] [--port 8080] [--token-file F]`: the read-only
// dashboard (pages, /api JSON, /metrics) for one or more jobs. Configs are the positional
// arguments (files, or directories of *.yml/*.yaml), else the usual --config. Loopback by default;
// any other address needs a token, sent as `Authorization: Bearer <token>`, or it refuses to start.
import { createServer } from 'node:http';
import { isIP } from 'node:net';
import { resolveConfigPath } from '../config/load.js';
import { loadDashboardJobs } from '../dashboard/jobs.js';
import { createDashboardHandler } from '../dashboard/server.js';
import { UsageError } from '../lib/errors.js';
import { readSecret } from '../lib/secrets.js';
import type { Command } from './types.js';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export const serveCommand: Command = {
  name: 'serve',
  summary: 'read-only dashboard, /api and /metrics for one or more jobs (127.0.0.1 unless a token is set)',
  usage: 'backproof [--config FILE] serve [CONFIG|DIR ...] [--host 127.0.0.1] [--port 8080] [--token-file F]',
  options: { host: { type: 'string' }, port: { type: 'string' }, 'token-file': { type: 'string' } },
  async run(args, io) {
    const host = (args.values.host as string | undefined) ?? '127.0.0.1';
    const portText = (args.values.port as string | undefined) ?? '8080';
    const port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
    if (!Number.isInteger(port) || port > 65535) throw new UsageError(`--port ${portText} is not a TCP port`);
    if (!LOOPBACK.has(host) && isIP(host) === 0) throw new UsageError(`--host ${host} is not an IP address`);
    const tokenFile = args.values['token-file'] as string | undefined;
    if (!LOOPBACK.has(host) && tokenFile === undefined) {
      throw new UsageError(
        `--host ${host} would let anyone on that network read these jobs' health: give --token-file FILE ` +
          '(a secret clients send as "Authorization: Bearer <token>"), or keep the default 127.0.0.1',
      );
    }
    const token = tokenFile === undefined ? undefined : await readSecret({ file: tokenFile }, '--token-file');
    // Positional configs, plus an explicit --config; with neither, the usual lookup ($BACKPROOF_CONFIG, ./backproof.yml).
    const configs =
      args.positionals.length > 0
        ? [...(args.config !== undefined ? [args.config] : []), ...args.positionals]
        : [resolveConfigPath(args.config, io.env, io.cwd)];
    const jobs = await loadDashboardJobs(configs, io.cwd);

    const server = createServer(createDashboardHandler({ jobs, token, signal: io.signal }));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    const address = server.address();
    const listening = typeof address === 'object' && address ? address.port : port;
    const where = `${host.includes(':') ? `[${host}]` : host}:${listening}`;
    io.stderr.write(
      `backproof: serving http://${where}/ (dashboard, /api, /metrics) for ${jobs.size === 1 ? 'job' : 'jobs'} ` +
        `${[...jobs.keys()].join(', ')} (read-only)\n`,
    );
    await new Promise<void>((resolve) => {
      if (io.signal.aborted) resolve();
      io.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw io.signal.reason;
  },
};
