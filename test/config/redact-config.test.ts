// config.redacted.yml: the config as written, minus every secret. Every secret-bearing key shape is
// redacted, `*File`/`*Env` keys and ordinary values are kept, comments and layout survive, and no
// planted secret survives in any form (quoted, block, number, anchored, inside a URL or a comment).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { isSecretKey, REDACTED, redactConfigText, redactInlineSecrets } from '../../src/config/redact-config.js';
import { PROJECT_ROOT } from '../helpers/cli.js';

/** The value at a path of the redacted text, parsed. */
function valueAt(yamlText: string, path: readonly (string | number)[]): unknown {
  let value: unknown = parse(yamlText);
  for (const key of path) value = (value as Record<string | number, unknown>)[key];
  return value;
}

describe('redactConfigText: which keys are secrets', () => {
  const secretKeys = [
    'password',
    'dbPassword',
    'passwordHash',
    'adminPasswordPlain',
    'passwd',
    'passphrase',
    'pass',
    'pwd',
    'secret',
    'secretAccessKey',
    'clientSecret',
    'token',
    'apiToken',
    'access_token',
    'apiKey',
    'api_key',
    'privateKey',
    'encryptionKey',
    'key',
    'url',
    'webhookUrl',
    'auth',
    'authorization',
    'credentials',
    'command',
  ];
  const keptKeys = ['accessKeyId', 'publicKey', 'host', 'user', 'endpoint', 'bucket', 'name', 'path', 'smtp'];

  it('replaces the value of every secret-bearing key shape with <redacted>', () => {
    const text = secretKeys.map((key, i) => `${key}: planted-${i}-value`).join('\n');
    const out = redactConfigText(`${text}\n`);
    for (const [i, key] of secretKeys.entries()) {
      assert.equal(valueAt(out, [key]), REDACTED, key);
      assert.ok(!out.includes(`planted-${i}-value`), `${key}'s value survived`);
      assert.equal(isSecretKey(key), true, key);
    }
  });

  it('keeps *File and *Env keys, which name where a secret is, even for secret-sounding names', () => {
    const pointers = {
      passwordFile: '/etc/backproof/db.pass',
      passwordEnv: 'DB_PASSWORD',
      secretAccessKeyFile: '/etc/backproof/s3.secret',
      secretAccessKeyEnv: 'S3_SECRET',
      urlFile: '/etc/backproof/webhook.url',
      tokenFile: '/etc/backproof/token',
      identityFile: '/etc/backproof/id_ed25519',
      passphraseFile: '/etc/backproof/key.pass',
      api_key_file: '/etc/backproof/api.key',
    };
    const text = Object.entries(pointers)
      .map(([key, value]) => `${key}: ${value}`)
      .join('\n');
    const out = redactConfigText(`${text}\n`);
    assert.equal(out, `${text}\n`, 'the text is unchanged');
    for (const key of Object.keys(pointers)) assert.equal(isSecretKey(key), false, key);
  });

  it('keeps ordinary values, identifiers and flags', () => {
    const text = [
      ...keptKeys.map((key) => `${key}: ${key}-value`),
      'acceptNewHostKey: false',
      'apiKey: null',
      'port: 3306',
      '',
    ].join('\n');
    const out = redactConfigText(text);
    assert.equal(out, text);
  });

  it('redacts every scalar inside a secret key holding a list or a map, keeping the keys', () => {
    const out = redactConfigText(
      'secrets:\n  db: one-planted\n  list: [two-planted, 3]\ntokens:\n  - four-planted\n  - { x: five-planted }\n',
    );
    assert.deepEqual(parse(out), {
      secrets: { db: REDACTED, list: [REDACTED, REDACTED] },
      tokens: [REDACTED, { x: REDACTED }],
    });
  });

  it('redacts numbers, block scalars and quoted strings', () => {
    const out = redactConfigText(
      'password: 123456\ntoken: |\n  line-one-planted\n  line-two-planted\n\napiKey: "quoted-planted"\nsecret: \'single-planted\'\nafter: kept\n',
    );
    assert.equal(
      out,
      `password: ${REDACTED}\ntoken: ${REDACTED}\n\napiKey: ${REDACTED}\nsecret: ${REDACTED}\nafter: kept\n`,
    );
  });
});

describe('redactConfigText: secrets inside values', () => {
  it('masks the password of URLs with userinfo, keeping user, host and port', () => {
    const out = redactConfigText(
      [
        'smtp: "smtp://backup:mail-planted@mail.lan:587"',
        'plain: smtp://backup@mail.lan:587',
        'endpoint: https://u:s3-planted@s3.example.com/bucket',
        'mirror: https://ghp-planted-token@github.com/org/repo',
        'redis: redis://:redis-planted@127.0.0.1:6379/0',
        'odd: postgres://app:p@ss-planted@db:5432/app',
        '',
      ].join('\n'),
    );
    assert.equal(valueAt(out, ['smtp']), `smtp://backup:${REDACTED}@mail.lan:587`);
    assert.equal(valueAt(out, ['plain']), 'smtp://backup@mail.lan:587', 'an smtp login without password is kept');
    assert.equal(valueAt(out, ['endpoint']), `https://u:${REDACTED}@s3.example.com/bucket`);
    assert.equal(valueAt(out, ['mirror']), `https://${REDACTED}@github.com/org/repo`, 'a bare user may be a token');
    assert.equal(valueAt(out, ['redis']), `redis://:${REDACTED}@127.0.0.1:6379/0`);
    assert.equal(valueAt(out, ['odd']), `postgres://app:${REDACTED}@db:5432/app`);
    assert.doesNotMatch(out, /planted/);
  });

  it('masks secret query parameters and NAME=secret assignments', () => {
    assert.equal(
      redactInlineSecrets('https://hc.example.com/ping?token=abc&ok=1&X-Amz-Signature=def'),
      `https://hc.example.com/ping?token=${REDACTED}&ok=1&X-Amz-Signature=${REDACTED}`,
    );
    assert.equal(
      redactInlineSecrets("PGPASSWORD='a b' pg_dumpall --password=xyz host=db password=q1"),
      `PGPASSWORD=${REDACTED} pg_dumpall --password=${REDACTED} host=db password=${REDACTED}`,
    );
    assert.equal(
      redactInlineSecrets('nothing secret here: a=b, https://example.com/x'),
      'nothing secret here: a=b, https://example.com/x',
    );
  });

  it('masks URL passwords in comments too, and keeps the comments', () => {
    const out = redactConfigText(
      '# old: smtp://u:comment-planted@mail.lan\nhost: db # was mysql://root:inline-planted@db\n',
    );
    assert.equal(out, `# old: smtp://u:${REDACTED}@mail.lan\nhost: db # was mysql://root:${REDACTED}@db\n`);
  });
});

describe('redactConfigText: layout', () => {
  it('changes the example config only where a secret can be, keeping every comment and blank line', async () => {
    const original = await readFile(join(PROJECT_ROOT, 'sample/backproof.example.yml'), 'utf8');
    const out = redactConfigText(original);
    const before = original.split('\n');
    const after = out.split('\n');
    assert.equal(after.length, before.length, 'same number of lines');
    const changed = before.flatMap((line, i) => (line === after[i] ? [] : [[line, after[i]]]));
    assert.deepEqual(
      changed.filter(([line]) => !line?.includes('artisan')),
      [['    command: redis-cli --rdb -', `    command: ${REDACTED}`]],
    );
    // Hooks are command lines too, in their short and long forms.
    assert.ok(changed.length > 1, 'the sample has hooks');
    for (const [line, redacted] of changed.filter(([l]) => l?.includes('artisan'))) {
      assert.equal(redacted, line?.replace(/"[^"]*artisan[^"]*"/, REDACTED), line);
    }
  });

  it('keeps flow style, inline comments, quoting of other values and key order', () => {
    const text = [
      '# the job',
      'job: shop   # aligned comment',
      'sources:',
      '  - { name: main, type: mariadb, password: "planted-one", passwordFile: /etc/db.pass }  # flow',
      '  - name: app',
      '    paths: [/var/www/app, "/srv/with space"]',
      '',
      '    # before the secret',
      '    token: planted-two   # after the secret',
      'targets: []',
      '',
    ].join('\n');
    assert.equal(redactConfigText(text), text.replace('"planted-one"', REDACTED).replace('planted-two', REDACTED));
  });

  it('keeps every document of a multi-document file', () => {
    const out = redactConfigText('a: 1\ntoken: one-planted\n---\nb: 2\npassword: two-planted\n');
    const docs = parseAllDocuments(out);
    assert.ok(Array.isArray(docs));
    assert.deepEqual(
      docs.map((d) => d.toJS()),
      [
        { a: 1, token: REDACTED },
        { b: 2, password: REDACTED },
      ],
    );
  });
});

describe('redactConfigText: no planted secret survives', () => {
  it('in any shape: quoted, block, anchored, aliased, nested, escaped, tagged, commented', () => {
    const planted = Array.from({ length: 16 }, (_, i) => `PLANTED${i}x`);
    const text = `# a comment with smtp://ops:${planted[0]}@mail.lan:587
job: shop
base: &dbcreds
  user: app
  pw: &pw ${planted[1]}
sources:
  - { name: main, type: mariadb, password: "${planted[2]}", passwordFile: /etc/db.pass }
  - name: other
    type: postgres
    dbPassword: *pw
    password: |
      ${planted[3]}
      ${planted[4]}
    apiKey: !!str ${planted[5]}
    command: "PGPASSWORD=${planted[6]} pg_dumpall"
    env:
      PGPASSWORD: ${planted[7]}
targets:
  - name: s3
    secretAccessKey: '${planted[8]}'  # trailing
    endpoint: "https://key:${planted[9]}\\u0040s3.example.com"
notify:
  - { type: email, smtp: "smtp://backup:${planted[10]}@mail.lan:587" }
  - { type: webhook, url: "https://hooks.example.com/services/${planted[11]}" }
  - type: healthchecks
    url: https://hc.example.com/ping/${planted[12]}
  - type: ntfy
    headers: { Authorization: "Bearer ${planted[13]}" }
    token: ${planted[14]}
extra:
  password: 987654321
  credentials: [kept-shape, "${planted[15]}"]
`;
    const out = redactConfigText(text);
    for (const secret of planted) assert.ok(!out.includes(secret), `${secret} survived:\n${out}`);
    assert.ok(!out.includes('987654321'), 'the numeric password survived');
    for (const secret of planted) assert.ok(text.includes(secret), `${secret} was planted`);
    // Still valid YAML, with the non-secret parts intact.
    const data = parse(out) as { job: string; sources: { passwordFile?: string }[]; base: { user: string } };
    assert.equal(data.job, 'shop');
    assert.equal(data.base.user, 'app');
    assert.equal(data.sources[0]?.passwordFile, '/etc/db.pass');
    assert.match(out, /# trailing/);
    // The escaped "@" hid the URL's password from the text: the value as YAML reads it is masked.
    assert.equal(
      (data as unknown as { targets: { endpoint: string }[] }).targets[0]?.endpoint,
      `https://key:${REDACTED}@s3.example.com`,
    );
  });

  it('never returns text that is not valid YAML: it says so instead, without any of the text', () => {
    const out = redactConfigText('password: "unclosed PLANTED-bad\nother: [\n');
    assert.doesNotMatch(out, /PLANTED/);
    assert.match(out, /could not be parsed as YAML, so none of it is kept/);
    assert.equal(redactConfigText(''), '');
  });
});
