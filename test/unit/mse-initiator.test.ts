import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WireError } from '../../src/errors.js';
import { encodeHandshake, ourReserved } from '../../src/wire/handshake.js';
import {
  CRYPTO_PLAINTEXT,
  CRYPTO_RC4,
  MSE_KEY_BYTES,
  MseResponder,
  pad,
  sha1,
  testGroup,
  type MseResult,
} from '../../src/wire/mse.js';
import { Rc4 } from '../../src/wire/rc4.js';
import { MseInitiator, type MseInitiatorResult } from '../../src/wire/mse-initiator.js';

const infoHash = Buffer.alloc(20, 7);
const ours = encodeHandshake(infoHash, Buffer.from('-TD0001-abcdefghijkl'), ourReserved());
const theirs = encodeHandshake(infoHash, Buffer.from('-LT2000-mnopqrstuvwx'), ourReserved());
const BOTH = CRYPTO_PLAINTEXT | CRYPTO_RC4;

/**
 * Runs the initiator against the responder. What B sends back (step 2, step 4 and then B's
 * BitTorrent handshake, encrypted when RC4 was selected) reaches A cut by `cut`.
 */
function exchange(
  provide: number,
  cut: (b: Buffer) => Buffer[] = (b) => [b],
  responder: { padLength?: number; rc4Only?: boolean } = {},
): { a: MseInitiatorResult; b: MseResult } {
  const a = new MseInitiator(infoHash, ours, { provide, padLength: 17 });
  const b = new MseResponder(infoHash, { padLength: 33, ...responder });
  const r1 = b.push(a.hello());
  const a3 = a.push(r1.send);
  expect(a3.result).toBeNull();
  const r2 = b.push(a3.send);
  const bResult = r2.result!;
  expect(bResult).not.toBeNull();
  const after = bResult.cipher ? bResult.cipher.encrypt.update(theirs) : theirs;
  // Step 2 went to A already; step 4 and B's handshake arrive in pieces.
  const stream = Buffer.concat([r2.send, bResult.reply, after]);
  let aResult: MseInitiatorResult | null = null;
  const late: Buffer[] = [];
  for (const chunk of cut(stream)) {
    if (aResult) {
      late.push(aResult.cipher ? aResult.cipher.decrypt.update(chunk) : chunk);
      continue;
    }
    const r = a.push(chunk);
    expect(r.send.length).toBe(0);
    aResult = r.result;
  }
  if (!aResult) throw new Error('no result');
  aResult.rest = Buffer.concat([aResult.rest, ...late]);
  return { a: aResult, b: bResult };
}

describe('MseInitiator against MseResponder', () => {
  it('offering both, gets plaintext: our handshake is the IA, theirs follows step 4 in the clear', () => {
    const { a, b } = exchange(BOTH);
    expect(b.ia).toEqual(ours);
    expect(b.cipher).toBeNull();
    expect(a.cipher).toBeNull();
    expect(a.rest).toEqual(theirs);
  });

  it('offering RC4 only, gets RC4: both streams go on where the handshake left them', () => {
    const { a, b } = exchange(CRYPTO_RC4);
    expect(b.ia).toEqual(ours);
    expect(a.rest).toEqual(theirs);
    const msg = Buffer.from('interested, then a request');
    expect(b.cipher!.decrypt.update(a.cipher!.encrypt.update(msg))).toEqual(msg);
    expect(a.cipher!.decrypt.update(b.cipher!.encrypt.update(msg))).toEqual(msg);
  });

  it('a responder that requires encryption selects RC4 from an offer of both', () => {
    const { a, b } = exchange(BOTH, undefined, { rc4Only: true });
    expect(a.cipher).not.toBeNull();
    expect(b.cipher).not.toBeNull();
    expect(a.rest).toEqual(theirs);
  });

  it('a responder that requires encryption refuses an offer of plaintext alone', () => {
    expect(() => exchange(CRYPTO_PLAINTEXT, undefined, { rc4Only: true })).toThrow(
      /plaintext only/,
    );
  });

  it('gives the same result however step 4 is split (every split point, then byte by byte)', () => {
    for (const provide of [BOTH, CRYPTO_RC4]) {
      const want = exchange(provide);
      const len = 96 + 33 + 14 + theirs.length;
      for (let at = 1; at < len; at++) {
        const got = exchange(provide, (s) => [s.subarray(0, at), s.subarray(at)]);
        expect(got.a.rest).toEqual(want.a.rest);
      }
      const bytes = exchange(provide, (s) => [...s].map((x) => Buffer.from([x])));
      expect(bytes.a.rest).toEqual(theirs);
    }
  });

  it('finds step 4 after PadB of 0 and of 512 bytes, and fails past 512', () => {
    expect(exchange(BOTH, undefined, { padLength: 0 }).a.rest).toEqual(theirs);
    expect(exchange(BOTH, undefined, { padLength: 512 }).a.rest).toEqual(theirs);
    expect(() => exchange(BOTH, undefined, { padLength: 513 })).toThrow(WireError);
  });
});

/** A hand-made B for what MseResponder would never send. */
function handMadeB(step4: (enc: Rc4) => Buffer): { a: MseInitiator; send: Buffer } {
  const bKey = testGroup(Buffer.alloc(20, 9));
  const a = new MseInitiator(infoHash, ours, { provide: BOTH, privateKey: Buffer.alloc(20, 3) });
  const ya = a.hello().subarray(0, MSE_KEY_BYTES);
  const s = pad(bKey.computeSecret(ya), MSE_KEY_BYTES);
  const enc = new Rc4(sha1('keyB', s, infoHash));
  const yb = pad(bKey.getPublicKey(), MSE_KEY_BYTES);
  return { a, send: Buffer.concat([yb, step4(enc)]) };
}

describe('MseInitiator refuses', () => {
  const header = (select: number, padD: number) => {
    const h = Buffer.alloc(14);
    h.writeUInt32BE(select, 8);
    h.writeUInt16BE(padD, 12);
    return h;
  };

  it('a selection of both methods, of none, or of one not offered', () => {
    for (const select of [3, 0, 4]) {
      const { a, send } = handMadeB((enc) => enc.update(header(select, 0)));
      expect(() => a.push(send)).toThrow(/did not offer/);
    }
    // Offered RC4 alone; the peer picks plaintext.
    const bKey = testGroup(Buffer.alloc(20, 9));
    const a = new MseInitiator(infoHash, ours, { provide: CRYPTO_RC4 });
    const s = pad(bKey.computeSecret(a.hello().subarray(0, MSE_KEY_BYTES)), MSE_KEY_BYTES);
    const step4 = new Rc4(sha1('keyB', s, infoHash)).update(header(CRYPTO_PLAINTEXT, 0));
    expect(() => a.push(Buffer.concat([pad(bKey.getPublicKey(), 96), step4]))).toThrow(
      /did not offer/,
    );
  });

  it('PadD over 512 bytes, and 520 bytes after Yb with no VC among them', () => {
    const long = handMadeB((enc) => enc.update(header(CRYPTO_RC4, 513)));
    expect(() => long.a.push(long.send)).toThrow(/PadD/);
    const junk = handMadeB(() => Buffer.alloc(520, 0x55));
    expect(() => junk.a.push(junk.send)).toThrow(/no VC/);
  });

  it('an offer of nothing, at construction', () => {
    expect(() => new MseInitiator(infoHash, ours, { provide: 0 })).toThrow(RangeError);
    expect(() => new MseInitiator(infoHash, ours, { provide: 4 })).toThrow(RangeError);
  });

  it('fuzz: random replies only ever need more bytes or throw WireError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 96, maxLength: 800 }), fc.nat(800), (bytes, at) => {
        const a = new MseInitiator(infoHash, ours, { provide: BOTH, padLength: 0 });
        const buf = Buffer.from(bytes);
        const cut = Math.min(at, buf.length);
        try {
          a.push(buf.subarray(0, cut));
          a.push(buf.subarray(cut));
        } catch (e) {
          expect(e).toBeInstanceOf(WireError);
        }
      }),
      { seed: 11, numRuns: 300 },
    );
  });
});
