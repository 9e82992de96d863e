// slack: an incoming-webhook message: the subject as the notification text, the body as a code block.
import type { NotifyChannelConfig } from '../config/schema.js';
import { channelUrl, ignore, post } from './http.js';
import type { Message, NotifierFactory } from './types.js';

type SlackConfig = Extract<NotifyChannelConfig, { type: 'slack' }>;

/** A section's text may hold 3000 characters; the code fence and the note take some. */
const SECTION_LIMIT = 2900;

/** Slack's mrkdwn control characters, escaped as its docs ask. */
function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function cut(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, limit)}\n… (cut here; \`backproof status\` has the rest)`;
}

/** The payload Slack's incoming webhooks take: `text` (the notification) and blocks (the message). */
export function slackPayload(message: Message): object {
  return {
    text: escapeMrkdwn(message.subject),
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `*${escapeMrkdwn(message.subject)}*` } },
      {
        type: 'section',
        text: { type: 'mrkdwn', text: `\`\`\`${escapeMrkdwn(cut(message.text, SECTION_LIMIT))}\`\`\`` },
      },
    ],
  };
}

export const slack: NotifierFactory<SlackConfig> = (config, name) => {
  const url = channelUrl(config, name);
  return {
    name,
    type: 'slack',
    policy: { mode: 'alerts', on: config.on, repeatEveryMs: config.repeatEvery },
    timeoutMs: config.timeout,
    prepare: () => url().then(ignore, ignore),
    async send(message, signal) {
      const body = JSON.stringify(slackPayload(message));
      await post(await url(), { body, contentType: 'application/json' }, signal, `slack ${name}`);
    },
  };
};
