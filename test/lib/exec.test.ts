import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandError } from '../../src/lib/errors.js';
import {
  type ExitInfo,
  ProgramNotFoundError,
  processStream,
  runCapture,
  spawnStream,
  toCommandError,
  whichProgram,
} from '../../src/lib/exec.js';

const never = new AbortController().signal;

/** True while `pid` is a live process. A zombie counts as gone: it is dead and only waits for init to reap it. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
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

/** Reads the first line the stream produces (the tests' children print a pid first), leaving the stream paused. */
function firstLine(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString();
      const newline = text.indexOf('\n');
      if (newline < 0) return;
      stream.pause();
      stream.off('data', onData);
      stream.off('error', reject);
      resolve(text.slice(0, newline));
    };
    stream.on('data', onData);
    stream.once('error', reject);
  });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

describe('spawnStream', () => {
  it('gives the child LC_ALL=C, the caller env and only a few inherited variables', async () => {
    process.env.BACKPROOF_TEST_SHOULD_NOT_LEAK = 'leak';
    try {
      const started = spawnStream('sh', ['-c', 'env'], {
        signal: never,
        env: { BACKPROOF_TEST_SECRET: 'hunter2', LC_ALL: 'fr_FR.UTF-8' },
      });
      const [output, info] = await Promise.all([readAll(started.stdout), started.done]);
      assert.equal(info.exitCode, 0);
      const lines = output.toString('utf8').split('\n');
      assert.ok(lines.includes('LC_ALL=C'), 'LC_ALL=C wins over the caller');
      assert.ok(lines.includes('BACKPROOF_TEST_SECRET=hunter2'));
      assert.ok(lines.some((line) => line.startsWith('PATH=')));
      assert.ok(!lines.some((line) => line.startsWith('BACKPROOF_TEST_SHOULD_NOT_LEAK=')));
    } finally {
      delete process.env.BACKPROOF_TEST_SHOULD_NOT_LEAK;
    }
  });

  it('resolves done with a non-zero exit code and the stderr, never rejecting for it', async () => {
    const started = spawnStream('sh', ['-c', 'echo partial; echo "disk full" >&2; exit 3'], { signal: never });
    const [output, info] = await Promise.all([readAll(started.stdout), started.done]);
    assert.equal(output.toString(), 'partial\n');
    assert.deepEqual(info, { exitCode: 3, signal: null, stderrTail: 'disk full\n' });
  });

  it('keeps only the last 4 KiB of stderr and never starts it with half a character', async () => {
    // 10000 × "é" (2 bytes each) + "END": the 4 KiB cut lands in the middle of a character.
    const script = 'let s = "é".repeat(10000) + "END"; process.stderr.write(s);';
    const started = spawnStream(process.execPath, ['-e', script], { signal: never });
    started.stdout.resume();
    const info = await started.done;
    assert.equal(info.exitCode, 0);
    assert.ok(Buffer.byteLength(info.stderrTail) <= 4096);
    assert.ok(Buffer.byteLength(info.stderrTail) >= 4090);
    assert.ok(info.stderrTail.endsWith('END'));
    assert.ok(info.stderrTail.startsWith('é'));
    assert.ok(!info.stderrTail.includes('\uFFFD'));
  });

  it('rejects done with ProgramNotFoundError for a missing program', async () => {
    const started = spawnStream('backproof-no-such-program', [], { signal: never });
    await assert.rejects(started.done, (error: unknown) => {
      assert.ok(error instanceof ProgramNotFoundError);
      assert.equal(error.program, 'backproof-no-such-program');
      assert.match(error.message, /not installed or not on PATH/);
      return true;
    });
  });

  it('feeds stdin when asked', async () => {
    const started = spawnStream('sh', ['-c', 'tr a-z A-Z'], { signal: never, stdin: 'pipe' });
    started.stdin?.end('hello');
    const [output, info] = await Promise.all([readAll(started.stdout), started.done]);
    assert.equal(info.exitCode, 0);
    assert.equal(output.toString(), 'HELLO');
  });

  it('sends SIGTERM on abort', async () => {
    const controller = new AbortController();
    const started = spawnStream('sh', ['-c', 'echo $$; exec sleep 1000'], { signal: controller.signal });
    const pid = Number(await firstLine(started.stdout));
    controller.abort();
    const info = await started.done;
    assert.equal(info.signal, 'SIGTERM');
    assert.equal(info.exitCode, null);
    assert.ok(await waitUntilGone(pid));
  });

  it('kills with SIGKILL a child that ignores SIGTERM, after the grace time', async () => {
    const controller = new AbortController();
    const started = spawnStream('sh', ['-c', 'trap "" TERM; echo $$; exec sleep 1000'], {
      signal: controller.signal,
      killGraceMs: 200,
    });
    const pid = Number(await firstLine(started.stdout));
    controller.abort();
    const info = await started.done;
    assert.equal(info.signal, 'SIGKILL');
    assert.ok(await waitUntilGone(pid));
  });

  it('stops a child started with an already aborted signal', async () => {
    const controller = new AbortController();
    controller.abort();
    const started = spawnStream('sleep', ['1000'], { signal: controller.signal });
    const info = await started.done;
    assert.equal(info.signal, 'SIGTERM');
  });

  it('with processGroup, abort stops grandchildren too', async () => {
    const controller = new AbortController();
    const started = spawnStream('sh', ['-c', 'sleep 1000 & echo $!; wait'], {
      signal: controller.signal,
      processGroup: true,
    });
    const grandchild = Number(await firstLine(started.stdout));
    assert.ok(isRunning(grandchild));
    controller.abort();
    const info = await started.done;
    assert.equal(info.signal, 'SIGTERM');
    assert.ok(await waitUntilGone(grandchild), `grandchild ${grandchild} survived the abort`);
  });

  it('without processGroup, abort reaches only the child (which is why sources use groups)', async () => {
    const controller = new AbortController();
    const started = spawnStream('sh', ['-c', 'sleep 1000 >/dev/null 2>&1 & echo $!; wait'], {
      signal: controller.signal,
    });
    const grandchild = Number(await firstLine(started.stdout));
    try {
      controller.abort();
      await started.done;
      assert.ok(isRunning(grandchild), 'the grandchild outside the group keeps running');
    } finally {
      process.kill(grandchild, 'SIGKILL');
    }
  });
});

describe('runCapture', () => {
  it('returns stdout, exit code and stderr', async () => {
    const result = await runCapture('sh', ['-c', 'printf "v1.2.3"; echo warn >&2; exit 2']);
    assert.deepEqual(result, { stdout: 'v1.2.3', exitCode: 2, signal: null, stderrTail: 'warn\n' });
  });

  it('keeps at most maxOutputBytes of stdout and still lets the child finish', async () => {
    const result = await runCapture('sh', ['-c', 'head -c 1000000 /dev/zero | tr "\\0" x'], { maxOutputBytes: 10 });
    assert.equal(result.stdout, 'xxxxxxxxxx');
    assert.equal(result.exitCode, 0);
  });

  it('rejects for a missing program', async () => {
    await assert.rejects(runCapture('backproof-no-such-program', ['--version']), ProgramNotFoundError);
  });

  it('stops the child on abort', async () => {
    const controller = new AbortController();
    const running = runCapture('sleep', ['1000'], { signal: controller.signal });
    controller.abort();
    const result = await running;
    assert.equal(result.signal, 'SIGTERM');
  });
});

describe('whichProgram', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'backproof-which-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('finds a program on PATH', async () => {
    const found = await whichProgram('sh');
    assert.ok(found === '/bin/sh' || found === '/usr/bin/sh', String(found));
  });

  it('returns undefined for a program that is not on PATH', async () => {
    assert.equal(await whichProgram('backproof-no-such-program'), undefined);
  });

  it('accepts a path and refuses a file that is not executable or a directory', async () => {
    const script = path.join(dir, 'tool');
    await writeFile(script, '#!/bin/sh\n');
    assert.equal(await whichProgram(script), undefined);
    await chmod(script, 0o755);
    assert.equal(await whichProgram(script), script);
    assert.equal(await whichProgram(dir), undefined);
  });
});

describe('toCommandError', () => {
  it('says which command, how it ended and what it said', () => {
    const info: ExitInfo = { exitCode: 2, signal: null, stderrTail: 'mysqldump: Access denied\n' };
    const error = toCommandError('mariadb-dump shop', info);
    assert.ok(error instanceof CommandError);
    assert.equal(error.message, 'mariadb-dump shop exited with code 2: mysqldump: Access denied');
    assert.equal(error.exitCode, 2);
    const killed = toCommandError('zstd -3', { exitCode: null, signal: 'SIGKILL', stderrTail: '' });
    assert.equal(killed.message, 'zstd -3 was killed by SIGKILL');
  });
});

describe('processStream', () => {
  it('passes data through a child with backpressure and ends after a clean exit', async () => {
    const data = randomBytes(8 * 1024 * 1024);
    const stream = processStream('cat', [], { display: 'cat', input: true, signal: never });
    const [output] = await Promise.all([readAll(stream), pipeline(Readable.from([data]), stream as Writable)]);
    assert.equal(sha256(output), sha256(data));
  });

  it('errors instead of ending when the child exits non-zero after writing output', async () => {
    const stream = processStream('sh', ['-c', 'cat; echo "checksum mismatch" >&2; exit 4'], {
      display: 'checker',
      input: true,
      signal: never,
    });
    let ended = false;
    stream.on('end', () => {
      ended = true;
    });
    stream.end('some data');
    await assert.rejects(readAll(stream), (error: unknown) => {
      assert.ok(error instanceof CommandError);
      assert.equal(error.exitCode, 4);
      assert.equal(error.command, 'checker');
      assert.match(error.message, /checksum mismatch/);
      return true;
    });
    assert.equal(ended, false);
  });

  it('errors when the child is killed from outside', async () => {
    const stream = processStream('sh', ['-c', 'echo $$; exec sleep 1000'], {
      display: 'sleeper',
      input: false,
      signal: never,
    });
    const pid = Number(await firstLine(stream));
    process.kill(pid, 'SIGKILL');
    stream.resume();
    const [error] = (await once(stream, 'error')) as [CommandError];
    assert.ok(error instanceof CommandError);
    assert.equal(error.signal, 'SIGKILL');
  });

  it('lets judge fail an exit code 0, e.g. for empty output', async () => {
    const stream = processStream('true', [], {
      display: 'true',
      input: false,
      signal: never,
      judge: (info, bytes) => (info.exitCode === 0 && bytes > 0 ? undefined : new Error(`no output (${bytes} bytes)`)),
    });
    await assert.rejects(readAll(stream), /no output \(0 bytes\)/);
  });

  it('fails with ProgramNotFoundError when the program is missing', async () => {
    const stream = processStream('backproof-no-such-program', [], { display: 'x', input: true, signal: never });
    await assert.rejects(readAll(stream), ProgramNotFoundError);
  });

  it('kills the child on destroy and closes only after it is gone', async () => {
    const stream = processStream('sh', ['-c', 'echo $$; exec sleep 1000'], {
      display: 'sleeper',
      input: false,
      signal: never,
    });
    const pid = Number(await firstLine(stream));
    stream.destroy();
    await once(stream, 'close');
    assert.ok(await waitUntilGone(pid));
  });

  it('on abort, errors with the abort reason and stops the whole process group', async () => {
    const controller = new AbortController();
    const stream = processStream('sh', ['-c', 'sleep 1000 & echo $!; wait'], {
      display: 'group',
      input: false,
      signal: controller.signal,
      processGroup: true,
    });
    const grandchild = Number(await firstLine(stream));
    const failed = once(stream, 'error');
    controller.abort(new Error('run aborted by test'));
    const [error] = (await failed) as [Error];
    assert.equal(error.message, 'run aborted by test');
    assert.ok(await waitUntilGone(grandchild));
  });

  it('does not read ahead of a slow consumer', async () => {
    // A producer of 64 MiB that nobody reads: without backpressure all of it would pile up in memory.
    const stream = processStream('head', ['-c', String(64 * 1024 * 1024), '/dev/zero'], {
      display: 'head',
      input: false,
      signal: never,
    });
    stream.pause();
    stream.read(0); // start the flow once
    await sleep(300);
    assert.ok(stream.readableLength <= 256 * 1024, `buffered ${stream.readableLength} bytes`);
    const all = await readAll(stream);
    assert.equal(all.length, 64 * 1024 * 1024);
  });
});

describe('processStream with coalesceBytes', () => {
  it('hands the output on in chunks of at least that size, bytes unchanged', async () => {
    const data = randomBytes(8 * 1024 * 1024 + 12345);
    const stream = processStream('cat', [], { display: 'cat', input: true, signal: never, coalesceBytes: 1 << 20 });
    const sizes: number[] = [];
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => {
      sizes.push(chunk.length);
      chunks.push(chunk);
    });
    await Promise.all([once(stream, 'end'), pipeline(Readable.from([data]), stream as Writable)]);
    assert.equal(sha256(Buffer.concat(chunks)), sha256(data));
    // The pipe gives reads of at most 64 KiB: without gathering there would be 128 or more. A loaded
    // machine may pause cat for longer than the gathering delay, which hands on a smaller chunk early.
    assert.ok(sizes.length <= 32, `${sizes.length} chunks: ${sizes.join(' ')}`);
    assert.ok(
      sizes.filter((size) => size >= 1 << 20).length >= 4,
      `most of the output goes on in chunks of 1 MiB or more: ${sizes.join(' ')}`,
    );
  });

  it("still hands on a slow child's output while the child runs", async () => {
    // One line, then silence until the test lets the child go on: the line must arrive before that.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'backproof-coalesce-'));
    try {
      const gate = path.join(dir, 'go');
      const stream = processStream(
        'sh',
        ['-c', `echo first; while [ ! -e ${gate} ]; do sleep 0.05; done; echo second`],
        {
          display: 'slow',
          input: false,
          signal: never,
          coalesceBytes: 1 << 20,
        },
      );
      assert.equal(await firstLine(stream), 'first');
      await writeFile(gate, '');
      const rest = (await readAll(stream)).toString('utf8');
      assert.match(rest, /second\n$/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('loses nothing gathered when the child exits, and still fails on a bad exit', async () => {
    const ok = processStream('sh', ['-c', 'printf abc'], {
      display: 'short',
      input: false,
      signal: never,
      coalesceBytes: 1 << 20,
    });
    assert.equal((await readAll(ok)).toString('utf8'), 'abc');
    const failing = processStream('sh', ['-c', 'printf abc; exit 3'], {
      display: 'failing',
      input: false,
      signal: never,
      coalesceBytes: 1 << 20,
    });
    await assert.rejects(readAll(failing), (error: unknown) => error instanceof CommandError && error.exitCode === 3);
  });
});

describe('processStream with a real file on stdin', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'backproof-exec-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports a child that stops reading its input early', async () => {
    const file = path.join(dir, 'input');
    await writeFile(file, randomBytes(4 * 1024 * 1024));
    // `head -c 10` exits 0 after 10 bytes: the rest of the input was never read, so this is no success.
    const stream = processStream('head', ['-c', '10'], { display: 'head -c 10', input: true, signal: never });
    const source = Readable.from([await readFile(file)]);
    source.pipe(stream as Writable);
    await assert.rejects(readAll(stream), /stopped reading its input before the end/);
  });
});
