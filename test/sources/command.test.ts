import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandError, SourceError } from '../../src/lib/errors.js';
import { type Logger, silentLogger } from '../../src/lib/log.js';
import { createCommandSource, shellFindings } from '../../src/sources/command.js';
import type { ComponentStream, Source, SourceContext } from '../../src/sources/types.js';

let scratchDir = '';
before(async () => {
  scratchDir = await mkdtemp(path.join(os.tmpdir(), 'backproof-command-'));
});
after(async () => {
  await rm(scratchDir, { recursive: true, force: true });
});

function context(signal: AbortSignal = new AbortController().signal, log: Logger = silentLogger): SourceContext {
  return { signal, log, scratchDir };
}

async function onlyComponent(source: Source, ctx: SourceContext): Promise<ComponentStream> {
  const components: ComponentStream[] = [];
  for await (const component of source.components(ctx)) components.push(component);
  assert.equal(components.length, 1);
  return components[0] as ComponentStream;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function command(commandText: string, extra: { timeout?: number } = {}): Source {
  return createCommandSource({ name: 'redis', command: commandText, extension: 'rdb', ...extra });
}

/** Reads the first line of the data (the tests' commands print a pid first), leaving the stream paused. */
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

/** kill -0 until the process is gone. A zombie counts as gone: it is dead and only waits for init to reap it. */
async function waitUntilGone(pid: number): Promise<boolean> {
  for (let i = 0; i < 400; i++) {
    try {
      process.kill(pid, 0);
      if (/^\d+ \(.*\) [ZX]/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) return true;
    } catch {
      return true;
    }
    await sleep(25);
  }
  return false;
}

/** Expects the component to fail: data errors (never ends), facts reject with a SourceError matching `pattern`. */
async function expectFailure(component: ComponentStream, pattern: RegExp): Promise<SourceError> {
  let ended = false;
  component.data.on('end', () => {
    ended = true;
  });
  await assert.rejects(readAll(component.data), pattern);
  assert.equal(ended, false, 'a failed command never ends its data as if complete');
  let failure: SourceError | undefined;
  await assert.rejects(component.facts, (error: unknown) => {
    assert.ok(error instanceof SourceError);
    assert.match(error.message, pattern);
    failure = error;
    return true;
  });
  return failure as SourceError;
}

describe('command source: success', () => {
  it('streams stdout as the data; stderr goes to the debug log, not to the warnings', async () => {
    const debug: Array<{ message: string; fields?: Record<string, unknown> }> = [];
    const log: Logger = { ...silentLogger, debug: (message, fields) => debug.push({ message, fields }) };
    const component = await onlyComponent(
      command("printf 'REDIS0011 payload\\n'; echo 'rdb: 1 keys' >&2"),
      context(undefined, log),
    );
    assert.equal(component.name, 'redis');
    assert.equal(component.kind, 'command');
    assert.equal(component.extension, 'rdb');
    assert.equal((await readAll(component.data)).toString(), 'REDIS0011 payload\n');
    assert.deepEqual(await component.facts, { warnings: [], dumpTool: '/bin/sh -c' });
    assert.deepEqual(debug, [
      { message: 'command source stderr', fields: { source: 'redis', stderr: 'rdb: 1 keys\n' } },
    ]);
  });

  it('passes large output through whole', async () => {
    const component = await onlyComponent(command('yes backproof | head -c 20000000'), context());
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of component.data) {
      bytes += (chunk as Buffer).length;
      hash.update(chunk as Buffer);
    }
    assert.equal(bytes, 20_000_000);
    const expected = createHash('sha256')
      .update(Buffer.from('backproof\n'.repeat(2_000_000)))
      .digest('hex');
    assert.equal(hash.digest('hex'), expected);
    await component.facts;
  });

  it('runs in our environment with LC_ALL=C and stdin at /dev/null', async () => {
    process.env.BACKPROOF_TEST_PRIVATE = 'passed';
    try {
      const component = await onlyComponent(
        // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a JS template
        command('echo "$LC_ALL ${BACKPROOF_TEST_PRIVATE-unset}"; wc -c < /dev/stdin'),
        context(),
      );
      assert.equal((await readAll(component.data)).toString(), 'C passed\n0\n');
      await component.facts;
    } finally {
      delete process.env.BACKPROOF_TEST_PRIVATE;
    }
  });

  it('estimates 0 bytes and checks only that /bin/sh exists', async () => {
    const source = command('true');
    assert.equal(await source.estimateRawBytes(context()), 0);
    assert.deepEqual(await source.check(context()), []);
    assert.deepEqual(await shellFindings('redis', '/nonexistent/bin/sh'), [
      { fatal: true, message: 'source redis: /nonexistent/bin/sh is missing or not executable; it runs the command' },
    ]);
  });
});

describe('command source: failures', () => {
  it('a non-zero exit fails the component with the exit code and the stderr tail', async () => {
    const component = await onlyComponent(
      command("echo 'half a dump'; echo 'NOAUTH Authentication required.' >&2; exit 3"),
      context(),
    );
    const failure = await expectFailure(component, /exited with code 3/);
    assert.equal(failure.message, 'source redis: the command exited with code 3: NOAUTH Authentication required.');
    assert.equal(failure.source, 'redis');
    assert.ok(failure.cause instanceof CommandError);
    assert.equal(failure.cause.exitCode, 3);
  });

  it('exit 0 with no output is a failure: an empty dump is not a backup', async () => {
    const component = await onlyComponent(command('echo "nothing to dump" >&2'), context());
    await expectFailure(component, /exited 0 but wrote nothing to standard output.*: nothing to dump$/);
  });

  it('reading stdin gets end-of-file at once, so a command waiting for input cannot hang the run', async () => {
    const component = await onlyComponent(command('cat'), context());
    await expectFailure(component, /wrote nothing/);
  });

  it('death by a signal fails the component', async () => {
    const component = await onlyComponent(command('echo started; kill -9 $$'), context());
    await expectFailure(component, /the command was killed by SIGKILL/);
  });

  it('a timeout stops the command and its children and fails the component', async () => {
    const component = await onlyComponent(command('sleep 1000 & echo $!; wait', { timeout: 300 }), context());
    const grandchild = Number(await firstLine(component.data));
    await assert.rejects(readAll(component.data), /did not finish within 300 ms/);
    await assert.rejects(component.facts, /source redis: the command did not finish within 300 ms; it was stopped/);
    assert.ok(await waitUntilGone(grandchild), `sleep ${grandchild} survived the timeout`);
  });

  it('abort kills the whole process group, grandchildren included', async () => {
    const controller = new AbortController();
    const component = await onlyComponent(command('sh -c "sleep 1000" & echo $!; wait'), context(controller.signal));
    const child = Number(await firstLine(component.data));
    const reading = readAll(component.data);
    controller.abort(new Error('interrupted by SIGINT'));
    await assert.rejects(reading, /interrupted by SIGINT/);
    await assert.rejects(component.facts, /interrupted by SIGINT/);
    assert.ok(await waitUntilGone(child), `the command's child ${child} survived the abort`);
  });

  it('output not read to the end fails the component and stops the command', async () => {
    const component = await onlyComponent(command('echo $$; exec sleep 1000'), context());
    const pid = Number(await firstLine(component.data));
    component.data.destroy();
    await assert.rejects(component.facts, /not read to the end/);
    assert.ok(await waitUntilGone(pid));
  });
});
