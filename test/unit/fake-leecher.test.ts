import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeHandshake } from '../../src/wire/handshake.js';
import { encodeMessage, encodePiece, MessageId } from '../../src/wire/messages.js';
import {
  ExtraId,
  FAKE_LEECHER_PEER_ID,
  FakeLeecher,
  encodeFrame,
  reservedBits,
} from '../helpers/fake-leecher.js';

const INFO_HASH = Buffer.alloc(20, 0xab);
const SERVER_ID = Buffer.from('-SV0001-localserver!');

/** A local TCP server that hands each accepted socket to the test, with what it received. */
interface Server {
  port: number;
  next(): Promise<{
    socket: net.Socket;
    received: () => Buffer;
    bytes: (n: number) => Promise<Buffer>;
  }>;
  close(): Promise<void>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startServer(): Promise<Server> {
  const sockets = new Set<net.Socket>();
  const waiting: ((s: net.Socket) => void)[] = [];
  const accepted: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    const w = waiting.shift();
    if (w) w(s);
    else accepted.push(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const srv: Server = {
    port,
    next: async () => {
      const socket = accepted.shift() ?? (await new Promise<net.Socket>((r) => waiting.push(r)));
      const chunks: Buffer[] = [];
      const wakers: (() => void)[] = [];
      socket.on('data', (c: Buffer) => {
        chunks.push(c);
        for (const w of wakers.splice(0)) w();
      });
      const received = () => Buffer.concat(chunks);
      const bytes = async (n: number): Promise<Buffer> => {
        const deadline = Date.now() + 10_000;
        while (received().length < n) {
          if (Date.now() > deadline || socket.destroyed) throw new Error('server: no bytes');
          await new Promise<void>((r) => {
            wakers.push(r);
            setTimeout(r, 100);
          });
        }
        return received().subarray(0, n);
      };
      return { socket, received, bytes };
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  cleanups.push(srv.close);
  return srv;
}

async function connect(port: number, o: Partial<Parameters<typeof FakeLeecher.connect>[0]> = {}) {
  const l = await FakeLeecher.connect({ port, infoHash: INFO_HASH, ...o });
  cleanups.push(() => l.close());
  return l;
}

describe('fake leecher', () => {
  it('sends a handshake with the fast and extension bits asked for', async () => {
    const srv = await startServer();
    for (const [fast, extended] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      const l = await connect(srv.port, { fast, extended });
      const conn = await srv.next();
      const hs = await conn.bytes(68);
      expect(
        hs.equals(
          encodeHandshake(INFO_HASH, FAKE_LEECHER_PEER_ID, reservedBits({ fast, extended })),
        ),
      ).toBe(true);
      expect((hs[25]! & 0x10) !== 0).toBe(extended);
      expect((hs[27]! & 0x04) !== 0).toBe(fast);
      await l.close();
    }
  });

  it('decodes every frame, BEP 6 and BEP 10 ids included, even split at every byte', async () => {
    const srv = await startServer();
    const l = await connect(srv.port, { fast: true });
    const conn = await srv.next();
    await conn.bytes(68);
    const data = Buffer.alloc(3 * 16384);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    const rejectPayload = Buffer.alloc(12);
    rejectPayload.writeUInt32BE(2, 0);
    rejectPayload.writeUInt32BE(16384, 4);
    rejectPayload.writeUInt32BE(16384, 8);
    const stream = Buffer.concat([
      encodeHandshake(INFO_HASH, SERVER_ID, reservedBits({ fast: true, extended: true })),
      encodeFrame(ExtraId.haveAll),
      encodeFrame(ExtraId.allowedFast, Buffer.from([0, 0, 0, 3])),
      encodeFrame(ExtraId.extended, Buffer.from('\x00d1:md11:ut_metadatai1eee', 'latin1')),
      encodeMessage({ type: 'unchoke' }),
      encodeMessage({ type: 'keep-alive' }),
      encodePiece(0, 16384, data.subarray(16384, 17384)),
      encodeFrame(ExtraId.reject, rejectPayload),
      encodeFrame(ExtraId.suggest, Buffer.from([0, 0, 0, 1])),
      encodeFrame(200, Buffer.from('whatever')),
      encodeMessage({ type: 'choke' }),
    ]);
    conn.socket.setNoDelay(true);
    for (let i = 0; i < stream.length; i++) {
      conn.socket.write(stream.subarray(i, i + 1));
      await new Promise((r) => setImmediate(r));
    }
    await l.waitFor((f) => f.id === MessageId.choke);
    expect(l.handshake?.peerId.equals(SERVER_ID)).toBe(true);
    expect(l.handshake?.reserved[5]).toBe(0x10);
    expect(l.frames.map((f) => f.id)).toEqual([14, 17, 20, 1, null, 7, 16, 13, 200, 0]);
    expect(l.allowedFast).toEqual(new Set([3]));
    expect(l.rejects).toEqual([{ index: 2, begin: 16384, length: 16384 }]);
    expect(l.framesOf(20)[0]!.payload.toString('latin1')).toBe('\x00d1:md11:ut_metadatai1eee');
    expect(l.framesOf(200)[0]!.message).toBeUndefined();
    expect(l.framesOf(1)[0]!.message).toEqual({ type: 'unchoke' });
    expect(l.choked).toBe(true);
    expect(l.blocksReceived).toBe(1);
    expect(l.blockBytes).toBe(1000);
    expect(l.pieces).toHaveLength(1);
    expect(l.verifyPieces(data, 3 * 16384)).toBe(1000);
    l.pieces[0]!.block[0]! ^= 1;
    expect(() => l.verifyPieces(data, 3 * 16384)).toThrow(/wrong bytes in piece 0 at 16384/);
    expect(l.bytesReceived).toBe(stream.length);
    expect(l.protocolError).toBeNull();
  });

  it('sends requests, cancels, raw frames and garbage exactly', async () => {
    const srv = await startServer();
    const l = await connect(srv.port);
    const conn = await srv.next();
    l.interested();
    l.request(1, 16384, 16384);
    l.cancel(1, 16384, 16384);
    l.request(-1, 0, 0x1_0000_0000 + 5); // wraps to 32 bits: absurd requests are the point
    l.haveNone();
    l.extendedMessage(0, Buffer.from('de'));
    l.garbage(7, 9);
    const expected = Buffer.concat([
      encodeMessage({ type: 'interested' }),
      encodeMessage({ type: 'request', index: 1, begin: 16384, length: 16384 }),
      encodeMessage({ type: 'cancel', index: 1, begin: 16384, length: 16384 }),
      encodeMessage({ type: 'request', index: 0xffffffff, begin: 0, length: 5 }),
      encodeFrame(15),
      encodeFrame(20, Buffer.from('\x00de', 'latin1')),
    ]);
    const got = await conn.bytes(68 + expected.length + 7);
    expect(got.subarray(68, 68 + expected.length).equals(expected)).toBe(true);
    expect(l.bytesSent).toBe(68 + expected.length + 7);
  });

  it('reads the BEP 10 handshake and sends its own; requests whole pieces', async () => {
    const srv = await startServer();
    const l = await connect(srv.port, { extended: true });
    const conn = await srv.next();
    conn.socket.write(
      Buffer.concat([
        encodeHandshake(INFO_HASH, SERVER_ID, reservedBits({ extended: true })),
        encodeFrame(
          ExtraId.extended,
          Buffer.from('\x00d1:md11:ut_metadatai3ee4:reqqi250ee', 'latin1'),
        ),
      ]),
    );
    const ext = await l.waitExtendedHandshake();
    expect(ext['reqq']).toBe(250);
    l.sendExtendedHandshake({ m: { ut_metadata: 1 }, reqq: 10 });
    expect(l.requestPiece(4, 40_000)).toBe(3);
    const ours = Buffer.concat([
      encodeFrame(20, Buffer.from('\x00d1:md11:ut_metadatai1ee4:reqqi10ee', 'latin1')),
      encodeMessage({ type: 'request', index: 4, begin: 0, length: 16384 }),
      encodeMessage({ type: 'request', index: 4, begin: 16384, length: 16384 }),
      encodeMessage({ type: 'request', index: 4, begin: 32768, length: 40_000 - 32768 }),
    ]);
    expect((await conn.bytes(68 + ours.length)).subarray(68).equals(ours)).toBe(true);
  });

  it('can stop reading, so the other side backs up, and catch up later', async () => {
    const srv = await startServer();
    const l = await connect(srv.port, { keepBlocks: false });
    const conn = await srv.next();
    conn.socket.write(encodeHandshake(INFO_HASH, SERVER_ID));
    await l.waitHandshake();
    l.pause();
    const block = Buffer.alloc(16384, 7);
    const total = 1024; // 16 MiB: far more than socket buffers hold
    let backedUp = false;
    for (let i = 0; i < total; i++) {
      if (!conn.socket.write(encodePiece(i, 0, block))) backedUp = true;
    }
    expect(backedUp).toBe(true);
    // While paused the server's data stays queued on its side.
    await new Promise((r) => setTimeout(r, 200));
    expect(l.blocksReceived).toBeLessThan(total);
    expect(conn.socket.writableLength).toBeGreaterThan(0);
    l.resume();
    await l.waitPieces(total, 20_000);
    expect(l.blockBytes).toBe(total * 16384);
    expect(l.pieces).toHaveLength(0); // not kept
    expect(l.frames[0]!.payload).toHaveLength(8); // index and begin only
  });

  it('ends the connection on a frame above its cap or a bad handshake', async () => {
    const srv = await startServer();
    const l = await connect(srv.port, { maxFrame: 1000 });
    const conn = await srv.next();
    conn.socket.write(encodeHandshake(INFO_HASH, SERVER_ID));
    conn.socket.write(Buffer.from([0, 0, 0x03, 0xe9])); // 1001
    await l.waitClosed();
    expect(l.protocolError?.message).toMatch(/1001/);
    await expect(l.waitFor(() => true)).rejects.toThrow(/1001/);

    const l2 = await connect(srv.port);
    const conn2 = await srv.next();
    conn2.socket.write(Buffer.from('\x13BitTorrent protocoX', 'latin1'));
    await l2.waitClosed();
    expect(l2.protocolError).not.toBeNull();
  });

  it('waits are bounded and fail as soon as the connection closes', async () => {
    const srv = await startServer();
    const l = await connect(srv.port);
    const conn = await srv.next();
    await expect(l.waitHandshake(50)).rejects.toThrow(/timed out/);
    const waiting = l.waitPieces(1);
    conn.socket.destroy();
    await expect(waiting).rejects.toThrow(/closed while waiting/);
    await l.waitClosed();
  });

  it('waitFor can skip frames already seen', async () => {
    const srv = await startServer();
    const l = await connect(srv.port);
    const conn = await srv.next();
    conn.socket.write(
      Buffer.concat([encodeHandshake(INFO_HASH, SERVER_ID), encodeMessage({ type: 'unchoke' })]),
    );
    const first = await l.waitFor((f) => f.id === MessageId.unchoke);
    const from = l.frames.length;
    const second = l.waitFor((f) => f.id === MessageId.unchoke, { from });
    conn.socket.write(encodeMessage({ type: 'have', index: 1 }));
    conn.socket.write(encodeMessage({ type: 'unchoke' }));
    expect(await second).not.toBe(first);
    expect(l.frames).toHaveLength(3);
  });

  it('does not send a handshake when told not to, and fails to connect to a closed port', async () => {
    const srv = await startServer();
    const l = await connect(srv.port, { noHandshake: true });
    const conn = await srv.next();
    l.keepAlive();
    expect((await conn.bytes(4)).equals(Buffer.alloc(4))).toBe(true);
    const port = srv.port;
    await srv.close();
    await expect(FakeLeecher.connect({ port, infoHash: INFO_HASH })).rejects.toThrow();
  });
});
