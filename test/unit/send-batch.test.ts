/**
 * The send path batches the blocks of one tick: the socket is corked by the first `sendPiece`
 * and uncorked at the end of the tick, so a whole piece leaves in one write; the bytes and their
 * order (blocks, then any message sent after them in the same tick) are unchanged. A block's
 * `released` comes once the socket holds it no more: written out, or the connection closed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { HANDSHAKE_LENGTH } from '../../src/wire/handshake.js';
import { openConnection } from '../helpers/open-connection.js';

const infoHash = Buffer.alloc(20, 6);
const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

describe('sendPiece batching', () => {
  it('the blocks of one tick arrive whole and in order, a have after them', async () => {
    const { conn, got } = await openConnection({
      infoHash,
      reads: true,
      pieceCount: 4,
      onClose: (c) => closers.push(c),
    });
    const blocks = Array.from({ length: 16 }, (_, i) => Buffer.alloc(16384, i));
    for (let i = 0; i < blocks.length; i++) conn.sendPiece(2, i * 16384, blocks[i]!);
    conn.have(1);
    // Corked until the end of the tick: nothing has been handed to the kernel yet.
    expect(conn.writeQueued).toBeGreaterThanOrEqual(16 * 16384);
    const frame = 13 + 16384;
    // Our handshake, have-none (both sides speak BEP 6), the blocks, the have.
    const want = HANDSHAKE_LENGTH + 5 + 16 * frame + 9;
    const end = Date.now() + 10_000;
    while (got().length < want && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    const received = got();
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

  it("calls a block's released once the socket holds it no more", async () => {
    const reading = await openConnection({
      infoHash,
      reads: true,
      pieceCount: 4,
      onClose: (c) => closers.push(c),
    });
    let released = 0;
    reading.conn.sendPiece(1, 0, Buffer.alloc(16384, 1), () => released++);
    const end = Date.now() + 10_000;
    while (released === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    expect(released).toBe(1);

    // A peer that does not read: its socket keeps the blocks (one write, never done) until the
    // connection closes.
    const stuck = await openConnection({
      infoHash,
      reads: false,
      pieceCount: 4,
      onClose: (c) => closers.push(c),
    });
    let freed = 0;
    const n = 900;
    for (let i = 0; i < n; i++) stuck.conn.sendPiece(2, 0, Buffer.alloc(16384, 2), () => freed++);
    await new Promise((r) => setTimeout(r, 200));
    expect(freed).toBeLessThan(n);
    stuck.conn.close('test over');
    while (freed < n && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    expect(freed).toBe(n);
    // Not taken at all (closed): released at once.
    let late = 0;
    stuck.conn.sendPiece(3, 0, Buffer.alloc(16), () => late++);
    expect(late).toBe(1);
  });
});
