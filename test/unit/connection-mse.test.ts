/**
 * PeerConnection dialling with MSE against a responder on a real socket: the peer's reply
 * (step 2, step 4, its BitTorrent handshake and first messages) arriving in one write or one
 * byte at a time, with a plain stream or RC4 selected. What the connection delivers must be the
 * peer's messages, whatever the reads looked like.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PeerConnection } from '../../src/peer/connection.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { encodeHandshake, ourReserved } from '../../src/wire/handshake.js';
import { encodeMessage } from '../../src/wire/messages.js';
import {
  CRYPTO_PLAINTEXT,
  CRYPTO_RC4,
  MseResponder,
  type StreamCipher,
} from '../../src/wire/mse.js';
import { until } from '../helpers/tdl-process.js';

const infoHash = Buffer.alloc(20, 5);
const PIECES = 40;
const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/**
 * A peer answering MSE (selecting RC4 when `rc4Only`), then its handshake, a bitfield of pieces
 * 0, 3 and 39 and an unchoke, written whole or byte by byte; it keeps what it reads after the
 * exchange, decrypted.
 */
async function responder(o: { rc4Only: boolean; bytewise: boolean }) {
  let got = Buffer.alloc(0);
  const server = net.createServer((s) => {
    s.on('error', () => {});
    closers.push(() => s.destroy());
    const mse = new MseResponder(infoHash, { rc4Only: o.rc4Only, padLength: 40 });
    let cipher: StreamCipher | null | undefined;
    s.on('data', (d: Buffer) => {
      if (cipher !== undefined) {
        got = Buffer.concat([got, cipher ? cipher.decrypt.update(d) : d]);
        return;
      }
      const { send, result } = mse.push(d);
      if (!result) {
        s.write(send);
        return;
      }
      cipher = result.cipher;
      got = Buffer.concat([result.ia, result.rest]);
      const bf = new Bitfield(PIECES);
      for (const i of [0, 3, 39]) bf.set(i);
      const stream = Buffer.concat([
        encodeHandshake(infoHash, Buffer.alloc(20, 9), ourReserved()),
        encodeMessage({ type: 'bitfield', bitfield: bf.toBuffer() }),
        encodeMessage({ type: 'unchoke' }),
      ]);
      const out = Buffer.concat([
        send,
        result.reply,
        cipher ? cipher.encrypt.update(stream) : stream,
      ]);
      if (!o.bytewise) {
        s.write(out);
        return;
      }
      let at = 0;
      const next = () => {
        if (at >= out.length || s.destroyed) return;
        s.write(out.subarray(at, ++at));
        setImmediate(next);
      };
      next();
    });
  });
  closers.push(() => server.close());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, got: () => got };
}

describe('PeerConnection with mse', () => {
  for (const rc4Only of [false, true]) {
    for (const bytewise of [false, true]) {
      it(`${rc4Only ? 'RC4' : 'a plain stream'}, the reply ${bytewise ? 'byte by byte' : 'in one write'}`, async () => {
        const peer = await responder({ rc4Only, bytewise });
        const conn = new PeerConnection({
          host: '127.0.0.1',
          port: peer.port,
          infoHash,
          peerId: Buffer.alloc(20, 1),
          pieceCount: PIECES,
          mse: CRYPTO_PLAINTEXT | CRYPTO_RC4,
        });
        closers.push(() => conn.close('test over'));
        await conn.connect();
        expect(conn.encryption).toBe(rc4Only ? 'rc4' : 'handshake');
        const unchoked = new Promise<void>((r) => conn.once('unchoke', () => r()));
        conn.start(new Bitfield(PIECES));
        await unchoked;
        expect([...Array(PIECES).keys()].filter((i) => conn.bitfield.has(i))).toEqual([0, 3, 39]);
        // What we send after the exchange reaches the peer as sent: our handshake (the IA), then
        // have-none (both sides speak BEP 6) and an interested.
        conn.interested();
        const want = 68 + 5 + 5;
        const got = await until(
          () => peer.got().length >= want && peer.got(),
          10_000,
          'our first bytes at the peer',
        );
        expect(got.subarray(0, 68)).toEqual(
          encodeHandshake(infoHash, Buffer.alloc(20, 1), ourReserved()),
        );
        expect([...got.subarray(68, want)]).toEqual([0, 0, 0, 1, 0x0f, 0, 0, 0, 1, 2]);
      });
    }
  }
});
