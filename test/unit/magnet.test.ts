import { describe, expect, it } from 'vitest';
import { MetainfoError } from '../../src/errors.js';
import { exitCodeFor } from '../../src/cli/exit-codes.js';
import {
  MAX_MAGNET_LENGTH,
  MAX_MAGNET_TRACKERS,
  MAX_SELECT_ONLY,
  isMagnet,
  magnetUri,
  parseMagnet,
} from '../../src/metainfo/magnet.js';

const HEX = 'c12fe1c06bba254a9dc9f519b335aa7c1367a88a';
// The same hash in base32 (RFC 4648).
const B32 = Buffer.from(HEX, 'hex')
  .reduce((acc, byte) => acc + byte.toString(2).padStart(8, '0'), '')
  .match(/.{5}/g)!
  .map((b) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'[parseInt(b, 2)])
  .join('');

function error(uri: string): MetainfoError {
  try {
    parseMagnet(uri);
  } catch (err) {
    expect(err).toBeInstanceOf(MetainfoError);
    return err as MetainfoError;
  }
  throw new Error(`parsed: ${uri}`);
}

describe('parseMagnet', () => {
  it('reads every supported parameter', () => {
    const m = parseMagnet(
      `magnet:?xt=urn:btih:${HEX}&dn=Big+Buck%20Bunny&tr=udp%3A%2F%2Ft1%3A80&tr=http://t2/announce` +
        `&x.pe=10.0.0.1:6881&x.pe=[2001:db8::1]:51413&x.pe=seed.example.org:1&ws=http%3A%2F%2Fw%2Ff` +
        `&so=0,2,4-6&unknown=1&kt=a+b`,
    );
    expect(m).toEqual({
      infoHash: Buffer.from(HEX, 'hex'),
      infoHashHex: HEX,
      displayName: 'Big Buck Bunny',
      trackers: [['udp://t1:80'], ['http://t2/announce']],
      peers: [
        { host: '10.0.0.1', port: 6881 },
        { host: '2001:db8::1', port: 51413 },
        { host: 'seed.example.org', port: 1 },
      ],
      webSeeds: ['http://w/f'],
      selectOnly: [0, 2, 4, 5, 6],
      leftOut: { trackers: 0, peers: 0, webSeeds: 0 },
    });
  });

  it('takes a base32 info hash, in either case, and an upper-case hex one', () => {
    expect(B32).toHaveLength(32);
    expect(parseMagnet(`magnet:?xt=urn:btih:${B32}`).infoHashHex).toBe(HEX);
    expect(parseMagnet(`magnet:?xt=urn:btih:${B32.toLowerCase()}`).infoHashHex).toBe(HEX);
    expect(parseMagnet(`MAGNET:?XT=URN:BTIH:${HEX.toUpperCase()}`).infoHashHex).toBe(HEX);
  });

  it('needs nothing but the info hash', () => {
    expect(parseMagnet(`magnet:?xt=urn:btih:${HEX}`)).toEqual({
      infoHash: Buffer.from(HEX, 'hex'),
      infoHashHex: HEX,
      trackers: [],
      peers: [],
      webSeeds: [],
      leftOut: { trackers: 0, peers: 0, webSeeds: 0 },
    });
  });

  it('decodes percent escapes exactly once', () => {
    const m = parseMagnet(`magnet:?xt=urn:btih:${HEX}&dn=100%2525&tr=http://t/a%253Fb`);
    expect(m.displayName).toBe('100%25');
    expect(m.trackers).toEqual([['http://t/a%3Fb']]);
    // keys too
    expect(parseMagnet(`magnet:?%78t=urn:btih:${HEX}`).infoHashHex).toBe(HEX);
  });

  it('removes duplicate trackers and peers, keeps a hybrid link by its v1 hash', () => {
    const m = parseMagnet(
      `magnet:?xt=urn:btmh:1220${'ab'.repeat(32)}&xt=urn:btih:${HEX}&tr=a&tr=a&tr=b&x.pe=1.2.3.4:5&x.pe=1.2.3.4:5`,
    );
    expect(m.infoHashHex).toBe(HEX);
    expect(m.trackers).toEqual([['a'], ['b']]);
    expect(m.peers).toEqual([{ host: '1.2.3.4', port: 5 }]);
    // Its v2 hash is kept, to check the metadata against.
    expect(m.v2InfoHash?.toString('hex')).toBe('ab'.repeat(32));
    expect(parseMagnet(`magnet:?xt=urn:btih:${HEX}`).v2InfoHash).toBeUndefined();
  });

  it('writes x.pe IPv6 peers as --peer does: one form, IPv4-mapped as IPv4, a zone kept', () => {
    const m = parseMagnet(
      `magnet:?xt=urn:btih:${HEX}&x.pe=[::ffff:127.0.0.1]:5&x.pe=127.0.0.1:5` +
        `&x.pe=[0:0::1]:6&x.pe=%5Bfe80::1%25lo%5D:7`,
    );
    // The mapped address and the IPv4 one are one peer, dialled once.
    expect(m.peers).toEqual([
      { host: '127.0.0.1', port: 5 },
      { host: '::1', port: 6 },
      { host: 'fe80::1%lo', port: 7 },
    ]);
  });

  it('ends the query at a fragment (#…), as any URI', () => {
    const m = parseMagnet(`magnet:?xt=urn:btih:${HEX}&x.pe=1.2.3.4:5#frag&x.pe=9.9.9.9:9`);
    expect(m.peers).toEqual([{ host: '1.2.3.4', port: 5 }]);
    expect(parseMagnet(`magnet:?xt=urn:btih:${HEX}&dn=a%23b`).displayName).toBe('a#b');
  });

  it('takes the numbered forms xt.N and tr.N', () => {
    const m = parseMagnet(`magnet:?xt.1=urn:btih:${HEX}&tr.1=a&tr.2=b`);
    expect(m.infoHashHex).toBe(HEX);
    expect(m.trackers).toEqual([['a'], ['b']]);
    expect(parseMagnet(`magnet:?xt.1=urn:btih:${HEX}&xt.2=urn:btih:${HEX}`).infoHashHex).toBe(HEX);
    expect(() =>
      parseMagnet(`magnet:?xt.1=urn:btih:${HEX}&xt.2=urn:btih:${'0'.repeat(40)}`),
    ).toThrow(/two different/);
  });

  it('caps the number of trackers kept, and counts those left out', () => {
    // 300 distinct, and 20 repeated past the cap (not counted twice).
    const trs = Array.from({ length: 320 }, (_, i) => `&tr=udp://t${i % 300}:1`).join('');
    const m = parseMagnet(`magnet:?xt=urn:btih:${HEX}${trs}`);
    expect(m.trackers).toHaveLength(MAX_MAGNET_TRACKERS);
    expect(m.leftOut).toEqual({ trackers: 300 - MAX_MAGNET_TRACKERS, peers: 0, webSeeds: 0 });
  });

  it.each([
    ['not a magnet', 'http://x/?xt=urn:btih:' + HEX, /malformed magnet link/],
    ['no question mark', 'magnet:xt=urn:btih:' + HEX, /malformed magnet link/],
    ['no xt', 'magnet:?dn=x', /xt: missing/],
    ['short hash', `magnet:?xt=urn:btih:${HEX.slice(1)}`, /40 hex or 32 base32/],
    ['non-hex hash', `magnet:?xt=urn:btih:${'g'.repeat(40)}`, /40 hex or 32 base32/],
    ['bad base32 hash', `magnet:?xt=urn:btih:${'1'.repeat(32)}`, /40 hex or 32 base32/],
    ['two hashes', `magnet:?xt=urn:btih:${HEX}&xt=urn:btih:${'0'.repeat(40)}`, /two different/],
    [
      'v2 only',
      `magnet:?xt=urn:btmh:1220${'ab'.repeat(32)}`,
      /v2 magnet links are not supported yet/,
    ],
    [
      'a btmh that is not a SHA-256 multihash',
      `magnet:?xt=urn:btih:${HEX}&xt=urn:btmh:1114${'ab'.repeat(20)}`,
      /is not a SHA-256 multihash/,
    ],
    [
      'two v2 hashes',
      `magnet:?xt=urn:btih:${HEX}&xt=urn:btmh:1220${'ab'.repeat(32)}&xt=urn:btmh:1220${'cd'.repeat(32)}`,
      /two different v2 info hashes/,
    ],
    ['bad escape', `magnet:?xt=urn:btih:${HEX}&dn=%zz`, /% escape/],
    ['truncated escape', `magnet:?xt=urn:btih:${HEX}&dn=abc%4`, /% escape/],
    ['escape of invalid UTF-8', `magnet:?xt=urn:btih:${HEX}&dn=%ff`, /% escape/],
    ['escape in a key', `magnet:?xt=urn:btih:${HEX}&%zz=1`, /% escape/],
    ['__proto__ key', `magnet:?xt=urn:btih:${HEX}&__proto__=x`, /not allowed/],
    ['escaped __proto__ key', `magnet:?xt=urn:btih:${HEX}&%5F_proto__=x`, /not allowed/],
    ['constructor key', `magnet:?xt=urn:btih:${HEX}&constructor=x`, /not allowed/],
    ['bad peer', `magnet:?xt=urn:btih:${HEX}&x.pe=nope`, /x\.pe/],
    ['peer port 0', `magnet:?xt=urn:btih:${HEX}&x.pe=1.2.3.4:0`, /x\.pe/],
    ['peer port too big', `magnet:?xt=urn:btih:${HEX}&x.pe=1.2.3.4:65536`, /x\.pe/],
    ['bad IPv4 peer', `magnet:?xt=urn:btih:${HEX}&x.pe=999.1.1.1:80`, /x\.pe/],
    ['unbracketed IPv6 peer', `magnet:?xt=urn:btih:${HEX}&x.pe=::1:80`, /x\.pe/],
    ['bad so', `magnet:?xt=urn:btih:${HEX}&so=1,x`, /so/],
    ['backwards so', `magnet:?xt=urn:btih:${HEX}&so=5-2`, /backwards/],
    ['huge so range', `magnet:?xt=urn:btih:${HEX}&so=0-999999999`, /beyond/],
    ['so selecting too much', `magnet:?xt=urn:btih:${HEX}&so=0-99999,0-99999`, /more than/],
    ['two so', `magnet:?xt=urn:btih:${HEX}&so=1&so=2`, /twice/],
    ['too long', `magnet:?xt=urn:btih:${HEX}&dn=${'a'.repeat(MAX_MAGNET_LENGTH)}`, /more than/],
    ['too many params', `magnet:?xt=urn:btih:${HEX}${'&a'.repeat(2000)}`, /parameters/],
  ])('%s: MetainfoError (exit 3)', (_name, uri, message) => {
    const e = error(uri);
    expect(e.message).toMatch(message);
    expect(exitCodeFor(e)).toBe(3);
  });

  it('accepts so at its limits', () => {
    const m = parseMagnet(`magnet:?xt=urn:btih:${HEX}&so=${MAX_SELECT_ONLY - 1},3,3,1-2`);
    expect(m.selectOnly).toEqual([1, 2, 3, MAX_SELECT_ONLY - 1]);
  });

  it('ignores empty parameters and keys without a value', () => {
    expect(parseMagnet(`magnet:?&&xt=urn:btih:${HEX}&&dn&tr=&foo`)).toEqual(
      parseMagnet(`magnet:?xt=urn:btih:${HEX}`),
    );
  });
});

describe('isMagnet and magnetUri', () => {
  it('recognises magnet links only', () => {
    expect(isMagnet('magnet:?xt=urn:btih:x')).toBe(true);
    expect(isMagnet('Magnet:?')).toBe(true);
    expect(isMagnet('file.torrent')).toBe(false);
    expect(isMagnet('magnet.torrent')).toBe(false);
  });

  it('builds a link that parses back', () => {
    const uri = magnetUri(HEX.toUpperCase(), 'a & b/ü', ['udp://t:1/x?y=1&z', 'http://u']);
    expect(uri.startsWith(`magnet:?xt=urn:btih:${HEX}&dn=`)).toBe(true);
    const m = parseMagnet(uri);
    expect(m.displayName).toBe('a & b/ü');
    expect(m.trackers).toEqual([['udp://t:1/x?y=1&z'], ['http://u']]);
    expect(() => magnetUri('xyz')).toThrow(RangeError);
  });
});
