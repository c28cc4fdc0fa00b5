import { InvalidArgumentError } from 'commander';
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
    ['0.5', 1],
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
