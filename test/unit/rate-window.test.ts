import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RateWindow, SAMPLE_MS } from '../../src/swarm/rate-window.js';

describe('RateWindow', () => {
  it('sums the bytes of the last windowMs and forgets what is older than keepMs', () => {
    const w = new RateWindow(3_000);
    w.add(1_000, 100);
    w.add(2_000, 200);
    w.add(3_500, 400);
    expect(w.sum(3_500)).toBe(700);
    expect(w.sum(3_500, 1_000)).toBe(400);
    expect(w.sum(4_500)).toBe(600); // 1_000 is older than 3 s now
    expect(w.sum(10_000)).toBe(0);
    expect(w.lastAt).toBe(0);
  });

  it('keeps bytes that come within SAMPLE_MS in one sample', () => {
    const w = new RateWindow(20_000);
    for (let t = 0; t < 20_000; t += 1) w.add(t, 1);
    expect(w.sum(19_999)).toBe(20_000);
    // One sample per SAMPLE_MS: the list stays short whatever the rate.
    expect((w as unknown as { samples: unknown[] }).samples.length).toBe(20_000 / SAMPLE_MS);
    expect(w.lastAt).toBe(20_000 - SAMPLE_MS);
  });

  it('agrees with a plain list of every addition (to within one sample)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 500 }), fc.integer({ min: 0, max: 1e6 })), {
          maxLength: 200,
        }),
        fc.integer({ min: 1, max: 5_000 }),
        (steps, windowMs) => {
          const w = new RateWindow(5_000);
          const all: { t: number; bytes: number }[] = [];
          let t = 0;
          for (const [dt, bytes] of steps) {
            t += dt;
            w.add(t, bytes);
            all.push({ t, bytes });
          }
          const exact = (since: number) =>
            all.filter((x) => x.t >= since).reduce((n, x) => n + x.bytes, 0);
          const got = w.sum(t, windowMs);
          // A sample carries the time of its first bytes: it may count bytes up to SAMPLE_MS
          // late, never bytes from outside the window's edge plus SAMPLE_MS.
          expect(got).toBeLessThanOrEqual(exact(t - windowMs));
          expect(got).toBeGreaterThanOrEqual(exact(t - windowMs + SAMPLE_MS));
        },
      ),
      { seed: 14, numRuns: 300 },
    );
  });
});
