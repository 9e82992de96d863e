// The errors of restoring: a copy that cannot be used (missing, damaged, unreadable), an archive
// that is refused, a destination that cannot take the tree. Each message says what failed, where,
// and what to do; they map to exit 1 (src/lib/exit-codes.ts).
import { OperationError } from '../lib/errors.js';

/** A restore step failed: fetching an object, extracting it, or placing the tree. */
export class RestoreError extends OperationError {
  override readonly name: string = 'RestoreError';
}

const HOSTILE_ADVICE =
  'backproof never writes such an entry, so this archive was made or changed by something else: ' +
  'restore from another target or an older set.';

/**
 * An archive entry was refused because extracting it could touch something outside the staging
 * directory, or is not allowed (a device without `allowDevices`). Nothing outside was touched.
 */
export class UnsafeArchiveError extends RestoreError {
  override readonly name = 'UnsafeArchiveError';
  /** The entry's name as the archive holds it. */
  readonly entry: string;
  /** `advice` replaces the default (the archive is not backproof's: use another copy). */
  constructor(entry: string, reason: string, advice = HOSTILE_ADVICE) {
    super(
      `refusing archive entry ${JSON.stringify(entry)}: ${reason}. Nothing was written outside the staging directory; ${advice}`,
    );
    this.entry = entry;
  }
}
