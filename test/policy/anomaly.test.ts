import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Ack,
  type ComponentSample,
  defaultThresholds,
  detectAnomalies,
  type Finding,
  findingId,
  type SetSample,
} from '../../src/policy/anomaly.js';
import { isSetId, newSetId } from '../../src/set/layout.js';

const MAX = Number.MAX_SAFE_INTEGER;
const MB = 1_000_000;
const TODAY = 100;

/** The real set id format, one set a day at 03:00 UTC, with a tail that is the same on every call. */
function setIdOfDay(day: number): string {
  const stamp = newSetId(new Date(Date.UTC(2025, 0, 1 + day, 3))).slice(0, 'YYYYMMDDTHHMMSSZ'.length);
  return `${stamp}-d${String(day).padStart(5, '0')}`;
}

/** History, newest first: `components(age)` for the sets 1, 2, … days before today. */
function historyOf(count: number, components: (age: number) => ComponentSample[]): SetSample[] {
  return Array.from({ length: count }, (_, i) => ({ setId: setIdOfDay(TODAY - 1 - i), components: components(i + 1) }));
}

function currentOf(...components: ComponentSample[]): SetSample {
  return { setId: setIdOfDay(TODAY), components };
}

function db(bytes: number, tables: Record<string, number>, rawBytes = bytes * 5): ComponentSample {
  return { name: 'main.app', bytes, rawBytes, tables };
}

function tree(bytes: number, rawBytes: number, files: number): ComponentSample {
  return { name: 'app', bytes, rawBytes, files };
}

const detect = (current: SetSample, history: readonly SetSample[], acks: readonly Ack[] = []) =>
  detectAnomalies(current, history, defaultThresholds, acks);

const ids = (findings: readonly Finding[]) => findings.map((f) => `${f.id} ${f.level}`);

const TABLES = { 'app.users': 1000, 'app.orders': 5000 };

describe('detectAnomalies: the cases of the issue', () => {
  it('fails a database dump that shrinks by 60%, with a message in human units', () => {
    // Unsorted history; its median is 103.0 MB.
    const sizes = [101, 102, 103, 103.5, 104, 105, 100].map((m) => m * MB);
    const history = historyOf(7, (age) => [db(sizes[age - 1] as number, TABLES)]);
    const findings = detect(currentOf(db(41_200_000, TABLES)), history);
    assert.deepEqual(findings, [
      {
        id: 'main.app:bytes',
        component: 'main.app',
        metric: 'bytes',
        level: 'failure',
        baseline: 103 * MB,
        value: 41_200_000,
        baselineSets: 7,
        changeBp: -6000,
        message: 'main.app: compressed size is 60% smaller than usual (41.2 MB, median of the last 7 sets 103.0 MB)',
      },
      {
        id: 'main.app:rawBytes',
        component: 'main.app',
        metric: 'rawBytes',
        level: 'failure',
        baseline: 515 * MB,
        value: 206 * MB,
        baselineSets: 7,
        changeBp: -6000,
        message: 'main.app: uncompressed size is 60% smaller than usual (206.0 MB, median of the last 7 sets 515.0 MB)',
      },
    ]);
  });

  it('fails a table that vanished from a database', () => {
    const history = historyOf(7, () => [db(100 * MB, TABLES)]);
    const findings = detect(currentOf(db(100 * MB, { 'app.users': 1000 })), history);
    assert.deepEqual(findings, [
      {
        id: 'main.app:table-vanished:app.orders',
        component: 'main.app',
        metric: 'table-vanished',
        table: 'app.orders',
        level: 'failure',
        baseline: 5000,
        value: 0,
        baselineSets: 7,
        changeBp: -10000,
        message: 'main.app: table app.orders is missing; it was in each of the last 7 sets (median 5,000 rows)',
      },
    ]);
  });

  it('warns when the rows of a table are down 25%', () => {
    const history = historyOf(7, () => [db(100 * MB, TABLES)]);
    const findings = detect(currentOf(db(100 * MB, { 'app.users': 750, 'app.orders': 5000 })), history);
    assert.deepEqual(findings, [
      {
        id: 'main.app:rows:app.users',
        component: 'main.app',
        metric: 'rows',
        table: 'app.users',
        level: 'warning',
        baseline: 1000,
        value: 750,
        baselineSets: 7,
        changeBp: -2500,
        message: 'main.app: row count of app.users is 25% lower than usual (750, median of the last 7 sets 1,000)',
      },
    ]);
  });

  it('warns when text is replaced by random bytes of the same size (the compression ratio falls)', () => {
    // 10 MB of text compressed 4x; then the same 10 MB encrypted, which zstd cannot shrink.
    const history = historyOf(7, () => [tree(2.5 * MB, 10 * MB, 1200)]);
    const findings = detect(currentOf(tree(10_010_000, 10 * MB, 1200)), history);
    assert.deepEqual(ids(findings), ['app:bytes warning', 'app:ratio warning']);
    const ratio = findings.find((f) => f.metric === 'ratio');
    assert.deepEqual(ratio, {
      id: 'app:ratio',
      component: 'app',
      metric: 'ratio',
      level: 'warning',
      baseline: 40000,
      value: 9990,
      baselineSets: 7,
      changeBp: -7502,
      message:
        'app: compression ratio is 75% lower than usual (0.99x, median of the last 7 sets 4.00x); ' +
        'data that stops compressing may have been encrypted (ransomware?)',
    });
  });

  it('warns on a ratio fall even when the compressed size barely moves', () => {
    // A third of the raw data no longer compresses, and less of it is left: bytes look normal, the ratio does not.
    const history = historyOf(7, () => [tree(10 * MB, 40 * MB, 1200)]);
    const findings = detect(currentOf(tree(10 * MB, 28 * MB, 1200)), history);
    assert.deepEqual(ids(findings), ['app:rawBytes warning', 'app:ratio warning']);
  });

  it('raises no false alarm on the first runs, whatever the change, and starts at minHistory sets', () => {
    const huge = (age: number) => [db(100 * MB, TABLES), tree(9 * MB, 10 * MB, 10_000 + age)];
    const strange = currentOf(db(1, { 'app.new': 3 }, 1));
    for (const count of [0, 1, 2]) {
      assert.deepEqual(detect(strange, historyOf(count, huge)), [], `${count} sets of history`);
    }
    assert.deepEqual(ids(detect(strange, historyOf(3, huge))), [
      'main.app:bytes failure',
      'main.app:rawBytes failure',
      'main.app:ratio warning',
      'main.app:table-vanished:app.orders failure',
      'main.app:table-vanished:app.users failure',
      'app:component-vanished failure',
    ]);
  });

  it('judges each component only once it has minHistory sets of its own', () => {
    // `app` was added two runs ago: it has 2 sets of history, main.app has 7.
    const history = historyOf(7, (age) =>
      age <= 2 ? [db(100 * MB, TABLES), tree(10, 50, 3)] : [db(100 * MB, TABLES)],
    );
    assert.deepEqual(detect(currentOf(db(100 * MB, TABLES), tree(1, 1, 0)), history), []);
  });
});

describe('detectAnomalies: thresholds', () => {
  const history = historyOf(7, () => [db(10_000, {})]);
  const levelAt = (bytes: number) =>
    detect(currentOf(db(bytes, {}, 50_000)), history).find((f) => f.metric === 'bytes')?.level ?? 'none';

  it('warns from exactly a 20% drop, fails from exactly 50%', () => {
    assert.equal(levelAt(8001), 'none');
    assert.equal(levelAt(8000), 'warning');
    assert.equal(levelAt(5001), 'warning');
    assert.equal(levelAt(5000), 'failure');
    assert.equal(levelAt(0), 'failure');
  });

  it('warns from exactly 100% growth, and says so', () => {
    assert.equal(levelAt(19_999), 'none');
    assert.equal(levelAt(20_000), 'warning');
    const grown = detect(currentOf(db(35_000, {}, 50_000)), history).find((f) => f.metric === 'bytes');
    assert.equal(grown?.changeBp, 25000);
    assert.equal(
      grown?.message,
      'main.app: compressed size is 250% larger than usual (35.0 kB, median of the last 7 sets 10.0 kB)',
    );
  });

  it('uses the thresholds it is given', () => {
    const strict = { ...defaultThresholds, dropWarnBp: 500, dropFailBp: 1000, growthWarnBp: 500 };
    const at = (bytes: number) => detectAnomalies(currentOf(db(bytes, {}, 50_000)), history, strict, [])[0]?.level;
    assert.equal(at(9501), undefined);
    assert.equal(at(9500), 'warning');
    assert.equal(at(9000), 'failure');
    assert.equal(at(10_500), 'warning');
  });

  it('prints fractional percentages rounded toward zero, never past the threshold they crossed', () => {
    const h = historyOf(3, () => [db(3, { 't.t': 3 }, 3)]);
    const [rows] = detect(currentOf(db(3, { 't.t': 2 }, 3)), h);
    assert.equal(rows?.changeBp, -3333);
    assert.equal(
      rows?.message,
      'main.app: row count of t.t is 33.3% lower than usual (2, median of the last 3 sets 3)',
    );
  });

  it('refuses thresholds that are not positive integers, or a minHistory no window can reach', () => {
    const current = currentOf(db(1, {}));
    for (const bad of [
      { window: 0 },
      { minHistory: 0 },
      { dropWarnBp: 12.5 },
      { dropFailBp: -1 },
      { growthWarnBp: Number.NaN },
      { ratioJumpWarnBp: Number.POSITIVE_INFINITY },
    ]) {
      const key = Object.keys(bad)[0] as string;
      assert.throws(() => detectAnomalies(current, [], { ...defaultThresholds, ...bad }, []), {
        name: 'RangeError',
        message: new RegExp(`${key} must be a positive integer`),
      });
    }
    assert.throws(() => detectAnomalies(current, [], { ...defaultThresholds, minHistory: 8 }, []), {
      name: 'RangeError',
      message: /minHistory \(8\) exceeds window \(7\)/,
    });
  });
});

describe('detectAnomalies: baselines', () => {
  it('takes the median, so one odd set in the window moves nothing', () => {
    const sizes = [100, 100, 3, 100, 100, 900, 100];
    const history = historyOf(7, (age) => [db(sizes[age - 1] as number, {}, 500)]);
    assert.deepEqual(detect(currentOf(db(100, {}, 500)), history), []);
  });

  it('uses only the newest `window` sets', () => {
    // Eight old sets at 1 GB would make 100 MB a 90% drop, but they are outside the window of 7.
    const history = historyOf(15, (age) => [db(age <= 7 ? 100 * MB : 1000 * MB, {})]);
    assert.deepEqual(detect(currentOf(db(100 * MB, {})), history), []);
    const wide = detectAnomalies(currentOf(db(100 * MB, {})), history, { ...defaultThresholds, window: 15 }, []);
    assert.deepEqual(ids(wide), ['main.app:bytes failure', 'main.app:rawBytes failure']);
    assert.equal(wide[0]?.baseline, 1000 * MB);
    assert.equal(wide[0]?.baselineSets, 15);
  });

  it('with an even count, takes the mean of the two middle values, rounded down', () => {
    // Sorted: 100 200 300 400 → 250. Lower-middle would say 200, and 125 would only warn.
    const sizes = [100, 400, 200, 300];
    const history = historyOf(4, (age) => [db(sizes[age - 1] as number, {}, 1000)]);
    const [bytes] = detect(currentOf(db(125, {}, 1000)), history);
    assert.equal(bytes?.baseline, 250);
    assert.equal(bytes?.baselineSets, 4);
    assert.equal(bytes?.level, 'failure');
    const odd = historyOf(4, (age) => [db([101, 400, 200, 300][age - 1] as number, {}, 1000)]);
    assert.equal(detect(currentOf(db(1, {}, 1000)), odd)[0]?.baseline, 250); // (200 + 300) / 2
    const rounded = historyOf(4, (age) => [db([100, 401, 200, 301][age - 1] as number, {}, 1000)]);
    assert.equal(detect(currentOf(db(1, {}, 1000)), rounded)[0]?.baseline, 250); // 501 / 2, rounded down
  });

  it('judges a component against the sets that hold it, skipping sets without it', () => {
    // main.app is missing from every other set (its source failed then): the window is the 6 sets that hold it.
    const history = historyOf(10, (age) =>
      age % 2 === 0 || age > 8 ? [db(100 * MB, {}), tree(1, 1, 1)] : [tree(1, 1, 1)],
    );
    const findings = detect(currentOf(db(10 * MB, {}), tree(1, 1, 1)), history);
    assert.deepEqual(ids(findings), ['main.app:bytes failure', 'main.app:rawBytes failure']);
    assert.equal(findings[0]?.baselineSets, 6);
  });
});

describe('detectAnomalies: integers up to 2^53', () => {
  it('compares sizes near 2^50 exactly, at the 20% boundary', () => {
    const baseline = 5 * (2 ** 50 + 1); // 5,629,499,534,213,125: a 20% drop is exactly 4·(2^50 + 1)
    const history = historyOf(7, () => [db(baseline, {}, baseline)]);
    const at = (bytes: number) => detect(currentOf(db(bytes, {}, baseline)), history);
    assert.deepEqual(at(4 * (2 ** 50 + 1) + 1), []);
    const [drop] = at(4 * (2 ** 50 + 1));
    assert.equal(drop?.level, 'warning');
    assert.equal(drop?.baseline, 5_629_499_534_213_125);
    assert.equal(drop?.value, 4_503_599_627_370_500);
    assert.equal(drop?.changeBp, -2000);
    assert.equal(
      drop?.message,
      'main.app: compressed size is 20% smaller than usual (4.5 PB, median of the last 7 sets 5.6 PB)',
    );
  });

  it('takes an even median near 2^53 without losing the last unit (floats would)', () => {
    // (MAX-1 + MAX-2) / 2 rounded down is MAX-2; in floats the sum rounds and the result is MAX-1.
    const sizes = [MAX, MAX - 1, MAX - 2, MAX - 3];
    const history = historyOf(4, (age) => [db(sizes[age - 1] as number, { 'big.t': sizes[age - 1] as number }, MAX)]);
    const findings = detect(currentOf(db(0, { 'big.t': 0 }, MAX)), history);
    assert.deepEqual(ids(findings), ['main.app:bytes failure', 'main.app:rows:big.t failure']);
    for (const finding of findings) {
      assert.equal(finding.baseline, MAX - 2);
      assert.equal(finding.changeBp, -10000);
    }
    assert.equal(
      findings[1]?.message,
      `main.app: row count of big.t is 100% lower than usual (0, median of the last 4 sets 9,007,199,254,740,989)`,
    );
  });

  it('grows by 2^50 from a tiny baseline with an exact percentage and no exponent', () => {
    const history = historyOf(3, () => [tree(1, 1, 1)]);
    const [files] = detect(currentOf(tree(1, 1, 2 ** 50)), history);
    assert.equal(files?.changeBp, MAX, 'capped: (2^50 - 1) × 10000 basis points passes 2^53');
    assert.equal(
      files?.message,
      'app: file count is 112,589,990,684,262,300% higher than usual (1,125,899,906,842,624, median of the last 3 sets 1)',
    );
  });

  it('caps a compression ratio that passes 2^53 basis points, and still compares it exactly', () => {
    const history = historyOf(3, () => [tree(1, MAX, 5)]);
    const ratio = detect(currentOf(tree(2, MAX, 5)), history).find((f) => f.metric === 'ratio');
    assert.equal(ratio?.metric, 'ratio');
    assert.equal(ratio?.baseline, MAX);
    assert.equal(ratio?.value, MAX);
    assert.equal(ratio?.changeBp, -5000);
    assert.match(
      ratio?.message ?? '',
      /^app: compression ratio is 50% lower than usual \(4,503,599,627,370,495\.50x, /,
    );
  });
});

describe('detectAnomalies: zero', () => {
  it('treats 0 → 5 rows as growth, with no percentage and no division by zero', () => {
    const history = historyOf(7, () => [db(100, { 'app.jobs': 0 })]);
    const findings = detect(currentOf(db(100, { 'app.jobs': 5 })), history);
    assert.deepEqual(findings, [
      {
        id: 'main.app:rows:app.jobs',
        component: 'main.app',
        metric: 'rows',
        table: 'app.jobs',
        level: 'warning',
        baseline: 0,
        value: 5,
        baselineSets: 7,
        changeBp: null,
        message: 'main.app: row count of app.jobs is 5, up from 0 (median of the last 7 sets 0)',
      },
    ]);
  });

  it('finds nothing when zero stays zero, and no ratio for 0-byte components', () => {
    const history = historyOf(7, () => [{ name: 'empty', bytes: 0, rawBytes: 0, files: 0, tables: { 't.t': 0 } }]);
    assert.deepEqual(
      detect(currentOf({ name: 'empty', bytes: 0, rawBytes: 0, files: 0, tables: { 't.t': 0 } }), history),
      [],
    );
    // Bytes appear: growth from nothing; the ratio has no baseline (every history set had 0 bytes).
    const grown = detect(currentOf({ name: 'empty', bytes: 13, rawBytes: 0, files: 0, tables: { 't.t': 0 } }), history);
    assert.deepEqual(ids(grown), ['empty:bytes warning']);
    assert.equal(grown[0]?.message, 'empty: compressed size is 13 B, up from 0 B (median of the last 7 sets 0 B)');
  });

  it('fails a dump that became empty', () => {
    const history = historyOf(7, () => [db(100 * MB, TABLES)]);
    const findings = detect(currentOf(db(13, { 'app.users': 0, 'app.orders': 0 }, 0)), history);
    assert.deepEqual(ids(findings), [
      'main.app:bytes failure',
      'main.app:rawBytes failure',
      'main.app:ratio warning',
      'main.app:rows:app.orders failure',
      'main.app:rows:app.users failure',
    ]);
    assert.ok(findings.every((f) => f.value === 0 || f.metric === 'bytes'));
  });
});

describe('detectAnomalies: vanished things', () => {
  it('does not fail a table that was not in every set of the window', () => {
    const history = historyOf(7, (age) => [db(100 * MB, age === 4 ? { 'app.users': 1000 } : TABLES)]);
    assert.deepEqual(detect(currentOf(db(100 * MB, { 'app.users': 1000 })), history), []);
  });

  it('ignores sets that did not count tables, and new tables', () => {
    const history = historyOf(7, (age) => [
      age <= 3 ? db(100 * MB, TABLES) : { name: 'main.app', bytes: 100 * MB, rawBytes: 500 * MB },
    ]);
    const findings = detect(currentOf(db(100 * MB, { 'app.users': 1000, 'app.new': 5 })), history);
    assert.deepEqual(ids(findings), ['main.app:table-vanished:app.orders failure']);
    assert.equal(findings[0]?.baselineSets, 3);
  });

  it('handles a table called `constructor`', () => {
    const history = historyOf(3, () => [db(100, { constructor: 10 })]);
    assert.deepEqual(detect(currentOf(db(100, { constructor: 10 })), history), []);
    assert.deepEqual(ids(detect(currentOf(db(100, {})), history)), ['main.app:table-vanished:constructor failure']);
    // And history without it is not read as Object.prototype.constructor.
    assert.deepEqual(
      detect(
        currentOf(db(100, { constructor: 10 })),
        historyOf(3, () => [db(100, {})]),
      ),
      [],
    );
  });

  it('fails a component that vanished, and ignores a new one', () => {
    const history = historyOf(7, () => [db(100 * MB, TABLES), tree(2.5 * MB, 10 * MB, 1200)]);
    const findings = detect(currentOf(db(100 * MB, TABLES), { name: 'redis', bytes: 5, rawBytes: 9 }), history);
    assert.deepEqual(findings, [
      {
        id: 'app:component-vanished',
        component: 'app',
        metric: 'component-vanished',
        level: 'failure',
        baseline: 2.5 * MB,
        value: 0,
        baselineSets: 7,
        changeBp: -10000,
        message: 'app: component is missing; it was in each of the last 7 sets (median 2.5 MB compressed)',
      },
    ]);
  });

  it('does not fail a component that was not in every set of the window', () => {
    const history = historyOf(9, (age) => (age === 7 ? [db(100 * MB, TABLES)] : [db(100 * MB, TABLES), tree(1, 1, 1)]));
    assert.deepEqual(detect(currentOf(db(100 * MB, TABLES)), history), []);
    // The gap slides out of a window of 6: now it is in all of them.
    const narrower = detectAnomalies(currentOf(db(100 * MB, TABLES)), history, { ...defaultThresholds, window: 6 }, []);
    assert.deepEqual(ids(narrower), ['app:component-vanished failure']);
  });
});

describe('detectAnomalies: ack', () => {
  it('clears a warning once acked on the set that raised it', () => {
    // Yesterday's set S had 750 rows (a warning, so S was committed as usual and is history).
    const history = historyOf(7, (age) => [
      db(100 * MB, age === 1 ? { 'app.users': 750, 'app.orders': 5000 } : TABLES),
    ]);
    const current = currentOf(db(100 * MB, { 'app.users': 750, 'app.orders': 5000 }));
    assert.deepEqual(ids(detect(current, history)), ['main.app:rows:app.users warning']);
    const ack: Ack = { findingId: 'main.app:rows:app.users', setId: history[0]?.setId as string };
    assert.deepEqual(detect(current, history, [ack]), []);
  });

  it('clears only the acked finding', () => {
    const history = historyOf(7, (age) => [
      db(100 * MB, age === 1 ? { 'app.users': 750, 'app.orders': 5000 } : TABLES),
    ]);
    const current = currentOf(db(100 * MB, { 'app.users': 750, 'app.orders': 2000 }));
    const ack: Ack = { findingId: 'main.app:rows:app.users', setId: history[0]?.setId as string };
    assert.deepEqual(ids(detect(current, history, [ack])), ['main.app:rows:app.orders failure']);
    const elsewhere: Ack = { findingId: 'other.db:rows:app.users', setId: history[0]?.setId as string };
    assert.deepEqual(ids(detect(current, history, [elsewhere])), [
      'main.app:rows:app.orders failure',
      'main.app:rows:app.users warning',
    ]);
  });

  it('accepts a failure whose (suspect) set is not in history, then judges against the new normal', () => {
    // Day 99's set S dropped to 41.2 MB: failure, committed as suspect, so history skips it.
    const old = (age: number) => ({ setId: setIdOfDay(TODAY - 2 - age), components: [db(103 * MB, TABLES)] });
    const suspectSetId = setIdOfDay(TODAY - 1);
    const history = Array.from({ length: 7 }, (_, i) => old(i));
    const acks: Ack[] = [
      { findingId: 'main.app:bytes', setId: suspectSetId },
      { findingId: 'main.app:rawBytes', setId: suspectSetId },
    ];
    const current = currentOf(db(41_200_000, TABLES));
    assert.deepEqual(ids(detect(current, history)), ['main.app:bytes failure', 'main.app:rawBytes failure']);
    assert.deepEqual(detect(current, history, acks), [], 'no set since the ack: nothing to compare with');
    assert.deepEqual(
      detect(current, history, acks.slice(0, 1)).map((f) => f.id),
      ['main.app:rawBytes'],
    );

    // The next run: the set after S is history, and it is the whole baseline.
    const after = [{ setId: setIdOfDay(TODAY), components: [db(41_200_000, TABLES)] }, ...history];
    const next = (bytes: number) => ({ setId: setIdOfDay(TODAY + 1), components: [db(bytes, TABLES)] });
    assert.deepEqual(detect(next(41_200_000), after, acks), []);
    const again = detect(next(16_480_000), after, acks);
    assert.deepEqual(ids(again), ['main.app:bytes failure', 'main.app:rawBytes failure']);
    assert.equal(again[0]?.baselineSets, 1);
    assert.equal(again[0]?.message, 'main.app: compressed size is 60% smaller than usual (16.5 MB, last set 41.2 MB)');
  });

  it('uses the newest ack of a finding, and the sets since it', () => {
    const sizes = [60, 60, 100, 100, 100, 100, 100];
    const history = historyOf(7, (age) => [db((sizes[age - 1] as number) * MB, {}, 500 * MB)]);
    const current = currentOf(db(60 * MB, {}, 500 * MB));
    assert.deepEqual(ids(detect(current, history)), ['main.app:bytes warning']);
    const acks: Ack[] = [
      { findingId: 'main.app:bytes', setId: history[5]?.setId as string },
      { findingId: 'main.app:bytes', setId: history[1]?.setId as string },
    ];
    assert.deepEqual(detect(current, history, acks), []);
    // Against the two sets since the newer ack, 40 MB is a 33% drop.
    const [drop] = detect(currentOf(db(40 * MB, {}, 500 * MB)), history, acks);
    assert.equal(drop?.baselineSets, 2);
    assert.equal(drop?.baseline, 60 * MB);
    assert.equal(drop?.level, 'warning');
  });

  it('clears a vanished table and a vanished component', () => {
    const history = historyOf(7, () => [db(100 * MB, TABLES), tree(1, 1, 1)]);
    const current = currentOf(db(100 * MB, { 'app.users': 1000 }));
    assert.deepEqual(ids(detect(current, history)), [
      'main.app:table-vanished:app.orders failure',
      'app:component-vanished failure',
    ]);
    const acks = [
      { findingId: findingId('main.app', 'table-vanished', 'app.orders'), setId: current.setId },
      { findingId: findingId('app', 'component-vanished'), setId: current.setId },
    ];
    assert.deepEqual(detect(current, history, acks), []);
    // Later runs, with the acked set in history, stay quiet too.
    const later = { setId: setIdOfDay(TODAY + 1), components: current.components };
    assert.deepEqual(detect(later, [current, ...history], acks), []);
  });
});

describe('detectAnomalies: inputs', () => {
  it('refuses sizes and counts that are not non-negative safe integers, naming the set and component', () => {
    const history = historyOf(3, () => [db(100, TABLES)]);
    for (const [bad, field] of [
      [{ ...db(100, {}), bytes: -1 }, 'bytes'],
      [{ ...db(100, {}), bytes: 1.5 }, 'bytes'],
      [{ ...db(100, {}), rawBytes: 2 ** 53 }, 'rawBytes'],
      [{ ...tree(1, 1, 1), files: Number.NaN }, 'files'],
      [db(100, { 'app.users': 2.9094e8 + 0.5 }), 'rows of app.users'],
    ] as const) {
      assert.throws(() => detect(currentOf(bad), history), {
        name: 'RangeError',
        message: new RegExp(
          `set ${currentOf().setId}, component ${bad.name}: ${field} must be a non-negative safe integer`,
        ),
      });
    }
    const badHistory = [...history, { setId: 'old', components: [{ ...db(100, {}), bytes: -5 }] }];
    assert.throws(() => detect(currentOf(db(100, TABLES)), badHistory), /set old, component main\.app: bytes/);
  });

  it('uses real set ids in these tests', () => {
    assert.ok(isSetId(setIdOfDay(TODAY)));
  });
});

/** mulberry32: a small seeded generator, so a failing case can be replayed. */
function randomSource(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

interface SteadyCase {
  current: SetSample;
  history: SetSample[];
  /** The bytes every set of the case jitters around, per component. */
  baseBytes: Map<string, bigint>;
}

/**
 * A random job whose every metric stays within ±5% of its own level: sizes from 0 to 2^48 (raw up to
 * 20× that), row and file counts from 0 to 2^50, 0 to 12 sets of history.
 */
function steadyCase(next: () => number): SteadyCase {
  const below = (bits: number): bigint => {
    const wide = (BigInt(next()) << 32n) | BigInt(next());
    return bits === 0 ? 0n : wide % (1n << BigInt(bits));
  };
  const anyUpTo = (maxBits: number) => below(next() % (maxBits + 1));
  const jitter = (level: bigint) => level + (level * BigInt((next() % 11) - 5)) / 100n;
  const shapes = Array.from({ length: 1 + (next() % 4) }, (_, i) => {
    const bytes = anyUpTo(48);
    const tables = Array.from({ length: next() % 5 }, (_, t) => [`s.t${t}`, anyUpTo(50)] as const);
    return {
      name: `c${i}`,
      bytes,
      rawBytes: bytes * BigInt(1 + (next() % 20)),
      files: next() % 2 === 0 ? anyUpTo(50) : undefined,
      tables: next() % 3 === 0 ? undefined : tables,
    };
  });
  const sample = (): ComponentSample[] =>
    shapes.map((s) => ({
      name: s.name,
      bytes: Number(jitter(s.bytes)),
      rawBytes: Number(jitter(s.rawBytes)),
      ...(s.files === undefined ? {} : { files: Number(jitter(s.files)) }),
      ...(s.tables === undefined
        ? {}
        : { tables: Object.fromEntries(s.tables.map(([t, r]) => [t, Number(jitter(r))])) }),
    }));
  return {
    current: currentOf(...sample()),
    history: historyOf(next() % 13, sample),
    baseBytes: new Map(shapes.map((s) => [s.name, s.bytes])),
  };
}

describe('detectAnomalies: properties', () => {
  it('never finds anything in a steady history (2000 random jobs)', () => {
    const next = randomSource(20251104);
    for (let i = 0; i < 2000; i++) {
      const { current, history } = steadyCase(next);
      assert.deepEqual(detect(current, history), [], `case ${i}: ${JSON.stringify({ current, history })}`);
    }
  });

  it('never finds anything when every set is identical, whatever the values', () => {
    const next = randomSource(7);
    for (let i = 0; i < 500; i++) {
      const { current, history } = steadyCase(next);
      const same = history.map((set) => ({ ...set, components: current.components }));
      assert.deepEqual(detect(current, same), [], `case ${i}`);
    }
  });

  it('always fails the same jobs when a component drops to 40%, with messages free of exponents', () => {
    const next = randomSource(424242);
    let judged = 0;
    for (let i = 0; i < 2000; i++) {
      const { current, history, baseBytes } = steadyCase(next);
      const victim = current.components[0] as ComponentSample;
      const level = baseBytes.get(victim.name) ?? 0n;
      if (history.length < 3 || level < 100n) continue;
      const shrunk = {
        ...current,
        components: [{ ...victim, bytes: Number((level * 40n) / 100n) }, ...current.components.slice(1)],
      };
      const findings = detect(shrunk, history);
      assert.ok(
        findings.some((f) => f.id === `${victim.name}:bytes` && f.level === 'failure'),
        `case ${i}: ${JSON.stringify(findings)}`,
      );
      for (const f of findings) assert.doesNotMatch(f.message, /\de[+-]?\d|NaN|Infinity|undefined/);
      judged++;
    }
    assert.ok(judged > 500, `only ${judged} cases had enough history`);
  });
});
