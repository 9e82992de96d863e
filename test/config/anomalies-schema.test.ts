// The `anomalies` block of the config: percentages become basis points, and every mistake is
// reported with its key path before a run could trip over it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jobConfigSchema } from '../../src/config/schema.js';
import { thresholdsOf } from '../../src/core/anomaly-check.js';
import { defaultThresholds } from '../../src/policy/anomaly.js';

const minimal = {
  job: 'shop',
  stateDir: '/var/lib/backproof',
  sources: [{ name: 'app', type: 'files', paths: ['/var/www/app'] }],
  targets: [{ name: 'disk', type: 'local', path: '/var/backups' }],
};

function problems(anomalies: unknown): string[] {
  const result = jobConfigSchema.safeParse({ ...minimal, anomalies });
  return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('config: anomalies', () => {
  it("defaults to the engine's own defaults", () => {
    const config = jobConfigSchema.parse(minimal);
    assert.equal(config.anomalies.enabled, true);
    assert.deepEqual(thresholdsOf(config.anomalies), defaultThresholds);
  });

  it('reads percentages as basis points, and keeps what is not written at its default', () => {
    const config = jobConfigSchema.parse({
      ...minimal,
      anomalies: { dropWarn: '12.5%', dropFail: '101%', growthWarn: '250%', ratioJumpWarn: 40, window: 14 },
    });
    assert.deepEqual(config.anomalies, {
      enabled: true,
      window: 14,
      minHistory: 3,
      dropWarn: 1250,
      dropFail: 10100,
      growthWarn: 25000,
      ratioJumpWarn: 4000,
    });
  });

  it('reports every mistake with its key path', () => {
    assert.deepEqual(problems({ dropWarn: '0%' }), ['anomalies.dropWarn: is 0%; write a threshold above 0%, like 20%']);
    assert.deepEqual(problems({ dropWarn: '120%' }), [
      'anomalies.dropWarn: 120% is more than 100%; write at most 100%',
    ]);
    assert.match(problems({ growthWarn: 'lots' }).join('\n'), /^anomalies\.growthWarn: "lots" is not a percentage/);
    assert.deepEqual(problems({ minHistory: 8 }), [
      'anomalies.minHistory: 8 is more than window (7), so no baseline could ever form; lower minHistory or raise window',
    ]);
    assert.equal(problems({ window: 0 }).length, 1);
    assert.match(problems({ window: 2.5 })[0] ?? '', /^anomalies\.window: /);
    assert.match(problems({ thresholds: {} })[0] ?? '', /^anomalies: .*"thresholds"/);
    assert.match(problems({ enabled: 'yes' })[0] ?? '', /^anomalies\.enabled: /);
  });
});
