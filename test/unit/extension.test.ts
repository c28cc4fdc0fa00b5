import { describe, expect, it } from 'vitest';
import { WireError } from '../../src/errors.js';
import { encode } from '../../src/metainfo/bencode.js';
import {
  LOCAL_EXTENSION_IDS,
  MAX_CLIENT_NAME_CHARS,
  MAX_EXTENSIONS,
  MAX_REQQ,
  decodeExtendedHandshake,
  encodeExtendedHandshake,
  localExtendedHandshake,
  peerExtensionId,
} from '../../src/wire/extension.js';
import { decodeMessage, encodeExtended } from '../../src/wire/messages.js';

function dict(o: Record<string, unknown>): Buffer {
  return encode(o);
}

describe('extended handshake', () => {
  it('round-trips every field', () => {
    const h = {
      m: new Map([
        ['ut_metadata', 3],
        ['ut_pex', 0],
      ]),
      v: 'tdl 0.1.0',
      p: 6881,
      reqq: 250,
      metadataSize: 31_337,
      yourip: Buffer.from([127, 0, 0, 1]),
    };
    expect(decodeExtendedHandshake(encodeExtendedHandshake(h))).toEqual(h);
  });

  it('encodes the bytes BEP 10 shows (sorted keys)', () => {
    const b = encodeExtendedHandshake({ m: new Map([['ut_metadata', 1]]), p: 6881 });
    expect(b.toString('latin1')).toBe('d1:md11:ut_metadatai1ee1:pi6881ee');
  });

  it('our handshake: ut_metadata always, ut_pex only for public torrents', () => {
    const pub = localExtendedHandshake({ privateTorrent: false, metadataSize: 10 });
    expect(pub.m.get('ut_metadata')).toBe(LOCAL_EXTENSION_IDS.ut_metadata);
    expect(pub.m.get('ut_pex')).toBe(LOCAL_EXTENSION_IDS.ut_pex);
    expect(pub.metadataSize).toBe(10);
    const priv = localExtendedHandshake({ privateTorrent: true });
    expect(priv.m.has('ut_pex')).toBe(false);
    expect(priv.m.has('ut_metadata')).toBe(true);
  });

  it('peerExtensionId: absent and 0 mean unsupported', () => {
    const h = decodeExtendedHandshake(dict({ m: { ut_metadata: 7, ut_pex: 0 } }));
    expect(peerExtensionId(h, 'ut_metadata')).toBe(7);
    expect(peerExtensionId(h, 'ut_pex')).toBeUndefined();
    expect(peerExtensionId(h, 'lt_donthave')).toBeUndefined();
  });

  it('ignores unknown keys and bad values of known keys', () => {
    const h = decodeExtendedHandshake(
      dict({
        m: { ut_metadata: 300, ut_pex: -1, good: 5, str: 'x', ['x'.repeat(65)]: 4 },
        p: 0,
        reqq: -5,
        metadata_size: -1,
        yourip: Buffer.alloc(5),
        v: 12,
        complete_ago: 1,
        e: 1,
        upload_only: 1,
        nested: [[{ a: 1 }]],
      }),
    );
    expect(h).toEqual({ m: new Map([['good', 5]]) });
  });

  it('ignores integers beyond 2^53 one by one, not the whole handshake', () => {
    const payload = Buffer.from(
      'd1:md11:ut_metadatai3e6:ut_pexi4611686018427387904ee1:pi6881e4:reqqi9223372036854775807e' +
        '13:metadata_sizei99999999999999999999ee',
    );
    expect(decodeExtendedHandshake(payload)).toEqual({
      m: new Map([['ut_metadata', 3]]),
      p: 6881,
    });
  });

  it('a missing or non-dictionary m is an empty map', () => {
    expect(decodeExtendedHandshake(dict({})).m.size).toBe(0);
    expect(decodeExtendedHandshake(dict({ m: 'nope' })).m.size).toBe(0);
  });

  it('caps m entries, reqq and the client name; escapes control characters in v', () => {
    const m: Record<string, number> = {};
    for (let i = 0; i < 200; i++) m[`ext${String(i).padStart(3, '0')}`] = (i % 255) + 1;
    const h = decodeExtendedHandshake(
      dict({ m, reqq: 1e9, v: `evil\x1b[2J\u202e${'y'.repeat(500)}` }),
    );
    expect(h.m.size).toBe(MAX_EXTENSIONS);
    expect(h.reqq).toBe(MAX_REQQ);
    expect(h.v!.length).toBe(MAX_CLIENT_NAME_CHARS);
    expect(h.v!.startsWith('evil\uFFFD[2J\uFFFDyyy')).toBe(true);
  });

  it('keeps 16-byte yourip, copied out of the payload', () => {
    const payload = dict({ yourip: Buffer.alloc(16, 0xab) });
    const h = decodeExtendedHandshake(payload);
    payload.fill(0);
    expect(h.yourip).toEqual(Buffer.alloc(16, 0xab));
  });

  it.each([
    ['empty', Buffer.alloc(0)],
    ['a list', Buffer.from('le')],
    ['an integer', Buffer.from('i1e')],
    ['truncated', Buffer.from('d1:md11:ut_metadatai1e')],
    ['trailing bytes', Buffer.from('de!')],
    ['__proto__ key', Buffer.from('d9:__proto__i1ee')],
    ['duplicate key', Buffer.from('d1:pi1e1:pi2ee')],
    ['deep nesting', Buffer.from(`d1:x${'l'.repeat(40)}${'e'.repeat(40)}e`)],
  ])('%s is a WireError', (_name, payload) => {
    expect(() => decodeExtendedHandshake(payload)).toThrow(WireError);
  });

  it('every truncation of a valid handshake is a WireError', () => {
    const full = encodeExtendedHandshake(
      localExtendedHandshake({
        privateTorrent: false,
        metadataSize: 5000,
        port: 6881,
        version: 'x',
      }),
    );
    for (let i = 0; i < full.length; i++) {
      expect(() => decodeExtendedHandshake(full.subarray(0, i))).toThrow(WireError);
    }
  });

  it('refuses to encode ids or ports out of range', () => {
    expect(() => encodeExtendedHandshake({ m: new Map([['a', 256]]) })).toThrow(RangeError);
    expect(() => encodeExtendedHandshake({ m: new Map(), p: 70000 })).toThrow(RangeError);
    expect(() => encodeExtended(-1, Buffer.alloc(0))).toThrow(RangeError);
    expect(() => encodeExtendedHandshake({ m: new Map([['__proto__', 1]]) })).toThrow(RangeError);
  });
});

describe('extended messages', () => {
  it('frames <len><20><extId><payload> and the wire decoder splits it back', () => {
    const msg = encodeExtended(3, Buffer.from('hello'));
    expect(msg.readUInt32BE(0)).toBe(7);
    expect(msg[4]).toBe(20);
    expect(decodeMessage(msg, 100)).toEqual({
      message: { type: 'extended', extId: 3, payload: Buffer.from('hello') },
      size: 11,
    });
  });
});
