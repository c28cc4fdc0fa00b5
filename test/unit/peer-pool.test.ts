import { describe, expect, it } from 'vitest';
import { MAX_ATTEMPTS, PeerPool } from '../../src/swarm/peer-pool.js';

function pool(): PeerPool {
  return new PeerPool({
    infoHash: Buffer.alloc(20, 1),
    peerId: Buffer.alloc(20, 2),
    pieceCount: 4,
    sequential: false,
    handshakeMs: 1000,
  });
}

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
