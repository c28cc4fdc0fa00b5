import { describe, expect, it } from 'vitest';
import { Pacer } from '../../src/cli/events.js';

describe('Pacer (progress reported per piece, sent at a pace)', () => {
  it('lets the first through, then one per interval, and every due one', () => {
    let t = 1000;
    const p = new Pacer(250, () => t);
    expect(p.pass()).toBe(true);
    // A check of 2,596 scattered pieces in 276 ms: a handful of events, not one per piece.
    let sent = 0;
    for (let i = 0; i < 2596; i++) {
      t += 276 / 2596;
      if (p.pass(i === 2595)) sent++;
    }
    expect(sent).toBe(2); // one at 250 ms, and the last
    // Something new is due at once, and the interval starts again from it.
    t += 10;
    expect(p.pass(true)).toBe(true);
    expect(p.pass()).toBe(false);
    t += 250;
    expect(p.pass()).toBe(true);
  });
});
