// The config schema: the single source of truth for validation, defaults, the output types the
// rest of backproof uses, the JSON Schema (`config schema`) and the help text editors show.
// Adding a source or target kind: write its strict object below and add it to `sourceKinds` or
// `targetKinds`; error messages, JSON Schema and path resolution follow from the schema itself.
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { messageOf } from '../lib/errors.js';
import { parseDuration, parsePercent, parseSize } from '../lib/units.js';
import { parseSchedule } from '../schedule/expression.js';

// Spelled out rather than /i so the JSON Schema pattern means the same to editors.
const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const COMPONENT_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const EXTENSION = /^[a-z0-9]{1,10}$/;

// ---------------------------------------------------------------------------------------------
// Building blocks

/** Schemas whose strings are filesystem paths, resolved against the config file's directory. */
const localPathSchemas = new WeakSet<z.ZodType>();

function localPath(description: string) {
  const schema = z.string().min(1, { error: 'is empty; write a path' }).describe(description);
  localPathSchemas.add(schema);
  return schema;
}

/** Runs a units parser inside zod, turning its Error (which names the accepted forms) into an issue. */
function parsedWith<T>(parse: (value: T) => number) {
  return (value: T, ctx: z.RefinementCtx<T>): number => {
    try {
      return parse(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: messageOf(error), input: value });
      return z.NEVER;
    }
  };
}

/** Bytes: `600MB`, `1GiB`, or a plain integer of bytes. */
function size() {
  return z
    .union([z.int().min(0), z.string()], {
      error: (issue) => `${JSON.stringify(issue.input)} is not a size; write it like 600MB, 1GiB or 1048576 (bytes)`,
    })
    .transform(parsedWith((value: number | string) => (typeof value === 'number' ? value : parseSize(value))));
}

/** Milliseconds, more than zero: `30s`, `10m`, `1h30m`, `7d`. Strings only: a bare number has no unit. */
function duration() {
  return z
    .string({
      error: (issue) =>
        typeof issue.input === 'number'
          ? `${issue.input} has no unit; write it like ${issue.input}s, ${issue.input}m or ${issue.input}h`
          : `${JSON.stringify(issue.input)} is not a duration; write it like 30s, 10m, 1h30m or 7d`,
    })
    .transform(
      parsedWith((value: string) => {
        const ms = parseDuration(value);
        if (ms === 0) throw new Error(`"${value}" is zero; write a duration longer than 0, like 30s`);
        return ms;
      }),
    );
}

/** Basis points (`20%` → 2000), at most `max` percent. */
function percent(max: number) {
  return z
    .union([z.number().min(0), z.string()], {
      error: (issue) => `${JSON.stringify(issue.input)} is not a percentage; write it like 20% or 12.5%`,
    })
    .transform(
      parsedWith((value: number | string) => {
        const basisPoints = parsePercent(value);
        if (basisPoints > max * 100) throw new Error(`${value} is more than ${max}%; write at most ${max}%`);
        return basisPoints;
      }),
    );
}

function componentName(what: 'source' | 'target') {
  return z
    .string()
    .regex(COMPONENT_NAME, {
      error:
        `is not a valid ${what} name; use letters, digits, "_" and "-" (no dots), ` +
        'starting with a letter or digit, at most 63 characters',
    })
    .describe(
      `Name of this ${what}, unique among the ${what}s: letters, digits, "_" and "-", at most 63 characters` +
        (what === 'source' ? ' (components are named "<source>" or "<source>.<database>")' : ''),
    );
}

/** Makes `name` unique among the items of a list; runs even when other items have problems. */
function uniqueNames<T extends z.ZodArray>(list: T, what: 'source' | 'target', key: 'sources' | 'targets'): T {
  return list.superRefine(
    // `when` makes this run even after an item failed, so items may still be raw input.
    (items: unknown, ctx) => {
      if (!Array.isArray(items)) return;
      const firstIndex = new Map<string, number>();
      items.forEach((item: unknown, index) => {
        const name = typeof item === 'object' && item !== null ? (item as { name?: unknown }).name : undefined;
        if (typeof name !== 'string') return;
        const first = firstIndex.get(name);
        if (first === undefined) firstIndex.set(name, index);
        else {
          ctx.addIssue({
            code: 'custom',
            path: [index, 'name'],
            message: `duplicate ${what} name "${name}" (also ${key}[${first}].name); give each ${what} its own name`,
            input: name,
          });
        }
      });
    },
    { when: () => true },
  ) as T;
}

// ---------------------------------------------------------------------------------------------
// Sources

const filesSourceSchema = z
  .strictObject({
    name: componentName('source'),
    type: z.literal('files').describe('files: directories and files, stored as a pax tar with an index'),
    paths: z
      .array(localPath('A file or directory to back up (absolute, or relative to this config file)'))
      .min(1)
      .describe('Files and directories to back up, at least one'),
    exclude: z
      .array(z.string().min(1))
      .default([])
      .describe('Glob patterns of paths to leave out, e.g. "**/node_modules" (default: none)'),
    oneFileSystem: z
      .boolean()
      .default(false)
      .describe('Stay on the filesystem of each path: do not descend into other mounts (default: false)'),
  })
  .describe('A files source: application files, uploads, configuration');

const sqliteSourceSchema = z
  .strictObject({
    name: componentName('source'),
    type: z
      .literal('sqlite')
      .describe(
        'sqlite: a consistent online copy of a SQLite database (VACUUM INTO in one read transaction), checked with quick_check',
      ),
    path: localPath('The SQLite database file (absolute, or relative to this config file)'),
  })
  .describe('A SQLite database');

const commandSourceSchema = z
  .strictObject({
    name: componentName('source'),
    type: z.literal('command').describe("command: any command's standard output, e.g. redis-cli --rdb -"),
    command: z
      .string()
      .min(1, { error: 'is empty; write the command whose output to back up' })
      .describe('The command whose standard output is backed up, run by /bin/sh -c; it must exit 0'),
    extension: z
      .string()
      .regex(EXTENSION, { error: 'is not a valid extension; use 1 to 10 lowercase letters or digits, like rdb' })
      .default('out')
      .describe('File extension of the output, without dot, e.g. rdb (default: out)'),
    timeout: duration()
      .optional()
      .describe('Fail the command if it runs longer than this, e.g. 30m (default: no limit of its own)'),
  })
  .describe("A command's standard output");

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Where a password comes from: a file (0600) or an environment variable, never the config itself. */
const passwordKeys = {
  passwordFile: localPath(
    'File holding the password (mode 0600, one line); the password itself never goes in the config',
  ).optional(),
  passwordEnv: z
    .string()
    .regex(ENV_NAME, { error: 'is not an environment variable name' })
    .optional()
    .describe('Name of an environment variable holding the password (instead of passwordFile)'),
};

function port(defaultPort: number) {
  return z.int().min(1).max(65535).default(defaultPort).describe(`TCP port (default: ${defaultPort})`);
}

function nameList(description: string) {
  return z.array(z.string().min(1)).default([]).describe(description);
}

const mariadbSourceSchema = z
  .strictObject({
    name: componentName('source'),
    type: z
      .literal('mariadb')
      .describe('mariadb: MariaDB or MySQL databases, one component per database (mariadb-dump)'),
    host: z.string().min(1).default('127.0.0.1').describe('Server host name or address (default: 127.0.0.1)'),
    port: port(3306),
    socket: localPath('Unix socket of the server; when set, host and port are not used').optional(),
    user: z
      .string()
      .min(1)
      .describe('Account that dumps; needs SELECT, SHOW VIEW, TRIGGER, EVENT and SELECT on mysql.proc'),
    ...passwordKeys,
    databases: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe('Databases to dump (default: every database except the system ones)'),
    excludeDatabases: nameList('Databases to leave out (default: none)'),
    excludeTables: nameList('Tables to leave out entirely, as <database>.<table>, e.g. app.sessions (default: none)'),
    users: z
      .boolean()
      .default(true)
      .describe(
        'Also dump users and grants as component <source>.users when the account may read them (default: true)',
      ),
  })
  .describe('A MariaDB or MySQL server');

const postgresSourceSchema = z
  .strictObject({
    name: componentName('source'),
    type: z
      .literal('postgres')
      .describe('postgres: PostgreSQL databases, one plain-SQL component per database (pg_dump)'),
    host: z
      .string()
      .min(1)
      .default('127.0.0.1')
      .describe('Server host name, address or socket directory (default: 127.0.0.1)'),
    port: port(5432),
    user: z.string().min(1).describe('Role that dumps; pg_read_all_data (PostgreSQL 14+) is enough'),
    ...passwordKeys,
    databases: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe('Databases to dump (default: every database that accepts connections, except templates)'),
    excludeDatabases: nameList('Databases to leave out (default: none)'),
    excludeTables: nameList(
      'Tables to leave out entirely, as <database>.<schema>.<table> or <database>.<table> for schema public (default: none)',
    ),
    globals: z
      .boolean()
      .default(true)
      .describe(
        'Also dump roles and tablespaces (pg_dumpall --globals-only) as component <source>.globals (default: true)',
      ),
  })
  .describe('A PostgreSQL server');

const systemSourceSchema = z
  .strictObject({
    name: componentName('source'),
    type: z
      .literal('system')
      .describe(
        'system: what rebuilding this server needs: crontabs, web server and PHP-FPM config, units, certificates, package list',
      ),
    root: localPath('The root of the system to capture (default: /; tests point it at a fixture tree)').default('/'),
    exclude: nameList('Glob patterns of paths to leave out, relative to root (default: none)'),
    allowUnencryptedSecrets: z
      .boolean()
      .default(false)
      .describe(
        'Write the <name>.secrets component (TLS and SSH private keys, .env files) even without encryption ' +
          '(default: false: without encryption the job is refused)',
      ),
  })
  .describe("The server's own configuration");

/** Every source kind. Add a kind here (its schema above) and the union, types and messages follow. */
const sourceKinds = [
  filesSourceSchema,
  sqliteSourceSchema,
  commandSourceSchema,
  mariadbSourceSchema,
  postgresSourceSchema,
  systemSourceSchema,
] as const;
const sourceSchema = z.discriminatedUnion('type', sourceKinds).describe('Something to back up');

// ---------------------------------------------------------------------------------------------
// Targets

/** Whether `Intl` knows `name` as a time zone (IANA names such as UTC or Europe/Berlin). */
function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** A keep rule: a whole number of sets or buckets, -1 for unlimited. */
function keepRule(description: string, example: number) {
  return z
    .int({ error: (issue) => `${JSON.stringify(issue.input)} is not a whole number; write e.g. ${example}, or -1` })
    .min(-1, { error: 'must be 0 or more, or -1 for unlimited' })
    .optional()
    .describe(`${description} (-1: unlimited; 0 or absent: off)`);
}

const bucketRule = (unit: string, example: number) =>
  keepRule(`Keep the newest set of each of the N newest ${unit} that hold sets`, example);

const retentionSchema = z
  .strictObject({
    last: keepRule('Keep the N newest sets', 3),
    hourly: bucketRule('hours', 24),
    daily: bucketRule('days', 7),
    weekly: bucketRule('ISO weeks (Monday to Sunday)', 4),
    monthly: bucketRule('months', 12),
    yearly: bucketRule('years', 3),
    timeZone: z
      .string()
      .refine(isTimeZone, {
        error: (issue) =>
          `${JSON.stringify(issue.input)} is not a time zone; use an IANA name such as UTC or Europe/Berlin`,
      })
      .default('UTC')
      .describe('IANA time zone in which hours, days, weeks, months and years begin (default: UTC)'),
  })
  .describe(
    'Which committed sets `prune` (and each successful backup) keeps on this target, as restic forget --keep-*: ' +
      'a set kept by any rule stays; suspect and corrupt sets never count and are never deleted; the newest ' +
      'verified set always stays. Without retention, nothing is pruned',
  );

/** Keys every target kind has for pruning. */
const retentionKeys = {
  retention: retentionSchema.optional(),
  // Optional rather than defaulted: absent means false, and configs read back stay as written.
  appendOnly: z
    .boolean()
    .optional()
    .describe(
      'Never prune this target from this host, whatever its retention says: prune it from elsewhere, or rely on ' +
        'S3 Object Lock or NAS snapshots (default: false)',
    ),
};

const localTargetSchema = z
  .strictObject({
    name: componentName('target'),
    type: z.literal('local').describe('local: a directory on a filesystem of this machine'),
    path: localPath('The directory backups go to (absolute, or relative to this config file)'),
    optional: z
      .boolean()
      .default(false)
      .describe('When true, this target failing makes the run a warning instead of a failure (default: false)'),
    ...retentionKeys,
  })
  .describe('A directory on this machine (a local disk or a mounted NAS)');

const optionalKey = z
  .boolean()
  .default(false)
  .describe('When true, this target failing makes the run a warning instead of a failure (default: false)');

const sftpTargetSchema = z
  .strictObject({
    name: componentName('target'),
    type: z.literal('sftp').describe('sftp: a NAS or server over SSH/SFTP'),
    host: z.string().min(1).describe('SSH server host name or address'),
    port: port(22),
    user: z.string().min(1).describe('SSH user'),
    identityFile: localPath('Private key file for the SSH user (key authentication only)'),
    passphraseFile: localPath("File holding the private key's passphrase, if it has one").optional(),
    knownHosts: localPath("known_hosts file holding the server's host key; an unknown or changed key is a failure"),
    acceptNewHostKey: z
      .boolean()
      .default(false)
      .describe('Pin the host key into knownHosts the first time the server is seen (default: false)'),
    path: z
      .string()
      .min(1)
      .describe('Directory on the server that backups go to (absolute, or relative to the login directory)'),
    optional: optionalKey,
    ...retentionKeys,
  })
  .describe('A NAS or any SSH server, over SFTP');

const s3TargetSchema = z
  .strictObject({
    name: componentName('target'),
    type: z
      .literal('s3')
      .describe('s3: S3-compatible object storage (AWS, MinIO, Ceph, Backblaze, Wasabi, Synology C2)'),
    endpoint: z.url().optional().describe('Endpoint URL, e.g. https://s3.example.com (default: AWS for the region)'),
    region: z.string().min(1).default('us-east-1').describe('Region (default: us-east-1)'),
    bucket: z.string().min(3).max(63).describe('Bucket name; it must exist'),
    prefix: z.string().default('').describe('Key prefix inside the bucket, e.g. srv1/ (default: the bucket root)'),
    forcePathStyle: z
      .boolean()
      .default(false)
      .describe('Path-style URLs (endpoint/bucket/key), needed by most self-hosted servers (default: false)'),
    accessKeyId: z.string().min(1).optional().describe('Access key id (default: from the environment or AWS config)'),
    secretAccessKeyFile: localPath('File holding the secret access key').optional(),
    secretAccessKeyEnv: z
      .string()
      .regex(ENV_NAME, { error: 'is not an environment variable name' })
      .optional()
      .describe('Name of an environment variable holding the secret access key'),
    partSize: size()
      .optional()
      .describe('Multipart part size, e.g. 16MiB (default: chosen from the size estimate, at least 8MiB)'),
    optional: optionalKey,
    ...retentionKeys,
  })
  .describe('An S3-compatible bucket');

/** Every target kind. Add a kind here (its schema above). */
const targetKinds = [localTargetSchema, sftpTargetSchema, s3TargetSchema] as const;
const targetSchema = z.discriminatedUnion('type', targetKinds).describe('A place backups are written to');

// ---------------------------------------------------------------------------------------------
// Hooks, monitoring, scheduling

const DEFAULT_HOOK_TIMEOUT = '5m';

const hookCommand = z
  .string()
  .min(1, { error: 'is empty; write the command to run' })
  .describe('The command, run by /bin/sh -c with the environment described in docs/operations.md ("Hooks")');

/** A hook is text or { command, timeout }: name the problem in the form that was written. */
function hookProblem(issue: { input?: unknown; errors?: readonly (readonly z.core.$ZodIssue[])[] }): string {
  const input = issue.input;
  const problem = issue.errors?.[1]?.[0];
  if (typeof input === 'object' && input !== null && !Array.isArray(input) && problem) {
    if (problem.code === 'unrecognized_keys') {
      return `unknown key ${problem.keys.map((k) => `"${k}"`).join(', ')}; a hook has only command and timeout`;
    }
    const key = problem.path.join('.');
    if ((input as Record<string, unknown>)[key] === undefined) return `"${key}" is missing; write the command to run`;
    // Messages zod made up start with NUL (see config/errors.ts); ours say what to write.
    return `${key}: ${problem.message.startsWith('\u0000') ? 'expected text' : problem.message}`;
  }
  return `write the command as text, or as { command: "…", timeout: 30s } (default timeout: ${DEFAULT_HOOK_TIMEOUT})`;
}

const hookSchema = z
  .union(
    [
      hookCommand,
      z.strictObject({
        command: hookCommand,
        timeout: duration()
          .prefault(DEFAULT_HOOK_TIMEOUT)
          .describe(
            `Kill the hook and everything it started after this long, e.g. 30s (default: ${DEFAULT_HOOK_TIMEOUT})`,
          ),
      }),
    ],
    { error: hookProblem },
  )
  .transform((hook) =>
    typeof hook === 'string' ? { command: hook, timeout: parseDuration(DEFAULT_HOOK_TIMEOUT) } : hook,
  )
  .describe(`A shell command, or { command, timeout } (default timeout: ${DEFAULT_HOOK_TIMEOUT})`);

function hookList(description: string) {
  return z.array(hookSchema).default([]).describe(`${description} (default: none)`);
}

const hooksSchema = z
  .strictObject({
    before: hookList(
      'Run in order after the lock and preflight, before any source is read or anything is written ' +
        '(e.g. maintenance mode on); the first one that fails stops the run, which fails with nothing written',
    ),
    after: hookList(
      'Run in order at the end of every backup run, whatever its outcome, which they see in BACKPROOF_STATUS ' +
        '(e.g. maintenance mode off); one that fails turns a success into a warning',
    ),
    onError: hookList('Run in order when the backup run failed, before the after hooks'),
  })
  .describe('Commands run around each backup run; their output, exit code and duration go in the run report');

const metricsTextfile = localPath(
  "File written after each backup run for node_exporter's textfile collector (Prometheus text format, " +
    'replaced atomically, mode 0644), e.g. /var/lib/node_exporter/textfile_collector/backproof.prom',
)
  .refine((path) => path.endsWith('.prom'), { error: 'must end in .prom: node_exporter reads only *.prom files' })
  .describe(
    "File written after each backup run for node_exporter's textfile collector (Prometheus text format, " +
      'replaced atomically, mode 0644), e.g. /var/lib/node_exporter/textfile_collector/backproof.prom',
  );
localPathSchemas.add(metricsTextfile);

const metricsSchema = z
  .strictObject({ textfile: metricsTextfile.optional() })
  .describe('Monitoring: metrics named backproof_*, also served at /metrics by `backproof serve`');

function scheduleOf(what: string, fallback: string) {
  return z
    .union([
      z.literal(false),
      z.string().superRefine((text, ctx) => {
        try {
          parseSchedule(text);
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: messageOf(error), input: text });
        }
      }),
    ])
    .default(fallback)
    .describe(
      `When to run ${what}: hourly, daily, weekly (Monday), monthly or a cron expression like "30 2 * * *" ` +
        `(local time; 6 fields: seconds first); false: never (default: ${fallback})`,
    );
}

const scheduleSchema = z
  .strictObject({
    backup: scheduleOf('`backproof backup`', 'daily'),
    // Far from the nightly backup: a backup started by 00:30 ends by 06:30 at the default maxDuration.
    verify: scheduleOf('`backproof verify --set all`', '0 7 * * 0'),
    drill: scheduleOf('`backproof drill`', '0 7 * * 3'),
    randomizedDelay: z
      .string({ error: (issue) => `${JSON.stringify(issue.input)} is not a duration; write it like 30m, or 0s` })
      .transform(parsedWith(parseDuration))
      .prefault('30m')
      .describe(
        'Each run starts up to this much later, at random, so many servers do not start together (default: 30m)',
      ),
  })
  .describe('When `schedule` (systemd timers, cron) and `daemon` run backup, verify and drill');

// ---------------------------------------------------------------------------------------------
// Notifications

/** What can notify. Pure decisions and messages: src/notify/. */
export const NOTIFY_EVENTS = [
  'failure',
  'warning',
  'recovery',
  'success',
  'drill-failure',
  'verify-failure',
  'lock-stuck',
] as const;
export type NotifyEventKind = (typeof NOTIFY_EVENTS)[number];

/** Where a secret URL comes from: a file or the environment; `url` only for URLs that are not secret. */
function urlKeys(what: string) {
  return {
    url: z
      .url({ protocol: /^https?$/, error: 'is not an http:// or https:// URL' })
      .optional()
      .describe(`The ${what} URL, only when it is not secret (most are: prefer urlFile)`),
    urlFile: localPath(
      `File holding the ${what} URL (mode 0600, one line): the URL is a credential, keep it out of the config`,
    ).optional(),
    urlEnv: z
      .string()
      .regex(ENV_NAME, { error: 'is not an environment variable name' })
      .optional()
      .describe(`Name of an environment variable holding the ${what} URL (instead of urlFile)`),
  };
}

/** Exactly one of url, urlFile and urlEnv. */
function oneUrl(
  value: { url?: string | undefined; urlFile?: string | undefined; urlEnv?: string | undefined },
  ctx: z.RefinementCtx,
) {
  const given = (['url', 'urlFile', 'urlEnv'] as const).filter((key) => value[key] !== undefined);
  if (given.length === 1) return;
  ctx.addIssue({
    code: 'custom',
    path: given.length === 0 ? [] : [given[1] as string],
    message:
      given.length === 0
        ? 'has no URL; give urlFile (a file holding the URL), urlEnv, or url when it is not secret'
        : `gives ${given.join(' and ')}; give only one`,
    input: value,
  });
}

const channelName = z
  .string()
  .regex(COMPONENT_NAME, {
    error: 'is not a valid channel name; use letters, digits, "_" and "-", at most 63 characters',
  })
  .optional()
  .describe(
    'Name of this channel in status and the state database (default: its type, numbered from the second ' +
      'channel of a type on: webhook, webhook-2)',
  );

const requestTimeout = duration()
  .prefault('10s')
  .describe('Give up one delivery attempt after this long (default: 10s); transient errors are tried 3 times in all');

/** Keys of every channel that sends alerts (all but healthchecks, which pings every run). */
const alertKeys = {
  on: z
    .array(z.enum(NOTIFY_EVENTS))
    .min(1)
    .default(['failure', 'warning', 'recovery'])
    .describe(
      'Events that notify: failure, warning, recovery (the first good run after failures), success, ' +
        'drill-failure, verify-failure, lock-stuck (a run found the lock held longer than objectives.rpo) ' +
        '(default: failure, warning, recovery)',
    ),
  repeatEvery: duration()
    .prefault('24h')
    .describe(
      'The same failure again (same step, target and component) is notified once, then at most this often ' +
        'while it lasts; a recovery always notifies (default: 24h)',
    ),
  timeout: requestTimeout,
};

const SMTP_URL = /^smtps?:\/\//i;

/** The parts of an `smtp` URL the schema checks; the email notifier parses it the same way. */
export function parseSmtpUrl(text: string): { secure: boolean; host: string; port: number; user: string | undefined } {
  if (!SMTP_URL.test(text))
    throw new Error(`"${text}" is not an SMTP URL; write it like smtp://user@mail.example.com:587`);
  const url = new URL(text);
  if (url.hostname === '') throw new Error(`"${text}" names no server; write it like smtp://user@mail.example.com:587`);
  if (url.password !== '') throw new Error('holds a password; put it in passwordFile (or passwordEnv) instead');
  if (url.pathname !== '' && url.pathname !== '/') throw new Error('has a path; write only smtp://user@host:port');
  const secure = url.protocol === 'smtps:';
  return {
    secure,
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port === '' ? (secure ? 465 : 587) : Number(url.port),
    user: url.username === '' ? undefined : decodeURIComponent(url.username),
  };
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|::1)$/i;

const emailNotifySchema = z
  .strictObject({
    type: z.literal('email').describe('email: a message over SMTP'),
    name: channelName,
    smtp: z
      .string()
      .min(1)
      .describe(
        'The mail server as a URL: smtp://user@host:587 (STARTTLS) or smtps://user@host:465 (TLS from the start); ' +
          'the user logs in with passwordFile; no password in the URL',
      ),
    security: z
      .enum(['starttls', 'tls', 'none'])
      .optional()
      .describe(
        'starttls: upgrade with STARTTLS, and refuse a server that cannot (default for smtp://); tls: TLS from ' +
          'the first byte (default for smtps://); none: no TLS, only for a relay on this machine',
      ),
    caFile: localPath(
      'PEM file of the CA that signed the mail server certificate (default: the system CAs)',
    ).optional(),
    ...passwordKeys,
    from: z.string().min(1).describe('Sender address, e.g. backproof@example.com'),
    to: z.array(z.string().min(1)).min(1).describe('Recipient addresses, at least one'),
    ...alertKeys,
  })
  .superRefine((email, ctx) => {
    let smtp: ReturnType<typeof parseSmtpUrl>;
    try {
      smtp = parseSmtpUrl(email.smtp);
    } catch (error) {
      ctx.addIssue({ code: 'custom', path: ['smtp'], message: messageOf(error), input: email.smtp });
      return;
    }
    const hasPassword = email.passwordFile !== undefined || email.passwordEnv !== undefined;
    if (hasPassword && smtp.user === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['smtp'],
        message: 'names no user to log in with the password; write it like smtp://user@host:587',
        input: email.smtp,
      });
    }
    if (email.passwordFile !== undefined && email.passwordEnv !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['passwordEnv'], message: 'give passwordFile or passwordEnv, not both' });
    }
    if (email.security === 'none' && hasPassword && !LOOPBACK.test(smtp.host)) {
      ctx.addIssue({
        code: 'custom',
        path: ['security'],
        message: `none would send the password to ${smtp.host} in clear text; use starttls or tls`,
        input: email.security,
      });
    }
  })
  .describe('An e-mail over SMTP');

function urlChannel<T extends string>(type: T, description: string, what: string) {
  return z
    .strictObject({
      type: z.literal(type).describe(description),
      name: channelName,
      ...urlKeys(what),
      ...alertKeys,
    })
    .superRefine(oneUrl)
    .describe(description);
}

const webhookNotifySchema = urlChannel(
  'webhook',
  'webhook: a JSON POST of the event (kind, job, subject, text, facts)',
  'webhook',
);
const slackNotifySchema = urlChannel('slack', 'slack: a Slack incoming webhook', 'Slack incoming-webhook');
const discordNotifySchema = urlChannel('discord', 'discord: a Discord webhook', 'Discord webhook');

const ntfyNotifySchema = z
  .strictObject({
    type: z.literal('ntfy').describe('ntfy: a push message to an ntfy topic'),
    name: channelName,
    ...urlKeys('ntfy topic (e.g. https://ntfy.sh/<topic>)'),
    priority: z
      .enum(['min', 'low', 'default', 'high', 'urgent'])
      .optional()
      .describe('Priority of every message (default: high for failures, default for the rest)'),
    tags: z.array(z.string().min(1)).default([]).describe('Tags added to every message (default: none)'),
    tokenFile: localPath('File holding an ntfy access token, sent as a bearer token (default: none)').optional(),
    tokenEnv: z
      .string()
      .regex(ENV_NAME, { error: 'is not an environment variable name' })
      .optional()
      .describe('Name of an environment variable holding the ntfy access token (instead of tokenFile)'),
    ...alertKeys,
  })
  .superRefine(oneUrl)
  .describe('An ntfy topic');

const healthchecksNotifySchema = z
  .strictObject({
    type: z
      .literal('healthchecks')
      .describe(
        'healthchecks: pings URL/start when a backup starts, URL when it committed a set, URL/fail with the ' +
          "run's log when it failed; the service alerts when pings stop (a dead man's switch)",
      ),
    name: channelName,
    ...urlKeys('ping (e.g. https://hc-ping.com/<uuid>)'),
    timeout: requestTimeout,
  })
  .superRefine(oneUrl)
  .describe("A healthchecks.io-style ping URL: a dead man's switch");

/** Every notification channel kind. */
const notifyKinds = [
  emailNotifySchema,
  webhookNotifySchema,
  slackNotifySchema,
  discordNotifySchema,
  ntfyNotifySchema,
  healthchecksNotifySchema,
] as const;
const notifyChannelSchema = z.discriminatedUnion('type', notifyKinds).describe('Where notifications go');

/** Each channel's name: its own, or its type numbered from the second of a type (webhook, webhook-2). */
export function notifyChannelNames(channels: readonly { type: string; name?: string | undefined }[]): string[] {
  const seen = new Map<string, number>();
  return channels.map((channel) => {
    if (channel.name !== undefined) return channel.name;
    const n = (seen.get(channel.type) ?? 0) + 1;
    seen.set(channel.type, n);
    return n === 1 ? channel.type : `${channel.type}-${n}`;
  });
}

const notifySchema = z
  .array(notifyChannelSchema)
  .default([])
  .superRefine((channels, ctx) => {
    const names = notifyChannelNames(channels);
    names.forEach((name, index) => {
      const first = names.indexOf(name);
      if (first !== index) {
        ctx.addIssue({
          code: 'custom',
          path: [index, 'name'],
          message: `two channels are named "${name}" (also notify[${first}]); give each its own name`,
          input: name,
        });
      }
    });
  })
  .describe('Who hears about failures, warnings, recoveries, failed drills and verifies, and stuck locks');

// ---------------------------------------------------------------------------------------------
// Job

const levelError = (issue: { input?: unknown }) =>
  `${issue.input} is not a compression level; use 1 to 19 for zstd, 1 to 9 for gzip`;

const compressionSchema = z
  .strictObject({
    algorithm: z.enum(['zstd', 'gzip']).default('zstd').describe('zstd (default) or gzip'),
    level: z
      .int()
      .min(1, { error: levelError })
      .max(19, { error: levelError })
      .default(3)
      .describe('Compression level: zstd 1 to 19, gzip 1 to 9 (default: 3)'),
  })
  .superRefine((compression, ctx) => {
    // zstd's range is the schema's; gzip stops at 9.
    if (compression.algorithm === 'gzip' && compression.level > 9 && compression.level <= 19) {
      ctx.addIssue({
        code: 'custom',
        path: ['level'],
        message: `${compression.level} is not a gzip level; use 1 to 9`,
        input: compression.level,
      });
    }
  });

const checksSchema = z.strictObject({
  minFree: z
    .strictObject({
      bytes: size()
        .prefault('1GB')
        .describe('Absolute floor: at least this much must stay free, e.g. 1GB or 500MiB (default: 1GB)'),
      percent: percent(100)
        .prefault('10%')
        .describe('At least this share of the filesystem must stay free, e.g. 10% (default: 10%)'),
    })
    .prefault({})
    .describe('Free space that must remain on every local filesystem written to, after the estimated backup'),
  stallTimeout: duration()
    .prefault('10m')
    .describe('Fail the run when no bytes have moved for this long (default: 10m)'),
  maxDuration: duration().prefault('6h').describe('Fail the run when it takes longer than this (default: 6h)'),
});

// ---------------------------------------------------------------------------------------------
// Anomalies

/** A threshold in basis points: more than 0, at most `max` percent. */
function threshold(max: number, fallback: string, description: string) {
  return percent(max)
    .refine((bp) => bp > 0, { error: 'is 0%; write a threshold above 0%, like 20%' })
    .prefault(fallback)
    .describe(`${description} (default: ${fallback})`);
}

const anomaliesSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(true)
      .describe('Compare each new set with the recent ones before committing it (default: true)'),
    window: z
      .int()
      .min(1)
      .max(1000)
      .default(7)
      .describe('How many of the newest committed, non-suspect sets make the baseline (their median) (default: 7)'),
    minHistory: z
      .int()
      .min(1)
      .max(1000)
      .default(3)
      .describe('Judge nothing until this many sets exist, so first runs raise no false alarms (default: 3)'),
    dropWarn: threshold(100, '20%', 'A size, file count or row count this much below the baseline warns'),
    dropFail: threshold(
      1000,
      '50%',
      'A drop this large fails the run; the set is still committed, marked suspect (above 100%: never fails)',
    ),
    growthWarn: threshold(100000, '100%', 'Growth this much above the baseline warns'),
    ratioJumpWarn: threshold(
      100,
      '30%',
      'A compression ratio this much below the baseline warns: data that stops compressing may be encrypted',
    ),
  })
  .superRefine((anomalies, ctx) => {
    if (anomalies.window >= 1 && anomalies.minHistory > anomalies.window) {
      ctx.addIssue({
        code: 'custom',
        path: ['minHistory'],
        message: `${anomalies.minHistory} is more than window (${anomalies.window}), so no baseline could ever form; lower minHistory or raise window`,
        input: anomalies.minHistory,
      });
    }
  });

// ---------------------------------------------------------------------------------------------
// Drills

function drillServerSchema(kind: 'mariadb' | 'postgres', defaultPort: number) {
  return z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1').describe('Server host name or address (default: 127.0.0.1)'),
      port: port(defaultPort),
      socket: localPath('Unix socket of the server; when set, host and port are not used').optional(),
      user: z
        .string()
        .min(1)
        .describe(
          kind === 'mariadb'
            ? 'Account the drill uses; needs CREATE, DROP and ALL on backproof\\_drill\\_% databases'
            : 'Role the drill uses; needs CREATEDB (it creates and drops backproof_drill_* databases)',
        ),
      ...passwordKeys,
    })
    .describe(`The ${kind} server drills load ${kind} components into (a scratch database, dropped afterwards)`);
}

const drillAssertionSchema = z
  .strictObject({
    component: z.string().min(1).describe('Database component the query runs in, e.g. main.app'),
    sql: z.string().min(1).describe('A query returning one value, e.g. SELECT count(*) FROM users'),
    min: z.number().optional().describe('The value must be at least this'),
    max: z.number().optional().describe('The value must be at most this'),
    equals: z.union([z.string(), z.number()]).optional().describe('The value must equal this'),
  })
  .refine((a) => a.min !== undefined || a.max !== undefined || a.equals !== undefined, {
    error: 'says nothing to check; give min, max or equals',
  })
  .describe('A check on the restored data');

const drillSchema = z
  .strictObject({
    mariadb: drillServerSchema('mariadb', 3306).optional(),
    postgres: drillServerSchema('postgres', 5432).optional(),
    workDir: localPath(
      'Where the drill fetches and extracts sets (default: <stateDir>/drill); needs room for the largest set',
    ).optional(),
    assertions: z.array(drillAssertionSchema).default([]).describe('SQL checks run on the restored databases'),
    maxAge: duration()
      .prefault('8d')
      .describe('status is unhealthy when the newest drill is older than this (default: 8d, a weekly drill and a day)'),
  })
  .describe('Restore drills: where database components are loaded to prove they restore');

// ---------------------------------------------------------------------------------------------
// Encryption

/** An age X25519 recipient as `age-keygen` prints it; the checksum is checked when the run starts. */
const AGE_RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;

const encryptionSchema = z
  .strictObject({
    recipients: z
      .array(
        z.string().regex(AGE_RECIPIENT, {
          error: 'is not an age public key; write it as age-keygen prints it: "age1" and 58 more characters',
        }),
      )
      .optional()
      .describe('age X25519 public keys (age1…): every set can be opened by any one of their private keys'),
    recipientsFile: localPath(
      'A file of age public keys, one per line, "#" comments allowed (the format of age -R)',
    ).optional(),
    identityFile: localPath(
      'The age private key file (age-keygen output): needed only to restore, drill and check contents, never to back up',
    ).optional(),
  })
  .superRefine((encryption, ctx) => {
    if ((encryption.recipients?.length ?? 0) === 0 && encryption.recipientsFile === undefined) {
      ctx.addIssue({
        code: 'custom',
        message:
          'names no recipient: give recipients: ["age1…"] or recipientsFile (create a key with `age-keygen -o key.txt`; ' +
          'its public key is printed and is the recipient)',
        input: encryption,
      });
    }
  })
  .describe(
    'Client-side encryption in the age format: objects leave this host encrypted; restore with `age -d -i KEY`',
  );

const jobObjectSchema = z
  .strictObject({
    job: z
      .string()
      .regex(JOB_NAME, {
        error:
          'is not a valid job name; use letters, digits, ".", "_" and "-", ' +
          'starting with a letter or digit, at most 63 characters',
      })
      .describe('Name of this job; it becomes a directory name on every target, e.g. api-gateway'),
    stateDir: localPath(
      'Where the state database and lock live (default: /var/lib/backproof as root, ' +
        'otherwise $XDG_STATE_HOME/backproof or ~/.local/state/backproof)',
    ).optional(),
    objectives: z
      .strictObject({
        rpo: duration()
          .optional()
          .describe('Recovery point objective: the newest verified backup must be younger than this, e.g. 26h'),
        rto: duration()
          .optional()
          .describe('Recovery time objective: a restore drill must finish within this, e.g. 4h'),
      })
      .optional()
      .describe('What "healthy" means for status and alerts'),
    sources: uniqueNames(z.array(sourceSchema).min(1), 'source', 'sources').describe(
      'What to back up: a list of sources, each with a unique name and a type',
    ),
    targets: uniqueNames(z.array(targetSchema).min(1), 'target', 'targets').describe(
      'Where backups go: a list of targets, each with a unique name and a type',
    ),
    fanOut: z
      .enum(['direct', 'staged'])
      .optional()
      .describe(
        'direct: one read of each source feeds every target at once; staged: sources go to the local target ' +
          'first and other targets are fed from that verified copy (default: staged when a local target exists)',
      ),
    compression: compressionSchema.prefault({}).describe('How components are compressed (default: zstd level 3)'),
    encryption: encryptionSchema.optional(),
    checks: checksSchema.prefault({}).describe('Preflight free-space floor and the timeouts that fail a hung run'),
    anomalies: anomaliesSchema
      .prefault({})
      .describe(
        'Anomaly checks: each component against the median of recent sets (sizes, compression ratio, files, rows, vanished tables)',
      ),
    drill: drillSchema.optional(),
    notify: notifySchema,
    hooks: hooksSchema.prefault({}),
    metrics: metricsSchema.optional(),
    schedule: scheduleSchema.prefault({}),
  })
  .superRefine((job, ctx) => {
    if (job.encryption !== undefined) return;
    job.sources.forEach((source, index) => {
      if (source.type === 'system' && !source.allowUnencryptedSecrets) {
        ctx.addIssue({
          code: 'custom',
          path: ['sources', index],
          message:
            `the system source "${source.name}" captures private keys and .env files, which must not leave this host ` +
            'unencrypted: add encryption: { recipients: ["age1…"] } (see `age-keygen`), or set ' +
            'allowUnencryptedSecrets: true on this source if the targets are trusted',
          input: source,
        });
      }
    });
  })
  .describe('A backproof job: what to back up, where to, and what counts as healthy');

/** The whole config file. Parse with this; defaults applied, units converted, stateDir filled in. */
export const jobConfigSchema = jobObjectSchema.transform((config) => ({
  ...config,
  stateDir: config.stateDir ?? defaultStateDir(),
}));

export type FilesSourceConfig = z.output<typeof filesSourceSchema>;
export type SqliteSourceConfig = z.output<typeof sqliteSourceSchema>;
export type CommandSourceConfig = z.output<typeof commandSourceSchema>;
export type SourceConfig = z.output<typeof sourceSchema>;
export type MariadbSourceConfig = z.output<typeof mariadbSourceSchema>;
export type PostgresSourceConfig = z.output<typeof postgresSourceSchema>;
export type SystemSourceConfig = z.output<typeof systemSourceSchema>;
export type LocalTargetConfig = z.output<typeof localTargetSchema>;
export type SftpTargetConfig = z.output<typeof sftpTargetSchema>;
export type S3TargetConfig = z.output<typeof s3TargetSchema>;
export type TargetConfig = z.output<typeof targetSchema>;
export type RetentionConfig = z.output<typeof retentionSchema>;
export type JobConfig = z.output<typeof jobConfigSchema>;
export type DrillConfig = z.output<typeof drillSchema>;
export type EncryptionConfig = z.output<typeof encryptionSchema>;
export type DrillServerConfig = NonNullable<DrillConfig['mariadb']>;
export type NotifyChannelConfig = z.output<typeof notifyChannelSchema>;
export type EmailNotifyConfig = z.output<typeof emailNotifySchema>;
export type NtfyNotifyConfig = z.output<typeof ntfyNotifySchema>;
export type AnomaliesConfig = z.output<typeof anomaliesSchema>;
export type HookConfig = z.output<typeof hookSchema>;
export type ScheduleConfig = z.output<typeof scheduleSchema>;

/** The JSON Schema of the config file as written (units as strings), for editors and `config schema`. */
export function configJsonSchema(): object {
  return z.toJSONSchema(jobConfigSchema, { io: 'input' });
}

/**
 * The default state directory: /var/lib/backproof for root; otherwise $XDG_STATE_HOME/backproof
 * (when absolute, as the XDG spec requires) or ~/.local/state/backproof.
 */
export function defaultStateDir(
  uid: number | undefined = process.getuid?.(),
  env: NodeJS.ProcessEnv = process.env,
  home: string = homedir(),
): string {
  if (uid === 0) return '/var/lib/backproof';
  const stateHome = env.XDG_STATE_HOME;
  if (stateHome !== undefined && isAbsolute(stateHome)) return join(stateHome, 'backproof');
  return join(home, '.local', 'state', 'backproof');
}

// ---------------------------------------------------------------------------------------------
// Walking the schema (for error messages and path resolution)

/** The schema inside optional/default/prefault/pipe wrappers, with any description found on the way. */
function unwrapped(schema: z.ZodType): { schema: z.ZodType; description: string | undefined; isPath: boolean } {
  let current = schema;
  let description = current.description;
  let isPath = localPathSchemas.has(current);
  for (;;) {
    let inner: z.ZodType | undefined;
    if (current instanceof z.ZodOptional || current instanceof z.ZodDefault || current instanceof z.ZodPrefault) {
      inner = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodPipe) {
      inner = current.in as z.ZodType;
    }
    if (inner === undefined) return { schema: current, description, isPath };
    current = inner;
    description ??= current.description;
    isPath ||= localPathSchemas.has(current);
  }
}

/** The option of a discriminated union that `value` selects, if any. */
function selectedOption(union: z.ZodDiscriminatedUnion, value: unknown): z.ZodType | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const discriminator = union.def.discriminator;
  const tag = (value as Record<string, unknown>)[discriminator];
  return union.options.find((option) => (option as z.ZodType)._zod.propValues?.[discriminator]?.has(tag as never)) as
    | z.ZodType
    | undefined;
}

/** The schema for `key` of `value`, where `value` is validated by `schema`. */
function childSchema(schema: z.ZodType, key: PropertyKey, value: unknown): z.ZodType | undefined {
  const inner = unwrapped(schema).schema;
  if (inner instanceof z.ZodObject) return (inner.shape as Record<PropertyKey, z.ZodType>)[key];
  if (inner instanceof z.ZodArray) return inner.element as z.ZodType;
  if (inner instanceof z.ZodDiscriminatedUnion) {
    const option = selectedOption(inner, value);
    return option === undefined ? undefined : childSchema(option, key, value);
  }
  if (inner instanceof z.ZodUnion) {
    const option = mapOption(inner, value);
    return option === undefined ? undefined : childSchema(option, key, value);
  }
  return undefined;
}

/** The map option of a plain union (text or a map, like a hook), when `value` is a map. */
function mapOption(union: z.ZodUnion, value: unknown): z.ZodType | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return (union.options as readonly z.ZodType[]).find((option) => unwrapped(option).schema instanceof z.ZodObject);
}

function childValue(value: unknown, key: PropertyKey): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<PropertyKey, unknown>)[key] : undefined;
}

/** What the config schema says about the key at `path` of the input `value` (undefined if nothing). */
export function schemaAt(path: readonly PropertyKey[], input: unknown): SchemaInfo | undefined {
  let schema: z.ZodType | undefined = jobConfigSchema;
  let value = input;
  for (const key of path) {
    schema = schema === undefined ? undefined : childSchema(schema, key, value);
    value = childValue(value, key);
  }
  if (schema === undefined) return undefined;
  const { schema: inner, description } = unwrapped(schema);
  const selected =
    inner instanceof z.ZodDiscriminatedUnion
      ? selectedOption(inner, value)
      : inner instanceof z.ZodUnion
        ? mapOption(inner, value)
        : undefined;
  const object = selected === undefined ? inner : unwrapped(selected).schema;
  return {
    description,
    keys: object instanceof z.ZodObject ? Object.keys(object.shape) : undefined,
  };
}

export interface SchemaInfo {
  /** The key's description (what it is for). */
  description: string | undefined;
  /** The keys allowed when the value is a map. */
  keys: string[] | undefined;
}

/** Resolves every path-valued string (source paths, target paths, stateDir) against `baseDir`. */
export function resolveConfigPaths(config: JobConfig, baseDir: string): JobConfig {
  return resolvePathsIn(jobConfigSchema, config, baseDir) as JobConfig;
}

function resolvePathsIn(schema: z.ZodType, value: unknown, baseDir: string): unknown {
  const { schema: inner, isPath } = unwrapped(schema);
  if (isPath && typeof value === 'string') return resolve(baseDir, value);
  if (Array.isArray(value)) {
    return inner instanceof z.ZodArray
      ? value.map((item) => resolvePathsIn(inner.element as z.ZodType, item, baseDir))
      : value;
  }
  if (typeof value !== 'object' || value === null) return value;
  const selected = inner instanceof z.ZodDiscriminatedUnion ? selectedOption(inner, value) : inner;
  const object = selected === undefined ? undefined : unwrapped(selected).schema;
  if (!(object instanceof z.ZodObject)) return value;
  const shape = object.shape as Record<string, z.ZodType>;
  return Object.fromEntries(
    Object.entries(value).map(([key, child]) => {
      const childSchemaOf = shape[key];
      return [key, childSchemaOf === undefined ? child : resolvePathsIn(childSchemaOf, child, baseDir)];
    }),
  );
}
