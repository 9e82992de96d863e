// The registry of source kinds. Adding a kind: a driver file here, a schema entry in config/schema.ts.
import type { SourceConfig } from '../config/schema.js';
import { createCommandSource } from './command.js';
import { createFilesSource } from './files.js';
import { createSqliteSource } from './sqlite.js';
import type { Source } from './types.js';

export function createSource(config: SourceConfig): Source {
  switch (config.type) {
    case 'files':
      return createFilesSource(config);
    case 'sqlite':
      return createSqliteSource(config);
    case 'command':
      return createCommandSource(config);
  }
}
