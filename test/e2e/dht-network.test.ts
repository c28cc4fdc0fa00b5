/**
 * Our DHT against a loopback network of 24 independent nodes (npm `bittorrent-dht`), no
 * tracker anywhere: we find a peer that announced itself only to the DHT, and a third-party
 * lookup finds the port we announced.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCache } from '../../src/dht/cache.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dht, DhtPeerSource } from '../../src/dht/dht.js';
import type { PeerAddress } from '../../src/tracker/types.js';
import { startDhtNetwork } from '../helpers/dht-network.js';
import type { DhtNetwork } from '../helpers/dht-network.js';

const NODES = 24;
let net: DhtNetwork;

beforeAll(async () => {
  net = await startDhtNetwork(NODES, 7);
}, 60_000);

afterAll(async () => {
  await net?.close();
});

function hash(s: string): Buffer {
  return createHash('sha1').update(s).digest();
}

describe('DHT on a loopback network of independent nodes', () => {
  it('finds a seeder that announced only to the DHT, and announces itself', async () => {
    const infoHash = hash('dht e2e torrent');
    await net.announce(5, infoHash, 51413);

    const dht = new Dht({
      port: 0,
      bind: '127.0.0.1',
      bootstrap: [net.addresses()[NODES - 1]!],
      cacheFile: null,
      rpc: { queryTimeoutMs: 2000 },
    });
    const source = new DhtPeerSource(dht, infoHash, { announcePort: 40001 });
    try {
      await dht.start();
      expect(dht.port).toBeGreaterThan(0);
      const found = new Promise<PeerAddress[]>((resolve) => source.once('peers', resolve));
      source.start();
      const peers = await found;
      expect(peers).toContainEqual({ host: '127.0.0.1', port: 51413 });
      expect(source.peersFound()).toBeGreaterThanOrEqual(1);

      // Wait for the lookup and its announce to finish, then look it up from another client.
      await expect.poll(() => source.lookupsDone, { timeout: 20_000 }).toBe(1);
      expect(source.failures).toEqual([]);
      // The lookups' closest nodes, less the bootstrap contact (a router: never kept).
      expect(dht.nodeCount()).toBeGreaterThanOrEqual(7);
      let seen: PeerAddress[] = [];
      await expect
        .poll(
          async () => {
            seen = await net.lookup(12, infoHash);
            return seen.some((p) => p.port === 40001);
          },
          { timeout: 20_000, interval: 500 },
        )
        .toBe(true);
      expect(seen).toContainEqual({ host: '127.0.0.1', port: 40001 });
    } finally {
      await source.stop();
      await dht.stop();
    }
  }, 60_000);

  it('reports a failure when no bootstrap node answers', async () => {
    const dht = new Dht({
      port: 0,
      bind: '127.0.0.1',
      bootstrap: [{ host: '127.0.0.1', port: 9 }],
      cacheFile: null,
      rpc: { queryTimeoutMs: 200 },
    });
    const source = new DhtPeerSource(dht, hash('nobody'), {});
    try {
      await dht.start();
      const warned = new Promise<string>((resolve) => source.once('warning', resolve));
      source.start();
      expect(await warned).toMatch(/no node answered/);
      expect(source.failures).toEqual([{ url: 'dht', message: 'no DHT node answered' }]);
      expect(source.peersFound()).toBe(0);
    } finally {
      await source.stop();
      await dht.stop();
    }
  }, 30_000);

  it('saves the table on stop and starts warm from it, with the same node id', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tdl-dht-warm-'));
    const cacheFile = join(dir, 'tdl', 'dht.dat');
    try {
      const first = new Dht({
        port: 0,
        bind: '127.0.0.1',
        bootstrap: [net.addresses()[3]!],
        cacheFile,
      });
      await first.start();
      // The bootstrap lookup's K closest, less the bootstrap contact (a router: never kept).
      await expect.poll(() => first.nodeCount(), { timeout: 20_000 }).toBeGreaterThanOrEqual(7);
      const id = Buffer.from(first.nodeId);
      await first.stop();
      const saved = await loadCache(cacheFile);
      expect(saved?.id).toEqual(id);
      expect(saved!.nodes.length).toBeGreaterThanOrEqual(7);
      expect(saved!.nodes).not.toContainEqual(expect.objectContaining(net.addresses()[3]!));

      // No bootstrap node at all: only the cache can make this one work.
      const second = new Dht({ port: 0, bind: '127.0.0.1', bootstrap: [], cacheFile });
      try {
        await second.start();
        expect(second.nodeId).toEqual(id);
        await expect.poll(() => second.nodeCount(), { timeout: 20_000 }).toBeGreaterThanOrEqual(7);
      } finally {
        await second.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('falls back to an ephemeral UDP port when the wanted one is taken', async () => {
    const a = new Dht({ port: 0, bind: '127.0.0.1', bootstrap: [], cacheFile: null });
    await a.start();
    const b = new Dht({ port: a.port, bind: '127.0.0.1', bootstrap: [], cacheFile: null });
    try {
      await b.start();
      expect(b.port).toBeGreaterThan(0);
      expect(b.port).not.toBe(a.port);
    } finally {
      await b.stop();
      await a.stop();
    }
  });

  it('addContacts pings extra contacts (a torrent’s nodes); those that answer join the table', async () => {
    const dht = new Dht({ port: 0, bind: '127.0.0.1', bootstrap: [], cacheFile: null });
    try {
      await dht.start();
      dht.addContacts([...net.addresses().slice(0, 3), { host: '127.0.0.1', port: 9 }]);
      await expect.poll(() => dht.nodeCount(), { timeout: 20_000 }).toBe(3);
    } finally {
      await dht.stop();
    }
  });
});
