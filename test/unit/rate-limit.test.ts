import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  MIN_BURST_BYTES,
  MIN_READ_CAP_BYTES,
  type Pausable,
  ReadLimiter,
  TokenBucket,
} from '../../src/swarm/rate-limit.js';

/** Small seeded PRNG (mulberry32): the same numbers on every run. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function clock(start = 1000) {
  const c = { t: start, now: () => c.t };
  return c;
}

describe('token bucket', () => {
  it('starts empty and accrues at the rate', () => {
    const c = clock();
    const b = new TokenBucket(1000, { now: c.now, burstBytes: 5000 });
    expect(b.take(10)).toBe(0);
    c.t += 500;
    expect(b.take(10_000)).toBe(500);
    expect(b.take(1)).toBe(0);
    c.t += 1;
    expect(b.take(10)).toBe(1);
  });

  it('caps accrued tokens at the burst', () => {
    const c = clock();
    const b = new TokenBucket(1000, { now: c.now, burstBytes: 3000 });
    c.t += 60_000;
    expect(b.available()).toBe(3000);
    expect(b.take(10_000)).toBe(3000);
  });

  it('default burst is a quarter second of the rate, at least MIN_BURST_BYTES', () => {
    expect(new TokenBucket(1000).burst).toBe(MIN_BURST_BYTES);
    expect(new TokenBucket(10 * 1024 * 1024).burst).toBe(2.5 * 1024 * 1024);
  });

  it('is unlimited at rate 0 or Infinity', () => {
    for (const r of [0, Infinity]) {
      const b = new TokenBucket(r, { now: () => 0 });
      expect(b.unlimited).toBe(true);
      expect(b.take(1e9)).toBe(1e9);
      expect(b.waitMs(1e9)).toBe(0);
      b.consume(1e9);
      expect(b.waitMs(1)).toBe(0);
    }
  });

  it('rejects bad rates and bursts', () => {
    expect(() => new TokenBucket(-1)).toThrow(RangeError);
    expect(() => new TokenBucket(NaN)).toThrow(RangeError);
    expect(() => new TokenBucket(100, { burstBytes: 0 })).toThrow(RangeError);
  });

  it('ignores non-positive takes and a clock going backwards', () => {
    const c = clock();
    const b = new TokenBucket(1000, { now: c.now, burstBytes: 5000 });
    c.t += 1000;
    expect(b.take(0)).toBe(0);
    expect(b.take(-5)).toBe(0);
    expect(b.take(NaN)).toBe(0);
    expect(b.available()).toBe(1000);
    c.t -= 500;
    expect(b.available()).toBe(1000);
    c.t += 500; // back to where it was: nothing new accrued
    expect(b.available()).toBe(1000);
  });

  it('waitMs is exactly long enough, and capped at the burst', () => {
    const c = clock();
    const b = new TokenBucket(3000, { now: c.now, burstBytes: 4000 });
    const w = b.waitMs(1000);
    expect(w).toBe(334); // 1000 / 3 bytes per ms, rounded up
    c.t += w - 1;
    expect(b.take(1000)).toBeLessThan(1000);
    c.t += 1;
    expect(b.waitMs(1000)).toBeGreaterThanOrEqual(0);
    c.t += b.waitMs(1000);
    expect(b.waitMs(1000)).toBe(0);
    expect(b.take(1000)).toBe(1000);
    // More than a burst: waits for one burst only.
    const w2 = b.waitMs(1e9);
    c.t += w2;
    expect(b.take(1e9)).toBe(4000);
  });

  it('consume goes into debt, which is repaid first', () => {
    const c = clock();
    const b = new TokenBucket(1000, { now: c.now, burstBytes: 2000 });
    b.consume(5000);
    expect(b.available()).toBe(-5000);
    expect(b.waitMs(1)).toBe(5001);
    c.t += 5000;
    expect(b.take(10)).toBe(0);
    c.t += 10;
    expect(b.take(10)).toBe(10);
  });

  it('setRate keeps what accrued at the old rate', () => {
    const c = clock();
    const b = new TokenBucket(1000, { now: c.now, burstBytes: 100_000 });
    c.t += 1000;
    b.setRate(10_000);
    c.t += 1000;
    expect(b.take(1e9)).toBe(11_000);
    b.setRate(0);
    expect(b.take(123_456)).toBe(123_456);
    b.setRate(1000); // limited again: starts empty
    expect(b.take(1)).toBe(0);
  });

  it('the default burst follows the rate', () => {
    const b = new TokenBucket(1_000_000);
    expect(b.burst).toBe(250_000);
    b.setRate(4_000_000);
    expect(b.burst).toBe(1_000_000);
  });

  // The property --max-download-rate relies on: a greedy consumer polling at irregular times
  // gets exactly the rate over time, never more, and less only by what is still in flight.
  for (const [rate, seed] of [
    [512_000, 1],
    [2 * 1024 * 1024, 2],
    [1536, 3],
    [1_572_864, 4],
  ] as const) {
    it(`is exact over 10 s at ${rate} B/s with irregular takes (seed ${seed})`, () => {
      const rnd = mulberry32(seed);
      const c = clock(0);
      const b = new TokenBucket(rate, { now: c.now });
      // Wants up to twice what accrues between polls: the consumer keeps the bucket low.
      const most = Math.ceil((2 * rate * 40) / 1000);
      let granted = 0;
      while (c.t < 10_000) {
        granted += b.take(1 + Math.floor(rnd() * most));
        const accrued = (rate * c.t) / 1000;
        expect(granted).toBeLessThanOrEqual(accrued);
        // Nothing is lost: what was not granted is still in the bucket.
        expect(granted + b.available()).toBeGreaterThanOrEqual(Math.floor(accrued) - 1);
        c.t = Math.min(10_000, c.t + rnd() * 40);
      }
      granted += b.take(1e12);
      expect(granted).toBe(rate * 10);
    });

    it(`consume + waitMs (a paused reader) hold ${rate} B/s within one read (seed ${seed})`, () => {
      const rnd = mulberry32(seed + 100);
      const c = clock(0);
      const b = new TokenBucket(rate, { now: c.now });
      let received = 0;
      const READ = 65_536;
      while (c.t < 10_000) {
        const w = b.waitMs(1);
        if (w > 0) {
          // The timer fires late by up to 30 ms on a busy machine.
          c.t += w + rnd() * 30;
          continue;
        }
        const n = 1 + Math.floor(rnd() * READ);
        b.consume(n);
        received += n;
        expect(received).toBeLessThanOrEqual((rate * c.t) / 1000 + READ);
        c.t += rnd() * 5;
      }
      const expected = rate * (c.t / 1000);
      expect(received).toBeLessThanOrEqual(expected + READ);
      expect(received).toBeGreaterThanOrEqual(expected * 0.99 - READ);
    });
  }
});

describe('token bucket, tryTake', () => {
  it('takes all or nothing', () => {
    const c = clock();
    const b = new TokenBucket(1000, { now: c.now, burstBytes: 20_000 });
    c.t += 16_383;
    expect(b.tryTake(16_384)).toBe(false);
    expect(b.available()).toBe(16_383);
    c.t += 1;
    expect(b.tryTake(16_384)).toBe(true);
    expect(b.available()).toBe(0);
    expect(b.tryTake(0)).toBe(true);
    expect(new TokenBucket(0).tryTake(1e12)).toBe(true);
  });
});

describe('read limiter', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  class Reader implements Pausable {
    paused = false;
    pauses = 0;
    pause(): void {
      this.paused = true;
      this.pauses++;
    }
    resume(): void {
      this.paused = false;
    }
  }

  it('caps one read at a tenth of a second of the rate, at least a block, none when unlimited', () => {
    const l = new ReadLimiter(new TokenBucket(0));
    expect(l.readCap).toBe(Infinity);
    l.setRate(46 * 1024);
    expect(l.readCap).toBe(MIN_READ_CAP_BYTES);
    l.setRate(2 * 1024 * 1024);
    expect(l.readCap).toBe(Math.ceil(0.2 * 1024 * 1024));
    l.close();
  });

  it('pauses every reader while in debt and resumes them when repaid', () => {
    const b = new TokenBucket(1000, { now: () => Date.now() });
    const l = new ReadLimiter(b);
    const r1 = new Reader();
    const r2 = new Reader();
    l.add(r1);
    const remove2 = l.add(r2);
    l.onRead(500);
    expect(l.paused).toBe(true);
    // Paused once this turn's reads are done (setImmediate), not inside the read.
    expect(r1.paused || r2.paused).toBe(false);
    vi.advanceTimersByTime(0);
    expect(r1.paused && r2.paused).toBe(true);
    vi.advanceTimersByTime(499);
    expect(r1.paused).toBe(true);
    vi.advanceTimersByTime(2);
    expect(l.paused).toBe(false);
    expect(r1.paused || r2.paused).toBe(false);
    // A reader added while paused starts paused; a removed one is left alone.
    l.onRead(100);
    const r3 = new Reader();
    l.add(r3);
    expect(r3.paused).toBe(true);
    vi.advanceTimersByTime(0);
    remove2();
    vi.advanceTimersByTime(200);
    expect(r1.paused || r3.paused).toBe(false);
    expect(r2.paused).toBe(true);
    l.close();
  });

  it('does nothing when unlimited, and resumes at once when the limit is lifted', () => {
    const b = new TokenBucket(0, { now: () => Date.now() });
    const l = new ReadLimiter(b);
    const r = new Reader();
    l.add(r);
    l.onRead(1e9);
    expect(r.pauses).toBe(0);
    l.setRate(10);
    l.onRead(1000);
    vi.advanceTimersByTime(0);
    expect(r.paused).toBe(true);
    l.setRate(0);
    expect(r.paused).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('close stops the timer', () => {
    const l = new ReadLimiter(new TokenBucket(10, { now: () => Date.now() }));
    l.add(new Reader());
    l.onRead(1000);
    // The resume and the pause due once this turn's reads are done.
    expect(vi.getTimerCount()).toBe(2);
    l.close();
    expect(vi.getTimerCount()).toBe(0);
    expect(l.paused).toBe(false);
  });

  // A fast seeder always has bytes waiting, so it is read first on every resume; a peer's
  // `interested` (5 bytes) waits behind it. Measured with aria2c before the pause waited for the
  // turn's other reads: the quiet peer's message went unread for over 60 s.
  it('lets every reader with bytes waiting read once per resume, not only the first', () => {
    const l = new ReadLimiter(new TokenBucket(16 * 1024, { now: () => Date.now() }));
    const flood = new Reader();
    const quiet = new Reader();
    l.add(flood);
    l.add(quiet);
    let quietWaiting = 5;
    let quietReadAt = -1;
    for (let ms = 0; ms < 60_000 && quietReadAt < 0; ms++) {
      // One turn of the event loop: each socket not paused reads what it has, in order (libuv
      // reads a socket again while it has bytes and is not paused).
      for (let i = 0; i < 32 && !flood.paused; i++) l.onRead(64 * 1024, flood);
      if (ms === 0) expect([flood.paused, quiet.paused]).toEqual([true, false]);
      if (!quiet.paused && quietWaiting > 0) {
        l.onRead(quietWaiting, quiet);
        quietWaiting = 0;
        quietReadAt = ms;
      }
      vi.advanceTimersByTime(1);
    }
    expect(quietReadAt).toBe(0);
    l.close();
  });

  // Three fast senders against a shared 100 KB/s limit, for 10 s of fake time.
  it('holds the rate over 10 s across readers, within one read per reader', () => {
    const rate = 100_000;
    const b = new TokenBucket(rate, { now: () => Date.now() });
    const l = new ReadLimiter(b);
    const readers = [new Reader(), new Reader(), new Reader()];
    for (const r of readers) l.add(r);
    const rnd = mulberry32(9);
    let total = 0;
    for (let ms = 0; ms < 10_000; ms++) {
      for (const r of readers) {
        if (r.paused) continue;
        const n = 1 + Math.floor(rnd() * 1400);
        total += n;
        l.onRead(n);
        const bound = (rate * (ms + 1)) / 1000;
        expect(total).toBeLessThanOrEqual(bound + 3 * 1400);
      }
      vi.advanceTimersByTime(1);
    }
    expect(total).toBeGreaterThanOrEqual(rate * 10 * 0.99);
    expect(total).toBeLessThanOrEqual(rate * 10 * 1.01);
    l.close();
  });
});
