// discord: a webhook message with one embed (title: the subject, description: the body), mentions off.
import type { NotifyChannelConfig } from '../config/schema.js';
import { channelUrl, ignore, post } from './http.js';
import type { Message, MessageStatus, NotifierFactory } from './types.js';

type DiscordConfig = Extract<NotifyChannelConfig, { type: 'discord' }>;

const COLOR: Record<MessageStatus, number> = {
  failure: 0xd0021b,
  warning: 0xf5a623,
  success: 0x2e7d32,
  started: 0x607d8b,
};
/** Discord's limits: content 2000, embed title 256, embed description 4096 characters. */
const CONTENT_LIMIT = 2000;
const TITLE_LIMIT = 256;
const DESCRIPTION_LIMIT = 4000;

function cut(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

/** The payload of Discord's "execute webhook": no @everyone or role pings, whatever the text says. */
export function discordPayload(message: Message): object {
  // A fence inside the text would end the code block early.
  const body = cut(message.text.replace(/```/g, "'''"), DESCRIPTION_LIMIT);
  return {
    username: 'backproof',
    content: cut(message.subject, CONTENT_LIMIT),
    embeds: [
      {
        title: cut(message.subject, TITLE_LIMIT),
        description: `\`\`\`\n${body}\n\`\`\``,
        color: COLOR[message.status],
        timestamp: message.document.at,
      },
    ],
    allowed_mentions: { parse: [] },
  };
}

export const discord: NotifierFactory<DiscordConfig> = (config, name) => {
  const url = channelUrl(config, name);
  return {
    name,
    type: 'discord',
    policy: { mode: 'alerts', on: config.on, repeatEveryMs: config.repeatEvery },
    timeoutMs: config.timeout,
    prepare: () => url().then(ignore, ignore),
    async send(message, signal) {
      const body = JSON.stringify(discordPayload(message));
      await post(await url(), { body, contentType: 'application/json' }, signal, `discord ${name}`);
    },
  };
};
