import { describe, expect, it } from 'vitest';
import { allowedFastSet } from '../../src/wire/allowed-fast.js';

const aa = Buffer.alloc(20, 0xaa);

describe('allowedFastSet (BEP 6)', () => {
  it("gives BEP 6's example sets: 80.4.4.200, info hash aa…aa, 1313 pieces", () => {
    expect(allowedFastSet('80.4.4.200', aa, 1313, 7)).toEqual([
      1059, 431, 808, 1217, 287, 376, 1188,
    ]);
    expect(allowedFastSet('80.4.4.200', aa, 1313, 9)).toEqual([
      1059, 431, 808, 1217, 287, 376, 1188, 353, 508,
    ]);
  });

  it('is the same for every address of a /24, and for its IPv4-mapped form', () => {
    const set = allowedFastSet('80.4.4.200', aa, 1313, 9);
    expect(allowedFastSet('80.4.4.1', aa, 1313, 9)).toEqual(set);
    expect(allowedFastSet('::ffff:80.4.4.7', aa, 1313, 9)).toEqual(set);
    expect(allowedFastSet('80.4.5.200', aa, 1313, 9)).not.toEqual(set);
  });

  it('ends with every piece when asked for more than the torrent has', () => {
    const set = allowedFastSet('10.0.0.1', aa, 3, 10);
    expect([...set].sort()).toEqual([0, 1, 2]);
    expect(allowedFastSet('10.0.0.1', aa, 1, 5)).toEqual([0]);
  });

  it('gives nothing to an IPv6 peer, a name, or a torrent without pieces', () => {
    expect(allowedFastSet('2001:db8::1', aa, 1313, 5)).toEqual([]);
    expect(allowedFastSet('example.org', aa, 1313, 5)).toEqual([]);
    expect(allowedFastSet('10.0.0.1', aa, 0, 5)).toEqual([]);
  });
});
