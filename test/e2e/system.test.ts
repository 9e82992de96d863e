// The system source through the real CLI: a fixture server root (crontabs, nginx, PHP-FPM, a systemd
// unit with its wants symlink, letsencrypt, an .env, dpkg state) is backed up, and the set is restored
// with plain zstd and GNU tar into a new root, equal to the original; secrets are only in `.secrets`;
// the package list is exactly the manual packages. Also: an empty root, and a root that is not there.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, lchown, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jsonOf, makeSandbox, runCli, type Sandbox } from '../helpers/cli.js';
import { compareTrees } from '../helpers/compare.js';

interface Report {
  status: string;
  exitCode: number;
  setId: string;
  warnings: string[];
  failures: { step: string; message: string; component?: string }[];
}

interface Manifest {
  objects: { name: string; bytes: number; sha256: string }[];
  components: {
    name: string;
    source: string;
    kind: string;
    object: string;
    index?: string;
    dumpTool?: string;
    secret?: boolean;
  }[];
}

const SECRET_MARK = 'SECRET-e2e-51d7';

/** Paths (relative to root) of the main archive and of the secrets archive. */
const CAPTURED = [
  'etc/crontab',
  'etc/letsencrypt',
  'etc/nginx',
  'etc/php/8.2/cli/php.ini',
  'etc/php/8.2/fpm',
  'etc/systemd/system',
  'var/spool/cron/crontabs',
];
const SECRETS = [
  'etc/letsencrypt/archive',
  'etc/letsencrypt/live',
  'etc/nginx/.env',
  'etc/ssh/ssh_host_ed25519_key',
  'etc/ssl/private',
];

async function write(root: string, relative: string, content: string, mode?: number, uid?: number): Promise<void> {
  const path = join(root, relative);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
  if (mode !== undefined) await chmod(path, mode);
  if (uid !== undefined) await lchown(path, uid, uid);
}

async function link(root: string, relative: string, target: string): Promise<void> {
  await mkdir(dirname(join(root, relative)), { recursive: true });
  await symlink(target, join(root, relative));
}

async function buildServerRoot(root: string): Promise<void> {
  await write(root, 'var/spool/cron/crontabs/alice', '0 3 * * * /home/alice/backup.sh\n', 0o600, 1001);
  await write(root, 'var/spool/cron/crontabs/bob', '*/5 * * * * php artisan schedule:run\n', 0o600, 1002);
  await chmod(join(root, 'var/spool/cron/crontabs'), 0o1730);
  await write(root, 'etc/crontab', 'SHELL=/bin/sh\n');
  await write(root, 'etc/nginx/nginx.conf', 'user www-data;\n');
  await write(root, 'etc/nginx/sites-available/app.conf', 'server { listen 80; }\n');
  await link(root, 'etc/nginx/sites-enabled/app.conf', '/etc/nginx/sites-available/app.conf');
  await write(root, 'etc/nginx/.env', `APP_KEY=${SECRET_MARK}-dotenv\n`, 0o600);
  await write(root, 'etc/php/8.2/fpm/pool.d/www.conf', '[www]\nuser = www-data\n');
  await write(root, 'etc/php/8.2/fpm/php.ini', 'memory_limit = 512M\n');
  await write(root, 'etc/php/8.2/cli/php.ini', 'memory_limit = -1\n');
  await write(root, 'etc/php/8.2/cli/conf.d/10-opcache.ini', 'zend_extension=opcache.so\n');
  await write(root, 'etc/systemd/system/app-worker.service', '[Service]\nExecStart=/usr/bin/php artisan queue:work\n');
  await link(
    root,
    'etc/systemd/system/multi-user.target.wants/app-worker.service',
    '/etc/systemd/system/app-worker.service',
  );
  await write(root, 'lib/systemd/system/nginx.service', '[Unit]\n');
  await write(root, 'etc/letsencrypt/renewal/example.com.conf', 'version = 2.1.0\n');
  await write(root, 'etc/letsencrypt/archive/example.com/fullchain1.pem', 'certificate\n');
  await write(root, 'etc/letsencrypt/archive/example.com/privkey1.pem', `${SECRET_MARK} tls key\n`, 0o600);
  await link(root, 'etc/letsencrypt/live/example.com/fullchain.pem', '../../archive/example.com/fullchain1.pem');
  await link(root, 'etc/letsencrypt/live/example.com/privkey.pem', '../../archive/example.com/privkey1.pem');
  await write(root, 'etc/ssl/private/server.key', `${SECRET_MARK} ssl key\n`, 0o640);
  await write(root, 'etc/ssh/ssh_host_ed25519_key', `${SECRET_MARK} host key\n`, 0o600);
  await write(root, 'etc/passwd', 'root:x:0:0::/root:/bin/sh\n');
  await write(
    root,
    'var/lib/dpkg/status',
    [
      'Package: dpkg\nStatus: install ok installed\nArchitecture: amd64',
      'Package: nginx\nStatus: install ok installed\nArchitecture: amd64',
      'Package: php8.2-fpm\nStatus: install ok installed\nArchitecture: amd64',
      'Package: libpcre3\nStatus: install ok installed\nArchitecture: amd64',
      'Package: tzdata\nStatus: install ok installed\nArchitecture: all',
      'Package: apache2\nStatus: deinstall ok config-files\nArchitecture: amd64',
    ].join('\n\n'),
  );
  await write(
    root,
    'var/lib/apt/extended_states',
    'Package: libpcre3\nArchitecture: amd64\nAuto-Installed: 1\n\nPackage: tzdata\nArchitecture: amd64\nAuto-Installed: 1\n',
  );
}

const isUnder = (path: string, roots: string[]) => roots.some((root) => path === root || path.startsWith(`${root}/`));

function setDirOf(targetDir: string): string {
  const dirs = execFileSync('find', [targetDir, '-name', 'manifest.json', '-printf', '%h\n'], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .filter(Boolean);
  assert.equal(dirs.length, 1, 'exactly one committed set');
  return dirs[0] as string;
}

function decompressed(path: string): Buffer {
  return execFileSync('zstd', ['-q', '-d', '-c', path]);
}

function tarNames(tarZst: string): string[] {
  return execFileSync('sh', ['-c', 'zstd -q -d -c "$1" | tar -tf -', 'sh', tarZst], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((name) => name.replace(/\/$/, ''));
}

describe('system source end to end', () => {
  let sandbox: Sandbox;
  let root: string;

  before(async () => {
    sandbox = await makeSandbox('bp-e2e-system-');
    root = join(sandbox.dir, 'server');
    await buildServerRoot(root);
  });
  after(async () => {
    await sandbox.cleanup();
  });

  it('backs up a server root into a set that plain zstd and GNU tar restore in place', async () => {
    await sandbox.writeConfig({ sources: [{ name: 'system', type: 'system', root, allowUnencryptedSecrets: true }] });
    const result = await runCli(['--config', sandbox.configPath, 'backup', '--json']);
    const report = jsonOf<Report>(result);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.equal(report.status, 'success');

    const setDir = setDirOf(sandbox.targetDir);
    assert.deepEqual((await readdir(setDir)).sort(), [
      'RUNBOOK.md',
      'config.redacted.yml',
      'manifest.json',
      'system.index.jsonl.zst',
      'system.packages.txt.zst',
      'system.secrets.index.jsonl.zst',
      'system.secrets.tar.zst',
      'system.tar.zst',
    ]);
    const manifest = JSON.parse(await readFile(join(setDir, 'manifest.json'), 'utf8')) as Manifest;
    assert.deepEqual(
      manifest.components.map(({ name, source, kind, object, index }) => ({ name, source, kind, object, index })),
      [
        { name: 'system', source: 'system', kind: 'system', object: 'system.tar.zst', index: 'system.index.jsonl.zst' },
        {
          name: 'system.secrets',
          source: 'system',
          kind: 'system',
          object: 'system.secrets.tar.zst',
          index: 'system.secrets.index.jsonl.zst',
        },
        {
          name: 'system.packages',
          source: 'system',
          kind: 'system',
          object: 'system.packages.txt.zst',
          index: undefined,
        },
      ],
    );
    assert.deepEqual(
      manifest.components.map((c) => [c.name, c.secret === true]),
      [
        ['system', false],
        ['system.secrets', true],
        ['system.packages', false],
      ],
      'only the secrets component is marked secret in the manifest',
    );
    assert.match(
      manifest.components[0]?.dumpTool ?? '',
      /^backproof system preset: cron, nginx, php-fpm, systemd units, letsencrypt$/,
    );

    // Restore with plain tools into a new root: secrets first, so the main archive sets the mtimes of
    // the directories both archives write into (etc/nginx holds the .env).
    const restored = join(sandbox.dir, 'restored');
    await mkdir(restored);
    for (const object of ['system.secrets.tar.zst', 'system.tar.zst']) {
      execFileSync('sh', [
        '-c',
        'zstd -q -d -c "$1" | tar --numeric-owner -xpf - -C "$2"',
        'sh',
        join(setDir, object),
        restored,
      ]);
    }
    const problems = await compareTrees(root, restored, {
      ignore: (path) => !isUnder(path, [...CAPTURED, ...SECRETS]),
    });
    assert.deepEqual(problems, []);
    assert.equal(existsSync(join(restored, 'etc/passwd')), false);
    assert.equal(existsSync(join(restored, 'lib/systemd')), false);
    assert.equal(existsSync(join(restored, 'etc/php/8.2/cli/conf.d')), false);
    assert.equal(
      await readFile(join(restored, 'etc/letsencrypt/live/example.com/privkey.pem'), 'utf8'),
      `${SECRET_MARK} tls key\n`,
    );

    // Secrets are only in the secrets archive: not named in the main one, not in its bytes or index.
    const mainNames = tarNames(join(setDir, 'system.tar.zst'));
    assert.deepEqual(
      mainNames.filter((name) => isUnder(name, SECRETS)),
      [],
    );
    assert.equal(decompressed(join(setDir, 'system.tar.zst')).includes(SECRET_MARK), false);
    const secretNames = tarNames(join(setDir, 'system.secrets.tar.zst'));
    assert.deepEqual(
      secretNames.filter((name) => !isUnder(name, SECRETS)),
      [],
    );
    for (const secret of SECRETS) assert.ok(secretNames.includes(secret), `${secret} is in the secrets archive`);
    // The index names match the tar names, so `restore --path` and `tar -x <name>` agree.
    const indexPaths = decompressed(join(setDir, 'system.index.jsonl.zst'))
      .toString('utf8')
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { path: string }).path);
    assert.deepEqual(indexPaths, mainNames);

    assert.equal(decompressed(join(setDir, 'system.packages.txt.zst')).toString('utf8'), 'dpkg\nnginx\nphp8.2-fpm\n');
  });

  it('warns (exit 3) when the root holds none of the parts, storing an empty archive', async () => {
    const empty = join(sandbox.dir, 'empty-root');
    await mkdir(join(empty, 'etc'), { recursive: true });
    await writeFile(join(empty, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
    const sandbox2 = await makeSandbox('bp-e2e-system-empty-');
    try {
      await sandbox2.writeConfig({
        sources: [{ name: 'system', type: 'system', root: empty, allowUnencryptedSecrets: true }],
      });
      const result = await runCli(['--config', sandbox2.configPath, 'backup', '--json']);
      const report = jsonOf<Report>(result);
      assert.equal(result.code, 3, result.stderr + result.stdout);
      assert.equal(report.status, 'warning');
      const warnings = report.warnings.join('\n');
      assert.match(warnings, new RegExp(`system: nothing to capture under ${empty}: `));
      assert.match(warnings, /system: no .*var\/lib\/dpkg\/status \(not a Debian system\?\)/);
      const setDir = setDirOf(sandbox2.targetDir);
      assert.deepEqual((await readdir(setDir)).sort(), [
        'RUNBOOK.md',
        'config.redacted.yml',
        'manifest.json',
        'system.index.jsonl.zst',
        'system.tar.zst',
      ]);
      assert.deepEqual(tarNames(join(setDir, 'system.tar.zst')), []);
    } finally {
      await sandbox2.cleanup();
    }
  });

  it('fails in preflight (exit 1) when the root does not exist, and writes no set', async () => {
    const missing = join(sandbox.dir, 'no-such-root');
    const sandbox3 = await makeSandbox('bp-e2e-system-missing-');
    try {
      await sandbox3.writeConfig({
        sources: [{ name: 'system', type: 'system', root: missing, allowUnencryptedSecrets: true }],
      });
      const result = await runCli(['--config', sandbox3.configPath, 'backup', '--json']);
      const report = jsonOf<Report>(result);
      assert.equal(result.code, 1, result.stderr + result.stdout);
      assert.equal(report.status, 'failure');
      const failure = report.failures.find((f) => f.step === 'preflight:source');
      assert.ok(failure, JSON.stringify(report.failures));
      assert.equal(
        failure.message,
        `source system: root ${missing} does not exist; set root to the directory of the system to capture (default /)`,
      );
      const written = execFileSync('find', [sandbox3.targetDir, '-type', 'f'], { encoding: 'utf8' }).trim();
      assert.equal(written, '');
    } finally {
      await sandbox3.cleanup();
    }
  });
});
