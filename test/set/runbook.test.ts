// RUNBOOK.md: rendered for manifests of every component kind, and proven by running it. The shell
// commands of its ```sh blocks (placeholders replaced by test paths), run by bash in the set
// directory, check and restore a real set made by the CLI: files come back equal, every object
// passes sha256sum -c, the SQLite copy passes its integrity check, and a damaged set fails the check.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmod,
  chown,
  cp,
  link,
  mkdir,
  mkdtemp,
  readFile,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it, mock } from 'node:test';
import { type Manifest, type ManifestComponent, parseManifest, serializeManifest } from '../../src/set/manifest.js';
import { AGE_IDENTITY, NEW_DATABASE, RESTORE_DIR, renderRunbook, shellQuote } from '../../src/set/runbook.js';
import { jsonOf, makeSandbox, runCli, type Sandbox } from '../helpers/cli.js';
import { compareTrees } from '../helpers/compare.js';
import { mariadbAdmin, psqlAdmin, services, uniqueName } from '../helpers/services.js';

// ── helpers ──────────────────────────────────────────────────────────────────────────────────

const TARGET = 'local target "disk" at /var/backups/backproof';

function sha(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A component with plausible facts; `overrides` wins. */
function component(overrides: Partial<ManifestComponent> & Pick<ManifestComponent, 'name' | 'kind' | 'object'>) {
  return {
    source: overrides.name.split('.')[0] as string,
    bytes: 1234,
    sha256: sha(`${overrides.object} stored`),
    rawBytes: 56789,
    rawSha256: sha(`${overrides.object} raw`),
    warnings: [],
    ...overrides,
  } satisfies ManifestComponent;
}

/** A manifest that passes validation (so the runbook is tested on what a set can really hold). */
function manifestOf(components: ManifestComponent[], extra: Partial<Manifest> = {}): Manifest {
  const objects = components.flatMap((c) => [
    { name: c.object, bytes: c.bytes, sha256: c.sha256 },
    ...(c.index ? [{ name: c.index, bytes: 321, sha256: sha(`${c.index} stored`) }] : []),
  ]);
  objects.push({ name: 'config.redacted.yml', bytes: 400, sha256: sha('config') });
  const manifest: Manifest = {
    format: 'backproof/1',
    job: 'shop',
    setId: '20251104T030000Z-k3x9qa',
    host: 'web1',
    hostId: 'host-id',
    startedAt: '2025-11-04T03:00:00.000Z',
    finishedAt: '2025-11-04T03:01:12.345Z',
    backproofVersion: '0.1.0',
    compression: { algorithm: 'zstd', level: 3 },
    encryption: null,
    objects,
    components,
    anomalies: [],
    suspect: false,
    warnings: [],
    previous: { setId: '20251103T030000Z-p2m8zz', manifestSha256: sha('previous') },
    ...extra,
  };
  const parsed = parseManifest(serializeManifest(manifest));
  assert.ok(parsed.ok, `the test manifest is valid: ${parsed.ok ? '' : parsed.problems.join('; ')}`);
  return parsed.manifest;
}

/** Every component kind a set can hold, as the sources name them. */
function everyKind(): ManifestComponent[] {
  return [
    component({ name: 'app', kind: 'files', object: 'app.tar.zst', index: 'app.index.jsonl.zst', files: 1234 }),
    component({
      name: 'cache',
      kind: 'sqlite',
      object: 'cache.sqlite.zst',
      tables: { 'main.users': 1000, 'main.sessions': 0 },
      dumpTool: 'SQLite 3.53.2 VACUUM INTO',
    }),
    component({ name: 'redis', kind: 'command', object: 'redis.rdb.zst' }),
    component({
      name: 'main.shop',
      kind: 'mariadb',
      object: 'main.shop.sql.zst',
      tables: { 'shop.orders': 250, 'shop.customers': 1_000_000, 'shop.empty': 0 },
      dumpTool: 'mariadb-dump 10.11.19',
      serverVersion: '10.11.19-MariaDB',
    }),
    component({ name: 'main.users', kind: 'mariadb', object: 'main.users.sql.zst', secret: true }),
    component({
      name: 'pg.app',
      kind: 'postgres',
      object: 'pg.app.sql.zst',
      tables: { 'public.users': 20000, 'audit.log': 5 },
    }),
    component({ name: 'pg.globals', kind: 'postgres-globals', object: 'pg.globals.sql.zst' }),
    component({
      name: 'system',
      kind: 'system',
      object: 'system.tar.zst',
      index: 'system.index.jsonl.zst',
      files: 40,
    }),
    component({
      name: 'system.secrets',
      kind: 'system',
      object: 'system.secrets.tar.zst',
      index: 'system.secrets.index.jsonl.zst',
      files: 6,
      secret: true,
    }),
    component({ name: 'system.packages', kind: 'system', object: 'system.packages.txt.zst' }),
  ];
}

/** The contents of every ```sh block, in order. */
function shBlocks(markdown: string): string[] {
  const blocks: string[] = [];
  const pattern = /^```sh\n([\s\S]*?)^```$/gm;
  for (let match = pattern.exec(markdown); match !== null; match = pattern.exec(markdown)) {
    blocks.push(match[1] as string);
  }
  return blocks;
}

/** All lines of all sh blocks. */
function commandLines(markdown: string): string[] {
  return shBlocks(markdown).flatMap((block) => block.split('\n').filter(Boolean));
}

/** The runbook's section for one component (from its heading to the next one). */
function sectionOf(markdown: string, name: string): string {
  const start = markdown.search(new RegExp(`^### 2\\.\\d+ \`${name.replace(/\./g, '\\.')}\`:`, 'm'));
  assert.ok(start >= 0, `a section for ${name}`);
  const rest = markdown.slice(start);
  const body = rest.indexOf('\n') + 1;
  const end = rest.slice(body).search(/^##/m);
  return end < 0 ? rest : rest.slice(0, body + end);
}

/** The placeholders, replaced where they stand as words or path starts (never inside other words). */
function withPlaceholders(script: string, values: { restore?: string; database?: string; key?: string }): string {
  let out = script;
  if (values.restore !== undefined) {
    const restore = new RegExp(`(?<![\\w/.-])${RESTORE_DIR.replace(/[/.]/g, '\\$&')}(?=[/\\s'"]|$)`, 'gm');
    out = out.replace(restore, values.restore);
  }
  if (values.database !== undefined) out = out.replace(new RegExp(`\\b${NEW_DATABASE}\\b`, 'g'), values.database);
  if (values.key !== undefined) out = out.replace(new RegExp(`\\b${AGE_IDENTITY}\\b`, 'g'), values.key);
  return out;
}

interface BashResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a script with `bash -e` (stop at the first failing command, as a careful reader would). */
function bash(script: string, cwd: string, env: NodeJS.ProcessEnv = {}): BashResult {
  const result = spawnSync('bash', ['-e', '-c', script], {
    cwd,
    env: { ...process.env, LC_ALL: 'C', ...env },
    encoding: 'utf8',
  });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function setDirOf(targetDir: string): string {
  const dirs = execFileSync('find', [targetDir, '-name', 'manifest.json', '-printf', '%h\n'], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
  assert.equal(dirs.length, 1, 'exactly one committed set');
  return dirs[0] as string;
}

async function readManifest(setDir: string): Promise<Manifest> {
  const parsed = parseManifest(await readFile(join(setDir, 'manifest.json')));
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.problems.join('; '));
  return parsed.manifest;
}

// ── rendering ────────────────────────────────────────────────────────────────────────────────

describe('renderRunbook: what the set is', () => {
  const manifest = manifestOf(everyKind(), { warnings: ['app: 1 file could not be read'] });
  const runbook = renderRunbook(manifest, { targetDescription: TARGET });

  it('names the job, set, host, times, version, compression, target and previous set', () => {
    for (const expected of [
      '# Restore runbook: set `20251104T030000Z-k3x9qa` of job `shop`',
      '- Made on host: `web1`',
      '- Started: `2025-11-04T03:00:00.000Z` (UTC)',
      '- Finished: `2025-11-04T03:01:12.345Z` (UTC), took 1m12s',
      '- Made by: backproof `0.1.0`',
      '- Compression: `zstd level 3`',
      '- Encryption: none',
      '- Stored at: local target "disk" at /var/backups/backproof',
      "- Directory there: `shop/2025/11/04/20251104T030000Z-k3x9qa/` (under the target's root)",
      `- Previous set on that target: \`20251103T030000Z-p2m8zz\` (its manifest.json has SHA-256 \`${sha('previous')}\`)`,
      '- app: 1 file could not be read',
    ]) {
      assert.ok(runbook.includes(expected), `missing: ${expected}`);
    }
  });

  it('lists every component with its kind, object, sizes and contents', () => {
    const row = (name: string) => runbook.split('\n').find((line) => line.startsWith(`| \`${name}\` `)) ?? '';
    assert.match(row('app'), /\| files +\| `app\.tar\.zst` +\| 1\.2 kB +\| 56\.8 kB +\| 1,234 entries +\|/);
    assert.match(row('cache'), /\| sqlite .*\| 2 tables, 1,000 rows +\|/);
    assert.match(row('main.shop'), /\| mariadb .*\| 3 tables, 1,000,250 rows +\|/);
    assert.match(row('main.users'), /holds secrets/);
    assert.match(row('system.secrets'), /6 entries, holds secrets/);
    for (const c of manifest.components) assert.notEqual(row(c.name), '', `a row for ${c.name}`);
    // Every file of the set, with its exact size in bytes.
    for (const o of manifest.objects) {
      assert.ok(
        runbook.split('\n').some((line) => line.startsWith(`| \`${o.name}\` `) && line.includes(`| ${o.bytes} `)),
        `${o.name} with ${o.bytes} bytes`,
      );
    }
  });

  it('marks a suspect set and shows its anomalies', () => {
    const suspect = renderRunbook(
      manifestOf(everyKind(), {
        suspect: true,
        anomalies: [{ message: 'main.shop: table shop.orders dropped from 250 to 2 rows' }, { code: 'other' }],
      }),
      { targetDescription: TARGET },
    );
    assert.match(suspect, /\*\*WARNING: this set is SUSPECT\.\*\*/);
    assert.match(suspect, /^- main\.shop: table shop\.orders dropped from 250 to 2 rows$/m);
    assert.match(suspect, /^- \{"code":"other"\}$/m);
    assert.doesNotMatch(runbook, /SUSPECT/);
  });

  it('is the same text for the same manifest, whatever the time', () => {
    mock.timers.enable({ apis: ['Date'], now: new Date('2031-01-02T03:04:05Z') });
    let later: string;
    try {
      later = renderRunbook(manifest, { targetDescription: TARGET });
    } finally {
      mock.timers.reset();
    }
    assert.equal(later, runbook);
    assert.doesNotMatch(runbook, /2031|e\+\d/);
  });

  it('cuts long lists of warnings, saying how many more there are', () => {
    const warnings = Array.from({ length: 25 }, (_, i) => `warning number ${i}`);
    const text = renderRunbook(manifestOf(everyKind(), { warnings }), { targetDescription: TARGET });
    assert.match(text, /^- warning number 9$/m);
    assert.doesNotMatch(text, /warning number 10/);
    assert.match(text, /^- … and 15 more \(all are in manifest\.json\)$/m);
  });
});

describe('renderRunbook: how to check the set', () => {
  it('holds the exact "<sha256>  <name>" line of every object, in one sha256sum -c here-document', () => {
    const manifest = manifestOf(everyKind());
    const [check] = shBlocks(renderRunbook(manifest, { targetDescription: TARGET }));
    assert.equal(
      check,
      ["sha256sum -c <<'EOF'", ...manifest.objects.map((o) => `${o.sha256}  ${o.name}`), 'EOF', ''].join('\n'),
    );
  });
});

describe('renderRunbook: restore commands per component kind', () => {
  const manifest = manifestOf(everyKind());
  const runbook = renderRunbook(manifest, { targetDescription: TARGET });

  it('extracts files with tar --numeric-owner into /restore and shows the index', () => {
    const section = sectionOf(runbook, 'app');
    assert.deepEqual(commandLines(section), [
      'mkdir -p /restore',
      'zstd -dc app.tar.zst | tar --numeric-owner -xpf - -C /restore',
      'zstd -dc app.index.jsonl.zst | head',
    ]);
    assert.match(section, /use `-C \/` instead of\s+`-C \/restore`/);
  });

  it('restores the system secrets archive before the main one, and says how to restore in place', () => {
    const secrets = runbook.indexOf('### 2.8 `system.secrets`');
    const main = runbook.indexOf('### 2.9 `system`');
    const packages = runbook.indexOf('### 2.10 `system.packages`');
    assert.ok(secrets > 0 && secrets < main && main < packages, 'secrets, then main, then packages');
    assert.deepEqual(commandLines(sectionOf(runbook, 'system.secrets')), [
      'mkdir -p /restore',
      'zstd -dc system.secrets.tar.zst | tar --numeric-owner -xpf - -C /restore',
      'zstd -dc system.secrets.index.jsonl.zst | head',
    ]);
    assert.match(sectionOf(runbook, 'system'), /with `-C \/` instead of\s+`-C \/restore` \(secrets first/);
    const packageLines = commandLines(sectionOf(runbook, 'system.packages'));
    assert.equal(packageLines[1], 'zstd -dc system.packages.txt.zst > /restore/system.packages.txt');
    assert.match(
      sectionOf(runbook, 'system.packages'),
      /`xargs apt-get install -y < \/restore\/system\.packages\.txt`/,
    );
  });

  it('decompresses a SQLite database to a file, checks its hash and runs PRAGMA integrity_check', () => {
    const c = manifest.components.find((x) => x.name === 'cache') as ManifestComponent;
    assert.deepEqual(commandLines(sectionOf(runbook, 'cache')), [
      'mkdir -p /restore',
      'zstd -dc cache.sqlite.zst > /restore/cache.sqlite',
      `echo '${c.rawSha256}  /restore/cache.sqlite' | sha256sum -c`,
      "sqlite3 /restore/cache.sqlite 'PRAGMA integrity_check'",
      `sqlite3 /restore/cache.sqlite 'SELECT COUNT(*) FROM "users"'`,
    ]);
  });

  it("decompresses a command's output to a file named after its extension", () => {
    const lines = commandLines(sectionOf(runbook, 'redis'));
    assert.equal(lines[1], 'zstd -dc redis.rdb.zst > /restore/redis.rdb');
    assert.match(lines[2] ?? '', /^echo '[0-9a-f]{64} {2}\/restore\/redis\.rdb' \| sha256sum -c$/);
  });

  it('loads a MariaDB dump into a new database, the accounts first with FLUSH PRIVILEGES', () => {
    assert.ok(runbook.indexOf('`main.users`: MariaDB') < runbook.indexOf('`main.shop`: MariaDB'), 'users first');
    assert.deepEqual(commandLines(sectionOf(runbook, 'main.users')), [
      'zstd -dc main.users.sql.zst | mariadb',
      "mariadb -e 'FLUSH PRIVILEGES'",
    ]);
    assert.deepEqual(commandLines(sectionOf(runbook, 'main.shop')), [
      "mariadb -e 'CREATE DATABASE NEWDB' && zstd -dc main.shop.sql.zst | mariadb NEWDB",
      "mariadb NEWDB -e 'SELECT COUNT(*) FROM `customers`'",
    ]);
    assert.match(sectionOf(runbook, 'main.shop'), /It was database `shop`/);
  });

  it('loads PostgreSQL roles into postgres first, then the dump into a new database with ON_ERROR_STOP', () => {
    assert.ok(runbook.indexOf('`pg.globals`: PostgreSQL') < runbook.indexOf('`pg.app`: PostgreSQL'), 'globals first');
    assert.deepEqual(commandLines(sectionOf(runbook, 'pg.globals')), [
      'zstd -dc pg.globals.sql.zst | psql -X -d postgres',
    ]);
    assert.deepEqual(commandLines(sectionOf(runbook, 'pg.app')), [
      'createdb NEWDB && zstd -dc pg.app.sql.zst | psql -X -v ON_ERROR_STOP=1 -d NEWDB',
      `psql -X -d NEWDB -c 'SELECT COUNT(*) FROM "public"."users"'`,
    ]);
  });

  it('lists the rows of every table to compare, as they are named in the restored database', () => {
    const shop = sectionOf(runbook, 'main.shop');
    assert.match(shop, /\(3 tables, 1,000,250 rows in all\)/);
    assert.match(shop, /^\| `customers` \| 1,000,000 \|$/m);
    assert.match(shop, /^\| `empty` +\| +0 \|$/m);
    assert.match(sectionOf(runbook, 'pg.app'), /^\| `audit\.log` +\| +5 \|$/m);
    assert.match(sectionOf(runbook, 'cache'), /^\| `sessions` \| +0 \|$/m);
  });

  it('cuts a long table list, saying how many more tables there are and where they all are', () => {
    const tables = Object.fromEntries(
      Array.from({ length: 45 }, (_, i) => [`public.t${String(i).padStart(2, '0')}`, i]),
    );
    const big = manifestOf([component({ name: 'pg.big', kind: 'postgres', object: 'pg.big.sql.zst', tables })]);
    const section = sectionOf(renderRunbook(big, { targetDescription: TARGET }), 'pg.big');
    assert.match(section, /^\| `public\.t29` \| +29 \|$/m);
    assert.doesNotMatch(section, /public\.t30/);
    assert.match(section, /… and 15 more tables \(the first 30 by name are shown\)\. All 45 are in manifest\.json/);
    assert.match(section, /\(45 tables, 990 rows in all\)/);
  });

  it('uses gzip -dc for a gzip set', () => {
    const gz = manifestOf(
      [
        component({ name: 'app', kind: 'files', object: 'app.tar.gz', index: 'app.index.jsonl.gz' }),
        component({ name: 'db', kind: 'sqlite', object: 'db.sqlite.gz', tables: {} }),
      ],
      { compression: { algorithm: 'gzip', level: 6 } },
    );
    const text = renderRunbook(gz, { targetDescription: TARGET });
    const lines = commandLines(text);
    assert.ok(lines.includes('gzip -dc app.tar.gz | tar --numeric-owner -xpf - -C /restore'));
    assert.ok(lines.includes('gzip -dc app.index.jsonl.gz | head'));
    assert.ok(lines.includes('gzip -dc db.sqlite.gz > /restore/db.sqlite'));
    assert.ok(!lines.some((line) => line.includes('zstd')), 'no zstd in a gzip set');
    assert.match(text, /apt-get install coreutils gzip tar sqlite3`/);
  });

  it('decrypts with age -d -i KEY first when the set has recipients', () => {
    const encrypted = manifestOf(
      [
        component({ name: 'app', kind: 'files', object: 'app.tar.zst.age', index: 'app.index.jsonl.zst.age' }),
        component({ name: 'main.shop', kind: 'mariadb', object: 'main.shop.sql.zst.age', tables: { 'shop.t': 1 } }),
      ],
      { encryption: { recipients: ['age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq'] } },
    );
    const text = renderRunbook(encrypted, { targetDescription: TARGET });
    const lines = commandLines(text);
    assert.ok(lines.includes('age -d -i KEY < app.tar.zst.age | zstd -dc | tar --numeric-owner -xpf - -C /restore'));
    assert.ok(lines.includes('age -d -i KEY < app.index.jsonl.zst.age | zstd -dc | head'));
    assert.ok(
      lines.includes(
        "mariadb -e 'CREATE DATABASE NEWDB' && age -d -i KEY < main.shop.sql.zst.age | zstd -dc | mariadb NEWDB",
      ),
    );
    assert.match(text, /- Encryption: age, for 1 recipient\(s\): `age1qyqsz/);
    assert.match(text, /`KEY`: your age identity file/);
    // The stored (encrypted) bytes are what sha256sum checks.
    assert.match(text, /[0-9a-f]{64} {2}app\.tar\.zst\.age\n/);
  });

  it('quotes names the shell would otherwise split or expand, and escapes them in Markdown', () => {
    const odd = manifestOf([
      component({ name: "it's", source: 'x', kind: 'files', object: "it's $HOME.tar.zst", index: 'i `x`.jsonl.zst' }),
      component({ name: '-dash', source: 'x', kind: 'command', object: '-dash.out.zst' }),
    ]);
    const text = renderRunbook(odd, { targetDescription: 'a | b *c* `d`' });
    const lines = commandLines(text);
    assert.ok(lines.includes(`zstd -dc 'it'\\''s $HOME.tar.zst' | tar --numeric-owner -xpf - -C /restore`));
    assert.ok(lines.includes("zstd -dc 'i `x`.jsonl.zst' | head"));
    assert.ok(lines.includes('zstd -dc ./-dash.out.zst > /restore/-dash.out'), 'a leading dash is not an option');
    assert.match(text, /- Stored at: a \\\| b \\\*c\\\* \\`d\\`/);
    assert.match(text, /``i `x`\.jsonl\.zst``/);
  });

  it('shell-quotes words so that bash reads them back exactly', () => {
    for (const word of ['plain.tar.zst', "it's", 'a b', '$HOME', '`id`', 'x;y|z&', '"q"', '', '*', '~root', 'é']) {
      const echoed = execFileSync('bash', ['-c', `printf '%s' ${shellQuote(word)}`], { encoding: 'utf8' });
      assert.equal(echoed, word);
    }
  });
});

describe('runbook commands on hand-made sets, run by bash', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-runbook-names-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('restore a set whose names need quoting exactly', async () => {
    const setDir = join(dir, 'set');
    const source = join(dir, 'src');
    const restore = join(dir, 'restore');
    await mkdir(join(source, 'd i r'), { recursive: true });
    await writeFile(join(source, 'd i r', "quote's file"), 'content\n');
    await mkdir(setDir);
    const tarName = "-app it's $HOME `id`;x.tar.zst";
    const outName = 'out &|*.txt.zst';
    execFileSync('bash', [
      '-c',
      'tar --format=pax -cf - -C "$1" . | zstd -q -c > "$2"',
      'bash',
      source,
      join(setDir, tarName),
    ]);
    execFileSync('bash', ['-c', 'seq 1 1000 | zstd -q -c > "$1"', 'bash', join(setDir, outName)]);
    const fileSha = async (name: string) =>
      createHash('sha256')
        .update(await readFile(join(setDir, name)))
        .digest('hex');
    const rawSha = createHash('sha256')
      .update(execFileSync('seq', ['1', '1000']))
      .digest('hex');
    const manifest = manifestOf([
      component({ name: 'app', kind: 'other', object: tarName, sha256: await fileSha(tarName) }),
      component({ name: 'out', kind: 'command', object: outName, sha256: await fileSha(outName), rawSha256: rawSha }),
    ]);
    manifest.objects = manifest.objects.filter((o) => o.name !== 'config.redacted.yml');
    for (const o of manifest.objects) o.sha256 = await fileSha(o.name);

    const script = withPlaceholders(shBlocks(renderRunbook(manifest, { targetDescription: TARGET })).join('\n'), {
      restore,
    });
    const result = bash(script, setDir);
    assert.equal(result.code, 0, `${script}\n${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /^-app it's \$HOME `id`;x\.tar\.zst: OK$/m);
    assert.match(result.stdout, new RegExp(`^${restore}/out &\\|\\*\\.txt: OK$`, 'm'));
    assert.deepEqual(await compareTrees(source, restore, { ignore: (p) => p === 'out &|*.txt' }), []);
    assert.equal(
      await readFile(join(restore, 'out &|*.txt'), 'utf8'),
      execFileSync('seq', ['1', '1000'], { encoding: 'utf8' }),
    );
  });

  it('restore an age-encrypted set with the identity file in place of KEY', async () => {
    const setDir = join(dir, 'encrypted-set');
    const source = join(dir, 'encrypted-src');
    const restore = join(dir, 'encrypted-restore');
    const identity = join(dir, 'age.key');
    await mkdir(join(source, 'app'), { recursive: true });
    await writeFile(join(source, 'app', 'index.php'), '<?php echo 1;\n'.repeat(100));
    await mkdir(setDir);
    execFileSync('age-keygen', ['-o', identity], { stdio: 'ignore' });
    const recipient = execFileSync('age-keygen', ['-y', identity], { encoding: 'utf8' }).trim();
    const database = join(dir, 'enc.sqlite');
    execFileSync('sqlite3', [database, 'CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3);']);
    const pipe = (command: string, ...args: string[]) => execFileSync('bash', ['-c', command, 'bash', ...args]);
    pipe(
      'tar --format=pax -cf - -C "$1" app | zstd -q -c | age -r "$2" > "$3"',
      source,
      recipient,
      join(setDir, 'app.tar.zst.age'),
    );
    pipe('zstd -q -c < "$1" | age -r "$2" > "$3"', database, recipient, join(setDir, 'db.sqlite.zst.age'));
    const fileSha = async (path: string) =>
      createHash('sha256')
        .update(await readFile(path))
        .digest('hex');
    const manifest = manifestOf(
      [
        component({ name: 'app', kind: 'files', object: 'app.tar.zst.age' }),
        component({
          name: 'db',
          kind: 'sqlite',
          object: 'db.sqlite.zst.age',
          rawSha256: await fileSha(database),
          tables: { 'main.t': 3 },
        }),
      ],
      { encryption: { recipients: [recipient] } },
    );
    manifest.objects = manifest.objects.filter((o) => o.name !== 'config.redacted.yml');
    for (const o of manifest.objects) o.sha256 = await fileSha(join(setDir, o.name));

    const runbook = renderRunbook(manifest, { targetDescription: TARGET });
    assert.match(runbook, new RegExp(`recipient\\(s\\): \`${recipient}\``));
    const script = withPlaceholders(shBlocks(runbook).join('\n'), { restore, key: identity });
    const result = bash(script, setDir);
    assert.equal(result.code, 0, `${script}\n${result.stdout}\n${result.stderr}`);
    assert.deepEqual(await compareTrees(join(source, 'app'), join(restore, 'app')), []);
    assert.match(
      result.stdout,
      new RegExp(`^${restore}/db\\.sqlite: OK$`, 'm'),
      'the decrypted database is the original',
    );
    assert.match(result.stdout, /^ok$/m);

    // Without the right identity, nothing is restored and the commands fail.
    const stranger = join(dir, 'stranger.key');
    execFileSync('age-keygen', ['-o', stranger], { stdio: 'ignore' });
    const wrong = withPlaceholders(shBlocks(sectionOf(runbook, 'db')).join('\n'), {
      restore: join(dir, 'wrong-key-restore'),
      key: stranger,
    });
    const failed = bash(wrong, setDir);
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /no identity matched/);
  });
});

// ── a real set made by the CLI ───────────────────────────────────────────────────────────────

async function buildFiles(root: string): Promise<void> {
  await mkdir(join(root, 'app/public/assets'), { recursive: true });
  await mkdir(join(root, 'app/empty dir'));
  await writeFile(join(root, 'app/public/index.php'), '<?php echo "hello";\n'.repeat(500));
  await writeFile(join(root, "app/it's a file.txt"), 'quotes and spaces\n');
  await writeFile(
    join(root, 'app/public/assets/logo.bin'),
    Buffer.from(Array.from({ length: 50000 }, (_, i) => i % 251)),
  );
  await writeFile(join(root, 'app/owned'), 'owned by 1234:5678\n');
  await chown(join(root, 'app/owned'), 1234, 5678);
  await chmod(join(root, 'app/owned'), 0o640);
  await writeFile(join(root, 'app/setgid-tool'), '#!/bin/sh\n');
  await chmod(join(root, 'app/setgid-tool'), 0o2755);
  await link(join(root, 'app/public/index.php'), join(root, 'app/hard-link.php'));
  await symlink('public/index.php', join(root, 'app/current'));
  const old = new Date('2022-02-03T04:05:06.789Z');
  await utimes(join(root, 'app/owned'), old, old);
}

async function buildSystemRoot(root: string): Promise<void> {
  const write = async (path: string, content: string, mode = 0o644) => {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
    await chmod(join(root, path), mode);
  };
  await write('etc/nginx/nginx.conf', 'user www-data;\n');
  await write('etc/ssl/private/server.key', 'PRIVATE KEY of the test\n', 0o600);
  await write('etc/crontab', 'SHELL=/bin/sh\n');
  await write('var/lib/dpkg/status', 'Package: nginx\nStatus: install ok installed\nArchitecture: amd64\n');
}

describe('RUNBOOK.md of a real encrypted set (files, sqlite, command, system), run by bash with age', () => {
  let sandbox: Sandbox;
  let setDir: string;
  let manifest: Manifest;
  let runbook: string;
  let files: string;
  let systemRoot: string;
  let database: string;
  let keyFile: string;

  before(async () => {
    sandbox = await makeSandbox('bp-runbook-');
    // The set is encrypted (the system source's secrets require it): every command decrypts with Debian's age.
    keyFile = join(sandbox.dir, 'age.key');
    execFileSync('age-keygen', ['-o', keyFile], { stdio: 'ignore' });
    const recipient = execFileSync('age-keygen', ['-y', keyFile], { encoding: 'utf8' }).trim();
    files = join(sandbox.dir, 'srv');
    systemRoot = join(sandbox.dir, 'sysroot');
    database = join(sandbox.dir, 'cache.sqlite');
    await buildFiles(files);
    await buildSystemRoot(systemRoot);
    execFileSync('sqlite3', [
      database,
      `CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
       WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
         INSERT INTO users SELECT i, 'user ' || i FROM n;
       CREATE TABLE "empty one" (x);
       CREATE TABLE tags (name TEXT); INSERT INTO tags VALUES ('a'), ('b');`,
    ]);
    await sandbox.writeConfig({
      sources: [
        { name: 'app', type: 'files', paths: [join(files, 'app')] },
        { name: 'cache', type: 'sqlite', path: database },
        { name: 'numbers', type: 'command', command: 'seq 1 20000', extension: 'txt' },
        { name: 'system', type: 'system', root: systemRoot },
      ],
      encryption: { recipients: [recipient] },
    });
    const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    const report = jsonOf<{ status: string }>(result);
    assert.equal(result.code, 0, `${result.stderr}\n${result.stdout}`);
    assert.equal(report.status, 'success');
    setDir = setDirOf(sandbox.targetDir);
    manifest = await readManifest(setDir);
    // The runbook the run itself wrote into the set (rendered before RUNBOOK.md joined objects[]).
    runbook = await readFile(join(setDir, 'RUNBOOK.md'), 'utf8');
    assert.equal(
      runbook,
      renderRunbook(
        { ...manifest, objects: manifest.objects.filter((o) => o.name !== 'RUNBOOK.md') },
        { targetDescription: `local ${sandbox.targetDir}` },
      ),
    );
  });
  after(async () => {
    await sandbox?.cleanup();
  });

  it('has a section for every component of the set, the secrets before the system archive', () => {
    for (const c of manifest.components) sectionOf(runbook, c.name);
    assert.ok(runbook.search(/^### 2\.\d+ `system\.secrets`:/m) < runbook.search(/^### 2\.\d+ `system`:/m));
  });

  it('restores the set: every object passes sha256sum -c, the files come back equal, sqlite is intact', async () => {
    const restore = join(sandbox.dir, 'restore');
    const script = withPlaceholders(shBlocks(runbook).join('\n'), { restore, key: keyFile });
    assert.doesNotMatch(script, /(?<![\w/.-])\/restore\b/, 'every placeholder was replaced');
    const result = bash(script, setDir);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);

    // sha256sum -c: one OK line per object, nothing else (RUNBOOK.md cannot hold its own hash).
    for (const o of manifest.objects.filter((object) => object.name !== 'RUNBOOK.md'))
      assert.match(result.stdout, new RegExp(`^${o.name.replace(/\./g, '\\.')}: OK$`, 'm'));
    assert.doesNotMatch(result.stdout + result.stderr, /FAILED|WARNING/);

    // Files: equal to the original, with owners, modes, times, links.
    assert.deepEqual(await compareTrees(join(files, 'app'), join(restore, files.slice(1), 'app')), []);
    // The index listing shows the first entries as JSON lines.
    assert.match(result.stdout, /^\{"path":".*app".*"type":"directory"/m);

    // SQLite: the decompressed file is the backed-up bytes, intact, with every table's rows.
    const cache = join(restore, 'cache.sqlite');
    assert.match(result.stdout, new RegExp(`^${cache}: OK$`, 'm'));
    assert.match(result.stdout, /^ok$/m, 'PRAGMA integrity_check printed ok');
    assert.match(result.stdout, /^1000$/m, 'the COUNT(*) example counted the biggest table');
    const tables = manifest.components.find((c) => c.kind === 'sqlite')?.tables ?? {};
    assert.deepEqual(Object.keys(tables).sort(), ['main.empty one', 'main.tags', 'main.users']);
    for (const [key, rows] of Object.entries(tables)) {
      const table = key.slice('main.'.length).replaceAll('"', '""');
      const count = execFileSync('sqlite3', [cache, `SELECT COUNT(*) FROM "${table}"`], { encoding: 'utf8' }).trim();
      assert.equal(Number(count), rows, `rows of ${key}`);
    }

    // Command: the output, byte for byte.
    assert.equal(
      await readFile(join(restore, 'numbers.txt'), 'utf8'),
      execFileSync('seq', ['1', '20000'], { encoding: 'utf8' }),
    );

    // System: secrets and configuration under /restore, relative to the root; the package list.
    assert.equal(await readFile(join(restore, 'etc/nginx/nginx.conf'), 'utf8'), 'user www-data;\n');
    assert.equal(await readFile(join(restore, 'etc/ssl/private/server.key'), 'utf8'), 'PRIVATE KEY of the test\n');
    assert.equal((await stat(join(restore, 'etc/ssl/private/server.key'))).mode & 0o777, 0o600);
    assert.equal(await readFile(join(restore, 'system.packages.txt'), 'utf8'), 'nginx\n');
  });

  it('fails its check on a damaged or missing object, naming it', async () => {
    const damaged = join(sandbox.dir, 'damaged-set');
    await cp(setDir, damaged, { recursive: true });
    const archive = join(damaged, 'app.tar.zst.age');
    const bytes = await readFile(archive);
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] ?? 0) ^ 0xff;
    await writeFile(archive, bytes);
    await rm(join(damaged, 'numbers.txt.zst.age'));
    const [check] = shBlocks(runbook);
    const result = bash(check ?? '', damaged);
    assert.notEqual(result.code, 0, 'sha256sum -c fails');
    assert.match(result.stdout, /^app\.tar\.zst\.age: FAILED$/m);
    assert.match(result.stdout, /^numbers\.txt\.zst\.age: FAILED open or read$/m);
    assert.match(result.stdout, /^cache\.sqlite\.zst\.age: OK$/m, 'the intact objects still pass');
  });

  it('fails the SQLite restore when the unpacked file is not the backed-up bytes', async () => {
    const restore = join(sandbox.dir, 'restore-wrong');
    const section = sectionOf(runbook, 'cache');
    // Someone else's file where the decompressed copy should be: the hash line catches it.
    const script = withPlaceholders(shBlocks(section).join('\n'), { restore }).replace(
      /^age -d -i KEY < cache\.sqlite\.zst\.age \| zstd -dc > (.*)$/m,
      `cp ${shellQuote(database)} $1 && echo extra >> $1`,
    );
    const result = bash(script, setDir);
    assert.notEqual(result.code, 0);
    assert.match(result.stdout, new RegExp(`^${join(restore, 'cache.sqlite')}: FAILED$`, 'm'));
  });
});

// ── databases, against the real test servers ─────────────────────────────────────────────────

describe('RUNBOOK.md of a MariaDB and PostgreSQL set, run by bash against the real servers', () => {
  let sandbox: Sandbox;
  let clientHome: string;
  const mariaDatabases: string[] = [];
  const pgDatabases: string[] = [];
  let mariaUser = '';
  let pgRole = '';

  const mq = (name: string) => `\`${name.replaceAll('`', '``')}\``;
  const pq = (name: string) => `"${name.replaceAll('"', '""')}"`;

  before(async () => {
    const s = services();
    sandbox = await makeSandbox('bp-runbook-db-');
    clientHome = await mkdtemp(join(tmpdir(), 'bp-runbook-home-'));
    // What the runbook tells the reader to do: connection options in ~/.my.cnf, PG* variables.
    await writeFile(join(clientHome, '.my.cnf'), `[client]\nsocket=${s.mariadb.socket}\nuser=${s.mariadb.adminUser}\n`);
  });
  after(async () => {
    for (const db of mariaDatabases) await mariadbAdmin(`DROP DATABASE IF EXISTS ${mq(db)}`).catch(() => {});
    if (mariaUser) await mariadbAdmin(`DROP USER IF EXISTS '${mariaUser}'@'127.0.0.1'`).catch(() => {});
    for (const db of pgDatabases) await psqlAdmin(`DROP DATABASE IF EXISTS ${pq(db)} WITH (FORCE);`).catch(() => {});
    if (pgRole) await psqlAdmin(`DROP ROLE IF EXISTS ${pq(pgRole)};`).catch(() => {});
    await sandbox?.cleanup();
    if (clientHome) await rm(clientHome, { recursive: true, force: true });
  });

  it('loads each dump into a new database with the same rows per table', async () => {
    const s = services();
    // MariaDB: a database and a dump account (password in a 0600 file).
    const mariaDb = uniqueName('rbmaria');
    mariaDatabases.push(mariaDb);
    mariaUser = uniqueName('rbuser');
    const mariaPassword = `pw ${uniqueName('secret')}`;
    await mariadbAdmin(
      `CREATE DATABASE ${mq(mariaDb)} CHARACTER SET utf8mb4;
       USE ${mq(mariaDb)};
       CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50));
       INSERT INTO customers SELECT seq, CONCAT('c', seq) FROM seq_1_to_3000;
       CREATE TABLE \`odd name\` (x INT); INSERT INTO \`odd name\` VALUES (1), (2);
       CREATE TABLE empty_one (x INT);
       CREATE USER '${mariaUser}'@'127.0.0.1' IDENTIFIED BY '${mariaPassword}';
       GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON ${mq(mariaDb)}.* TO '${mariaUser}'@'127.0.0.1';
       GRANT SELECT ON mysql.proc TO '${mariaUser}'@'127.0.0.1';`,
    );
    const mariaPasswordFile = join(clientHome, 'maria.pass');
    await writeFile(mariaPasswordFile, `${mariaPassword}\n`, { mode: 0o600 });
    // PostgreSQL: a role owning a database with two schemas.
    pgRole = uniqueName('rbrole');
    const pgPassword = `pw-${uniqueName('secret')}`;
    const pgDb = uniqueName('rbpg');
    await psqlAdmin(`CREATE ROLE ${pq(pgRole)} LOGIN PASSWORD '${pgPassword}';`);
    await psqlAdmin(`CREATE DATABASE ${pq(pgDb)} OWNER ${pq(pgRole)};`);
    pgDatabases.push(pgDb);
    await psqlAdmin(
      `SET ROLE ${pq(pgRole)};
       CREATE TABLE users (id integer PRIMARY KEY, name text);
       INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 5000) g;
       CREATE SCHEMA audit;
       CREATE TABLE audit.log (at text);
       INSERT INTO audit.log VALUES ('one'), ('two'), ('three');`,
      pgDb,
    );
    const pgPasswordFile = join(clientHome, 'pg.pass');
    await writeFile(pgPasswordFile, `${pgPassword}\n`, { mode: 0o600 });

    await sandbox.writeConfig({
      sources: [
        {
          name: 'main',
          type: 'mariadb',
          host: s.mariadb.host,
          port: s.mariadb.port,
          user: mariaUser,
          passwordFile: mariaPasswordFile,
          databases: [mariaDb],
          users: false, // loading accounts would change the shared test server's accounts
        },
        {
          name: 'pg',
          type: 'postgres',
          host: s.postgres.host,
          port: s.postgres.port,
          user: pgRole,
          passwordFile: pgPasswordFile,
          databases: [pgDb],
          globals: false, // the same: roles are the whole cluster's
        },
      ],
    });
    const backup = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    assert.equal(backup.code, 0, `${backup.stderr}\n${backup.stdout}`);
    const setDir = setDirOf(sandbox.targetDir);
    const manifest = await readManifest(setDir);
    const runbook = await readFile(join(setDir, 'RUNBOOK.md'), 'utf8');

    const env = {
      HOME: clientHome,
      PGHOST: s.postgres.socketDir,
      PGPORT: String(s.postgres.port),
      PGUSER: s.postgres.adminUser,
    };
    const [check, ...restores] = shBlocks(runbook);
    const checked = bash(check ?? '', setDir, env);
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);

    for (const c of manifest.components) {
      const target = uniqueName(c.kind === 'mariadb' ? 'rbnewm' : 'rbnewp');
      (c.kind === 'mariadb' ? mariaDatabases : pgDatabases).push(target);
      const block = shBlocks(sectionOf(runbook, c.name)).join('\n');
      assert.ok(
        restores.some((r) => block.includes(r)),
        `the section's commands are among the runbook's`,
      );
      const result = bash(withPlaceholders(block, { database: target }), setDir, env);
      assert.equal(result.code, 0, `${c.name}:\n${result.stdout}\n${result.stderr}`);
      const tables = c.tables ?? {};
      assert.ok(Object.keys(tables).length >= 2, `${c.name} lists its tables`);
      for (const [key, rows] of Object.entries(tables)) {
        let count: string;
        if (c.kind === 'mariadb') {
          const table = key.slice(mariaDb.length + 1);
          count = await mariadbAdmin(`SELECT COUNT(*) FROM ${mq(target)}.${mq(table)}`);
        } else {
          const [schema, table] = key.split('.') as [string, string];
          count = await psqlAdmin(`SELECT COUNT(*) FROM ${pq(schema)}.${pq(table)}`, target);
        }
        assert.equal(Number(count), rows, `${c.name}: rows of ${key} in the restored database`);
      }
      // The runbook's own COUNT(*) example printed the biggest table's rows.
      const biggest = Math.max(...Object.values(tables));
      assert.match(result.stdout, new RegExp(`^\\s*${biggest}$`, 'm'), `${c.name}: the COUNT(*) example`);
    }
  });

  it('stops at the first error when the new database already exists (never loads into it)', async () => {
    const setDir = setDirOf(sandbox.targetDir);
    const manifest = await readManifest(setDir);
    const runbook = renderRunbook(manifest, { targetDescription: 'local target "disk"' });
    const s = services();
    const env = {
      HOME: clientHome,
      PGHOST: s.postgres.socketDir,
      PGPORT: String(s.postgres.port),
      PGUSER: s.postgres.adminUser,
    };
    for (const c of manifest.components) {
      const existing = uniqueName('rbexists');
      (c.kind === 'mariadb' ? mariaDatabases : pgDatabases).push(existing);
      if (c.kind === 'mariadb') await mariadbAdmin(`CREATE DATABASE ${mq(existing)}`);
      else await psqlAdmin(`CREATE DATABASE ${pq(existing)};`);
      const block = shBlocks(sectionOf(runbook, c.name)).join('\n');
      const result = bash(withPlaceholders(block, { database: existing }), setDir, env);
      assert.notEqual(result.code, 0, `${c.name}: the create step fails`);
      assert.match(result.stderr, /exists/);
      const tables =
        c.kind === 'mariadb'
          ? await mariadbAdmin(`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '${existing}'`)
          : await psqlAdmin(
              "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
              existing,
            );
      assert.equal(Number(tables), 0, `${c.name}: nothing was loaded into the existing database`);
    }
  });
});
