// Runs the real CLI (the built dist/cli.js) as a child process, the way an operator or systemd would.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = join(PROJECT_ROOT, 'dist', 'cli.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run as this unprivileged user (runuser -u USER). */
  user?: string;
}

function command(args: readonly string[], options: CliOptions): { file: string; argv: string[] } {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
  const argv = [CLI, ...args];
  if (options.user) return { file: 'runuser', argv: ['-u', options.user, '--', process.execPath, ...argv] };
  return { file: process.execPath, argv };
}

export function startCli(
  args: readonly string[],
  options: CliOptions = {},
): { child: ChildProcess; done: Promise<CliResult> } {
  const { file, argv } = command(args, options);
  const child = spawn(file, argv, {
    cwd: options.cwd ?? PROJECT_ROOT,
    env: { ...process.env, BACKPROOF_CONFIG: undefined, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return startCli(args, options).done;
}

/** Parses the one JSON document a `--json` run must print, failing loudly with the output if it is not one. */
export function jsonOf<T = Record<string, unknown>>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(
      `stdout is not one JSON document (exit ${result.code}):\n${result.stdout}\nstderr:\n${result.stderr}`,
    );
  }
}

export interface Sandbox {
  dir: string;
  stateDir: string;
  targetDir: string;
  configPath: string;
  /** Writes backproof.yml from a config object (defaults: job "demo", a local target, no free-space floor). */
  writeConfig(config: Record<string, unknown>): Promise<string>;
  cleanup(): Promise<void>;
}

/** A world-traversable temp dir (so `runuser -u nobody` can use it) with a state dir and a target dir. */
export async function makeSandbox(prefix = 'bp-e2e-'): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await chmod(dir, 0o755);
  const stateDir = join(dir, 'state');
  const targetDir = join(dir, 'target');
  await mkdir(targetDir);
  const configPath = join(dir, 'backproof.yml');
  return {
    dir,
    stateDir,
    targetDir,
    configPath,
    async writeConfig(config) {
      const full = {
        job: 'demo',
        stateDir,
        targets: [{ name: 'disk', type: 'local', path: targetDir }],
        checks: { minFree: { bytes: 0, percent: '0%' } },
        ...config,
      };
      await writeFile(configPath, stringify(full));
      return configPath;
    },
    async cleanup() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}
