import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  judgeReply,
  parseContentRange,
  parseRetryAfter,
  WebSeedError,
  type AskedRange,
} from '../../src/webseed/reply.js';

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

describe('judgeReply', () => {
  // Bytes 1000-1999 of file 2 (5,000 bytes) of a multi-file torrent.
  const asked: AskedRange = {
    seed: 'http://s/',
    target: 'http://s/t/b.bin',
    start: 1000,
    end: 2000,
    fileIndex: 2,
    fileLength: 5000,
    multiFile: true,
    now: 0,
  };
  const fault = (status: number, headers: Record<string, string>, r = asked) => {
    try {
      judgeReply(status, headers, r);
    } catch (e) {
      expect(e).toBeInstanceOf(WebSeedError);
      const w = e as WebSeedError;
      return {
        fault: w.fault,
        lackedFile: w.lackedFile,
        statusCode: w.statusCode,
        message: w.message,
      };
    }
    throw new Error('no fault');
  };

  it('takes a 206 of exactly the range, and a redirect to follow', () => {
    const cr = { 'content-range': 'bytes 1000-1999/5000', 'content-length': '1000' };
    expect(judgeReply(206, cr, asked)).toBe('range');
    expect(judgeReply(302, { location: 'http://t/' }, asked)).toBe('redirect');
  });

  it('a 200 is the range when that is the whole file, else read from the start', () => {
    const whole = { ...asked, start: 0, end: 5000 };
    expect(judgeReply(200, { 'content-length': '5000' }, whole)).toBe('range');
    expect(judgeReply(200, {}, { ...asked, multiFile: false })).toBe('whole');
    expect(judgeReply(200, { 'content-length': '5000' }, asked)).toBe('whole');
    // The whole file of another length: another version of it, which the seed lacks.
    expect(fault(200, { 'content-length': '4999' })).toMatchObject({
      fault: 'range',
      lackedFile: 2,
    });
  });

  it('a missing file, a shorter or longer copy: that file is lacked (multi-file only)', () => {
    expect(fault(404, {})).toMatchObject({ fault: 'not-found', lackedFile: 2 });
    expect(fault(410, {}, { ...asked, multiFile: false })).toMatchObject({
      fault: 'not-found',
      lackedFile: undefined,
    });
    expect(fault(416, {})).toMatchObject({ fault: 'range', lackedFile: 2 });
    const longer = { 'content-range': 'bytes 1000-1999/6000' };
    expect(fault(206, longer)).toMatchObject({ fault: 'range', lackedFile: 2 });
    // Another range of the same file says nothing of the file.
    const other = { 'content-range': 'bytes 0-999/5000' };
    expect(fault(206, other)).toMatchObject({ fault: 'range', lackedFile: undefined });
    expect(fault(206, {}).fault).toBe('range');
  });

  it('an encoded body, another status, a wrong length', () => {
    const cr = { 'content-range': 'bytes 1000-1999/5000' };
    expect(fault(206, { ...cr, 'content-encoding': 'gzip' }).fault).toBe('status');
    expect(judgeReply(206, { ...cr, 'content-encoding': 'identity' }, asked)).toBe('range');
    expect(fault(503, { 'retry-after': '7' })).toMatchObject({
      fault: 'status',
      statusCode: 503,
      message: 'web seed http://s/: HTTP status 503 for http://s/t/b.bin (Retry-After 7s)',
    });
    expect(fault(206, { ...cr, 'content-length': '999' }).fault).toBe('length');
  });
});
