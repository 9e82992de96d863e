// `npm run bench -- [DIR] [--rounds N] [--encrypt]`: backs up DIR (or a generated tree) to a local
// target and measures wall time, throughput and peak RSS beside `tar -cf - DIR | zstd -T0 -3 | tee OUT |
// sha256sum` writing to the same disk in the same run. Reports ratios, not absolute claims.
// The first backup of a round series starts from nothing (its preflight walks the tree for the
// estimate); the later ones find the previous set and history, as every nightly run does.
// `--encrypt` adds the same backup with `encryption: { recipients: [a fresh age key] }`, as a ratio
// against the unencrypted one (a leg of its own: another full backup per round on a small machine).
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatBytes, formatDuration, parseSize } from '../src/lib/units.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'dist', 'cli.js');

interface Measurement {
  wallMs: number;
  /** User + system CPU of the whole process tree: steadier than wall time on a shared machine. */
  cpuMs: number;
  peakRssBytes: number;
}

/**
 * Runs a command under bash, sampling VmHWM (peak RSS) of its main process until it exits; bash's
 * `times` reports the CPU of everything it waited for.
 */
async function measure(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Measurement> {
  const started = process.hrtime.bigint();
  const wrapper = spawn(
    'bash',
    ['-c', '"$@" & pid=$!; echo "$pid" >&3; wait "$pid"; code=$?; times >&4; exit "$code"', 'bash', file, ...args],
    {
      stdio: ['ignore', 'ignore', 'inherit', 'pipe', 'pipe'],
      env,
    },
  );
  const pidText = await new Promise<string>((resolve) => {
    let text = '';
    wrapper.stdio[3]?.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('\n')) resolve(text.trim());
    });
  });
  let timesText = '';
  wrapper.stdio[4]?.on('data', (d: Buffer) => {
    timesText += d.toString();
  });
  const child = { pid: Number(pidText), on: wrapper.on.bind(wrapper) };
  let peak = 0;
  const sample = () => {
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const match = /VmHWM:\s+(\d+) kB/.exec(status);
      if (match) peak = Math.max(peak, Number(match[1]) * 1024);
    } catch {
      // exited between samples
    }
  };
  const timer = setInterval(sample, 20);
  const code = await new Promise<number | null>((done) => child.on('exit', (c) => done(c)));
  clearInterval(timer);
  const wallMs = Number((process.hrtime.bigint() - started) / 1_000_000n);
  if (code !== 0 && code !== 3) throw new Error(`${file} ${args.join(' ')} exited ${code}`);
  // `times`: second line = children's user and system time, like "0m6.231s 0m1.234s".
  const childLine = timesText.trim().split('\n')[1] ?? '';
  const cpuMs = [...childLine.matchAll(/(\d+)m(\d+)\.(\d+)s/g)].reduce(
    (sum, m) => sum + Number(m[1]) * 60_000 + Number(m[2]) * 1000 + Number((m[3] ?? '0').padEnd(3, '0').slice(0, 3)),
    0,
  );
  return { wallMs, cpuMs, peakRssBytes: peak };
}

function treeBytes(dir: string): number {
  return Number(execFileSync('du', ['-sb', '--apparent-size', dir], { encoding: 'utf8' }).split('\t')[0]);
}

/** A small web-app-like tree: many small sources, some incompressible uploads, a big SQL-ish dump. */
async function generate(dir: string, mib: number): Promise<void> {
  const seedHash = (n: number) => createHash('sha256').update(String(n)).digest();
  const words =
    'function return const class public private static namespace use echo array string int null true false'.split(' ');
  const smallFiles = Math.max(100, mib * 30);
  for (let i = 0; i < smallFiles; i++) {
    const sub = join(dir, 'src', `m${i % 100}`);
    if (i < 100) await mkdir(sub, { recursive: true });
    const h = seedHash(i);
    const lines = Array.from(
      { length: 20 + (h[0] ?? 0) },
      (_, j) => `${words[(j * 7 + i) % words.length]} x${j} = ${i * j};`,
    );
    await writeFile(join(sub, `f${i}.php`), `${lines.join('\n')}\n`);
  }
  await mkdir(join(dir, 'uploads'), { recursive: true });
  const uploads = Math.max(4, Math.floor(mib / 4));
  for (let i = 0; i < uploads; i++) {
    const chunks: Buffer[] = [];
    for (let k = 0; k < 64 * 1024 * 1.5; k += 32) chunks.push(seedHash(i * 1_000_003 + k));
    await writeFile(join(dir, 'uploads', `u${i}.jpg`), Buffer.concat(chunks).subarray(0, 1_500_000));
  }
  const dumpLines: string[] = [];
  const dumpTarget = Math.floor(mib * 0.3 * 1024 * 1024);
  let size = 0;
  for (let i = 0; size < dumpTarget; i++) {
    const line = `INSERT INTO orders VALUES (${i},'cust${i % 9973}',${(i * 37) % 100000}.${i % 100},'${words[i % words.length]} note ${i}');\n`;
    dumpLines.push(line);
    size += line.length;
  }
  await writeFile(join(dir, 'dump.sql'), dumpLines.join(''));
}

function ratio(basisPoints: number): string {
  return `${Math.floor(basisPoints / 10000)}.${String(Math.floor((basisPoints % 10000) / 100)).padStart(2, '0')}x`;
}

/**
 * `--s3 SIZE`: streams SIZE bytes of incompressible data (a command source) to the S3 test server
 * (scripts/test-services.sh) and reports peak RSS: memory must stay flat whatever the object size.
 */
async function benchS3(size: number): Promise<void> {
  const servicesFile = join(process.env.BACKPROOF_SERVICES_DIR ?? '/tmp/backproof-services', 'services.json');
  if (!existsSync(servicesFile)) throw new Error(`${servicesFile} is missing: run scripts/test-services.sh start s3`);
  const s3 = (
    JSON.parse(readFileSync(servicesFile, 'utf8')) as {
      s3: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string };
    }
  ).s3;
  const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3');
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  const bucket = `bench${Date.now()}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  const work = await mkdtemp(join(tmpdir(), 'bp-bench-s3-'));
  try {
    await writeFile(join(work, 's3.secret'), s3.secretAccessKey, { mode: 0o600 });
    const config = join(work, 'backproof.yml');
    await writeFile(
      config,
      `job: bench-s3\nstateDir: ${join(work, 'state')}\n` +
        `sources: [{ name: blob, type: command, command: "head -c ${size} /dev/urandom", extension: bin }]\n` +
        `targets: [{ name: cloud, type: s3, endpoint: "${s3.endpoint}", region: ${s3.region}, bucket: ${bucket}, ` +
        `forcePathStyle: true, accessKeyId: "${s3.accessKeyId}", secretAccessKeyFile: ${join(work, 's3.secret')} }]\n` +
        'compression: { algorithm: zstd, level: 1 }\nchecks: { minFree: { bytes: 0, percent: 0% } }\n',
    );
    const m = await measure(process.execPath, [cli, '--config', config, 'backup']);
    const rate = Math.floor((size * 1000) / Math.max(1, m.wallMs));
    process.stdout.write(
      `${[
        `machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}; S3 server: Swift s3api on loopback`,
        `backproof backup of ${formatBytes(size)} (incompressible, one command component) to S3: ${formatDuration(m.wallMs)}, ` +
          `${formatBytes(rate)}/s, CPU ${formatDuration(m.cpuMs)}, peak RSS ${formatBytes(m.peakRssBytes)} (goal < 200 MB)`,
        `load average at the end: ${loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}`,
      ].join('\n')}\n`,
    );
  } finally {
    await rm(work, { recursive: true, force: true });
    // Leave nothing on the test server: the object is as large as the benchmark.
    const { ListObjectsV2Command, DeleteObjectCommand, DeleteBucketCommand } = await import('@aws-sdk/client-s3');
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
    for (const object of listed.Contents ?? [])
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: object.Key }));
    await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
  }
}

/** Builds dist/ first, so the numbers are those of the sources as they are, never of a stale build. */
function buildCli(): void {
  try {
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
  } catch (error) {
    if (!existsSync(cli)) throw error;
    process.stderr.write('the build reported errors: measuring dist/ as it was emitted\n');
  }
}

interface Leg {
  /** Name in the list of every run. */
  label: string;
  config: string;
  target: string;
  /** Every run in order: the first from nothing, the later ones with history. */
  runs: Measurement[];
}

/** A job config for the bench: one files source, one local target, the free-space floor off. */
async function writeBenchConfig(
  work: string,
  name: string,
  dataDir: string,
  encryption: string,
): Promise<{ config: string; target: string }> {
  const target = join(work, `${name}-target`);
  await mkdir(target);
  const config = join(work, `${name}.yml`);
  await writeFile(
    config,
    `job: bench\nstateDir: ${join(work, `${name}-state`)}\n` +
      `sources: [{ name: data, type: files, paths: [${JSON.stringify(dataDir)}] }]\n` +
      `targets: [{ name: disk, type: local, path: ${JSON.stringify(target)} }]\ncompression: { algorithm: zstd, level: 3 }\n` +
      `checks: { minFree: { bytes: 0, percent: 0% } }\n${encryption}`,
  );
  return { config, target };
}

/** A fresh age key pair in `work`; returns the public key (`age1…`). */
function ageRecipient(work: string): string {
  const keyFile = join(work, 'age.key');
  execFileSync('age-keygen', ['-o', keyFile], { stdio: 'ignore' });
  const recipient = /^# public key: (age1[0-9a-z]+)$/m.exec(readFileSync(keyFile, 'utf8'))?.[1];
  if (!recipient) throw new Error(`age-keygen wrote no public key to ${keyFile}`);
  return recipient;
}

/** Keeps the newest committed set (the chain head the next run links to) and removes the older ones: the disk stays bounded. */
async function keepNewestSet(target: string): Promise<void> {
  const sets: string[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (!/^\d/.test(name)) continue;
      if (depth === 3) sets.push(join(dir, name));
      else await walk(join(dir, name), depth + 1);
    }
  };
  await walk(join(target, 'bench'), 0);
  // Set directories are <YYYY>/<MM>/<DD>/<setId>, and setIds start with their UTC start time.
  sets.sort((a, b) => (basename(a) < basename(b) ? -1 : 1));
  for (const old of sets.slice(0, -1)) await rm(old, { recursive: true, force: true });
}

function best(list: readonly Measurement[]): Measurement {
  return list.reduce((a, b) => (b.wallMs < a.wallMs ? b : a));
}

/** The middle run by wall time (the lower middle of an even count): one lucky or unlucky run moves it least. */
function median(list: readonly Measurement[]): Measurement {
  const sorted = [...list].sort((a, b) => a.wallMs - b.wallMs);
  return sorted[Math.floor((sorted.length - 1) / 2)] as Measurement;
}

/** node:crypto's SHA-256 rate on this machine, bytes per second (best of 3 over 256 MiB held in memory). */
function sha256Rate(): number {
  const data = Buffer.alloc(256 * 1024 * 1024, 0x5a);
  let bestNs = Number.MAX_SAFE_INTEGER;
  for (let i = 0; i < 3; i++) {
    const start = process.hrtime.bigint();
    const hash = createHash('sha256');
    for (let at = 0; at < data.length; at += 1 << 20) hash.update(data.subarray(at, at + (1 << 20)));
    hash.digest();
    bestNs = Math.min(bestNs, Number(process.hrtime.bigint() - start));
  }
  return Math.floor((data.length * 1e9) / Math.max(1, bestNs));
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const roundsIndex = args.indexOf('--rounds');
  const rounds = Math.max(2, roundsIndex >= 0 ? Number(args.splice(roundsIndex, 2)[1]) : 2);
  const encryptIndex = args.indexOf('--encrypt');
  const encrypt = encryptIndex >= 0;
  if (encrypt) args.splice(encryptIndex, 1);
  buildCli();
  const loadAtStart = loadavg();
  const s3Index = args.indexOf('--s3');
  if (s3Index >= 0) {
    await benchS3(parseSize(args[s3Index + 1] ?? '2GiB'));
    return;
  }
  const work = await mkdtemp(join(tmpdir(), 'bp-bench-'));
  try {
    let dataDir = args[0] ? resolve(args[0]) : join(work, 'data');
    if (!args[0]) {
      process.stderr.write('no DIR given: generating a 200 MiB web-app-like tree\n');
      await generate(dataDir, 200);
    }
    dataDir = resolve(dataDir);
    const bytes = treeBytes(dataDir);
    const legs: Leg[] = [{ label: 'backproof', ...(await writeBenchConfig(work, 'plain', dataDir, '')), runs: [] }];
    if (encrypt) {
      const recipient = ageRecipient(work);
      legs.push({
        label: 'backproof age-encrypted',
        ...(await writeBenchConfig(work, 'age', dataDir, `encryption: { recipients: ["${recipient}"] }\n`)),
        runs: [],
      });
    }
    // Warm the page cache once so neither side pays for the first read alone.
    execFileSync('sh', ['-c', `tar -cf - "$1" | cat > /dev/null`, 'sh', dataDir], { stdio: 'ignore' });
    const peer: Measurement[] = [];
    for (let round = 0; round < rounds; round++) {
      const out = join(work, `peer-${round}.tar.zst`);
      peer.push(
        await measure('bash', [
          '-c',
          'set -o pipefail; tar -cf - "$1" 2>/dev/null | zstd -q -T0 -3 | tee "$2" | sha256sum >/dev/null',
          'bash',
          dataDir,
          out,
        ]),
      );
      await rm(out, { force: true });
      for (const leg of legs) {
        leg.runs.push(await measure(process.execPath, [cli, '--config', leg.config, 'backup']));
        await keepNewestSet(leg.target);
      }
    }
    const p = best(peer);
    const plain = legs[0] as Leg;
    // The target holds the newest set only (keepNewestSet): its objects, manifest and owner file.
    const storedBytes = treeBytes(plain.target);
    const hashRate = sha256Rate();
    const rate = (m: Measurement) => Math.floor((bytes * 1000) / Math.max(1, m.wallMs));
    const ratioOf = (a: Measurement, b: Measurement) => ratio(Math.floor((rate(a) * 10000) / Math.max(1, rate(b))));
    const row = (label: string, m: Measurement, rss = true) =>
      `${label.padEnd(38)}: ${formatDuration(m.wallMs).padStart(8)}  ${formatBytes(rate(m)).padStart(9)}/s  CPU ${formatDuration(m.cpuMs)}` +
      (rss ? `  peak RSS ${formatBytes(m.peakRssBytes)} (node)` : '');
    const nightly = best(plain.runs.slice(1));
    const first = plain.runs[0] as Measurement;
    const lines = [
      `machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${formatBytes(totalmem())} RAM, node ${process.version}`,
      `data: ${dataDir} (${formatBytes(bytes)}), best of ${rounds} rounds (backproof: of the ${rounds - 1} with history), same disk (${work})`,
      row('tar | zstd -T0 -3 | tee | sha256sum', p, false),
      row('backproof backup (with history)', nightly),
      row('backproof backup (first run)', first),
      `${'throughput ratio backproof/peer'.padEnd(38)}: ${ratioOf(nightly, p)}, first run ${ratioOf(first, p)}  (goal >= 0.80x, peak RSS < 200 MB)`,
      `${'CPU ratio peer/backproof'.padEnd(38)}: ${ratio(Math.floor((p.cpuMs * 10000) / Math.max(1, nightly.cpuMs)))}  (1.00x = same CPU for the same work)`,
      `${'median run, ratio'.padEnd(38)}: peer ${formatDuration(median(peer).wallMs)}, backproof ${formatDuration(
        median(plain.runs.slice(1)).wallMs,
      )} (with history): ${ratioOf(median(plain.runs.slice(1)), median(peer))}`,
      // The design's proofs cost SHA-256 passes the peer does not make: each file, the raw stream, the stored stream, the re-read.
      `${'SHA-256 work'.padEnd(38)}: backproof ${formatBytes(2 * bytes + 2 * storedBytes)} (files, raw stream, stored, re-read) ` +
        `vs peer ${formatBytes(storedBytes)}; node:crypto here ${formatBytes(hashRate)}/s, so ` +
        `${formatDuration(Math.floor(((2 * bytes + storedBytes) * 1000) / Math.max(1, hashRate)))} more CPU than one pass over the stored bytes`,
    ];
    const age = legs[1];
    if (age) {
      const encrypted = best(age.runs.slice(1));
      lines.push(
        row('backproof backup, age (with history)', encrypted),
        `${'throughput ratio encrypted/plain'.padEnd(38)}: ${ratioOf(encrypted, nightly)}  (goal >= 0.85x, flat memory)`,
      );
    }
    lines.push(
      `every run, in order: peer ${peer.map((m) => formatDuration(m.wallMs)).join(' ')}; ${legs
        .map((leg) => `${leg.label} ${leg.runs.map((m) => formatDuration(m.wallMs)).join(' ')}`)
        .join('; ')}`,
      `load average at the start: ${loadAtStart.map((l) => l.toFixed(2)).join(' ')}, at the end: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')} (other work on the machine skews both sides)`,
    );
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
