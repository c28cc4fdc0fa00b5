import { describe, expect, it } from 'vitest';
import { makeRoom } from '../../src/bounded.js';

describe('makeRoom', () => {
  it('removes the oldest keys of a full Map until one more fits', () => {
    const m = new Map([
      ['a', 1],
      ['b', 2],
      ['c', 3],
    ]);
    makeRoom(m, 3);
    expect([...m.keys()]).toEqual(['b', 'c']);
    makeRoom(m, 1);
    expect([...m.keys()]).toEqual([]);
  });

  it('leaves a Set with room as it is, and keeps insertion order as the age', () => {
    const s = new Set([1, 2]);
    makeRoom(s, 3);
    expect([...s]).toEqual([1, 2]);
    s.delete(1);
    s.add(1); // re-added: now the newest
    makeRoom(s, 2);
    expect([...s]).toEqual([1]);
  });
});
