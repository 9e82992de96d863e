// The registry of target kinds. Adding a kind: a driver file here, a schema entry in config/schema.ts.
import type { TargetConfig } from '../config/schema.js';
import { createLocalTarget } from './local.js';
import type { Target } from './types.js';

export function createTarget(config: TargetConfig): Target {
  switch (config.type) {
    case 'local':
      return createLocalTarget(config);
  }
}
