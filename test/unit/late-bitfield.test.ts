/**
 * Real clients' message orders that BEP 6 frowns on but that must not cost the connection:
 * libtorrent sends its BEP 10 handshake before its bitfield, aria2c sends have-none and later a
 * bitfield.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_CONTROL_MESSAGES, PeerConnection } from '../../src/peer/connection.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { encodeHandshake, ourReserved } from '../../src/wire/handshake.js';
import { encodeMessage } from '../../src/wire/messages.js';
import { HOSTILE_PEER_ID, startHostilePeer } from '../helpers/hostile-peer.js';

const infoHash = Buffer.alloc(20, 5);
const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

async function connectTo(port: number, pieceCount = 8): Promise<PeerConnection> {
  const conn = new PeerConnection({
    host: '127.0.0.1',
    port,
    infoHash,
    peerId: Buffer.alloc(20, 1),
    pieceCount,
  });
  closers.push(() => conn.close('test over'));
  await conn.connect();
  conn.start(new Bitfield(pieceCount));
  return conn;
}

describe('late availability messages', () => {
  it('a bitfield after the extension handshake is the first availability message', async () => {
    const p = await startHostilePeer(async (c) => {
      await c.readHandshake();
      await c.write(encodeHandshake(infoHash, HOSTILE_PEER_ID, ourReserved()));
      await c.send({ type: 'extended', extId: 0, payload: Buffer.from('de') });
      const bf = new Bitfield(8);
      bf.set(3);
      await c.send({ type: 'bitfield', bitfield: bf.toBuffer() });
      await c.sleep(2_000);
    });
    closers.push(() => p.close());
    const conn = await connectTo(p.port);
    await new Promise<void>((resolve, reject) => {
      conn.once('bitfield', () => resolve());
      conn.once('close', (why: string) => reject(new Error(`closed: ${why}`)));
    });
    expect(conn.bitfield.has(3)).toBe(true);
  });

  it('have-none, then a bitfield: its pieces arrive as haves, the peer is kept', async () => {
    const p = await startHostilePeer(async (c) => {
      await c.readHandshake();
      await c.write(encodeHandshake(infoHash, HOSTILE_PEER_ID, ourReserved()));
      await c.send({ type: 'have-none' });
      await c.send({ type: 'interested' });
      const bf = new Bitfield(8);
      bf.set(1);
      bf.set(6);
      await c.write(encodeMessage({ type: 'bitfield', bitfield: bf.toBuffer() }));
      await c.sleep(2_000);
    });
    closers.push(() => p.close());
    const conn = await connectTo(p.port);
    const haves: number[] = [];
    await new Promise<void>((resolve, reject) => {
      conn.on('have', (i: number) => {
        haves.push(i);
        if (haves.length === 2) resolve();
      });
      conn.once('close', (why: string) => reject(new Error(`closed: ${why}`)));
    });
    expect(haves).toEqual([1, 6]);
    expect(conn.bitfield.count).toBe(2);
  });

  it('repeated availability messages cost their own length, not the torrent size', async () => {
    // 4 million pieces: each late have-all used to build and walk a bitfield of that size
    // (about 20 ms), so these 4,000 messages of 5 bytes held the event loop for minutes. (Fewer
    // than MAX_CONTROL_MESSAGES in all: more would end the connection as a flood.)
    const pieces = 4_000_000;
    const repeats = 4_000;
    expect(2 * repeats + 2).toBeLessThan(MAX_CONTROL_MESSAGES);
    const p = await startHostilePeer(async (c) => {
      await c.readHandshake();
      await c.write(encodeHandshake(infoHash, HOSTILE_PEER_ID, ourReserved()));
      await c.send({ type: 'have-none' });
      await c.write(
        Buffer.concat(Array.from({ length: repeats }, () => encodeMessage({ type: 'have-none' }))),
      );
      await c.send({ type: 'have', index: 7 });
      await c.write(
        Buffer.concat(Array.from({ length: repeats }, () => encodeMessage({ type: 'have-all' }))),
      );
      await c.send({ type: 'unchoke' });
      await c.sleep(30_000);
    });
    closers.push(() => p.close());
    const conn = await connectTo(p.port, pieces);
    let haves = 0;
    conn.on('have', () => haves++);
    await new Promise<void>((resolve, reject) => {
      conn.once('unchoke', () => resolve());
      conn.once('close', (why: string) => reject(new Error(`closed: ${why}`)));
    });
    // Every piece announced once: piece 7, then the rest by the first late have-all.
    expect(haves).toBe(pieces);
    expect(conn.bitfield.isComplete()).toBe(true);
  }, 25_000);
});
