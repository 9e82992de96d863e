// Generated systemd units pass the real `systemd-analyze verify`; generated cron lines parse, and
// their commands run through /bin/sh exactly as cron would run them, awkward paths included.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Cron } from 'croner';
import { cronFileName, renderCron, shellQuote } from '../../src/schedule/cron.js';
import { parseSchedule } from '../../src/schedule/expression.js';
import type { ScheduledJob } from '../../src/schedule/jobs.js';
import { scheduledJobs } from '../../src/schedule/jobs.js';
import { quoteArgument, renderSystemdUnits } from '../../src/schedule/systemd.js';

const AWKWARD = "/etc/back proof/it's 100% $HOME.yml";

function jobs(): ScheduledJob[] {
  return scheduledJobs({ backup: 'daily', verify: '0 7 * * 0', drill: '*/30 2-3 * * MON-FRI', randomizedDelay: 0 });
}

function analyzeVerify(files: string[]): { status: number | null; output: string } {
  const result = spawnSync('systemd-analyze', ['verify', ...files], { encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('systemd units', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-units-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function write(units: { name: string; text: string }[], sub: string): Promise<string[]> {
    const into = join(dir, sub);
    await mkdir(into, { recursive: true });
    const paths: string[] = [];
    for (const unit of units) {
      const path = join(into, unit.name);
      await writeFile(path, unit.text);
      paths.push(path);
    }
    return paths;
  }

  it('a service and a timer per command pass systemd-analyze verify, with an awkward config path', async () => {
    const units = renderSystemdUnits({
      job: 'shop.eu',
      configPath: AWKWARD,
      invocation: [process.execPath, '/opt/back proof/dist/cli.js'],
      jobs: jobs(),
      randomizedDelayMs: 1_800_000,
    });
    assert.deepEqual(
      units.map((u) => u.name),
      [
        'backproof-shop.eu-backup.service',
        'backproof-shop.eu-backup.timer',
        'backproof-shop.eu-verify.service',
        'backproof-shop.eu-verify.timer',
        'backproof-shop.eu-drill.service',
        'backproof-shop.eu-drill.timer',
      ],
    );
    const result = analyzeVerify(await write(units, 'good'));
    assert.equal(result.status, 0, result.output);
    assert.equal(result.output.trim(), '');

    const backup = units[0]?.text ?? '';
    assert.match(
      backup,
      new RegExp(
        `^ExecStart=${process.execPath} "/opt/back proof/dist/cli.js" --config "/etc/back proof/it's 100%% \\$\\$HOME.yml" backup$`,
        'm',
      ),
    );
    assert.match(backup, /^SuccessExitStatus=3$/m);
    assert.match(backup, /^RestartForceExitStatus=75$/m);
    const verifyService = units[2]?.text ?? '';
    assert.match(verifyService, /--config .* verify --set all$/m);
    assert.doesNotMatch(verifyService, /RestartForceExitStatus/); // verify takes no lock
    const timer = units[1]?.text ?? '';
    assert.match(timer, /^OnCalendar=\*-\*-\* 00:00:00$/m);
    assert.match(timer, /^Persistent=true$/m);
    assert.match(timer, /^RandomizedDelaySec=30min$/m);
    assert.match(timer, /^Unit=backproof-shop\.eu-backup\.service$/m);
    assert.match(timer, /^WantedBy=timers\.target$/m);
    assert.match(units[5]?.text ?? '', /^OnCalendar=Mon\.\.Fri \*-\*-\* 02,03:00,30:00$/m);
  });

  it('systemd-analyze verify does catch a broken unit (so the test above can fail)', async () => {
    const units = renderSystemdUnits({
      job: 'broken',
      configPath: '/etc/backproof/broken.yml',
      invocation: ['/nonexistent/node', '/opt/cli.js'],
      jobs: jobs().slice(0, 1),
      randomizedDelayMs: 0,
    });
    const broken = units.map((u) => ({ ...u, text: u.text.replace(/^OnCalendar=.*$/m, 'OnCalendar=someday') }));
    const result = analyzeVerify(await write(broken, 'broken'));
    assert.notEqual(result.status, 0);
    assert.match(result.output, /\/nonexistent\/node|OnCalendar/);
  });

  it('leaves RandomizedDelaySec out when the delay is 0, and adds User= when asked', async () => {
    const [service, timer] = renderSystemdUnits({
      job: 'j',
      configPath: '/etc/j.yml',
      invocation: [process.execPath, '/opt/cli.js'],
      jobs: jobs().slice(0, 1),
      randomizedDelayMs: 0,
      user: 'backup',
    });
    assert.doesNotMatch(timer?.text ?? '', /RandomizedDelaySec/);
    assert.match(service?.text ?? '', /^User=backup$/m);
  });

  it('quotes ExecStart= arguments the systemd way', () => {
    assert.equal(quoteArgument('/usr/bin/node'), '/usr/bin/node');
    assert.equal(quoteArgument('a b'), '"a b"');
    assert.equal(quoteArgument('say "hi"\\'), '"say \\"hi\\"\\\\"');
    assert.equal(quoteArgument('100%'), '100%%');
    assert.equal(quoteArgument('$HOME'), '"$$HOME"');
    assert.equal(quoteArgument(''), '""');
  });
});

describe('cron lines', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-cron-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('each line has 5 fields croner parses, a user, and a command /bin/sh runs with the exact arguments', async () => {
    // A fake `logger` on PATH captures what the command writes, as syslog would.
    const bin = join(dir, 'bin');
    await mkdir(bin);
    const captured = join(dir, 'captured');
    await writeFile(join(bin, 'logger'), `#!/bin/sh\necho "logger $*" >> '${captured}'\ncat >> '${captured}'\n`);
    await chmod(join(bin, 'logger'), 0o755);
    const text = renderCron({
      job: 'shop.eu',
      configPath: AWKWARD,
      // Stands in for node + cli.js: prints each argument it gets.
      invocation: ['/bin/sh', '-c', 'printf "<%s>\\n" "$@"', 'backproof'],
      jobs: jobs(),
      randomizedDelayMs: 1000,
      user: 'root',
    });
    const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    assert.deepEqual(lines.slice(0, 2), [
      'SHELL=/bin/sh',
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    ]);
    const entries = lines.slice(2);
    assert.equal(entries.length, 3);
    const expectedArgs = [['backup'], ['verify', '--set', 'all'], ['drill']];
    for (const [i, entry] of entries.entries()) {
      const match = /^(\S+ \S+ \S+ \S+ \S+) (\S+) (.*)$/.exec(entry);
      assert.ok(match, entry);
      const [, fields = '', user, command = ''] = match;
      assert.equal(user, 'root');
      assert.ok(new Cron(fields, { paused: true }).nextRun() instanceof Date, `croner parses ${fields}`);
      assert.doesNotMatch(command.replace(/\\%/g, ''), /%/, 'every % is escaped for cron');
      await rm(captured, { force: true });
      // cron turns \% into % and hands the rest to /bin/sh.
      const run = spawnSync('/bin/sh', ['-c', command.replace(/\\%/g, '%')], {
        encoding: 'utf8',
        env: { PATH: `${bin}:/usr/bin:/bin`, HOME: '/root' },
      });
      assert.equal(run.status, 0, run.stderr);
      assert.equal(
        await readFile(captured, 'utf8'),
        ['logger -t backproof-shop.eu', ...['--config', AWKWARD, ...(expectedArgs[i] ?? [])].map((a) => `<${a}>`)]
          .join('\n')
          .concat('\n'),
      );
    }
    assert.deepEqual(
      entries.map((e) => e.split(' ').slice(0, 5).join(' ')),
      ['0 0 * * *', '0 7 * * 0', '0,30 2,3 * * 1-5'],
    );
  });

  it('refuses a schedule with seconds, which cron cannot express', () => {
    assert.throws(
      () =>
        renderCron({
          job: 'j',
          configPath: '/etc/j.yml',
          invocation: ['/usr/bin/node', '/opt/cli.js'],
          jobs: [{ command: 'backup', args: ['backup'], schedule: parseSchedule('*/10 * * * * *'), locks: true }],
          randomizedDelayMs: 0,
          user: 'root',
        }),
      /cron cannot express/,
    );
  });

  it('names the cron.d file without dots, which Debian cron would skip', () => {
    assert.equal(cronFileName('shop.eu.1'), 'backproof-shop_eu_1');
    assert.equal(shellQuote("it's"), `'it'\\''s'`);
  });
});
