/**
 * How the DHT resolves its bootstrap names: dotted names through the DNS servers (resolve4),
 * never `dns.lookup`, which tests every name with net.isIP (20-40 ms of CPU at start-up to
 * compile its IPv6 pattern); single labels (`localhost`, a LAN host), and dotted names the DNS
 * servers do not answer, through `lookup`.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ScriptedNode } from '../helpers/dht-hostile.js';

const calls = vi.hoisted(() => ({ lookup: [] as string[], resolve4: [] as string[], cancel: 0 }));
vi.mock('node:dns/promises', async (importOriginal) => {
  const dns = await importOriginal<typeof import('node:dns/promises')>();
  class FakeResolver {
    resolve4(host: string): Promise<string[]> {
      calls.resolve4.push(host);
      return host === 'nowhere.example'
        ? Promise.reject(new Error('queryA ENOTFOUND nowhere.example'))
        : Promise.resolve(['127.0.0.1']);
    }
    cancel(): void {
      calls.cancel++;
    }
  }
  return {
    ...dns,
    Resolver: FakeResolver,
    lookup: (host: string) => {
      calls.lookup.push(host);
      return host === 'nowhere.example'
        ? Promise.reject(new Error('getaddrinfo ENOTFOUND nowhere.example'))
        : Promise.resolve({ address: '127.0.0.1', family: 4 });
    },
  };
});

const { Dht } = await import('../../src/dht/dht.js');

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('DHT bootstrap names', () => {
  it('resolves dotted names with resolve4, single labels and unanswered names with lookup', async () => {
    const dotted = await ScriptedNode.start();
    const single = await ScriptedNode.start();
    cleanups.push(
      () => dotted.close(),
      () => single.close(),
    );
    const dht = new Dht({
      port: 0,
      bind: '127.0.0.1',
      cacheFile: null,
      bootstrap: [
        { host: 'router.example.org', port: dotted.port },
        { host: 'lan-node', port: single.port },
        { host: 'nowhere.example', port: 6881 },
        { host: '127.0.0.1', port: 9 },
      ],
      rpc: { queryTimeoutMs: 200 },
      lookupTimeoutMs: 1000,
    });
    cleanups.push(() => dht.stop());
    await dht.start();
    // Both resolved names are queried (find_node for our own id).
    await expect
      .poll(() => dotted.received.length > 0 && single.received.length > 0, { timeout: 5000 })
      .toBe(true);
    expect(dotted.received[0]!.msg).toMatchObject({ y: 'q', q: 'find_node' });
    expect(calls.resolve4.sort()).toEqual(['nowhere.example', 'router.example.org']);
    // A name the DNS servers do not answer still gets the system resolver's word (/etc/hosts).
    expect(calls.lookup.sort()).toEqual(['lan-node', 'nowhere.example']);
    await expect.poll(() => calls.cancel, { timeout: 5000 }).toBe(1);
  });
});
