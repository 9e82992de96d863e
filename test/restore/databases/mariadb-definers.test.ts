// The DEFINER scanner on its own: which clauses it finds (and which look-alikes it must leave
// alone), that every byte passes through exactly once whatever the chunking, and the clause parser.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Account,
  DefinerScanner,
  type DumpPiece,
  formatAccount,
  parseDefinerClause,
} from '../../../src/restore/databases/mariadb-definers.js';

const DUMP = String.raw`/*M!999999\- enable the sandbox mode */
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB
-- a comment that says DEFINER=${'`'}c1${'`'}@${'`'}h${'`'} must not count
# so does DEFINER=${'`'}c2${'`'}@${'`'}h${'`'}
/* and DEFINER=${'`'}c3${'`'}@${'`'}h${'`'} */
/*!40101 SET NAMES utf8mb4 */;
CREATE TABLE ${'`'}t${'`'} (${'`'}id${'`'} int, ${'`'}s${'`'} text);
INSERT INTO ${'`'}t${'`'} VALUES (1,'DEFINER=${'`'}d1${'`'}@${'`'}h${'`'}'),(2,'it\'s DEFINER=${'`'}d2${'`'}@${'`'}h${'`'}'),(3,"DEFINER=${'`'}d3${'`'}@${'`'}h${'`'}"),(4,0xDEF1);
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=${'`'}trig${'`'}@${'`'}localhost${'`'}*/ /*!50003 TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.s = 'DEFINER=${'`'}d4${'`'}@${'`'}h${'`'}' */;;
/*!50106 CREATE*/ /*!50117 DEFINER=${'`'}ev${'`'}@${'`'}%${'`'}*/ /*!50106 EVENT ${'`'}ev${'`'} ON SCHEDULE EVERY 1 DAY DO SELECT 1 */ ;;
CREATE DEFINER=${'`'}we${'`'}${'`'}ird${'`'}@${'`'}%${'`'} PROCEDURE ${'`'}p${'`'}()
SELECT 'SQL SECURITY DEFINER' -- DEFINER=${'`'}c4${'`'}@${'`'}h${'`'}
;;
CREATE DEFINER='quoted'@'10.0.%' FUNCTION ${'`'}f${'`'}() RETURNS int RETURN 1 ;;
CREATE DEFINER = bare@localhost PROCEDURE q() SELECT 1 ;;
CREATE DEFINER=ghost2 PROCEDURE r() SELECT 1 ;;
CREATE DEFINER=CURRENT_USER PROCEDURE s() SELECT xDEFINER=1 ;;
DELIMITER ;
/*!50001 CREATE ALGORITHM=UNDEFINED */
/*!50013 DEFINER=${'`'}view${'`'}@${'`'}%${'`'} SQL SECURITY DEFINER */
/*!50001 VIEW ${'`'}v${'`'} AS select ${'`'}t${'`'}.${'`'}id${'`'} AS ${'`'}id${'`'} from ${'`'}t${'`'} */;
-- Dump completed on 2025-11-04  3:00:00
`;

const EXPECTED: Account[] = [
  { user: 'trig', host: 'localhost' },
  { user: 'ev', host: '%' },
  { user: 'we`ird', host: '%' },
  { user: 'quoted', host: '10.0.%' },
  { user: 'bare', host: 'localhost' },
  { user: 'ghost2', host: '%' },
  { user: 'view', host: '%' },
];

/** Feeds `input` in chunks of the given sizes (cycling); returns the pieces in order. */
function scan(input: Buffer, sizes: number[]): DumpPiece[] {
  const scanner = new DefinerScanner();
  const pieces: DumpPiece[] = [];
  let offset = 0;
  let k = 0;
  while (offset < input.length) {
    const size = sizes[k++ % sizes.length] as number;
    pieces.push(...scanner.push(input.subarray(offset, offset + size)));
    offset += size;
  }
  pieces.push(...scanner.end());
  return pieces;
}

function reassemble(pieces: DumpPiece[], replace?: (account: Account) => string): string {
  return Buffer.concat(
    pieces.map((piece) =>
      Buffer.isBuffer(piece) ? piece : replace ? Buffer.from(replace(piece.account)) : piece.bytes,
    ),
  ).toString('utf8');
}

function accounts(pieces: DumpPiece[]): Account[] {
  return pieces.filter((piece) => !Buffer.isBuffer(piece)).map((piece) => (piece as { account: Account }).account);
}

describe('DefinerScanner', () => {
  const input = Buffer.from(DUMP, 'utf8');

  it('finds the DEFINER clauses of triggers, events, routines and views, and nothing in data or comments', () => {
    const pieces = scan(input, [input.length]);
    assert.deepEqual(accounts(pieces), EXPECTED);
    assert.equal(reassemble(pieces), DUMP);
  });

  it('gives the same clauses and bytes whatever the chunk boundaries', () => {
    for (const sizes of [[1], [2], [3], [7], [13], [64], [1, 5, 2, 11], [4096]]) {
      const pieces = scan(input, sizes);
      assert.deepEqual(accounts(pieces), EXPECTED, `chunks of ${sizes.join(',')}`);
      assert.equal(reassemble(pieces), DUMP, `chunks of ${sizes.join(',')}`);
    }
    // Every single split point.
    for (let at = 1; at < input.length; at++) {
      const scanner = new DefinerScanner();
      const pieces = [...scanner.push(input.subarray(0, at)), ...scanner.push(input.subarray(at)), ...scanner.end()];
      assert.deepEqual(accounts(pieces), EXPECTED, `split at ${at}`);
      assert.equal(reassemble(pieces), DUMP, `split at ${at}`);
    }
  });

  it('replaces exactly the clause bytes when asked', () => {
    const out = reassemble(scan(input, [5]), () => 'DEFINER=CURRENT_USER');
    assert.match(out, /\/\*!50017 DEFINER=CURRENT_USER\*\/ \/\*!50003 TRIGGER/);
    assert.match(out, /\/\*!50013 DEFINER=CURRENT_USER SQL SECURITY DEFINER \*\//);
    assert.match(out, /CREATE DEFINER=CURRENT_USER PROCEDURE `p`\(\)/);
    assert.match(out, /CREATE DEFINER=CURRENT_USER FUNCTION `f`/);
    assert.match(out, /CREATE DEFINER=CURRENT_USER PROCEDURE q\(\)/);
    assert.match(out, /CREATE DEFINER=CURRENT_USER PROCEDURE r\(\)/);
    // Data and comments untouched.
    assert.match(out, /\(1,'DEFINER=`d1`@`h`'\)/);
    assert.match(out, /-- DEFINER=`c4`@`h`/);
    assert.equal(out.match(/DEFINER=CURRENT_USER/g)?.length, EXPECTED.length + 1);
  });

  it('resolves a clause that ends the stream, and one right after another', () => {
    const tail = Buffer.from('SELECT 1; CREATE DEFINER=`a`@`b`');
    assert.deepEqual(accounts(scan(tail, [1])), [{ user: 'a', host: 'b' }]);
    const bare = Buffer.from('x DEFINER=a');
    assert.deepEqual(accounts(scan(bare, [3])), [{ user: 'a', host: '%' }]);
    const twice = Buffer.from('DEFINER=`a`@`b` DEFINER=`c`@`d`D');
    const pieces = scan(twice, [1]);
    assert.deepEqual(accounts(pieces), [
      { user: 'a', host: 'b' },
      { user: 'c', host: 'd' },
    ]);
    assert.equal(reassemble(pieces), twice.toString());
  });

  it('passes a stream with no clause through unchanged, including one that ends in an open capture', () => {
    const text = Buffer.from("INSERT INTO t VALUES ('a'),('b'); -- DEF\nDEFIN");
    const pieces = scan(text, [2]);
    assert.deepEqual(accounts(pieces), []);
    assert.equal(reassemble(pieces), text.toString());
  });
});

describe('parseDefinerClause', () => {
  const parse = (text: string, final = true) => parseDefinerClause(Buffer.from(text), final);

  it('reads the account forms MariaDB accepts (lengths in bytes)', () => {
    assert.deepEqual(parse('DEFINER=`root`@`localhost` SQL'), {
      length: 26,
      account: { user: 'root', host: 'localhost' },
    });
    assert.deepEqual(parse("definer = 'a\\'b'@'%'*/"), { length: 20, account: { user: "a'b", host: '%' } });
    assert.deepEqual(parse('DEFINER="x"@"y" '), { length: 15, account: { user: 'x', host: 'y' } });
    assert.deepEqual(parse('DEFINER=`日本`@`%`'), { length: 20, account: { user: '日本', host: '%' } });
  });

  it('says no to look-alikes and CURRENT_USER', () => {
    assert.equal(parse('DEFINER */'), 'no');
    assert.equal(parse('DEFINERS=`a`@`b`'), 'no');
    assert.equal(parse('DEFAULT NULL'), 'no');
    assert.equal(parse('DEFINER=CURRENT_USER '), 'no');
    assert.equal(parse('DEFINER=current_role()'), 'no');
    assert.equal(parse('DEFINER=(1)'), 'no');
  });

  it('asks for more bytes while a clause may still be growing', () => {
    assert.equal(parse('DEFI', false), 'more');
    assert.equal(parse('DEFINER=`ro', false), 'more');
    assert.equal(parse('DEFINER=`root`', false), 'more'); // `` or @host may follow
    assert.equal(parse('DEFINER=`root`@`lo', false), 'more');
    assert.equal(parse('DEFINER=`a``', false), 'more');
  });

  it('formats accounts for messages', () => {
    assert.equal(formatAccount({ user: 'we`ird', host: '%' }), '`we``ird`@`%`');
  });
});
