/**
 * The seed-sparing rules: which pieces a seed is spared (partial peers that stand in for it),
 * and which share of its pieces this client starts when other tdl peers fetch from it too.
 */
import { describe, expect, it } from 'vitest';
import { PEER_ID_PREFIX } from '../../src/peer/peer-id.js';
import { peerIdKey, rendezvous } from '../../src/swarm/picker.js';
import {
  PARTNER_IDLE_MS,
  sparingHints,
  standsIn,
  tdlKey,
  type SparingPeer,
} from '../../src/swarm/seed-sparing.js';

const PIECES = 64;

function peer(o: {
  has: (i: number) => boolean;
  complete?: boolean;
  id?: string;
  rate?: number;
  choking?: boolean;
  lastHaveAt?: number;
  inflight?: number;
}): SparingPeer {
  const remotePeerId = o.id === undefined ? null : Buffer.from(o.id.padEnd(20, 'x'), 'latin1');
  return {
    conn: {
      bitfield: { isComplete: () => o.complete ?? false, has: o.has },
      state: 'open',
      peerChoking: o.choking ?? false,
      remotePeerId,
    },
    req: { pipeline: { rate: o.rate ?? 1000 }, inflight: { size: o.inflight ?? 0 } },
    ready: true,
    lastHaveAt: o.lastHaveAt ?? 0,
    tdlKey: tdlKey(remotePeerId),
  } as unknown as SparingPeer;
}

const tdlId = (n: number) => `${PEER_ID_PREFIX}${n}`;
const ownId = Buffer.from(tdlId(0).padEnd(20, 'x'), 'latin1');
const NOW = 100_000;

describe('seed sparing', () => {
  it('gives no hints for a peer that is not a seed', () => {
    const p = peer({ has: () => true });
    expect(sparingHints(p, [p], peerIdKey(ownId), NOW)).toEqual({});
  });

  it('leaves to a fast partial peer that unchokes us the pieces it has', () => {
    const seed = peer({ has: () => true, complete: true, rate: 1000 });
    const fast = peer({ has: (i) => i < 10, rate: 600, id: '-XX0100-' });
    const slow = peer({ has: (i) => i >= 50, rate: 100, id: '-XX0100-' });
    const choking = peer({ has: (i) => i >= 20 && i < 30, choking: true, id: '-XX0100-' });
    expect(standsIn(fast, seed)).toBe(true);
    expect(standsIn(slow, seed)).toBe(false);
    expect(standsIn(choking, seed)).toBe(false);
    const h = sparingHints(seed, [seed, fast, slow, choking], peerIdKey(ownId), NOW);
    expect(h.avoid?.(5)).toBe(true);
    expect(h.avoid?.(25)).toBe(false);
    expect(h.avoid?.(55)).toBe(false);
    // Other clients' peers get no share of the seed: no rendezvous.
    expect(h.prefer).toBeUndefined();
  });

  it('shares a seed out among the tdl peers that make progress, the same way on every side', () => {
    const seed = peer({ has: () => true, complete: true, inflight: 2 });
    const a = peer({ has: () => false, id: tdlId(1), lastHaveAt: NOW - 1000, choking: true });
    const idle = peer({ has: () => false, id: tdlId(2), lastHaveAt: NOW - PARTNER_IDLE_MS - 1 });
    const h = sparingHints(seed, [seed, a, idle], peerIdKey(ownId), NOW);
    expect(h.strict).toBe(true);
    const keys = [peerIdKey(ownId), peerIdKey(a.conn.remotePeerId!)];
    let ours = 0;
    for (let i = 0; i < PIECES; i++) {
      expect(h.prefer?.(i)).toBe(rendezvous(keys, i) === 0);
      if (h.prefer?.(i)) ours++;
    }
    // About half each (the idle tdl peer has no share).
    expect(ours).toBeGreaterThan(PIECES / 4);
    expect(ours).toBeLessThan((PIECES * 3) / 4);
  });
});
