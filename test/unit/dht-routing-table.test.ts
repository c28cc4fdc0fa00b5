import { describe, expect, it } from 'vitest';
import {
  BAD_AFTER_FAILURES,
  GOOD_FOR_MS,
  K,
  MAX_TABLE_NODES,
  RoutingTable,
  sharedAddressAllowed,
} from '../../src/dht/routing-table.js';
import { commonPrefixBits, randomIdInBucket } from '../../src/dht/node-id.js';

/** A deterministic id generator (no Math.random in tests). */
function ids(seed: number): () => Buffer {
  let x = seed >>> 0 || 1;
  return () => {
    const b = Buffer.alloc(20);
    for (let i = 0; i < 20; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      b[i] = x & 0xff;
    }
    return b;
  };
}

function setup() {
  let now = 1_000_000;
  const self = Buffer.alloc(20, 0);
  const table = new RoutingTable(self, () => now);
  return {
    self,
    table,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

let port = 1000;
const at = (id: Buffer) => ({ id, host: '10.0.0.1', port: port++ });

describe('routing table', () => {
  it('nodes that answered are good, then questionable after 15 minutes, bad after failures', () => {
    const { table, advance } = setup();
    const n = at(Buffer.alloc(20, 0x80));
    expect(table.responded(n)).toBe(true);
    const e = table.get(n.host, n.port)!;
    expect(table.state(e)).toBe('good');
    advance(GOOD_FOR_MS);
    expect(table.state(e)).toBe('questionable');
    // A query from it within 15 minutes makes it good again (it answered once before).
    table.queried(n);
    expect(table.state(e)).toBe('good');
    for (let i = 0; i < BAD_AFTER_FAILURES; i++) table.failed(n.host, n.port);
    expect(table.state(e)).toBe('bad');
    expect(table.liveCount()).toBe(0);
    expect(table.closest(n.id)).toEqual([]);
    // An answer clears the failures.
    table.responded(n);
    expect(table.state(e)).toBe('good');
  });

  it('never adds nodes that only queried us, our own id, or port 0', () => {
    const { self, table } = setup();
    table.queried(at(Buffer.alloc(20, 1)));
    expect(table.size()).toBe(0);
    expect(table.responded({ id: self, host: '10.0.0.2', port: 1 })).toBe(false);
    expect(table.responded({ id: Buffer.alloc(20, 2), host: '10.0.0.2', port: 0 })).toBe(false);
    expect(table.size()).toBe(0);
  });

  it('a bucket holds K nodes; a full bucket replaces bad then questionable nodes only', () => {
    const { self, table, advance } = setup();
    const inBucket0 = Array.from({ length: K + 1 }, () => at(randomIdInBucket(self, 0)));
    for (const n of inBucket0.slice(0, K)) expect(table.responded(n)).toBe(true);
    const extra = inBucket0[K]!;
    expect(table.responded(extra)).toBe(false); // all good: no room
    for (let i = 0; i < BAD_AFTER_FAILURES; i++)
      table.failed(inBucket0[3]!.host, inBucket0[3]!.port);
    expect(table.responded(extra)).toBe(true);
    expect(table.get(inBucket0[3]!.host, inBucket0[3]!.port)).toBeUndefined();
    advance(GOOD_FOR_MS); // everybody questionable now
    const newcomer = at(randomIdInBucket(self, 0));
    expect(table.responded(newcomer)).toBe(true);
    expect(table.size()).toBe(K);
  });

  it('stays within MAX_TABLE_NODES under thousands of nodes', () => {
    const { table, self } = setup();
    const next = ids(42);
    for (let i = 0; i < 5000; i++) table.responded({ id: next(), host: '10.1.0.1', port: 1 + i });
    expect(table.size()).toBeLessThanOrEqual(MAX_TABLE_NODES);
    for (let b = 0; b < 160; b++) {
      const inB = table.all().filter((n) => commonPrefixBits(self, n.id) === b);
      expect(inB.length).toBeLessThanOrEqual(K);
    }
  });

  it('one entry per address; a new id at a known address replaces it only when it answers', () => {
    const { table } = setup();
    const a = { id: Buffer.alloc(20, 0x40), host: '10.0.0.9', port: 9 };
    table.responded(a);
    table.queried({ ...a, id: Buffer.alloc(20, 0x41) });
    expect(table.get('10.0.0.9', 9)!.id).toEqual(a.id);
    table.responded({ ...a, id: Buffer.alloc(20, 0x42) });
    expect(table.size()).toBe(1);
    expect(table.get('10.0.0.9', 9)!.id).toEqual(Buffer.alloc(20, 0x42));
  });

  it('closest() orders by XOR distance', () => {
    const { table } = setup();
    for (const b of [0x10, 0x20, 0x30, 0x01, 0xff]) table.responded(at(Buffer.alloc(20, b)));
    const target = Buffer.alloc(20, 0x21);
    expect(table.closest(target, 3).map((n) => n.id[0])).toEqual([0x20, 0x30, 0x01]);
  });

  it('stale buckets and questionable nodes to ping', () => {
    const { table, self, advance } = setup();
    table.responded(at(randomIdInBucket(self, 0)));
    table.responded(at(randomIdInBucket(self, 3)));
    expect(table.staleBuckets()).toEqual([]);
    advance(GOOD_FOR_MS);
    expect(table.staleBuckets()).toEqual([0, 1, 2, 3]);
    table.markRefreshed(2);
    expect(table.staleBuckets()).toEqual([0, 1, 3]);
    expect(table.toPing(1)).toHaveLength(1);
    expect(table.toPing(10)).toHaveLength(2);
  });

  it('one node per public IP in the table, whatever its ports and ids', () => {
    const { table, self } = setup();
    const next = ids(7);
    expect(table.responded({ id: randomIdInBucket(self, 0), host: '203.0.113.5', port: 1 })).toBe(
      true,
    );
    for (let p = 2; p < 200; p++) {
      expect(table.responded({ id: next(), host: '203.0.113.5', port: p })).toBe(false);
    }
    expect(table.size()).toBe(1);
    expect(table.get('203.0.113.5', 1)).toBeDefined();
  });

  it('one node per /24 in a bucket; other buckets and other networks still take theirs', () => {
    const { table, self } = setup();
    const host = (i: number) => `198.51.100.${i}`;
    expect(table.responded({ id: randomIdInBucket(self, 0), host: host(1), port: 1 })).toBe(true);
    expect(table.responded({ id: randomIdInBucket(self, 0), host: host(2), port: 1 })).toBe(false);
    expect(table.responded({ id: randomIdInBucket(self, 1), host: host(3), port: 1 })).toBe(true);
    expect(table.responded({ id: randomIdInBucket(self, 0), host: '198.51.101.2', port: 1 })).toBe(
      true,
    );
    expect(table.size()).toBe(3);
  });

  it('a bad node gives its address up to a newcomer that answers', () => {
    const { table, self } = setup();
    const old = { id: randomIdInBucket(self, 0), host: '192.0.2.7', port: 6881 };
    table.responded(old);
    const moved = { id: randomIdInBucket(self, 2), host: '192.0.2.7', port: 6882 };
    expect(table.responded(moved)).toBe(false);
    for (let i = 0; i < BAD_AFTER_FAILURES; i++) table.failed(old.host, old.port);
    expect(table.responded(moved)).toBe(true);
    expect(table.get(old.host, old.port)).toBeUndefined();
    expect(table.size()).toBe(1);
    // Removing it frees the address for the next one.
    table.remove(moved.host, moved.port);
    expect(table.responded(old)).toBe(true);
  });

  it('nodes of a local network may share an address', () => {
    const { table } = setup();
    const next = ids(9);
    for (let p = 1; p <= 5; p++) table.responded({ id: next(), host: '127.0.0.1', port: p });
    for (let p = 1; p <= 5; p++) table.responded({ id: next(), host: '192.168.1.2', port: p });
    expect(table.size()).toBe(10);
    for (const h of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '172.31.9.9', '192.168.0.1']) {
      expect(sharedAddressAllowed(h)).toBe(true);
    }
    for (const h of ['169.254.1.1', '100.64.0.1', '100.127.255.1']) {
      expect(sharedAddressAllowed(h)).toBe(true);
    }
    for (const h of ['8.8.8.8', '172.32.0.1', '100.128.0.1', '203.0.113.5', '11.0.0.1']) {
      expect(sharedAddressAllowed(h)).toBe(false);
    }
  });

  it('never takes a refused address (a bootstrap router), and drops it if it was there', () => {
    const { table, self } = setup();
    const router = { id: randomIdInBucket(self, 0), host: '203.0.113.9', port: 6881 };
    table.responded(router);
    table.refuse(router.host, router.port);
    expect(table.size()).toBe(0);
    expect(table.responded(router)).toBe(false);
    expect(table.responded({ ...router, port: 6882 })).toBe(true);
  });
});
