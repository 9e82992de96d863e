// The jobs a dashboard serves: config files or directories of them; every config must load and
// every job name be unique, or serve does not start (exit 2 through ConfigError).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadDashboardJobs } from '../../src/dashboard/jobs.js';
import { ConfigError } from '../../src/lib/errors.js';
import { ExitCode, exitCodeForError } from '../../src/lib/exit-codes.js';

const config = (job: string, dir: string) =>
  [
    `job: ${job}`,
    `stateDir: ${join(dir, 'state')}`,
    `targets: [{ name: disk, type: local, path: ${join(dir, 'target')} }]`,
    `sources: [{ name: app, type: files, paths: [${join(dir, 'app')}] }]`,
    '',
  ].join('\n');

describe('loadDashboardJobs', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-dash-jobs-'));
    await mkdir(join(dir, 'conf.d'));
    await writeFile(join(dir, 'conf.d', 'b.yml'), config('shop', dir));
    await writeFile(join(dir, 'conf.d', 'a.yaml'), config('blog', dir));
    await writeFile(join(dir, 'conf.d', 'notes.txt'), 'not a config');
    await writeFile(join(dir, 'conf.d', '.hidden.yml'), 'job: [broken');
    await writeFile(join(dir, 'other.yml'), config('wiki', dir));
    await writeFile(join(dir, 'again.yml'), config('shop', dir));
    await writeFile(join(dir, 'broken.yml'), 'job: shop\nsources: 3\n');
    await mkdir(join(dir, 'empty'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('takes a directory as its *.yml and *.yaml configs, and files as themselves, sorted by job name', async () => {
    const jobs = await loadDashboardJobs(['conf.d', 'other.yml'], dir);
    assert.deepEqual([...jobs.keys()], ['blog', 'shop', 'wiki']);
    assert.equal(jobs.get('shop')?.path, join(dir, 'conf.d', 'b.yml'));
    assert.equal(jobs.get('blog')?.config.stateDir, join(dir, 'state'));
  });

  it('counts the same file named twice (itself and through its directory) once', async () => {
    const jobs = await loadDashboardJobs([join(dir, 'conf.d'), join(dir, 'conf.d', 'b.yml')], '/');
    assert.deepEqual([...jobs.keys()], ['blog', 'shop']);
  });

  it('refuses two configs with the same job name, naming both files (exit 2)', async () => {
    await assert.rejects(loadDashboardJobs(['conf.d', 'again.yml'], dir), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(exitCodeForError(error), ExitCode.usage);
      assert.match(error.message, /job "shop" is named by two configs/);
      assert.ok(error.message.includes(join(dir, 'conf.d', 'b.yml')) && error.message.includes(join(dir, 'again.yml')));
      return true;
    });
  });

  it('refuses a config that does not load, naming it and its problems (exit 2)', async () => {
    await assert.rejects(loadDashboardJobs(['other.yml', 'broken.yml'], dir), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /^serve: .*broken\.yml is not a valid backproof config/);
      assert.ok(
        error.problems.some((p) => p.includes('sources')),
        error.problems.join('\n'),
      );
      return true;
    });
    await assert.rejects(
      loadDashboardJobs(['missing.yml'], dir),
      /serve: cannot read config file .*missing\.yml: it does not exist/,
    );
  });

  it('refuses a directory without any config', async () => {
    await assert.rejects(loadDashboardJobs(['empty'], dir), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /empty holds no config \(\*\.yml or \*\.yaml\)/);
      return true;
    });
  });
});
