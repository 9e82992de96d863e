// The config schema: the single source of truth for validation, defaults, the output types the
// rest of backproof uses, the JSON Schema (`config schema`) and the help text editors show.
// Adding a source or target kind: write its strict object below and add it to `sourceKinds` or
// `targetKinds`; error messages, JSON Schema and path resolution follow from the schema itself.
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { messageOf } from '../lib/errors.js';
import { parseDuration, parsePercent, parseSize } from '../lib/units.js';

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

const localTargetSchema = z
  .strictObject({
    name: componentName('target'),
    type: z.literal('local').describe('local: a directory on a filesystem of this machine'),
    path: localPath('The directory backups go to (absolute, or relative to this config file)'),
    optional: z
      .boolean()
      .default(false)
      .describe('When true, this target failing makes the run a warning instead of a failure (default: false)'),
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
  })
  .describe('An S3-compatible bucket');

/** Every target kind. Add a kind here (its schema above). */
const targetKinds = [localTargetSchema, sftpTargetSchema, s3TargetSchema] as const;
const targetSchema = z.discriminatedUnion('type', targetKinds).describe('A place backups are written to');

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
  })
  .describe('Restore drills: where database components are loaded to prove they restore');

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
    checks: checksSchema.prefault({}).describe('Preflight free-space floor and the timeouts that fail a hung run'),
    drill: drillSchema.optional(),
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
export type JobConfig = z.output<typeof jobConfigSchema>;
export type DrillConfig = z.output<typeof drillSchema>;
export type DrillServerConfig = NonNullable<DrillConfig['mariadb']>;

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
  return undefined;
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
  const selected = inner instanceof z.ZodDiscriminatedUnion ? selectedOption(inner, value) : undefined;
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
