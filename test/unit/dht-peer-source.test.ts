import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Dht, GetPeersOptions } from '../../src/dht/dht.js';
import type { LookupResult } from '../../src/dht/lookup.js';
import {
  DhtPeerSource,
  MAX_DHT_PEERS,
  REFRESH_MAX_MS,
  REFRESH_MIN_MS,
  REQUEST_MORE_MIN_MS,
} from '../../src/dht/peer-source.js';
import type { PeerAddress } from '../../src/tracker/types.js';

const ih = Buffer.alloc(20, 7);
const node = { id: Buffer.alloc(20, 1), host: '10.0.0.1', port: 1 };

/** A stand-in Dht: each lookup reports `peers` and answers with `answered` nodes. */
function fakeDht(
  peers: () => PeerAddress[],
  answered: number | (() => number) = 1,
  announcedToUs: PeerAddress[] = [],
) {
  const calls = { getPeers: 0, announce: [] as (number | undefined)[] };
  const dht = Object.assign(new EventEmitter(), {
    announcedPeers: () => announcedToUs,
    getPeers: async (_ih: Buffer, o: GetPeersOptions): Promise<LookupResult> => {
      calls.getPeers++;
      o.onPeers?.(peers());
      const responded = typeof answered === 'number' ? answered : answered();
      return {
        closest: responded ? [{ node, token: Buffer.from('t') }] : [],
        queried: 3,
        responded,
        peers: 0,
        end: responded ? 'converged' : 'exhausted',
      };
    },
    announce: async (_ih: Buffer, port: number | undefined) => {
      calls.announce.push(port);
      return 1;
    },
  });
  return { dht: dht as unknown as Dht, calls };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('DHT peer source', () => {
  it('looks up at start, announces, then again after 5–15 minutes (fake timers)', async () => {
    vi.useFakeTimers();
    let n = 0;
    const { dht, calls } = fakeDht(() => [{ host: '1.1.1.1', port: ++n }]);
    const src = new DhtPeerSource(dht, ih, { announcePort: 6881, random: () => 0.5 });
    const got: PeerAddress[] = [];
    src.on('peers', (p) => got.push(...p));
    src.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.getPeers).toBe(1);
    expect(calls.announce).toEqual([6881]);
    expect(src.failures).toEqual([]);
    const mid = REFRESH_MIN_MS + 0.5 * (REFRESH_MAX_MS - REFRESH_MIN_MS);
    await vi.advanceTimersByTimeAsync(mid - 1);
    expect(calls.getPeers).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls.getPeers).toBe(2);
    expect(got).toHaveLength(2);
    expect(src.peersFound()).toBe(2);
    await src.stop();
    await vi.advanceTimersByTimeAsync(REFRESH_MAX_MS * 2);
    expect(calls.getPeers).toBe(2);
  });

  it('requestMore runs a lookup at most once per minute', async () => {
    vi.useFakeTimers();
    const { dht, calls } = fakeDht(() => []);
    const src = new DhtPeerSource(dht, ih, {});
    src.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.announce).toEqual([]); // no announcePort: no announce
    src.requestMore();
    src.requestMore();
    await vi.advanceTimersByTimeAsync(REQUEST_MORE_MIN_MS - 1);
    expect(calls.getPeers).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls.getPeers).toBe(2);
    src.requestMore();
    await vi.advanceTimersByTimeAsync(REQUEST_MORE_MIN_MS);
    expect(calls.getPeers).toBe(3);
    await src.stop();
  });

  it('reports no duplicates and caps the peers it remembers', async () => {
    const many = Array.from({ length: MAX_DHT_PEERS + 100 }, (_, i) => ({
      host: '10.0.0.1',
      port: 1 + (i % 65535),
    }));
    const { dht } = fakeDht(() => [...many, ...many]);
    const src = new DhtPeerSource(dht, ih, {});
    let count = 0;
    src.on('peers', (p) => (count += p.length));
    src.start();
    await vi.waitFor(() => expect(src.lookupsDone).toBe(1));
    expect(count).toBe(MAX_DHT_PEERS);
    expect(src.peersFound()).toBe(MAX_DHT_PEERS);
    await src.stop();
  });

  it('a lookup nobody answered is a failure and a warning', async () => {
    const { dht } = fakeDht(() => [], 0);
    const src = new DhtPeerSource(dht, ih, { announcePort: 1 });
    const warnings: string[] = [];
    src.on('warning', (w) => warnings.push(w));
    src.start();
    await vi.waitFor(() => expect(src.lookupsDone).toBe(1));
    expect(src.failures).toEqual([{ url: 'dht', message: 'no DHT node answered' }]);
    expect(warnings).toEqual(['DHT: no node answered']);
    await src.complete();
    await src.stop();
  });

  it('a lookup nobody answered runs again as soon as nodes join the table (fake timers)', async () => {
    vi.useFakeTimers();
    let answering = 0;
    const { dht, calls } = fakeDht(
      () => [{ host: '2.2.2.2', port: 1 }],
      () => answering,
    );
    const src = new DhtPeerSource(dht, ih, { announcePort: 1 });
    src.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.getPeers).toBe(1);
    // A node of the torrent's `nodes` answered its ping: the lookup goes again at once.
    answering = 1;
    dht.emit('joined');
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.getPeers).toBe(2);
    expect(calls.announce).toEqual([1]);
    // Answered now: more nodes joining change nothing until the next refresh.
    dht.emit('joined');
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.getPeers).toBe(2);
    await src.stop();
    expect(dht.listenerCount('joined')).toBe(0);
  });

  it('nodes that joined while a lookup ran start another when it found no node', async () => {
    let release!: () => void;
    const { dht, calls } = fakeDht(() => [], 0);
    const inner = dht.getPeers.bind(dht);
    dht.getPeers = async (h, o) => {
      if (calls.getPeers === 0) await new Promise<void>((r) => (release = r));
      return inner(h, o);
    };
    const src = new DhtPeerSource(dht, ih, {});
    src.start();
    dht.emit('joined'); // while the first lookup still waits on a dead router
    release();
    // The second lookup comes at once, not at the next refresh minutes later.
    await vi.waitFor(() => expect(src.lookupsDone).toBe(2));
    expect(calls.getPeers).toBe(2);
    await src.stop();
  });

  it('warns once while lookups go unanswered, again after one was answered (fake timers)', async () => {
    vi.useFakeTimers();
    let answering = 0;
    const { dht, calls } = fakeDht(
      () => [],
      () => answering,
    );
    const src = new DhtPeerSource(dht, ih, {});
    const warnings: string[] = [];
    src.on('warning', (w) => warnings.push(w));
    const lookupSoon = async (): Promise<void> => {
      src.requestMore(); // the download is short of peers: a lookup a minute
      await vi.advanceTimersByTimeAsync(REQUEST_MORE_MIN_MS);
    };
    src.start();
    await vi.advanceTimersByTimeAsync(0);
    for (let i = 0; i < 4; i++) await lookupSoon();
    expect(calls.getPeers).toBe(5);
    expect(warnings).toEqual(['DHT: no node answered']);
    answering = 1;
    await lookupSoon();
    answering = 0;
    await lookupSoon();
    await lookupSoon();
    expect(calls.getPeers).toBe(8);
    expect(warnings).toEqual(['DHT: no node answered', 'DHT: no node answered']);
    expect(src.failures).toEqual([{ url: 'dht', message: 'no DHT node answered' }]);
    await src.stop();
  });

  it('takes peers announced to our node: those stored before it started, then each at once', async () => {
    vi.useFakeTimers();
    const early = { host: '10.0.0.9', port: 6000 };
    const { dht, calls } = fakeDht(() => [], 1, [early]);
    const src = new DhtPeerSource(dht, ih, {});
    const got: PeerAddress[] = [];
    src.on('peers', (p) => got.push(...p));
    src.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(got).toEqual([early]);
    const other = Buffer.alloc(20, 8);
    dht.emit('announced', other, { host: '10.0.0.7', port: 7000 });
    dht.emit('announced', ih, { host: '10.0.0.8', port: 8000 });
    dht.emit('announced', ih, early); // already known
    expect(got).toEqual([early, { host: '10.0.0.8', port: 8000 }]);
    expect(calls.getPeers).toBe(1); // no lookup needed for it
    await src.stop();
    dht.emit('announced', ih, { host: '10.0.0.6', port: 6000 });
    expect(got).toHaveLength(2);
  });
});
