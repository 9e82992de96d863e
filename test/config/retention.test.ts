// The retention keys of a target: every kind takes them; wrong counts, unknown time zones and
// unknown rules are config errors with their key path, caught at load time, not at prune time.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/lib/errors.js';

const head = `job: demo
stateDir: /tmp/state
sources: [{ name: app, type: command, command: "true" }]
`;

function problemsOf(text: string): readonly string[] {
  try {
    parseConfigText(text, 'job.yml', '/tmp');
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  assert.fail('the config was accepted');
}

describe('target retention config', () => {
  it('is accepted on every target kind, with the time zone defaulting to UTC', () => {
    const config = parseConfigText(
      `${head}targets:
  - { name: disk, type: local, path: /b, retention: { last: 3, daily: 7, weekly: 4, monthly: 12, yearly: -1 } }
  - { name: nas, type: sftp, host: nas, user: u, identityFile: /k, knownHosts: /h, path: b,
      retention: { hourly: 24, timeZone: Europe/Berlin }, appendOnly: false }
  - { name: cloud, type: s3, bucket: bucket, appendOnly: true, retention: { daily: 30 } }
  - { name: plain, type: local, path: /c }
`,
      'job.yml',
      '/tmp',
    );
    assert.deepEqual(
      config.targets.map((t) => [t.name, t.retention, t.appendOnly]),
      [
        ['disk', { last: 3, daily: 7, weekly: 4, monthly: 12, yearly: -1, timeZone: 'UTC' }, undefined],
        ['nas', { hourly: 24, timeZone: 'Europe/Berlin' }, false],
        ['cloud', { daily: 30, timeZone: 'UTC' }, true],
        ['plain', undefined, undefined],
      ],
    );
  });

  it('names each wrong value with its key path', () => {
    const problems = problemsOf(`${head}targets:
  - name: disk
    type: local
    path: /b
    retention:
      last: -2
      daily: 1.5
      weekly: "4"
      timeZone: Mars/Olympus_Mons
      keepDaily: 7
    appendOnly: "yes"
`);
    const expected = [
      /^job\.yml:\d+: targets\[0\]\.retention\.last: must be 0 or more, or -1 for unlimited/,
      /^job\.yml:\d+: targets\[0\]\.retention\.daily: 1\.5 is not a whole number; write e\.g\. 7, or -1/,
      /^job\.yml:\d+: targets\[0\]\.retention\.weekly: "4" is not a whole number/,
      /^job\.yml:\d+: targets\[0\]\.retention\.timeZone: "Mars\/Olympus_Mons" is not a time zone; use an IANA name such as UTC or Europe\/Berlin/,
      /^job\.yml:\d+: targets\[0\]\.retention\.keepDaily: unknown key/,
      /^job\.yml:\d+: targets\[0\]\.appendOnly: /,
    ];
    for (const pattern of expected) {
      assert.ok(
        problems.some((p) => pattern.test(p)),
        `${pattern} in:\n${problems.join('\n')}`,
      );
    }
    assert.equal(problems.length, expected.length, problems.join('\n'));
  });
});
