// `backproof config check | schema`.

import { loadConfig, resolveConfigPath } from '../config/load.js';
import { configJsonSchema } from '../config/schema.js';
import { loadRecipients } from '../core/encryption.js';
import { UsageError } from '../lib/errors.js';
import { ExitCode } from '../lib/exit-codes.js';
import { writeJson, writeLines } from './output.js';
import type { Command } from './types.js';

export const configCommand: Command = {
  name: 'config',
  summary: 'check: validate the config; schema: print its JSON Schema',
  usage: 'backproof [--config FILE] config check|schema [--json]',
  options: {},
  async run(args, io) {
    const action = args.positionals[0];
    if (action === 'schema') {
      writeJson(io, configJsonSchema());
      return ExitCode.success;
    }
    if (action !== 'check')
      throw new UsageError('config needs an action: `backproof config check` or `backproof config schema`');
    const loaded = await loadConfig(resolveConfigPath(args.config, io.env, io.cwd));
    const { config } = loaded;
    // The keys' checksums and the recipients file, as a backup would read them (ConfigError: exit 2).
    const recipients = await loadRecipients(config.encryption);
    const encryption = recipients ? `; encrypted for ${recipients.length} age recipient(s)` : '';
    if (args.json) {
      writeJson(io, {
        ok: true,
        path: loaded.path,
        job: config.job,
        sources: config.sources.length,
        targets: config.targets.length,
        recipients: recipients?.map((r) => r.text) ?? [],
      });
    } else {
      writeLines(io.stdout, [
        `config ${loaded.path} is valid: job ${config.job}, ${config.sources.length} source(s) (${config.sources.map((s) => `${s.name}:${s.type}`).join(', ')}), ` +
          `${config.targets.length} target(s) (${config.targets.map((t) => `${t.name}:${t.type}`).join(', ')}); state in ${config.stateDir}${encryption}`,
      ]);
    }
    return ExitCode.success;
  },
};
