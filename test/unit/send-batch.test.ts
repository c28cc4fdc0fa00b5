/**
 * The send path batches the blocks of one tick: the socket is corked by the first `sendPiece`
 * and uncorked at the end of the tick, so a whole piece leaves in one write; the bytes and their
 * order (blocks, then any message sent after them in the same tick) are unchanged.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PeerConnection } from '../../src/peer/connection.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { HANDSHAKE_LENGTH, encodeHandshake, ourReserved } from '../../src/wire/handshake.js';

const infoHash = Buffer.alloc(20, 6);
const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

describe('sendPiece batching', () => {
  it('the blocks of one tick arrive whole and in order, a have after them', async () => {
    let received = Buffer.alloc(0);
    const server = net.createServer((s) => {
      s.write(encodeHandshake(infoHash, Buffer.alloc(20, 2), ourReserved()));
      s.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
      s.on('error', () => {});
    });
    closers.push(() => server.close());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    const conn = new PeerConnection({
      host: '127.0.0.1',
      port,
      infoHash,
      peerId: Buffer.alloc(20, 1),
      pieceCount: 4,
    });
    closers.push(() => conn.close('test over'));
    await conn.connect();
    conn.start(new Bitfield(4));
    const blocks = Array.from({ length: 16 }, (_, i) => Buffer.alloc(16384, i));
    for (let i = 0; i < blocks.length; i++) conn.sendPiece(2, i * 16384, blocks[i]!);
    conn.have(1);
    // Corked until the end of the tick: nothing has been handed to the kernel yet.
    expect(conn.writeQueued).toBeGreaterThanOrEqual(16 * 16384);
    const frame = 13 + 16384;
    // Our handshake, have-none (both sides speak BEP 6), the blocks, the have.
    const want = HANDSHAKE_LENGTH + 5 + 16 * frame + 9;
    const end = Date.now() + 10_000;
    while (received.length < want && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    expect(received.length).toBe(want);
    expect([...received.subarray(HANDSHAKE_LENGTH, HANDSHAKE_LENGTH + 5)]).toEqual([
      0, 0, 0, 1, 15,
    ]);
    let at = HANDSHAKE_LENGTH + 5;
    for (let i = 0; i < 16; i++) {
      expect(received.readUInt32BE(at)).toBe(9 + 16384);
      expect(received[at + 4]).toBe(7);
      expect(received.readUInt32BE(at + 5)).toBe(2);
      expect(received.readUInt32BE(at + 9)).toBe(i * 16384);
      expect(received.subarray(at + 13, at + frame).equals(blocks[i]!)).toBe(true);
      at += frame;
    }
    expect([...received.subarray(at)]).toEqual([0, 0, 0, 5, 4, 0, 0, 0, 1]);
  });
});
