import { describe, expect, it } from 'vitest';
import { WireError } from '../../src/errors.js';
import { encode } from '../../src/metainfo/bencode.js';
import {
  MAX_METADATA_PIECES,
  MAX_SERVES_PER_PIECE,
  METADATA_PIECE_SIZE,
  MetadataServer,
  type UtMetadataMessage,
  answerMetadataRequest,
  decodeUtMetadata,
  encodeUtMetadata,
  metadataPieceCount,
  metadataPieceLength,
} from '../../src/wire/ut-metadata.js';

describe('ut_metadata codec', () => {
  it('encodes the bytes BEP 9 shows', () => {
    expect(encodeUtMetadata({ type: 'request', piece: 0 }).toString()).toBe(
      'd8:msg_typei0e5:piecei0ee',
    );
    expect(encodeUtMetadata({ type: 'reject', piece: 3 }).toString()).toBe(
      'd8:msg_typei2e5:piecei3ee',
    );
    expect(
      encodeUtMetadata({
        type: 'data',
        piece: 0,
        totalSize: 3425,
        data: Buffer.from('xyz'),
      }).toString(),
    ).toBe('d8:msg_typei1e5:piecei0e10:total_sizei3425eexyz');
  });

  it.each<UtMetadataMessage>([
    { type: 'request', piece: 0 },
    { type: 'request', piece: MAX_METADATA_PIECES - 1 },
    { type: 'reject', piece: 7 },
    { type: 'data', piece: 1, totalSize: 20000, data: Buffer.alloc(20000 - 16384, 7) },
    { type: 'data', piece: 0, totalSize: 16384, data: Buffer.alloc(16384, 1) },
    // data that itself looks like bencode must stay data
    { type: 'data', piece: 0, totalSize: 5, data: Buffer.from('de') },
    { type: 'unknown', msgType: 9 },
  ])('round-trips %o', (m) => {
    expect(decodeUtMetadata(encodeUtMetadata(m))).toEqual(m);
  });

  it('a data piece is a view of the payload', () => {
    const payload = encodeUtMetadata({
      type: 'data',
      piece: 0,
      totalSize: 3,
      data: Buffer.from('abc'),
    });
    const m = decodeUtMetadata(payload);
    expect(m.type === 'data' && m.data.buffer === payload.buffer).toBe(true);
  });

  it('tolerates extra keys in the dictionary', () => {
    const p = encode({ msg_type: 0, piece: 2, extra: { a: [1, 2] } });
    expect(decodeUtMetadata(p)).toEqual({ type: 'request', piece: 2 });
  });

  const bad: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['not bencode', Buffer.from('hello')],
    ['a list', Buffer.from('li0ei0ee')],
    ['a string', Buffer.from('3:abc')],
    ['no msg_type', encode({ piece: 0 })],
    ['negative msg_type', encode({ msg_type: -1, piece: 0 })],
    ['string msg_type', encode({ msg_type: '0', piece: 0 })],
    ['no piece', encode({ msg_type: 0 })],
    ['piece as a dictionary', encode({ msg_type: 0, piece: {} })],
    ['piece as a list', encode({ msg_type: 2, piece: [1] })],
    ['negative piece', encode({ msg_type: 0, piece: -1 })],
    ['huge piece', encode({ msg_type: 0, piece: MAX_METADATA_PIECES })],
    ['data without total_size', encode({ msg_type: 1, piece: 0 })],
    ['data with negative total_size', encode({ msg_type: 1, piece: 0, total_size: -5 })],
    [
      'data longer than 16 KiB',
      Buffer.concat([
        encode({ msg_type: 1, piece: 0, total_size: 99999 }),
        Buffer.alloc(METADATA_PIECE_SIZE + 1),
      ]),
    ],
    [
      'request with trailing bytes',
      Buffer.concat([encode({ msg_type: 0, piece: 0 }), Buffer.from('x')]),
    ],
    [
      'reject with trailing bytes',
      Buffer.concat([encode({ msg_type: 2, piece: 0 }), Buffer.from('x')]),
    ],
    ['__proto__ key', Buffer.from('d9:__proto__i1e8:msg_typei0e5:piecei0ee')],
    ['non-canonical integer', Buffer.from('d8:msg_typei00e5:piecei0ee')],
    ['deep nesting', Buffer.from(`d1:x${'l'.repeat(10)}${'e'.repeat(10)}8:msg_typei0e5:piecei0ee`)],
    ['header over 1 KiB', Buffer.from(`d1:x2000:${'a'.repeat(2000)}8:msg_typei0e5:piecei0ee`)],
    ['huge string length', Buffer.from('d999999999999:xe')],
    ['stray end marker', Buffer.from('e')],
  ];
  it.each(bad)('%s is a WireError', (_name, payload) => {
    expect(() => decodeUtMetadata(payload)).toThrow(WireError);
  });

  it('every truncation of a request or the header of a data message is a WireError', () => {
    for (const full of [
      encodeUtMetadata({ type: 'request', piece: 12 }),
      encodeUtMetadata({ type: 'data', piece: 1, totalSize: 40000, data: Buffer.alloc(0) }),
    ]) {
      for (let i = 0; i < full.length; i++) {
        expect(() => decodeUtMetadata(full.subarray(0, i))).toThrow(WireError);
      }
    }
  });

  it('a data message cut inside its data decodes with the shorter data (the fetch checks lengths)', () => {
    const full = encodeUtMetadata({
      type: 'data',
      piece: 0,
      totalSize: 100,
      data: Buffer.alloc(100, 5),
    });
    const head = full.length - 100;
    for (let i = head; i <= full.length; i++) {
      const m = decodeUtMetadata(full.subarray(0, i));
      expect(m.type === 'data' && m.data.length).toBe(i - head);
    }
  });

  it('refuses to encode nonsense', () => {
    expect(() => encodeUtMetadata({ type: 'request', piece: -1 })).toThrow(RangeError);
    expect(() =>
      encodeUtMetadata({ type: 'data', piece: 0, totalSize: 1, data: Buffer.alloc(16385) }),
    ).toThrow(RangeError);
  });
});

describe('serving metadata', () => {
  const info = Buffer.alloc(2 * METADATA_PIECE_SIZE + 100, 9);

  it('piece maths', () => {
    expect(metadataPieceCount(1)).toBe(1);
    expect(metadataPieceCount(METADATA_PIECE_SIZE)).toBe(1);
    expect(metadataPieceCount(METADATA_PIECE_SIZE + 1)).toBe(2);
    expect(metadataPieceLength(info.length, 2)).toBe(100);
    expect(metadataPieceLength(info.length, 0)).toBe(METADATA_PIECE_SIZE);
  });

  it('answers data for existing pieces, reject otherwise', () => {
    expect(answerMetadataRequest(info, 0)).toEqual({
      type: 'data',
      piece: 0,
      totalSize: info.length,
      data: info.subarray(0, METADATA_PIECE_SIZE),
    });
    const last = answerMetadataRequest(info, 2);
    expect(last.type === 'data' && last.data.length).toBe(100);
    expect(answerMetadataRequest(info, 3)).toEqual({ type: 'reject', piece: 3 });
    expect(answerMetadataRequest(null, 0)).toEqual({ type: 'reject', piece: 0 });
    // and the answer encodes and decodes to the same thing
    expect(decodeUtMetadata(encodeUtMetadata(last))).toEqual(last);
  });

  it(`MetadataServer sends a piece at most ${MAX_SERVES_PER_PIECE} times per connection`, () => {
    const server = new MetadataServer();
    expect(server.answer(null, 0)).toEqual({ type: 'reject', piece: 0 });
    for (let i = 0; i < MAX_SERVES_PER_PIECE; i++) {
      expect(server.answer(info, 1).type).toBe('data');
    }
    expect(server.answer(info, 1)).toEqual({ type: 'reject', piece: 1 });
    expect(server.answer(info, 0).type).toBe('data');
    expect(server.answer(info, 9)).toEqual({ type: 'reject', piece: 9 });
  });
});
