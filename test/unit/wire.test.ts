import { describe, expect, it } from 'vitest';
import { WireError } from '../../src/errors.js';
import { Framer } from '../../src/wire/framer.js';
import {
  HANDSHAKE_LENGTH,
  PROTOCOL,
  decodeHandshake,
  encodeHandshake,
} from '../../src/wire/handshake.js';
import {
  BLOCK_SIZE,
  MESSAGE_LENGTH_SLACK,
  type Message,
  decodeMessage,
  encodeCancel,
  encodeHave,
  encodeMessage,
  encodePiece,
  encodePieceHeader,
  encodeRequest,
  maxMessageLength,
} from '../../src/wire/messages.js';

const MAX = maxMessageLength(1000);
const infoHash = Buffer.alloc(20, 0xaa);
const peerId = Buffer.from('-TD0001-abcdefghijkl');
const reserved = Buffer.from([0, 0, 0, 0, 0, 0x10, 0, 0x05]);

const block = Buffer.from(Array.from({ length: BLOCK_SIZE }, (_, i) => i & 0xff));
const ALL: Message[] = [
  { type: 'keep-alive' },
  { type: 'choke' },
  { type: 'unchoke' },
  { type: 'interested' },
  { type: 'not-interested' },
  { type: 'have', index: 0 },
  { type: 'have', index: 0xffffffff },
  { type: 'bitfield', bitfield: Buffer.from([0xff, 0x80]) },
  { type: 'bitfield', bitfield: Buffer.alloc(125, 0x55) },
  { type: 'request', index: 7, begin: 16384, length: 16384 },
  { type: 'piece', index: 3, begin: 32768, block },
  { type: 'piece', index: 1, begin: 0, block: Buffer.from('tiny') },
  { type: 'piece', index: 1, begin: 0, block: Buffer.alloc(0) },
  { type: 'cancel', index: 0xfffffffe, begin: 1, length: 2 },
  { type: 'port', port: 6881 },
  { type: 'suggest', index: 9 },
  { type: 'have-all' },
  { type: 'have-none' },
  { type: 'reject', index: 7, begin: 16384, length: 16384 },
  { type: 'allowed-fast', index: 0xfffffffe },
  { type: 'extended', extId: 0, payload: Buffer.from('d1:md11:ut_metadatai1eee') },
  { type: 'extended', extId: 3, payload: Buffer.alloc(0) },
  { type: 'unknown', id: 21, payloadLength: 30 },
  { type: 'unknown', id: 255, payloadLength: 0 },
];

const label = (m: Message): string =>
  JSON.stringify(m, (_k, v) => (v?.type === 'Buffer' ? `<${v.data.length} bytes>` : v));

/** Compares message lists through their encodings (deep-equal on 16 KiB Buffers is slow). */
function expectSame(actual: Message[], expected: Message[]): void {
  expect(actual.map((m) => m.type)).toEqual(expected.map((m) => m.type));
  const enc = (ms: Message[]): Buffer => Buffer.concat(ms.map(encodeMessage));
  expect(enc(actual).equals(enc(expected))).toBe(true);
}

/** Messages are views valid until the next push: copy what is kept, as the framer's users do. */
function drain(f: Framer): Message[] {
  const out: Message[] = [];
  for (let m = f.next(); m !== null; m = f.next()) {
    if (m.type === 'piece') out.push({ ...m, block: Buffer.from(m.block) });
    else if (m.type === 'bitfield') out.push({ ...m, bitfield: Buffer.from(m.bitfield) });
    else if (m.type === 'extended') out.push({ ...m, payload: Buffer.from(m.payload) });
    else out.push(m);
  }
  return out;
}

describe('wire messages', () => {
  for (const m of ALL) {
    it(`round-trips ${label(m)}`, () => {
      const enc = encodeMessage(m);
      const dec = decodeMessage(enc, MAX);
      expect(dec).not.toBeNull();
      expect(dec!.size).toBe(enc.length);
      expect(dec!.message).toEqual(m);
      // one byte less is "need more"
      expect(decodeMessage(enc.subarray(0, enc.length - 1), MAX)).toBeNull();
    });
  }

  it('encodes the standard layouts', () => {
    expect(encodeMessage({ type: 'interested' }).toString('hex')).toBe('0000000102');
    expect(encodeHave(5).toString('hex')).toBe('000000050400000005');
    expect(encodeRequest(1, 2, 3).toString('hex')).toBe('0000000d06000000010000000200000003');
    expect(encodeCancel(1, 2, 3).toString('hex')).toBe('0000000d08000000010000000200000003');
    expect(encodeMessage({ type: 'port', port: 0x1ae1 }).toString('hex')).toBe('00000003091ae1');
    const p = encodePiece(1, 2, Buffer.from('xy'));
    expect(p.toString('hex')).toBe('0000000b07000000010000000278' + '79');
    expect(Buffer.concat([encodePieceHeader(1, 2, 2), Buffer.from('xy')]).equals(p)).toBe(true);
  });

  it('returns piece blocks as views, not copies', () => {
    const enc = encodePiece(0, 0, Buffer.from('hello'));
    const dec = decodeMessage(enc, MAX)!;
    const blk = (dec.message as { block: Buffer }).block;
    expect(blk.buffer).toBe(enc.buffer);
  });

  it('rejects wrong fixed payload sizes', () => {
    const bad = [
      '000000020000', // choke with 1 byte
      '0000000401000000', // unchoke with 3 bytes
      '0000000404000000', // have with 3 bytes
      '000000060400000000ff', // have with 5 bytes
      '0000000c06' + '00'.repeat(11), // request with 11 bytes
      '0000000e08' + '00'.repeat(13), // cancel with 13 bytes
      '000000020900', // port with 1 byte
      '0000000807' + '00'.repeat(7), // piece with 7 bytes
    ];
    for (const hex of bad) {
      const buf = Buffer.from(hex, 'hex');
      expect(() => decodeMessage(buf, MAX), hex).toThrow(WireError);
    }
  });

  it('checks the length prefix before waiting for the body', () => {
    expect(() => decodeMessage(Buffer.from('ffffffff', 'hex'), MAX)).toThrow(WireError);
    expect(() => decodeMessage(Buffer.from([0, 0, 0x80, 0]), 100)).toThrow(/exceeds/);
    expect(decodeMessage(Buffer.from([0, 0, 0, 100]), 100)).toBeNull();
    expect(decodeMessage(Buffer.from([0xff, 0xff, 0xff]), MAX)).toBeNull();
  });

  it('sizes the cap for blocks and bitfields', () => {
    expect(maxMessageLength(1)).toBe(1 + 8 + BLOCK_SIZE + MESSAGE_LENGTH_SLACK);
    expect(maxMessageLength(1_000_000)).toBe(1 + 125_000 + MESSAGE_LENGTH_SLACK);
  });
});

describe('handshake', () => {
  it('round-trips', () => {
    const hs = encodeHandshake(infoHash, peerId, reserved);
    expect(hs.length).toBe(HANDSHAKE_LENGTH);
    expect(hs[0]).toBe(19);
    expect(hs.subarray(1, 20).toString()).toBe(PROTOCOL);
    expect(decodeHandshake(hs)).toEqual({ infoHash, peerId, reserved });
    const plain = decodeHandshake(encodeHandshake(infoHash, peerId))!;
    expect(plain.reserved.equals(Buffer.alloc(8))).toBe(true);
  });

  it('returns null until complete, and fails early on a wrong protocol', () => {
    const hs = encodeHandshake(infoHash, peerId);
    for (let n = 0; n < HANDSHAKE_LENGTH; n++)
      expect(decodeHandshake(hs.subarray(0, n))).toBeNull();
    expect(() => decodeHandshake(Buffer.from([18]))).toThrow(WireError);
    expect(() => decodeHandshake(Buffer.from('\x13BitTorrent prot0', 'latin1'))).toThrow(
      /protocol/,
    );
    expect(() => decodeHandshake(Buffer.from('GET / HTTP/1.1\r\n'))).toThrow(WireError);
  });
});

describe('Framer', () => {
  const handshake = encodeHandshake(infoHash, peerId, reserved);
  const stream = Buffer.concat(ALL.map(encodeMessage));

  function viaFramer(parts: Buffer[], withHandshake: boolean): { hs: unknown; msgs: Message[] } {
    const f = new Framer({ maxLength: MAX, expectHandshake: withHandshake });
    let hs: unknown = null;
    const msgs: Message[] = [];
    for (const p of parts) {
      f.push(p);
      if (withHandshake && hs === null) {
        hs = f.nextHandshake();
        if (hs === null) continue;
      }
      msgs.push(...drain(f));
    }
    expect(f.buffered).toBe(0);
    return { hs, msgs };
  }

  it('gives the same messages for every two-chunk split of every message', () => {
    for (const m of ALL) {
      const enc = encodeMessage(m);
      for (let cut = 0; cut <= enc.length; cut++) {
        const { msgs } = viaFramer([enc.subarray(0, cut), enc.subarray(cut)], false);
        expectSame(msgs, [m]);
      }
    }
  });

  it('gives the same messages fed one byte at a time', () => {
    for (const m of ALL) {
      const enc = encodeMessage(m);
      const bytes = Array.from(enc, (b) => Buffer.from([b]));
      expectSame(viaFramer(bytes, false).msgs, [m]);
    }
  });

  it('reads a handshake followed by a stream, at every split and byte by byte', () => {
    const all = Buffer.concat([handshake, stream]);
    const hs = { infoHash, peerId, reserved };
    const check = (r: { hs: unknown; msgs: Message[] }): void => {
      expect(r.hs).toEqual(hs);
      expectSame(r.msgs, ALL);
    };
    check(viaFramer([all], true));
    for (let cut = 0; cut <= all.length; cut++) {
      check(viaFramer([all.subarray(0, cut), all.subarray(cut)], true));
    }
    check(
      viaFramer(
        Array.from(all, (b) => Buffer.from([b])),
        true,
      ),
    );
    // three chunks at assorted positions
    for (let a = 0; a < all.length; a += 37) {
      for (let b = a; b <= all.length; b += 1013) {
        check(viaFramer([all.subarray(0, a), all.subarray(a, b), all.subarray(b)], true));
      }
    }
  });

  it('throws on a 4 GiB length prefix right after its 4 bytes', () => {
    const f = new Framer({ maxLength: MAX, expectHandshake: false });
    f.push(Buffer.from([0xff, 0xff, 0xff]));
    expect(f.next()).toBeNull();
    f.push(Buffer.from([0xff]));
    expect(() => f.next()).toThrow(WireError);
  });

  it('partialPiece counts the bytes of a piece message still arriving, and nothing else', () => {
    const f = new Framer({ maxLength: MAX, expectHandshake: false });
    const piece = encodeMessage({ type: 'piece', index: 1, begin: 0, block: Buffer.alloc(100) });
    f.push(encodeMessage({ type: 'keep-alive' }));
    f.push(encodeMessage({ type: 'have', index: 3 }));
    drain(f);
    f.push(piece.subarray(0, 4));
    expect(f.partialPiece).toBe(0); // its type is not known yet
    f.push(piece.subarray(4, 50));
    expect(f.partialPiece).toBe(50);
    f.push(piece.subarray(50));
    expect(drain(f)).toHaveLength(1);
    expect(f.partialPiece).toBe(0);
    f.push(encodeMessage({ type: 'bitfield', bitfield: Buffer.alloc(20) }).subarray(0, 10));
    expect(f.partialPiece).toBe(0);
  });

  it('applies setMaxLength', () => {
    const f = new Framer({ maxLength: 10, expectHandshake: false });
    f.push(encodeMessage({ type: 'bitfield', bitfield: Buffer.alloc(20) }));
    expect(() => f.next()).toThrow(/exceeds/);
    const g = new Framer({ maxLength: 10, expectHandshake: false });
    g.push(encodeMessage({ type: 'bitfield', bitfield: Buffer.alloc(20) }));
    g.setMaxLength(21);
    expect(g.next()).toEqual({ type: 'bitfield', bitfield: Buffer.alloc(20) });
  });

  it('rejects a bad handshake as soon as the bytes show it', () => {
    const f = new Framer({ maxLength: MAX, expectHandshake: true });
    f.push(Buffer.from([19, 0x42, 0x69, 0x74]));
    expect(f.nextHandshake()).toBeNull();
    f.push(Buffer.from('X'));
    expect(() => f.nextHandshake()).toThrow(WireError);
  });

  it('keeps bytes after the handshake for next()', () => {
    const f = new Framer({ maxLength: MAX, expectHandshake: true });
    f.push(Buffer.concat([handshake, encodeHave(9).subarray(0, 3)]));
    expect(f.nextHandshake()).not.toBeNull();
    expect(f.buffered).toBe(3);
    expect(f.next()).toBeNull();
    f.push(encodeHave(9).subarray(3));
    expect(f.next()).toEqual({ type: 'have', index: 9 });
  });

  it('is linear in the bytes received (1-byte chunks of a large stream)', () => {
    const big = Buffer.concat(Array.from({ length: 64 }, (_, i) => encodePiece(i, 0, block)));
    const f = new Framer({ maxLength: MAX, expectHandshake: false });
    const t0 = performance.now();
    let n = 0;
    for (let off = 0; off < big.length; off += 7) {
      f.push(big.subarray(off, off + 7));
      while (f.next() !== null) n++;
    }
    expect(n).toBe(64);
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});
