// The role-statement filter on its own: which statements it drops (and which look-alikes in data,
// strings, function bodies and comments it must leave alone), that everything else passes byte for
// byte whatever the chunking, and the statement classifier.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import {
  type RoleFacts,
  RoleStatementFilter,
  roleProblem,
  type SkippedStatement,
  tokenize,
} from '../../../src/restore/databases/postgres-roles.js';

const FACTS: RoleFacts = {
  user: 'drill',
  superuser: false,
  // reader exists and drill is a member of it; other exists, drill is not a member; ghost does not exist.
  roles: new Map([
    ['drill', true],
    ['reader', true],
    ['other', false],
    ['Mixed Case', true],
  ]),
  server: 'postgres 127.0.0.1:5432 as drill',
};

// Statements marked `-- drop` must be dropped (the marker comment is before them, so it stays).
const DUMP = String.raw`--
-- PostgreSQL database dump
--
\restrict AbC123

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);

CREATE SCHEMA app;
-- drop
ALTER SCHEMA app OWNER TO ghost;
ALTER SCHEMA app OWNER TO reader;
-- drop
ALTER TABLE ONLY public."we;ird" OWNER TO other;
ALTER TABLE public.t OWNER TO "Mixed Case";
ALTER TABLE public.t OWNER TO CURRENT_USER;
-- drop
ALTER FUNCTION public.f(x integer) OWNER TO "Ghost Role";

CREATE FUNCTION public.f(x integer) RETURNS text
    LANGUAGE plpgsql
    AS $body$
BEGIN
  -- GRANT ALL ON t TO ghost; inside a body is text
  EXECUTE 'ALTER TABLE t OWNER TO ghost;';
  RETURN $$;$$ || E'it\'s; ALTER TABLE x OWNER TO ghost;' || 'a''b; GRANT x TO ghost;';
END
$body$;

CREATE TABLE public."we;ird" (
    a integer DEFAULT 1,
    b text CHECK (b <> ';')
);

/* a comment /* nested ; ALTER TABLE x OWNER TO ghost; */ still comment; */
COPY public."we;ird" (a, b) FROM stdin;
1	ALTER TABLE x OWNER TO ghost;
2	\\.
3	GRANT SELECT ON t TO ghost;
\.

COPY public.t (a) FROM stdin;
\.

CREATE POLICY p ON public.t TO reader USING (true);
-- drop
CREATE POLICY q ON public.t AS PERMISSIVE FOR SELECT TO reader, ghost USING ((a > 0));

GRANT SELECT ON TABLE public.t TO reader;
GRANT SELECT(a) ON TABLE public.t TO PUBLIC;
-- drop
GRANT SELECT ON TABLE public.t TO ghost WITH GRANT OPTION;
-- drop
GRANT ALL ON FUNCTION public.f(x integer) TO reader, "Ghost Role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
-- drop
REVOKE ALL ON TABLE public.t FROM ghost;

ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES  TO reader;
ALTER DEFAULT PRIVILEGES FOR ROLE reader IN SCHEMA app GRANT SELECT ON TABLES  TO reader;
-- drop
ALTER DEFAULT PRIVILEGES FOR ROLE other IN SCHEMA app GRANT SELECT ON TABLES  TO reader;
-- drop
ALTER DEFAULT PRIVILEGES FOR ROLE reader REVOKE ALL ON FUNCTIONS  FROM ghost;

-- drop
SET SESSION AUTHORIZATION 'reader';
-- drop
GRANT SELECT ON TABLE public.t TO other;
-- drop
RESET SESSION AUTHORIZATION;
GRANT SELECT ON TABLE public.t TO other;

--
-- PostgreSQL database dump complete
--

\unrestrict AbC123

`;

/** DUMP without the statements after `-- drop` lines. */
function expectedOutput(): { text: string; dropped: string[] } {
  const lines = DUMP.split('\n');
  const kept: string[] = [];
  const dropped: string[] = [];
  for (let k = 0; k < lines.length; k++) {
    const line = lines[k] as string;
    kept.push(line);
    if (line === '-- drop') {
      // The statement is the next line (all dropped ones are one line); its newline stays.
      dropped.push(lines[k + 1] as string);
      kept.push('');
      k++;
    }
  }
  return { text: kept.join('\n'), dropped };
}

async function filter(
  input: Buffer,
  sizes: number[],
  facts = FACTS,
): Promise<{ output: string; skipped: SkippedStatement[] }> {
  const skipped: SkippedStatement[] = [];
  const chunks: Buffer[] = [];
  let offset = 0;
  let k = 0;
  while (offset < input.length) {
    const size = sizes[k++ % sizes.length] as number;
    chunks.push(input.subarray(offset, offset + size));
    offset += size;
  }
  const out: Buffer[] = [];
  const stream = Readable.from(chunks).pipe(new RoleStatementFilter(facts, (s) => skipped.push(s)));
  for await (const chunk of stream) out.push(chunk as Buffer);
  return { output: Buffer.concat(out).toString('utf8'), skipped };
}

describe('RoleStatementFilter', () => {
  const input = Buffer.from(DUMP, 'utf8');
  const expected = expectedOutput();

  it('drops exactly the statements whose roles are missing or unusable, and says why', async () => {
    const { output, skipped } = await filter(input, [input.length]);
    assert.equal(output, expected.text);
    // Reported on one line, white space collapsed.
    assert.deepEqual(
      skipped.map((s) => s.statement),
      expected.dropped.map((statement) => statement.replace(/\s+/g, ' ')),
    );
    const reasons = skipped.map((s) => s.reason);
    assert.equal(reasons[0], 'role "ghost" does not exist on postgres 127.0.0.1:5432 as drill');
    assert.equal(reasons[1], 'user drill is not a member of role "other", so it may not give objects to it');
    assert.equal(reasons[2], 'role "Ghost Role" does not exist on postgres 127.0.0.1:5432 as drill');
    assert.match(
      reasons.find((r) => r.includes('default privileges')) ?? '',
      /not a member of role "other", so it may not change its default privileges/,
    );
    assert.match(reasons.at(-3) ?? '', /only a superuser may SET SESSION AUTHORIZATION, and user drill is not one/);
    assert.match(reasons.at(-2) ?? '', /belongs to the block run as role "reader"/);
    assert.match(reasons.at(-1) ?? '', /belongs to the block run as role "reader"/);
  });

  it('gives the same output whatever the chunk boundaries, COPY data and bodies included', async () => {
    for (const sizes of [[1], [2], [3], [5], [17], [64], [1, 9, 2, 30]]) {
      const { output, skipped } = await filter(input, sizes);
      assert.equal(output, expected.text, `chunks of ${sizes.join(',')}`);
      assert.equal(skipped.length, expected.dropped.length, `chunks of ${sizes.join(',')}`);
    }
    for (let at = 1; at < input.length; at += 1) {
      const { output } = await filter(input, [at, input.length]);
      assert.equal(output, expected.text, `split at ${at}`);
    }
  });

  it('keeps everything for a superuser when the roles exist', async () => {
    const superuser: RoleFacts = {
      ...FACTS,
      superuser: true,
      roles: new Map([...FACTS.roles, ['ghost', false], ['Ghost Role', false]]),
    };
    const { output, skipped } = await filter(input, [7], superuser);
    assert.deepEqual(skipped, []);
    assert.equal(output, DUMP);
  });

  it('passes through a dump cut inside COPY data or a statement as it is', async () => {
    const cut = Buffer.from('COPY public.t (a) FROM stdin;\n1\n2\nALTER TABLE x OWNER TO gh');
    assert.equal((await filter(cut, [3])).output, cut.toString());
    const open = Buffer.from('ALTER TABLE x OWNER TO ghost');
    assert.equal((await filter(open, [4])).output, open.toString());
  });
});

describe('roleProblem', () => {
  const problem = (sql: string, facts = FACTS) => roleProblem(tokenize(sql), facts);

  it('ignores statements that name no role', () => {
    assert.equal(problem('CREATE TABLE owner (a int);'), undefined);
    assert.equal(problem("SELECT 'OWNER TO ghost';"), undefined);
    assert.equal(problem('ALTER TABLE t ADD COLUMN "to" int;'), undefined);
    assert.equal(problem('ALTER TABLE t OWNER TO SESSION_USER;'), undefined);
    assert.equal(problem('SET SESSION AUTHORIZATION DEFAULT;'), undefined);
  });

  it('folds unquoted role names to lower case and keeps quoted ones', () => {
    assert.equal(problem('ALTER TABLE t OWNER TO READER;'), undefined);
    assert.match(problem('ALTER TABLE t OWNER TO "READER";') ?? '', /role "READER" does not exist/);
    assert.match(problem('ALTER TABLE t OWNER TO "we""ird";') ?? '', /role "we"ird" does not exist/);
  });

  it('checks roles granted to roles, and grantees after GROUP', () => {
    assert.match(problem('GRANT ghost TO reader;') ?? '', /role "ghost" does not exist/);
    assert.match(problem('REVOKE ADMIN OPTION FOR ghost FROM reader;') ?? '', /role "ghost" does not exist/);
    assert.equal(problem('GRANT reader TO drill WITH ADMIN OPTION;'), undefined);
    assert.match(problem('GRANT SELECT ON t TO GROUP ghost;') ?? '', /role "ghost" does not exist/);
  });

  it('tokenizes strings, dollar quotes and comments', () => {
    const tokens = tokenize('SELECT E\'a\\\'b\', $x$ ; $x$, /* c /* d */ */ "q""r" -- e\n;');
    assert.deepEqual(
      tokens.map((t) => [t.kind, t.value]),
      [
        ['word', 'SELECT'],
        ['string', "a'b"],
        ['other', ','],
        ['string', ' ; '],
        ['other', ','],
        ['quoted', 'q"r'],
        ['other', ';'],
      ],
    );
  });
});
