import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CHOKE_INTERVAL_MS,
  Choker,
  type ChokerPeer,
  DEFAULT_UPLOAD_SLOTS,
  NEW_PEER_MS,
  OPTIMISTIC_INTERVAL_MS,
  SEED_IDLE_TURN_MS,
  SEED_MAX_TURN_MS,
  SEED_MIN_TURN_MS,
  SNUB_MS,
  isSnubbed,
} from '../../src/swarm/choker.js';

/** Small seeded PRNG (mulberry32): the same numbers on every run. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const T0 = 1_000_000;

function peer(id: string, over: Partial<ChokerPeer> = {}): ChokerPeer {
  return {
    id,
    interested: true,
    connectedAt: T0 - 10 * 60_000,
    downloadedRecent: 0,
    lastReceivedAt: T0 - 1000,
    uploadedRecent: 0,
    uploadedSinceUnchoke: 0,
    unchoked: false,
    ...over,
  };
}

/** Applies a decision to the peers the way a caller would. */
function apply(peers: ChokerPeer[], out: Set<string>): void {
  for (const p of peers) {
    const u = out.has(p.id);
    if (u && !p.unchoked) p.uploadedSinceUnchoke = 0;
    p.unchoked = u;
  }
}

describe('choker, downloading', () => {
  it('unchokes the slots peers that gave us the most, plus one optimistic', () => {
    const c = new Choker({ slots: 4, random: mulberry32(1) });
    const peers = ['a', 'b', 'c', 'd', 'e', 'f'].map((id, i) =>
      peer(id, { downloadedRecent: (i + 1) * 1000 }),
    );
    const out = c.decide(T0, peers, false);
    expect([...c.regular].sort()).toEqual(['c', 'd', 'e', 'f']);
    expect(out.size).toBe(5);
    expect(['a', 'b']).toContain(c.optimistic);
    expect(out.has(c.optimistic!)).toBe(true);
  });

  it('defaults to DEFAULT_UPLOAD_SLOTS regular slots', () => {
    const c = new Choker({ random: () => 0 });
    const peers = Array.from({ length: 10 }, (_, i) => peer(`p${i}`, { downloadedRecent: i }));
    c.decide(T0, peers, false);
    expect(c.regular.size).toBe(DEFAULT_UPLOAD_SLOTS);
  });

  it('never unchokes a peer that is not interested', () => {
    const c = new Choker({ slots: 4, random: () => 0.5 });
    const peers = [
      peer('x', { interested: false, downloadedRecent: 1e9 }),
      peer('y', { interested: false }),
      peer('z'),
    ];
    const out = c.decide(T0, peers, false);
    expect([...out]).toEqual(['z']);
    expect(c.optimistic).toBeNull();
  });

  it('unchokes nobody with 0 slots', () => {
    const c = new Choker({ slots: 0, random: () => 0 });
    expect(c.decide(T0, [peer('a'), peer('b')], false).size).toBe(0);
    expect(c.optimistic).toBeNull();
    expect(() => new Choker({ slots: -1 })).toThrow(RangeError);
    expect(() => new Choker({ slots: 1.5 })).toThrow(RangeError);
  });

  it('re-ranks only every CHOKE_INTERVAL_MS; extra calls just fill free slots', () => {
    const c = new Choker({ slots: 2, random: () => 0 });
    const peers = [
      peer('a', { downloadedRecent: 300 }),
      peer('b', { downloadedRecent: 200 }),
      peer('c', { downloadedRecent: 100 }),
      peer('d', { downloadedRecent: 50 }),
    ];
    apply(peers, c.decide(T0, peers, false));
    expect([...c.regular].sort()).toEqual(['a', 'b']);
    const opt = c.optimistic;
    expect(['c', 'd']).toContain(opt);
    // d suddenly gives the most; a leaves. Before the next round: a's slot goes to the best
    // peer not already unchoked, b keeps its slot and the optimistic stays.
    peers[3]!.downloadedRecent = 10_000;
    const rest = peers.slice(1);
    apply(rest, c.decide(T0 + 1000, rest, false));
    expect(c.optimistic).toBe(opt);
    expect(c.regular.has('b')).toBe(true);
    expect(c.regular.size).toBe(2);
    expect(c.regular.has(opt!)).toBe(false);
    // Next full round: ranking by rate again.
    rest[0]!.downloadedRecent = 0;
    apply(rest, c.decide(T0 + CHOKE_INTERVAL_MS, rest, false));
    expect([...c.regular].sort()).toEqual(['c', 'd']);
  });

  it('prefers already unchoked peers when rates tie (less churn)', () => {
    const c = new Choker({ slots: 2, random: () => 0 });
    const peers = [peer('a'), peer('b'), peer('c', { unchoked: true }), peer('d')];
    c.decide(T0, peers, false);
    expect(c.regular.has('c')).toBe(true);
  });

  it('peers that give us nothing take turns in the slots the givers leave', () => {
    // g sends us data; the six others send nothing (snubbed all along) and want pieces.
    const quota = 1 << 20;
    const c = new Choker({ slots: 2, random: mulberry32(7), seedQuotaBytes: quota });
    const idle = Array.from({ length: 6 }, (_, i) => `p${i}`);
    const peers = [peer('g'), ...idle.map((id) => peer(id, { lastReceivedAt: 0 }))];
    const lastRegular = new Map<string, number>();
    let worstGap = 0;
    for (let t = 0; t < 10 * 60_000; t += CHOKE_INTERVAL_MS) {
      const now = T0 + t;
      peers[0]!.downloadedRecent = 1_000_000;
      peers[0]!.lastReceivedAt = now;
      apply(peers, c.decide(now, peers, false));
      // The giver keeps its regular slot throughout.
      expect(c.regular.has('g')).toBe(true);
      for (const id of idle) {
        if (c.regular.has(id)) lastRegular.set(id, t);
        worstGap = Math.max(worstGap, t - (lastRegular.get(id) ?? 0));
      }
      for (const p of peers) {
        // Each unchoked peer takes 100 kB/s.
        const got = p.unchoked ? 100_000 * (CHOKE_INTERVAL_MS / 1000) : 0;
        p.uploadedSinceUnchoke += got;
        p.uploadedRecent = got * 2;
      }
    }
    // One slot left for six peers, turns of at most SEED_MAX_TURN_MS (+ one round): each holds
    // it again within six turns, not only the first to get it.
    for (const id of idle) expect(lastRegular.has(id)).toBe(true);
    expect(worstGap).toBeLessThanOrEqual(idle.length * (SEED_MAX_TURN_MS + CHOKE_INTERVAL_MS));
  });

  describe('anti-snubbing', () => {
    it('isSnubbed counts from the last byte received, or the connection', () => {
      expect(isSnubbed(T0, peer('a', { lastReceivedAt: T0 - SNUB_MS }))).toBe(true);
      expect(isSnubbed(T0, peer('a', { lastReceivedAt: T0 - SNUB_MS + 1 }))).toBe(false);
      expect(isSnubbed(T0, peer('a', { lastReceivedAt: 0, connectedAt: T0 - 5000 }))).toBe(false);
      expect(isSnubbed(T0, peer('a', { lastReceivedAt: 0, connectedAt: T0 - SNUB_MS }))).toBe(true);
    });

    it('a peer that sent nothing for a minute loses its regular slot', () => {
      const c = new Choker({ slots: 2, random: () => 0 });
      const peers = [
        peer('a', { unchoked: true, uploadedRecent: 1e6, lastReceivedAt: T0 - SNUB_MS - 1 }),
        peer('b', { unchoked: true }),
        peer('c'),
        peer('d'),
      ];
      c.decide(T0, peers, false);
      expect(c.regular.has('a')).toBe(false);
      expect([...c.regular].sort()).toEqual(['b', 'c']);
    });

    it('ranks a snubbed peer below every other, even one that gave more earlier', () => {
      const c = new Choker({ slots: 1, random: () => 0 });
      const peers = [
        peer('a', { downloadedRecent: 5000, lastReceivedAt: T0 - SNUB_MS }),
        peer('b', { downloadedRecent: 0 }),
      ];
      c.decide(T0, peers, false);
      expect([...c.regular]).toEqual(['b']);
    });

    it('a peer that reads nothing ranks below the others, whatever it sends us', () => {
      const c = new Choker({ slots: 1, random: () => 0.999 });
      const peers = [
        peer('a', { downloadedRecent: 5e6, notReading: true, unchoked: true }),
        peer('b', { downloadedRecent: 1e3 }),
        peer('o'),
      ];
      c.decide(T0, peers, false);
      expect([...c.regular]).toEqual(['b']);
    });

    it('a snubbed peer still gets a slot nobody else wants', () => {
      const c = new Choker({ slots: 4, random: () => 0 });
      const peers = [peer('a', { lastReceivedAt: 0 }), peer('b')];
      c.decide(T0, peers, false);
      expect([...c.regular].sort()).toEqual(['a', 'b']);
    });
  });

  describe('optimistic unchoke', () => {
    it('rotates every OPTIMISTIC_INTERVAL_MS, not at every round', () => {
      const c = new Choker({ slots: 1, random: mulberry32(7) });
      const peers = ['a', 'b', 'c', 'd', 'e'].map((id) => peer(id));
      peers[0]!.downloadedRecent = 1e6;
      const seen: (string | null)[] = [];
      for (let t = 0; t <= 6 * CHOKE_INTERVAL_MS; t += CHOKE_INTERVAL_MS) {
        apply(peers, c.decide(T0 + t, peers, false));
        seen.push(c.optimistic);
      }
      // Rounds at 0, 10, 20 s share one optimistic; 30, 40, 50 s another; 60 s a third.
      expect(seen[1]).toBe(seen[0]);
      expect(seen[2]).toBe(seen[0]);
      expect(seen[3]).not.toBe(seen[0]);
      expect(seen[4]).toBe(seen[3]);
      expect(seen[5]).toBe(seen[3]);
      expect(seen[6]).not.toBe(seen[3]);
      expect(seen).not.toContain('a'); // it holds the regular slot
    });

    it('is replaced at once when it leaves or loses interest', () => {
      const c = new Choker({ slots: 1, random: () => 0 });
      const peers = [peer('a', { downloadedRecent: 10 }), peer('b'), peer('c')];
      c.decide(T0, peers, false);
      expect(c.optimistic).toBe('b');
      peers[1]!.interested = false;
      const out = c.decide(T0 + 1, peers, false);
      expect(c.optimistic).toBe('c');
      expect(out.has('b')).toBe(false);
      c.decide(T0 + 2, [peers[0]!], false);
      expect(c.optimistic).toBeNull();
    });

    it('is replaced when it wins a regular slot', () => {
      const c = new Choker({ slots: 1, random: () => 0 });
      const peers = [peer('a', { downloadedRecent: 10 }), peer('b'), peer('c')];
      apply(peers, c.decide(T0, peers, false));
      expect(c.optimistic).toBe('b');
      peers[1]!.downloadedRecent = 1000;
      apply(peers, c.decide(T0 + CHOKE_INTERVAL_MS, peers, false));
      expect([...c.regular]).toEqual(['b']);
      expect(c.optimistic).not.toBe('b');
      expect(c.optimistic).not.toBeNull();
    });

    it('weighs new peers NEW_PEER_WEIGHT times as much (exact thresholds)', () => {
      // Candidates in order: old o1, new n1, old o2 → weights 1, 3, 1 over a total of 5.
      const mk = () => [
        peer('top', { downloadedRecent: 1e6 }),
        peer('o1'),
        peer('n1', { connectedAt: T0 - NEW_PEER_MS + 1 }),
        peer('o2'),
      ];
      const pick = (r: number) => {
        const c = new Choker({ slots: 1, random: () => r });
        c.decide(T0, mk(), false);
        return c.optimistic;
      };
      expect(pick(0)).toBe('o1');
      expect(pick(0.199)).toBe('o1');
      expect(pick(0.2)).toBe('n1');
      expect(pick(0.799)).toBe('n1');
      expect(pick(0.8)).toBe('o2');
      expect(pick(0.9999999)).toBe('o2');
      expect(pick(1)).toBe('o2'); // a bad random() cannot break it
    });

    it('a new peer is about three times as likely as an old one (seeded)', () => {
      const rnd = mulberry32(42);
      const counts = new Map<string, number>();
      const N = 6000;
      for (let i = 0; i < N; i++) {
        const c = new Choker({ slots: 1, random: rnd });
        c.decide(
          T0,
          [
            peer('top', { downloadedRecent: 1e6 }),
            peer('old1'),
            peer('old2'),
            peer('old3'),
            peer('new', { connectedAt: T0 - 1000 }),
          ],
          false,
        );
        counts.set(c.optimistic!, (counts.get(c.optimistic!) ?? 0) + 1);
      }
      // P(new) = 3 / (3 + 3) = 1/2, P(each old) = 1/6.
      expect(counts.get('new')! / N).toBeCloseTo(0.5, 1);
      for (const o of ['old1', 'old2', 'old3']) expect(counts.get(o)! / N).toBeCloseTo(1 / 6, 1);
    });
  });
});

describe('choker, seeding', () => {
  /** Runs choke rounds for `ms`, each unchoked peer taking `rate[id]` bytes per second. */
  function simulate(
    c: Choker,
    peers: ChokerPeer[],
    rate: Record<string, number>,
    ms: number,
    onRound?: (t: number, out: Set<string>) => void,
  ): Map<string, number> {
    const served = new Map<string, number>();
    for (let t = 0; t < ms; t += CHOKE_INTERVAL_MS) {
      const out = c.decide(T0 + t, peers, true);
      apply(peers, out);
      onRound?.(t, out);
      for (const p of peers) {
        const got = p.unchoked ? (rate[p.id] ?? 0) * (CHOKE_INTERVAL_MS / 1000) : 0;
        p.uploadedSinceUnchoke += got;
        p.uploadedRecent = got * 2; // a steady rate over the 20 s window
        served.set(p.id, (served.get(p.id) ?? 0) + got);
      }
    }
    return served;
  }

  it('serves every interested peer in turn', () => {
    const c = new Choker({ slots: 2, random: mulberry32(3), seedQuotaBytes: 1 << 20 });
    const ids = Array.from({ length: 9 }, (_, i) => `p${i}`);
    const peers = ids.map((id) => peer(id, { lastReceivedAt: 0 }));
    const rate = Object.fromEntries(ids.map((id, i) => [id, 50_000 * (i + 1)]));
    const lastServed = new Map<string, number>();
    let worstGap = 0;
    const served = simulate(c, peers, rate, 20 * 60_000, (t, out) => {
      for (const id of ids) {
        if (out.has(id)) lastServed.set(id, t);
        worstGap = Math.max(worstGap, t - (lastServed.get(id) ?? 0));
      }
      expect(out.size).toBeLessThanOrEqual(3);
    });
    for (const id of ids) expect(served.get(id)).toBeGreaterThan(0);
    // 9 peers, 2 rotating slots, turns of at most SEED_MAX_TURN_MS (+ one round): everyone is
    // served again within 9/2 turns.
    expect(worstGap).toBeLessThanOrEqual(
      Math.ceil(ids.length / 2) * (SEED_MAX_TURN_MS + CHOKE_INTERVAL_MS),
    );
  });

  it('keeps everyone unchoked when there are no more peers than slots', () => {
    const c = new Choker({ slots: 4, random: () => 0 });
    const peers = ['a', 'b', 'c'].map((id) => peer(id));
    let rounds = 0;
    simulate(c, peers, { a: 1e6, b: 1e6, c: 1e6 }, 10 * 60_000, (_t, out) => {
      rounds++;
      expect(out.size).toBe(3);
    });
    expect(rounds).toBe(60);
  });

  it('a peer yields its slot after its quota and the minimum turn, not before', () => {
    const quota = 1 << 20;
    const c = new Choker({ slots: 1, random: () => 0.999, seedQuotaBytes: quota });
    // a is unchoked and fast; w waits; o is a third peer to take the optimistic slot.
    const peers = [peer('a'), peer('w', { connectedAt: T0 - 11 * 60_000 }), peer('o')];
    apply(peers, c.decide(T0, peers, true));
    const first = [...c.regular][0]!;
    expect(first).toBe('w'); // waited longest (connected first)
    peers.find((p) => p.id === first)!.uploadedSinceUnchoke = 10 * quota; // quota used at once
    apply(peers, c.decide(T0 + CHOKE_INTERVAL_MS, peers, true));
    expect(c.regular.has(first)).toBe(true); // turn shorter than SEED_MIN_TURN_MS
    apply(peers, c.decide(T0 + SEED_MIN_TURN_MS, peers, true));
    expect(c.regular.has(first)).toBe(false);
  });

  it('a slow peer yields after SEED_MAX_TURN_MS even below its quota', () => {
    const c = new Choker({ slots: 1, random: () => 0, seedQuotaBytes: 1 << 30 });
    const peers = [peer('a', { connectedAt: T0 - 20 * 60_000 }), peer('b'), peer('c')];
    let held = 0;
    for (let t = 0; c.regular.has('a') || t === 0; t += CHOKE_INTERVAL_MS) {
      apply(peers, c.decide(T0 + t, peers, true));
      if (c.regular.has('a')) held = t + CHOKE_INTERVAL_MS;
      // A block a round: slow, but it takes what it asks for.
      if (peers[0]!.unchoked) peers[0]!.uploadedSinceUnchoke += 16384;
      if (t > 10 * 60_000) break;
    }
    expect(held).toBeGreaterThanOrEqual(SEED_MAX_TURN_MS);
    expect(held).toBeLessThanOrEqual(SEED_MAX_TURN_MS + CHOKE_INTERVAL_MS);
  });

  it('a peer that asks for nothing yields its slot after SEED_IDLE_TURN_MS', () => {
    const c = new Choker({ slots: 1, random: () => 0.999 });
    // i is interested and unchoked first (connected first), but never asks for a block.
    const peers = [peer('i', { connectedAt: T0 - 20 * 60_000 }), peer('w'), peer('o')];
    apply(peers, c.decide(T0, peers, true));
    expect([...c.regular]).toEqual(['i']);
    apply(peers, c.decide(T0 + SEED_IDLE_TURN_MS - 1, peers, true));
    expect(c.regular.has('i')).toBe(true);
    apply(peers, c.decide(T0 + SEED_IDLE_TURN_MS, peers, true));
    expect(c.regular.has('i')).toBe(false);
    expect(c.regular.size).toBe(1);
  });

  it('a peer that reads nothing of what we send yields its slot at the next round', () => {
    const c = new Choker({ slots: 1, random: () => 0.999 });
    const peers = [peer('a', { connectedAt: T0 - 20 * 60_000 }), peer('w'), peer('o')];
    apply(peers, c.decide(T0, peers, true));
    expect([...c.regular]).toEqual(['a']);
    // Its socket full and not draining: its turn is over long before SEED_MIN_TURN_MS.
    peers[0]!.notReading = true;
    apply(peers, c.decide(T0 + CHOKE_INTERVAL_MS, peers, true));
    expect(c.regular.has('a')).toBe(false);
    expect(c.regular.size).toBe(1);
  });

  it('prefers the peers we upload to fastest among those within their turn', () => {
    const c = new Choker({ slots: 2, random: () => 0 });
    const peers = [
      peer('slow', { unchoked: true, uploadedRecent: 1000 }),
      peer('fast', { unchoked: true, uploadedRecent: 900_000 }),
      peer('mid', { unchoked: true, uploadedRecent: 50_000 }),
    ];
    c.decide(T0, peers, true);
    expect([...c.regular].sort()).toEqual(['fast', 'mid']);
    expect(c.optimistic).toBe('slow'); // the only one left
  });
});

describe('choker, properties (seeded)', () => {
  const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 42;
  const numRuns = process.env.FUZZ_RUNS !== undefined ? Number(process.env.FUZZ_RUNS) : 300;

  const peerArb = fc.record({
    interested: fc.boolean(),
    connectedAgo: fc.nat({ max: 600_000 }),
    downloadedRecent: fc.nat({ max: 1e7 }),
    receivedAgo: fc.option(fc.nat({ max: 600_000 }), { nil: undefined }),
    uploadedRecent: fc.nat({ max: 1e7 }),
    uploadedSinceUnchoke: fc.nat({ max: 1e8 }),
    unchoked: fc.boolean(),
  });
  const stepArb = fc.record({
    dt: fc.oneof(fc.constant(CHOKE_INTERVAL_MS), fc.nat({ max: 40_000 })),
    peers: fc.array(fc.tuple(fc.nat({ max: 15 }), peerArb), { maxLength: 16 }),
    seeding: fc.boolean(),
  });

  it('unchokes only interested peers, at most slots + 1, optimistic included', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 6 }),
        fc.array(stepArb, { minLength: 1, maxLength: 12 }),
        fc.integer(),
        (slots, steps, rseed) => {
          const c = new Choker({ slots, random: mulberry32(rseed) });
          let now = T0;
          for (const step of steps) {
            now += step.dt;
            const byId = new Map<string, ChokerPeer>();
            for (const [n, p] of step.peers) {
              byId.set(`p${n}`, {
                id: `p${n}`,
                interested: p.interested,
                connectedAt: now - p.connectedAgo,
                downloadedRecent: p.downloadedRecent,
                lastReceivedAt: p.receivedAgo === undefined ? 0 : now - p.receivedAgo,
                uploadedRecent: p.uploadedRecent,
                uploadedSinceUnchoke: p.uploadedSinceUnchoke,
                unchoked: p.unchoked,
              });
            }
            const peers = [...byId.values()];
            const out = c.decide(now, peers, step.seeding);
            const interested = new Set(peers.filter((p) => p.interested).map((p) => p.id));
            for (const id of out) expect(interested.has(id)).toBe(true);
            expect(c.regular.size).toBeLessThanOrEqual(slots);
            expect(out.size).toBeLessThanOrEqual(slots === 0 ? 0 : slots + 1);
            // Every slot is used while interested peers are left out.
            expect(out.size).toBe(Math.min(interested.size, slots === 0 ? 0 : slots + 1));
            if (c.optimistic !== null) {
              expect(out.has(c.optimistic)).toBe(true);
              expect(c.regular.has(c.optimistic)).toBe(false);
            }
            for (const id of c.regular) expect(out.has(id)).toBe(true);
          }
        },
      ),
      { seed, numRuns },
    );
  });

  it('is deterministic for the same inputs and random numbers', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 6 }), (steps) => {
        const run = () => {
          const c = new Choker({ slots: 2, random: mulberry32(5) });
          let now = T0;
          return steps.map((s) => {
            now += s.dt;
            const peers = s.peers.map(([n, p]) =>
              peer(`p${n}`, {
                interested: p.interested,
                downloadedRecent: p.downloadedRecent,
                unchoked: p.unchoked,
              }),
            );
            const unique = [...new Map(peers.map((p) => [p.id, p])).values()];
            return [...c.decide(now, unique, s.seeding)].sort();
          });
        };
        expect(run()).toEqual(run());
      }),
      { seed, numRuns: Math.ceil(numRuns / 3) },
    );
  });
});
