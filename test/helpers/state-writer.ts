// A separate process writing to the state database, for the crash and concurrency tests.
//   state-writer.ts <stateDir> forever <job>   start a run, then write steps until killed
//   state-writer.ts <stateDir> batch <job> <n> after "go" on stdin, write n complete runs, then exit
// Answers are JSON lines on stdout.
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { openStateDb } from '../../src/state/store.js';

const [stateDir = '', mode = '', job = 'app', n = '0'] = process.argv.slice(2);
const answer = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value)}\n`);
};
const at = (second: number): string => new Date(Date.UTC(2025, 10, 4, 3, 0, 0) + second * 1000).toISOString();

const db = openStateDb(stateDir);
const hostId = db.hostId();

if (mode === 'forever') {
  const runId = db.startRun({ job, command: 'backup', startedAt: at(0), pid: process.pid, host: 'writer' });
  answer({ runId, hostId });
  for (let i = 1; ; i++) {
    db.recordStep(runId, { name: `step-${i}`, status: 'ok', startedAt: at(i), finishedAt: at(i), evidence: { i } });
    db.recordObjectVerification(runId, {
      target: 'disk',
      setId: 'set-1',
      object: `object-${i}.zst`,
      bytes: i,
      sha256: 'a'.repeat(64),
      level: 'reread',
      verifiedAt: at(i),
    });
    if (i % 50 === 0) answer({ written: i });
  }
} else if (mode === 'batch') {
  answer({ ready: true, hostId });
  const lines = createInterface({ input: process.stdin });
  await once(lines, 'line'); // "go": both writers start together
  const runIds: number[] = [];
  for (let i = 0; i < Number(n); i++) {
    const runId = db.startRun({ job, command: 'backup', startedAt: at(i), pid: process.pid, host: 'writer' });
    for (const name of ['preflight', 'dump', 'verify']) {
      db.recordStep(runId, { name, status: 'ok', startedAt: at(i), finishedAt: at(i) });
    }
    db.recordComponent(runId, {
      target: 'disk',
      setId: `set-${i}`,
      name: 'main.app',
      kind: 'mariadb',
      object: 'main.app.sql.zst',
      bytes: 1000 + i,
      sha256: 'b'.repeat(64),
      rawBytes: 5000 + i,
      rawSha256: 'c'.repeat(64),
    });
    db.finishRun(runId, { status: 'success', exitCode: 0, finishedAt: at(i + 1), bytes: 1000 + i, report: { i } });
    runIds.push(runId);
  }
  db.close();
  answer({ done: true, runIds });
  lines.close();
} else {
  throw new Error(`unknown mode ${mode}`);
}
