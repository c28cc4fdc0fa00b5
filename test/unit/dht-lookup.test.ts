import { describe, expect, it } from 'vitest';
import type { KrpcResponse, NodeInfo } from '../../src/dht/krpc.js';
import { lookup, MAX_CANDIDATES } from '../../src/dht/lookup.js';
import type { Seed } from '../../src/dht/lookup.js';
import { compareDistance } from '../../src/dht/node-id.js';
import type { PeerAddress } from '../../src/tracker/types.js';

/** An in-memory network of `n` nodes with deterministic ids; each knows every other node. */
function network(n: number, seed = 3) {
  let x = seed;
  const rnd = () => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x >>> 24;
  };
  const nodes: NodeInfo[] = Array.from({ length: n }, (_, i) => ({
    id: Buffer.from(Array.from({ length: 20 }, rnd)),
    host: '10.0.0.1',
    port: 1000 + i,
  }));
  return nodes;
}

function reply(id: Buffer, nodes: NodeInfo[], values: PeerAddress[] = [], token?: Buffer) {
  const r: KrpcResponse = { y: 'r', t: Buffer.from('xx'), id, nodes, nodes6: [], values };
  if (token) r.token = token;
  return r;
}

describe('iterative lookup', () => {
  it('converges on the K closest nodes with α = 3 in flight', async () => {
    const nodes = network(200);
    const target = Buffer.alloc(20, 0x5a);
    const sorted = [...nodes].sort((a, b) => compareDistance(target, a.id, b.id));
    let inFlight = 0;
    let maxInFlight = 0;
    const byPort = new Map(nodes.map((n) => [n.port, n]));
    const named = new Map(nodes.slice(0, 3).map((n) => [n.port, n]));
    const r = await lookup({
      target,
      seeds: nodes.slice(0, 3),
      query: async (s: Seed) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((res) => setImmediate(res));
        inFlight--;
        const me = byPort.get(s.port)!;
        // Each node knows the 8 nodes closest to the target among 40 random ones.
        const known = nodes
          .filter((_, i) => (i * 7 + s.port) % 5 === 0)
          .sort((a, b) => compareDistance(target, a.id, b.id))
          .slice(0, 8);
        for (const k of known) named.set(k.port, k);
        return reply(me.id, known, [], Buffer.from(`tok${s.port}`));
      },
    });
    expect(maxInFlight).toBeLessThanOrEqual(3);
    expect(r.end).toBe('converged');
    expect(r.closest.length).toBe(8);
    // Every returned node answered and carries its token; the first is the closest reachable.
    for (const c of r.closest) expect(c.token?.toString()).toBe(`tok${c.node.port}`);
    // The K closest of all the nodes it ever heard of are exactly what it returns.
    const best = sorted.filter((n) => named.has(n.port)).slice(0, 8);
    expect(r.closest.map((c) => c.node.port)).toEqual(best.map((n) => n.port));
  });

  it('reports peers once each and ends when nobody is left to ask', async () => {
    const nodes = network(4);
    const seen: PeerAddress[] = [];
    const r = await lookup({
      target: Buffer.alloc(20),
      seeds: nodes,
      query: async (s) =>
        reply(
          nodes.find((n) => n.port === s.port)!.id,
          [],
          [
            { host: '1.1.1.1', port: 1 },
            { host: '2.2.2.2', port: s.port },
          ],
        ),
      onPeers: (p) => seen.push(...p),
    });
    expect(r.end).toBe('converged');
    expect(r.peers).toBe(5);
    expect(seen).toHaveLength(5);
  });

  it('failed nodes are skipped; all failing ends the lookup as exhausted', async () => {
    const failed: number[] = [];
    const r = await lookup({
      target: Buffer.alloc(20),
      seeds: network(5),
      query: async () => {
        throw new Error('timeout');
      },
      onFailure: (s) => failed.push(s.port),
    });
    expect(r.end).toBe('exhausted');
    expect(r.responded).toBe(0);
    expect(failed).toHaveLength(5);
  });

  it('thousands of bogus nodes: candidates capped, queries capped, never our own id', async () => {
    const self = Buffer.alloc(20, 0xee);
    let q = 0;
    let n = 0;
    const asked: Seed[] = [];
    const r = await lookup({
      target: Buffer.alloc(20),
      seeds: [{ id: null, host: '10.0.0.1', port: 1 }],
      maxQueries: 50,
      skip: (x) => x.id.equals(self),
      query: async (s) => {
        q++;
        asked.push(s);
        // Each answer names 64 fresh nodes (and ourselves) that all time out except by luck.
        const nodes: NodeInfo[] = [{ id: self, host: '10.0.0.1', port: 2 }];
        for (let i = 0; i < 64; i++) {
          n++;
          const id = Buffer.alloc(20);
          id.writeUInt32BE(n, 16);
          nodes.push({ id, host: '10.9.0.1', port: 1 + (n % 65535) });
        }
        return reply(Buffer.alloc(20, 0x77), nodes);
      },
    });
    expect(q).toBeLessThanOrEqual(50);
    expect(r.queried).toBe(q);
    expect(asked.some((s) => s.id?.equals(self))).toBe(false);
    expect(MAX_CANDIDATES).toBeLessThan(n);
  });

  it('a node that does not answer holds an alpha slot only for slowMs', async () => {
    const nodes = network(6);
    const target = Buffer.alloc(20);
    const sorted = [...nodes].sort((a, b) => compareDistance(target, a.id, b.id));
    const dead = new Set(sorted.slice(0, 3).map((n) => n.port));
    let answered = 0;
    const ctrl = new AbortController();
    const p = lookup({
      signal: ctrl.signal,
      target,
      seeds: nodes,
      alpha: 3,
      k: 3,
      slowMs: 50,
      timeoutMs: 60_000,
      query: (s) =>
        dead.has(s.port)
          ? new Promise<KrpcResponse>(() => undefined) // never answers, never times out
          : Promise.resolve(reply(nodes.find((n) => n.port === s.port)!.id, [])).then((r) => {
              answered++;
              return r;
            }),
    });
    // The three closest hang; after slowMs the others are asked anyway.
    await expect.poll(() => answered, { timeout: 10_000 }).toBe(3);
    ctrl.abort();
    const r = await p;
    expect(r.end).toBe('aborted');
    expect(r.queried).toBe(6);
  });

  it('ends at the time limit and on abort', async () => {
    const never = () => new Promise<KrpcResponse>(() => undefined);
    const r = await lookup({
      target: Buffer.alloc(20),
      seeds: network(3),
      query: never,
      timeoutMs: 20,
    });
    expect(r.end).toBe('timeout');
    const ctrl = new AbortController();
    const p = lookup({
      target: Buffer.alloc(20),
      seeds: network(3),
      query: never,
      signal: ctrl.signal,
    });
    ctrl.abort();
    expect((await p).end).toBe('aborted');
  });
});
