/**
 * An open, started PeerConnection (both sides speak BEP 6) to a peer on 127.0.0.1 that, after
 * its handshake, reads nothing (`reads: false`) or collects what it is sent (`got`). Everything
 * is closed through `onClose`.
 */
import net from 'node:net';
import { PeerConnection } from '../../src/peer/connection.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { encodeHandshake, ourReserved } from '../../src/wire/handshake.js';

export async function openConnection(o: {
  infoHash: Buffer;
  reads: boolean;
  pieceCount?: number;
  onClose: (close: () => void) => void;
}): Promise<{ conn: PeerConnection; got: () => Buffer }> {
  const pieceCount = o.pieceCount ?? 64;
  let received = Buffer.alloc(0);
  const server = net.createServer((s) => {
    s.write(encodeHandshake(o.infoHash, Buffer.alloc(20, 2), ourReserved()));
    s.on('error', () => {});
    if (o.reads) s.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
    else s.pause();
    o.onClose(() => s.destroy());
  });
  o.onClose(() => server.close());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  const conn = new PeerConnection({
    host: '127.0.0.1',
    port,
    infoHash: o.infoHash,
    peerId: Buffer.alloc(20, 1),
    pieceCount,
  });
  o.onClose(() => conn.close('test over'));
  await conn.connect();
  conn.start(new Bitfield(pieceCount));
  return { conn, got: () => received };
}
