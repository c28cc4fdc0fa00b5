import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseContentRange, parseRetryAfter } from '../../src/webseed/client.js';

const params = { seed: Number(process.env['FUZZ_SEED'] ?? 42), numRuns: 2000 };

describe('parseContentRange', () => {
  it('reads first and last byte positions, and the total when known', () => {
    expect(parseContentRange('bytes 0-1023/5000')).toEqual({ first: 0, last: 1023, total: 5000 });
    expect(parseContentRange('bytes 100-199/*')).toEqual({ first: 100, last: 199 });
    expect(parseContentRange('Bytes  7-7 / 8')).toEqual({ first: 7, last: 7, total: 8 });
  });

  it('refuses anything else', () => {
    for (const v of [
      '',
      'bytes */5000',
      'bytes 0-/5000',
      'bytes -5/5000',
      'bytes 1-2',
      'items 0-1/2',
      'bytes 0-1/2, bytes 3-4/5',
      'bytes 99999999999999999-1/2',
      'bytes 0-9999999999999999/2',
      'bytes 0-1/9999999999999999',
    ]) {
      expect(parseContentRange(v)).toBeNull();
    }
  });

  it('never throws and returns safe integers for any header value', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' })), (v) => {
        const r = parseContentRange(v);
        if (r !== null) {
          expect(Number.isSafeInteger(r.first)).toBe(true);
          expect(Number.isSafeInteger(r.last)).toBe(true);
        }
      }),
      params,
    );
    fc.assert(
      fc.property(fc.nat(), fc.nat(), fc.nat(), (a, b, t) => {
        expect(parseContentRange(`bytes ${a}-${b}/${t}`)).toEqual({ first: a, last: b, total: t });
      }),
      params,
    );
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('Sun, 06 Dec 2026 05:00:00 GMT');
  it('reads delay-seconds and HTTP dates', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Sun, 06 Dec 2026 05:01:30 GMT', now)).toBe(90_000);
    expect(parseRetryAfter('Sun, 06 Dec 2026 04:00:00 GMT', now)).toBe(0);
  });
  it('ignores anything else', () => {
    for (const v of [
      undefined,
      '',
      '-5',
      '1.5',
      '12345678901',
      'soon',
      'Sun, 06 Dec 2026',
      '0x10',
    ]) {
      expect(parseRetryAfter(v, now)).toBeUndefined();
    }
  });
});
