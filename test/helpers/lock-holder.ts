// A separate process for the job lock tests: `lock-holder.ts <stateDir> <job> <command>`, then one
// command per stdin line (ping, acquire, release, inspect, cycle N, inspect-loop, stop), one JSON
// answer per stdout line.
import { createInterface } from 'node:readline';
import { LockedError } from '../../src/lib/errors.js';
import { acquireJobLock, inspectJobLock, type JobLock } from '../../src/lib/lock.js';

const [stateDir = '', job = '', command = ''] = process.argv.slice(2);
let lock: JobLock | undefined;
let inspecting: { inspections: number; held: number; stop: boolean } | undefined;

const answer = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value)}\n`);
};

function acquire(): unknown {
  try {
    lock = acquireJobLock(stateDir, job, command);
    return { ok: true, holder: lock.holder };
  } catch (error) {
    if (error instanceof LockedError)
      return { ok: false, error: error.name, message: error.message, holder: error.holder };
    return { ok: false, error: String(error) };
  }
}

/** Takes and releases the lock `times` times in a row, counting each way it went. */
function cycle(times: number): unknown {
  let acquired = 0;
  let locked = 0;
  for (let i = 0; i < times; i++) {
    try {
      acquireJobLock(stateDir, job, command).release();
      acquired++;
    } catch (error) {
      if (!(error instanceof LockedError)) throw error;
      locked++;
    }
  }
  return { acquired, locked };
}

/** Inspects in a loop that yields to stdin between rounds, until `stop`. */
function inspectLoop(): void {
  const state = { inspections: 0, held: 0, stop: false };
  inspecting = state;
  const round = (): void => {
    if (state.stop) {
      answer({ inspections: state.inspections, held: state.held });
      return;
    }
    for (let i = 0; i < 20; i++) {
      state.inspections++;
      if (inspectJobLock(stateDir, job).held) state.held++;
    }
    setImmediate(round);
  };
  setImmediate(round);
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const [verb, argument] = line.trim().split(/\s+/);
  switch (verb) {
    case 'ping':
      return answer({ ready: true, pid: process.pid });
    case 'acquire':
      return answer(acquire());
    case 'release':
      lock?.release();
      return answer({ ok: true });
    case 'inspect':
      return answer(inspectJobLock(stateDir, job));
    case 'cycle':
      return answer(cycle(Number(argument)));
    case 'inspect-loop':
      inspectLoop();
      return answer({ looping: true });
    case 'stop':
      if (inspecting) inspecting.stop = true;
      return;
    default:
      return answer({ error: `unknown command ${line}` });
  }
});
