import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type CommandSourceConfig,
  configJsonSchema,
  defaultStateDir,
  type FilesSourceConfig,
  type JobConfig,
  jobConfigSchema,
  type LocalTargetConfig,
  type SqliteSourceConfig,
} from '../../src/config/schema.js';

const minimal = {
  job: 'api-gateway',
  sources: [{ name: 'app', type: 'files', paths: ['/var/www/app'] }],
  targets: [{ name: 'disk', type: 'local', path: '/var/backups' }],
};

function parse(input: unknown): JobConfig {
  return jobConfigSchema.parse(input);
}

/** The key paths zod rejects `input` at, e.g. ['sources.0.name']. */
function rejectedPaths(input: unknown): string[] {
  const result = jobConfigSchema.safeParse(input);
  assert.equal(result.success, false, 'expected the config to be rejected');
  return result.error?.issues.map((issue) => issue.path.join('.')) ?? [];
}

function withSource(source: Record<string, unknown>): unknown {
  return { ...minimal, sources: [source] };
}

describe('jobConfigSchema defaults', () => {
  it('fills in every default of a minimal config', () => {
    const config = parse(minimal);
    assert.deepEqual(config, {
      job: 'api-gateway',
      sources: [{ name: 'app', type: 'files', paths: ['/var/www/app'], exclude: [], oneFileSystem: false }],
      targets: [{ name: 'disk', type: 'local', path: '/var/backups', optional: false }],
      compression: { algorithm: 'zstd', level: 3 },
      checks: {
        minFree: { bytes: 1_000_000_000, percent: 1000 },
        stallTimeout: 600_000,
        maxDuration: 21_600_000,
      },
      anomalies: {
        enabled: true,
        window: 7,
        minHistory: 3,
        dropWarn: 2000,
        dropFail: 5000,
        growthWarn: 10000,
        ratioJumpWarn: 3000,
      },
      hooks: { before: [], after: [], onError: [] },
      notify: [],
      schedule: { backup: 'daily', verify: '0 7 * * 0', drill: '0 7 * * 3', randomizedDelay: 1_800_000 },
      stateDir: defaultStateDir(),
    });
    assert.equal(config.objectives, undefined);
    assert.equal(config.fanOut, undefined);
  });

  it('fills in the defaults of partly written nested objects', () => {
    const config = parse({ ...minimal, compression: { algorithm: 'gzip' }, checks: { minFree: { bytes: '5GiB' } } });
    assert.deepEqual(config.compression, { algorithm: 'gzip', level: 3 });
    assert.deepEqual(config.checks, {
      minFree: { bytes: 5 * 2 ** 30, percent: 1000 },
      stallTimeout: 600_000,
      maxDuration: 21_600_000,
    });
  });

  it('fills in command and target defaults', () => {
    const config = parse({
      ...minimal,
      sources: [{ name: 'redis', type: 'command', command: 'redis-cli --rdb -' }],
    });
    assert.deepEqual(config.sources[0], {
      name: 'redis',
      type: 'command',
      command: 'redis-cli --rdb -',
      extension: 'out',
    });
  });
});

describe('defaultStateDir', () => {
  it('is /var/lib/backproof for root', () => {
    assert.equal(defaultStateDir(0, { XDG_STATE_HOME: '/x' }, '/root'), '/var/lib/backproof');
  });
  it('follows an absolute XDG_STATE_HOME for other users', () => {
    assert.equal(defaultStateDir(1000, { XDG_STATE_HOME: '/home/u/.st' }, '/home/u'), '/home/u/.st/backproof');
  });
  it('ignores a relative or missing XDG_STATE_HOME', () => {
    assert.equal(defaultStateDir(1000, { XDG_STATE_HOME: 'st' }, '/home/u'), '/home/u/.local/state/backproof');
    assert.equal(defaultStateDir(1000, {}, '/home/u'), '/home/u/.local/state/backproof');
  });
  it('is what a config without stateDir gets, and an explicit one wins', () => {
    assert.equal(parse(minimal).stateDir, defaultStateDir());
    assert.equal(parse({ ...minimal, stateDir: '/srv/state' }).stateDir, '/srv/state');
  });
});

describe('jobConfigSchema units', () => {
  it('converts sizes, durations and percentages to integers', () => {
    const config = parse({
      ...minimal,
      objectives: { rpo: '26h', rto: '1h30m' },
      checks: { minFree: { bytes: 1_048_576, percent: 12.5 }, stallTimeout: '90s', maxDuration: '2d' },
    });
    assert.deepEqual(config.objectives, { rpo: 93_600_000, rto: 5_400_000 });
    assert.deepEqual(config.checks, {
      minFree: { bytes: 1_048_576, percent: 1250 },
      stallTimeout: 90_000,
      maxDuration: 172_800_000,
    });
    assert.equal(parse({ ...minimal, checks: { minFree: { percent: '20%' } } }).checks.minFree.percent, 2000);
    const command = parse(withSource({ name: 'c', type: 'command', command: 'true', timeout: '30m' })).sources[0];
    assert.equal(command?.type === 'command' ? command.timeout : undefined, 1_800_000);
  });

  it('rejects numbers as durations, zero durations, bad sizes and percentages over 100', () => {
    assert.deepEqual(rejectedPaths({ ...minimal, checks: { stallTimeout: 600 } }), ['checks.stallTimeout']);
    assert.deepEqual(rejectedPaths({ ...minimal, checks: { maxDuration: '0s' } }), ['checks.maxDuration']);
    assert.deepEqual(rejectedPaths({ ...minimal, objectives: { rpo: '1 day' } }), ['objectives.rpo']);
    assert.deepEqual(rejectedPaths({ ...minimal, checks: { minFree: { bytes: -1 } } }), ['checks.minFree.bytes']);
    assert.deepEqual(rejectedPaths({ ...minimal, checks: { minFree: { bytes: 1.5 } } }), ['checks.minFree.bytes']);
    assert.deepEqual(rejectedPaths({ ...minimal, checks: { minFree: { bytes: '1G' } } }), ['checks.minFree.bytes']);
    assert.deepEqual(rejectedPaths({ ...minimal, checks: { minFree: { bytes: 2 ** 53 } } }), ['checks.minFree.bytes']);
    assert.deepEqual(rejectedPaths({ ...minimal, checks: { minFree: { percent: '101%' } } }), [
      'checks.minFree.percent',
    ]);
    assert.deepEqual(rejectedPaths({ ...minimal, checks: { minFree: { percent: true } } }), ['checks.minFree.percent']);
  });
});

describe('jobConfigSchema rules', () => {
  it('accepts job names with dots and capitals, rejects others', () => {
    for (const job of ['a', 'API.gateway_2-x', 'x'.repeat(63), '0day'])
      assert.equal(parse({ ...minimal, job }).job, job);
    for (const job of ['', '-a', '.a', 'a b', 'a/b', 'x'.repeat(64), 'ä']) {
      assert.deepEqual(rejectedPaths({ ...minimal, job }), ['job'], job);
    }
  });

  it('rejects dots and other characters in source and target names', () => {
    assert.deepEqual(rejectedPaths(withSource({ name: 'main.app', type: 'sqlite', path: '/x' })), ['sources.0.name']);
    assert.deepEqual(rejectedPaths({ ...minimal, targets: [{ name: '_disk', type: 'local', path: '/x' }] }), [
      'targets.0.name',
    ]);
    assert.equal(parse(withSource({ name: 'My_db-2', type: 'sqlite', path: '/x' })).sources[0]?.name, 'My_db-2');
  });

  it('rejects duplicate names among sources and among targets, even beside other problems', () => {
    const duplicated = {
      ...minimal,
      sources: [
        { name: 'app', type: 'files', paths: ['/a'] },
        { name: 'db', type: 'sqlite' },
        { name: 'app', type: 'sqlite', path: '/b' },
      ],
      targets: [
        { name: 'disk', type: 'local', path: '/x' },
        { name: 'disk', type: 'local', path: '/y' },
      ],
    };
    assert.deepEqual(rejectedPaths(duplicated).sort(), ['sources.1.path', 'sources.2.name', 'targets.1.name']);
    // The same name as a source and as a target is fine.
    assert.equal(parse({ ...minimal, targets: [{ name: 'app', type: 'local', path: '/x' }] }).targets[0]?.name, 'app');
  });

  it('checks the compression level per algorithm', () => {
    assert.equal(parse({ ...minimal, compression: { level: 19 } }).compression.level, 19);
    assert.equal(parse({ ...minimal, compression: { algorithm: 'gzip', level: 9 } }).compression.level, 9);
    assert.deepEqual(rejectedPaths({ ...minimal, compression: { level: 20 } }), ['compression.level']);
    assert.deepEqual(rejectedPaths({ ...minimal, compression: { level: 0 } }), ['compression.level']);
    assert.deepEqual(rejectedPaths({ ...minimal, compression: { algorithm: 'gzip', level: 10 } }), [
      'compression.level',
    ]);
    assert.deepEqual(rejectedPaths({ ...minimal, compression: { level: 2.5 } }), ['compression.level']);
    assert.deepEqual(rejectedPaths({ ...minimal, compression: { algorithm: 'lz4' } }), ['compression.algorithm']);
  });

  it('rejects unknown keys on every object', () => {
    assert.deepEqual(rejectedPaths({ ...minimal, extra: 1 }), ['']);
    assert.deepEqual(rejectedPaths(withSource({ name: 'a', type: 'files', paths: ['/a'], pth: 1 })), ['sources.0']);
    assert.deepEqual(rejectedPaths({ ...minimal, checks: { minFree: { byte: 1 } } }), ['checks.minFree']);
    assert.deepEqual(rejectedPaths({ ...minimal, objectives: { rpo: '1h', rtp: '1h' } }), ['objectives']);
  });

  it('requires non-empty lists of sources, targets and paths, and valid extensions', () => {
    assert.deepEqual(rejectedPaths({ ...minimal, sources: [] }), ['sources']);
    assert.deepEqual(rejectedPaths({ ...minimal, targets: [] }), ['targets']);
    assert.deepEqual(rejectedPaths(withSource({ name: 'a', type: 'files', paths: [] })), ['sources.0.paths']);
    assert.deepEqual(rejectedPaths(withSource({ name: 'a', type: 'command', command: 'x', extension: '.rdb' })), [
      'sources.0.extension',
    ]);
    assert.deepEqual(rejectedPaths(withSource({ name: 'a', type: 'command', command: '' })), ['sources.0.command']);
  });
});

describe('jobConfigSchema encryption', () => {
  const key = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
  const system = { name: 'system', type: 'system' };

  it('takes recipients, a recipients file and an identity file', () => {
    const config = parse({ ...minimal, encryption: { recipients: [key], identityFile: '/etc/backproof/age.key' } });
    assert.deepEqual(config.encryption, { recipients: [key], identityFile: '/etc/backproof/age.key' });
    assert.deepEqual(parse({ ...minimal, encryption: { recipientsFile: '/etc/r.txt' } }).encryption, {
      recipientsFile: '/etc/r.txt',
    });
  });

  it('rejects encryption without a recipient, and strings that are not age public keys', () => {
    assert.deepEqual(rejectedPaths({ ...minimal, encryption: {} }), ['encryption']);
    assert.deepEqual(rejectedPaths({ ...minimal, encryption: { recipients: [] } }), ['encryption']);
    assert.deepEqual(rejectedPaths({ ...minimal, encryption: { recipients: ['ssh-ed25519 AAAA'] } }), [
      'encryption.recipients.0',
    ]);
    assert.deepEqual(rejectedPaths({ ...minimal, encryption: { recipients: [key.toUpperCase()] } }), [
      'encryption.recipients.0',
    ]);
  });

  it('refuses a system source without encryption unless it allows unencrypted secrets', () => {
    const result = jobConfigSchema.safeParse({ ...minimal, sources: [minimal.sources[0], system] });
    assert.equal(result.success, false);
    assert.deepEqual(
      result.error?.issues.map((i) => i.path.join('.')),
      ['sources.1'],
    );
    assert.match(result.error?.issues[0]?.message ?? '', /allowUnencryptedSecrets: true/);
    assert.equal(parse({ ...minimal, sources: [system], encryption: { recipients: [key] } }).sources.length, 1);
    const allowed = parse({ ...minimal, sources: [{ ...system, allowUnencryptedSecrets: true }] });
    assert.equal(allowed.sources[0]?.type === 'system' && allowed.sources[0].allowUnencryptedSecrets, true);
  });
});

describe('output types', () => {
  it('fit the option types the drivers declare', () => {
    const config = parse({
      ...minimal,
      sources: [
        { name: 'app', type: 'files', paths: ['/a'] },
        { name: 'db', type: 'sqlite', path: '/db.sqlite' },
        { name: 'redis', type: 'command', command: 'redis-cli --rdb -', extension: 'rdb' },
      ],
    });
    const [files, sqlite, command] = config.sources;
    assert.ok(files?.type === 'files' && sqlite?.type === 'sqlite' && command?.type === 'command');
    // Compile-time: these assignments are what the drivers will do.
    const filesOptions: { name: string; paths: string[]; exclude: string[]; oneFileSystem: boolean } =
      files satisfies FilesSourceConfig;
    const sqliteOptions: { name: string; path: string } = sqlite satisfies SqliteSourceConfig;
    const commandOptions: { name: string; command: string; extension: string; timeout?: number } =
      command satisfies CommandSourceConfig;
    const target = config.targets[0];
    assert.ok(target !== undefined && target.type === 'local');
    const targetOptions: { name: string; path: string; optional: boolean } = target satisfies LocalTargetConfig;
    assert.deepEqual(filesOptions.exclude, []);
    assert.equal(sqliteOptions.path, '/db.sqlite');
    assert.equal(commandOptions.extension, 'rdb');
    assert.equal(commandOptions.timeout, undefined);
    assert.equal(targetOptions.optional, false);
  });
});

type JsonNode = Record<string, unknown>;

/** Every schema object in a JSON Schema, with its JSON pointer-ish path. */
function* schemaNodes(node: unknown, path = '#'): Generator<[string, JsonNode]> {
  if (typeof node !== 'object' || node === null) return;
  if (Array.isArray(node)) {
    for (const [index, item] of node.entries()) yield* schemaNodes(item, `${path}/${index}`);
    return;
  }
  const record = node as JsonNode;
  yield [path, record];
  for (const [key, value] of Object.entries(record)) {
    if (key === 'default' || key === 'enum' || key === 'const') continue;
    yield* schemaNodes(value, `${path}/${key}`);
  }
}

describe('configJsonSchema', () => {
  const schema = JSON.parse(JSON.stringify(configJsonSchema())) as JsonNode;

  it('is valid JSON with the top level required keys', () => {
    assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
    assert.equal(schema.type, 'object');
    assert.deepEqual(schema.required, ['job', 'sources', 'targets']);
  });

  it('closes every object with additionalProperties: false', () => {
    const objects = [...schemaNodes(schema)].filter(([, node]) => node.type === 'object');
    assert.ok(objects.length >= 8, `found ${objects.length} objects`);
    for (const [path, node] of objects) assert.equal(node.additionalProperties, false, path);
  });

  it('lists required keys of every kind', () => {
    const required = [...schemaNodes(schema)]
      .filter(([, node]) => node.type === 'object' && Array.isArray(node.required))
      .map(([, node]) => (node.required as string[]).join(','));
    assert.deepEqual(required.sort(), [
      'command', // a hook in its long form: before
      'command', // after
      'command', // onError
      'component,sql', // a drill assertion
      'job,sources,targets',
      'name,type', // system
      'name,type,bucket', // s3
      'name,type,command',
      'name,type,host,user,identityFile,knownHosts,path', // sftp
      'name,type,path', // sqlite
      'name,type,path', // local
      'name,type,paths', // files
      'name,type,user', // mariadb
      'name,type,user', // postgres
      'type', // notify: webhook
      'type', // slack
      'type', // discord
      'type', // ntfy
      'type', // healthchecks
      'type,smtp,from,to', // email
      'user', // drill.mariadb
      'user', // drill.postgres
    ]);
  });

  it('describes every key, for editors', () => {
    let keys = 0;
    for (const [path, node] of schemaNodes(schema)) {
      if (typeof node.properties !== 'object' || node.properties === null) continue;
      for (const [key, property] of Object.entries(node.properties as Record<string, JsonNode>)) {
        keys++;
        assert.equal(typeof property.description, 'string', `${path}/properties/${key} has no description`);
      }
    }
    assert.ok(keys >= 25, `found ${keys} keys`);
  });

  it('shows units as the strings people write, with defaults', () => {
    const checks = (schema.properties as Record<string, JsonNode>).checks as JsonNode;
    const checkProperties = checks.properties as Record<string, JsonNode>;
    assert.equal(checkProperties.stallTimeout?.type, 'string');
    assert.equal(checkProperties.stallTimeout?.default, '10m');
    const minFree = (checkProperties.minFree as JsonNode).properties as Record<string, JsonNode>;
    assert.equal(minFree.bytes?.default, '1GB');
    assert.equal(JSON.stringify(schema).includes('e+'), false);
  });

  it('lists the source and target kinds', () => {
    const properties = schema.properties as Record<string, JsonNode>;
    const kinds = (list: string) =>
      (((properties[list] as JsonNode).items as JsonNode).oneOf as JsonNode[]).map(
        (option) => ((option.properties as Record<string, JsonNode>).type as JsonNode).const,
      );
    assert.deepEqual(kinds('sources'), ['files', 'sqlite', 'command', 'mariadb', 'postgres', 'system']);
    assert.deepEqual(kinds('targets'), ['local', 'sftp', 's3']);
  });
});
