// The dump reader behind the mariadb source: rows per table, views, routines and the trailer, from
// hand-written dumps in both formats (MariaDB: one tuple per line; MySQL: all tuples on one line),
// split at every byte offset and fed one byte at a time, and refusing everything that is not a
// complete dump of one unnamed database.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { DumpFormatError, DumpScanner, type DumpSummary, DumpValidator } from '../../src/sources/mariadb-rows.js';

const MARIADB_HEADER = `/*M!999999\\- enable the sandbox mode */ 
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
--
-- Host: 127.0.0.1    Database: shop
-- ------------------------------------------------------
-- Server version\t10.11.19-MariaDB-0+deb12u1

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
`;

const TRAILER = `/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;

-- Dump completed on 2026-11-28  7:53:40
`;

/** MariaDB 10.11 style: every tuple on its own line; routines, a trigger, an event and a view. */
const MARIADB_DUMP = `${MARIADB_HEADER}
--
-- Table structure for table \`empty_t\`
--

DROP TABLE IF EXISTS \`empty_t\`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
CREATE TABLE \`empty_t\` (
  \`id\` int(11) DEFAULT NULL COMMENT 'it''s (not) a row; really',
  \`v\` varchar(10) DEFAULT ')'
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
/*!40101 SET character_set_client = @saved_cs_client */;

--
-- Dumping data for table \`empty_t\`
--

LOCK TABLES \`empty_t\` WRITE;
/*!40000 ALTER TABLE \`empty_t\` DISABLE KEYS */;
/*!40000 ALTER TABLE \`empty_t\` ENABLE KEYS */;
UNLOCK TABLES;

DROP TABLE IF EXISTS \`orders\`;
CREATE TABLE \`orders\` (
  \`id\` int(11) NOT NULL AUTO_INCREMENT,
  \`note\` text DEFAULT NULL,
  \`b\` blob DEFAULT NULL,
  PRIMARY KEY (\`id\`)
) ENGINE=InnoDB AUTO_INCREMENT=3 DEFAULT CHARSET=utf8mb4;

LOCK TABLES \`orders\` WRITE;
/*!40000 ALTER TABLE \`orders\` DISABLE KEYS */;
INSERT INTO \`orders\` VALUES
(1,'a\\'b',0x00FF27),
(2,'c\\\\',NULL),
(3,'x\\ny),(z;',0x),
(4,'doubled '' quote; -- not a comment /* nor this */ # nor this',0x28),
(5,"double \\" quoted ), (",NULL),
(6,'é日本 \\0 \\Z \\r',0x3B3B),
(7,'),(),(',0x29);
INSERT INTO \`orders\` VALUES
(8,'second statement',NULL);
/*!40000 ALTER TABLE \`orders\` ENABLE KEYS */;
UNLOCK TABLES;

DROP TABLE IF EXISTS \`we\`\`ird (name); x\`;
CREATE TABLE \`we\`\`ird (name); x\` (
  \`a\` int(11) DEFAULT NULL
) ENGINE=InnoDB;
LOCK TABLES \`we\`\`ird (name); x\` WRITE;
INSERT INTO \`we\`\`ird (name); x\` VALUES
(1),
(2);
UNLOCK TABLES;
/*!50003 SET @saved_cs_client      = @@character_set_client */ ;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=\`root\`@\`127.0.0.1\`*/ /*!50003 TRIGGER trg BEFORE INSERT ON orders FOR EACH ROW BEGIN
  INSERT INTO \`empty_t\` VALUES (1); INSERT INTO \`empty_t\` VALUES (2);
END */;;
DELIMITER ;

--
-- Temporary table structure for view \`v\`
--

DROP TABLE IF EXISTS \`v\`;
/*!50001 DROP VIEW IF EXISTS \`v\`*/;
SET @saved_cs_client     = @@character_set_client;
/*!50001 CREATE VIEW \`v\` AS SELECT
 1 AS \`id\`,
 1 AS \`note\` */;
SET character_set_client = @saved_cs_client;

--
-- Dumping events for database 'shop'
--
DELIMITER ;;
/*!50106 CREATE*/ /*!50117 DEFINER=\`root\`@\`127.0.0.1\`*/ /*!50106 EVENT \`ev\` ON SCHEDULE EVERY 1 DAY DO INSERT INTO empty_t VALUES (3) */ ;;
DELIMITER ;

--
-- Dumping routines for database 'shop'
--
/*!50003 DROP FUNCTION IF EXISTS \`f\` */;
DELIMITER ;;
CREATE DEFINER=\`root\`@\`127.0.0.1\` FUNCTION \`f\`() RETURNS int(11)
    DETERMINISTIC
RETURN 1
;;
DELIMITER ;
/*!50003 DROP PROCEDURE IF EXISTS \`p;q\` */;
DELIMITER ;;
CREATE DEFINER=\`app\`@\`%\` PROCEDURE \`p;q\`(IN x INT)
BEGIN
  -- it's a comment with a quote; and a semicolon
  # another one: ' ;;
  INSERT INTO \`orders\` VALUES (100, ';;', NULL);
  INSERT INTO \`orders\` VALUES (101, ''';;', NULL);
  SELECT ';;' /* ;; */ ;
END ;;
DELIMITER ;

--
-- Final view structure for view \`v\`
--

/*!50001 DROP VIEW IF EXISTS \`v\`*/;
/*!50001 CREATE ALGORITHM=UNDEFINED */
/*!50013 DEFINER=\`root\`@\`127.0.0.1\` SQL SECURITY DEFINER */
/*!50001 VIEW \`v\` AS select \`orders\`.\`id\` AS \`id\`,\`orders\`.\`note\` AS \`note\` from \`orders\` */;
${TRAILER}`;

const MARIADB_EXPECTED = {
  tables: { empty_t: 0, orders: 8, 'we`ird (name); x': 2 },
  views: ['v'],
  routines: ['FUNCTION f', 'PROCEDURE p;q'],
};

/** MySQL 8 style: every tuple of an INSERT on one line. */
const MYSQL_DUMP = `-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)
--
-- Host: localhost    Database: shop
-- ------------------------------------------------------
-- Server version\t8.0.36

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!50503 SET NAMES utf8mb4 */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;

--
-- Table structure for table \`orders\`
--

DROP TABLE IF EXISTS \`orders\`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
/*!50503 SET character_set_client = utf8mb4 */;
CREATE TABLE \`orders\` (
  \`id\` int NOT NULL AUTO_INCREMENT,
  \`note\` varchar(100) DEFAULT NULL,
  \`b\` blob,
  PRIMARY KEY (\`id\`)
) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;
/*!40101 SET character_set_client = @saved_cs_client */;

--
-- Dumping data for table \`orders\`
--

LOCK TABLES \`orders\` WRITE;
/*!40000 ALTER TABLE \`orders\` DISABLE KEYS */;
INSERT INTO \`orders\` VALUES (1,'a\\'b',0x00FF),(2,'x),(y;','z'),(3,NULL,''),(4,'(((',0x);
/*!40000 ALTER TABLE \`orders\` ENABLE KEYS */;
UNLOCK TABLES;

--
-- Table structure for table \`t2\`
--

DROP TABLE IF EXISTS \`t2\`;
CREATE TABLE \`t2\` (
  \`id\` int NOT NULL
) ENGINE=InnoDB;

LOCK TABLES \`t2\` WRITE;
/*!40000 ALTER TABLE \`t2\` DISABLE KEYS */;
/*!40000 ALTER TABLE \`t2\` ENABLE KEYS */;
UNLOCK TABLES;

--
-- Temporary view structure for view \`v\`
--

DROP TABLE IF EXISTS \`v\`;
/*!50001 DROP VIEW IF EXISTS \`v\`*/;
SET @saved_cs_client     = @@character_set_client;
/*!50503 SET character_set_client = utf8mb4 */;
/*!50001 CREATE VIEW \`v\` AS SELECT 
 1 AS \`id\`*/;
SET character_set_client = @saved_cs_client;

--
-- Dumping routines for database 'shop'
--
/*!50003 DROP PROCEDURE IF EXISTS \`p\` */;
/*!50003 SET @saved_cs_client      = @@character_set_client */ ;
DELIMITER ;;
CREATE DEFINER=\`root\`@\`localhost\` PROCEDURE \`p\`()
BEGIN SELECT 1; END ;;
DELIMITER ;

--
-- Final view structure for view \`v\`
--

/*!50001 DROP VIEW IF EXISTS \`v\`*/;
/*!50001 SET @saved_cs_client          = @@character_set_client */;
/*!50001 CREATE ALGORITHM=UNDEFINED */
/*!50013 DEFINER=\`root\`@\`localhost\` SQL SECURITY DEFINER */
/*!50001 VIEW \`v\` AS select \`orders\`.\`id\` AS \`id\` from \`orders\` */;
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;

-- Dump completed on 2024-05-01 10:00:00
`;

const MYSQL_EXPECTED = { tables: { orders: 4, t2: 0 }, views: ['v'], routines: ['PROCEDURE p'] };

function plain(summary: DumpSummary) {
  return {
    tables: Object.fromEntries(summary.tables),
    views: [...summary.views].sort(),
    routines: [...summary.routines].sort(),
  };
}

/** Scans `data` cut into pieces at `cuts` (sorted offsets). */
function scanCut(data: Buffer, cuts: number[]): DumpSummary {
  const scanner = new DumpScanner();
  let from = 0;
  for (const cut of [...cuts, data.length]) {
    scanner.push(data.subarray(from, cut));
    from = cut;
  }
  return scanner.end();
}

function scanInChunksOf(data: Buffer, size: number): DumpSummary {
  const scanner = new DumpScanner();
  for (let i = 0; i < data.length; i += size) scanner.push(data.subarray(i, i + size));
  return scanner.end();
}

/** Escapes bytes as mariadb-dump does (mysql_real_escape_string) inside '…'. */
function escapeForDump(bytes: Buffer): Buffer {
  const out: number[] = [];
  const escapes: Record<number, number> = { 0: 0x30, 10: 0x6e, 13: 0x72, 26: 0x5a, 39: 0x27, 34: 0x22, 92: 0x5c };
  for (const b of bytes) {
    const escaped = escapes[b];
    if (escaped === undefined) out.push(b);
    else out.push(0x5c, escaped);
  }
  return Buffer.from(out);
}

/** A dump of table `bin` holding one row per byte value, each a string of nasty bytes around it. */
function binaryDump(): { dump: Buffer; rows: number } {
  const parts: Buffer[] = [
    Buffer.from(`${MARIADB_HEADER}CREATE TABLE \`bin\` (\`id\` int, \`s\` blob);\nINSERT INTO \`bin\` VALUES\n`),
  ];
  for (let byte = 0; byte < 256; byte++) {
    const raw = Buffer.from([byte, 0x27, 0x28, byte, 0x29, 0x2c, 0x3b, 0x5c, byte, 0x22, 0x0a]);
    parts.push(Buffer.from(`(${byte},'`), escapeForDump(raw), Buffer.from(byte === 255 ? "');\n" : "'),\n"));
  }
  parts.push(Buffer.from(TRAILER));
  return { dump: Buffer.concat(parts), rows: 256 };
}

describe('mariadb dump reader', () => {
  it('counts the rows of a MariaDB-style dump (one tuple per line) and finds its views and routines', () => {
    const summary = scanCut(Buffer.from(MARIADB_DUMP), []);
    assert.deepEqual(plain(summary), MARIADB_EXPECTED);
    assert.equal(summary.bytes, Buffer.byteLength(MARIADB_DUMP));
  });

  it('counts the rows of a MySQL-style dump (all tuples on one line)', () => {
    assert.deepEqual(plain(scanCut(Buffer.from(MYSQL_DUMP), [])), MYSQL_EXPECTED);
  });

  for (const [label, text, expected] of [
    ['MariaDB', MARIADB_DUMP, MARIADB_EXPECTED],
    ['MySQL', MYSQL_DUMP, MYSQL_EXPECTED],
  ] as const) {
    it(`gives the same answer for a ${label} dump split at every byte offset`, () => {
      const data = Buffer.from(text);
      for (let cut = 0; cut <= data.length; cut++) {
        assert.deepEqual(plain(scanCut(data, [cut])), expected, `split at byte ${cut}`);
      }
    });

    it(`gives the same answer for a ${label} dump fed one byte at a time, and in chunks of 2, 3 and 7`, () => {
      const data = Buffer.from(text);
      for (const size of [1, 2, 3, 7])
        assert.deepEqual(plain(scanInChunksOf(data, size)), expected, `chunks of ${size}`);
    });

    it(`refuses every truncation of a ${label} dump`, () => {
      const data = Buffer.from(text);
      for (let length = 0; length < data.length; length++) {
        assert.throws(() => scanCut(data.subarray(0, length), []), DumpFormatError, `cut to ${length} bytes`);
      }
    });
  }

  it('counts rows whose strings hold every byte value, escaped as mariadb-dump does, at every split', () => {
    const { dump, rows } = binaryDump();
    assert.deepEqual(plain(scanCut(dump, [])).tables, { bin: rows });
    for (let cut = 0; cut <= dump.length; cut += 1) {
      assert.equal(scanCut(dump, [cut]).tables.get('bin'), rows, `split at byte ${cut}`);
    }
    assert.equal(scanInChunksOf(dump, 1).tables.get('bin'), rows);
  });

  it('handles doubled quotes, double-quoted strings and parentheses nested in values', () => {
    const dump = Buffer.from(
      `${MARIADB_HEADER}CREATE TABLE \`t\` (a text);\n` +
        "INSERT INTO `t` VALUES ('it''s'),(''),(''''),(\"a \"\" b\"),(('x')),(ST_GeomFromText('POINT(1 2)')),(_binary 'z\\'');\n" +
        TRAILER,
    );
    for (let cut = 0; cut <= dump.length; cut++) assert.equal(scanCut(dump, [cut]).tables.get('t'), 7);
  });

  it('counts a very long MySQL-style line (100 000 tuples) and a 5 MB value, in random chunks', () => {
    const tuples = Array.from({ length: 100_000 }, (_, i) => `(${i},'v${i}\\'),(',NULL)`).join(',');
    const big = `'${'x'.repeat(5_000_000)}\\'${'(;'.repeat(1000)}'`;
    const dump = Buffer.from(
      `${MARIADB_HEADER}CREATE TABLE \`t\` (a int, b text, c int);\nINSERT INTO \`t\` VALUES ${tuples};\n` +
        `CREATE TABLE \`u\` (a text);\nINSERT INTO \`u\` VALUES (${big}),(${big});\n${TRAILER}`,
    );
    let seed = 7;
    const cuts: number[] = [];
    for (let at = 0; ; ) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      at += 1 + (seed % 100_000);
      if (at >= dump.length) break;
      cuts.push(at);
    }
    assert.deepEqual(plain(scanCut(dump, cuts)).tables, { t: 100_000, u: 2 });
  });

  it('refuses a dump that names its database (USE or CREATE DATABASE)', () => {
    for (const statement of [
      'USE `shop`;',
      'CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;',
    ]) {
      const dump = Buffer.from(`${MARIADB_HEADER}${statement}\n${TRAILER}`);
      assert.throws(() => scanCut(dump, []), /names a database/);
    }
  });

  it('refuses an empty dump, a missing trailer, a trailer without its date and a trailer with more after it', () => {
    assert.throws(() => scanCut(Buffer.alloc(0), []), /the dump is empty/);
    const noTrailer = MARIADB_DUMP.replace('-- Dump completed on 2026-11-28  7:53:40\n', '');
    assert.throws(
      () => scanCut(Buffer.from(noTrailer), []),
      /does not end with its "-- Dump completed on <date>" line/,
    );
    const noDate = MARIADB_DUMP.replace(' on 2026-11-28  7:53:40', '');
    assert.throws(() => scanCut(Buffer.from(noDate), []), /Dump completed/);
    const more = `${MARIADB_DUMP}INSERT INTO \`orders\` VALUES (9,'late',NULL);\n`;
    assert.throws(() => scanCut(Buffer.from(more), []), /Dump completed/);
    const trailerInString = `${MARIADB_HEADER}CREATE TABLE \`t\` (a text);\nINSERT INTO \`t\` VALUES ('\n-- Dump completed on 2026-11-28  7:53:40\n`;
    assert.throws(() => scanCut(Buffer.from(trailerInString), []), /in the middle of a statement/);
  });

  it('refuses INSERT statements it cannot count, and rows for a table never created', () => {
    const columns = `${MARIADB_HEADER}CREATE TABLE \`t\` (a int);\nINSERT INTO \`t\` (\`a\`) VALUES (1);\n${TRAILER}`;
    assert.throws(() => scanCut(Buffer.from(columns), []), /cannot read the INSERT statement/);
    const uncreated = `${MARIADB_HEADER}INSERT INTO \`t\` VALUES (1);\n${TRAILER}`;
    assert.throws(() => scanCut(Buffer.from(uncreated), []), /inserts into table t before creating it/);
    const garbage = `${MARIADB_HEADER}CREATE TABLE \`t\` (a int);\nINSERT INTO \`t\` VALUES (1) x (2);\n${TRAILER}`;
    assert.throws(() => scanCut(Buffer.from(garbage), []), /unexpected byte 0x78 between the rows of an INSERT into t/);
  });

  it('passes the dump through unchanged and ends only after verify accepted it', async () => {
    const data = Buffer.from(MARIADB_DUMP);
    const seen: string[] = [];
    const validator = new DumpValidator((summary) => {
      seen.push([...summary.tables.keys()].join(','));
    });
    const out: Buffer[] = [];
    await pipeline(
      Readable.from([data.subarray(0, 1000), data.subarray(1000)]),
      validator,
      async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) out.push(chunk);
      },
    );
    assert.ok(Buffer.concat(out).equals(data));
    assert.deepEqual(seen, ['empty_t,orders,we`ird (name); x']);
    assert.deepEqual(plain(validator.summary as DumpSummary), MARIADB_EXPECTED);
  });

  it('errors instead of ending when verify rejects, or when the dump is cut short', async () => {
    const drain = async (source: AsyncIterable<Buffer>) => {
      for await (const _ of source);
    };
    const refusing = new DumpValidator(async () => {
      throw new Error('tables missing from the dump: x');
    });
    await assert.rejects(pipeline(Readable.from([Buffer.from(MARIADB_DUMP)]), refusing, drain), /tables missing/);
    assert.equal(refusing.summary, undefined);

    const cut = new DumpValidator(() => {});
    await assert.rejects(pipeline(Readable.from([Buffer.from(MARIADB_DUMP.slice(0, 2000))]), cut, drain), /cut short/);
    assert.equal(cut.summary, undefined);
  });
});
