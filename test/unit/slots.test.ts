import { describe, expect, it } from 'vitest';
import { EXTRA_SLOT_MS, PeerSlots, ROOM_INTERVAL_MS } from '../../src/swarm/slots.js';
import { REPLACE_AFTER_MS, type Session } from '../../src/swarm/session.js';

const NOW = 10_000_000;

/** A session as the slot rules read it. */
function session(address: string, o: { wanted?: number; chokedFor?: number; ago?: number } = {}) {
  return {
    conn: { address, amChoking: false, peerInterested: true },
    req: { recent: () => 0, inflight: new Set() },
    wanted: o.wanted ?? 0,
    connectedAt: NOW - (o.ago ?? 60_000),
    chokedSince: o.chokedFor ? NOW - o.chokedFor : 0,
  } as unknown as Session;
}

describe('PeerSlots', () => {
  it('lets one connection beyond the limit in only while starving', () => {
    const slots = new PeerSlots(2);
    expect(slots.hasRoom(1, false)).toBe(true);
    expect(slots.hasRoom(2, false)).toBe(false);
    expect(slots.target(2, false)).toBe(2);
    expect(slots.hasRoom(2, true)).toBe(true);
    expect(slots.target(2, true)).toBe(3);
    const [a, b, x] = [session('a'), session('b'), session('x', { ago: 0 })];
    slots.admitted(x, 3);
    // One extra at a time.
    expect(slots.hasRoom(3, true)).toBe(false);
    expect(slots.target(2, true)).toBe(2);
    // It shows nothing yet: kept until EXTRA_SLOT_MS.
    expect(slots.toDrop([a, b, x], NOW, () => 0)).toBeNull();
    expect(slots.toDrop([a, b, x], NOW + EXTRA_SLOT_MS, () => 0)).toEqual({
      session: x,
      reason: 'no free peer slot',
    });
    slots.gone(x);
    expect(slots.hasRoom(2, true)).toBe(true);
  });

  it('an extra with pieces we need stays and a leecher we upload to makes way', () => {
    const slots = new PeerSlots(2);
    const [a, b] = [session('a', { wanted: 1 }), session('b')];
    const x = session('x', { wanted: 5, ago: 0 });
    slots.admitted(x, 3);
    expect(slots.toDrop([a, b, x], NOW, () => 0)?.session).toBe(b);
    // Settled: the slot is its own, and another extra may come.
    expect(slots.hasRoom(2, true)).toBe(true);
  });

  it('never in single-peer mode', () => {
    const slots = new PeerSlots(1);
    expect(slots.hasRoom(1, true)).toBe(false);
    expect(slots.target(1, true)).toBe(1);
    expect(slots.toDrop([session('a', { chokedFor: REPLACE_AFTER_MS })], NOW, () => 5)).toBeNull();
  });

  it('makes room for untried addresses once per ROOM_INTERVAL_MS', () => {
    const slots = new PeerSlots(2);
    const choking = session('c', { chokedFor: REPLACE_AFTER_MS });
    choking.conn.amChoking = true;
    const peers = [session('a', { wanted: 1 }), choking];
    expect(slots.toDrop(peers, NOW, () => 0)).toBeNull();
    expect(slots.toDrop(peers, NOW, () => 1)?.session).toBe(choking);
    expect(slots.toDrop(peers, NOW + ROOM_INTERVAL_MS - 1, () => 1)).toBeNull();
    expect(slots.toDrop(peers, NOW + ROOM_INTERVAL_MS, () => 1)?.session).toBe(choking);
  });
});
