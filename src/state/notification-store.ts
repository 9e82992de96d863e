// Notification deliveries in the state database: one row per channel per event that was sent (or
// tried and failed). The repeat rule reads them (src/notify/decide.ts) and `status` lists the ones
// that never arrived. Table: the notifications migration in src/state/db.ts.
import type { SqliteDatabase } from '../lib/sqlite.js';
import { count, integer, text, utcTimestamp } from './checks.js';

export interface NotificationRecord {
  job: string;
  /** The channel's name (`email`, `webhook-2`, or its own). */
  channel: string;
  /** The event kind (`failure`, `recovery`, …) or `start` for a ping. */
  event: string;
  /** What makes two events "the same" for the repeat rule. */
  fingerprint: string;
  /** The run the event is about, when it is one this host recorded. */
  runId?: number | undefined;
  at: string;
  ok: boolean;
  /** Tries made, the first included (0 when it could not even be prepared, e.g. an unreadable urlFile). */
  attempts: number;
  subject: string;
  /** Why it was not delivered (redacted); only when ok is false. */
  error?: string | undefined;
}

export interface NotificationRow {
  id: number;
  job: string;
  channel: string;
  event: string;
  fingerprint: string;
  runId: number | null;
  at: string;
  ok: boolean;
  attempts: number;
  subject: string;
  error: string | null;
}

export interface NotificationStore {
  recordNotification(record: NotificationRecord): void;
  /** The channel's deliveries, newest first; only those of `event` and `fingerprint` when given. */
  notificationsOf(
    job: string,
    channel: string,
    options: { event?: string; fingerprint?: string; limit: number },
  ): NotificationRow[];
  /**
   * Deliveries that failed and that no later successful delivery on the same channel followed:
   * people may not have heard. Newest first, at most `limit`.
   */
  undeliveredNotifications(job: string, limit: number): NotificationRow[];
}

const columns = `id, job, channel, event, fingerprint, run_id AS runId, at, ok, attempts, subject, error`;

type RowText = Omit<NotificationRow, 'ok'> & { ok: number };

/** The statements and methods; `write` names the database and operation when a write fails. */
export function notificationStore(
  db: SqliteDatabase,
  write: <T>(operation: string, runId: number | undefined, fn: () => T) => T,
): NotificationStore {
  const sql = {
    insert: db.prepare(
      `INSERT INTO notifications (job, channel, event, fingerprint, run_id, at, ok, attempts, subject, error)
       VALUES (@job, @channel, @event, @fingerprint, @runId, @at, @ok, @attempts, @subject, @error)`,
    ),
    ofChannel: db.prepare(
      `SELECT ${columns} FROM notifications
       WHERE job = @job AND channel = @channel
         AND (@event IS NULL OR event = @event) AND (@fingerprint IS NULL OR fingerprint = @fingerprint)
       ORDER BY at DESC, id DESC LIMIT @limit`,
    ),
    undelivered: db.prepare(
      `SELECT ${columns} FROM notifications n
       WHERE job = @job AND ok = 0
         AND NOT EXISTS (
           SELECT 1 FROM notifications later
           WHERE later.job = n.job AND later.channel = n.channel AND later.ok = 1
             AND (later.at > n.at OR (later.at = n.at AND later.id > n.id)))
       ORDER BY at DESC, id DESC LIMIT @limit`,
    ),
  };
  const limitOf = (limit: number): number => {
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new RangeError(`state database: a notification limit must be a positive integer, got ${String(limit)}`);
    }
    return limit;
  };
  const parse = (row: RowText): NotificationRow => ({ ...row, ok: row.ok === 1 });

  return {
    recordNotification(record) {
      if (record.ok === (record.error !== undefined)) {
        throw new RangeError('state database: a notification has an error exactly when it was not delivered');
      }
      const values = {
        job: text(record.job, 'job'),
        channel: text(record.channel, 'channel'),
        event: text(record.event, 'event'),
        fingerprint: text(record.fingerprint, 'fingerprint'),
        runId: record.runId === undefined ? null : integer(record.runId, 'runId'),
        at: utcTimestamp(record.at, 'at'),
        ok: record.ok ? 1 : 0,
        attempts: count(record.attempts, 'attempts'),
        subject: text(record.subject, 'subject'),
        error: record.error ?? null,
      };
      write('recordNotification', record.runId, () => sql.insert.run(values));
    },

    notificationsOf(job, channel, options) {
      const rows = sql.ofChannel.all({
        job,
        channel,
        event: options.event ?? null,
        fingerprint: options.fingerprint ?? null,
        limit: limitOf(options.limit),
      }) as RowText[];
      return rows.map(parse);
    },

    undeliveredNotifications(job, limit) {
      return (sql.undelivered.all({ job, limit: limitOf(limit) }) as RowText[]).map(parse);
    },
  };
}
