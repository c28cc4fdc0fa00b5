import { describe, expect, it } from 'vitest';
import { ProgressWatch, STARVED_MS, TRICKLE_MIN_BYTES } from '../../src/swarm/progress-watch.js';

const T0 = 1_000_000;

describe('ProgressWatch', () => {
  it('a piece or a block is progress; nothing for --timeout is a stall', () => {
    const w = new ProgressWatch(T0);
    expect(w.stalled(T0 + 10_000, 10_000)).toBe(false);
    expect(w.stalled(T0 + 10_001, 10_000)).toBe(true);
    w.progress(T0 + 9_000);
    expect(w.stalled(T0 + 10_001, 10_000)).toBe(false);
    expect(w.stalled(T0 + 19_001, 10_000)).toBe(true);
  });

  it('starves after STARVED_MS without progress', () => {
    const w = new ProgressWatch(T0);
    expect(w.starving(T0 + STARVED_MS - 1)).toBe(false);
    expect(w.starving(T0 + STARVED_MS)).toBe(true);
  });

  it('a trickle of bytes that never adds up to TRICKLE_MIN_BYTES is no progress', () => {
    const w = new ProgressWatch(T0);
    // One byte every tick for a minute: 120 bytes, never a block.
    for (let t = 500; t <= 60_000; t += 500) w.tick(T0 + t, 1, 0, false);
    expect(w.stalled(T0 + 60_000, 30_000)).toBe(true);
  });

  it('bytes still arriving count once they add up, over ticks and over sources', () => {
    const w = new ProgressWatch(T0);
    w.tick(T0 + 500, TRICKLE_MIN_BYTES / 2, 0, false);
    expect(w.starving(T0 + STARVED_MS)).toBe(true);
    // The other half from a web seed (its running total).
    w.tick(T0 + 1_000, 0, TRICKLE_MIN_BYTES / 2, false);
    expect(w.starving(T0 + 1_000 + STARVED_MS - 1)).toBe(false);
    // The web seed's total is counted once: the same total again is no new byte.
    for (let t = 1_500; t <= 20_000; t += 500) w.tick(T0 + t, 0, TRICKLE_MIN_BYTES / 2, false);
    expect(w.stalled(T0 + 20_000, 15_000)).toBe(true);
  });

  it('the count starts again at each progress', () => {
    const w = new ProgressWatch(T0);
    w.tick(T0 + 500, TRICKLE_MIN_BYTES - 1, 0, false);
    w.progress(T0 + 600);
    // One byte more after a progress is not the threshold reached: the count started over.
    w.tick(T0 + 1_000, 1, 0, false);
    expect(w.stalled(T0 + 10_601, 10_000)).toBe(true);
  });

  it('a wait the download limit imposes is not a stall', () => {
    const w = new ProgressWatch(T0);
    for (let t = 500; t <= 60_000; t += 500) w.tick(T0 + t, 0, 0, true);
    expect(w.stalled(T0 + 60_000, 10_000)).toBe(false);
    expect(w.starving(T0 + 60_000)).toBe(false);
  });
});
