// Opens a job's state database only to read it, and only when it exists: opening creates a missing
// database, and the dashboard must never create or write anything.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { JobConfig } from '../config/schema.js';
import { openStateDb, type StateDb } from '../state/store.js';

/** `read`'s result, or undefined when the job has no state database yet (it never ran here). */
export function readState<T>(config: JobConfig, read: (state: StateDb) => T): T | undefined {
  if (!existsSync(join(config.stateDir, 'state.db'))) return undefined;
  const state = openStateDb(config.stateDir, { readonly: true });
  try {
    return read(state);
  } finally {
    state.close();
  }
}
