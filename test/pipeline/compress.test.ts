import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type Duplex, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandError, ConfigError } from '../../src/lib/errors.js';
import { ProgramNotFoundError } from '../../src/lib/exec.js';
import {
  type CompressionAlgorithm,
  compressedSuffix,
  compressionToolVersion,
  createCompressor,
  createDecompressor,
} from '../../src/pipeline/compress.js';

const never = new AbortController().signal;
const MiB = 1024 * 1024;

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Runs `data` through a stream and returns everything it produced. */
async function through(stream: Duplex, data: Buffer): Promise<Buffer> {
  const [output] = await Promise.all([collect(stream), pipeline(Readable.from([data]), stream)]);
  return output;
}

/** Text that compresses (log-like lines) followed by random bytes that do not. */
function mixedData(bytes: number): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes / 2; i++) {
    const line = `2025-11-04T03:00:${String(i % 60).padStart(2, '0')}Z GET /api/orders/${i} 200 ${i % 977}ms\n`;
    lines.push(line);
    size += line.length;
  }
  const text = Buffer.from(lines.join(''));
  return Buffer.concat([text, randomBytes(bytes - text.length)]).subarray(0, bytes);
}

/** zstd processes that are children of this test process. */
function zstdChildren(): number[] {
  const pids: number[] = [];
  for (const task of readdirSync(`/proc/${process.pid}/task`)) {
    const children = readFileSync(`/proc/${process.pid}/task/${task}/children`, 'utf8').trim();
    for (const pid of children ? children.split(' ').map(Number) : []) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'zstd') pids.push(pid);
      } catch {
        // exited meanwhile
      }
    }
  }
  return pids;
}

async function waitForZstdChild(): Promise<number> {
  for (let i = 0; i < 400; i++) {
    const [pid] = zstdChildren();
    if (pid !== undefined) return pid;
    await sleep(10);
  }
  throw new Error('no zstd child appeared');
}

/** True while `pid` is a live process (a zombie is dead, it only waits to be reaped). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\d+ \(.*\) [ZX]/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function waitUntilGone(pid: number): Promise<boolean> {
  for (let i = 0; i < 400; i++) {
    if (!isRunning(pid)) return true;
    await sleep(25);
  }
  return false;
}

let dir = '';
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'backproof-compress-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('compressedSuffix', () => {
  it('names zstd objects .zst and gzip objects .gz', () => {
    assert.equal(compressedSuffix('zstd'), 'zst');
    assert.equal(compressedSuffix('gzip'), 'gz');
  });
});

describe('compression levels', () => {
  it('refuses levels outside the range of the algorithm', () => {
    assert.throws(() => createCompressor({ algorithm: 'zstd', level: 20 }, never), ConfigError);
    assert.throws(() => createCompressor({ algorithm: 'zstd', level: 0 }, never), /from 1 to 19/);
    assert.throws(() => createCompressor({ algorithm: 'gzip', level: 10 }, never), /from 1 to 9/);
    assert.throws(() => createCompressor({ algorithm: 'gzip', level: 2.5 }, never), ConfigError);
  });
});

for (const algorithm of ['zstd', 'gzip'] as const satisfies readonly CompressionAlgorithm[]) {
  const cli = algorithm === 'zstd' ? 'zstd' : 'gzip';
  describe(`${algorithm} round trip and standard format`, () => {
    const data = mixedData(8 * MiB);

    it('decompresses what it compressed, and compresses the text half', async () => {
      const compressed = await through(createCompressor({ algorithm, level: 3 }, never), data);
      assert.ok(compressed.length < data.length * 0.75, `compressed to ${compressed.length} bytes`);
      const restored = await through(createDecompressor(algorithm, never), compressed);
      assert.equal(sha256(restored), sha256(data));
    });

    it(`writes what \`${cli} -d\` reads`, async () => {
      const file = path.join(dir, `out.${compressedSuffix(algorithm)}`);
      await writeFile(file, await through(createCompressor({ algorithm, level: 5 }, never), data));
      const restored = execFileSync(cli, ['-d', '-c', file], { maxBuffer: 64 * MiB });
      assert.equal(sha256(restored), sha256(data));
    });

    it(`reads what \`${cli}\` wrote, including several concatenated frames`, async () => {
      const file = path.join(dir, `in.${compressedSuffix(algorithm)}`);
      await writeFile(file, data);
      const frame = execFileSync(cli, ['-c', file], { maxBuffer: 64 * MiB });
      const restored = await through(createDecompressor(algorithm, never), Buffer.concat([frame, frame]));
      assert.equal(sha256(restored), sha256(Buffer.concat([data, data])));
    });

    it('errors on corrupted input instead of ending', async () => {
      const compressed = await through(createCompressor({ algorithm, level: 3 }, never), data);
      const corrupted = Buffer.from(compressed);
      for (let i = 1000; i < 1100; i++) corrupted[i] = (corrupted[i] ?? 0) ^ 0xff;
      const decompressor = createDecompressor(algorithm, never);
      let ended = false;
      decompressor.on('end', () => {
        ended = true;
      });
      await assert.rejects(through(decompressor, corrupted));
      assert.equal(ended, false);
    });

    it('errors on truncated input instead of ending', async () => {
      const compressed = await through(createCompressor({ algorithm, level: 3 }, never), data);
      const truncated = compressed.subarray(0, Math.floor(compressed.length / 2));
      await assert.rejects(through(createDecompressor(algorithm, never), truncated));
    });

    it('errors on input that was never compressed', async () => {
      await assert.rejects(through(createDecompressor(algorithm, never), Buffer.from('just some plain text\n')));
    });

    it('stops with the abort reason when the signal is aborted', async () => {
      const controller = new AbortController();
      const compressor = createCompressor({ algorithm, level: 3 }, controller.signal);
      compressor.write(data.subarray(0, MiB));
      const failed = once(compressor, 'error');
      controller.abort(new Error('stalled: no bytes for 10m'));
      const [error] = (await failed) as [Error];
      assert.match(error.message, algorithm === 'zstd' ? /stalled/ : /abort/i);
      if (algorithm === 'zstd') assert.deepEqual(zstdChildren(), []);
    });
  });
}

describe('zstd child process', () => {
  it('CLI frames: the error of corrupt input names zstd and carries its stderr', async () => {
    const garbage = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), randomBytes(4096)]);
    await assert.rejects(through(createDecompressor('zstd', never), garbage), (error: unknown) => {
      assert.ok(error instanceof CommandError);
      assert.equal(error.command, 'zstd -d');
      assert.equal(error.exitCode, 1);
      assert.ok(error.stderrTail.length > 0, 'stderr tail is kept');
      return true;
    });
  });

  it('fails when zstd is killed in the middle', async () => {
    const compressor = createCompressor({ algorithm: 'zstd', level: 3 }, never);
    compressor.write(randomBytes(MiB));
    const pid = await waitForZstdChild();
    process.kill(pid, 'SIGKILL');
    compressor.resume();
    const [error] = (await once(compressor, 'error')) as [CommandError];
    assert.ok(error instanceof CommandError);
    assert.equal(error.signal, 'SIGKILL');
  });

  it('stops zstd when the stream is destroyed', async () => {
    const compressor = createCompressor({ algorithm: 'zstd', level: 3 }, never);
    compressor.write(randomBytes(MiB));
    const pid = await waitForZstdChild();
    compressor.destroy();
    await once(compressor, 'close');
    assert.ok(await waitUntilGone(pid));
  });

  it('holds back the writer while nobody reads the output (backpressure)', async () => {
    const compressor = createCompressor({ algorithm: 'zstd', level: 1 }, never);
    const block = randomBytes(MiB); // random: the output is as large as the input
    const total = 256;
    let written = 0;
    const writer = (async () => {
      for (let i = 0; i < total; i++) {
        written++;
        if (!compressor.write(block)) await once(compressor, 'drain');
      }
      compressor.end();
    })();
    await sleep(500); // the writer is now stuck on 'drain' if backpressure works; without it, it is done
    try {
      // zstd itself holds a few MiB (its worker jobs); everything beyond that must wait for a reader.
      assert.ok(written < 24, `the writer got ${written} MiB in although nothing was read`);
      // Output goes on in gathered chunks of OUTPUT_CHUNK_BYTES (1 MiB) plus at most one 64 KiB pipe
      // read, after smaller ones that fit under the 64 KiB high-water mark: never two gathered chunks.
      const readableLimit = MiB + 2 * 64 * 1024;
      assert.ok(compressor.readableLength <= readableLimit, `${compressor.readableLength} bytes piled up unread`);
    } catch (error) {
      compressor.destroy(); // a stuck writer and a live zstd would keep the test process from ending
      throw error;
    }
    const hash = createHash('sha256');
    let outputBytes = 0;
    for await (const chunk of compressor) {
      outputBytes += (chunk as Buffer).length;
      hash.update(chunk as Buffer);
    }
    await writer;
    assert.equal(written, total);
    assert.ok(outputBytes > total * MiB, 'random data does not shrink');
  });

  it('pushes 1 GiB through compress → decompress with flat memory and the same hash on both ends', async () => {
    const blocks = Array.from({ length: 16 }, () => randomBytes(MiB));
    const total = 1024;
    const inputHash = createHash('sha256');
    const outputHash = createHash('sha256');
    let produced = 0;
    let outputBytes = 0;
    const rssBefore = process.memoryUsage.rss();
    let rssPeak = rssBefore;
    const input = new Readable({
      read() {
        if (produced === total) return this.push(null);
        // Blocks in a scrambled order so zstd does real work instead of matching one repeat.
        const block = blocks[(produced * 7) % blocks.length] as Buffer;
        produced++;
        inputHash.update(block);
        rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
        this.push(block);
      },
    });
    const output = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        outputBytes += chunk.length;
        outputHash.update(chunk);
        callback();
      },
    });
    await pipeline(
      input,
      createCompressor({ algorithm: 'zstd', level: 3 }, never),
      createDecompressor('zstd', never),
      output,
    );
    assert.equal(outputBytes, total * MiB);
    assert.equal(outputHash.digest('hex'), inputHash.digest('hex'));
    const growth = rssPeak - rssBefore;
    assert.ok(growth < 128 * MiB, `memory grew by ${growth} bytes while streaming 1 GiB`);
  });
});

describe('compressionToolVersion', () => {
  it('names zstd and its version as the CLI reports it', async () => {
    const cli = execFileSync('zstd', ['--version'], { encoding: 'utf8' });
    const version = /v(\d+\.\d+\.\d+)/.exec(cli)?.[1];
    assert.equal(await compressionToolVersion('zstd'), `zstd ${version}`);
  });

  it("names node's zlib for gzip", async () => {
    assert.equal(await compressionToolVersion('gzip'), `node zlib ${process.versions.zlib}`);
  });

  describe('without zstd on PATH', () => {
    let savedPath: string | undefined;
    before(() => {
      savedPath = process.env.PATH;
      process.env.PATH = dir; // an existing directory with no zstd in it
    });
    after(() => {
      process.env.PATH = savedPath;
    });

    it('says to install the zstd package', async () => {
      await assert.rejects(compressionToolVersion('zstd'), /not installed.*apt-get install zstd.*gzip/);
    });

    it('makes the compressor fail with ProgramNotFoundError', async () => {
      const compressor = createCompressor({ algorithm: 'zstd', level: 3 }, never);
      await assert.rejects(through(compressor, Buffer.from('data')), ProgramNotFoundError);
    });

    it('gzip still works', async () => {
      const data = Buffer.from('gzip needs no program\n');
      const compressed = await through(createCompressor({ algorithm: 'gzip', level: 6 }, never), data);
      assert.deepEqual(await through(createDecompressor('gzip', never), compressed), data);
    });
  });
});

describe('decompressing a file written by the zstd CLI with several threads', () => {
  it('reads a -T2 file', async () => {
    const data = mixedData(16 * MiB);
    const file = path.join(dir, 'threads.bin');
    await writeFile(file, data);
    execFileSync('zstd', ['-q', '-f', '-T2', '-3', file, '-o', `${file}.zst`]);
    const restored = await through(createDecompressor('zstd', never), await readFile(`${file}.zst`));
    assert.equal(sha256(restored), sha256(data));
  });
});
