// ntfy: the body as the message, the subject as X-Title, with priority and tags headers.
import type { NtfyNotifyConfig } from '../config/schema.js';
import { messageOf } from '../lib/errors.js';
import { readSecret } from '../lib/secrets.js';
import { channelUrl, ignore, post, truncateUtf8 } from './http.js';
import { type Message, type NotifierFactory, NotifyError } from './types.js';

/** ntfy keeps messages up to 4096 bytes as text (longer ones would become attachments). */
const BODY_LIMIT = 4000;

const TAGS: Record<Message['status'], string> = {
  failure: 'rotating_light',
  warning: 'warning',
  success: 'white_check_mark',
  started: 'hourglass_flowing_sand',
};

/**
 * A header value as ntfy reads it: ASCII as it is, anything else as an RFC 2047 encoded-word
 * (ntfy 2.4+ decodes them; fetch refuses characters beyond Latin-1 in headers).
 */
export function headerValue(text: string): string {
  const line = text.replace(/[\r\n]+/g, ' ');
  if (/^[\x20-\x7e]*$/.test(line)) return line;
  return `=?UTF-8?B?${Buffer.from(line, 'utf8').toString('base64')}?=`;
}

/** The headers of one message: title, priority (failures high unless configured), tags. */
export function ntfyHeaders(
  message: Message,
  config: Pick<NtfyNotifyConfig, 'priority' | 'tags'>,
): Record<string, string> {
  const priority = config.priority ?? (message.status === 'failure' ? 'high' : 'default');
  return {
    'x-title': headerValue(message.subject),
    'x-priority': priority,
    'x-tags': headerValue(['backproof', TAGS[message.status], ...config.tags].join(',')),
  };
}

export const ntfy: NotifierFactory<NtfyNotifyConfig> = (config, name) => {
  const url = channelUrl(config, name);
  let token: Promise<string | undefined> | undefined;
  const readToken = async (): Promise<string | undefined> => {
    try {
      return await readSecret({ file: config.tokenFile, env: config.tokenEnv }, `notify ${name}: token`);
    } catch (error) {
      throw new NotifyError(messageOf(error), { permanent: true, cause: error });
    }
  };
  return {
    name,
    type: 'ntfy',
    policy: { mode: 'alerts', on: config.on, repeatEveryMs: config.repeatEvery },
    timeoutMs: config.timeout,
    async prepare() {
      token ??= readToken();
      await Promise.all([url(), token]).catch(ignore);
    },
    async send(message, signal) {
      token ??= readToken();
      const bearer = await token;
      await post(
        await url(),
        {
          body: truncateUtf8(message.text, BODY_LIMIT),
          contentType: 'text/plain; charset=utf-8',
          headers: { ...ntfyHeaders(message, config), ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
        },
        signal,
        `ntfy ${name}`,
      );
    },
  };
};
