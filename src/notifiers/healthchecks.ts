// healthchecks: a dead man's switch. `URL/start` when a backup starts, `URL` when it committed a set
// (success or warning), `URL/fail` with the run's report and log when it failed. If no run happens,
// the service notices the silence and alerts on its own.
import type { NotifyChannelConfig } from '../config/schema.js';
import { channelUrl, ignore, post, truncateUtf8 } from './http.js';
import type { Message, NotifierFactory } from './types.js';

type HealthchecksConfig = Extract<NotifyChannelConfig, { type: 'healthchecks' }>;

/** healthchecks.io keeps the first 100 kB of a ping's body. */
const BODY_LIMIT = 100_000;

/** The ping URL for a message: chosen by the message's status, which comes from the report itself. */
export function pingUrl(base: URL, message: Pick<Message, 'status' | 'pingId'>): URL {
  const url = new URL(base.href);
  const suffix = message.status === 'started' ? '/start' : message.status === 'failure' ? '/fail' : '';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${suffix}`;
  if (message.pingId) url.searchParams.set('rid', message.pingId);
  return url;
}

export const healthchecks: NotifierFactory<HealthchecksConfig> = (config, name) => {
  const url = channelUrl(config, name);
  return {
    name,
    type: 'healthchecks',
    policy: { mode: 'pings' },
    timeoutMs: config.timeout,
    prepare: () => url().then(ignore, ignore),
    async send(message, signal) {
      const body = message.status === 'started' ? '' : truncateUtf8(message.text, BODY_LIMIT);
      await post(
        pingUrl(await url(), message),
        { body, contentType: 'text/plain; charset=utf-8' },
        signal,
        `healthchecks ${name}`,
      );
    },
  };
};
