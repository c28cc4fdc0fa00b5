import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CLOSE_REQUEST_LENGTH,
  MAX_REQUEST_LENGTH,
  type RequestContext,
  checkRequest,
} from '../../src/swarm/request-check.js';

const PL = 4 * 16384;
const LAST = 20_000;

/** 3 pieces of PL bytes and a short last one; we have pieces 0, 1 and 3. */
function ctx(over: Partial<RequestContext> = {}): RequestContext {
  return {
    pieceCount: 4,
    pieceSize: (i) => (i === 3 ? LAST : PL),
    have: (i) => i !== 2,
    choking: false,
    allowedFast: () => false,
    queued: 0,
    maxQueue: 250,
    ...over,
  };
}

const req = (index: number, begin: number, length: number) => ({ index, begin, length });

describe('checkRequest', () => {
  it('accepts a block inside a piece we have, up to its end', () => {
    expect(checkRequest(req(0, 0, 16384), ctx())).toEqual({ ok: true });
    expect(checkRequest(req(1, PL - 16384, 16384), ctx())).toEqual({ ok: true });
    expect(checkRequest(req(3, 16384, LAST - 16384), ctx())).toEqual({ ok: true });
    expect(checkRequest(req(0, 5, 1), ctx())).toEqual({ ok: true });
  });

  const cases: [
    string,
    { index: number; begin: number; length: number },
    Partial<RequestContext>,
    string,
    RegExp,
  ][] = [
    ['a length of 0', req(0, 0, 0), {}, 'reject', /0 bytes/],
    ['a length just over 16 KiB', req(0, 0, MAX_REQUEST_LENGTH + 1), {}, 'reject', /16385/],
    ['a length of 128 KiB', req(0, 0, CLOSE_REQUEST_LENGTH), {}, 'reject', /131072/],
    ['a length over 128 KiB', req(0, 0, CLOSE_REQUEST_LENGTH + 1), {}, 'close', /131073/],
    ['a huge length on a missing piece', req(99, 0, 0xffffffff), {}, 'close', /4294967295/],
    ['an index past the end', req(4, 0, 16384), {}, 'reject', /piece 4 of 4/],
    ['the largest index', req(0xffffffff, 0, 16384), {}, 'reject', /of 4/],
    ['a block past the piece end', req(0, PL - 16383, 16384), {}, 'reject', /outside/],
    ['a block past the short last piece', req(3, 16384, LAST - 16384 + 1), {}, 'reject', /outside/],
    ['a begin past the piece', req(1, PL, 1), {}, 'reject', /outside/],
    ['begin + length overflowing 32 bits', req(1, 0xffffffff, 16384), {}, 'reject', /outside/],
    ['a piece we do not have', req(2, 0, 16384), {}, 'reject', /do not have/],
    ['a request while we choke', req(0, 0, 16384), { choking: true }, 'reject', /choked/],
    ['a full queue', req(0, 0, 16384), { queued: 250 }, 'reject', /queue full/],
    ['an over-full queue', req(0, 0, 16384), { queued: 300, maxQueue: 250 }, 'reject', /queue/],
    ['a zero-length queue', req(0, 0, 16384), { maxQueue: 0 }, 'reject', /queue/],
  ];
  for (const [what, r, c, action, reason] of cases) {
    it(`refuses ${what} (${action})`, () => {
      const v = checkRequest(r, ctx(c));
      expect(v.ok).toBe(false);
      if (v.ok) return;
      expect(v.action).toBe(action);
      expect(v.reason).toMatch(reason);
    });
  }

  it('serves allowed-fast pieces while choking, and only those', () => {
    const c = ctx({ choking: true, allowedFast: (i) => i === 1 || i === 2 });
    expect(checkRequest(req(1, 0, 16384), c)).toEqual({ ok: true });
    expect(checkRequest(req(0, 0, 16384), c)).toMatchObject({ ok: false, action: 'reject' });
    // Allowed-fast does not mean we have it.
    expect(checkRequest(req(2, 0, 16384), c)).toMatchObject({
      reason: expect.stringMatching(/do not have/),
    });
  });

  it('checks the length before anything else', () => {
    const v = checkRequest(
      req(99, 0xffffffff, CLOSE_REQUEST_LENGTH + 1),
      ctx({ choking: true, queued: 1e6 }),
    );
    expect(v).toMatchObject({ ok: false, action: 'close' });
  });

  it('checks the piece before our choke and queue state', () => {
    expect(checkRequest(req(2, 0, 16384), ctx({ choking: true }))).toMatchObject({
      reason: expect.stringMatching(/do not have/),
    });
  });
});

describe('checkRequest, properties (seeded)', () => {
  const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 42;
  const numRuns = process.env.FUZZ_RUNS !== undefined ? Number(process.env.FUZZ_RUNS) : 3000;
  const u32 = fc.oneof(fc.nat({ max: 300_000 }), fc.integer({ min: 0, max: 0xffffffff }));

  it('accepts exactly the blocks that are safe to serve', () => {
    fc.assert(
      fc.property(
        u32,
        u32,
        u32,
        fc.boolean(),
        fc.nat({ max: 300 }),
        fc.func(fc.boolean()),
        fc.func(fc.boolean()),
        (index, begin, length, choking, queued, have, fast) => {
          const c = ctx({ choking, queued, have: (i) => have(i), allowedFast: (i) => fast(i) });
          const v = checkRequest({ index, begin, length }, c);
          const safe =
            length > 0 &&
            length <= MAX_REQUEST_LENGTH &&
            index < c.pieceCount &&
            begin + length <= c.pieceSize(index) &&
            c.have(index) &&
            (!choking || c.allowedFast(index)) &&
            queued < c.maxQueue;
          expect(v.ok).toBe(safe);
          if (!v.ok) expect(v.action).toBe(length > CLOSE_REQUEST_LENGTH ? 'close' : 'reject');
        },
      ),
      { seed, numRuns },
    );
  });
});
