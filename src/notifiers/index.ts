// The notifier registry: one factory per channel type, typed against the config schema.
import { type NotifyChannelConfig, notifyChannelNames } from '../config/schema.js';
import { discord } from './discord.js';
import { email } from './email.js';
import { healthchecks } from './healthchecks.js';
import { ntfy } from './ntfy.js';
import { slack } from './slack.js';
import type { Notifier, NotifierFactory } from './types.js';
import { webhook } from './webhook.js';

const factories = { email, webhook, slack, discord, ntfy, healthchecks } satisfies {
  [K in NotifyChannelConfig['type']]: NotifierFactory<Extract<NotifyChannelConfig, { type: K }>>;
};

export function createNotifier(config: NotifyChannelConfig, name: string): Notifier {
  const factory = factories[config.type] as NotifierFactory<NotifyChannelConfig>;
  return factory(config, name);
}

/** The job's channels, named as the schema names them (their own name, or type, type-2, …). */
export function createNotifiers(channels: readonly NotifyChannelConfig[]): Notifier[] {
  const names = notifyChannelNames(channels);
  return channels.map((channel, i) => createNotifier(channel, names[i] as string));
}
