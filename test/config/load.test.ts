import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig, parseConfigText, resolveConfigPath } from '../../src/config/load.js';
import { defaultStateDir } from '../../src/config/schema.js';
import { ConfigError } from '../../src/lib/errors.js';
import { ExitCode, exitCodeForError } from '../../src/lib/exit-codes.js';

const FILE = 'job.yml';
const BASE = '/etc/backproof';
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const VALID = `job: api
sources:
  - name: app
    type: files
    paths: [/var/www/app]
targets:
  - name: disk
    type: local
    path: /var/backups
`;

/** The ConfigError parsing `text` throws. */
function configError(text: string): ConfigError {
  try {
    parseConfigText(text, FILE, BASE);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the config to be rejected');
}

function problems(text: string): readonly string[] {
  return configError(text).problems;
}

describe('parseConfigText', () => {
  it('accepts a valid config', () => {
    const config = parseConfigText(VALID, FILE, BASE);
    assert.equal(config.job, 'api');
    assert.deepEqual(config.sources[0], {
      name: 'app',
      type: 'files',
      paths: ['/var/www/app'],
      exclude: [],
      oneFileSystem: false,
    });
  });

  it('reports an unknown key on its own line with the nearest known key', () => {
    const text = VALID.replace('    path: /var/backups', '    pth: /var/backups');
    assert.deepEqual(problems(text), [
      'job.yml:7: targets[0].path: is missing; add "path": The directory backups go to (absolute, or relative to this config file)',
      'job.yml:9: targets[0].pth: unknown key; did you mean "path"?',
    ]);
  });

  it('suggests by prefix and ignoring case, and lists the keys when nothing is close', () => {
    const text = `${VALID.replace('    paths: [/var/www/app]', '    paths: [/var/www/app]\n    exclud: []\n    onefilesystem: true')}colour: red\n`;
    assert.deepEqual(problems(text), [
      'job.yml:6: sources[0].exclud: unknown key; did you mean "exclude"?',
      'job.yml:7: sources[0].onefilesystem: unknown key; did you mean "oneFileSystem"?',
      'job.yml:12: colour: unknown key; the keys allowed here are: job, stateDir, objectives, sources, targets, ' +
        'fanOut, compression, encryption, checks, anomalies, drill, notify, hooks, metrics, schedule',
    ]);
  });

  it('reports bad units with the accepted forms', () => {
    const text = `${VALID}checks:
  minFree:
    bytes: 10 gigs
    percent: lots
  stallTimeout: 600
  maxDuration: 6 hours
objectives: { rpo: 1G }
`;
    assert.deepEqual(problems(text), [
      'job.yml:12: checks.minFree.bytes: "10 gigs" is not a size; write it like 600MB, 1GiB or 1048576 (bytes)',
      'job.yml:13: checks.minFree.percent: "lots" is not a percentage; write it like 20%, 12.5% or 0%',
      'job.yml:14: checks.stallTimeout: 600 has no unit; write it like 600s, 600m or 600h',
      'job.yml:15: checks.maxDuration: "6 hours" is not a duration; write it like 850ms, 30s, 10m, 1h30m, 26h or 7d ' +
        '(units: ms, s, m, h, d, w)',
      'job.yml:16: objectives.rpo: "1G" is not a duration; write it like 850ms, 30s, 10m, 1h30m, 26h or 7d ' +
        '(units: ms, s, m, h, d, w)',
    ]);
    assert.deepEqual(problems(`${VALID}checks: { minFree: { bytes: 2G } }\n`), [
      'job.yml:10: checks.minFree.bytes: "2G" is ambiguous: write 2GB for powers of 1000 or 2GiB for powers of 1024',
    ]);
    assert.deepEqual(problems(`${VALID}checks: { minFree: { bytes: true } }\n`), [
      'job.yml:10: checks.minFree.bytes: true is not a size; write it like 600MB, 1GiB or 1048576 (bytes)',
    ]);
  });

  it('says what a missing key is for', () => {
    assert.deepEqual(problems('job: api\nsources:\n  - name: app\n    type: files\n'), [
      'job.yml:1: targets: is missing; add "targets": Where backups go: a list of targets, each with a unique name and a type',
      'job.yml:3: sources[0].paths: is missing; add "paths": Files and directories to back up, at least one',
    ]);
    assert.deepEqual(problems(VALID.replace('job: api\n', '')), [
      'job.yml:1: job: is missing; add "job": Name of this job; it becomes a directory name on every target, e.g. api-gateway',
    ]);
  });

  it('treats a key without a value like a missing one', () => {
    assert.deepEqual(problems(VALID.replace('path: /var/backups', 'path:')), [
      'job.yml:9: targets[0].path: has no value; add "path": The directory backups go to (absolute, or relative to ' +
        'this config file)',
    ]);
  });

  it('reports an empty list entry and an entry that is not a map', () => {
    assert.deepEqual(problems(VALID.replace('targets:\n', 'targets:\n  -\n  - disk\n')), [
      'job.yml:7: targets[0]: is an empty entry; fill it in (A place backups are written to) or remove its "-" line',
      'job.yml:8: targets[1]: expected a map of keys, found text "disk"; write "key: value" lines',
    ]);
  });

  it('accepts anchors and merge keys, and still points at the offending line', () => {
    const text = `job: api
sources:
  - &files { name: app, type: files, paths: [/a], oneFileSystem: true }
  - { <<: *files, name: app2, paths: [/b] }
targets:
  - name: disk
    <<: { type: local, optional: true }
    path: /x
    optionel: true
`;
    assert.deepEqual(problems(text), ['job.yml:9: targets[0].optionel: unknown key; did you mean "optional"?']);
    const config = parseConfigText(text.replace('    optionel: true\n', ''), FILE, BASE);
    assert.deepEqual(config.sources[1], {
      name: 'app2',
      type: 'files',
      paths: ['/b'],
      exclude: [],
      oneFileSystem: true,
    });
    assert.deepEqual(config.targets[0], { name: 'disk', type: 'local', path: '/x', optional: true });
  });

  it('lists the valid types when a type is wrong or missing', () => {
    const text = VALID.replace('type: files', 'type: mysql').replace('type: local', 'type: nfs');
    assert.deepEqual(problems(text), [
      'job.yml:4: sources[0].type: unknown kind "mysql"; use one of: files, sqlite, command, mariadb, postgres, system',
      'job.yml:8: targets[0].type: unknown kind "nfs"; use one of: local, sftp, s3',
    ]);
    assert.deepEqual(problems(VALID.replace('    type: files\n', '')), [
      'job.yml:3: sources[0].type: is missing; add "type" with one of: files, sqlite, command, mariadb, postgres, system',
    ]);
  });

  it('names wrong value types and what to write instead', () => {
    const text = `${VALID.replace('paths: [/var/www/app]', 'paths: /var/www/app')}fanOut: fast
compression: { algorithm: gzip, level: high }
`;
    assert.deepEqual(problems(text), [
      'job.yml:5: sources[0].paths: expected a list, found text "/var/www/app"; write a list: one "- item" line per ' +
        'entry, or [a, b]',
      'job.yml:10: fanOut: "fast" is not allowed; use one of: direct, staged',
      'job.yml:11: compression.level: expected a number, found text "high"; write a number',
    ]);
    assert.deepEqual(problems(`${VALID}compression: { level: 2.5 }\n`), [
      'job.yml:10: compression.level: expected a whole number, found the number 2.5; write a whole number, like 3',
    ]);
    assert.deepEqual(problems(VALID.replace('path: /var/backups', 'path: /x\n    optional: yes')), [
      'job.yml:10: targets[0].optional: expected true or false, found text "yes"; write true or false',
    ]);
  });

  it('reports duplicate names, naming the first use', () => {
    const text = `job: api
sources:
  - { name: app, type: files, paths: [/a] }
  - { name: app, type: sqlite, path: /db }
targets:
  - { name: disk, type: local, path: /x }
  - { name: disk, type: local, path: /y }
`;
    assert.deepEqual(problems(text), [
      'job.yml:4: sources[1].name: duplicate source name "app" (also sources[0].name); give each source its own name',
      'job.yml:7: targets[1].name: duplicate target name "disk" (also targets[0].name); give each target its own name',
    ]);
  });

  it('rejects bad job and source names with the rule', () => {
    assert.deepEqual(problems(VALID.replace('job: api', 'job: "my job!"').replace('name: app', 'name: main.app')), [
      'job.yml:1: job: is not a valid job name; use letters, digits, ".", "_" and "-", starting with a letter or digit, ' +
        'at most 63 characters',
      'job.yml:3: sources[0].name: is not a valid source name; use letters, digits, "_" and "-" (no dots), starting ' +
        'with a letter or digit, at most 63 characters',
    ]);
  });

  it('reports empty lists and compression levels per algorithm', () => {
    const text = VALID.replace('paths: [/var/www/app]', 'paths: []').concat(
      'compression:\n  algorithm: gzip\n  level: 12\n',
    );
    assert.deepEqual(problems(text), [
      'job.yml:5: sources[0].paths: is an empty list; add at least one entry',
      'job.yml:12: compression.level: 12 is not a gzip level; use 1 to 9',
    ]);
    assert.deepEqual(problems(`${VALID}compression: { level: 22 }\n`), [
      'job.yml:10: compression.level: 22 is not a compression level; use 1 to 19 for zstd, 1 to 9 for gzip',
    ]);
  });

  it('collects every problem at once, sorted by line, in one error', () => {
    const text = `job: "bad name"
sources:
  - name: app
    type: files
    paths: []
    exclud: []
targets:
  - { name: disk, type: ftp }
checks: { stallTimeout: soon }
`;
    const error = configError(text);
    assert.equal(error.problems.length, 5);
    assert.deepEqual(
      error.problems.map((problem) => problem.split(': ')[0]),
      ['job.yml:1', 'job.yml:5', 'job.yml:6', 'job.yml:8', 'job.yml:9'],
    );
    assert.match(
      error.message,
      /^job\.yml is not a valid backproof config \(5 problems\); fix and run again\n {2}- job\.yml:1: job:/,
    );
    assert.equal(exitCodeForError(error), ExitCode.usage);
  });

  it('reports YAML syntax errors with file, line and column', () => {
    const error = configError('job: api\nsources: [a, b\ntargets: []\n');
    assert.match(error.message, /^job\.yml is not valid YAML/);
    assert.ok(error.problems.length >= 1);
    assert.match(error.problems[0] ?? '', /^job\.yml:3:1: /);
    assert.deepEqual(problems('job: api\njob: other\n'), ['job.yml:2:1: Map keys must be unique']);
    assert.match(configError('job: *anchor\n').message, /job\.yml is not valid YAML: .*alias/i);
  });

  it('reports an empty file and a file that is not a map', () => {
    for (const text of ['', '# only a comment\n', '---\n']) {
      assert.deepEqual(problems(text), [
        'job.yml:1: (top level): the file is empty; start from the example in sample/backproof.example.yml',
      ]);
    }
    assert.deepEqual(problems('- job: api\n'), [
      'job.yml:1: (top level): expected a map of keys, found a list; write "key: value" lines',
    ]);
  });

  it('resolves relative paths against the base directory and leaves the rest alone', () => {
    const text = `job: api
stateDir: state
sources:
  - { name: app, type: files, paths: [www, ../shared/uploads, /abs/dir], exclude: ["cache/**"] }
  - { name: db, type: sqlite, path: ./db/app.sqlite }
  - { name: redis, type: command, command: "./dump.sh" }
targets:
  - { name: disk, type: local, path: backups }
`;
    const config = parseConfigText(text, FILE, '/etc/backproof');
    assert.equal(config.stateDir, '/etc/backproof/state');
    assert.deepEqual(config.sources, [
      {
        name: 'app',
        type: 'files',
        paths: ['/etc/backproof/www', '/etc/shared/uploads', '/abs/dir'],
        exclude: ['cache/**'],
        oneFileSystem: false,
      },
      { name: 'db', type: 'sqlite', path: '/etc/backproof/db/app.sqlite' },
      { name: 'redis', type: 'command', command: './dump.sh', extension: 'out' },
    ]);
    assert.deepEqual(config.targets, [
      { name: 'disk', type: 'local', path: '/etc/backproof/backups', optional: false },
    ]);
    assert.equal(parseConfigText(VALID, FILE, '/elsewhere').stateDir, defaultStateDir());
  });
});

describe('loadConfig and resolveConfigPath', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'backproof-config-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads a file, resolving relative paths from its directory', async () => {
    await mkdir(join(dir, 'etc'));
    const raw = VALID.replace('path: /var/backups', 'path: ../backups');
    await writeFile(join(dir, 'etc', 'job.yml'), raw);
    const loaded = await loadConfig(join(dir, 'etc', '..', 'etc', 'job.yml'));
    assert.equal(loaded.path, join(dir, 'etc', 'job.yml'));
    assert.equal(loaded.raw, raw);
    const target = loaded.config.targets[0];
    assert.equal(target?.type === 'local' ? target.path : undefined, join(dir, 'backups'));
  });

  it('names the file in every problem', async () => {
    const file = join(dir, 'bad.yml');
    await writeFile(file, VALID.replace('type: local', 'type: nfs'));
    await assert.rejects(loadConfig(file), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.deepEqual(error.problems, [`${file}:8: targets[0].type: unknown kind "nfs"; use one of: local, sftp, s3`]);
      return true;
    });
  });

  it('says when the file is missing, a directory, or unreadable', async () => {
    const missing = join(dir, 'missing.yml');
    await assert.rejects(loadConfig(missing), {
      name: 'ConfigError',
      message: `cannot read config file ${missing}: it does not exist; check --config or $BACKPROOF_CONFIG`,
    });
    await assert.rejects(loadConfig(dir), {
      name: 'ConfigError',
      message: `cannot read config file ${dir}: it is a directory; point to the YAML file itself`,
    });
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked.yml');
      await writeFile(locked, VALID);
      await chmod(locked, 0o000);
      await assert.rejects(loadConfig(locked), /permission denied/);
    }
  });

  it('finds the config from --config, then $BACKPROOF_CONFIG, then ./backproof.yml', async () => {
    const cwd = join(dir, 'cwd');
    await mkdir(cwd);
    const env = { BACKPROOF_CONFIG: '/etc/backproof/env.yml' };
    assert.equal(resolveConfigPath('flag.yml', env, cwd), join(cwd, 'flag.yml'));
    assert.equal(resolveConfigPath('/abs/flag.yml', env, cwd), '/abs/flag.yml');
    assert.equal(resolveConfigPath(undefined, env, cwd), '/etc/backproof/env.yml');
    assert.equal(resolveConfigPath(undefined, { BACKPROOF_CONFIG: 'rel.yml' }, cwd), join(cwd, 'rel.yml'));
    assert.throws(
      () => resolveConfigPath(undefined, {}, cwd),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /pass --config FILE, set BACKPROOF_CONFIG=FILE, or create backproof\.yml in /);
        assert.ok(error.message.includes(cwd));
        return true;
      },
    );
    assert.throws(() => resolveConfigPath('', { BACKPROOF_CONFIG: '' }, cwd), ConfigError);
    await writeFile(join(cwd, 'backproof.yml'), VALID);
    assert.equal(resolveConfigPath(undefined, {}, cwd), join(cwd, 'backproof.yml'));
    assert.equal(resolveConfigPath(undefined, { BACKPROOF_CONFIG: '' }, cwd), join(cwd, 'backproof.yml'));
    assert.equal(resolveConfigPath(undefined, env, cwd), '/etc/backproof/env.yml');
    assert.equal(resolveConfigPath('flag.yml', env, cwd), join(cwd, 'flag.yml'));
  });

  it('loads the complete example in sample/', async () => {
    const loaded = await loadConfig(join(repoRoot, 'sample', 'backproof.example.yml'));
    const { config } = loaded;
    assert.equal(config.job, 'api-gateway');
    assert.deepEqual(
      config.sources.map((source) => source.type),
      ['files', 'sqlite', 'command', 'mariadb', 'postgres', 'system'],
    );
    assert.deepEqual(
      config.targets.map((target) => target.type),
      ['local', 'sftp', 's3'],
    );
    assert.deepEqual(config.objectives, { rpo: 26 * 3_600_000, rto: 4 * 3_600_000 });
    assert.equal(config.fanOut, 'staged');
    assert.deepEqual(config.checks, {
      minFree: { bytes: 1_000_000_000, percent: 1000 },
      stallTimeout: 600_000,
      maxDuration: 21_600_000,
    });
    // Every key the schema knows appears in the example, so it documents everything.
    for (const key of ['exclude', 'oneFileSystem', 'extension', 'timeout', 'optional', 'stateDir', 'level']) {
      assert.ok(loaded.raw.includes(`${key}:`), `${key} is missing from the example`);
    }
  });
});
