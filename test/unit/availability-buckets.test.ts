import { describe, expect, it } from 'vitest';
import { AvailabilityBuckets } from '../../src/swarm/availability-buckets.js';

/** A small seeded generator (xorshift32): the same moves on every run. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

/** The groups as sorted lists, and every piece's slot pointing at it. */
function groupsOf(b: AvailabilityBuckets): number[][] {
  const out: number[][] = [];
  for (let a = 0; a < b.groups; a++) {
    const g: number[] = [];
    for (let k = 0; k < b.groupSize(a); k++) g.push(b.at(a, k));
    out.push(g.sort((x, y) => x - y));
  }
  while (out.length > 0 && out.at(-1)!.length === 0) out.pop();
  return out;
}

function modelGroups(held: Set<number>, avail: number[]): number[][] {
  const out: number[][] = [];
  for (const i of [...held].sort((x, y) => x - y)) {
    while (out.length <= avail[i]!) out.push([]);
    out[avail[i]!]!.push(i);
  }
  return out;
}

describe('availability groups', () => {
  it('agree with a plain model over random moves, slots included', () => {
    for (const seed of [1, 2, 3, 42]) {
      const random = rng(seed);
      const n = 64;
      const b = new AvailabilityBuckets(n);
      const avail = new Array<number>(n).fill(0);
      const held = new Set<number>();
      for (let i = 0; i < n; i++) {
        b.add(i, 0);
        held.add(i);
      }
      for (let step = 0; step < 5_000; step++) {
        const i = Math.floor(random() * n);
        const r = random();
        if (r < 0.4) {
          b.up(i, avail[i]!);
          avail[i]!++;
        } else if (r < 0.7) {
          if (avail[i]! === 0) continue;
          b.down(i, avail[i]!);
          avail[i]!--;
        } else if (r < 0.85) {
          b.remove(i, avail[i]!);
          held.delete(i);
        } else {
          b.add(i, avail[i]!);
          held.add(i);
        }
        expect(b.size).toBe(held.size);
        for (let p = 0; p < n; p++) expect(b.has(p)).toBe(held.has(p));
        if (step % 50 === 0) expect(groupsOf(b)).toEqual(modelGroups(held, avail));
      }
      expect(groupsOf(b)).toEqual(modelGroups(held, avail));
    }
  });

  it('a piece out of the groups keeps no place, and moving it changes nothing', () => {
    const b = new AvailabilityBuckets(4);
    b.add(0, 0);
    b.add(1, 2);
    b.up(3, 0); // not held: nothing
    b.remove(2, 0); // not held: nothing
    expect(groupsOf(b)).toEqual([[0], [], [1]]);
    b.remove(1, 2);
    expect(b.has(1)).toBe(false);
    expect(b.size).toBe(1);
  });

  it('holds the same memory whatever the number of peers that moved every piece up', () => {
    const n = 100_000;
    const b = new AvailabilityBuckets(n);
    for (let i = 0; i < n; i++) b.add(i, 0);
    // Twenty peers with every piece, one after the other.
    for (let peer = 0; peer < 20; peer++) for (let i = 0; i < n; i++) b.up(i, peer);
    expect(b.groupSize(20)).toBe(n);
    for (let a = 0; a < 20; a++) expect(b.groupSize(a)).toBe(0);
    // One Int32Array for the groups and one for the slots: nothing grew with the peers.
    const arrays = Object.values(b).filter((v) => v instanceof Int32Array) as Int32Array[];
    expect(arrays.reduce((sum, a) => sum + a.byteLength, 0)).toBe(2 * 4 * n);
  });
});
