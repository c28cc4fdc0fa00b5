/** The KRPC socket: transactions, timeouts, in-flight cap, replies from the wrong address. */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeQuery, encodeResponse } from '../../src/dht/krpc.js';
import { KrpcSocket, MAX_QUEUED } from '../../src/dht/rpc.js';
import { Dht, DhtPeerSource } from '../../src/dht/dht.js';
import { DhtError, DhtTimeoutError } from '../../src/errors.js';
import { ScriptedNode } from '../helpers/dht-hostile.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function socket(opts: ConstructorParameters<typeof KrpcSocket>[0]): Promise<KrpcSocket> {
  const s = new KrpcSocket(opts);
  await s.bind(0, '127.0.0.1');
  cleanups.push(() => s.close());
  return s;
}

async function node(): Promise<ScriptedNode> {
  const n = await ScriptedNode.start();
  cleanups.push(() => n.close());
  return n;
}

const me = Buffer.alloc(20, 1);

describe('KRPC socket', () => {
  it('matches the reply by transaction id and address; a silent node times out', async () => {
    const s = await socket({ queryTimeoutMs: 100 });
    const good = await node();
    const impostor = await node();
    good.handler = (m) => {
      if (m.y !== 'q') return;
      // First a forged reply from another port, with the right transaction id.
      impostor.send(encodeResponse(m.t, Buffer.alloc(20, 0x66)), s.port);
      return [
        encodeResponse(Buffer.from('no'), Buffer.alloc(20, 0x77)),
        encodeResponse(m.t, Buffer.alloc(20, 0x42)),
      ];
    };
    const r = await s.query({ host: '127.0.0.1', port: good.port }, 'ping', me);
    expect(r.id).toEqual(Buffer.alloc(20, 0x42));
    await expect.poll(() => s.stats.dropped).toBe(2);
    const silent = await node();
    await expect(s.query({ host: '127.0.0.1', port: silent.port }, 'ping', me)).rejects.toThrow(
      DhtTimeoutError,
    );
    expect(s.inFlightCount()).toBe(0);
  });

  it('caps queries in flight, bounds the queue, and rejects everything on close', async () => {
    const s = new KrpcSocket({ queryTimeoutMs: 60_000, maxInFlight: 4 });
    await s.bind(0, '127.0.0.1');
    const silent = await node();
    const to = { host: '127.0.0.1', port: silent.port };
    const all = Array.from({ length: 4 + MAX_QUEUED + 10 }, () =>
      s.query(to, 'ping', me).then(
        () => 'ok',
        (e: unknown) => e,
      ),
    );
    expect(s.inFlightCount()).toBe(4);
    await expect.poll(() => silent.received.length).toBe(4);
    await s.close();
    const results = await Promise.all(all);
    expect(results.every((e) => e instanceof DhtError)).toBe(true);
    const refused = results.filter((e) => (e as Error).message.includes('queued'));
    expect(refused).toHaveLength(10);
    expect(silent.received).toHaveLength(4);
  });

  it('an error reply rejects the query with a DhtError', async () => {
    const s = await socket({});
    const n = await node();
    n.handler = (m) => {
      if (m.y !== 'q') return;
      return [
        Buffer.from(
          `d1:eli201e5:Oops!e1:t${m.t.length}:${m.t.toString('latin1')}1:y1:ee`,
          'latin1',
        ),
      ];
    };
    await expect(s.query({ host: '127.0.0.1', port: n.port }, 'ping', me)).rejects.toThrow(
      /201: Oops!/,
    );
  });

  it('our own Dht never answers itself: a query carrying its own id is ignored', async () => {
    const dht = new Dht({ port: 0, bind: '127.0.0.1', bootstrap: [], cacheFile: null });
    cleanups.push(() => dht.stop());
    await dht.start();
    const s = await socket({ queryTimeoutMs: 200 });
    await expect(
      s.query({ host: '127.0.0.1', port: dht.port }, 'ping', dht.nodeId),
    ).rejects.toThrow(DhtTimeoutError);
    const r = await s.query({ host: '127.0.0.1', port: dht.port }, 'ping', me);
    expect(r.id).toEqual(dht.nodeId);
  });

  it('a node that queries ours is pinged, joins the table when it answers, and is given out', async () => {
    const dht = new Dht({ port: 0, bind: '127.0.0.1', bootstrap: [], cacheFile: null });
    cleanups.push(() => dht.stop());
    await dht.start();
    const other = Buffer.alloc(20, 0x42);
    const a = await node();
    // Answers pings as a node would; asks ours nothing else.
    a.handler = (m) => (m.y === 'q' && m.q === 'ping' ? [encodeResponse(m.t, other)] : []);
    const s = await socket({ queryTimeoutMs: 2000 });
    // `a` asks for nodes (from its own port, as a node does): ours knows no one yet.
    a.send(encodeQuery(Buffer.from('f1'), 'find_node', other, { target: other }), dht.port);
    await expect.poll(() => dht.nodeCount(), { timeout: 5000, interval: 20 }).toBe(1);
    // Another node asking now learns of `a`.
    const r = await s.query({ host: '127.0.0.1', port: dht.port }, 'find_node', me, {
      target: other,
    });
    expect(r.nodes?.map((n) => [n.host, n.port])).toEqual([['127.0.0.1', a.port]]);
    // One ping for a node asking again and again.
    for (let i = 0; i < 5; i++) {
      a.send(encodeQuery(Buffer.from([0x66, i]), 'ping', other), dht.port);
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(a.received.filter((x) => x.msg?.y === 'q').length).toBe(1);
  });

  it('a Dht stopped while it starts binds no socket and leaves no cache lock', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tdl-dht-stop-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const cacheFile = join(dir, 'tdl', 'dht.dat');
    const dht = new Dht({ port: 0, bind: '127.0.0.1', bootstrap: [], cacheFile });
    cleanups.push(() => dht.stop());
    const starting = dht.start();
    await dht.stop();
    await starting.catch(() => {});
    expect(dht.port).toBe(0);
    expect(existsSync(`${cacheFile}.lock`)).toBe(false);
    // Started after its stop: nothing at all.
    const late = new Dht({ port: 0, bind: '127.0.0.1', bootstrap: [], cacheFile });
    await late.stop();
    await late.start();
    expect(late.port).toBe(0);
    expect(existsSync(`${cacheFile}.lock`)).toBe(false);
    // The lock is free: another node takes the cache's id.
    const next = new Dht({ port: 0, bind: '127.0.0.1', bootstrap: [], cacheFile });
    cleanups.push(() => next.stop());
    await next.start();
    expect(existsSync(`${cacheFile}.lock`)).toBe(true);
    await next.stop();
    expect(existsSync(`${cacheFile}.lock`)).toBe(false);
  });

  it('stopping a peer source, then the Dht, does not wait for lookups or query timeouts', async () => {
    const silent = await node();
    const dht = new Dht({
      port: 0,
      bind: '127.0.0.1',
      bootstrap: [{ host: '127.0.0.1', port: silent.port }],
      cacheFile: null,
      rpc: { queryTimeoutMs: 60_000 },
      lookupTimeoutMs: 60_000,
    });
    await dht.start();
    const source = new DhtPeerSource(dht, Buffer.alloc(20, 3), { announcePort: 1 });
    source.start();
    await expect.poll(() => silent.received.length).toBeGreaterThanOrEqual(2);
    // Both would hang for a minute if they waited for the silent node.
    await source.stop();
    expect(source.lookupsDone).toBe(1);
    expect(source.failures).toEqual([]);
    await dht.stop();
  }, 20_000);

  it('a bootstrap node that answers with no node to give is news for a lookup that found none', async () => {
    // Each node only another's --dht-bootstrap: the answer adds nothing to the table, but a
    // peer source whose lookup went unanswered must look up again through it now.
    const n = await node();
    n.handler = (m) => {
      if (m.y === 'q' && m.q === 'find_node') {
        return [encodeResponse(m.t, Buffer.alloc(20, 0x42), { nodes: [] })];
      }
      return undefined;
    };
    const dht = new Dht({
      port: 0,
      bind: '127.0.0.1',
      bootstrap: [{ host: '127.0.0.1', port: n.port }],
      cacheFile: null,
    });
    cleanups.push(() => dht.stop());
    let joined = 0;
    dht.on('joined', () => joined++);
    await dht.start();
    await expect.poll(() => joined, { timeout: 10_000 }).toBeGreaterThan(0);
    expect(dht.nodeCount()).toBe(0);
  }, 20_000);

  it('stopping a peer source while it announces does not wait for announce_peer replies', async () => {
    // A node that knows no other, hands out a token and never answers announce_peer.
    const n = await node();
    n.handler = (m) => {
      if (m.y !== 'q') return;
      if (m.q === 'find_node') return [encodeResponse(m.t, Buffer.alloc(20, 0x42), { nodes: [] })];
      if (m.q !== 'get_peers') return;
      return [
        encodeResponse(m.t, Buffer.alloc(20, 0x42), { token: Buffer.from('tok'), nodes: [] }),
      ];
    };
    const dht = new Dht({
      port: 0,
      bind: '127.0.0.1',
      bootstrap: [{ host: '127.0.0.1', port: n.port }],
      cacheFile: null,
      rpc: { queryTimeoutMs: 60_000 },
    });
    cleanups.push(() => dht.stop());
    await dht.start();
    const source = new DhtPeerSource(dht, Buffer.alloc(20, 3), { announcePort: 6881 });
    source.start();
    await expect
      .poll(() => n.received.some((r) => r.msg?.y === 'q' && r.msg.q === 'announce_peer'), {
        timeout: 10_000,
      })
      .toBe(true);
    // It would hang for the query timeout (a minute) if it waited for the reply.
    await source.stop();
    expect(source.lookupsDone).toBe(1);
  }, 20_000);
});
