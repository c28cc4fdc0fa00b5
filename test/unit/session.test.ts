import { describe, expect, it } from 'vitest';
import {
  makeWayFor,
  REPLACE_AFTER_MS,
  REPLACE_SLOW_AFTER_MS,
  replacement,
  slotsMoveOn,
  slowForWindow,
  unchokedCount,
  uselessReason,
  IDLE_WHILE_COMPLETE_MS,
  WINDOW_GRACE_MS,
  WINDOW_SLOW_FACTOR,
  type Session,
} from '../../src/swarm/session.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { BLOCK_SIZE } from '../../src/wire/messages.js';

const NOW = 10_000_000;
const PIECES = 8;

interface Fake {
  address?: string;
  connectedAgo?: number;
  /** 0: the peer does not choke us; else for how long it has. */
  chokedFor?: number;
  amChoking?: boolean;
  peerInterested?: boolean;
  recent?: number;
  rate?: number;
  ready?: boolean;
  wanted?: number;
  inflight?: number;
  pieces?: number;
  /** For how long the peer has not been interested. */
  idleFor?: number;
}

function session(f: Fake): Session {
  const bitfield = new Bitfield(PIECES);
  for (let i = 0; i < (f.pieces ?? 0); i++) bitfield.set(i);
  const chokedFor = f.chokedFor ?? 0;
  return {
    conn: {
      address: f.address ?? 'peer',
      amChoking: f.amChoking ?? true,
      peerInterested: f.peerInterested ?? false,
      notInterestedSince: NOW - (f.idleFor ?? 0),
      bitfield,
      state: 'open',
    },
    req: {
      recent: () => f.recent ?? 0,
      pipeline: { rate: f.rate ?? 0 },
      inflight: new Set(Array.from({ length: f.inflight ?? 0 }, (_, i) => i)),
    },
    ready: f.ready ?? true,
    wanted: f.wanted ?? 0,
    connectedAt: NOW - (f.connectedAgo ?? 60_000),
    chokedSince: chokedFor > 0 ? NOW - chokedFor : 0,
  } as unknown as Session;
}

describe('slotsMoveOn', () => {
  const served = (a: string) => session({ address: a, amChoking: false, peerInterested: true });
  const waiting = session({ address: 'w', amChoking: true, peerInterested: true });

  it('a peer that wants something while a slot is free: decide now', () => {
    const conn = { peerInterested: true, amChoking: true };
    expect(slotsMoveOn(conn, [served('a')], 2)).toBe(true);
    expect(slotsMoveOn(conn, [served('a'), served('b')], 2)).toBe(false);
  });

  it('one left unchoked that wants again while its slot went to others: decide now', () => {
    const conn = { peerInterested: true, amChoking: false };
    expect(slotsMoveOn(conn, [served('a'), served('b'), served('c')], 2)).toBe(true);
    expect(slotsMoveOn(conn, [served('a'), served('b')], 2)).toBe(false);
  });

  it('one we unchoke loses interest: decide now only when a peer waits', () => {
    const conn = { peerInterested: false, amChoking: false };
    expect(slotsMoveOn(conn, [served('a'), waiting], 2)).toBe(true);
    expect(slotsMoveOn(conn, [served('a')], 2)).toBe(false);
    expect(slotsMoveOn({ peerInterested: false, amChoking: true }, [waiting], 2)).toBe(false);
  });
});

describe('makeWayFor', () => {
  const extra = session({ address: 'x', wanted: 3, connectedAgo: 1_000 });

  it('a peer with nothing for us goes first, one we do not upload to before one we do', () => {
    const served = session({ address: 's', amChoking: false, peerInterested: true });
    const idle = session({ address: 'i' });
    const giving = session({ address: 'g', wanted: 2, recent: 0 });
    expect(makeWayFor(extra, [served, giving, idle, extra], NOW)?.conn.address).toBe('i');
    // A leecher we upload to is not spared: it holds a slot a seeder needs.
    expect(makeWayFor(extra, [giving, served, extra], NOW)?.conn.address).toBe('s');
  });

  it('else the one choking us longest, else the one that sent least', () => {
    const busy = session({ address: 'b', inflight: 2, recent: BLOCK_SIZE });
    const slow = session({ address: 'w', wanted: 1, recent: 2 * BLOCK_SIZE });
    expect(makeWayFor(extra, [slow, busy, extra], NOW)?.conn.address).toBe('b');
    const choking = session({ address: 'c', wanted: 1, chokedFor: REPLACE_AFTER_MS });
    expect(makeWayFor(extra, [busy, choking, extra], NOW)?.conn.address).toBe('c');
  });

  it('never the extra peer itself', () => {
    expect(makeWayFor(extra, [extra], NOW)).toBeNull();
  });
});

describe('replacement', () => {
  it('picks the peer that has choked us longest, past REPLACE_AFTER_MS', () => {
    const a = session({ address: 'a', chokedFor: REPLACE_AFTER_MS + 1_000 });
    const b = session({ address: 'b', chokedFor: REPLACE_AFTER_MS + 9_000 });
    const c = session({ address: 'c', chokedFor: REPLACE_AFTER_MS - 1 });
    expect(replacement([a, b, c], NOW)?.conn.address).toBe('b');
  });

  it('else the unchoking peer that sent least, under a block in 20 s', () => {
    const a = session({ address: 'a', recent: BLOCK_SIZE - 1 });
    const b = session({ address: 'b', recent: 100 });
    const c = session({ address: 'c', recent: BLOCK_SIZE });
    expect(replacement([a, b, c], NOW)?.conn.address).toBe('b');
    // A long choke weighs more than a slow peer.
    const d = session({ address: 'd', chokedFor: REPLACE_AFTER_MS });
    expect(replacement([a, b, c, d], NOW)?.conn.address).toBe('d');
  });

  it('spares new peers and those we upload to', () => {
    const young = session({ connectedAgo: REPLACE_SLOW_AFTER_MS - 1, recent: 0 });
    const served = session({
      chokedFor: REPLACE_AFTER_MS * 2,
      amChoking: false,
      peerInterested: true,
    });
    expect(replacement([young, served], NOW)).toBeNull();
    expect(replacement([], NOW)).toBeNull();
  });
});

describe('slowForWindow', () => {
  it('keeps peers under 1/WINDOW_SLOW_FACTOR of the best rate out, once past the grace', () => {
    const fast = session({ address: 'fast', rate: 4_000_000 });
    const slow = session({ address: 'slow', rate: 4_000_000 / WINDOW_SLOW_FACTOR - 1 });
    const edge = session({ address: 'edge', rate: 4_000_000 / WINDOW_SLOW_FACTOR });
    const fresh = session({ address: 'fresh', rate: 1, connectedAgo: WINDOW_GRACE_MS - 1 });
    const idle = session({ address: 'idle', rate: 0, ready: false });
    expect([...slowForWindow([fast, slow, edge, fresh, idle], NOW)]).toEqual(['slow']);
  });

  it('keeps nobody out when nobody fetches', () => {
    expect(slowForWindow([session({ rate: 0 }), session({ rate: 0 })], NOW).size).toBe(0);
  });
});

describe('uselessReason', () => {
  const seed = { pieces: PIECES };
  it('drops a seed once we are complete or seeding', () => {
    expect(uselessReason(session(seed), NOW, true, false)).toBe('both complete');
    expect(uselessReason(session(seed), NOW, false, true)).toBe('both complete');
    expect(uselessReason(session(seed), NOW, false, false)).toBeNull();
  });

  it('keeps a peer that wants, has or is sending something', () => {
    expect(uselessReason(session({ ...seed, peerInterested: true }), NOW, true, true)).toBeNull();
    expect(uselessReason(session({ ...seed, wanted: 1 }), NOW, false, true)).toBeNull();
    expect(uselessReason(session({ ...seed, inflight: 1 }), NOW, false, true)).toBeNull();
    expect(uselessReason(session({ pieces: 3 }), NOW, true, true)).toBeNull();
  });

  it('once complete, drops a peer not interested for IDLE_WHILE_COMPLETE_MS, whatever it has', () => {
    const idle = IDLE_WHILE_COMPLETE_MS;
    expect(uselessReason(session({ pieces: 0, idleFor: idle }), NOW, true, true)).toBe(
      'not interested',
    );
    expect(uselessReason(session({ pieces: 3, idleFor: idle }), NOW, false, true)).toBe(
      'not interested',
    );
    expect(uselessReason(session({ pieces: 3, idleFor: idle - 1 }), NOW, true, true)).toBeNull();
    // Not while we still download from the swarm, nor while it wants something from us.
    expect(uselessReason(session({ pieces: 3, idleFor: idle }), NOW, false, false)).toBeNull();
    expect(
      uselessReason(session({ pieces: 3, idleFor: idle, peerInterested: true }), NOW, true, true),
    ).toBeNull();
  });
});

describe('unchokedCount', () => {
  it('counts the interested peers we unchoke', () => {
    const s = [
      session({ amChoking: false, peerInterested: true }),
      session({ amChoking: false, peerInterested: false }),
      session({ amChoking: true, peerInterested: true }),
    ];
    expect(unchokedCount(s)).toBe(1);
  });
});
