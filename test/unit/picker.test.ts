import { describe, expect, it } from 'vitest';
import { Layout } from '../../src/storage/layout.js';
import {
  BLOCKS_PER_PIECE_KEY,
  ENDGAME_DEPTH,
  MAX_AVOIDED,
  MAX_ENDGAME_REQUESTERS,
  MAX_PREFER_SCAN,
  peerIdKey,
  PiecePicker,
  rendezvous,
} from '../../src/swarm/picker.js';
import { inflightBudget, MAX_INFLIGHT_BYTES, MIN_INFLIGHT_BYTES } from '../../src/swarm/session.js';
import { INITIAL_DEPTH, MAX_DEPTH, MIN_DEPTH, Pipeline } from '../../src/swarm/pipeline.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { BLOCK_SIZE } from '../../src/wire/messages.js';

const PL = 4 * BLOCK_SIZE;

function setup(pieces: number, budget = 1 << 30, last = PL) {
  const total = PL * (pieces - 1) + last;
  const layout = new Layout([{ offset: 0, length: total }], PL, total);
  const picker = new PiecePicker(layout, new Bitfield(layout.pieceCount), budget, () => 0);
  return { layout, picker };
}

function bf(n: number, has: (i: number) => boolean): Bitfield {
  const b = new Bitfield(n);
  for (let i = 0; i < n; i++) if (has(i)) b.set(i);
  return b;
}

const none = () => false;

describe('piece picker', () => {
  it('picks the rarest piece first', () => {
    const { picker } = setup(4);
    picker.peerHas(bf(4, () => true));
    picker.peerHas(bf(4, (i) => i !== 2));
    picker.peerHas(bf(4, (i) => i !== 2 && i !== 1));
    const got = picker.pick(
      'a',
      bf(4, () => true),
      4,
      none,
    );
    expect(got.map((b) => b.index)).toEqual([2, 2, 2, 2]);
    expect(got.map((b) => b.begin)).toEqual([0, BLOCK_SIZE, 2 * BLOCK_SIZE, 3 * BLOCK_SIZE]);
  });

  it('never asks for blocks of padding; a piece given up by a web seed goes back whole', () => {
    // Piece 0: its last two blocks are padding; piece 1: all padding (fetched as usual).
    const layout = new Layout([{ offset: 0, length: 2 * PL }], PL, 2 * PL);
    const isPad = (index: number, start: number) => index === 1 || start >= 2 * BLOCK_SIZE;
    const picker = new PiecePicker(layout, new Bitfield(2), 1 << 30, () => 0, null, isPad);
    const all = bf(2, () => true);
    picker.peerHas(all);
    const got = picker.pick('a', all, 100, none);
    expect(got.filter((b) => b.index === 0).map((b) => b.begin)).toEqual([0, BLOCK_SIZE]);
    expect(got.filter((b) => b.index === 1)).toHaveLength(4);
    const p0 = picker.inProgress.get(0)!;
    expect(p0.buffer.subarray(2 * BLOCK_SIZE).every((x) => x === 0)).toBe(true);
    // A web seed that took a padded piece and gave it up: nothing of it was delivered.
    const { picker: ws } = {
      picker: new PiecePicker(layout, new Bitfield(2), 1 << 30, () => 0, null, isPad),
    };
    const whole = ws.reserveWhole('seed', () => true)!;
    ws.abandon(whole.index);
    expect(ws.inProgress.has(whole.index)).toBe(false);
    const again = [
      ws.reserveWhole('seed', () => true)?.index,
      ws.reserveWhole('seed', () => true)?.index,
    ];
    expect(again.sort()).toEqual([0, 1]);
  });

  it('only asks a peer for pieces it has', () => {
    const { picker } = setup(6);
    const peer = bf(6, (i) => i === 4);
    picker.peerHas(peer);
    const got = picker.pick('a', peer, 100, none);
    expect(new Set(got.map((b) => b.index))).toEqual(new Set([4]));
    expect(got).toHaveLength(4);
  });

  it('finishes pieces it started before starting others, and shares blocks of others', () => {
    const { picker } = setup(3);
    const all = bf(3, () => true);
    picker.peerHas(all);
    const a1 = picker.pick('a', all, 2, none);
    expect(new Set(a1.map((b) => b.index)).size).toBe(1);
    const first = a1[0]!.index;
    // b has only the piece a started: it shares that piece's free blocks
    const onlyFirst = bf(3, (i) => i === first);
    const b = picker.pick('b', onlyFirst, 4, none);
    expect(b.map((x) => [x.index, x.block])).toEqual([
      [first, 2],
      [first, 3],
    ]);
    // a then starts another piece rather than duplicating b's blocks
    const a2 = picker.pick('a', all, 2, none);
    expect(a2.every((x) => x.index !== first)).toBe(true);
  });

  it('keeps memory under the budget, but always allows one piece', () => {
    const { picker } = setup(10, PL + 1);
    const all = bf(10, () => true);
    picker.peerHas(all);
    const got = picker.pick('a', all, 100, none);
    expect(new Set(got.map((b) => b.index)).size).toBe(1);
    expect(picker.bytesInFlight).toBe(PL);
    const tiny = setup(3, 10).picker;
    tiny.peerHas(all);
    expect(
      tiny.pick(
        'a',
        bf(3, () => true),
        100,
        none,
      ).length,
    ).toBe(4);
  });

  it('frees released blocks for other peers, and resets a failed piece', () => {
    const { picker } = setup(1);
    const all = bf(1, () => true);
    const got = picker.pick('a', all, 4, none);
    // (b's queue is full, so no endgame duplicates for it)
    expect(picker.pick('b', all, 4, none, ENDGAME_DEPTH)).toEqual([]);
    picker.release(0, 1);
    expect(picker.pick('b', all, 4, none, ENDGAME_DEPTH).map((b) => b.block)).toEqual([1]);
    for (const b of got) picker.receive(0, b.block, Buffer.alloc(b.length), 'a');
    const p = picker.inProgress.get(0)!;
    expect(p.complete).toBe(true);
    picker.failed(p);
    expect(p.receivedCount).toBe(0);
    expect(picker.pick('c', all, 4, none)).toHaveLength(4);
  });

  it('enters endgame only when nothing is free, with few duplicates per block and per peer', () => {
    const { picker } = setup(1);
    const all = bf(1, () => true);
    const a = picker.pick('a', all, 4, none);
    expect(a).toHaveLength(4);
    const aKeys = new Set(a.map((b) => b.index * BLOCKS_PER_PIECE_KEY + b.block));
    const b = picker.pick('b', all, 100, none);
    expect(b).toHaveLength(Math.min(ENDGAME_DEPTH, 4));
    // a already has them all: nothing for a; b with a full queue gets nothing more
    expect(picker.pick('a', all, 100, (k) => aKeys.has(k))).toEqual([]);
    expect(picker.pick('b', all, 100, none, ENDGAME_DEPTH)).toEqual([]);
    // a third peer: every block already has MAX_ENDGAME_REQUESTERS requesters
    expect(MAX_ENDGAME_REQUESTERS).toBe(2);
    expect(picker.pick('c', all, 100, none)).toEqual([]);
  });

  it('endgame duplicates the newest pieces and last blocks first (the back of the queues)', () => {
    const { picker } = setup(2);
    const all = bf(2, () => true);
    // a takes every block: piece 0 first, then piece 1 (the back of its queue)
    expect(picker.pick('a', all, 8, none)).toHaveLength(8);
    const dup = picker.pick('b', all, 2, none);
    expect(dup.map((b) => [b.index, b.block])).toEqual([
      [1, 3],
      [1, 2],
    ]);
  });

  it('recycles piece buffers within the budget, and one whatever the budget', () => {
    const take = (picker: PiecePicker, all: Bitfield) => {
      const got = picker.pick('a', all, 100, none);
      const p = picker.inProgress.get(got[0]!.index)!;
      const buffer = p.buffer;
      for (const b of got) {
        const r = picker.receive(b.index, b.block, Buffer.alloc(b.length, 1), 'a');
        if (r && typeof r === 'object') picker.verified(r);
      }
      picker.written(p);
      return buffer;
    };
    // A budget below one piece (before any peer is ready): one piece at a time, one buffer.
    const small = setup(4, PL / 2);
    const all = bf(4, () => true);
    small.picker.peerHas(all);
    const first = take(small.picker, all);
    expect(take(small.picker, all)).toBe(first);
    expect(take(small.picker, all)).toBe(first);
  });

  it('reports duplicates and stale blocks, and completes', () => {
    const { picker } = setup(2, 1 << 30, 100);
    const all = bf(2, () => true);
    const got = picker.pick('a', all, 100, none);
    expect(got.map((b) => b.length).at(-1)).toBe(100);
    let done = 0;
    for (const b of got) {
      const r = picker.receive(b.index, b.block, Buffer.alloc(b.length, 1), 'a');
      if (r && typeof r === 'object') {
        picker.verified(r);
        picker.written(r);
        done++;
      }
    }
    expect(done).toBe(2);
    expect(picker.isComplete()).toBe(true);
    expect(picker.receive(0, 0, Buffer.alloc(BLOCK_SIZE), 'a')).toBe('stale');
  });
});

describe('request pipeline depth', () => {
  it('grows by one per block in slow start, then follows the rate', () => {
    const p = new Pipeline(0);
    expect(p.depth).toBe(INITIAL_DEPTH);
    for (let i = 0; i < 10; i++) p.onBlock(BLOCK_SIZE);
    expect(p.depth).toBe(INITIAL_DEPTH + 10);
    p.tick(1000); // 160 KiB/s
    for (let i = 0; i < 10; i++) p.onBlock(BLOCK_SIZE);
    p.tick(2000); // no growth: slow start ends, depth = 160 KiB/s × 2 s / 16 KiB
    expect(p.slowStart).toBe(false);
    expect(p.depth).toBe(20);
  });

  it('is capped for a fast peer and floors when snubbed', () => {
    const p = new Pipeline(0);
    p.slowStart = false;
    for (let i = 0; i < 20_000; i++) p.onBlock(BLOCK_SIZE);
    p.tick(1000);
    expect(p.depth).toBe(MAX_DEPTH);
    p.snubbed();
    expect(p.depth).toBe(MIN_DEPTH);
  });

  it('sizes the queue to two seconds of data', () => {
    const p = new Pipeline(0);
    p.slowStart = false;
    for (let i = 0; i < 64; i++) p.onBlock(BLOCK_SIZE); // 1 MiB/s
    p.tick(1000);
    expect(p.depth).toBe(128);
  });

  it('holds its depth for a peer that answers in bursts a second apart', () => {
    // A peer serving the whole queue once a second (bandwidth ticks): the depth must not
    // shrink sample after sample (it did with half a second of queue).
    const p = new Pipeline(0);
    p.slowStart = false;
    p.depth = 64;
    for (let s = 1; s <= 10; s++) {
      for (let i = 0; i < p.depth; i++) p.onBlock(BLOCK_SIZE);
      p.tick(s * 1000);
    }
    expect(p.depth).toBeGreaterThanOrEqual(64);
  });
});

describe('in-flight memory budget', () => {
  it('is twice the queued bytes plus a piece per peer and four for the disk', () => {
    // four peers at 128 blocks: 2 × 8 MiB + 8 × 256 KiB
    expect(inflightBudget([128, 128, 128, 128], 256 * 1024)).toBe(
      16 * 1024 * 1024 + 2 * 1024 * 1024,
    );
  });

  it('never drops below MIN_INFLIGHT_BYTES nor passes MAX_INFLIGHT_BYTES', () => {
    expect(inflightBudget([], 16 * 1024)).toBe(MIN_INFLIGHT_BYTES);
    const many = Array.from({ length: 200 }, () => MAX_DEPTH);
    expect(inflightBudget(many, 16 * 1024 * 1024)).toBe(MAX_INFLIGHT_BYTES);
  });
});

describe('piece picker cost', () => {
  /** xorshift32: seeded, so the cost below is the same on every run. */
  function seeded(seed: number): () => number {
    let x = seed >>> 0 || 1;
    return () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) / 2 ** 32;
    };
  }

  /** Downloads every piece through `pick`, one peer after another; returns the picker. */
  function drain(pieces: number, peers: Bitfield[], budgetPieces: number) {
    const total = BLOCK_SIZE * pieces;
    const layout = new Layout([{ offset: 0, length: total }], BLOCK_SIZE, total);
    const picker = new PiecePicker(
      layout,
      new Bitfield(pieces),
      budgetPieces * BLOCK_SIZE,
      seeded(7),
    );
    for (const p of peers) picker.peerHas(p);
    const block = Buffer.alloc(BLOCK_SIZE);
    const order: number[] = [];
    for (let round = 0; !picker.isComplete(); round++) {
      expect(round).toBeLessThan(pieces * 2);
      for (let k = 0; k < peers.length; k++) {
        for (const b of picker.pick(`p${k}`, peers[k]!, 16, none)) {
          const r = picker.receive(b.index, b.block, block, `p${k}`);
          if (r && typeof r === 'object') {
            order.push(r.index);
            picker.verified(r);
            picker.written(r);
          }
        }
      }
    }
    return { picker, order };
  }

  it('picks each of 32,768 pieces from seeders in O(1) steps, not O(pieces)', () => {
    const n = 32_768;
    const seeder = bf(n, () => true);
    const { picker, order } = drain(n, [seeder, seeder, seeder], 64);
    expect(order).toHaveLength(n);
    expect(new Set(order).size).toBe(n);
    // one look at the bucket and one at the block per piece, plus a little per pick call; a scan
    // of all pieces per new piece would be n * n / 2 = 5e8 steps
    expect(picker.steps).toBeLessThan(4 * n);
    // random among equals: the first pieces are spread over the torrent, not 0, 1, 2...
    const first = order.slice(0, 64);
    expect(Math.max(...first) - Math.min(...first)).toBeGreaterThan(n / 2);
  });

  it('does not rescan a full budget of started pieces on every pick', () => {
    const n = 32_768;
    const total = BLOCK_SIZE * n;
    const layout = new Layout([{ offset: 0, length: total }], BLOCK_SIZE, total);
    // room for 4,096 pieces in flight, all requested from one peer
    const picker = new PiecePicker(layout, new Bitfield(n), 4096 * BLOCK_SIZE, seeded(3));
    const seeder = bf(n, () => true);
    picker.peerHas(seeder);
    expect(picker.pick('a', seeder, 4096, none)).toHaveLength(4096);
    const before = picker.steps;
    for (let k = 0; k < 1000; k++) {
      expect(picker.pick('a', seeder, 16, none, ENDGAME_DEPTH)).toEqual([]);
      expect(picker.pick('b', seeder, 16, none, ENDGAME_DEPTH)).toEqual([]);
    }
    // nothing free and no room: each pick looks at (next to) nothing, not at 4,096 pieces
    expect(picker.steps - before).toBeLessThan(2000);
  });

  it('still picks rarest first with partial peers, at a cost bounded by the rarer pieces', () => {
    const n = 4096;
    // a has the first half, b everything: the first half is commoner (2) than the second (1)
    const a = bf(n, (i) => i < n / 2);
    const b = bf(n, () => true);
    const { picker, order } = drain(n, [a, b], 8);
    expect(new Set(order).size).toBe(n);
    // b alone picks the second half (its rarest), a the first half
    const bFirst = order.slice(0, 16).filter((i) => i >= n / 2);
    expect(bFirst.length).toBeGreaterThanOrEqual(8);
    // a looks past the rare half it lacks on each pick (about n*n/8 steps here): a partial peer
    // costs the missing pieces rarer than its rarest, a seeder O(1)
    expect(picker.steps).toBeLessThan((n * n) / 4);
  });
});

describe('piece picker: sharing a seed', () => {
  const all = (n: number) => bf(n, () => true);

  it('starts the preferred pieces of the rarest first, and may take one other when not strict', () => {
    const { picker } = setup(16);
    picker.peerHas(all(16));
    const prefer = (i: number) => i % 4 === 1;
    const got = new Set(
      picker.pick('seed', all(16), 8, none, 0, true, undefined, { prefer }).map((b) => b.index),
    );
    expect(got.size).toBe(2);
    expect([...got].every(prefer)).toBe(true);
    // Strict: only preferred pieces, however many blocks are wanted.
    const more = picker.pick('seed', all(16), 100, none, 8, true, undefined, {
      prefer,
      strict: true,
    });
    expect(new Set([...got, ...more.map((b) => b.index)])).toEqual(new Set([1, 5, 9, 13]));
    // Its share used up: not strict, it takes one piece of another's share, and only one.
    const other = picker.pick('seed', all(16), 100, none, 0, true, undefined, { prefer });
    expect(new Set(other.map((b) => b.index)).size).toBe(1);
    expect(prefer(other[0]!.index)).toBe(false);
    expect(
      picker.pick('seed', all(16), 100, none, 4, true, undefined, { prefer, strict: true }),
    ).toEqual([]);
  });

  it('passes over at most MAX_PREFER_SCAN pieces looking for a preferred one', () => {
    const n = 4 * MAX_PREFER_SCAN;
    const { picker } = setup(n);
    picker.peerHas(all(n));
    const before = picker.steps;
    const got = picker.pick('seed', all(n), 4, none, 0, true, undefined, { prefer: () => false });
    expect(got).toHaveLength(4);
    expect(picker.steps - before).toBeLessThan(MAX_PREFER_SCAN + 16);
  });

  it('leaves pieces a partial peer has too to it, never those only the seed has', () => {
    const { picker } = setup(8);
    picker.peerHas(all(8)); // the seed
    const partial = bf(8, (i) => i < 6);
    picker.peerHas(partial); // a partial peer has 0-5
    const avoid = (i: number) => partial.has(i);
    const got = picker.pick('seed', all(8), 100, none, 0, true, undefined, { avoid });
    expect(new Set(got.map((b) => b.index))).toEqual(new Set([6, 7]));
    // Nothing else for the seed: the rest is the partial peer's, free blocks included.
    picker.pick('partial', partial, 2, none);
    expect(picker.pick('seed', all(8), 100, none, 8, true, undefined, { avoid })).toEqual([]);
    // Without the rule the seed helps.
    expect(picker.pick('seed', all(8), 100, none, 8).length).toBeGreaterThan(0);
  });

  it('gives up after MAX_AVOIDED avoided pieces', () => {
    const n = 4 * MAX_AVOIDED;
    const { picker } = setup(n);
    picker.peerHas(all(n));
    picker.peerHas(all(n));
    const before = picker.steps;
    expect(picker.pick('seed', all(n), 4, none, 0, true, undefined, { avoid: () => true })).toEqual(
      [],
    );
    expect(picker.steps - before).toBeLessThanOrEqual(MAX_AVOIDED + 8);
  });

  it('hands a piece in progress over to another peer', () => {
    const { picker } = setup(4);
    picker.peerHas(all(4));
    const got = picker.pick(
      'seed',
      bf(4, (i) => i === 2),
      2,
      none,
    );
    expect(got).toHaveLength(2);
    expect(picker.handOver(2, 'partial')).toBe(true);
    expect(picker.inProgress.get(2)!.owner).toBe('partial');
    // Its free blocks go to the new owner first; not a piece that is not in progress.
    const next = picker.pick(
      'partial',
      bf(4, (i) => i === 2),
      4,
      none,
    );
    expect(next.map((b) => b.block)).toEqual([2, 3]);
    expect(picker.handOver(3, 'partial')).toBe(false);
    expect(picker.handOver(2, 'partial')).toBe(false);
  });
});

describe('rendezvous', () => {
  it('agrees whatever the order of the keys, and splits pieces about evenly', () => {
    const keys = [
      peerIdKey(Buffer.from('-TD0100-aaaaaaaaaaaa')),
      peerIdKey(Buffer.from('-TD0100-bbbbbbbbbbbb')),
      peerIdKey(Buffer.from('-TD0100-cccccccccccc')),
      peerIdKey(Buffer.from('-TD0100-dddddddddddd')),
    ];
    const reversed = [...keys].reverse();
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) {
      const k = rendezvous(keys, i);
      counts[k]!++;
      expect(reversed[rendezvous(reversed, i)]).toBe(keys[k]);
    }
    for (const c of counts) expect(c).toBeGreaterThan(800);
    expect(rendezvous([], 3)).toBe(-1);
  });

  it('moves only the pieces of a key that goes', () => {
    const keys = [11, 22, 33, 44].map((x) => peerIdKey(Buffer.from([x])));
    const without = keys.slice(0, 3);
    for (let i = 0; i < 1000; i++) {
      const k = rendezvous(keys, i);
      if (k < 3) expect(rendezvous(without, i)).toBe(k);
    }
  });
});
