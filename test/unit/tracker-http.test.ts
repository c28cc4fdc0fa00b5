import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { TrackerError } from '../../src/errors.js';
import { encode } from '../../src/metainfo/bencode.js';
import { formatIPv6, ipv6ToBytes } from '../../src/tracker/compact.js';
import {
  MAX_PEERS_PER_REPLY,
  MAX_TRACKER_ID_BYTES,
  buildAnnounceUrl,
  parseHttpResponse,
} from '../../src/tracker/http.js';
import { percentEncodeBytes } from '../../src/http.js';
import type { AnnounceRequest } from '../../src/tracker/types.js';
import { compactPeers, parseHttpAnnounce, parseQueryBytes } from '../helpers/fake-tracker.js';

function ben(v: unknown): Buffer {
  return encode(v);
}

const infoHash = Buffer.from('00ff7e2d41207a2b2e5f25267e80c0fe10203040', 'hex');
const peerId = Buffer.from('-TD0001-abcdefghij~_', 'latin1');

function req(over: Partial<AnnounceRequest> = {}): AnnounceRequest {
  return { infoHash, peerId, port: 6881, uploaded: 1, downloaded: 2, left: 3, ...over };
}

describe('percent-encoding and URL building', () => {
  it('encodes every byte outside the unreserved set as %XX', () => {
    expect(percentEncodeBytes(infoHash)).toBe('%00%FF~-A%20z%2B._%25%26~%80%C0%FE%10%200%40');
    expect(percentEncodeBytes(Buffer.from('aZ09-._~ /?&=+%', 'latin1'))).toBe(
      'aZ09-._~%20%2F%3F%26%3D%2B%25',
    );
  });

  it('builds the query and round-trips binary info_hash exactly', () => {
    const url = buildAnnounceUrl(
      'http://t.example/announce',
      req({ event: 'started', numWant: 50, key: 0xdeadbeef }),
    );
    expect(url).toBe(
      'http://t.example/announce?info_hash=%00%FF~-A%20z%2B._%25%26~%80%C0%FE%10%200%40' +
        '&peer_id=-TD0001-abcdefghij~_&port=6881&uploaded=1&downloaded=2&left=3&compact=1' +
        '&event=started&numwant=50&key=DEADBEEF',
    );
    const parsed = parseHttpAnnounce(url);
    expect(parsed?.infoHash.equals(infoHash)).toBe(true);
    expect(parsed?.peerId.equals(peerId)).toBe(true);
    expect(parsed?.event).toBe('started');
  });

  it('appends with & to a URL that already has a query, drops a fragment', () => {
    const url = buildAnnounceUrl('http://t.example/a?passkey=abc#frag', req());
    expect(url.startsWith('http://t.example/a?passkey=abc&info_hash=%00')).toBe(true);
    expect(url).not.toContain('#');
    expect(buildAnnounceUrl('http://t.example/a?', req())).toMatch(/\/a\?info_hash=/);
    expect(buildAnnounceUrl('http://t.example/a?x=1&', req())).toMatch(/x=1&info_hash=/);
  });

  it('sends a tracker id back byte for byte, percent-encoded', () => {
    const id = Buffer.from([0x00, 0x41, 0xff, 0x20, 0x26, 0x3d, 0x7e]);
    const url = buildAnnounceUrl('http://t.example/a?passkey=x', req({ trackerId: id }));
    expect(url).toMatch(/&trackerid=%00A%FF%20%26%3D~$/);
    expect(parseQueryBytes(url.slice(url.indexOf('?') + 1)).get('trackerid')).toEqual(id);
  });

  it('omits event, numwant and key when absent and never prints negative numbers', () => {
    const url = buildAnnounceUrl('http://t/a', req({ uploaded: -5, left: 1.7 }));
    expect(url).not.toMatch(/event=|numwant=|key=|trackerid=/);
    expect(url).toContain('uploaded=0');
    expect(url).toContain('left=1&');
  });
});

describe('parseHttpResponse', () => {
  it('parses compact IPv4 peers, interval, min interval, counts', () => {
    const peers = compactPeers(
      [
        { host: '10.0.0.1', port: 6881 },
        { host: '192.168.1.200', port: 51413 },
      ],
      4,
    );
    const r = parseHttpResponse(
      ben({ interval: 900, 'min interval': 60, complete: 5, incomplete: 7, peers }),
    );
    expect(r).toEqual({
      interval: 900,
      minInterval: 60,
      complete: 5,
      incomplete: 7,
      peers: [
        { host: '10.0.0.1', port: 6881 },
        { host: '192.168.1.200', port: 51413 },
      ],
    });
  });

  it('parses the dictionary form and skips malformed entries', () => {
    const r = parseHttpResponse(
      ben({
        interval: 60,
        peers: [
          { ip: '10.0.0.1', port: 1000, 'peer id': Buffer.alloc(20) },
          { ip: '2001:db8:0:0:0:0:0:1', port: 1001 },
          { ip: '[::1]', port: 1002 },
          { ip: 'tracker.example', port: 1003 }, // host names are skipped
          { ip: '10.0.0.2' }, // no port
          { port: 1004 }, // no ip
          { ip: '10.0.0.3', port: 70000 }, // bad port
          { ip: 5, port: 1005 },
          'garbage',
          7,
        ],
      }),
    );
    expect(r.peers).toEqual([
      { host: '10.0.0.1', port: 1000 },
      { host: '2001:db8::1', port: 1001 },
      { host: '::1', port: 1002 },
    ]);
  });

  it('names a gzip-compressed reply as such', () => {
    const body = gzipSync(Buffer.from('d8:intervali60e5:peers0:e'));
    expect(() => parseHttpResponse(body)).toThrow(
      'reply is gzip-compressed, which tdl did not ask for',
    );
  });

  it('parses compact peers6', () => {
    const peers6 = compactPeers(
      [
        { host: '2001:db8::1', port: 6881 },
        { host: '::ffff:a00:1', port: 6882 },
      ],
      6,
    );
    const r = parseHttpResponse(ben({ interval: 60, peers: Buffer.alloc(0), peers6 }));
    expect(r.peers).toEqual([
      { host: '2001:db8::1', port: 6881 },
      { host: '10.0.0.1', port: 6882 },
    ]);
  });

  it('truncates compact strings to whole entries', () => {
    const v4 = Buffer.concat([compactPeers([{ host: '1.2.3.4', port: 5 }], 4), Buffer.from([9])]);
    const v6 = Buffer.concat([
      compactPeers([{ host: '2001:db8::2', port: 7 }], 6),
      Buffer.alloc(17, 1),
    ]);
    const r = parseHttpResponse(ben({ peers: v4, peers6: v6 }));
    expect(r.peers).toEqual([
      { host: '1.2.3.4', port: 5 },
      { host: '2001:db8::2', port: 7 },
    ]);
    expect(parseHttpResponse(ben({ peers: Buffer.alloc(5, 1) })).peers).toEqual([]);
  });

  it('drops port 0, unspecified addresses and duplicates', () => {
    const peers = compactPeers(
      [
        { host: '1.2.3.4', port: 0 },
        { host: '0.0.0.0', port: 80 },
        { host: '1.2.3.4', port: 80 },
        { host: '1.2.3.4', port: 80 },
      ],
      4,
    );
    expect(parseHttpResponse(ben({ peers })).peers).toEqual([{ host: '1.2.3.4', port: 80 }]);
  });

  it(`caps the peers taken from one reply at ${MAX_PEERS_PER_REPLY}`, () => {
    const many = Array.from({ length: 3000 }, (_, i) => ({
      host: `10.${(i >> 8) & 255}.${i & 255}.1`,
      port: 1000 + (i % 5000),
    }));
    const r = parseHttpResponse(ben({ peers: compactPeers(many, 4) }));
    expect(r.peers).toHaveLength(MAX_PEERS_PER_REPLY);
    expect(r.peers[0]).toEqual({ host: '10.0.0.1', port: 1000 });
    const dict = parseHttpResponse(ben({ peers: many.map((p) => ({ ip: p.host, port: p.port })) }));
    expect(dict.peers).toHaveLength(MAX_PEERS_PER_REPLY);
    // Read from another entry on (the announcer moves it on at each answer), wrapping around:
    // a peer listed after the first 500 is reached.
    const later = parseHttpResponse(ben({ peers: compactPeers(many, 4) }), 2800);
    expect(later.peers).toHaveLength(MAX_PEERS_PER_REPLY);
    expect(later.peers[0]).toEqual(many[2800]);
    expect(later.peers[200]).toEqual(many[0]);
    const laterDict = parseHttpResponse(
      ben({ peers: many.map((p) => ({ ip: p.host, port: p.port })) }),
      2800 + 3000,
    );
    expect(laterDict.peers[0]).toEqual(many[2800]);
    // A list that fits is read whole, from its start.
    const few = parseHttpResponse(ben({ peers: compactPeers(many.slice(0, 10), 4) }), 2800);
    expect(few.peers).toEqual(many.slice(0, 10));
  });

  it('turns failure reason into a TrackerError with the raw reason', () => {
    const reason = 'torrent not registered \x1b[31m here';
    expect(() => parseHttpResponse(ben({ 'failure reason': reason }))).toThrow(TrackerError);
    expect(() => parseHttpResponse(ben({ 'failure reason': reason }))).toThrow(reason);
  });

  it('keeps warning message, defaults and clamps interval', () => {
    const r = parseHttpResponse(ben({ 'warning message': 'slow down', peers: Buffer.alloc(0) }));
    expect(r.warning).toBe('slow down');
    expect(r.interval).toBe(1800);
    expect(parseHttpResponse(ben({ interval: 0 })).interval).toBe(1);
    expect(parseHttpResponse(ben({ interval: -5 })).interval).toBe(1);
    expect(parseHttpResponse(ben({ interval: 10 ** 12 })).interval).toBe(86400);
    expect(parseHttpResponse(ben({ interval: Buffer.from('60') })).interval).toBe(1800);
    expect(parseHttpResponse(ben({ interval: 100, 'min interval': 500 })).minInterval).toBe(100);
    expect(parseHttpResponse(ben({ interval: 100, 'min interval': -1 })).minInterval).toBe(0);
  });

  it('tolerates a trailing newline, rejects non-dictionaries and garbage', () => {
    expect(parseHttpResponse(Buffer.from('d8:intervali60ee\r\n')).interval).toBe(60);
    for (const bad of ['', 'le', 'i5e', '<html>', 'd8:intervali60e', 'd8:intervali60eexyz']) {
      expect(() => parseHttpResponse(Buffer.from(bad)), bad).toThrow(TrackerError);
    }
  });

  it('keeps a tracker id as bytes; ignores an empty, oversized or non-string one', () => {
    const id = Buffer.from([0xde, 0xad, 0x00, 0x20, 0x41]);
    expect(parseHttpResponse(ben({ interval: 60, 'tracker id': id })).trackerId).toEqual(id);
    const longest = Buffer.alloc(MAX_TRACKER_ID_BYTES, 0x61);
    expect(parseHttpResponse(ben({ 'tracker id': longest })).trackerId).toEqual(longest);
    for (const bad of [Buffer.alloc(0), Buffer.alloc(MAX_TRACKER_ID_BYTES + 1, 0x61), 5, [id]]) {
      expect(parseHttpResponse(ben({ 'tracker id': bad })).trackerId).toBeUndefined();
    }
    expect(parseHttpResponse(ben({ interval: 60 })).trackerId).toBeUndefined();
  });

  it('ignores peers of the wrong type, saying so', () => {
    const r = parseHttpResponse(ben({ peers: 5, peers6: [1] }));
    expect(r.peers).toEqual([]);
    expect(r.malformed).toBe(
      "its reply's `peers` is neither a string of addresses nor a list, and `peers6` is not a " +
        'string of addresses (ignored)',
    );
    expect(parseHttpResponse(ben({ peers: { a: 1 } })).malformed).toBe(
      "its reply's `peers` is neither a string of addresses nor a list (ignored)",
    );
    expect(parseHttpResponse(ben({ peers: [] })).malformed).toBeUndefined();
    expect(parseHttpResponse(ben({ interval: 60 })).malformed).toBeUndefined();
  });
});

describe('IPv6 helpers', () => {
  it('formats per RFC 5952 and parses back', () => {
    const cases: [string, string][] = [
      ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
      ['2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['1:0:0:1:0:0:0:1', '1:0:0:1::1'],
      ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
      ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
      ['fe80::', 'fe80::'],
      ['::ffff:1.2.3.4', '1.2.3.4'],
      ['64:ff9b::1.2.3.4', '64:ff9b::102:304'],
    ];
    for (const [input, expected] of cases) {
      const bytes = ipv6ToBytes(input);
      expect(bytes, input).not.toBeNull();
      expect(formatIPv6(bytes!), input).toBe(expected);
    }
    expect(ipv6ToBytes('1::2::3')).toBeNull();
    expect(ipv6ToBytes('12345::')).toBeNull();
  });
});
