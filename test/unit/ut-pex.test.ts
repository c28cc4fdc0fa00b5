import { describe, expect, it } from 'vitest';
import { WireError } from '../../src/errors.js';
import { encode } from '../../src/metainfo/bencode.js';
import type { PeerAddress } from '../../src/tracker/types.js';
import {
  MAX_PEX_PEERS,
  PEX_ACCEPT_INTERVAL_MS,
  PEX_INTERVAL_MS,
  PexFlag,
  PexPeer,
  addedPeers,
  decodePex,
  encodePex,
} from '../../src/wire/ut-pex.js';

function v4(i: number, port = 6881): PeerAddress {
  return { host: `10.0.${i >> 8}.${i & 255}`, port };
}

function compact4(peers: PeerAddress[]): Buffer {
  return Buffer.concat(
    peers.map((p) => {
      const b = Buffer.alloc(6);
      p.host.split('.').forEach((o, i) => (b[i] = Number(o)));
      b.writeUInt16BE(p.port, 4);
      return b;
    }),
  );
}

describe('ut_pex codec', () => {
  it('round-trips IPv4 and IPv6 peers with flags', () => {
    const m = {
      added: [v4(1), v4(2, 51413), { host: '2001:db8::1', port: 6881 }],
      addedFlags: [PexFlag.reachable, PexFlag.seed | PexFlag.utp, 0],
      dropped: [v4(3), { host: '::1', port: 1 }],
    };
    expect(decodePex(encodePex(m))).toEqual(m);
  });

  it('addedPeers: each added peer with its encryption, seed and reachable bits', () => {
    const m = {
      added: [v4(1), v4(2), { host: '2001:db8::1', port: 6881 }],
      addedFlags: [PexFlag.encryption | PexFlag.seed, PexFlag.seed | PexFlag.reachable],
      dropped: [],
    };
    expect(addedPeers(m)).toEqual([
      { ...v4(1), prefersEncryption: true, seed: true, reachable: false },
      { ...v4(2), prefersEncryption: false, seed: true, reachable: true },
      { host: '2001:db8::1', port: 6881, prefersEncryption: false, seed: false, reachable: false },
    ]);
  });

  it('encodes every list, empty ones too, with added.f aligned with added', () => {
    const b = encodePex({
      added: [{ host: '1.2.3.4', port: 258 }],
      addedFlags: [0x10],
      dropped: [],
    });
    expect(b.toString('latin1')).toBe(
      'd5:added6:\x01\x02\x03\x04\x01\x027:added.f1:\x106:added60:8:added6.f0:7:dropped0:8:dropped60:e',
    );
  });

  it('reads a libtorrent-style message and fills missing flags with 0', () => {
    const p = encode({ added: compact4([v4(1), v4(2)]), 'added.f': Buffer.from([0x12]) });
    expect(decodePex(p)).toEqual({
      added: [v4(1), v4(2)],
      addedFlags: [0x12, 0],
      dropped: [],
    });
  });

  it('drops port 0, unspecified addresses, duplicates and our own address', () => {
    const me = { host: '192.0.2.7', port: 6881 };
    const me6 = { host: '2001:DB8:0:0::7', port: 6881 };
    const p = encode({
      added: compact4([v4(1, 0), { host: '0.0.0.0', port: 1 }, v4(2), v4(2), me, v4(3)]),
      'added.f': Buffer.from([1, 2, 3, 4, 5, 6]),
      added6: Buffer.concat([
        Buffer.from('20010db8000000000000000000000007', 'hex'),
        Buffer.from([0x1a, 0xe1]),
      ]),
    });
    expect(decodePex(p, { own: [me, me6] })).toEqual({
      added: [v4(2), v4(3)],
      addedFlags: [3, 6],
      dropped: [],
    });
  });

  it(`takes at most ${MAX_PEX_PEERS} peers per list`, () => {
    const many = Array.from({ length: 200 }, (_, i) => v4(i + 1));
    const p = encode({ added: compact4(many), dropped: compact4(many) });
    const m = decodePex(p);
    expect(m.added).toEqual(many.slice(0, MAX_PEX_PEERS));
    expect(m.addedFlags).toHaveLength(MAX_PEX_PEERS);
    expect(m.dropped).toHaveLength(MAX_PEX_PEERS);
    // and encodes at most that many
    const enc = decodePex(encodePex({ added: many, addedFlags: [], dropped: many }));
    expect(enc.added).toHaveLength(MAX_PEX_PEERS);
    expect(enc.dropped).toHaveLength(MAX_PEX_PEERS);
  });

  it('skips hosts that are not IP literals when encoding', () => {
    const m = decodePex(
      encodePex({
        added: [{ host: 'example.com', port: 1 }, v4(1), { host: '1.2.3.4', port: 0 }],
        addedFlags: [1, 2, 3],
        dropped: [],
      }),
    );
    expect(m).toEqual({ added: [v4(1)], addedFlags: [2], dropped: [] });
  });

  it.each([
    ['not bencode', Buffer.from('xx')],
    ['a list', Buffer.from('le')],
    ['odd added', encode({ added: Buffer.alloc(7) })],
    ['odd added6', encode({ added6: Buffer.alloc(17) })],
    ['odd dropped', encode({ dropped: Buffer.alloc(5) })],
    ['odd dropped6', encode({ dropped6: Buffer.alloc(19) })],
    ['added as a list', encode({ added: [1] })],
    ['added.f as an integer', encode({ 'added.f': 1 })],
  ])('%s is a WireError', (_name, payload) => {
    expect(() => decodePex(payload)).toThrow(WireError);
  });

  it('every truncation of a valid message is a WireError', () => {
    const full = encodePex({ added: [v4(1)], addedFlags: [1], dropped: [v4(2)] });
    for (let i = 0; i < full.length; i++) {
      expect(() => decodePex(full.subarray(0, i))).toThrow(WireError);
    }
  });
});

describe('PexPeer', () => {
  const remote = v4(100);

  it('sends deltas at most once a minute, never the peer itself', () => {
    const pex = new PexPeer(remote);
    const first = pex.next(0, [v4(1), v4(2), remote]);
    expect(first).toEqual({ added: [v4(1), v4(2)], addedFlags: [0, 0], dropped: [] });
    expect(pex.next(PEX_INTERVAL_MS - 1, [v4(2), v4(3)])).toBeNull();
    expect(
      pex.next(PEX_INTERVAL_MS, [
        { ...v4(2), flags: 1 },
        { ...v4(3), flags: PexFlag.reachable },
      ]),
    ).toEqual({
      added: [v4(3)],
      addedFlags: [PexFlag.reachable],
      dropped: [v4(1)],
    });
    // nothing changed: nothing to send, and the next change may go at once
    expect(pex.next(3 * PEX_INTERVAL_MS, [v4(2), v4(3)])).toBeNull();
    expect(pex.next(3 * PEX_INTERVAL_MS + 1, [v4(2)])).toEqual({
      added: [],
      addedFlags: [],
      dropped: [v4(3)],
    });
  });

  it('sends its first message one interval after the peer connected, when told when', () => {
    const pex = new PexPeer(remote, { connectedAt: 5_000 });
    expect(pex.next(5_000, [v4(1)])).toBeNull();
    expect(pex.next(5_000 + PEX_INTERVAL_MS - 1, [v4(1)])).toBeNull();
    expect(pex.next(5_000 + PEX_INTERVAL_MS, [v4(1)])).toEqual({
      added: [v4(1)],
      addedFlags: [0],
      dropped: [],
    });
  });

  it(`sends at most ${MAX_PEX_PEERS} per list; the rest goes in the next message`, () => {
    const pex = new PexPeer(remote);
    const many = Array.from({ length: 70 }, (_, i) => v4(i + 1));
    expect(pex.next(0, many)!.added).toEqual(many.slice(0, 50));
    expect(pex.next(PEX_INTERVAL_MS, many)!.added).toEqual(many.slice(50));
    expect(pex.next(2 * PEX_INTERVAL_MS, many)).toBeNull();
  });

  it('ignores messages that come too soon, and malformed ones are a WireError', () => {
    const pex = new PexPeer(remote);
    const msg = encodePex({ added: [v4(1)], addedFlags: [0], dropped: [] });
    expect(pex.receive(1000, msg)!.added).toEqual([v4(1)]);
    expect(pex.receive(1000 + PEX_ACCEPT_INTERVAL_MS - 1, msg)).toBeNull();
    expect(pex.receive(1000 + PEX_ACCEPT_INTERVAL_MS, msg)!.added).toEqual([v4(1)]);
    expect(() => pex.receive(10 * PEX_INTERVAL_MS, Buffer.from('d5:added1:xe'))).toThrow(WireError);
  });

  it('filters our own address from what it receives', () => {
    const pex = new PexPeer(remote);
    const msg = encodePex({ added: [v4(1), v4(9)], addedFlags: [], dropped: [] });
    expect(pex.receive(0, msg, [v4(9)])!.added).toEqual([v4(1)]);
  });
});
