import { afterEach, describe, expect, it, vi } from 'vitest';
import { RateLimiter } from '../../src/dht/rate-limit.js';
import { MAX_INFOHASHES, MAX_PEERS_PER_HASH, PEER_TTL_MS, PeerStore } from '../../src/dht/store.js';
import { TOKEN_ROTATE_MS, TokenIssuer } from '../../src/dht/tokens.js';

describe('announce tokens', () => {
  it('are bound to the address and survive one rotation, not two', () => {
    let now = 0;
    const tokens = new TokenIssuer(() => now);
    const tok = tokens.issue('10.0.0.1');
    expect(tok).toHaveLength(8);
    expect(tokens.check('10.0.0.1', tok)).toBe(true);
    expect(tokens.check('10.0.0.2', tok)).toBe(false); // reused from another address
    expect(tokens.check('10.0.0.1', undefined)).toBe(false);
    expect(tokens.check('10.0.0.1', Buffer.alloc(8))).toBe(false);
    now += TOKEN_ROTATE_MS;
    expect(tokens.check('10.0.0.1', tok)).toBe(true); // previous secret still accepted
    expect(tokens.issue('10.0.0.1').equals(tok)).toBe(false);
    now += TOKEN_ROTATE_MS;
    expect(tokens.check('10.0.0.1', tok)).toBe(false);
  });

  it('a long idle period forgets both secrets', () => {
    let now = 0;
    const tokens = new TokenIssuer(() => now);
    const tok = tokens.issue('h');
    now += 3 * TOKEN_ROTATE_MS;
    expect(tokens.check('h', tok)).toBe(false);
  });
});

describe('per-address rate limit', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('allows a burst, then the refill rate (fake timers)', () => {
    vi.useFakeTimers();
    const rl = new RateLimiter({ burst: 5, ratePerSecond: 2 });
    let ok = 0;
    for (let i = 0; i < 100; i++) if (rl.allow('1.1.1.1')) ok++;
    expect(ok).toBe(5);
    expect(rl.allow('2.2.2.2')).toBe(true); // others are not affected
    vi.advanceTimersByTime(1000);
    ok = 0;
    for (let i = 0; i < 100; i++) if (rl.allow('1.1.1.1')) ok++;
    expect(ok).toBe(2);
    vi.advanceTimersByTime(60_000);
    ok = 0;
    for (let i = 0; i < 100; i++) if (rl.allow('1.1.1.1')) ok++;
    expect(ok).toBe(5); // never more than the burst
  });

  it('remembers a bounded number of addresses', () => {
    const rl = new RateLimiter({ maxTracked: 100 }, () => 0);
    for (let i = 0; i < 10_000; i++) rl.allow(`10.0.${i >> 8}.${i & 255}`);
    expect(rl.tracked()).toBe(100);
  });
});

describe('peer store', () => {
  it('stores, expires and caps announced peers', () => {
    let now = 0;
    const store = new PeerStore(() => now);
    const ih = Buffer.alloc(20, 1);
    store.add(ih, { host: '1.2.3.4', port: 5 });
    store.add(ih, { host: '1.2.3.4', port: 5 });
    expect(store.get(ih)).toEqual([{ host: '1.2.3.4', port: 5 }]);
    now += PEER_TTL_MS;
    expect(store.get(ih)).toEqual([]);
    for (let i = 0; i < MAX_PEERS_PER_HASH + 50; i++)
      store.add(ih, { host: '1.1.1.1', port: 1 + i });
    expect(store.get(ih, 10_000)).toHaveLength(MAX_PEERS_PER_HASH);
    for (let i = 0; i < MAX_INFOHASHES + 10; i++) {
      const h = Buffer.alloc(20);
      h.writeUInt32BE(i + 100);
      store.add(h, { host: '1.1.1.1', port: 1 });
    }
    expect(store.infoHashCount()).toBe(MAX_INFOHASHES);
  });
});
