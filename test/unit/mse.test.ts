import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WireError } from '../../src/errors.js';
import {
  CRYPTO_PLAINTEXT,
  CRYPTO_RC4,
  MSE_KEY_BYTES,
  MseResponder,
  sniffHandshake,
  type MseResult,
} from '../../src/wire/mse.js';
import { Rc4 } from '../../src/wire/rc4.js';
import { MseInitiator } from '../helpers/mse-initiator.js';
import { encodeHandshake, ourReserved } from '../../src/wire/handshake.js';

const infoHash = Buffer.alloc(20, 7);
const peerId = Buffer.from('-AR0001-abcdefghijkl');
const handshake = encodeHandshake(infoHash, peerId, ourReserved());

/** Runs a whole exchange, B's input cut into chunks by `cut`; returns B's result and A's view. */
function exchange(
  a: MseInitiator,
  b: MseResponder,
  cut: (stream: Buffer) => Buffer[],
  after = Buffer.alloc(0),
): { result: MseResult; select: number | null } {
  const step1 = a.start();
  let result: MseResult | null = null;
  let toA = Buffer.alloc(0);
  const feed = (bytes: Buffer) => {
    for (const chunk of cut(bytes)) {
      if (result) {
        // What follows the handshake is the connection's to read: it belongs with `rest`.
        result.rest = Buffer.concat([result.rest, chunk]);
        continue;
      }
      const r = b.push(chunk);
      toA = Buffer.concat([toA, r.send]);
      if (r.result) {
        result = r.result;
        toA = Buffer.concat([toA, r.result.reply]);
      }
    }
  };
  feed(step1);
  const a1 = a.push(toA);
  toA = Buffer.alloc(0);
  feed(Buffer.concat([a1.send, after]));
  const a2 = a.push(toA);
  if (!result) throw new Error('no result');
  return { result, select: a2.select };
}

const whole = (s: Buffer) => [s];

describe('sniffHandshake', () => {
  it('tells a plain handshake from MSE, waiting while the prefix matches', () => {
    expect(sniffHandshake(handshake)).toBe('plain');
    expect(sniffHandshake(handshake.subarray(0, 20))).toBe('plain');
    for (let n = 0; n < 20; n++) expect(sniffHandshake(handshake.subarray(0, n))).toBeNull();
    expect(sniffHandshake(Buffer.from([0x13, 0x42, 0x00]))).toBe('mse');
    expect(sniffHandshake(Buffer.from([0xff]))).toBe('mse');
  });
});

describe('Rc4', () => {
  it('matches the classic test vectors without the discard', () => {
    const enc = (k: string, p: string) =>
      new Rc4(Buffer.from(k), 0).update(Buffer.from(p)).toString('hex');
    expect(enc('Key', 'Plaintext')).toBe('bbf316e8d940af0ad3');
    expect(enc('Wiki', 'pedia')).toBe('1021bf0420');
  });

  it('decrypts what it encrypts, across calls of any size', () => {
    const key = Buffer.from('a key');
    const data = Buffer.from('some bytes to protect, and some more');
    const c = new Rc4(key);
    const enc = Buffer.concat([c.update(data.subarray(0, 5)), c.update(data.subarray(5))]);
    expect(new Rc4(key).update(enc)).toEqual(data);
  });
});

describe('MseResponder', () => {
  it('agrees on plaintext and hands over the decrypted initial payload and what followed', () => {
    const tail = Buffer.from('plain bytes after IA');
    const a = new MseInitiator(infoHash, { ia: handshake, padA: Buffer.alloc(33, 1) });
    const { result, select } = exchange(a, new MseResponder(infoHash), whole, tail);
    expect(select).toBe(CRYPTO_PLAINTEXT);
    expect(result.ia).toEqual(handshake);
    expect(result.rest).toEqual(tail);
  });

  it('works with an empty IA, PadC, and a plaintext-only offer', () => {
    const a = new MseInitiator(infoHash, {
      provide: CRYPTO_PLAINTEXT,
      padC: Buffer.alloc(100, 9),
    });
    const { result, select } = exchange(a, new MseResponder(infoHash, { padLength: 0 }), whole);
    expect(select).toBe(CRYPTO_PLAINTEXT);
    expect(result.ia.length).toBe(0);
  });

  it('gives the same result however the stream is split (every split point, then byte by byte)', () => {
    const run = (cut: (s: Buffer) => Buffer[]) => {
      const a = new MseInitiator(infoHash, { ia: handshake, padA: Buffer.alloc(20, 3) });
      return exchange(a, new MseResponder(infoHash), cut, Buffer.from('xyz')).result;
    };
    // Step 1 is 116 bytes and step 3 about 140: split each at every point.
    for (let at = 0; at <= 160; at++) {
      const r = run((s) => [s.subarray(0, at), s.subarray(at)]);
      expect(r.ia).toEqual(handshake);
      expect(r.rest.toString()).toBe('xyz');
    }
    const bytewise = run((s) => [...s].map((x) => Buffer.from([x])));
    expect(bytewise.ia).toEqual(handshake);
    expect(bytewise.rest.toString()).toBe('xyz');
  });

  it('an RC4-only offer gets RC4: both streams go on where the handshake left them', () => {
    const a = new MseInitiator(infoHash, { provide: CRYPTO_RC4, ia: handshake });
    const b = new MseResponder(infoHash);
    const step2 = b.push(a.start()).send;
    const r = b.push(a.push(step2).send);
    const res = r.result!;
    expect(res.ia).toEqual(handshake);
    expect(res.cipher).not.toBeNull();
    expect(a.push(Buffer.concat([r.send, res.reply])).select).toBe(CRYPTO_RC4);
    const sa = a.streams();
    const toB = Buffer.from('interested, then a request');
    expect(res.cipher!.decrypt.update(sa.encrypt.update(toB))).toEqual(toB);
    const toA = Buffer.from('unchoke, then a piece');
    expect(sa.decrypt.update(res.cipher!.encrypt.update(toA))).toEqual(toA);
    // Plaintext offered too: plaintext, no cipher.
    const both = new MseInitiator(infoHash, { ia: handshake });
    expect(exchange(both, new MseResponder(infoHash), whole).result.cipher).toBeNull();
  });

  it('refuses another torrent, an offer of neither method, and PadA over 512 bytes', () => {
    const other = new MseInitiator(Buffer.alloc(20, 8), { ia: handshake });
    expect(() => exchange(other, new MseResponder(infoHash), whole)).toThrow(/another torrent/);
    const none = new MseInitiator(infoHash, { provide: 0x04 });
    expect(() => exchange(none, new MseResponder(infoHash), whole)).toThrow(
      /neither plaintext nor RC4/,
    );
    const padded = new MseInitiator(infoHash, { padA: Buffer.alloc(600) });
    expect(() => exchange(padded, new MseResponder(infoHash), whole)).toThrow(WireError);
  });

  it('fails on garbage after the public key once 532 bytes hold no req1 hash', () => {
    const b = new MseResponder(infoHash);
    expect(b.push(Buffer.alloc(MSE_KEY_BYTES, 5)).send.length).toBeGreaterThanOrEqual(
      MSE_KEY_BYTES,
    );
    expect(() => b.push(Buffer.alloc(600, 1))).toThrow(WireError);
  });

  it('fuzz: random input only ever needs more bytes or throws WireError', () => {
    const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 42;
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 6 }), (chunks) => {
        const b = new MseResponder(infoHash, { padLength: 0 });
        try {
          for (const c of chunks) b.push(Buffer.from(c));
        } catch (e) {
          if (!(e instanceof WireError)) throw e;
        }
      }),
      { seed, numRuns: 60 },
    );
  });
});
