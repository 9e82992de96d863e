// The source contract. A source turns one configured thing to back up into components: raw byte
// streams plus the facts gathered while streaming them (files, rows per table, warnings).
import type { Readable } from 'node:stream';
import type { Logger } from '../lib/log.js';
import type { Measured } from '../pipeline/measure.js';

export type ComponentKind = 'files' | 'sqlite' | 'command' | 'mariadb' | 'postgres' | 'postgres-globals' | 'system';

/** What the run gives a source. */
export interface SourceContext {
  /** Aborted on SIGINT/SIGTERM, stall or maxDuration: stop children, stop reading, clean up. */
  signal: AbortSignal;
  log: Logger;
  /** A private directory for this run on a local filesystem; removed by the core afterwards. */
  scratchDir: string;
}

/** Facts a source gathered while producing a component, known once its data stream has ended. */
export interface ComponentFacts {
  /** Entries in a files component (every tar entry: files, dirs, links, specials). */
  files?: number;
  /** Rows per table, `<schema>.<table>` → rows, every table listed (empty ones with 0). */
  tables?: Record<string, number>;
  /** Things a human should look at; the component is still complete (e.g. an unreadable file). */
  warnings: string[];
  /** The tool that produced the data and its version, e.g. `sqlite3 backup API (SQLite 3.53.2)`. */
  dumpTool?: string;
  serverVersion?: string;
  /** Holds secrets (TLS keys, .env): later issues refuse to store it unencrypted. */
  secret?: boolean;
}

/** One component being produced. The core consumes `data` (and `index`) completely, then awaits `facts`. */
export interface ComponentStream {
  /** `<source>` or `<source>.<database>`. */
  name: string;
  kind: ComponentKind;
  /** Extension of the raw data, without dot: `tar`, `sql`, `sqlite`, `out`… The object is `<name>.<extension>.<zst|gz>`. */
  extension: string;
  /** The raw, uncompressed bytes. Errors on this stream fail the component. */
  data: Readable;
  /** Holds secrets (known before any byte is read): refused without encryption unless the source allows it. */
  secret?: boolean;
  /** For files kinds: the JSONL index, one entry per line (see docs/set-format.md). */
  index?: Readable;
  /**
   * Resolves after `data` (and `index`) have ended, with the facts; rejects with a SourceError when
   * the component is not complete and valid (tool failed, empty output, path missing, …).
   */
  facts: Promise<ComponentFacts>;
  /**
   * Size and SHA-256 of `data`, taken by the source from the very buffers it hands on (files: in its
   * worker thread). When set, the core counts the bytes (and checks the count) instead of hashing them again.
   */
  rawMeasured?: Promise<Measured>;
}

/** A finding of a preflight check. `fatal` ones stop the run before anything is written. */
export interface PreflightFinding {
  fatal: boolean;
  message: string;
}

export interface Source {
  readonly name: string;
  readonly type: string;
  /** Preflight: tools present (with versions), paths exist, connections work. Never writes. */
  check(ctx: SourceContext): Promise<PreflightFinding[]>;
  /**
   * Optional: starts slow setup that touches no data (a worker thread booting), so that it overlaps
   * the preflight instead of following it. Called once, after the lock is taken; a source must work
   * the same without it.
   */
  warmUp?(): void;
  /** Raw bytes this source will produce, roughly, for the first run's free-space estimate. */
  estimateRawBytes(ctx: SourceContext): Promise<number>;
  /**
   * The components, one at a time: the core consumes each completely before asking for the next.
   * Throwing here (instead of rejecting `facts`) fails the whole source.
   */
  components(ctx: SourceContext): AsyncIterable<ComponentStream>;
}
