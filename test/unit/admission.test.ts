import { describe, expect, it } from 'vitest';
import type { PeerConnection } from '../../src/peer/connection.js';
import { refusal, replacesTwin, turnAway, twinOf } from '../../src/swarm/admission.js';
import type { Candidate, PeerPool } from '../../src/swarm/peer-pool.js';
import type { Session } from '../../src/swarm/session.js';
import { neededPieces } from '../../src/swarm/stall-report.js';

interface FakeConn {
  host: string;
  port: number;
  direction: 'in' | 'out';
  id: string | null;
  state?: string;
}

function conn(f: FakeConn): PeerConnection {
  return {
    host: f.host,
    port: f.port,
    address: f.host.includes(':') ? `[${f.host}]:${f.port}` : `${f.host}:${f.port}`,
    direction: f.direction,
    remotePeerId: f.id === null ? null : Buffer.from(f.id.padEnd(20, '-')),
    state: f.state ?? 'open',
  } as unknown as PeerConnection;
}

function session(c: PeerConnection): Session {
  return { conn: c, listening: null } as unknown as Session;
}

function fakePool() {
  const calls: string[] = [];
  const pool = {
    released: (c: Candidate, tried = true) => calls.push(`released ${c.origin} ${tried}`),
    untry: (c: Candidate) => calls.push(`untry ${c.origin}`),
  } as unknown as PeerPool;
  return { pool, calls };
}

const cand = (origin: string) => ({ origin, banned: false }) as unknown as Candidate;

describe('admission', () => {
  const ours = conn({ host: '10.0.0.1', port: 6881, direction: 'out', id: 'A' });

  it('finds the same peer id in the other direction at the same address', () => {
    const incoming = conn({ host: '10.0.0.1', port: 50_000, direction: 'in', id: 'A' });
    const s = session(ours);
    expect(twinOf(incoming, [s])).toBe(s);
    // The same direction at the same address is another peer behind one id: not a twin.
    const again = conn({ host: '10.0.0.1', port: 6882, direction: 'out', id: 'A' });
    expect(twinOf(again, [s])).toBeNull();
    // No id, or another id: no twin.
    expect(twinOf(conn({ host: '10.0.0.1', port: 1, direction: 'in', id: null }), [s])).toBeNull();
    expect(twinOf(conn({ host: '10.0.0.1', port: 1, direction: 'in', id: 'B' }), [s])).toBeNull();
  });

  it('both sides dialled at once: both keep the connection the greater peer id dialled', () => {
    // Two peers, ids G > S, each holding one of the two connections when the other arrives.
    const G = Buffer.from('G'.padEnd(20, '-'));
    const S = Buffer.from('S'.padEnd(20, '-'));
    const [lo, hi] = Buffer.compare(G, S) < 0 ? ['G', 'S'] : ['S', 'G'];
    const id = (n: string) => Buffer.from(n.padEnd(20, '-'));
    const at = (direction: 'in' | 'out', who: string) =>
      conn({ host: '10.0.0.1', port: direction === 'out' ? 6881 : 50_000, direction, id: who });
    // On the greater: the one it dialled ('out') is kept, in either order.
    expect(replacesTwin(at('out', lo), session(at('in', lo)), id(hi))).toBe(true);
    expect(replacesTwin(at('in', lo), session(at('out', lo)), id(hi))).toBe(false);
    // On the lower: the same connection, the greater's (incoming there), is the one kept.
    expect(replacesTwin(at('in', hi), session(at('out', hi)), id(lo))).toBe(true);
    expect(replacesTwin(at('out', hi), session(at('in', hi)), id(lo))).toBe(false);
    // Another address (dual-stack), the same direction, or no id: never replaced.
    const v6 = conn({ host: '::1', port: 6881, direction: 'out', id: lo });
    expect(replacesTwin(v6, session(at('in', lo)), id(hi))).toBe(false);
    expect(replacesTwin(at('out', lo), session(at('out', lo)), id(hi))).toBe(false);
    const anon = conn({ host: '10.0.0.1', port: 1, direction: 'out', id: null });
    expect(replacesTwin(anon, session(at('in', lo)), id(hi))).toBe(false);
  });

  it('matches across addresses only a peer we dialled', () => {
    const s = session(ours);
    const dialled = conn({ host: '::1', port: 6881, direction: 'out', id: 'A' });
    expect(twinOf(dialled, [s])).toBe(s);
    const came = conn({ host: '::1', port: 40_000, direction: 'in', id: 'A' });
    expect(twinOf(came, [s])).toBeNull();
  });

  it('says why a connection may not stay, first reason first', () => {
    const open = { closed: false, room: true, banned: false, twin: null };
    expect(refusal(ours, open)).toBeNull();
    const closed = conn({ host: '10.0.0.2', port: 1, direction: 'out', id: 'C', state: 'closed' });
    expect(refusal(closed, { ...open, closed: true })).toBe('connection closed');
    expect(refusal(ours, { ...open, closed: true, banned: true })).toBe('download ended');
    expect(refusal(ours, { ...open, banned: true, room: false })).toBe('banned');
    expect(refusal(ours, { ...open, room: false })).toBe('no free peer slot');
    const here = session(conn({ host: '10.0.0.1', port: 50_000, direction: 'in', id: 'A' }));
    expect(refusal(ours, { ...open, twin: here })).toBe('already connected to this peer');
    const there = session(conn({ host: '::1', port: 6881, direction: 'out', id: 'A' }));
    expect(refusal(ours, { ...open, twin: there })).toBe(
      'already connected to this peer at [::1]:6881',
    );
  });

  it('gives a peer turned away for lack of room its chance later', () => {
    const { pool, calls } = fakePool();
    turnAway(pool, ours, cand('tracker'), 'no free peer slot', null);
    expect(calls).toEqual(['released tracker true', 'untry tracker']);
    const incoming = fakePool();
    turnAway(incoming.pool, ours, cand('incoming'), 'no free peer slot', null);
    expect(incoming.calls).toEqual(['released incoming true']);
  });

  it('bans the address of a banned peer, and holds one where an incoming twin listens', () => {
    const { pool, calls } = fakePool();
    const c = cand('pex');
    turnAway(pool, ours, c, 'banned', null);
    expect(c.banned).toBe(true);
    const twin = session(conn({ host: '10.0.0.1', port: 50_000, direction: 'in', id: 'A' }));
    const listens = cand('tracker');
    turnAway(pool, ours, listens, 'already connected to this peer', twin);
    expect(twin.listening).toBe(listens);
    // Another address of a peer we have: released without counting as a try that failed.
    const far = session(conn({ host: '::1', port: 6881, direction: 'out', id: 'A' }));
    turnAway(pool, ours, cand('dht'), 'already connected to this peer at [::1]:6881', far);
    expect(calls).toEqual(['released pex true', 'released dht false']);
  });

  it('counts the pieces still needed and those no peer has', () => {
    const needs = [true, false, true, true];
    const availability = [0, 0, 2, 0];
    expect(neededPieces({ needs: (i) => needs[i]!, availability }, 4)).toEqual({
      pieces: 3,
      nowhere: 2,
    });
  });
});
