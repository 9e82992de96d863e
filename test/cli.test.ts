// The CLI's command table: help without loading any command, each command loaded only when it runs,
// and the table's summaries equal to the commands' own. Runs src/cli.ts through tsx, as a process.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Command } from '../src/commands/types.js';
import { makeTempDir } from './helpers/tree.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI_SOURCE = join(ROOT, 'src', 'cli.ts');

/** Every command module and its export, as the table must load them. */
const COMMAND_MODULES: Record<string, () => Promise<Command>> = {
  backup: async () => (await import('../src/commands/backup.js')).backupCommand,
  list: async () => (await import('../src/commands/list.js')).listCommand,
  status: async () => (await import('../src/commands/status.js')).statusCommand,
  restore: async () => (await import('../src/commands/restore.js')).restoreCommand,
  drill: async () => (await import('../src/commands/drill.js')).drillCommand,
  verify: async () => (await import('../src/commands/verify.js')).verifyCommand,
  prune: async () => (await import('../src/commands/prune.js')).pruneCommand,
  ack: async () => (await import('../src/commands/ack.js')).ackCommand,
  runbook: async () => (await import('../src/commands/runbook.js')).runbookCommand,
  config: async () => (await import('../src/commands/config.js')).configCommand,
  schedule: async () => (await import('../src/commands/schedule.js')).scheduleCommand,
  daemon: async () => (await import('../src/commands/daemon.js')).daemonCommand,
  serve: async () => (await import('../src/commands/serve.js')).serveCommand,
};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Commands whose module the process loaded. */
  commandModules: string[];
}

describe('backproof CLI: the command table', () => {
  let work: string;
  let recorder: string;
  let runs = 0;

  before(async () => {
    work = await makeTempDir();
    // A module hook that writes every resolved URL to $BACKPROOF_TEST_MODULE_LOG.
    const hooks = join(work, 'hooks.mjs');
    await writeFile(
      hooks,
      `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(process.env.BACKPROOF_TEST_MODULE_LOG, result.url + '\\n');
  return result;
}
`,
    );
    recorder = join(work, 'record-modules.mjs');
    await writeFile(
      recorder,
      `import { register } from 'node:module';\nregister(${JSON.stringify(new URL(`file://${hooks}`).href)});\n`,
    );
  });

  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  async function cli(args: string[]): Promise<Run> {
    const log = join(work, `modules-${runs++}.log`);
    await writeFile(log, '');
    const child = spawn(process.execPath, ['--import', 'tsx', '--import', recorder, CLI_SOURCE, ...args], {
      // From the project, where tsx resolves; --config names files absolutely.
      cwd: ROOT,
      env: { ...process.env, BACKPROOF_CONFIG: undefined, BACKPROOF_TEST_MODULE_LOG: log },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    });
    const loaded = (await readFile(log, 'utf8')).split('\n');
    // Command modules only (helpers such as output.ts are shared).
    const commandModules = [
      ...new Set(loaded.map((url) => /\/src\/commands\/([a-z]+)\.ts$/.exec(url)?.[1] ?? '')),
    ].filter((name) => name in COMMAND_MODULES);
    return { code, stdout, stderr, commandModules };
  }

  it('--help lists every command with its own summary, and loads none of them', async () => {
    const run = await cli(['--help']);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.commandModules, [], 'help text comes from the table, not from the commands');
    const listed = run.stdout
      .split('\n')
      .filter((line) => /^ {2}[a-z]+ {2,}/.test(line))
      .map((line) => line.trim().split(/ {2,}/));
    assert.deepEqual(
      listed.map(([name]) => name),
      Object.keys(COMMAND_MODULES),
    );
    for (const [name, summary] of listed) {
      const command = await (COMMAND_MODULES[name as string] as () => Promise<Command>)();
      assert.equal(command.name, name);
      assert.equal(summary, command.summary, `the table's summary of ${name} must be the command's own`);
    }
  });

  it('--version loads no command', async () => {
    const run = await cli(['--version']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^backproof \d+\.\d+\.\d+/);
    assert.deepEqual(run.commandModules, []);
  });

  it('each command loads only its own module, and it is the right one (COMMAND --help)', async () => {
    const names = Object.keys(COMMAND_MODULES);
    // Two at a time: a process each.
    for (let i = 0; i < names.length; i += 2) {
      await Promise.all(
        names.slice(i, i + 2).map(async (name) => {
          const run = await cli([name, '--help']);
          assert.equal(run.code, 0, `${name}: ${run.stderr}`);
          const command = await (COMMAND_MODULES[name] as () => Promise<Command>)();
          assert.equal(run.stdout, `${command.usage}\n  ${command.summary}\n`);
          assert.deepEqual(run.commandModules, [name], `${name} loaded ${run.commandModules.join(', ')}`);
        }),
      );
    }
  });

  it('an unknown or missing command is a usage error (exit 2) with the command list, loading nothing', async () => {
    const unknown = await cli(['bakup']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "bakup"/);
    assert.match(unknown.stderr, /^ {2}backup {2,}run the job now/m);
    assert.deepEqual(unknown.commandModules, []);
    const none = await cli([]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no command given/);
    const json = await cli(['--json', 'bakup']);
    assert.equal(json.code, 2);
    assert.equal(JSON.parse(json.stdout).exitCode, 2);
  });

  it('a command still runs after being loaded: config check reports a missing file (exit 2)', async () => {
    const run = await cli(['--config', join(work, 'missing.yml'), 'config', 'check']);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /missing\.yml/);
    assert.deepEqual(run.commandModules, ['config']);
  });
});
