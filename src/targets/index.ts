// The registry of target kinds. Adding a kind: a driver file here, a schema entry in config/schema.ts.
import type { TargetConfig } from '../config/schema.js';
import type { Logger } from '../lib/log.js';
import { createLocalTarget } from './local.js';
import { withTargetRetries } from './retry.js';
import { createS3Target } from './s3.js';
import { createSftpTarget } from './sftp.js';
import type { Target } from './types.js';

/** `log` hears what a driver has to say during a run (e.g. a host key it pinned). */
export function createTarget(config: TargetConfig, options: { log?: Logger } = {}): Target {
  switch (config.type) {
    case 'local':
      return createLocalTarget(config);
    // Remote calls can fail transiently (reset, timeout, 5xx): their idempotent calls are retried.
    case 'sftp':
      return withTargetRetries(createSftpTarget(config, options.log ? { log: options.log } : {}));
    case 's3':
      return createS3Target(config); // retries each request itself (per part, from its buffer)
  }
}
