// The `system` source: what rebuilding this server needs, under `root` (default `/`). Up to three
// components, each only when it has something in it:
//   <name>           pax tar + index: crontabs, web server, PHP-FPM, units, certificates' config…
//   <name>.secrets   pax tar + index: TLS private keys, SSH host keys, `.env` files (facts.secret)
//   <name>.packages  the manually installed packages, one per line, for `xargs apt-get install -y`
// Entry names are relative to root, so `tar -x -C /` puts everything back in place.
import { lstatSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import picomatch from 'picomatch';
import { messageOf, SourceError } from '../lib/errors.js';
import { compareBytes, createExcludeMatcher, normalizeRoots, walkTree } from '../pipeline/walk.js';
import { createFilesSource, warmUpArchiveWorker } from './files.js';
import { type PackageListResult, readManualPackages } from './packages.js';
import type { ComponentFacts, ComponentStream, PreflightFinding, Source, SourceContext } from './types.js';

/** A named group of paths relative to root; `*` matches within one path segment. */
interface Part {
  label: string;
  patterns: string[];
}

/** What goes into `<name>`, minus the secrets below. */
const CAPTURED_PARTS: readonly Part[] = [
  {
    label: 'cron',
    patterns: [
      'var/spool/cron/crontabs',
      'etc/crontab',
      'etc/cron.d',
      'etc/cron.hourly',
      'etc/cron.daily',
      'etc/cron.weekly',
      'etc/cron.monthly',
    ],
  },
  { label: 'nginx', patterns: ['etc/nginx'] },
  { label: 'apache2', patterns: ['etc/apache2'] },
  { label: 'php-fpm', patterns: ['etc/php/*/fpm', 'etc/php/*/cli/php.ini'] },
  // The machine's own units; the distribution's live under lib/systemd and come back with the packages.
  { label: 'systemd units', patterns: ['etc/systemd/system'] },
  { label: 'supervisor', patterns: ['etc/supervisor'] },
  { label: 'letsencrypt', patterns: ['etc/letsencrypt'] },
  { label: 'hosts', patterns: ['etc/hosts', 'etc/hostname'] },
  { label: 'fstab', patterns: ['etc/fstab'] },
  { label: 'environment', patterns: ['etc/environment'] },
  { label: 'logrotate', patterns: ['etc/logrotate.d'] },
  { label: 'sudoers', patterns: ['etc/sudoers.d'] },
  { label: 'sshd', patterns: ['etc/ssh/sshd_config*'] },
  { label: 'redis', patterns: ['etc/redis'] },
  { label: 'mysql', patterns: ['etc/mysql'] },
  { label: 'postgresql', patterns: ['etc/postgresql'] },
];

/** What goes into `<name>.secrets` only. */
const SECRET_PARTS: readonly Part[] = [
  {
    label: 'TLS keys',
    patterns: [
      'etc/ssl/private',
      'etc/letsencrypt/archive',
      'etc/letsencrypt/keys',
      // Symlinks into archive: kept beside what they point to.
      'etc/letsencrypt/live',
      // The ACME account's private key.
      'etc/letsencrypt/accounts',
    ],
  },
  // A rebuilt server that keeps its host keys does not make every client cry "man in the middle".
  { label: 'SSH host keys', patterns: ['etc/ssh/ssh_host_*'] },
  // The debian-sys-maint password.
  { label: 'MySQL maintenance credentials', patterns: ['etc/mysql/debian.cnf'] },
];

/** Names of secret files wherever they are in the captured trees: dotenv files and private keys. */
const SECRET_NAMES = ['.env', '.env.*', '*.key'];

/** What one run will capture, from a look at root just before it starts. */
interface Plan {
  /** Absolute paths for `<name>`, and the labels of the parts they belong to. */
  captured: string[];
  capturedLabels: string[];
  /** Absolute paths for `<name>.secrets`. */
  secrets: string[];
  secretLabels: string[];
  /** Files matching SECRET_NAMES found in the captured trees. */
  secretFiles: number;
}

export interface SystemSourceOptions {
  /** Source name; the components are `<name>`, `<name>.secrets` and `<name>.packages`. */
  name: string;
  /** The root of the system to capture (the config's default: `/`). */
  root: string;
  /** Globs relative to root (picomatch, dotfiles included); `/…` globs against the absolute path on disk. */
  exclude: string[];
}

/** Takes the config's `SystemSourceConfig` (its extra `type` key is ignored). */
export function createSystemSource(config: SystemSourceOptions): Source {
  const root = resolve(config.root);
  return {
    name: config.name,
    type: 'system',
    check: async (ctx) => checkRoot(config, root, ctx),
    warmUp: warmUpArchiveWorker,
    estimateRawBytes: async (ctx) => {
      if (!isDirectory(root)) return 0;
      const plan = planCapture(config, root, ctx.signal);
      const trees = archiveOf(config.name, [...plan.captured, ...plan.secrets], config.exclude, root);
      const packages = await readManualPackages(root);
      const listBytes = 'list' in packages ? packageListText(packages.list.manual).length : 0;
      return (await trees.estimateRawBytes(ctx)) + listBytes;
    },
    components: (ctx) => systemComponents(config, root, ctx),
  };
}

async function checkRoot(config: SystemSourceOptions, root: string, ctx: SourceContext): Promise<PreflightFinding[]> {
  const prefix = `source ${config.name}:`;
  let isDir: boolean;
  try {
    isDir = statSync(root).isDirectory();
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    const reason = missing ? 'does not exist' : `cannot be looked at (${messageOf(error)})`;
    return [
      {
        fatal: true,
        message: `${prefix} root ${root} ${reason}; set root to the directory of the system to capture (default /)`,
      },
    ];
  }
  if (!isDir) {
    return [
      {
        fatal: true,
        message: `${prefix} root ${root} is not a directory; set root to the directory of the system to capture (default /)`,
      },
    ];
  }
  const plan = planCapture(config, root, ctx.signal);
  const paths = [...plan.captured, ...plan.secrets];
  const findings = await archiveOf(config.name, paths, config.exclude, root).check(ctx);
  if (paths.length === 0 && manualOf(await readManualPackages(root)).length === 0) {
    findings.push({ fatal: false, message: `${prefix} ${nothingFound(root)}` });
  }
  return findings;
}

async function* systemComponents(
  config: SystemSourceOptions,
  root: string,
  ctx: SourceContext,
): AsyncGenerator<ComponentStream> {
  ctx.signal.throwIfAborted();
  if (!isDirectory(root)) throw new SourceError(config.name, `root ${root} is not a directory (or does not exist)`);
  let plan: Plan;
  let packages: PackageListResult;
  try {
    plan = planCapture(config, root, ctx.signal);
    packages = await readManualPackages(root);
  } catch (error) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw new SourceError(config.name, `cannot look at ${root}: ${messageOf(error)}`, { cause: error });
  }
  const manual = manualOf(packages);
  // Warnings about the source as a whole ride on the first component it produces.
  let pending: string[] = [];
  if ('skipped' in packages) pending.push(packages.skipped);
  else if (manual.length === 0) {
    pending.push(
      `${packages.list.installed} packages are installed but none is marked as manually installed: the package list was not captured`,
    );
  }
  const nothing = plan.captured.length === 0 && plan.secrets.length === 0 && manual.length === 0;
  if (nothing) pending.push(nothingFound(root));
  const takePending = (): string[] => {
    const taken = pending;
    pending = [];
    return taken;
  };

  // A source that finds nothing still says so through a (valid, empty) archive: a run that silently
  // stores nothing of a server it was told to capture would look fine until the day it is needed.
  if (plan.captured.length > 0 || nothing) {
    const exclude = [...config.exclude, ...secretPartGlobs(), ...secretNameGlobs()];
    yield await treeComponent(config.name, plan.captured, exclude, root, ctx, {
      warnings: takePending(),
      dumpTool: `backproof system preset: ${plan.capturedLabels.join(', ') || 'nothing found'}`,
    });
  }
  if (plan.secrets.length > 0) {
    const files = plan.secretFiles > 0 ? [`${plan.secretFiles} secret file(s) (${SECRET_NAMES.join(', ')})`] : [];
    yield await treeComponent(`${config.name}.secrets`, plan.secrets, config.exclude, root, ctx, {
      warnings: takePending(),
      dumpTool: `backproof system preset, secrets: ${[...plan.secretLabels, ...files].join(', ')}`,
      secret: true,
    });
  }
  if (manual.length > 0 && 'list' in packages) {
    const { installed, autoStates } = packages.list;
    const from = autoStates
      ? `dpkg status and apt extended_states: ${manual.length} of ${installed} installed packages are manual`
      : `dpkg status (no apt extended_states, so all ${installed} installed packages count as manual)`;
    yield packagesComponent(config.name, manual, ctx.signal, { warnings: takePending(), dumpTool: from });
  }
}

/** A files-source archive of `paths` with names relative to root, as a `system` component. */
async function treeComponent(
  name: string,
  paths: string[],
  exclude: string[],
  root: string,
  ctx: SourceContext,
  extra: { warnings: string[]; dumpTool: string; secret?: boolean },
): Promise<ComponentStream> {
  for await (const component of archiveOf(name, paths, exclude, root).components(ctx)) {
    const facts = component.facts.then(
      (facts): ComponentFacts => ({
        ...facts,
        warnings: [...extra.warnings, ...facts.warnings],
        dumpTool: extra.dumpTool,
        ...(extra.secret ? { secret: true } : {}),
      }),
    );
    facts.catch(() => {}); // the core awaits facts only after the streams
    return { ...component, kind: 'system', facts, ...(extra.secret ? { secret: true } : {}) };
  }
  throw new SourceError(name, 'the archive produced no component');
}

/** The files source's archive, with entry names relative to root. */
function archiveOf(name: string, paths: string[], exclude: string[], root: string): Source {
  return createFilesSource({ name, paths, exclude, oneFileSystem: false, base: root });
}

function packagesComponent(
  name: string,
  manual: string[],
  signal: AbortSignal,
  extra: { warnings: string[]; dumpTool: string },
): ComponentStream {
  signal.throwIfAborted();
  const data = Readable.from([Buffer.from(packageListText(manual))], { objectMode: false });
  const component = `${name}.packages`;
  const facts = finished(data).then(
    (): ComponentFacts => ({ warnings: extra.warnings, dumpTool: extra.dumpTool }),
    (error: unknown) => {
      throw new SourceError(name, `the package list ${component} was not read to the end: ${messageOf(error)}`, {
        cause: error,
      });
    },
  );
  facts.catch(() => {});
  return { name: component, kind: 'system', extension: 'txt', data, facts };
}

/** One name per line, what `xargs apt-get install -y < file` reads. */
function packageListText(manual: string[]): string {
  return manual.map((name) => `${name}\n`).join('');
}

/** Finds the parts present under root, leaving out what `exclude` names. */
function planCapture(config: SystemSourceOptions, root: string, signal: AbortSignal): Plan {
  const isExcluded = createExcludeMatcher(config.exclude);
  const present = (parts: readonly Part[]) => {
    const paths: string[] = [];
    const labels: string[] = [];
    for (const part of parts) {
      const found = part.patterns
        .flatMap((pattern) => expandPattern(root, pattern))
        .filter((relative) => !isExcluded(relative, join(root, relative)));
      if (found.length === 0) continue;
      labels.push(part.label);
      paths.push(...found.map((relative) => join(root, relative)));
    }
    return { paths: normalizeRoots(paths), labels };
  };
  const captured = present(CAPTURED_PARTS);
  const secretParts = present(SECRET_PARTS);
  const secretFiles = findSecretFiles(captured.paths, [...config.exclude, ...secretPartGlobs()], root, signal);
  return {
    captured: captured.paths,
    capturedLabels: captured.labels,
    secrets: normalizeRoots([...secretParts.paths, ...secretFiles]),
    secretLabels: secretParts.labels,
    secretFiles: secretFiles.length,
  };
}

/** Dotenv files and keys in the captured trees (not descending into the secret parts, stored whole). */
function findSecretFiles(paths: string[], exclude: string[], root: string, signal: AbortSignal): string[] {
  const isSecretName = picomatch(SECRET_NAMES, { dot: true });
  const found: string[] = [];
  for (const event of walkTree({ paths, exclude, oneFileSystem: false, base: root, signal })) {
    if (event.entry && isSecretName(basename(event.entry.path))) found.push(event.entry.path);
  }
  return found;
}

/** Globs (relative to root) of the secret parts, stored whole in the secrets component. */
function secretPartGlobs(): string[] {
  return SECRET_PARTS.flatMap((part) => part.patterns).flatMap((pattern) => [pattern, `${pattern}/**`]);
}

/** Globs of secret files wherever they are, to keep them out of the main component. */
function secretNameGlobs(): string[] {
  return SECRET_NAMES.flatMap((name) => [`**/${name}`, `**/${name}/**`]);
}

/** Existing paths (relative to root, sorted) matching a pattern whose segments may hold `*`. */
function expandPattern(root: string, pattern: string): string[] {
  let matches = [''];
  for (const segment of pattern.split('/')) {
    const next: string[] = [];
    for (const parent of matches) {
      if (!segment.includes('*')) {
        next.push(parent === '' ? segment : `${parent}/${segment}`);
        continue;
      }
      const isMatch = picomatch(segment, { dot: true });
      for (const name of listNames(join(root, parent))) {
        if (isMatch(name)) next.push(parent === '' ? name : `${parent}/${name}`);
      }
    }
    matches = next;
  }
  return matches.filter((relative) => exists(join(root, relative))).sort(compareBytes);
}

function listNames(directory: string): string[] {
  try {
    return readdirSync(directory);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw error;
  }
}

/** lstat finds it (a dangling symlink counts); errors other than "not there" leave it to the walk to report. */
function exists(path: string): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ENOTDIR';
  }
}

function manualOf(packages: PackageListResult): string[] {
  return 'list' in packages ? packages.list.manual : [];
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function nothingFound(root: string): string {
  return (
    `nothing to capture under ${root}: none of the system preset's paths (crontabs, etc/nginx, etc/apache2, ` +
    'etc/php, etc/systemd/system, etc/letsencrypt, etc/ssl/private, …) exist and there is no package list; ' +
    'check that root is the root directory of the system to capture'
  );
}
