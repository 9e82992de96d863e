// RUNBOOK.md: how to check and restore one set with plain tools (sha256sum, zstd or gzip, tar, age,
// sqlite3, mariadb, psql), written for someone who has never used backproof, reading it at night in
// a terminal. Pure: the same manifest gives the same text (no clock, no environment).
import { formatBytes, formatCount, formatDuration } from '../lib/units.js';
import { setPrefix } from './layout.js';
import type { Manifest, ManifestComponent } from './manifest.js';

export interface RunbookOptions {
  /** Where this set is stored, in words, e.g. `local target "disk" at /var/backups/backproof`. */
  targetDescription: string;
}

/** Placeholders in the commands, named in the runbook's "Before you start" (tests substitute them). */
export const RESTORE_DIR = '/restore';
export const NEW_DATABASE = 'NEWDB';
export const AGE_IDENTITY = 'KEY';

/** Longer lists are cut (the manifest holds them all), so the runbook stays readable. */
const MAX_TABLES = 30;
const MAX_WARNINGS = 10;

/** The Markdown text of RUNBOOK.md for this set. */
export function renderRunbook(manifest: Manifest, options: RunbookOptions): string {
  const components = restoreOrder(manifest.components);
  const sections = [
    header(manifest, options),
    beforeYouStart(manifest),
    checkSection(manifest),
    [`## 2. Restore`, '', ...restoreIntro(components)],
    ...components.map((component, i) => componentSection(manifest, component, i + 1)),
    troubleSection(),
  ];
  return `${sections.map((lines) => lines.join('\n')).join('\n\n')}\n`;
}

// ── What this set is ─────────────────────────────────────────────────────────────────────────

function header(manifest: Manifest, options: RunbookOptions): string[] {
  const lines = [
    `# Restore runbook: set ${code(manifest.setId)} of job ${code(manifest.job)}`,
    '',
    'This directory holds one backup set made by backproof. Everything in it is a standard format, and',
    'every step below uses only standard tools, so you do not need backproof to check or restore it.',
    'Run the steps in order: first check every file (step 1), then restore what you need (step 2).',
    '',
    '## What this set is',
    '',
    `- Job: ${code(manifest.job)}`,
    `- Set: ${code(manifest.setId)}`,
    `- Made on host: ${code(manifest.host)}`,
    `- Started: ${code(manifest.startedAt)} (UTC)`,
    `- Finished: ${code(manifest.finishedAt)} (UTC)${tookText(manifest)}`,
    `- Made by: backproof ${code(manifest.backproofVersion)}`,
    `- Compression: ${code(`${manifest.compression.algorithm} level ${manifest.compression.level}`)}`,
    `- Encryption: ${encryptionText(manifest)}`,
    `- Stored at: ${text(options.targetDescription)}`,
    `- Directory there: ${code(`${setDirectory(manifest)}/`)} (under the target's root)`,
    `- Previous set on that target: ${
      manifest.previous
        ? `${code(manifest.previous.setId)} (its manifest.json has SHA-256 ${code(manifest.previous.manifestSha256)})`
        : 'none (the first set there)'
    }`,
  ];
  if (manifest.suspect) {
    lines.push(
      '',
      '**WARNING: this set is SUSPECT.** An anomaly check failed when it was made (for example a',
      'database shrank by half, or files looked encrypted). It is a faithful copy of what the server',
      'had at that time, which may already have been damaged. Prefer an older set unless you know why.',
    );
  }
  const anomalies = manifest.anomalies.map(anomalyText);
  if (anomalies.length > 0) lines.push('', 'Anomalies found when this set was made:', '', ...bullets(anomalies));
  if (manifest.warnings.length > 0) lines.push('', 'Warnings of the run:', '', ...bullets(manifest.warnings));
  lines.push('', '### Components', '', ...componentTable(manifest.components));
  lines.push('', '### Files in this set', '', ...fileTable(manifest));
  return lines;
}

function tookText(manifest: Manifest): string {
  const ms = Date.parse(manifest.finishedAt) - Date.parse(manifest.startedAt);
  return Number.isSafeInteger(ms) && ms >= 0 ? `, took ${formatDuration(ms)}` : '';
}

function recipients(manifest: Manifest): string[] {
  return manifest.encryption?.recipients ?? [];
}

function encryptionText(manifest: Manifest): string {
  const keys = recipients(manifest);
  if (keys.length === 0) return 'none';
  return `age, for ${keys.length} recipient(s): ${keys.map(code).join(', ')}`;
}

function setDirectory(manifest: Manifest): string {
  try {
    return setPrefix(manifest.job, manifest.setId);
  } catch {
    return `${manifest.job}/…/${manifest.setId}`; // a set id of another shape: the date folders are unknown
  }
}

function anomalyText(anomaly: unknown): string {
  if (typeof anomaly === 'object' && anomaly !== null) {
    const message = (anomaly as { message?: unknown }).message;
    if (typeof message === 'string') return message;
  }
  return JSON.stringify(anomaly) ?? String(anomaly);
}

function componentTable(components: readonly ManifestComponent[]): string[] {
  return table(
    ['Component', 'Kind', 'Object', 'Stored', 'Unpacked', 'Contents'],
    components.map((c) => [
      code(c.name),
      text(c.kind),
      code(c.object),
      formatBytes(c.bytes),
      formatBytes(c.rawBytes),
      contentsText(c),
    ]),
  );
}

function contentsText(component: ManifestComponent): string {
  const parts: string[] = [];
  if (component.files !== undefined) parts.push(`${formatCount(component.files)} entries`);
  if (component.tables !== undefined) {
    const counts = Object.values(component.tables);
    parts.push(`${formatCount(counts.length)} tables, ${formatCount(counts.reduce((a, b) => a + b, 0))} rows`);
  }
  if (component.secret) parts.push('holds secrets');
  return parts.join(', ') || '-';
}

function fileTable(manifest: Manifest): string[] {
  const roles = new Map<string, string>();
  for (const c of manifest.components) {
    roles.set(c.object, `data of ${code(c.name)}`);
    if (c.index !== undefined) roles.set(c.index, `index of ${code(c.name)}: one JSON line per entry`);
  }
  const known: Record<string, string> = {
    'config.redacted.yml': 'the job config, every secret replaced by `<redacted>`',
    'config.redacted.yml.age': `the job config, every secret replaced by \`<redacted>\` (encrypted: \`age -d -i ${AGE_IDENTITY}\`)`,
    'RUNBOOK.md': 'this runbook',
  };
  const rows = manifest.objects.map((o) => [code(o.name), String(o.bytes), roles.get(o.name) ?? known[o.name] ?? '']);
  rows.push([code('manifest.json'), '', 'what is in the set, with every size and SHA-256 (written last)']);
  return table(['File', 'Bytes', 'What it is'], rows);
}

// ── Before you start ─────────────────────────────────────────────────────────────────────────

function beforeYouStart(manifest: Manifest): string[] {
  const kinds = new Set(manifest.components.map((c) => c.kind));
  const tools = ['`sha256sum` (coreutils)'];
  const compressions = new Set(manifest.objects.map((o) => storedForm(o.name, manifest).decompressor));
  if (compressions.has('zstd')) tools.push('`zstd`');
  if (compressions.has('gzip')) tools.push('`gzip`');
  if (isEncrypted(manifest)) tools.push('`age`');
  if (kinds.has('files') || kinds.has('system')) tools.push('GNU `tar`');
  if (kinds.has('sqlite')) tools.push('`sqlite3`');
  if (kinds.has('mariadb')) tools.push('the MariaDB client `mariadb`');
  if (kinds.has('postgres') || kinds.has('postgres-globals'))
    tools.push('the PostgreSQL clients `psql` and `createdb`');
  const unpacked = manifest.components.reduce((sum, c) => sum + c.rawBytes, 0);
  const steps = [
    `Tools: ${tools.join(', ')}. On Debian or Ubuntu: ${code(`apt-get install ${debianPackages(manifest).join(' ')}`)}.`,
    `Copy this whole directory (${code(`${setDirectory(manifest)}/`)}) to the machine you restore on ` +
      '(for example with `rsync -a`, `scp -r`, `sftp`, or `aws s3 cp --recursive` from object storage), ' +
      'then `cd` into it. Every command below runs from inside that directory.',
  ];
  if (kinds.has('mariadb')) {
    steps.push(
      'MariaDB: add your connection options to every `mariadb` command (`-h HOST -P PORT -u USER -p`), ' +
        'or put them in `~/.my.cnf`. Use the MariaDB client: MySQL\'s `mysql` rejects the "sandbox mode" ' +
        'first line of dumps made by MariaDB 10.11 and later.',
    );
  }
  if (kinds.has('postgres') || kinds.has('postgres-globals')) {
    steps.push(
      'PostgreSQL: set `PGHOST`, `PGPORT` and `PGUSER` (and a `~/.pgpass` for the password), ' +
        'or add `-h HOST -p PORT -U USER` to every `psql` and `createdb`.',
    );
  }
  const placeholders = [
    `${code(RESTORE_DIR)}: an empty directory to restore into, with room for ${formatBytes(unpacked)} ` +
      `(${formatCount(unpacked)} bytes, everything unpacked). Restoring into it never touches live files.`,
  ];
  if (kinds.has('mariadb') || kinds.has('postgres')) {
    placeholders.push(
      `${code(NEW_DATABASE)}: the name of a new, empty database to load a dump into, for example ` +
        '`app_restored`. Never an existing database: a dump loaded there drops or clashes with its tables.',
    );
  }
  if (isEncrypted(manifest)) {
    placeholders.push(
      `${code(AGE_IDENTITY)}: your age identity file, the private key of one of the recipients above ` +
        '(the job config names it as `encryption.identityFile`). Every object is encrypted, so every ' +
        `command decrypts first: ${code(`age -d -i ${AGE_IDENTITY} < X.age | zstd -dc`)}.`,
    );
  }
  return [
    '## Before you start',
    '',
    ...steps.flatMap((step, i) => listItem(`${i + 1}. `, step)),
    ...listItem(`${steps.length + 1}. `, 'The commands use placeholders. Replace them before you run a command:'),
    ...placeholders.flatMap((placeholder) => listItem('- ', placeholder, '   ')),
  ];
}

function isEncrypted(manifest: Manifest): boolean {
  return recipients(manifest).length > 0 || manifest.objects.some((o) => o.name.endsWith('.age'));
}

function debianPackages(manifest: Manifest): string[] {
  const kinds = new Set(manifest.components.map((c) => c.kind));
  const packages = ['coreutils'];
  const compressions = new Set(manifest.objects.map((o) => storedForm(o.name, manifest).decompressor));
  if (compressions.has('zstd')) packages.push('zstd');
  if (compressions.has('gzip')) packages.push('gzip');
  if (isEncrypted(manifest)) packages.push('age');
  if (kinds.has('files') || kinds.has('system')) packages.push('tar');
  if (kinds.has('sqlite')) packages.push('sqlite3');
  if (kinds.has('mariadb')) packages.push('mariadb-client');
  if (kinds.has('postgres') || kinds.has('postgres-globals')) packages.push('postgresql-client');
  return packages;
}

// ── 1. Check ─────────────────────────────────────────────────────────────────────────────────

function checkSection(manifest: Manifest): string[] {
  const sums = manifest.objects.map((o) => `${o.sha256}  ${o.name}`);
  return [
    '## 1. Check every file',
    '',
    `The SHA-256 of every file of this set, as written and verified when it was made:`,
    '',
    ...fence(["sha256sum -c <<'EOF'", ...sums, 'EOF']),
    '',
    'Every line must end in `OK`. A `FAILED` line, or `No such file`, means that file is damaged or',
    'missing here: take the same set from another target, or an older set, and check again.',
    `The same list is in manifest.json: ${code(`jq -r '.objects[] | "\\(.sha256)  \\(.name)"' manifest.json | sha256sum -c`)}.`,
  ];
}

// ── 2. Restore ───────────────────────────────────────────────────────────────────────────────

type Role =
  | 'files'
  | 'system-tree'
  | 'system-secrets'
  | 'system-packages'
  | 'sqlite'
  | 'command'
  | 'mariadb-database'
  | 'mariadb-users'
  | 'postgres-database'
  | 'postgres-globals'
  | 'other';

function roleOf(c: ManifestComponent): Role {
  switch (c.kind) {
    case 'files':
      return 'files';
    case 'system':
      if (c.index === undefined) return c.name === `${c.source}.packages` ? 'system-packages' : 'other';
      return c.name === `${c.source}.secrets` || c.secret ? 'system-secrets' : 'system-tree';
    case 'sqlite':
      return 'sqlite';
    case 'command':
      return 'command';
    case 'mariadb':
      return c.name === `${c.source}.users` ? 'mariadb-users' : 'mariadb-database';
    case 'postgres':
      return 'postgres-database';
    case 'postgres-globals':
      return 'postgres-globals';
    default:
      return 'other';
  }
}

/** What must go first within its source: secrets before the tree they belong to, accounts before databases. */
const FIRST: ReadonlySet<Role> = new Set(['system-secrets', 'mariadb-users', 'postgres-globals']);

/** Components grouped by source (in manifest order), each source's prerequisites first. */
function restoreOrder(components: readonly ManifestComponent[]): ManifestComponent[] {
  const sourceRank = new Map<string, number>();
  for (const c of components) if (!sourceRank.has(c.source)) sourceRank.set(c.source, sourceRank.size);
  return components
    .map((component, index) => ({ component, index }))
    .sort(
      (a, b) =>
        (sourceRank.get(a.component.source) ?? 0) - (sourceRank.get(b.component.source) ?? 0) ||
        Number(FIRST.has(roleOf(b.component))) - Number(FIRST.has(roleOf(a.component))) ||
        a.index - b.index,
    )
    .map(({ component }) => component);
}

function restoreIntro(components: readonly ManifestComponent[]): string[] {
  return [
    'One section per component, in the order to restore them. Restore only what you need; each',
    'section stands alone. Sections marked "first" hold what later sections of the same source need.',
    '',
    ...components.map((c, i) => `${i + 1}. ${code(c.name)} (${text(c.kind)})${FIRST.has(roleOf(c)) ? ', first' : ''}`),
  ];
}

function componentSection(manifest: Manifest, c: ManifestComponent, number: number): string[] {
  const lines = [`### 2.${number} ${code(c.name)}: ${roleTitle(roleOf(c))}`, ''];
  const facts = [`Source ${code(c.source)}, kind ${code(c.kind)}.`];
  facts.push(`Stored as ${code(c.object)} (${formatCount(c.bytes)} bytes), ${formatCount(c.rawBytes)} bytes unpacked.`);
  if (c.files !== undefined) facts.push(`${formatCount(c.files)} entries.`);
  if (c.dumpTool !== undefined) facts.push(`Made by ${code(c.dumpTool)}${serverText(c)}.`);
  else if (c.serverVersion !== undefined) facts.push(`Server: ${code(c.serverVersion)}.`);
  if (c.secret) facts.push('**It holds secrets** (keys, password hashes): keep the restored copy private.');
  lines.push(...wrap(facts.join(' ')), '');
  lines.push(...roleBody(manifest, c));
  if (c.tables !== undefined) lines.push('', ...tablesText(c));
  if (c.warnings !== undefined && c.warnings.length > 0) {
    lines.push('', 'Warnings recorded for this component when it was made:', '', ...bullets(c.warnings));
  }
  return lines;
}

function serverText(c: ManifestComponent): string {
  return c.serverVersion !== undefined ? ` from server ${code(c.serverVersion)}` : '';
}

function roleTitle(role: Role): string {
  const titles: Record<Role, string> = {
    files: 'files (tar archive)',
    'system-tree': "the server's configuration (tar archive)",
    'system-secrets': "the server's secret files (tar archive), first",
    'system-packages': 'the list of installed packages',
    sqlite: 'SQLite database',
    command: "a command's output",
    'mariadb-database': 'MariaDB/MySQL database (SQL dump)',
    'mariadb-users': 'MariaDB/MySQL accounts and grants (SQL), first',
    'postgres-database': 'PostgreSQL database (SQL dump)',
    'postgres-globals': 'PostgreSQL roles (SQL), first',
    other: 'other data',
  };
  return titles[role];
}

function roleBody(manifest: Manifest, c: ManifestComponent): string[] {
  const data = decodeCommand(c.object, manifest);
  const restoreFile = `${RESTORE_DIR}/${storedForm(c.object, manifest).rawName}`;
  const into = `> ${shellQuote(restoreFile)}`;
  const tarExtract = `${data} | tar --numeric-owner -xpf - -C ${RESTORE_DIR}`;
  const index = c.index === undefined ? [] : [`${decodeCommand(c.index, manifest)} | head`];
  switch (roleOf(c)) {
    case 'files':
      return [
        ...fence([`mkdir -p ${RESTORE_DIR}`, tarExtract, ...index]),
        '',
        'Paths in the archive are absolute without their leading `/`, so `/var/www/app` comes back as',
        `${code(`${RESTORE_DIR}/var/www/app`)}, with owners (numeric), modes and times. To restore one file or`,
        `directory only, name it at the end of the ${code('tar')} command, without the leading \`/\`. To put everything`,
        `back where it was (overwriting what is there now), use ${code('-C /')} instead of ${code(`-C ${RESTORE_DIR}`)}.`,
        ...indexText(c),
      ];
    case 'system-tree':
    case 'system-secrets': {
      const first = roleOf(c) === 'system-secrets';
      return [
        ...fence([`mkdir -p ${RESTORE_DIR}`, tarExtract, ...index]),
        '',
        ...wrap(
          `Paths in the archive are relative to the server's root, so ${code('etc/nginx')} comes back as ` +
            `${code(`${RESTORE_DIR}/etc/nginx`)}. ` +
            (first
              ? `Extract this archive before ${code(c.source)}: it holds the TLS private keys, SSH host keys and ` +
                `${code('.env')} files that were kept out of the main archive. `
              : `Extract ${code(`${c.source}.secrets`)} (if this set has it) before this archive. `) +
            `To put the files back in place on a rebuilt server, run the same ${code('tar')} command with ` +
            `${code('-C /')} instead of ${code(`-C ${RESTORE_DIR}`)} (secrets first, then the main archive).`,
        ),
        ...indexText(c),
      ];
    }
    case 'system-packages':
      return [
        ...fence([`mkdir -p ${RESTORE_DIR}`, `${data} ${into}`, ...rawCheck(c, restoreFile)]),
        '',
        ...wrap(
          'One package name per line: the packages installed by hand on the server. To install them on a ' +
            `rebuilt Debian or Ubuntu server: ${code(`xargs apt-get install -y < ${shellQuote(restoreFile)}`)}.`,
        ),
      ];
    case 'sqlite':
      return [
        ...fence([
          `mkdir -p ${RESTORE_DIR}`,
          `${data} ${into}`,
          ...rawCheck(c, restoreFile),
          `sqlite3 ${shellQuote(restoreFile)} 'PRAGMA integrity_check'`,
          ...countExample(c, (sql) => `sqlite3 ${shellQuote(restoreFile)} ${shellQuote(sql)}`),
        ]),
        '',
        ...wrap(
          `${code('PRAGMA integrity_check')} must print ${code('ok')}. To put the database back: stop the application, ` +
            'move the old database file and any `-wal` and `-shm` files beside it out of the way, copy the restored ' +
            'file to its place (same owner and mode as before), and start the application.',
        ),
      ];
    case 'command':
      return [
        ...fence([`mkdir -p ${RESTORE_DIR}`, `${data} ${into}`, ...rawCheck(c, restoreFile)]),
        '',
        ...wrap(
          `This is the standard output of the command of source ${code(c.source)} (see ${code(isEncrypted(manifest) ? 'config.redacted.yml.age' : 'config.redacted.yml')}), ` +
            'byte for byte. Give it back to the program that made it; for example, for `redis-cli --rdb -`: stop ' +
            "Redis, put the file in place of Redis's `dump.rdb`, and start Redis.",
        ),
      ];
    case 'mariadb-database':
      return [
        ...fence([
          `mariadb -e ${shellQuote(`CREATE DATABASE ${NEW_DATABASE}`)} && ${data} | mariadb ${NEW_DATABASE}`,
          ...countExample(c, (sql) => `mariadb ${NEW_DATABASE} -e ${shellQuote(sql)}`),
        ]),
        '',
        ...wrap(
          `The dump does not name its database (no ${code('CREATE DATABASE')}, no ${code('USE')}), so it loads into the ` +
            `database you give it. It was database ${code(databaseOf(c))}. Restore ${code(`${c.source}.users`)} ` +
            'first on a new server, so the grants and view definers it names exist.',
        ),
      ];
    case 'mariadb-users':
      return [
        ...fence([`${data} | mariadb`, `mariadb -e ${shellQuote('FLUSH PRIVILEGES')}`]),
        '',
        ...wrap(
          "The server's accounts and their grants, with password hashes. Load them on a new server, before its " +
            'databases. On a server where these accounts exist already, skip this (the statements would fail or ' +
            'change existing accounts).',
        ),
      ];
    case 'postgres-globals':
      return [
        ...fence([`${data} | psql -X -d postgres`]),
        '',
        ...wrap(
          'Roles and tablespaces, loaded into the `postgres` database before the databases of this source, ' +
            'whose dumps set owners and privileges with these roles. Errors like `role "postgres" already ' +
            'exists` are expected and harmless. ' +
            (c.secret
              ? 'The roles come with their password hashes.'
              : 'The roles come without passwords (the backup account was not a superuser): set them with ' +
                "`ALTER ROLE name PASSWORD '...'`."),
        ),
      ];
    case 'postgres-database':
      return [
        ...fence([
          `createdb ${NEW_DATABASE} && ${data} | psql -X -v ON_ERROR_STOP=1 -d ${NEW_DATABASE}`,
          ...countExample(c, (sql) => `psql -X -d ${NEW_DATABASE} -c ${shellQuote(sql)}`),
        ]),
        '',
        ...wrap(
          `The dump does not name its database (no ${code('CREATE DATABASE')}, no ${code('\\connect')}), so it loads into ` +
            `the database you give it. It was database ${code(databaseOf(c))}. It sets owners and privileges: load ` +
            `the roles first (${code(`${c.source}.globals`)}), or create the roles it names, else ${code('psql')} stops at the ` +
            `first ${code('ALTER ... OWNER TO')}.`,
        ),
      ];
    case 'other': {
      const isTar = c.index !== undefined || storedForm(c.object, manifest).rawName.endsWith('.tar');
      return isTar
        ? [...fence([`mkdir -p ${RESTORE_DIR}`, tarExtract, ...index]), ...indexText(c)]
        : [...fence([`mkdir -p ${RESTORE_DIR}`, `${data} ${into}`, ...rawCheck(c, restoreFile)])];
    }
  }
}

function indexText(c: ManifestComponent): string[] {
  if (c.index === undefined) return [];
  return [
    '',
    ...wrap(
      `${code(c.index)} lists every entry of the archive, one JSON line each (path, type, size, mode, owner, ` +
        'mtime, and the SHA-256 of every file), also sockets, which tar cannot store.',
    ),
  ];
}

/** A command that proves the unpacked file is exactly the bytes that were backed up. */
function rawCheck(c: ManifestComponent, path: string): string[] {
  return [`echo ${shellQuote(`${c.rawSha256}  ${path}`)} | sha256sum -c`];
}

/** The database name inside the component name (`<source>.<database>`, percent-encoded). */
function databaseOf(c: ManifestComponent): string {
  const encoded = c.name.startsWith(`${c.source}.`) ? c.name.slice(c.source.length + 1) : c.name;
  try {
    return decodeURIComponent(encoded);
  } catch {
    return encoded;
  }
}

// ── Rows per table ───────────────────────────────────────────────────────────────────────────

interface TableRef {
  /** As shown, and as written in SQL inside the restored database. */
  label: string;
  /** The identifier, quoted for SQL; undefined when the name cannot be split without guessing. */
  sql: string | undefined;
  rows: number;
}

function tableRefs(c: ManifestComponent): TableRef[] {
  const entries = Object.entries(c.tables ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.map(([key, rows]) => {
    switch (c.kind) {
      case 'mariadb': {
        // `<database>.<table>`: in the restored database the table is just `<table>`.
        const prefix = `${databaseOf(c)}.`;
        if (!key.startsWith(prefix)) return { label: key, sql: undefined, rows };
        const table = key.slice(prefix.length);
        return { label: table, sql: `\`${table.replaceAll('`', '``')}\``, rows };
      }
      case 'sqlite': {
        const table = key.startsWith('main.') ? key.slice('main.'.length) : key;
        return { label: table, sql: doubleQuoted(table), rows };
      }
      case 'postgres': {
        const parts = key.split('.');
        const [schema, table] = parts;
        const sql =
          parts.length === 2 && schema !== undefined && table !== undefined
            ? `${doubleQuoted(schema)}.${doubleQuoted(table)}`
            : undefined;
        return { label: key, sql, rows };
      }
      default:
        return { label: key, sql: undefined, rows };
    }
  });
}

function doubleQuoted(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

function tablesText(c: ManifestComponent): string[] {
  const refs = tableRefs(c);
  if (refs.length === 0) return ['No tables.'];
  const total = refs.reduce((sum, r) => sum + r.rows, 0);
  const shown = refs.slice(0, MAX_TABLES);
  const lines = [
    ...wrap(
      `Rows per table when the backup was made (${formatCount(refs.length)} tables, ${formatCount(total)} rows in all). ` +
        `After restoring, ${code('SELECT COUNT(*) FROM <table>')} must give the same numbers:`,
    ),
    '',
    ...table(
      ['Table', 'Rows'],
      shown.map((r) => [code(r.label), formatCount(r.rows)]),
      ['left', 'right'],
    ),
  ];
  if (refs.length > shown.length) {
    lines.push(
      '',
      ...wrap(
        `… and ${formatCount(refs.length - shown.length)} more tables (the first ${shown.length} by name are shown). ` +
          `All ${formatCount(refs.length)} are in manifest.json: ` +
          code(
            `jq ${shellQuote(`.components[] | select(.name == ${JSON.stringify(c.name)}) | .tables`)} manifest.json`,
          ),
      ),
    );
  }
  return lines;
}

/** One `SELECT COUNT(*)`, of the biggest table whose name splits cleanly, as the reader's model. */
function countExample(c: ManifestComponent, command: (sql: string) => string): string[] {
  const candidates = tableRefs(c).filter((r) => r.sql !== undefined && !hasControl(r.sql));
  const ref = candidates.reduce<TableRef | undefined>((best, r) => (best && best.rows >= r.rows ? best : r), undefined);
  return ref?.sql === undefined ? [] : [command(`SELECT COUNT(*) FROM ${ref.sql}`)];
}

// ── Trouble ──────────────────────────────────────────────────────────────────────────────────

function troubleSection(): string[] {
  return [
    '## If something goes wrong',
    '',
    '- `sha256sum` says FAILED: that file is damaged. Do not restore from it; take this set from another',
    '  target, or an older set.',
    '- `zstd: ... Unknown frame descriptor` or `unexpected end of file`: the file is damaged or was cut;',
    '  step 1 would have failed for it.',
    '- `tar: Cannot change ownership`: you are not root. Run as root, or add `--no-same-owner`.',
    '- A dump stops with an error: read the first error, fix its cause (a missing role or user, a',
    '  database that was not empty), drop the new database, create it again, and load again.',
    '- The row counts differ: the restore is incomplete. Do not put it into service.',
  ];
}

// ── Stored forms and shell text ──────────────────────────────────────────────────────────────

interface StoredForm {
  encrypted: boolean;
  decompressor: 'zstd' | 'gzip' | undefined;
  /** The object's name without `.age` and the compression suffix: `app.tar`, `db.sqlite`. */
  rawName: string;
}

function storedForm(name: string, manifest: Manifest): StoredForm {
  let rest = name;
  let encrypted = recipients(manifest).length > 0;
  if (rest.endsWith('.age')) {
    encrypted = true;
    rest = rest.slice(0, -'.age'.length);
  }
  let decompressor: StoredForm['decompressor'];
  if (rest.endsWith('.zst')) {
    decompressor = 'zstd';
    rest = rest.slice(0, -'.zst'.length);
  } else if (rest.endsWith('.gz')) {
    decompressor = 'gzip';
    rest = rest.slice(0, -'.gz'.length);
  } else {
    const algorithm = manifest.compression.algorithm;
    decompressor = algorithm === 'zstd' || algorithm === 'gzip' ? algorithm : undefined;
  }
  return { encrypted, decompressor, rawName: rest || name };
}

/** The shell command that writes an object's raw bytes to stdout. */
function decodeCommand(name: string, manifest: Manifest): string {
  const form = storedForm(name, manifest);
  const file = shellPath(name);
  const decompress = form.decompressor === undefined ? undefined : `${form.decompressor} -dc`;
  if (form.encrypted) return `age -d -i ${AGE_IDENTITY} < ${file}${decompress ? ` | ${decompress}` : ''}`;
  return decompress ? `${decompress} ${file}` : `cat ${file}`;
}

const SHELL_SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** A word the shell reads back exactly: bare when that is safe, else in single quotes. */
export function shellQuote(word: string): string {
  if (SHELL_SAFE.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** A file in the current directory as a shell word; `./` keeps a leading `-` from reading as an option. */
function shellPath(name: string): string {
  return shellQuote(name.startsWith('-') ? `./${name}` : name);
}

// ── Markdown ─────────────────────────────────────────────────────────────────────────────────

function fence(lines: readonly string[]): string[] {
  return ['```sh', ...lines, '```'];
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is escaped
const CONTROL = /[\u0000-\u001f\u007f]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is looked for
const HAS_CONTROL = /[\u0000-\u001f\u007f]/;

function hasControl(value: string): boolean {
  return HAS_CONTROL.test(value);
}

/** Control characters (a newline in a name) shown as `\u000a`, so one value stays on one line. */
function printable(value: string): string {
  return value.replace(CONTROL, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** An inline code span that holds any text, backticks included. */
function code(value: string): string {
  const shown = printable(value);
  const longestRun = Math.max(0, ...(shown.match(/`+/g) ?? []).map((run) => run.length));
  const ticks = '`'.repeat(longestRun + 1);
  const pad = shown.startsWith('`') || shown.endsWith('`') || shown === '' ? ' ' : '';
  return `${ticks}${pad}${shown}${pad}${ticks}`;
}

/** Plain text with Markdown's special characters escaped. */
function text(value: string): string {
  return printable(value).replace(/[\\`*_[\]<>|#]/g, '\\$&');
}

function bullets(items: readonly string[]): string[] {
  const shown = items.slice(0, MAX_WARNINGS).map((item) => `- ${text(item)}`);
  if (items.length > shown.length) {
    shown.push(`- … and ${formatCount(items.length - shown.length)} more (all are in manifest.json)`);
  }
  return shown;
}

/** A pipe table, padded so it reads as a table in a terminal too. */
function table(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  align: readonly ('left' | 'right')[] = [],
): string[] {
  const cells = [headers, ...rows].map((row) => row.map((cell) => cell.replaceAll('|', '\\|')));
  const widths = headers.map((_, i) => Math.max(3, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (row: readonly string[]) =>
    `| ${widths
      .map((width, i) => (align[i] === 'right' ? (row[i] ?? '').padStart(width) : (row[i] ?? '').padEnd(width)))
      .join(' | ')} |`;
  const rule = `|${widths.map((width, i) => (align[i] === 'right' ? `${'-'.repeat(width + 1)}:` : '-'.repeat(width + 2))).join('|')}|`;
  const [head, ...body] = cells;
  return [line(head ?? []), rule, ...body.map(line)];
}

/** Words that would start a list, heading, quote, fence or HTML block at the start of a line. */
const BLOCK_START = /^(?:[-+*>#<|=]|`{3}|~{3}|\d+[.)])/;

/** Paragraph text broken at about 100 columns (Markdown joins the lines again); code spans stay whole. */
function wrap(paragraph: string, width = 100): string[] {
  const lines: string[] = [];
  let current = '';
  for (const word of words(paragraph)) {
    if (current !== '' && current.length + 1 + word.length > width && !BLOCK_START.test(word)) {
      lines.push(current);
      current = word;
    } else current = current === '' ? word : `${current} ${word}`;
  }
  if (current !== '') lines.push(current);
  return lines;
}

/** The paragraph split at spaces outside code spans. */
function words(paragraph: string): string[] {
  const out: string[] = [];
  let current = '';
  let openRun = ''; // the backtick run that opened the code span we are in
  for (let i = 0; i < paragraph.length; ) {
    const ch = paragraph.charAt(i);
    if (ch === '`' && (openRun !== '' || !current.endsWith('\\'))) {
      let end = i;
      while (paragraph.charAt(end) === '`') end++;
      const run = paragraph.slice(i, end);
      if (openRun === '') openRun = run;
      else if (run === openRun) openRun = '';
      current += run;
      i = end;
    } else {
      if (ch === ' ' && openRun === '') {
        if (current !== '') out.push(current);
        current = '';
      } else current += ch;
      i++;
    }
  }
  if (current !== '') out.push(current);
  return out;
}

/** A list item, its text wrapped under the marker. */
function listItem(marker: string, paragraph: string, indent = ''): string[] {
  const hang = ' '.repeat(indent.length + marker.length);
  return wrap(paragraph, 100 - hang.length).map((line, i) =>
    i === 0 ? `${indent}${marker}${line}` : `${hang}${line}`,
  );
}
