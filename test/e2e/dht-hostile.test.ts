/**
 * Hostile input against a running Dht on 127.0.0.1: malformed and truncated datagrams, `nodes`
 * of odd length, thousands of bogus nodes, replies with our own id or address, port 0, unknown
 * transaction ids, tokens reused from another address, a flood of get_peers from one address.
 */
import { setMaxListeners } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { Dht, DhtPeerSource } from '../../src/dht/dht.js';
import { encodeNodes, encodeQuery, encodeResponse, NODE4_BYTES } from '../../src/dht/krpc.js';
import type { KrpcQuery, KrpcResponse, NodeInfo } from '../../src/dht/krpc.js';
import { encode } from '../../src/metainfo/bencode.js';
import { ScriptedNode } from '../helpers/dht-hostile.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function scripted(host?: string): Promise<ScriptedNode> {
  const n = await ScriptedNode.start(host);
  cleanups.push(() => n.close());
  return n;
}

async function ourDht(opts: ConstructorParameters<typeof Dht>[0] = {}): Promise<Dht> {
  const dht = new Dht({ port: 0, bind: '127.0.0.1', bootstrap: [], cacheFile: null, ...opts });
  cleanups.push(() => dht.stop());
  await dht.start();
  return dht;
}

const id = (b: number): Buffer => Buffer.alloc(20, b);
let tidN = 0;
const tid = (): Buffer => Buffer.from([0xf0, tidN++ & 0xff]);

function waitFor(pred: () => boolean, ms = 5000): Promise<void> {
  return expect.poll(pred, { timeout: ms, interval: 20 }).toBe(true);
}

describe('hostile datagrams against our DHT node', () => {
  it('drops malformed and truncated datagrams and keeps answering', async () => {
    const dht = await ourDht();
    const peer = await scripted();
    const ping = encodeQuery(Buffer.from('pp'), 'ping', id(1));
    const junk = [
      Buffer.alloc(0),
      Buffer.from('garbage'),
      Buffer.from('d1:t2:aa1:y1:q'),
      Buffer.from('i-0e'),
      Buffer.from('d' + 'l'.repeat(5000)),
      Buffer.alloc(5000, 0x64),
      encode({ t: Buffer.from('aa'), y: Buffer.from('q'), q: Buffer.from('ping'), a: { id: 5 } }),
      ...Array.from({ length: ping.length - 1 }, (_, i) => ping.subarray(0, i + 1)),
    ];
    for (const j of junk) peer.send(j, dht.port);
    peer.send(ping, dht.port);
    await waitFor(() => peer.replies().length === 1);
    expect(peer.replies()[0]!.msg).toMatchObject({ y: 'r', t: Buffer.from('pp') });
    expect(dht.stats().rpc.dropped).toBeGreaterThanOrEqual(junk.length - 1);
  });

  it('answers unknown methods with error 204, find_node without target with 203', async () => {
    const dht = await ourDht();
    const peer = await scripted();
    peer.send(
      encode({
        t: Buffer.from('u1'),
        y: Buffer.from('q'),
        q: Buffer.from('vote'),
        a: { id: id(1) },
      }),
      dht.port,
    );
    peer.send(encodeQuery(Buffer.from('u2'), 'find_node', id(1)), dht.port);
    await waitFor(() => peer.replies().length === 2);
    const codes = peer.replies().map((r) => (r.msg as { code: number }).code);
    expect(codes.sort()).toEqual([203, 204]);
  });

  it('rate-limits a flood of get_peers from one address', async () => {
    const dht = await ourDht({ rpc: { rateLimit: { burst: 10, ratePerSecond: 1 } } });
    const peer = await scripted();
    // Batches, so the kernel's socket buffer does not drop part of the flood before we see it.
    for (let i = 0; i < 200; i++) {
      peer.send(encodeQuery(tid(), 'get_peers', id(1), { infoHash: id(2) }), dht.port);
      if (i % 20 === 19) await new Promise((r) => setTimeout(r, 10));
    }
    await waitFor(() => {
      const s = dht.stats().rpc;
      return s.received >= 100 && s.rateLimited + peer.replies().length === s.received;
    });
    expect(peer.replies().length).toBeGreaterThanOrEqual(10);
    expect(peer.replies().length).toBeLessThan(30);
  });

  it('refuses a token reused from another address; accepts it from its own', async () => {
    const dht = await ourDht();
    const a = await scripted('127.0.0.1');
    const b = await scripted('127.0.0.2');
    const ih = id(0x33);
    a.send(encodeQuery(Buffer.from('g1'), 'get_peers', id(1), { infoHash: ih }), dht.port);
    await waitFor(() => a.replies().length === 1);
    const token = (a.replies()[0]!.msg as KrpcResponse).token!;
    expect(token).toBeDefined();
    b.send(
      encodeQuery(Buffer.from('b1'), 'announce_peer', id(2), { infoHash: ih, port: 7777, token }),
      dht.port,
    );
    await waitFor(() => b.replies().length === 1);
    expect(b.replies()[0]!.msg).toMatchObject({ y: 'e', code: 203 });
    a.send(
      encodeQuery(Buffer.from('a2'), 'announce_peer', id(1), {
        infoHash: ih,
        port: 0,
        token,
        impliedPort: true,
      }),
      dht.port,
    );
    await waitFor(() => a.replies().length === 2);
    expect(a.replies()[1]!.msg).toMatchObject({ y: 'r' });
    a.send(encodeQuery(Buffer.from('g3'), 'get_peers', id(1), { infoHash: ih }), dht.port);
    await waitFor(() => a.replies().length === 3);
    expect((a.replies()[2]!.msg as KrpcResponse).values).toEqual([
      { host: '127.0.0.1', port: a.port },
    ]);
  });

  it('survives lying nodes: bogus nodes, our own address, port 0, wrong transaction ids', async () => {
    const liar = await scripted();
    let n = 0;
    const ownAddress: NodeInfo[] = [];
    liar.handler = (m, from) => {
      if (m.y !== 'q') return;
      const q = m as KrpcQuery;
      // 150 bogus nodes (unbound loopback ports below 1024), plus ourselves and port 0.
      const bogus: NodeInfo[] = [];
      for (let i = 0; i < 150; i++) {
        n++;
        const nid = Buffer.alloc(20);
        nid.writeUInt32BE(n, 0);
        bogus.push({ id: nid, host: '127.0.0.1', port: 1 + (n % 1000) });
      }
      const nodes = Buffer.concat([
        encodeNodes([...ownAddress, ...bogus], 4),
        Buffer.concat([id(9), Buffer.from([127, 0, 0, 1, 0, 0])]), // port 0
        Buffer.alloc(NODE4_BYTES - 3, 1), // odd length tail
      ]).subarray(0, 4000);
      const r = encode({
        t: q.t,
        y: Buffer.from('r'),
        r: { id: id(0x42), nodes, token: Buffer.from('tk') },
      });
      const unknownTid = encodeResponse(Buffer.from('zz'), id(0x43), {});
      const ourId = encodeResponse(q.t, q.id, {}); // claims to be us: must be ignored
      return [unknownTid, ourId, r];
    };
    const dht = await ourDht({
      bootstrap: [{ host: '127.0.0.1', port: liar.port }],
      rpc: { queryTimeoutMs: 150 },
      lookupTimeoutMs: 3000,
    });
    ownAddress.push({ id: id(0x55), host: '127.0.0.1', port: dht.port });
    const source = new DhtPeerSource(dht, id(0x66), { announcePort: 5000 });
    cleanups.push(() => source.stop());
    source.start();
    await waitFor(() => source.lookupsDone === 1, 15_000);
    expect(source.failures).toEqual([]);
    // Only the liar itself ever answered, and as the bootstrap contact (a router) it is not kept
    // either: nothing got into the table.
    expect(dht.stats().tableSize).toBe(0);
    expect(dht.stats().rpc.dropped).toBeGreaterThan(0);
    expect(source.peersFound()).toBe(0);
    // Never queried ourselves.
    expect(dht.stats().rpc.received).toBeLessThan(1000);
  }, 30_000);

  it('a node stays good while our own full queue refuses queries meant for it', async () => {
    const node = await scripted();
    let answer = true;
    node.handler = (m) => {
      if (m.y !== 'q' || !answer) return;
      answer = false; // the first ping only, then silence: one query stays in flight
      return [encodeResponse(m.t, id(0x77), {})];
    };
    const dht = await ourDht({ rpc: { maxInFlight: 1, queryTimeoutMs: 60_000 } });
    dht.addContacts([{ host: '127.0.0.1', port: node.port }]);
    await waitFor(() => dht.nodeCount() === 1);
    const ctrl = new AbortController();
    // 600 lookups share this one signal, each listening to it while it runs (not a leak: each
    // lookup's listener goes when it ends).
    setMaxListeners(1000, ctrl.signal);
    // One lookup's query in flight, 512 queued, the rest refused by our own socket at once.
    const lookups = Array.from({ length: 600 }, (_, i) =>
      dht.getPeers(Buffer.alloc(20, i & 0xff), { signal: ctrl.signal }).catch(() => undefined),
    );
    await waitFor(() => node.received.length >= 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(dht.nodeCount()).toBe(1);
    ctrl.abort();
    await Promise.all(lookups);
  }, 30_000);
});
