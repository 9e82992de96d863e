// webhook: the event document as JSON, POSTed to a URL (from urlFile: the URL is the credential).
import type { NotifyChannelConfig } from '../config/schema.js';
import { channelUrl, ignore, post } from './http.js';
import type { NotifierFactory } from './types.js';

type WebhookConfig = Extract<NotifyChannelConfig, { type: 'webhook' }>;

export const webhook: NotifierFactory<WebhookConfig> = (config, name) => {
  const url = channelUrl(config, name);
  return {
    name,
    type: 'webhook',
    policy: { mode: 'alerts', on: config.on, repeatEveryMs: config.repeatEvery },
    timeoutMs: config.timeout,
    prepare: () => url().then(ignore, ignore),
    async send(message, signal) {
      const body = JSON.stringify(message.document);
      await post(await url(), { body, contentType: 'application/json' }, signal, `webhook ${name}`);
    },
  };
};
