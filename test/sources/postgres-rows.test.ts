// The pg_dump stream validator and row counter, on dumps written by hand to hold every lexical trap
// pg_dump output can contain. Real pg_dump output is covered by test/sources/postgres.test.ts.
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import {
  CLUSTER_DUMP_TRAILER,
  compareTables,
  createPgDumpValidator,
  DATABASE_DUMP_TRAILER,
  judgeScan,
  type PgDumpScan,
  PgDumpScanner,
  parseCopyFromStdin,
  type TableName,
  tablesRecord,
} from '../../src/sources/postgres-rows.js';

const HEADER = [
  '--',
  '-- PostgreSQL database dump',
  '--',
  '',
  '\\restrict AbCdEf0123',
  '',
  'SET statement_timeout = 0;',
  "SET client_encoding = 'UTF8';",
  'SET standard_conforming_strings = on;',
  "SELECT pg_catalog.set_config('search_path', '', false);",
  '',
];

const FOOTER = ['', '--', DATABASE_DUMP_TRAILER, '--', '', '\\unrestrict AbCdEf0123', ''];

// SQL that fools a line-based reader: COPY-looking lines inside function bodies, strings and comments.
const TRAPS = [
  "-- it's a comment with a quote and $$ and /* that open nothing",
  'CREATE FUNCTION public.f() RETURNS text',
  '    LANGUAGE sql',
  "    AS $$ SELECT 'COPY public.fake (a) FROM stdin;",
  '1',
  '\\.',
  "' $$;",
  '',
  'CREATE FUNCTION public.g() RETURNS text',
  '    LANGUAGE plpgsql',
  '    AS $_$ BEGIN RETURN $$ ; $x$ COPY public.fake2 (a) FROM stdin;',
  '\\.',
  '$x$ $; $_ $__$; END $_$;',
  '',
  "COMMENT ON TABLE public.a IS E'it\\'s; COPY public.fake3 (a) FROM stdin;\\n\\\\';",
  "COMMENT ON COLUMN public.a.x IS 'a standard string ends with a backslash \\';",
  "COMMENT ON COLUMN public.a.y IS 'doubled '' quote; COPY public.fake4 (a) FROM stdin;';",
  '/* outer /* nested */ still a comment; COPY public.fake5 (a) FROM stdin; */',
  'CREATE TABLE public.a$b (x integer); PREPARE p AS SELECT $1;',
  "CREATE TABLE public.e (x text DEFAULT e'not an \\' escape string');",
  `COMMENT ON TABLE public.b IS '${DATABASE_DUMP_TRAILER}';`,
  `CREATE VIEW "Quoted""View;" AS SELECT 1 AS "-- ${DATABASE_DUMP_TRAILER}";`,
  '',
];

const COPIES = [
  'COPY public.a (x, y) FROM stdin;',
  '1\tplain',
  '2\t\\N',
  '3\tescaped \\\\. and \\n newline and \\t tab',
  '\\\\.',
  '\\\\x00ff',
  `4\t${DATABASE_DUMP_TRAILER}`,
  '5\tunicode é 日本 🎉',
  '',
  '\\.',
  '',
  '',
  'COPY public.empty (x) FROM stdin;',
  '\\.',
  '',
  'COPY "we;ird"".s"."t ""quoted"" (1)" ("a""b", c) FROM stdin;',
  'x\ty',
  '\\.',
  '',
  'COPY public.nocols  FROM stdin;',
  '',
  '',
  '',
  '\\.',
  '',
  'COPY public."日本" (x) FROM stdin;',
  '1',
  '\\.',
  '',
];

const SAMPLE = Buffer.from([...HEADER, ...TRAPS, ...COPIES, ...FOOTER].join('\n'), 'utf8');
const SAMPLE_TABLES: Record<string, number> = {
  'public.a': 8,
  'public.empty': 0,
  'we;ird".s.t "quoted" (1)': 1,
  'public.nocols': 3,
  'public.日本': 1,
};

function scanChunks(chunks: readonly Buffer[], trailer = DATABASE_DUMP_TRAILER): PgDumpScan {
  const scanner = new PgDumpScanner({ trailer });
  for (const chunk of chunks) scanner.write(chunk);
  return scanner.end();
}

function scan(text: string | Buffer, trailer = DATABASE_DUMP_TRAILER): PgDumpScan {
  return scanChunks([Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8')], trailer);
}

function problemOf(result: PgDumpScan, expectedTables?: TableName[]): string | undefined {
  return judgeScan({ what: 'the dump', trailer: DATABASE_DUMP_TRAILER, expectedTables }, result);
}

function assertSampleScan(result: PgDumpScan, how: string): void {
  assert.deepEqual(result.problems, [], how);
  assert.equal(result.trailerLast, true, how);
  assert.deepEqual(tablesRecord(result.tables), SAMPLE_TABLES, how);
  assert.equal(result.bytes, SAMPLE.length, how);
}

describe('PgDumpScanner', () => {
  it('counts the rows of every COPY block and ignores COPY-looking text in strings, bodies and comments', () => {
    assertSampleScan(scan(SAMPLE), 'whole');
    assert.deepEqual(
      scan(SAMPLE).tables.map((t) => [t.schema, t.table]),
      [
        ['public', 'a'],
        ['public', 'empty'],
        ['we;ird".s', 't "quoted" (1)'],
        ['public', 'nocols'],
        ['public', '日本'],
      ],
    );
  });

  it('gives the same result whatever byte offset the stream is split at', () => {
    for (let offset = 0; offset <= SAMPLE.length; offset++) {
      assertSampleScan(scanChunks([SAMPLE.subarray(0, offset), SAMPLE.subarray(offset)]), `split at ${offset}`);
    }
  });

  it('gives the same result fed one byte at a time, and in chunks of every size up to 64', () => {
    const bytes = [...SAMPLE].map((b) => Buffer.from([b]));
    assertSampleScan(scanChunks(bytes), '1-byte chunks');
    for (let size = 2; size <= 64; size++) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < SAMPLE.length; i += size) chunks.push(SAMPLE.subarray(i, i + size));
      assertSampleScan(scanChunks(chunks), `${size}-byte chunks`);
    }
  });

  it('rejects every truncation of the dump that ends before its trailer line', () => {
    const trailerEnd = SAMPLE.indexOf(`${DATABASE_DUMP_TRAILER}\n`) + DATABASE_DUMP_TRAILER.length;
    for (let cut = 0; cut < trailerEnd; cut++) {
      const problem = problemOf(scan(SAMPLE.subarray(0, cut)));
      assert.ok(problem, `a dump cut at byte ${cut} of ${SAMPLE.length} was accepted`);
    }
  });

  it('counts rows in a line of several megabytes, whatever the chunk size', () => {
    const long = 'x'.repeat(5_000_000);
    const dump = Buffer.from(
      [...HEADER, 'COPY public.big (a) FROM stdin;', long, `\\\\${long}`, 'short', '\\.', ...FOOTER].join('\n'),
    );
    for (const size of [1000, 65536, 1 << 20, dump.length]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < dump.length; i += size) chunks.push(dump.subarray(i, i + size));
      const result = scanChunks(chunks);
      assert.deepEqual(tablesRecord(result.tables), { 'public.big': 3 }, `chunks of ${size}`);
      assert.equal(problemOf(result), undefined);
    }
  });

  it('counts a million rows exactly', () => {
    const rows = '42\tsome value\n'.repeat(1_000_000);
    const dump = Buffer.from([...HEADER, 'COPY public.m (a, b) FROM stdin;', `${rows}\\.`, ...FOOTER].join('\n'));
    const chunks: Buffer[] = [];
    for (let i = 0; i < dump.length; i += 65536) chunks.push(dump.subarray(i, i + 65536));
    assert.deepEqual(tablesRecord(scanChunks(chunks).tables), { 'public.m': 1_000_000 });
  });

  it('accepts the trailer followed only by blank lines, empty comments and \\unrestrict', () => {
    const base = [...HEADER, 'SELECT 1;', '', '--', DATABASE_DUMP_TRAILER];
    for (const tail of [[], [''], ['--'], ['--', '', '\\unrestrict key', ''], ['', '', '  ', '--', '--  ']]) {
      const result = scan([...base, ...tail].join('\n'));
      assert.equal(problemOf(result), undefined, JSON.stringify(tail));
    }
  });

  it('rejects a dump with anything else after the trailer', () => {
    const base = [...HEADER, 'SELECT 1;', '--', DATABASE_DUMP_TRAILER, ''];
    for (const tail of ['SELECT 2;', '-- another comment', '\\restrict again', 'x', ';', "'"]) {
      const problem = problemOf(scan([...base, tail, ''].join('\n')));
      // A lone quote opens a string that never ends: rejected as a cut string rather than for the trailer.
      const expected =
        tail === "'" ? /ends inside a quoted string/ : /does not end with "-- PostgreSQL database dump complete"/;
      assert.match(problem ?? '', expected, tail);
    }
  });

  it('does not take the trailer text inside COPY data, strings or mid-line comments for the trailer', () => {
    const cases = [
      ['COPY public.t (a) FROM stdin;', DATABASE_DUMP_TRAILER, '\\.'],
      [`SELECT '`, DATABASE_DUMP_TRAILER, `';`],
      [`SELECT 1; ${DATABASE_DUMP_TRAILER}`],
      ['/*', DATABASE_DUMP_TRAILER, '*/'],
      ['SELECT $$', DATABASE_DUMP_TRAILER, '$$;'],
    ];
    for (const lines of cases) {
      const result = scan([...HEADER, ...lines, ''].join('\n'));
      assert.equal(result.trailerLast, false, lines.join(' / '));
      assert.ok(problemOf(result), lines.join(' / '));
    }
  });

  it('reports a dump cut inside COPY data, naming the table', () => {
    const result = scan([...HEADER, 'COPY public.orders (a) FROM stdin;', '1', '2'].join('\n'));
    assert.match(result.problems.join(';'), /ends inside the data of table public\.orders/);
    assert.match(problemOf(result) ?? '', /public\.orders.*truncated/);
  });

  it('reports a dump cut inside a string or function body', () => {
    const result = scan([...HEADER, 'CREATE FUNCTION f() AS $$ SELECT 1;', DATABASE_DUMP_TRAILER, ''].join('\n'));
    assert.match(result.problems.join(';'), /ends inside a quoted string/);
  });

  it('refuses a dump that connects to a database', () => {
    for (const meta of ['\\connect app', '\\c app', '\\connect -reuse-previous=on "dbname=\'app\'"']) {
      const result = scan([...HEADER, meta, 'SELECT 1;', '--', DATABASE_DUMP_TRAILER, ''].join('\n'));
      assert.match(problemOf(result) ?? '', /\\connect command: it names a database/, meta);
    }
  });

  it('says an empty dump is not a backup', () => {
    assert.match(problemOf(scan('')) ?? '', /wrote nothing; an empty dump is not a backup/);
  });

  it('refuses a table with two COPY blocks and a COPY statement it cannot read', () => {
    const twice = scan(
      [
        ...HEADER,
        'COPY public.t (a) FROM stdin;',
        '\\.',
        'COPY public.t (a) FROM stdin;',
        '\\.',
        '--',
        DATABASE_DUMP_TRAILER,
      ].join('\n'),
    );
    assert.match(problemOf(twice) ?? '', /public\.t has two COPY blocks/);
    const unreadable = scan([...HEADER, 'COPY "unterminated (a) FROM stdin;', '--', DATABASE_DUMP_TRAILER].join('\n'));
    assert.ok(problemOf(unreadable));
  });

  it('checks the cluster trailer of pg_dumpall, which puts \\unrestrict before it', () => {
    const globals = [
      '--',
      '-- PostgreSQL database cluster dump',
      '--',
      '',
      '\\restrict k',
      "SET client_encoding = 'UTF8';",
      'CREATE ROLE app;',
      "ALTER ROLE app WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:abc=$def=:ghi=';",
      '\\unrestrict k',
      '',
      '--',
      CLUSTER_DUMP_TRAILER,
      '--',
      '',
    ].join('\n');
    const ok = scan(globals, CLUSTER_DUMP_TRAILER);
    assert.equal(ok.trailerLast, true);
    assert.deepEqual(ok.tables, []);
    assert.equal(scan(globals, DATABASE_DUMP_TRAILER).trailerLast, false);
    assert.equal(
      scan(globals.slice(0, globals.indexOf(CLUSTER_DUMP_TRAILER)), CLUSTER_DUMP_TRAILER).trailerLast,
      false,
    );
  });

  it('decodes names in a single-byte database encoding byte for byte', () => {
    const latin1 = Buffer.concat([
      Buffer.from([...HEADER, 'COPY public."caf'].join('\n')),
      Buffer.from([0xe9]),
      Buffer.from(['" (x) FROM stdin;', '1', '\\.', '--', DATABASE_DUMP_TRAILER, ''].join('\n')),
    ]);
    const scanner = new PgDumpScanner({ trailer: DATABASE_DUMP_TRAILER, nameEncoding: 'latin1' });
    scanner.write(latin1);
    assert.deepEqual(tablesRecord(scanner.end().tables), { 'public.café': 1 });
  });
});

describe('parseCopyFromStdin', () => {
  it('reads plain and quoted schema and table names', () => {
    assert.deepEqual(parseCopyFromStdin('COPY public.orders (id, note) FROM stdin'), {
      schema: 'public',
      table: 'orders',
    });
    assert.deepEqual(parseCopyFromStdin('COPY "My ""S""".";" (a) FROM stdin'), { schema: 'My "S"', table: ';' });
    assert.deepEqual(parseCopyFromStdin('COPY "a.b"."c (d) FROM stdin" (x) FROM stdin'), {
      schema: 'a.b',
      table: 'c (d) FROM stdin',
    });
    assert.deepEqual(parseCopyFromStdin('COPY public.t  FROM stdin'), { schema: 'public', table: 't' });
    assert.deepEqual(parseCopyFromStdin('copy public.t (a)\nfrom STDIN'), { schema: 'public', table: 't' });
  });

  it('says other for COPY statements that take no data lines, undefined for unreadable ones', () => {
    assert.equal(parseCopyFromStdin('COPY public.t TO stdout'), 'other');
    assert.equal(parseCopyFromStdin("COPY public.t FROM '/tmp/file'"), 'other');
    assert.equal(parseCopyFromStdin('COPY t (a) FROM stdin'), undefined);
    assert.equal(parseCopyFromStdin('COPY a.b.c (a) FROM stdin'), undefined);
    assert.equal(parseCopyFromStdin('COPY "open.t (a) FROM stdin'), undefined);
  });
});

describe('table list comparison', () => {
  it('names the tables missing from the dump and those the catalog does not know', () => {
    const expected = [
      { schema: 'public', table: 'a' },
      { schema: 'public', table: 'b' },
    ];
    const dumped = [
      { schema: 'public', table: 'a' },
      { schema: 'other', table: 'c' },
    ];
    assert.deepEqual(compareTables(expected, dumped), { missing: ['public.b'], unexpected: ['other.c'] });
    const result = scan(
      [
        ...HEADER,
        'COPY public.a (x) FROM stdin;',
        '\\.',
        'COPY other.c (x) FROM stdin;',
        '\\.',
        '--',
        DATABASE_DUMP_TRAILER,
      ].join('\n'),
    );
    const problem = problemOf(result, expected);
    assert.match(problem ?? '', /in the catalog but not in the dump: public\.b/);
    assert.match(problem ?? '', /in the dump but not in the catalog: other\.c/);
    assert.equal(problemOf(result, dumped), undefined);
  });

  it('tells apart tables whose names only differ by where the dot is', () => {
    const dumped = [
      { schema: 'a.b', table: 'c' },
      { schema: 'a', table: 'b.c' },
    ];
    assert.deepEqual(compareTables(dumped, dumped), { missing: [], unexpected: [] });
    assert.deepEqual(compareTables([{ schema: 'a.b', table: 'c' }], [{ schema: 'a', table: 'b.c' }]), {
      missing: ['a.b.c'],
      unexpected: ['a.b.c'],
    });
  });
});

describe('createPgDumpValidator', () => {
  async function run(input: Buffer, expectedTables?: TableName[]) {
    const out: Buffer[] = [];
    let valid: PgDumpScan | undefined;
    let firstBytes = 0;
    const validator = createPgDumpValidator({
      trailer: DATABASE_DUMP_TRAILER,
      what: 'the test dump',
      expectedTables,
      fail: (reason) => new Error(`source main: database app: ${reason}`),
      onValid: (result) => {
        valid = result;
      },
      onFirstBytes: () => {
        firstBytes++;
      },
    });
    const chunks: Buffer[] = [];
    for (let i = 0; i < input.length; i += 100) chunks.push(input.subarray(i, i + 100));
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        callback();
      },
    });
    const error = await pipeline(Readable.from(chunks), validator, sink).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    return { out: Buffer.concat(out), valid, error, firstBytes };
  }

  it('passes the bytes through unchanged and reports the scan of a valid dump', async () => {
    const { out, valid, error, firstBytes } = await run(SAMPLE);
    assert.equal(error, undefined);
    assert.ok(out.equals(SAMPLE));
    assert.deepEqual(tablesRecord(valid?.tables ?? []), SAMPLE_TABLES);
    assert.equal(firstBytes, 1);
  });

  it('fails the stream (it never ends cleanly) for a truncated dump, an empty one, or other tables', async () => {
    const truncated = await run(SAMPLE.subarray(0, SAMPLE.length - 60));
    assert.match(truncated.error?.message ?? '', /^source main: database app: the test dump does not end with/);
    assert.equal(truncated.valid, undefined);

    const empty = await run(Buffer.alloc(0));
    assert.match(empty.error?.message ?? '', /the test dump wrote nothing/);
    assert.equal(empty.firstBytes, 0);

    const other = await run(SAMPLE, [{ schema: 'public', table: 'a' }]);
    assert.match(
      other.error?.message ?? '',
      /disagree with the catalog \(in the dump but not in the catalog: public\.empty/,
    );
  });
});
