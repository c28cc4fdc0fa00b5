import { InvalidArgumentError } from 'commander';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_RATE, parseRate } from '../../src/cli/rate.js';

describe('parseRate', () => {
  const good: [string, number][] = [
    ['0', 0],
    ['0K', 0],
    ['0.0M', 0],
    ['1', 1],
    ['1000', 1000],
    ['1000B', 1000],
    ['1000B/s', 1000],
    ['1000/s', 1000],
    ['500K', 512_000],
    ['500k', 512_000],
    ['500KiB', 512_000],
    ['500KB', 512_000],
    ['500kB/s', 512_000],
    ['500 K', 512_000],
    [' 2M ', 2 * 1024 * 1024],
    ['2M/s', 2 * 1024 * 1024],
    ['2MiB/s', 2 * 1024 * 1024],
    ['1.5M', 1_572_864],
    ['.5K', 512],
    ['1.K', 1024],
    ['1G', 1024 ** 3],
    ['1T', 1024 ** 4],
    ['1024G', 1024 ** 4],
    ['1.4', 1],
    ['007K', 7168],
  ];
  for (const [s, n] of good) {
    it(`reads ${JSON.stringify(s)} as ${n}`, () => expect(parseRate(s)).toBe(n));
  }

  const bad: [string, RegExp][] = [
    ['', /not a rate/],
    ['   ', /not a rate/],
    ['abc', /not a rate/],
    ['1iB', /not a rate/],
    ['5ib', /not a rate/],
    ['NaN', /not a rate/],
    ['Infinity', /not a rate/],
    ['1e3', /not a rate/],
    ['0x10', /not a rate/],
    ['1.2.3', /not a rate/],
    ['5KK', /not a rate/],
    ['5X', /not a rate/],
    ['K', /not a rate/],
    ['.', /not a rate/],
    ['5 M B', /not a rate/],
    ['5M/h', /not a rate/],
    ['+5', /not a rate/],
    ['-1', /negative/],
    ['-500K', /negative/],
    ['-0', /negative/],
    ['5Mb', /bits/],
    ['5kib', /bits/],
    ['1025G', /maximum/],
    ['1.0001T', /maximum/],
    ['99999999999999999999999T', /maximum/],
    ['9'.repeat(400), /maximum/],
    ['0.4', /below 1 byte/],
    ['0.5', /below 1 byte/],
  ];
  for (const [s, why] of bad) {
    it(`refuses ${JSON.stringify(s)}`, () => {
      expect(() => parseRate(s)).toThrow(InvalidArgumentError);
      expect(() => parseRate(s)).toThrow(why);
    });
  }

  it('MAX_RATE is 1 TiB/s and accepted', () => {
    expect(MAX_RATE).toBe(1024 ** 4);
    expect(parseRate(String(MAX_RATE))).toBe(MAX_RATE);
    expect(() => parseRate(String(MAX_RATE + 1))).toThrow(/maximum/);
  });

  it('quotes the offending text in the message', () => {
    expect(() => parseRate('fast')).toThrow('"fast"');
  });
});

describe('parseRate, properties (seeded)', () => {
  const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 42;
  const numRuns = process.env.FUZZ_RUNS !== undefined ? Number(process.env.FUZZ_RUNS) : 3000;

  it('returns a whole rate in [0, 1 TiB/s] or throws InvalidArgumentError, nothing else', () => {
    const alphabet = fc.constantFrom(...'0123456789.kKmMgGtTiIbB/s -+eExX '.split(''));
    const text = fc.oneof(
      fc.string(),
      fc.array(alphabet, { maxLength: 20 }).map((a) => a.join('')),
    );
    fc.assert(
      fc.property(text, (s) => {
        let n: number;
        try {
          n = parseRate(s);
        } catch (e) {
          expect(e).toBeInstanceOf(InvalidArgumentError);
          return;
        }
        expect(Number.isInteger(n)).toBe(true);
        expect(n).toBeGreaterThanOrEqual(0);
        expect(n).toBeLessThanOrEqual(MAX_RATE);
      }),
      { seed, numRuns },
    );
  });

  it('reads back what it is given in any unit', () => {
    const unit = fc.constantFrom(
      ['', 1],
      ['K', 1024],
      ['M', 1024 ** 2],
      ['G', 1024 ** 3],
    ) as fc.Arbitrary<[string, number]>;
    fc.assert(
      fc.property(
        fc.nat({ max: 1023 }),
        unit,
        fc.constantFrom('', 'B', 'iB', '/s', 'B/s'),
        (n, [u, f], tail) => {
          const t = u === '' && tail.startsWith('i') ? 'B' : tail;
          expect(parseRate(`${n}${u}${t}`)).toBe(n * f);
        },
      ),
      { seed, numRuns },
    );
  });
});
