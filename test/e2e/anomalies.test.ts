// Anomaly checks in real backup runs through the CLI: a dump that shrinks, a table that vanishes,
// rows that drop, text turned into random bytes; suspect sets, status, and `backproof ack`.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { jsonOf, makeSandbox, runCli, type Sandbox } from '../helpers/cli.js';
import { filesUnder } from '../helpers/files.js';

interface FindingJson {
  id: string;
  level: 'warning' | 'failure';
  component: string;
  metric: string;
  baseline: number;
  value: number;
  changeBp: number | null;
  message: string;
}

interface Report {
  status: string;
  exitCode: number;
  setId: string;
  suspect: boolean;
  anomalies: FindingJson[];
  warnings: string[];
  failures: { step: string; component?: string; message: string }[];
  steps: { name: string; status: string; message: string }[];
}

const idsOf = (findings: readonly FindingJson[]) => findings.map((f) => `${f.id} ${f.level}`);

/** Deterministic text that compresses about 2:1, like a dump of varied data. */
function dumpText(bytes: number): string {
  let text = '';
  let state = 12345;
  while (text.length < bytes) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    text += `INSERT INTO orders VALUES (${state}, 'customer-${state % 9973}', ${(state % 100000) / 100});\n`;
  }
  return text.slice(0, bytes);
}

describe('anomaly checks in backup runs', () => {
  let sandbox: Sandbox;
  const cli = (...args: string[]) => runCli(['--config', sandbox.configPath, ...args]);
  const backup = async (): Promise<Report> => {
    const result = await cli('backup', '--json');
    const report = jsonOf<Report>(result);
    assert.equal(result.code, report.exitCode, result.stderr);
    return report;
  };
  const manifestOf = async (setId: string) => {
    const path = (await filesUnder(sandbox.targetDir)).find((p) => p.endsWith(`${setId}/manifest.json`));
    assert.ok(path, `set ${setId} has a manifest`);
    return JSON.parse(await readFile(join(sandbox.targetDir, path), 'utf8')) as {
      suspect: boolean;
      anomalies: FindingJson[];
    };
  };

  beforeEach(async () => {
    sandbox = await makeSandbox('bp-anomalies-');
  });
  afterEach(async () => {
    await sandbox.cleanup();
  });

  it('a dump 60% smaller fails the run and is kept as suspect; ack makes it the new baseline', async () => {
    const dump = join(sandbox.dir, 'dump.sql');
    const original = dumpText(300_000);
    await writeFile(dump, original);
    await sandbox.writeConfig({
      sources: [{ name: 'main', type: 'command', command: `cat ${dump}`, extension: 'sql' }],
    });

    // First runs: too little history to judge, so no false alarms (defaults: at least 3 sets).
    const good: string[] = [];
    for (let run = 1; run <= 3; run++) {
      const report = await backup();
      assert.equal(report.status, 'success', JSON.stringify(report.failures));
      assert.deepEqual(report.anomalies, []);
      assert.equal(report.suspect, false);
      assert.equal((await manifestOf(report.setId)).suspect, false);
      good.push(report.setId);
    }

    await writeFile(dump, original.slice(0, 120_000));
    const shrunk = await backup();
    assert.equal(shrunk.exitCode, 1);
    assert.equal(shrunk.status, 'failure');
    assert.equal(shrunk.suspect, true);
    assert.deepEqual(idsOf(shrunk.anomalies), ['main:bytes failure', 'main:rawBytes failure']);
    const raw = shrunk.anomalies[1] as FindingJson;
    assert.deepEqual([raw.baseline, raw.value, raw.changeBp], [300_000, 120_000, -6000]);
    assert.deepEqual(
      shrunk.failures.map((f) => f.step),
      ['anomaly', 'anomaly'],
    );
    assert.match(shrunk.failures[0]?.message ?? '', /committed but marked suspect.*backproof ack main:bytes/);
    // Committed anyway (a faithful copy), with the findings in its manifest.
    const manifest = await manifestOf(shrunk.setId);
    assert.equal(manifest.suspect, true);
    assert.deepEqual(idsOf(manifest.anomalies), ['main:bytes failure', 'main:rawBytes failure']);

    const list = await cli('list');
    assert.equal(list.code, 0);
    assert.match(list.stdout, new RegExp(`${shrunk.setId} .*SUSPECT`));
    assert.doesNotMatch(list.stdout, new RegExp(`${good[2]} .*SUSPECT`));

    // `restore latest` passes over the suspect set to the newest good one, and says so (exit 3).
    const to = join(sandbox.dir, 'restored');
    const restored = await cli('restore', '--set', 'latest', '--to', to, '--json');
    assert.equal(restored.code, 3, restored.stderr);
    const restoreReport = jsonOf<{ setId: string; warnings: string[] }>(restored);
    assert.equal(restoreReport.setId, good[2]);
    assert.match(restoreReport.warnings.join('\n'), new RegExp(`suspect set ${shrunk.setId} was passed over`));
    const files = await filesUnder(to);
    assert.equal(files.length, 1, files.join(', '));
    assert.equal(await readFile(join(to, files[0] as string), 'utf8'), original);

    // Status: unhealthy while the findings are open.
    const status = await cli('status', '--json');
    assert.equal(status.code, 1);
    const statusJson = jsonOf<{ healthy: boolean; anomalies: (FindingJson & { setId: string })[] }>(status);
    assert.equal(statusJson.healthy, false);
    assert.deepEqual(
      statusJson.anomalies.map((f) => `${f.id} ${f.setId}`),
      [`main:bytes ${shrunk.setId}`, `main:rawBytes ${shrunk.setId}`],
    );
    const statusText = await cli('status');
    assert.equal(statusText.code, 1);
    assert.match(statusText.stdout, /UNHEALTHY/);
    assert.match(statusText.stdout, /anomaly main:bytes \(failure.*backproof ack main:bytes/);

    // An unknown id: exit 2, naming the open ones; nothing recorded.
    const unknown = await cli('ack', 'main:files');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /main:files: no such open anomaly finding/);
    assert.match(unknown.stderr, /main:bytes \(failure/);
    assert.match(unknown.stderr, /main:rawBytes \(failure/);
    const unknownJson = jsonOf<{ error: { problems: string[] } }>(await cli('ack', 'main:files', '--json'));
    assert.equal(unknownJson.error.problems.length, 2);

    // --set must name a set that exists: this host's history or a target must know it.
    const noSuchSet = await cli('ack', 'main:bytes', '--set', '20990101T000000Z-zzzzzz');
    assert.equal(noSuchSet.code, 2);
    assert.match(noSuchSet.stderr, /--set 20990101T000000Z-zzzzzz: set 20990101T000000Z-zzzzzz is not committed/);

    const ack = await cli('ack', 'main:bytes', 'main:rawBytes', '--set', shrunk.setId, '--json');
    assert.equal(ack.code, 0, ack.stderr);
    const ackJson = jsonOf<{ acknowledged: { id: string; raisedOn: string; baselineFrom: string }[]; open: unknown[] }>(
      ack,
    );
    assert.deepEqual(
      ackJson.acknowledged.map((a) => [a.id, a.raisedOn, a.baselineFrom]),
      [
        ['main:bytes', shrunk.setId, shrunk.setId],
        ['main:rawBytes', shrunk.setId, shrunk.setId],
      ],
    );
    assert.deepEqual(ackJson.open, []);
    const healthy = await cli('status', '--json');
    assert.equal(healthy.code, 0, healthy.stdout);
    assert.deepEqual(jsonOf<{ anomalies: unknown[] }>(healthy).anomalies, []);
    const again = await cli('ack', 'main:bytes');
    assert.equal(again.code, 0);
    assert.match(again.stdout, /already accepted/);

    // The new size is the baseline now: the next run is clean (without the ack it would fail again).
    const next = await backup();
    assert.equal(next.status, 'success', JSON.stringify(next.failures));
    assert.deepEqual(next.anomalies, []);
  });

  describe('a SQLite database', () => {
    let database: string;
    const sqlite = (sql: string) => execFileSync('sqlite3', [database, sql]);

    beforeEach(async () => {
      database = join(sandbox.dir, 'app.sqlite');
      // users and orders are small next to docs, so their changes do not move the file size much.
      sqlite(`
        CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, amount INTEGER);
        CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
          INSERT INTO users SELECT i, 'user ' || i FROM n;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
          INSERT INTO orders SELECT i, i * 7 FROM n;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
          INSERT INTO docs SELECT i, hex(randomblob(150)) FROM n;`);
      await sandbox.writeConfig({
        sources: [{ name: 'db', type: 'sqlite', path: database }],
        anomalies: { minHistory: 2 },
      });
    });

    it('rows of a table down 25% warn (exit 3) and status is unhealthy until a clean run; a table that vanishes fails the run and its set is committed as suspect', async () => {
      for (let run = 1; run <= 2; run++) assert.deepEqual((await backup()).anomalies, []);
      sqlite('DELETE FROM users WHERE id % 4 = 0;');
      const report = await backup();
      assert.equal(report.exitCode, 3);
      assert.equal(report.status, 'warning');
      assert.equal(report.suspect, false);
      assert.deepEqual(idsOf(report.anomalies), ['db:rows:main.users warning']);
      assert.deepEqual([report.anomalies[0]?.baseline, report.anomalies[0]?.value], [1000, 750]);
      assert.match(
        report.warnings.join('\n'),
        /row count of main\.users is 25% lower than usual.*backproof ack db:rows:main\.users/,
      );
      assert.equal((await manifestOf(report.setId)).suspect, false, 'a warning does not make the set suspect');

      const status = await cli('status', '--json');
      assert.equal(status.code, 1, 'a warning-level finding is open');
      assert.deepEqual(idsOf(jsonOf<{ anomalies: FindingJson[] }>(status).anomalies), ['db:rows:main.users warning']);

      // The rows come back: the next run is clean, and that closes the finding without an ack.
      sqlite(
        `WITH RECURSIVE n(i) AS (SELECT 4 UNION ALL SELECT i + 4 FROM n WHERE i < 1000)
           INSERT INTO users SELECT i, 'user ' || i FROM n;`,
      );
      const clean = await backup();
      assert.equal(clean.status, 'success', JSON.stringify(clean.warnings));
      assert.equal((await cli('status')).code, 0);

      // Then a table vanishes: a failure, and the set (a faithful copy) is committed as suspect.
      sqlite('DROP TABLE orders;');
      const vanished = await backup();
      assert.equal(vanished.exitCode, 1);
      assert.equal(vanished.status, 'failure');
      assert.deepEqual(idsOf(vanished.anomalies), ['db:table-vanished:main.orders failure']);
      assert.match(
        vanished.anomalies[0]?.message ?? '',
        /table main\.orders is missing; it was in each of the last 4 sets/,
      );
      assert.equal((await manifestOf(vanished.setId)).suspect, true);
      const failed = await cli('status', '--json');
      assert.equal(failed.code, 1);
    });
  });

  it('text replaced by random bytes of the same size: the compression ratio falls, a warning', async () => {
    const app = join(sandbox.dir, 'app');
    execFileSync('mkdir', [app]);
    const text = dumpText(400_000);
    await writeFile(join(app, 'notes.txt'), text);
    await sandbox.writeConfig({
      sources: [{ name: 'app', type: 'files', paths: [app] }],
      anomalies: { minHistory: 2 },
    });
    for (let run = 1; run <= 2; run++) assert.deepEqual((await backup()).anomalies, []);
    await writeFile(join(app, 'notes.txt'), randomBytes(text.length));
    const report = await backup();
    assert.equal(report.exitCode, 3);
    assert.equal(report.status, 'warning');
    const ratio = report.anomalies.find((f) => f.id === 'app:ratio');
    assert.ok(ratio, `a ratio finding among ${idsOf(report.anomalies).join(', ')}`);
    assert.equal(ratio.level, 'warning');
    assert.ok(ratio.value < ratio.baseline, 'the ratio fell');
    assert.match(ratio.message, /compression ratio is .* lower than usual.*ransomware/);
    assert.ok(
      report.anomalies.every((f) => f.level === 'warning' && f.metric !== 'rawBytes'),
      idsOf(report.anomalies).join(', '),
    );
  });
});
