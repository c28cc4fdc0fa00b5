/**
 * `--max-download-rate` holds every connection: one that starts while the shared limit has its
 * readers paused (another connection's reads put it in debt) stays paused until the limit lets
 * them all read again. Measured before this held: with two libtorrent seeders on loopback,
 * `--max-download-rate 16K` fetched 4 MiB in 52–135 ms, the second connection reading unlimited.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PeerConnection } from '../../src/peer/connection.js';
import { ReadLimiter, TokenBucket } from '../../src/swarm/rate-limit.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { encodeHandshake, ourReserved } from '../../src/wire/handshake.js';

const infoHash = Buffer.alloc(20, 7);
const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** A peer that answers the handshake, then sends `bytes` of keep-alives when told to. */
async function peer(): Promise<{ port: number; send: (bytes: number) => void }> {
  let sock: net.Socket | null = null;
  const server = net.createServer((s) => {
    sock = s;
    s.on('error', () => {});
    s.write(encodeHandshake(infoHash, Buffer.alloc(20, 2), ourReserved()));
    closers.push(() => s.destroy());
  });
  closers.push(() => server.close());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    send: (bytes) => sock?.write(Buffer.alloc(bytes)),
  };
}

const settle = () => new Promise((r) => setTimeout(r, 300));

describe('PeerConnection under a shared download limit', () => {
  it('a connection started while the limit holds readers paused reads nothing', async () => {
    const p = await peer();
    const conn = new PeerConnection({
      host: '127.0.0.1',
      port: p.port,
      infoHash,
      peerId: Buffer.alloc(20, 1),
      pieceCount: 8,
    });
    closers.push(() => conn.close('test over'));
    await conn.connect();
    const limiter = new ReadLimiter(new TokenBucket(1000));
    closers.push(() => limiter.close());
    // Another connection's read put the limit in debt for a long while.
    limiter.onRead(1_000_000);
    expect(limiter.paused).toBe(true);
    conn.limitReads(limiter);
    conn.start(new Bitfield(8));
    const before = conn.bytesIn;
    p.send(64 * 1024);
    await settle();
    expect(conn.bytesIn).toBe(before);
    expect(conn.state).toBe('open');
    // Once the limit lets readers go, it reads.
    limiter.setRate(0);
    await settle();
    expect(conn.bytesIn).toBe(before + 64 * 1024);
  });
});
