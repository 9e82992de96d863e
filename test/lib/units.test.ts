import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  formatBytes,
  formatCount,
  formatDuration,
  parseDuration,
  parsePercent,
  parseSize,
} from '../../src/lib/units.js';

const SIZE_FORMS = 'write it like 600MB, 1GiB or 1048576 (bytes)';

describe('parseSize', () => {
  it('reads plain integers as bytes', () => {
    assert.equal(parseSize('0'), 0);
    assert.equal(parseSize('1'), 1);
    assert.equal(parseSize('1048576'), 1_048_576);
    assert.equal(parseSize(String(Number.MAX_SAFE_INTEGER)), Number.MAX_SAFE_INTEGER);
  });

  it('reads decimal units as powers of 1000', () => {
    assert.equal(parseSize('7B'), 7);
    assert.equal(parseSize('1KB'), 1000);
    assert.equal(parseSize('600MB'), 600_000_000);
    assert.equal(parseSize('1GB'), 1_000_000_000);
    assert.equal(parseSize('5GB'), 5_000_000_000);
    assert.equal(parseSize('2TB'), 2_000_000_000_000);
    assert.equal(parseSize('8PB'), 8_000_000_000_000_000);
  });

  it('reads binary units as powers of 1024', () => {
    assert.equal(parseSize('1KiB'), 1024);
    assert.equal(parseSize('1MiB'), 2 ** 20);
    assert.equal(parseSize('4GiB'), 2 ** 32);
    assert.equal(parseSize('5GiB'), 5 * 2 ** 30);
    assert.equal(parseSize('1TiB'), 2 ** 40);
    assert.equal(parseSize('1PiB'), 2 ** 50);
    assert.equal(parseSize('1024TiB'), 2 ** 50);
    assert.equal(parseSize('7PiB'), 7 * 2 ** 50);
  });

  it('accepts any case except bits-looking and allows a space before the unit', () => {
    assert.equal(parseSize('1kB'), 1000);
    assert.equal(parseSize('1kb'), 1000);
    assert.equal(parseSize('1mb'), 1_000_000);
    assert.equal(parseSize('1gib'), 2 ** 30);
    assert.equal(parseSize('1GIB'), 2 ** 30);
    assert.equal(parseSize('1b'), 1);
    assert.equal(parseSize('600 MB'), 600_000_000);
    assert.equal(parseSize('  2GB  '), 2_000_000_000);
  });

  it('computes decimals exactly and rounds down to whole bytes', () => {
    assert.equal(parseSize('1.5GB'), 1_500_000_000);
    assert.equal(parseSize('1.5KiB'), 1536);
    assert.equal(parseSize('0.001KB'), 1);
    assert.equal(parseSize('0.0009KB'), 0);
    assert.equal(parseSize('1.9999B'), 1);
    assert.equal(parseSize('0.1KiB'), 102);
    assert.equal(parseSize('4.294967296GB'), 2 ** 32);
    assert.equal(parseSize('7.999999999999999PiB'), 9_007_199_254_740_990);
  });

  it('refuses sizes beyond the largest safe integer', () => {
    assert.throws(() => parseSize('9007199254740992'), /too large/);
    assert.throws(() => parseSize('8PiB'), /"8PiB" is too large/);
    assert.throws(() => parseSize('10PB'), /too large/);
    assert.throws(() => parseSize('99999999999999999999999PB'), /too large/);
  });

  it('refuses what is not a size, naming the accepted forms', () => {
    assert.throws(() => parseSize('10 gigs'), { message: `"10 gigs" is not a size; ${SIZE_FORMS}` });
    for (const text of ['', ' ', 'MB', '-5MB', '-1', '1e9', '1E3', '1.MB', '.5MB', '0x10', '1,000', '1_000', 'NaN']) {
      assert.throws(() => parseSize(text), { message: `"${text}" is not a size; ${SIZE_FORMS}` }, text);
    }
    assert.throws(() => parseSize('Infinity'), /is not a size/);
    assert.throws(() => parseSize('1 ZB'), /is not a size/);
  });

  it('refuses ambiguous bare prefixes and bit-looking units with the fix', () => {
    assert.throws(() => parseSize('1G'), {
      message: '"1G" is ambiguous: write 1GB for powers of 1000 or 1GiB for powers of 1024',
    });
    assert.throws(() => parseSize('1.5m'), {
      message: '"1.5m" is ambiguous: write 1.5MB for powers of 1000 or 1.5MiB for powers of 1024',
    });
    assert.throws(() => parseSize('2Gi'), /ambiguous/);
    assert.throws(() => parseSize('100Mb'), { message: '"100Mb" reads as bits (lowercase b); write MB for bytes' });
    assert.throws(() => parseSize('1Gib'), /reads as bits/);
    assert.throws(() => parseSize('1KIb'), /reads as bits/);
  });
});

describe('parseDuration', () => {
  it('reads every unit', () => {
    assert.equal(parseDuration('850ms'), 850);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('10m'), 600_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('26h'), 93_600_000);
    assert.equal(parseDuration('7d'), 604_800_000);
    assert.equal(parseDuration('2w'), 1_209_600_000);
    assert.equal(parseDuration('0s'), 0);
  });

  it('reads combinations, largest unit first, with or without spaces', () => {
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('1h 30m'), 5_400_000);
    assert.equal(parseDuration(' 2d4h '), 187_200_000);
    assert.equal(parseDuration('1w2d3h4m5s6ms'), 788_645_006);
    assert.equal(parseDuration('1m500ms'), 60_500);
  });

  it('reads decimals, rounding down to whole milliseconds', () => {
    assert.equal(parseDuration('1.5h'), 5_400_000);
    assert.equal(parseDuration('0.5s'), 500);
    assert.equal(parseDuration('0.0005s'), 0);
    assert.equal(parseDuration('1.0009s'), 1000);
  });

  it('handles durations beyond 2^32 ms and refuses beyond 2^53', () => {
    assert.equal(parseDuration('100d'), 8_640_000_000);
    assert.equal(parseDuration('14000w'), 8_467_200_000_000);
    assert.throws(() => parseDuration('1000000000w'), /too long/);
  });

  it('refuses what is not a duration, naming the accepted forms', () => {
    const forms = 'write it like 850ms, 30s, 10m, 1h30m, 26h or 7d (units: ms, s, m, h, d, w)';
    for (const text of ['30', '', ' ', '1 hour', '1h30', '-1s', '1e3s', '1M', '1H', '10 minutes', 'h', '.5h']) {
      assert.throws(() => parseDuration(text), { message: `"${text}" is not a duration; ${forms}` }, text);
    }
  });

  it('refuses units out of order or repeated', () => {
    assert.throws(() => parseDuration('30m1h'), {
      message: '"30m1h" is not a duration: write each unit once, largest first (like 1h30m)',
    });
    assert.throws(() => parseDuration('1h1h'), /largest first/);
    assert.throws(() => parseDuration('1ms1s'), /largest first/);
  });
});

describe('parsePercent', () => {
  it('returns basis points from strings and numbers', () => {
    assert.equal(parsePercent('20%'), 2000);
    assert.equal(parsePercent('12.5%'), 1250);
    assert.equal(parsePercent('0%'), 0);
    assert.equal(parsePercent('100%'), 10_000);
    assert.equal(parsePercent('250%'), 25_000);
    assert.equal(parsePercent('10'), 1000);
    assert.equal(parsePercent(' 10 % '), 1000);
    assert.equal(parsePercent(10), 1000);
    assert.equal(parsePercent(12.5), 1250);
    assert.equal(parsePercent(0), 0);
  });

  it('rounds finer than a basis point down', () => {
    assert.equal(parsePercent('12.345%'), 1234);
    assert.equal(parsePercent('0.001%'), 0);
    assert.equal(parsePercent(33.339), 3333);
  });

  it('refuses what is not a percentage', () => {
    for (const value of ['-5%', 'ten', '5%%', '', '%', '1e2%', -1, Number.NaN, Number.POSITIVE_INFINITY, 1e-7]) {
      assert.throws(() => parsePercent(value), /is not a percentage; write it like 20%, 12.5% or 0%/, String(value));
    }
    assert.throws(() => parsePercent('1000000000000000000%'), /too large/);
  });
});

/** Powers of two and of ten, and their neighbours, from 0 to beyond 2^53. */
function interestingNumbers(): number[] {
  const values = new Set<number>([0, 1, 9, 10, 99, 999, 1000, 1001]);
  for (let exponent = 0; exponent <= 60; exponent++) {
    const power = 2 ** exponent;
    for (const value of [power - 1, power, power + 1]) if (value >= 0) values.add(value);
  }
  for (let exponent = 0; exponent <= 21; exponent++) {
    const power = 10 ** exponent;
    for (const value of [power - 1, power, power + 1, power * 1.5]) values.add(value);
  }
  values.add(Number.MAX_SAFE_INTEGER);
  return [...values].filter((value) => Number.isInteger(value)).sort((a, b) => a - b);
}

describe('formatBytes', () => {
  it('formats small sizes in bytes', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1), '1 B');
    assert.equal(formatBytes(999), '999 B');
  });

  it('formats larger sizes in decimal units with one decimal', () => {
    assert.equal(formatBytes(1000), '1.0 kB');
    assert.equal(formatBytes(1049), '1.0 kB');
    assert.equal(formatBytes(1050), '1.1 kB');
    assert.equal(formatBytes(290_940_000), '290.9 MB');
    assert.equal(formatBytes(4_300_000_000), '4.3 GB');
    assert.equal(formatBytes(2 ** 32), '4.3 GB');
    assert.equal(formatBytes(1_500_000_000_000), '1.5 TB');
    assert.equal(formatBytes(2 ** 50), '1.1 PB');
    assert.equal(formatBytes(Number.MAX_SAFE_INTEGER), '9.0 PB');
  });

  it('moves to the next unit instead of showing 1000.0', () => {
    assert.equal(formatBytes(999_949), '999.9 kB');
    assert.equal(formatBytes(999_950), '1.0 MB');
    assert.equal(formatBytes(999_999_999), '1.0 GB');
  });

  it('stays in PB beyond a thousand of them and never prints an exponent', () => {
    assert.equal(formatBytes(1e18), '1000.0 PB');
    assert.equal(formatBytes(1e21), '1000000.0 PB');
    assert.equal(formatBytes(-1500), '-1.5 kB');
    for (const value of interestingNumbers()) {
      const text = formatBytes(value);
      assert.match(text, /^\d+(\.\d)? (B|kB|MB|GB|TB|PB)$/, `${value} → ${text}`);
      assert.doesNotMatch(text, /e/, `${value} → ${text}`);
    }
  });

  it('refuses NaN and Infinity', () => {
    assert.throws(() => formatBytes(Number.NaN), RangeError);
    assert.throws(() => formatBytes(Number.POSITIVE_INFINITY), RangeError);
  });
});

describe('formatDuration', () => {
  it('formats each range', () => {
    assert.equal(formatDuration(0), '0ms');
    assert.equal(formatDuration(850), '850ms');
    assert.equal(formatDuration(999), '999ms');
    assert.equal(formatDuration(1000), '1.0s');
    assert.equal(formatDuration(12_345), '12.3s');
    assert.equal(formatDuration(59_999), '59.9s');
    assert.equal(formatDuration(60_000), '1m00s');
    assert.equal(formatDuration(245_000), '4m05s');
    assert.equal(formatDuration(3_599_999), '59m59s');
    assert.equal(formatDuration(3_600_000), '1h00m');
    assert.equal(formatDuration(26 * 3_600_000), '26h00m');
    assert.equal(formatDuration(48 * 3_600_000 - 1), '47h59m');
    assert.equal(formatDuration(48 * 3_600_000), '2d00h');
    assert.equal(formatDuration(76 * 3_600_000 + 59 * 60_000), '3d04h');
    assert.equal(formatDuration(-1500), '-1.5s');
  });

  it('never prints an exponent, up to 2^53 and beyond', () => {
    assert.equal(formatDuration(Number.MAX_SAFE_INTEGER), '104249991d08h');
    for (const value of interestingNumbers()) {
      const text = formatDuration(value);
      assert.match(text, /^(\d+ms|\d+\.\ds|\d+m\d\ds|\d+h\d\dm|\d+d\d\dh)$/, `${value} → ${text}`);
    }
  });
});

describe('formatCount', () => {
  it('groups thousands with commas', () => {
    assert.equal(formatCount(0), '0');
    assert.equal(formatCount(999), '999');
    assert.equal(formatCount(1000), '1,000');
    assert.equal(formatCount(1_000_000), '1,000,000');
    assert.equal(formatCount(-1_234_567), '-1,234,567');
    assert.equal(formatCount(2 ** 32), '4,294,967,296');
    assert.equal(formatCount(Number.MAX_SAFE_INTEGER), '9,007,199,254,740,991');
    assert.equal(formatCount(1e21), '1,000,000,000,000,000,000,000');
  });

  it('never prints an exponent', () => {
    for (const value of interestingNumbers()) assert.match(formatCount(value), /^\d{1,3}(,\d{3})*$/, String(value));
  });
});
