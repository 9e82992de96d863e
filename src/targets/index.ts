// The registry of target kinds. Adding a kind: a driver file here, a schema entry in config/schema.ts.
import type { TargetConfig } from '../config/schema.js';
import { createLocalTarget } from './local.js';
import { withTargetRetries } from './retry.js';
import { createS3Target } from './s3.js';
import { createSftpTarget } from './sftp.js';
import type { Target } from './types.js';

export function createTarget(config: TargetConfig): Target {
  switch (config.type) {
    case 'local':
      return createLocalTarget(config);
    // Remote calls can fail transiently (reset, timeout, 5xx): their idempotent calls are retried.
    case 'sftp':
      return withTargetRetries(createSftpTarget(config));
    case 's3':
      return createS3Target(config); // retries each request itself (per part, from its buffer)
  }
}
