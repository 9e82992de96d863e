// The system source against a fixture root holding every part a web server has (crontabs, nginx,
// PHP-FPM, systemd units, letsencrypt, SSH, dpkg state…): the archives are extracted with GNU tar
// into a new root and compared with the original, secrets are checked to be in `.secrets` only, and
// the package list is checked against the fixture's manual packages. Also: roots with nothing in
// them, without dpkg, missing, excluded parts, and consumers that stop reading.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { chmod, lchown, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { SourceError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/log.js';
import type { IndexEntry } from '../../src/sources/files.js';
import { manualPackages, parseControl, readManualPackages } from '../../src/sources/packages.js';
import { createSystemSource } from '../../src/sources/system.js';
import type { ComponentFacts, ComponentStream, SourceContext } from '../../src/sources/types.js';
import { compareTrees } from '../helpers/compare.js';
import { makeTempDir } from '../helpers/tree.js';

function context(signal = new AbortController().signal): SourceContext {
  return { signal, log: silentLogger, scratchDir: '/nonexistent' };
}

const DPKG_STATUS = `Package: dpkg
Status: install ok installed
Priority: required
Architecture: amd64
Version: 1.21.22
Description: Debian package management system
 This package provides the low-level infrastructure for handling the
 installation and removal of Debian software packages.
 Package: not-a-package-this-is-a-continuation-line

Package: nginx
Status: install ok installed
Architecture: amd64
Conffiles:
 /etc/nginx/nginx.conf 0123456789abcdef0123456789abcdef

Package: php8.2-fpm
Status: install ok installed
Architecture: amd64

Package: libssl3
Status: install ok installed
Architecture: amd64

Package: libc6
Status: install ok installed
Architecture: amd64

Package: libc6
Status: install ok installed
Architecture: i386

Package: tzdata
Status: install ok installed
Architecture: all

Package: redis-server
Status: hold ok installed
Architecture: amd64

Package: ca-certificates
Status: install ok triggers-pending
Architecture: all

Package: oldpkg
Status: deinstall ok config-files
Architecture: amd64

Package: purged
Status: purge ok not-installed
Architecture: amd64
`;

const EXTENDED_STATES = `Package: libssl3
Architecture: amd64
Auto-Installed: 1

Package: libc6
Architecture: amd64
Auto-Installed: 1

Package: tzdata
Architecture: amd64
Auto-Installed: 1

Package: nginx
Architecture: amd64
Auto-Installed: 0

Package: oldpkg
Architecture: amd64
Auto-Installed: 1
`;

/** What `apt-mark showmanual` would say for the fixture. */
const MANUAL = ['ca-certificates', 'dpkg', 'libc6:i386', 'nginx', 'php8.2-fpm', 'redis-server'];

/** Paths (relative to root) that `<name>` must hold, each with everything under it. */
const CAPTURED = [
  'etc/apache2',
  'etc/cron.d',
  'etc/cron.daily',
  'etc/crontab',
  'etc/environment',
  'etc/fstab',
  'etc/hostname',
  'etc/hosts',
  'etc/letsencrypt',
  'etc/logrotate.d',
  'etc/mysql',
  'etc/nginx',
  'etc/php/8.2/cli/php.ini',
  'etc/php/8.2/fpm',
  'etc/php/7.4/fpm',
  'etc/postgresql',
  'etc/redis',
  'etc/ssh/sshd_config',
  'etc/ssh/sshd_config.d',
  'etc/sudoers.d',
  'etc/supervisor',
  'etc/systemd/system',
  'var/spool/cron/crontabs',
];

/** Paths that `<name>.secrets` must hold, and nothing else. */
const SECRETS = [
  'etc/letsencrypt/accounts',
  'etc/letsencrypt/archive',
  'etc/letsencrypt/keys',
  'etc/letsencrypt/live',
  'etc/mysql/debian.cnf',
  'etc/nginx/.env.production',
  'etc/nginx/ssl/app.key',
  'etc/ssh/ssh_host_ed25519_key',
  'etc/ssh/ssh_host_ed25519_key.pub',
  'etc/ssl/private',
  'etc/supervisor/conf.d/.env',
];

/** Things near the parts that are not part of the preset. */
const LEFT_OUT = [
  'etc/passwd',
  'etc/ssh/ssh_config',
  'etc/ssl/certs',
  'etc/php/8.2/cli/conf.d',
  'etc/php/8.2/mods-available',
  'lib/systemd/system',
  'var/lib/dpkg',
  'var/lib/apt',
];

/** Bytes that only ever appear in secret files: finding them in the main archive is a leak. */
const SECRET_MARK = 'SECRET-9f2c';

interface Fixture {
  root: string;
  write(relative: string, content: string, options?: { mode?: number; uid?: number; gid?: number }): Promise<void>;
  link(relative: string, target: string): Promise<void>;
}

function fixture(root: string): Fixture {
  return {
    root,
    async write(relative, content, options = {}) {
      const path = join(root, relative);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, content);
      if (options.mode !== undefined) await chmod(path, options.mode);
      if (options.uid !== undefined) await lchown(path, options.uid, options.gid ?? options.uid);
    },
    async link(relative, target) {
      const path = join(root, relative);
      await mkdir(dirname(path), { recursive: true });
      await symlink(target, path);
    },
  };
}

/** A server's root with every part, the secrets among them, things left out, and dpkg/apt state. */
async function buildServerRoot(root: string): Promise<void> {
  const f = fixture(root);
  await f.write('var/spool/cron/crontabs/alice', '0 3 * * * /home/alice/backup.sh\n', { mode: 0o600, uid: 1001 });
  await f.write('var/spool/cron/crontabs/bob', '*/5 * * * * php /var/www/app/artisan schedule:run\n', {
    mode: 0o600,
    uid: 1002,
  });
  await chmod(join(root, 'var/spool/cron/crontabs'), 0o1730);
  await f.write('etc/crontab', 'SHELL=/bin/sh\n17 * * * * root cd / && run-parts --report /etc/cron.hourly\n');
  await f.write('etc/cron.d/app', '* * * * * www-data php /var/www/app/artisan queue:restart\n');
  await f.write('etc/cron.daily/logs', '#!/bin/sh\nfind /var/log/app -mtime +30 -delete\n', { mode: 0o755 });
  await f.write('etc/nginx/nginx.conf', 'user www-data;\nworker_processes auto;\n');
  await f.write('etc/nginx/sites-available/app.conf', 'server { listen 80; root /var/www/app/public; }\n');
  await f.link('etc/nginx/sites-enabled/app.conf', '/etc/nginx/sites-available/app.conf');
  await f.write('etc/nginx/ssl/app.key', `-----BEGIN PRIVATE KEY-----\n${SECRET_MARK} nginx\n`, { mode: 0o600 });
  await f.write('etc/nginx/ssl/app.crt', '-----BEGIN CERTIFICATE-----\npublic\n');
  await f.write('etc/nginx/.env.production', `APP_KEY=${SECRET_MARK}-dotenv-production\n`, { mode: 0o600 });
  await f.write('etc/apache2/ports.conf', 'Listen 8080\n');
  await f.write('etc/php/8.2/fpm/php-fpm.conf', '[global]\npid = /run/php/php8.2-fpm.pid\n');
  await f.write('etc/php/8.2/fpm/php.ini', 'memory_limit = 512M\n');
  await f.write('etc/php/8.2/fpm/pool.d/www.conf', '[www]\nuser = www-data\npm = dynamic\n');
  await f.write('etc/php/8.2/cli/php.ini', 'memory_limit = -1\n');
  await f.write('etc/php/8.2/cli/conf.d/10-opcache.ini', 'zend_extension=opcache.so\n');
  await f.write('etc/php/8.2/mods-available/opcache.ini', 'zend_extension=opcache.so\n');
  await f.write('etc/php/7.4/fpm/pool.d/legacy.conf', '[legacy]\nuser = legacy\n');
  await f.write('etc/systemd/system/app-worker.service', '[Service]\nExecStart=/usr/bin/php artisan queue:work\n');
  await f.link(
    'etc/systemd/system/multi-user.target.wants/app-worker.service',
    '/etc/systemd/system/app-worker.service',
  );
  await f.write('etc/systemd/system/nginx.service.d/override.conf', '[Service]\nLimitNOFILE=65535\n');
  await f.write('lib/systemd/system/nginx.service', '[Unit]\nDescription=distribution unit\n');
  await f.write('etc/supervisor/supervisord.conf', '[supervisord]\n');
  await f.write('etc/supervisor/conf.d/queue.conf', '[program:queue]\ncommand=php artisan queue:work\n');
  await f.write('etc/supervisor/conf.d/.env', `DB_PASSWORD=${SECRET_MARK}-dotenv\n`, { mode: 0o600 });
  await f.write('etc/letsencrypt/cli.ini', 'max-log-backups = 0\n');
  await f.write(
    'etc/letsencrypt/renewal/example.com.conf',
    'version = 2.1.0\narchive_dir = /etc/letsencrypt/archive\n',
  );
  await f.write('etc/letsencrypt/archive/example.com/cert1.pem', '-----BEGIN CERTIFICATE-----\nle cert\n');
  await f.write('etc/letsencrypt/archive/example.com/privkey1.pem', `${SECRET_MARK} letsencrypt key\n`, {
    mode: 0o600,
  });
  await f.link('etc/letsencrypt/live/example.com/cert.pem', '../../archive/example.com/cert1.pem');
  await f.link('etc/letsencrypt/live/example.com/privkey.pem', '../../archive/example.com/privkey1.pem');
  await f.write('etc/letsencrypt/keys/0000_key-certbot.pem', `${SECRET_MARK} certbot key\n`, { mode: 0o600 });
  await f.write(
    'etc/letsencrypt/accounts/acme-v02.api.letsencrypt.org/directory/abc/private_key.json',
    `{"n": "${SECRET_MARK} account"}\n`,
    { mode: 0o400 },
  );
  await chmod(join(root, 'etc/letsencrypt/archive'), 0o700);
  await f.write('etc/ssl/private/server.key', `${SECRET_MARK} ssl private\n`, { mode: 0o640 });
  await chmod(join(root, 'etc/ssl/private'), 0o710);
  await f.write('etc/ssl/certs/ca.pem', 'distribution certificate\n');
  await f.write('etc/ssh/sshd_config', 'PermitRootLogin no\n');
  await f.write('etc/ssh/sshd_config.d/hardening.conf', 'PasswordAuthentication no\n');
  await f.write('etc/ssh/ssh_config', 'Host *\n');
  await f.write('etc/ssh/ssh_host_ed25519_key', `${SECRET_MARK} host key\n`, { mode: 0o600 });
  await f.write('etc/ssh/ssh_host_ed25519_key.pub', 'ssh-ed25519 AAAA host\n');
  await f.write('etc/hosts', '127.0.0.1 localhost\n');
  await f.write('etc/hostname', 'web1\n');
  await f.write('etc/fstab', 'UUID=1234 / ext4 defaults 0 1\n');
  await f.write('etc/environment', 'LANG=C.UTF-8\n');
  await f.write('etc/logrotate.d/app', '/var/log/app/*.log { daily }\n');
  await f.write('etc/sudoers.d/deploy', 'deploy ALL=(root) NOPASSWD: /bin/systemctl reload nginx\n', { mode: 0o440 });
  await f.write('etc/redis/redis.conf', 'bind 127.0.0.1\n');
  await f.write('etc/mysql/my.cnf', '[mysqld]\nbind-address = 127.0.0.1\n');
  await f.write('etc/mysql/debian.cnf', `[client]\npassword = ${SECRET_MARK}-mysql\n`, { mode: 0o600 });
  await f.write('etc/postgresql/15/main/postgresql.conf', "listen_addresses = 'localhost'\n");
  await f.write('etc/passwd', 'root:x:0:0:root:/root:/bin/bash\n');
  await f.write('var/lib/dpkg/status', DPKG_STATUS);
  await f.write('var/lib/apt/extended_states', EXTENDED_STATES);
}

interface Produced {
  component: ComponentStream;
  /** The data written to a file (tar or txt). */
  path: string;
  index: IndexEntry[] | undefined;
  facts: ComponentFacts;
}

/** Runs every component of the source to files in `dir`, by component name. */
async function produce(
  dir: string,
  options: { root: string; exclude?: string[] },
  ctx = context(),
): Promise<Map<string, Produced>> {
  const source = createSystemSource({ name: 'system', exclude: [], ...options });
  const produced = new Map<string, Produced>();
  for await (const component of source.components(ctx)) {
    const path = join(dir, `${component.name}.${component.extension}`);
    const indexText = component.index ? readAll(component.index) : undefined;
    await pipeline(component.data, createWriteStream(path));
    const text = await indexText;
    const index =
      text === undefined
        ? undefined
        : text === ''
          ? []
          : text
              .trimEnd()
              .split('\n')
              .map((line) => JSON.parse(line) as IndexEntry);
    produced.set(component.name, { component, path, index, facts: await component.facts });
  }
  return produced;
}

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function tarNames(tarPath: string): string[] {
  const result = spawnSync('tar', ['-tf', tarPath], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout
    .split('\n')
    .filter(Boolean)
    .map((name) => name.replace(/\/$/, ''));
}

/** Extracts with GNU tar as a restore would (`tar -x -C /`), failing on any complaint. */
function extract(tarPath: string, into: string): void {
  const result = spawnSync('tar', ['--numeric-owner', '-xpf', tarPath, '-C', into], { encoding: 'utf8' });
  assert.equal(result.stderr, '', 'GNU tar complained');
  assert.equal(result.status, 0);
}

const isUnder = (path: string, roots: string[]) => roots.some((root) => path === root || path.startsWith(`${root}/`));

function required<T>(value: T | undefined, what: string): T {
  assert.ok(value !== undefined, `${what} is missing`);
  return value;
}

describe('system source: a server root with every part', () => {
  let work: string;
  let root: string;
  let produced: Map<string, Produced>;

  before(async () => {
    work = await makeTempDir();
    root = join(work, 'server');
    await buildServerRoot(root);
    produced = await produce(work, { root });
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('produces the main archive, the secrets archive and the package list, all of kind system', () => {
    assert.deepEqual([...produced.keys()], ['system', 'system.secrets', 'system.packages']);
    const shape = [...produced.values()].map(({ component, index }) => ({
      kind: component.kind,
      extension: component.extension,
      indexed: index !== undefined,
    }));
    assert.deepEqual(shape, [
      { kind: 'system', extension: 'tar', indexed: true },
      { kind: 'system', extension: 'tar', indexed: true },
      { kind: 'system', extension: 'txt', indexed: false },
    ]);
  });

  test('the main archive holds exactly the captured parts, named relative to root, and no secret', async () => {
    const main = required(produced.get('system'), 'system');
    const names = tarNames(main.path);
    for (const part of CAPTURED) assert.ok(names.includes(part), `${part} is in the archive`);
    for (const name of names) {
      assert.ok(isUnder(name, CAPTURED), `${name} belongs to a captured part`);
      assert.ok(!isUnder(name, SECRETS), `${name} is a secret and must not be in the main archive`);
      assert.ok(!isUnder(name, LEFT_OUT), `${name} is not part of the preset`);
    }
    // Nothing of a secret's bytes, whatever its name: the raw tar is searched.
    assert.equal((await readFile(main.path)).includes(SECRET_MARK), false);
    // The index lists what the tar holds, in the same order and with the same names.
    assert.deepEqual(
      required(main.index, 'index').map((e) => e.path),
      names,
    );
    assert.equal(main.facts.files, names.length);
  });

  test('the secrets archive holds exactly the secrets and is flagged secret', () => {
    const secrets = required(produced.get('system.secrets'), 'system.secrets');
    const names = tarNames(secrets.path);
    for (const name of names) assert.ok(isUnder(name, SECRETS), `${name} is a secret`);
    for (const secret of SECRETS) assert.ok(names.includes(secret), `${secret} is in the secrets archive`);
    assert.ok(names.includes('etc/letsencrypt/live/example.com/privkey.pem'));
    assert.deepEqual(
      required(secrets.index, 'index').map((e) => e.path),
      names,
    );
    assert.equal(secrets.facts.secret, true);
    assert.equal(produced.get('system')?.facts.secret, undefined);
    assert.equal(produced.get('system.packages')?.facts.secret, undefined);
  });

  test('both archives extract with GNU tar into a new root equal to the original, symlinks and owners included', async () => {
    const restored = join(work, 'restored');
    await mkdir(restored);
    // Secrets first: GNU tar sets a stored directory's mtime after its children, so the main archive,
    // extracted second, leaves etc/nginx (which holds secret files too) with its original mtime.
    extract(required(produced.get('system.secrets'), 'system.secrets').path, restored);
    extract(required(produced.get('system'), 'system').path, restored);
    const kept = [...CAPTURED, ...SECRETS];
    // Parents of the parts (etc, etc/php/8.2…) are not stored: tar creates them, so they are not compared.
    const problems = await compareTrees(root, restored, { ignore: (path) => !isUnder(path, kept) });
    assert.deepEqual(problems, []);
    const live = spawnSync('readlink', [join(restored, 'etc/letsencrypt/live/example.com/privkey.pem')], {
      encoding: 'utf8',
    });
    assert.equal(live.stdout.trim(), '../../archive/example.com/privkey1.pem');
    assert.equal(
      await readFile(join(restored, 'etc/letsencrypt/live/example.com/privkey.pem'), 'utf8'),
      `${SECRET_MARK} letsencrypt key\n`,
      'the live symlink resolves into the restored archive',
    );
  });

  test('the package list is exactly the manual packages, one per line, sorted', async () => {
    const packages = required(produced.get('system.packages'), 'system.packages');
    assert.equal(await readFile(packages.path, 'utf8'), `${MANUAL.join('\n')}\n`);
    assert.match(packages.facts.dumpTool ?? '', /6 of 9 installed packages are manual/);
  });

  test('says which parts it found, and warns about nothing', () => {
    const main = required(produced.get('system'), 'system');
    assert.equal(
      main.facts.dumpTool,
      'backproof system preset: cron, nginx, apache2, php-fpm, systemd units, supervisor, letsencrypt, hosts, ' +
        'fstab, environment, logrotate, sudoers, sshd, redis, mysql, postgresql',
    );
    assert.equal(
      produced.get('system.secrets')?.facts.dumpTool,
      'backproof system preset, secrets: TLS keys, SSH host keys, MySQL maintenance credentials, ' +
        '3 secret file(s) (.env, .env.*, *.key)',
    );
    for (const { facts } of produced.values()) assert.deepEqual(facts.warnings, []);
  });

  test('check() finds nothing wrong, and the estimate is the bytes of every file plus the package list', async () => {
    const source = createSystemSource({ name: 'system', root, exclude: [] });
    assert.deepEqual(await source.check(context()), []);
    const fileBytes = [produced.get('system'), produced.get('system.secrets')]
      .flatMap((p) => p?.index ?? [])
      .reduce((sum, entry) => sum + (entry.type === 'file' ? (entry.size ?? 0) : 0), 0);
    const listBytes = `${MANUAL.join('\n')}\n`.length;
    assert.equal(await source.estimateRawBytes(context()), fileBytes + listBytes);
  });
});

describe('system source: choosing what to capture', () => {
  let work: string;
  let root: string;
  before(async () => {
    work = await makeTempDir();
    root = join(work, 'server');
    await buildServerRoot(root);
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('exclude globs are relative to root and can drop a whole part or a file inside one', async () => {
    const out = join(work, 'excluded');
    await mkdir(out);
    const produced = await produce(out, {
      root,
      exclude: ['etc/redis', 'etc/nginx/sites-available/*.conf', 'etc/ssh/ssh_host_*', '**/.env'],
    });
    const main = tarNames(required(produced.get('system'), 'system').path);
    assert.ok(!main.some((name) => isUnder(name, ['etc/redis', 'etc/nginx/sites-available/app.conf'])));
    assert.ok(main.includes('etc/nginx/sites-available'), 'the directory itself is still stored');
    assert.ok(main.includes('etc/nginx/nginx.conf'));
    assert.doesNotMatch(produced.get('system')?.facts.dumpTool ?? '', /redis/);
    const secrets = tarNames(required(produced.get('system.secrets'), 'system.secrets').path);
    assert.ok(!secrets.some((name) => name.startsWith('etc/ssh/')));
    assert.ok(!secrets.includes('etc/supervisor/conf.d/.env'));
    assert.ok(secrets.includes('etc/nginx/.env.production'));
    assert.doesNotMatch(produced.get('system.secrets')?.facts.dumpTool ?? '', /SSH/);
  });

  test('absolute exclude globs (the state directory, local targets) are matched on the path on disk', async () => {
    const out = join(work, 'protected');
    await mkdir(out);
    // The shape index.ts gives protected paths: the literal path and everything under it.
    const exclude = [join(root, 'etc/cron.d'), `${join(root, 'etc/cron.d')}/**`, `${join(root, 'etc/ssl')}/**`];
    const produced = await produce(out, {
      root,
      exclude: [...exclude, `${join(root, 'etc/nginx/sites-available')}/**`],
    });
    const main = tarNames(required(produced.get('system'), 'system').path);
    assert.ok(!main.some((name) => isUnder(name, ['etc/cron.d'])));
    assert.ok(main.includes('etc/cron.daily'));
    assert.ok(main.includes('etc/nginx/nginx.conf'));
    assert.ok(!main.some((name) => name.startsWith('etc/nginx/sites-available')));
    const secrets = tarNames(required(produced.get('system.secrets'), 'system.secrets').path);
    assert.ok(!secrets.some((name) => name.startsWith('etc/ssl/')));
    assert.ok(secrets.includes('etc/letsencrypt/keys'));
  });

  test('a root without dpkg (not Debian) is captured without a package list, with a warning', async () => {
    const other = join(work, 'not-debian');
    const f = fixture(other);
    await f.write('etc/nginx/nginx.conf', 'events {}\n');
    await f.write('etc/ssl/private/server.key', `${SECRET_MARK}\n`);
    const out = join(work, 'not-debian-out');
    await mkdir(out);
    const produced = await produce(out, { root: other });
    assert.deepEqual([...produced.keys()], ['system', 'system.secrets']);
    assert.deepEqual(produced.get('system')?.facts.warnings, [
      `no ${join(other, 'var/lib/dpkg/status')} (not a Debian system?): the package list was not captured`,
    ]);
    assert.deepEqual(produced.get('system.secrets')?.facts.warnings, []);
    assert.deepEqual(tarNames(required(produced.get('system'), 'system').path), ['etc/nginx', 'etc/nginx/nginx.conf']);
  });

  test('warnings about the whole source ride on the first component when there is no main one', async () => {
    const other = join(work, 'secrets-only');
    await fixture(other).write('etc/ssh/ssh_host_rsa_key', `${SECRET_MARK}\n`);
    const out = join(work, 'secrets-only-out');
    await mkdir(out);
    const produced = await produce(out, { root: other });
    assert.deepEqual([...produced.keys()], ['system.secrets']);
    assert.match(produced.get('system.secrets')?.facts.warnings.join('\n') ?? '', /the package list was not captured/);
  });

  test('a root with only a package list produces only the package list', async () => {
    const other = join(work, 'packages-only');
    const f = fixture(other);
    await f.write('var/lib/dpkg/status', DPKG_STATUS);
    const out = join(work, 'packages-only-out');
    await mkdir(out);
    const produced = await produce(out, { root: other });
    assert.deepEqual([...produced.keys()], ['system.packages']);
    // Without extended_states apt counts every installed package as manual.
    const all = [
      'ca-certificates',
      'dpkg',
      'libc6',
      'libc6:i386',
      'libssl3',
      'nginx',
      'php8.2-fpm',
      'redis-server',
      'tzdata',
    ];
    assert.equal(
      await readFile(required(produced.get('system.packages'), 'packages').path, 'utf8'),
      `${all.join('\n')}\n`,
    );
    assert.deepEqual(produced.get('system.packages')?.facts.warnings, []);
  });
});

describe('system source: roots with nothing to capture', () => {
  let work: string;
  before(async () => {
    work = await makeTempDir();
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('an empty root gives one valid, empty archive with a warning, and a preflight warning', async () => {
    const empty = join(work, 'empty');
    await mkdir(join(empty, 'etc'), { recursive: true });
    await writeFile(join(empty, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
    const source = createSystemSource({ name: 'system', root: empty, exclude: [] });
    const findings = await source.check(context());
    assert.equal(findings.length, 1);
    assert.equal(findings[0]?.fatal, false);
    assert.match(findings[0]?.message ?? '', /^source system: nothing to capture under /);

    const produced = await produce(work, { root: empty });
    assert.deepEqual([...produced.keys()], ['system']);
    const main = required(produced.get('system'), 'system');
    assert.deepEqual(tarNames(main.path), []);
    assert.equal((await readFile(main.path)).length, 1024, 'an end-of-archive marker and nothing else');
    assert.equal(main.facts.files, 0);
    assert.equal(main.facts.warnings.length, 2);
    assert.match(main.facts.warnings[0] ?? '', /var\/lib\/dpkg\/status \(not a Debian system\?\)/);
    assert.match(main.facts.warnings[1] ?? '', new RegExp(`^nothing to capture under ${empty}: `));
    assert.equal(main.facts.dumpTool, 'backproof system preset: nothing found');
  });

  test('a dpkg status with no manual package gives no package list and says why', async () => {
    const root = join(work, 'all-auto');
    const f = fixture(root);
    await f.write('etc/hosts', '127.0.0.1 localhost\n');
    await f.write('var/lib/dpkg/status', 'Package: libc6\nStatus: install ok installed\nArchitecture: amd64\n');
    await f.write('var/lib/apt/extended_states', 'Package: libc6\nArchitecture: amd64\nAuto-Installed: 1\n');
    const out = join(work, 'all-auto-out');
    await mkdir(out);
    const produced = await produce(out, { root });
    assert.deepEqual([...produced.keys()], ['system']);
    assert.deepEqual(produced.get('system')?.facts.warnings, [
      '1 packages are installed but none is marked as manually installed: the package list was not captured',
    ]);
  });

  test('a root that does not exist is a fatal preflight finding, and fails the source if run anyway', async () => {
    const missing = join(work, 'no-such-root');
    const source = createSystemSource({ name: 'system', root: missing, exclude: [] });
    assert.deepEqual(await source.check(context()), [
      {
        fatal: true,
        message: `source system: root ${missing} does not exist; set root to the directory of the system to capture (default /)`,
      },
    ]);
    assert.equal(await source.estimateRawBytes(context()), 0);
    await assert.rejects(
      produce(work, { root: missing }),
      (error) => error instanceof SourceError && error.source === 'system' && error.message.includes(missing),
    );
  });

  test('a root that is a file is a fatal preflight finding', async () => {
    const file = join(work, 'a-file');
    await writeFile(file, 'not a directory\n');
    const findings = await createSystemSource({ name: 'system', root: file, exclude: [] }).check(context());
    assert.deepEqual(findings, [
      {
        fatal: true,
        message: `source system: root ${file} is not a directory; set root to the directory of the system to capture (default /)`,
      },
    ]);
  });
});

describe('system source: failures', () => {
  let work: string;
  let root: string;
  before(async () => {
    work = await makeTempDir();
    root = join(work, 'server');
    await buildServerRoot(root);
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('an aborted run stops before producing anything', async () => {
    const controller = new AbortController();
    controller.abort(new Error('stop now'));
    const source = createSystemSource({ name: 'system', root, exclude: [] });
    await assert.rejects(source.components(context(controller.signal))[Symbol.asyncIterator]().next(), {
      message: 'stop now',
    });
  });

  test('an abort while the main archive streams fails its facts with the abort reason', async () => {
    const controller = new AbortController();
    const source = createSystemSource({ name: 'system', root, exclude: [] });
    const iterator = source.components(context(controller.signal))[Symbol.asyncIterator]();
    const first = await iterator.next();
    assert.equal(first.done, false);
    const component = first.value as ComponentStream;
    controller.abort(new Error('interrupted'));
    await assert.rejects(readAll(component.data), { message: 'interrupted' });
    await assert.rejects(component.facts, { message: 'interrupted' });
  });

  test('a package list its consumer stops reading fails with a SourceError', async () => {
    const source = createSystemSource({ name: 'system', root, exclude: [] });
    for await (const component of source.components(context())) {
      if (component.name !== 'system.packages') {
        component.data.resume();
        component.index?.resume();
        await component.facts;
        continue;
      }
      component.data.destroy();
      await assert.rejects(
        component.facts,
        (error) => error instanceof SourceError && /was not read to the end/.test(error.message),
      );
    }
  });

  test('an unreadable dpkg status skips the package list with a warning naming the file', async () => {
    const other = join(work, 'broken-dpkg');
    await mkdir(join(other, 'var/lib/dpkg/status'), { recursive: true }); // a directory: EISDIR
    await fixture(other).write('etc/hosts', 'hosts\n');
    const out = join(work, 'broken-dpkg-out');
    await mkdir(out);
    const produced = await produce(out, { root: other });
    assert.deepEqual([...produced.keys()], ['system']);
    assert.match(
      produced.get('system')?.facts.warnings[0] ?? '',
      new RegExp(
        `^cannot read ${join(other, 'var/lib/dpkg/status')} \\(.*EISDIR.*\\): the package list was not captured`,
      ),
    );
  });
});

describe('packages: manual packages from dpkg and apt state', () => {
  test('installed minus Auto-Installed, foreign architectures by name:arch, arch all under native', () => {
    const list = manualPackages(DPKG_STATUS, EXTENDED_STATES);
    assert.deepEqual(list, { manual: MANUAL, installed: 9, autoStates: true });
  });

  test('removed packages (config-files, not-installed) are never listed, even without apt state', () => {
    const list = manualPackages(DPKG_STATUS, undefined);
    assert.equal(list.autoStates, false);
    assert.ok(!list.manual.includes('oldpkg'));
    assert.ok(!list.manual.includes('purged'));
    assert.equal(list.manual.length, 9);
  });

  test('an extended_states entry without Architecture marks every architecture automatic', () => {
    const list = manualPackages(DPKG_STATUS, 'Package: libc6\nAuto-Installed: 1\n');
    assert.ok(!list.manual.includes('libc6'));
    assert.ok(!list.manual.includes('libc6:i386'));
  });

  test('without dpkg in the status, the most common architecture is native', () => {
    const status = [
      'Package: a\nStatus: install ok installed\nArchitecture: arm64',
      'Package: b\nStatus: install ok installed\nArchitecture: arm64',
      'Package: c\nStatus: install ok installed\nArchitecture: armhf',
      'Package: d\nStatus: install ok installed\nArchitecture: all',
    ].join('\n\n');
    assert.deepEqual(manualPackages(status, undefined).manual, ['a', 'b', 'c:armhf', 'd']);
  });

  test('parseControl: CRLF, comments, continuation lines and blank-line runs', () => {
    const stanzas = parseControl(
      '# comment\r\nPackage: x\r\nDescription: one\r\n two\r\n\r\n\r\n\r\nPACKAGE: y\r\nStatus:  install ok installed \r\n',
    );
    assert.deepEqual(
      stanzas.map((s) => Object.fromEntries(s)),
      [
        { package: 'x', description: 'one' },
        { package: 'y', status: 'install ok installed' },
      ],
    );
  });

  test('readManualPackages: no dpkg status is a reason to skip, not an error', async () => {
    const dir = await makeTempDir();
    try {
      const result = await readManualPackages(dir);
      assert.deepEqual(result, {
        skipped: `no ${join(dir, 'var/lib/dpkg/status')} (not a Debian system?): the package list was not captured`,
      });
      await fixture(dir).write('var/lib/dpkg/status', DPKG_STATUS);
      await mkdir(join(dir, 'var/lib/apt/extended_states'), { recursive: true });
      const unreadable = await readManualPackages(dir);
      assert.ok('skipped' in unreadable);
      assert.match(unreadable.skipped, /extended_states \(.*EISDIR.*\): without it manual and automatic packages/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
