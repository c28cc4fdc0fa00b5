import { describe, expect, it } from 'vitest';
import { DhtError } from '../../src/errors.js';
import {
  compactAddress,
  decodeKrpc,
  decodeNodes,
  encodeError,
  encodeNodes,
  encodeQuery,
  encodeResponse,
  MAX_DATAGRAM_BYTES,
  MAX_NODES_PER_REPLY,
  MAX_VALUES_PER_REPLY,
} from '../../src/dht/krpc.js';
import type { KrpcQuery, KrpcResponse, NodeInfo } from '../../src/dht/krpc.js';
import {
  commonPrefixBits,
  compareDistance,
  distance,
  randomIdInBucket,
} from '../../src/dht/node-id.js';
import { encode } from '../../src/metainfo/bencode.js';

const id = (b: number): Buffer => Buffer.alloc(20, b);
const t = Buffer.from('aa');

function node(i: number, host = `10.0.0.${i}`, port = 6881): NodeInfo {
  return { id: id(i), host, port };
}

describe('KRPC codec', () => {
  it('BEP 5 example: ping query bytes', () => {
    // d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe (plus our "v" key)
    const buf = encodeQuery(t, 'ping', Buffer.from('abcdefghij0123456789'));
    expect(buf.toString('latin1')).toBe(
      'd1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:v4:TD011:y1:qe',
    );
    const m = decodeKrpc(
      Buffer.from('d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe', 'latin1'),
    ) as KrpcQuery;
    expect(m).toMatchObject({ y: 'q', q: 'ping', t });
    expect(m.id.toString()).toBe('abcdefghij0123456789');
  });

  it('round-trips every query', () => {
    const q = decodeKrpc(
      encodeQuery(t, 'announce_peer', id(1), {
        infoHash: id(2),
        port: 6881,
        token: Buffer.from('aoeusnth'),
        impliedPort: true,
      }),
    ) as KrpcQuery;
    expect(q.q).toBe('announce_peer');
    expect(q.args).toEqual({
      infoHash: id(2),
      port: 6881,
      token: Buffer.from('aoeusnth'),
      impliedPort: true,
    });
    const f = decodeKrpc(encodeQuery(t, 'find_node', id(1), { target: id(3) })) as KrpcQuery;
    expect(f.args.target).toEqual(id(3));
    const g = decodeKrpc(encodeQuery(t, 'get_peers', id(1), { infoHash: id(4) })) as KrpcQuery;
    expect(g.args.infoHash).toEqual(id(4));
  });

  it('round-trips responses with nodes, nodes6, values and token', () => {
    const nodes = [node(1), node(2)];
    const nodes6 = [{ id: id(3), host: '2001:db8::1', port: 6881 }];
    const values = [
      { host: '1.2.3.4', port: 80 },
      { host: '2001:db8::2', port: 443 },
    ];
    const r = decodeKrpc(
      encodeResponse(t, id(9), { nodes, nodes6, values, token: Buffer.from('tok') }),
    ) as KrpcResponse;
    expect(r).toEqual({ y: 'r', t, id: id(9), nodes, nodes6, values, token: Buffer.from('tok') });
  });

  it('decodes error replies', () => {
    expect(decodeKrpc(encodeError(t, 201, 'A Generic Error Ocurred'))).toEqual({
      y: 'e',
      t,
      code: 201,
      message: 'A Generic Error Ocurred',
    });
  });

  it('every truncation of a valid datagram is a DhtError', () => {
    const msgs = [
      encodeQuery(t, 'get_peers', id(1), { infoHash: id(2) }),
      encodeResponse(t, id(9), { nodes: [node(1), node(2)], token: Buffer.from('x') }),
      encodeError(t, 203, 'bad'),
    ];
    for (const m of msgs) {
      for (let i = 0; i < m.length; i++) {
        expect(() => decodeKrpc(m.subarray(0, i))).toThrow(DhtError);
      }
      expect(() => decodeKrpc(m)).not.toThrow();
    }
  });

  it('refuses malformed messages with a DhtError', () => {
    const bad: unknown[] = [
      'i1e',
      { t, y: 'q', q: 'ping' }, // no a
      { t, y: 'q', q: 'ping', a: { id: Buffer.alloc(19) } }, // short id
      { t: Buffer.alloc(17), y: 'q', q: 'ping', a: { id: id(1) } }, // long t
      { t, y: 'r', r: { id: id(1), nodes: 5 } },
      { t, y: 'r', r: { id: id(1), values: Buffer.alloc(6) } },
      { t, y: 'e', e: 'oops' },
      { t, y: 'x' },
      { t, y: 'q', q: 'find_node', a: { id: id(1), target: Buffer.alloc(5) } },
      { t, y: 'q', q: 'announce_peer', a: { id: id(1), port: 70000 } },
    ];
    for (const b of bad) expect(() => decodeKrpc(encode(b))).toThrow(DhtError);
    expect(() => decodeKrpc(Buffer.alloc(MAX_DATAGRAM_BYTES + 1, 0x64))).toThrow(DhtError);
    expect(() => decodeKrpc(Buffer.from('d1:t2:aa1:y1:q1:q4:ping1:ad2:id20:'))).toThrow(DhtError);
    // Nesting deeper than any KRPC message needs.
    expect(() => decodeKrpc(Buffer.from('d1:ald' + 'l'.repeat(10) + 'e'.repeat(12)))).toThrow(
      DhtError,
    );
  });

  it('nodes of odd length: whole entries are kept, the partial tail ignored', () => {
    const full = encodeNodes([node(1), node(2)], 4);
    const r = decodeKrpc(
      encode({ t, y: 'r', r: { id: id(9), nodes: Buffer.concat([full, Buffer.alloc(7, 1)]) } }),
    ) as KrpcResponse;
    expect(r.nodes).toEqual([node(1), node(2)]);
    expect(decodeNodes(Buffer.alloc(25), 4)).toEqual([]);
  });

  it('skips nodes and values with port 0 or the unspecified address, caps both', () => {
    const raw = Buffer.concat([
      id(1),
      Buffer.from([10, 0, 0, 1, 0, 0]), // port 0
      id(2),
      Buffer.from([0, 0, 0, 0, 0x1a, 0xe1]), // 0.0.0.0
      id(3),
      Buffer.from([10, 0, 0, 3, 0x1a, 0xe1]),
    ]);
    expect(decodeNodes(raw, 4)).toEqual([node(3)]);
    // Addresses no node has: queries sent there would go to a whole network.
    const unusable = ['0.1.2.3', '224.0.0.1', '239.255.255.250', '240.0.0.1', '255.255.255.255'];
    const listed = [...unusable.map((h, i) => node(10 + i, h)), node(4), node(5, '127.0.0.1')];
    expect(decodeNodes(encodeNodes(listed, 4), 4)).toEqual([node(4), node(5, '127.0.0.1')]);
    const v6 = [
      { id: id(6), host: 'ff02::1', port: 6881 },
      { id: id(7), host: '2001:db8::7', port: 6881 },
    ];
    expect(decodeNodes(encodeNodes(v6, 6), 6)).toEqual([v6[1]]);
    const many = Buffer.alloc(26 * 150, 7);
    expect(decodeNodes(many, 4)).toHaveLength(MAX_NODES_PER_REPLY);
    const values = Array.from({ length: 300 }, (_, i) =>
      Buffer.from([10, 1, i >> 8, i & 0xff, 0, i === 0 ? 0 : 1]),
    );
    values.push(Buffer.alloc(5));
    const r = decodeKrpc(encode({ t, y: 'r', r: { id: id(9), values } })) as KrpcResponse;
    expect(r.values).toHaveLength(MAX_VALUES_PER_REPLY);
    expect(r.values.every((p) => p.port === 1)).toBe(true);
  });

  it('compact addresses', () => {
    expect(compactAddress('1.2.3.4', 0x1ae1)?.toString('hex')).toBe('010203041ae1');
    expect(compactAddress('::1', 1)).toHaveLength(18);
    expect(compactAddress('example.com', 1)).toBeNull();
    expect(compactAddress('1.2.3.4', 0)).toBeNull();
  });
});

describe('node ids', () => {
  it('XOR distance and ordering', () => {
    expect(distance(id(0x0f), id(0xf0))).toEqual(id(0xff));
    const target = id(0);
    expect(compareDistance(target, id(1), id(2))).toBeLessThan(0);
    expect(compareDistance(target, id(3), id(3))).toBe(0);
  });

  it('common prefix and ids in a given bucket', () => {
    expect(commonPrefixBits(id(0), id(0))).toBe(160);
    expect(commonPrefixBits(id(0), id(0x80))).toBe(0);
    expect(commonPrefixBits(id(0), id(1))).toBe(7);
    const self = Buffer.from('0123456789abcdefghij');
    for (let b = 0; b < 160; b++) {
      expect(commonPrefixBits(self, randomIdInBucket(self, b))).toBe(b);
    }
  });
});
