import { describe, expect, it } from 'vitest';
import { TrackerError } from '../../src/errors.js';
import { MAX_PEERS_PER_REPLY } from '../../src/tracker/compact.js';
import {
  decodeUdpReply,
  encodeAnnounceRequest,
  encodeConnectRequest,
  MAX_UDP_URL_DATA_BYTES,
  urlDataOf,
  urlDataProblem,
} from '../../src/tracker/udp-codec.js';
import { udpRetryBudgetMs } from '../../src/tracker/udp.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('UDP tracker requests', () => {
  it('connect request is protocol id, action 0, transaction id', () => {
    expect(encodeConnectRequest(0x01020304).toString('hex')).toBe(
      '0000041727101980' + '00000000' + '01020304',
    );
  });

  it('announce request byte layout', () => {
    const req = encodeAnnounceRequest(hex('1122334455667788'), 0xaabbccdd, {
      infoHash: Buffer.alloc(20, 0xab),
      peerId: Buffer.alloc(20, 0x2d),
      downloaded: 0x0102030405,
      left: 2 ** 40,
      uploaded: 7,
      event: 'started',
      key: 0xfeedface,
      numWant: 50,
      port: 6881,
    });
    expect(req).toHaveLength(98);
    expect(req.toString('hex')).toBe(
      '1122334455667788' +
        '00000001' +
        'aabbccdd' +
        'ab'.repeat(20) +
        '2d'.repeat(20) +
        '0000000102030405' +
        '0000010000000000' +
        '0000000000000007' +
        '00000002' +
        '00000000' +
        'feedface' +
        '00000032' +
        '1ae1',
    );
  });

  it('event codes, default numwant -1, clamped numbers', () => {
    const base = {
      infoHash: Buffer.alloc(20),
      peerId: Buffer.alloc(20),
      downloaded: -1,
      left: NaN,
      uploaded: 0,
      port: 1,
    };
    const at = (b: Buffer, o: number): number => b.readUInt32BE(o);
    const cid = Buffer.alloc(8);
    expect(at(encodeAnnounceRequest(cid, 1, base), 80)).toBe(0);
    expect(at(encodeAnnounceRequest(cid, 1, { ...base, event: 'completed' }), 80)).toBe(1);
    expect(at(encodeAnnounceRequest(cid, 1, { ...base, event: 'stopped' }), 80)).toBe(3);
    const b = encodeAnnounceRequest(cid, 1, base);
    expect(b.readInt32BE(92)).toBe(-1);
    expect(b.readBigUInt64BE(56)).toBe(0n);
    expect(b.readBigUInt64BE(64)).toBe(0n);
    expect(() => encodeAnnounceRequest(Buffer.alloc(7), 1, base)).toThrow(TrackerError);
    expect(() => encodeAnnounceRequest(cid, 1, { ...base, infoHash: Buffer.alloc(19) })).toThrow(
      TrackerError,
    );
  });

  it("carries the URL's path and query after the 98 bytes, in options of at most 255 (BEP 41)", () => {
    const base = {
      infoHash: Buffer.alloc(20, 1),
      peerId: Buffer.alloc(20, 2),
      downloaded: 0,
      left: 0,
      uploaded: 0,
      port: 1,
    };
    const cid = Buffer.alloc(8);
    const plain = encodeAnnounceRequest(cid, 1, base);
    /** The options after the fixed part, as [type, data] pairs. */
    const options = (b: Buffer): [number, string][] => {
      const out: [number, string][] = [];
      for (let at = 98; at < b.length;) {
        const len = b[at + 1]!;
        out.push([b[at]!, b.subarray(at + 2, at + 2 + len).toString()]);
        at += 2 + len;
      }
      return out;
    };
    expect(encodeAnnounceRequest(cid, 1, base, Buffer.alloc(0))).toEqual(plain);
    const short = encodeAnnounceRequest(cid, 1, base, Buffer.from('/announce?passkey=abc'));
    expect(short.subarray(0, 98)).toEqual(plain);
    expect(options(short)).toEqual([[2, '/announce?passkey=abc']]);
    for (const n of [254, 255, 256, 510, 511, MAX_UDP_URL_DATA_BYTES]) {
      const data = 'x'.repeat(n);
      const b = encodeAnnounceRequest(cid, 1, base, Buffer.from(data));
      const opts = options(b);
      expect(opts.map(([type]) => type).every((t) => t === 2)).toBe(true);
      expect(opts.map(([, d]) => d.length)).toEqual(
        Array.from({ length: Math.ceil(n / 255) }, (_, i) => Math.min(255, n - 255 * i)),
      );
      expect(opts.map(([, d]) => d).join('')).toBe(data);
      expect(b).toHaveLength(98 + 2 * Math.ceil(n / 255) + n);
    }
    expect(() =>
      encodeAnnounceRequest(cid, 1, base, Buffer.alloc(MAX_UDP_URL_DATA_BYTES + 1, 0x61)),
    ).toThrow(TrackerError);
  });

  it('takes the URL data from the path and query as written, none without them', () => {
    const data = (u: string): string => urlDataOf(new URL(u)).toString();
    expect(data('udp://t.example:6969')).toBe('');
    expect(data('udp://t.example:6969/')).toBe('/');
    expect(data('udp://t.example:6969/announce')).toBe('/announce');
    expect(data('udp://t.example:6969/a/b?passkey=%41b&x=1')).toBe('/a/b?passkey=%41b&x=1');
    expect(data('udp://t.example:6969/announce#frag')).toBe('/announce');
    const at = (n: number): string => `udp://t.example:6969/${'p'.repeat(n - 1)}`;
    expect(urlDataProblem(new URL(at(MAX_UDP_URL_DATA_BYTES)))).toBeUndefined();
    expect(urlDataProblem(new URL(at(MAX_UDP_URL_DATA_BYTES + 1)))).toBe(
      `its path and query are too long for a UDP announce: ${MAX_UDP_URL_DATA_BYTES + 1} bytes, at most ${MAX_UDP_URL_DATA_BYTES}`,
    );
  });
});

describe('UDP tracker replies', () => {
  const connectReply = hex('00000000 01020304 1122334455667788');
  const announceReply = hex(
    '00000001 01020304 00000708 00000003 00000005' + // interval 1800, leechers 3, seeders 5
      '7f000001 1ae1' + // 127.0.0.1:6881
      '0a000002 c8d5', // 10.0.0.2:51413
  );

  it('decodes connect replies', () => {
    expect(decodeUdpReply(connectReply)).toEqual({
      action: 'connect',
      transactionId: 0x01020304,
      connectionId: hex('1122334455667788'),
    });
  });

  it('decodes announce replies with IPv4 peers', () => {
    expect(decodeUdpReply(announceReply)).toEqual({
      action: 'announce',
      transactionId: 0x01020304,
      interval: 1800,
      leechers: 3,
      seeders: 5,
      peers: [
        { host: '127.0.0.1', port: 6881 },
        { host: '10.0.0.2', port: 51413 },
      ],
    });
  });

  it('decodes IPv6 peer entries when the socket is IPv6', () => {
    const r = decodeUdpReply(
      hex(
        '00000001 00000009 0000003c 00000000 00000001' +
          '20010db8000000000000000000000001 1ae1' +
          '00000000000000000000000000000001 0050',
      ),
      6,
    );
    expect(r).toMatchObject({
      action: 'announce',
      interval: 60,
      peers: [
        { host: '2001:db8::1', port: 6881 },
        { host: '::1', port: 80 },
      ],
    });
  });

  it('decodes error replies', () => {
    const r = decodeUdpReply(Buffer.concat([hex('00000003 00000007'), Buffer.from('bad hash')]));
    expect(r).toEqual({ action: 'error', transactionId: 7, message: 'bad hash' });
    expect(decodeUdpReply(hex('00000003 00000007'))).toEqual({
      action: 'error',
      transactionId: 7,
      message: '',
    });
  });

  it('returns null for every truncation of a connect reply and of an announce header', () => {
    for (let n = 0; n < 16; n++)
      expect(decodeUdpReply(connectReply.subarray(0, n)), `${n}`).toBe(null);
    for (let n = 0; n < 20; n++) {
      expect(decodeUdpReply(announceReply.subarray(0, n)), `${n}`).toBe(null);
    }
  });

  it('reads a list longer than it takes from `peersFrom` on, wrapping around', () => {
    const n = 600;
    const reply = Buffer.alloc(20 + 6 * n);
    reply.writeUInt32BE(1, 0);
    reply.writeUInt32BE(7, 4);
    reply.writeUInt32BE(1800, 8);
    for (let i = 0; i < n; i++) {
      reply.set([10, 0, i >> 8, i & 255], 20 + 6 * i);
      reply.writeUInt16BE(6881, 24 + 6 * i);
    }
    const hosts = (from: number) => {
      const r = decodeUdpReply(reply, 4, from);
      return r && r.action === 'announce' ? r.peers.map((p) => p.host) : [];
    };
    expect(hosts(0)).toHaveLength(500);
    expect(hosts(0)[0]).toBe('10.0.0.0');
    expect(hosts(500)[0]).toBe('10.0.1.244');
    expect(hosts(500)[100]).toBe('10.0.0.0');
  });

  it('keeps only whole peer entries when an announce reply is cut or split', () => {
    // Cut inside the second entry: the first is kept.
    for (let n = 26; n < 32; n++) {
      const r = decodeUdpReply(announceReply.subarray(0, n));
      expect(r && r.action === 'announce' && r.peers).toEqual([{ host: '127.0.0.1', port: 6881 }]);
    }
    // Cut inside the first entry: none.
    const r = decodeUdpReply(announceReply.subarray(0, 23));
    expect(r && r.action === 'announce' && r.peers).toEqual([]);
    // The tail of a split datagram is not a reply on its own: unknown action -> TrackerError.
    expect(() => decodeUdpReply(announceReply.subarray(20))).toThrow(TrackerError);
    expect(decodeUdpReply(announceReply.subarray(26))).toBe(null);
  });

  it('drops port 0, clamps interval, caps the peer count', () => {
    const r = decodeUdpReply(
      hex('00000001 00000001 00000000 00000000 00000000' + '01020304 0000' + '01020304 0001'),
    );
    expect(r).toMatchObject({ interval: 1, peers: [{ host: '1.2.3.4', port: 1 }] });
    const many = Buffer.alloc(20 + 6 * 2000);
    many.writeUInt32BE(1, 0);
    many.writeUInt32BE(0xffffffff, 8);
    for (let i = 0; i < 2000; i++) {
      many.writeUInt32BE(0x0a000000 + i, 20 + 6 * i);
      many.writeUInt16BE(1000, 24 + 6 * i);
    }
    const big = decodeUdpReply(many);
    expect(big && big.action === 'announce' && big.peers.length).toBe(MAX_PEERS_PER_REPLY);
    expect(big && big.action === 'announce' && big.interval).toBe(86400);
  });

  it('throws TrackerError on unknown actions', () => {
    expect(() => decodeUdpReply(hex('00000009 00000000'))).toThrow(TrackerError);
  });
});

describe('retry schedule', () => {
  it('doubles up to the cap', () => {
    expect(udpRetryBudgetMs()).toBe(2000 + 4000 + 8000 + 8000);
    expect(udpRetryBudgetMs({ firstWaitMs: 100, maxWaitMs: 250, maxTries: 4 })).toBe(
      100 + 200 + 250 + 250,
    );
  });
});
