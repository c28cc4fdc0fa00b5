import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { EncryptionMode } from '../../src/peer/connection.js';
import { MAX_ATTEMPTS, MAX_BANNED_IDS, PeerPool, handoffOf } from '../../src/swarm/peer-pool.js';
import { sniffHandshake } from '../../src/wire/mse.js';
import { startFakeSeeder } from '../helpers/fake-seeder.js';

function pool(
  encryption?: EncryptionMode,
  more: Partial<ConstructorParameters<typeof PeerPool>[0]> = {},
): PeerPool {
  return new PeerPool({
    infoHash: Buffer.alloc(20, 1),
    peerId: Buffer.alloc(20, 2),
    pieceCount: 4,
    sequential: false,
    handshakeMs: 1000,
    encryption,
    ...more,
  });
}

describe('PeerPool.add', () => {
  it('leaves out addresses no peer can have, from any source but --peer', () => {
    const never = [
      { host: '224.0.0.1', port: 2 },
      { host: '239.255.255.250', port: 1900 },
      { host: '255.255.255.255', port: 6881 },
      { host: '240.1.2.3', port: 6881 },
      { host: '0.1.2.3', port: 6881 },
      { host: '0.0.0.0', port: 6881 },
    ];
    const fine = [
      { host: '127.0.0.1', port: 6881 },
      { host: '10.0.0.5', port: 6881 },
      { host: '223.255.255.254', port: 6881 },
    ];
    for (const origin of ['pex', 'tracker', 'dht', 'magnet'] as const) {
      expect(pool().add([...never, ...fine], origin), origin).toBe(fine.length);
    }
    const v6 = [
      { host: 'ff02::1', port: 6881 },
      { host: '2001:db8::1', port: 6881 },
    ];
    expect(pool().add(v6, 'pex')).toBe(1);
    // The user's own word is taken.
    expect(pool().add([{ host: '224.0.0.1', port: 2 }], 'cli')).toBe(1);
  });
});

describe('PeerPool.holdListening', () => {
  const addr = { host: '10.0.0.5', port: 6881 };

  it('holds an address only the incoming connection told us, and never dials it afterwards', () => {
    const p = pool();
    const c = p.holdListening(addr)!;
    expect(c.busy).toBe(true);
    // Busy already: a second hold (or our dial of it) is left alone.
    expect(p.holdListening(addr)).toBeNull();
    p.released(c);
    expect(c.busy).toBe(false);
    expect(c.attempts).toBe(MAX_ATTEMPTS);
    // A tracker or PEX report of it gives it a chance again.
    p.add([addr], 'pex');
    expect(c.attempts).toBe(MAX_ATTEMPTS - 1);
  });

  it('a last try for every address leaves out where incoming peers came from', () => {
    const p = pool();
    p.add([{ host: '10.0.0.9', port: 6881 }], 'tracker');
    const tracked = p.candidates.get('10.0.0.9:6881')!;
    tracked.attempts = MAX_ATTEMPTS;
    // An incoming connection's source port, and a listening address only it told us.
    const from = p.incoming('10.0.0.5', 52290);
    const told = p.holdListening(addr)!;
    p.released(from);
    p.released(told);
    p.retryAll();
    expect(tracked.attempts).toBe(MAX_ATTEMPTS - 1);
    expect(from.attempts).toBe(MAX_ATTEMPTS);
    expect(told.attempts).toBe(MAX_ATTEMPTS);
    expect(p.dialable()).toBe(1);
    // Reported by a source, the listening address is one to dial like any other.
    p.add([addr], 'pex');
    expect(told.origin).toBe('pex');
    told.attempts = MAX_ATTEMPTS;
    p.retryAll();
    expect(told.attempts).toBe(MAX_ATTEMPTS - 1);
  });

  it('a last try only for the sources named: a lone seed retries the addresses given by hand', () => {
    const p = pool();
    p.add([{ host: '10.0.0.1', port: 1 }], 'cli');
    p.add([{ host: '10.0.0.2', port: 2 }], 'dht');
    p.add([{ host: '10.0.0.3', port: 3 }], 'magnet');
    for (const c of p.candidates.values()) c.attempts = MAX_ATTEMPTS;
    p.retryAll(['cli', 'magnet']);
    const attempts = [...p.candidates.values()].map((c) => [c.origin, c.attempts]);
    expect(attempts).toEqual([
      ['cli', MAX_ATTEMPTS - 1],
      ['dht', MAX_ATTEMPTS],
      ['magnet', MAX_ATTEMPTS - 1],
    ]);
  });

  it('holds an address reported before as it is, and frees it to be dialled again', () => {
    const p = pool();
    p.add([addr], 'tracker');
    const c = p.holdListening(addr)!;
    expect(c.busy).toBe(true);
    expect(c.origin).toBe('tracker');
    p.released(c);
    expect(c.busy).toBe(false);
    expect(c.attempts).toBeLessThan(MAX_ATTEMPTS);
  });
});

describe('PeerPool: a peer that hangs up on the handshake', () => {
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const c of closers.splice(0)) c();
  });

  /** A peer that reads the first bytes of each connection, notes their kind, and hangs up. */
  async function hangUp(): Promise<{ port: number; kinds: string[] }> {
    const kinds: string[] = [];
    const server = net.createServer((s) => {
      s.on('error', () => {});
      s.once('data', (d: Buffer) => {
        kinds.push(sniffHandshake(d) ?? 'short');
        s.destroy();
      });
    });
    closers.push(() => server.close());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { port: (server.address() as net.AddressInfo).port, kinds };
  }

  async function firstFailure(p: PeerPool): Promise<string> {
    closers.push(() => p.close());
    return new Promise((resolve) => p.once('failed', (_a, reason) => resolve(reason)));
  }

  for (const [mode, kinds] of [
    ['allow', ['plain', 'mse']],
    ['prefer', ['mse', 'plain']],
    ['require', ['mse']],
  ] as const) {
    it(`${mode}: ${kinds.join(', then ')}, as one attempt; both failing, the next starts over`, async () => {
      const peer = await hangUp();
      const p = pool(mode);
      const failed = firstFailure(p);
      p.add([{ host: '127.0.0.1', port: peer.port }], 'tracker');
      p.fill(0, 4);
      await failed;
      expect(peer.kinds).toEqual(kinds);
      const c = [...p.candidates.values()][0]!;
      expect(c.attempts).toBe(1);
      // Neither kind worked: the next attempt is not stuck with the one tried last.
      expect(c.flipped).toBe(false);
      const again = firstFailure(p);
      c.notBefore = 0;
      p.fill(0, 4);
      await again;
      expect(peer.kinds).toEqual([...kinds, ...kinds]);
    });
  }

  it('allow: a peer that PEX flags as speaking encryption is dialled with MSE first', async () => {
    const peer = await hangUp();
    const p = pool('allow');
    const failed = firstFailure(p);
    p.add([{ host: '127.0.0.1', port: peer.port, prefersEncryption: true }], 'pex');
    p.fill(0, 4);
    await failed;
    expect(peer.kinds).toEqual(['mse', 'plain']);
  });
});

describe('PeerPool: what PEX flags say of a candidate', () => {
  /** Addresses dialled by one fill() (no connection completes: nothing listens on port 1). */
  function dialled(p: PeerPool, connected: number, maxPeers: number): string[] {
    const out: string[] = [];
    p.on('connecting', (a) => out.push(a));
    p.fill(connected, maxPeers);
    p.close();
    return out;
  }
  const peer = (n: number, flags: { seed?: boolean; reachable?: boolean } = {}) => ({
    host: `127.0.9.${n}`,
    port: 1,
    ...flags,
  });

  it('once our download wants nothing more, a peer flagged as a seed is not dialled', () => {
    let done = false;
    const fresh = () => {
      const p = pool('allow', { done: () => done });
      p.add([peer(1, { seed: true }), peer(2)], 'pex');
      return p;
    };
    expect(dialled(fresh(), 0, 8)).toEqual(['127.0.9.1:1', '127.0.9.2:1']);
    done = true;
    expect(dialled(fresh(), 0, 8)).toEqual(['127.0.9.2:1']);
  });

  it('our own addresses are neither taken nor dialled, even once known after they came', () => {
    let own = '127.0.9.1';
    const p = pool('allow', { isOwn: (a) => a.host === own && a.port === 1 });
    p.add([peer(1), peer(2)], 'tracker');
    expect([...p.candidates.keys()]).toEqual(['127.0.9.2:1']);
    own = '127.0.9.2';
    expect(dialled(p, 0, 8)).toEqual([]);
  });

  it("a magnet's metadata phase hands its addresses over with what PEX said of them", () => {
    const meta = pool('allow');
    meta.add(
      [{ ...peer(1, { seed: true, reachable: true }), prefersEncryption: true }, peer(2)],
      'pex',
    );
    const download = pool('allow');
    for (const c of [...meta.candidates.values()].map(handoffOf)) download.add([c.peer], c.origin);
    const flags = [...download.candidates.values()].map((c) => [
      c.origin,
      c.prefersMse,
      c.seed,
      c.reachable,
    ]);
    expect(flags).toEqual([
      ['pex', true, true, true],
      ['pex', false, false, false],
    ]);
    meta.close();
    download.close();
  });

  it("PEX's flags reach an address a tracker gave first; a later tracker report keeps them", () => {
    let done = false;
    const p = pool('allow', { done: () => done });
    p.add([peer(1), peer(2)], 'tracker');
    p.add([peer(1, { seed: true })], 'pex');
    p.add([peer(1), peer(2)], 'tracker');
    done = true;
    expect(dialled(p, 0, 8)).toEqual(['127.0.9.2:1']);
    // A leecher that became a seed, and a seed PEX no longer calls one.
    const q = pool('allow', { done: () => done });
    q.add([peer(1, { seed: true }), peer(2)], 'pex');
    q.add([peer(1, { seed: false }), peer(2, { seed: true })], 'pex');
    expect(dialled(q, 0, 8)).toEqual(['127.0.9.1:1']);
  });

  it('a connection handed over busy keeps what PEX said of its address', () => {
    const p = pool('allow');
    const c = p.reserve(
      { ...peer(1, { seed: true, reachable: true }), prefersEncryption: true },
      'pex',
    );
    expect([c.busy, c.prefersMse, c.seed, c.reachable]).toEqual([true, true, true, true]);
    p.add([peer(2)], 'tracker');
    expect(p.reserve(peer(2, { seed: true }), 'tracker').seed).toBe(true);
    p.close();
  });

  it('untried peers flagged as reachable are dialled before the others', () => {
    const p = pool('allow', { sequential: true });
    p.add([peer(1), peer(2), peer(3, { reachable: true })], 'pex');
    expect(dialled(p, 0, 1)).toEqual(['127.0.9.3:1']);
  });
});

describe('PeerPool: addresses turned away for lack of room', () => {
  it('go after every address never dialled, then take turns', async () => {
    const infoHash = Buffer.alloc(20, 7);
    const data = Buffer.alloc(4 * 16384, 1);
    const seeders = await Promise.all(
      [1, 2, 3].map(() => startFakeSeeder({ infoHash, data, pieceLength: 16384 })),
    );
    const p = pool('allow', { infoHash, sequential: true });
    try {
      p.add(
        seeders.map((s) => ({ host: '127.0.0.1', port: s.port })),
        'cli',
      );
      const order: number[] = [];
      // Each one handshakes, and is closed for want of a free slot, as the download does.
      p.on('connected', (conn, c) => {
        order.push(seeders.findIndex((s) => s.port === c.port) + 1);
        conn.close('no free peer slot');
        p.released(c);
        p.untry(c);
      });
      for (let round = 0; round < 4; round++) {
        const before = order.length;
        p.fill(0, 1);
        const until = Date.now() + 10_000;
        while (order.length === before && Date.now() < until) {
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      // It was 1, 1, 1, 1: the first address took every turn, the others were never dialled.
      expect(order).toEqual([1, 2, 3, 1]);
    } finally {
      p.close();
      await Promise.all(seeders.map((s) => s.close()));
    }
  });
});

describe('PeerPool with a local address (--bind)', () => {
  it('takes no peer of the other address family, and names of either', () => {
    const v4 = pool(undefined, { localAddress: '127.0.0.5' });
    expect(v4.add([{ host: '::1', port: 1 }], 'tracker')).toBe(0);
    expect(v4.add([{ host: '127.0.0.2', port: 1 }], 'tracker')).toBe(1);
    expect(v4.add([{ host: 'peer.example', port: 1 }], 'cli')).toBe(1);
    const v6 = pool(undefined, { localAddress: '::1' });
    expect(v6.add([{ host: '127.0.0.2', port: 1 }], 'tracker')).toBe(0);
    expect(v6.add([{ host: '2001:db8::1', port: 1 }], 'tracker')).toBe(1);
  });
});

describe('PeerPool.ban', () => {
  const id = (n: number) => Buffer.alloc(20, n);

  it('bans the candidate and the peer id at its host, whatever port it comes from', () => {
    const p = pool();
    const c = p.holdListening({ host: '10.0.0.5', port: 50_001 })!;
    p.ban(c, { host: '10.0.0.5', remotePeerId: id(7) });
    expect(c.banned).toBe(true);
    expect(p.isBannedPeer({ host: '10.0.0.5', remotePeerId: id(7) })).toBe(true);
    // Another peer at that address (behind the same NAT), or the same id elsewhere: not banned.
    expect(p.isBannedPeer({ host: '10.0.0.5', remotePeerId: id(8) })).toBe(false);
    expect(p.isBannedPeer({ host: '10.0.0.6', remotePeerId: id(7) })).toBe(false);
    expect(p.isBannedPeer({ host: '10.0.0.5', remotePeerId: null })).toBe(false);
  });

  it(`remembers at most ${MAX_BANNED_IDS} peers, forgetting the oldest`, () => {
    const p = pool();
    const c = p.holdListening({ host: '10.0.0.5', port: 1 })!;
    for (let i = 0; i <= MAX_BANNED_IDS; i++) {
      p.ban(c, { host: `10.0.${i >> 8}.${i & 255}`, remotePeerId: id(1) });
    }
    expect(p.isBannedPeer({ host: '10.0.0.0', remotePeerId: id(1) })).toBe(false);
    expect(p.isBannedPeer({ host: '10.0.0.1', remotePeerId: id(1) })).toBe(true);
  });
});
