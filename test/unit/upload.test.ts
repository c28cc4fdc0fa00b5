import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { PeerConnection } from '../../src/peer/connection.js';
import { Layout } from '../../src/storage/layout.js';
import { allowedFastSet } from '../../src/wire/allowed-fast.js';
import {
  ALLOWED_FAST_PIECES,
  CACHE_BYTES,
  HIGH_WATER,
  MAX_PENDING_BYTES,
  MAX_QUEUE,
  MAX_READ_BYTES,
  MAX_VIEW_BYTES,
  READ_AHEAD_BYTES,
  STUCK_MS,
  UploadService,
  WHOLE_PIECE_READ,
  type BlockSource,
} from '../../src/swarm/upload.js';
import { Bitfield } from '../../src/wire/bitfield.js';

const BLOCK = 16384;
const PIECE = 256 * 1024;
const PIECES = 200;

/** The parts of a connection the upload service uses; records what it sends. */
class FakeConn extends EventEmitter {
  address: string;
  state = 'open';
  amChoking = false;
  fast = true;
  writeQueued = 0;
  host = '127.0.0.1';
  bitfield = new Bitfield(PIECES);
  offeredFast: number[] = [];
  sent: { index: number; begin: number; length: number }[] = [];
  rejected: { index: number; begin: number }[] = [];
  /** Blocks its socket holds (it never writes them out unless `flush`). */
  held: { data: Buffer; released?: () => void }[] = [];
  constructor(address = '127.0.0.1:1') {
    super();
    this.address = address;
  }
  sendPiece(index: number, begin: number, data: Buffer, released?: () => void): void {
    for (let k = 0; k < data.length; k++) {
      if (data[k] !== ((index + begin + k) & 0xff))
        throw new Error(`wrong bytes at ${index}/${begin}`);
    }
    this.sent.push({ index, begin, length: data.length });
    this.held.push({ data, released });
  }
  /** The socket writes out what it holds. */
  flush(): void {
    for (const h of this.held.splice(0)) h.released?.();
  }
  /** Bytes of the buffers that the blocks it holds keep alive. */
  get heldBytes(): number {
    const buffers = new Set(this.held.map((h) => h.data.buffer));
    let n = 0;
    for (const b of buffers) n += b.byteLength;
    return n;
  }
  reject(index: number, begin: number): void {
    this.rejected.push({ index, begin });
  }
  allowedFast(index: number): void {
    this.offeredFast.push(index);
  }
  close(): void {
    this.state = 'closed';
  }
}

/** A block source whose reads finish when the test says so. */
class SlowSource implements BlockSource {
  pending: { index: number; length: number; resolve: () => void }[] = [];
  reads = 0;
  /** Every read asked for: piece, offset, length. */
  log: [number, number, number][] = [];
  /** Byte k of piece i reads as (i + k) & 0xff: a block sent from the wrong place shows. */
  readBlock(index: number, begin: number, length: number): Promise<Buffer> {
    this.reads++;
    this.log.push([index, begin, length]);
    return new Promise((resolve) => {
      const data = Buffer.alloc(length);
      for (let k = 0; k < length; k++) data[k] = (index + begin + k) & 0xff;
      this.pending.push({ index, length, resolve: () => resolve(data) });
    });
  }
  /** Finish every read under way. */
  async finishAll(): Promise<void> {
    const p = this.pending;
    this.pending = [];
    for (const r of p) r.resolve();
    await new Promise((r) => setImmediate(r));
  }
  get inFlightBytes(): number {
    return this.pending.reduce((n, r) => n + r.length, 0);
  }
}

function setup(pieceLength = PIECE, pieces = PIECES) {
  const layout = new Layout(
    [{ offset: 0, length: pieceLength * pieces }],
    pieceLength,
    pieceLength * pieces,
  );
  const have = new Bitfield(layout.pieceCount);
  have.setAll();
  const source = new SlowSource();
  const upload = new UploadService(layout, have, source);
  const add = (address?: string) => {
    const c = new FakeConn(address);
    upload.add(c as unknown as PeerConnection);
    return c;
  };
  return { upload, source, add, have };
}

/** Requests every block of these pieces, in order. */
function requestPieces(c: FakeConn, pieces: number[], pieceLength = PIECE): void {
  for (const p of pieces)
    for (let b = 0; b < pieceLength; b += BLOCK) c.emit('request', p, b, BLOCK);
}

describe('UploadService.capTotal (--seed-ratio)', () => {
  it('sends up to the cap, calls back once the block that meets it is written, then sends nothing', async () => {
    const { upload, source, add } = setup();
    const c = add();
    const reached = vi.fn();
    upload.capTotal(5 * BLOCK, reached);
    requestPieces(c, [1]);
    await source.finishAll();
    // Every read of the piece finished together: the blocks after the fifth are not sent.
    expect(c.sent.length).toBe(5);
    expect(upload.uploaded).toBe(5 * BLOCK);
    // Called once the socket has written that block out: closing then cuts nothing off.
    expect(reached).not.toHaveBeenCalled();
    c.flush();
    expect(reached).toHaveBeenCalledTimes(1);
    requestPieces(c, [2]);
    await source.finishAll();
    expect(c.sent.length).toBe(5);
    expect(reached).toHaveBeenCalledTimes(1);
  });

  it('a cap already met calls back at once', async () => {
    const { upload, source, add } = setup();
    const c = add();
    requestPieces(c, [3]);
    await source.finishAll();
    const reached = vi.fn();
    upload.capTotal(BLOCK, reached);
    await Promise.resolve();
    expect(reached).toHaveBeenCalledTimes(1);
  });
});

describe('UploadService read-ahead', () => {
  it('starts the reads of several queued pieces at once, not one after another', async () => {
    const { source, add } = setup();
    const c = add();
    requestPieces(c, [5, 9, 2, 40]);
    // One whole-piece read per piece, all four under way before any finished.
    expect(source.pending.map((r) => r.index)).toEqual([5, 9, 2, 40]);
    await source.finishAll();
    expect(c.sent.length).toBe(4 * (PIECE / BLOCK));
    expect(source.reads).toBe(4);
  });

  it("keeps one peer's reads under READ_AHEAD_BYTES, and goes on as they finish", async () => {
    const { source, add } = setup();
    const c = add();
    // One block per piece: each needs a whole-piece read of its own.
    const n = (2 * READ_AHEAD_BYTES) / PIECE;
    for (let i = 0; i < n; i++) c.emit('request', i, 0, BLOCK);
    expect(source.inFlightBytes).toBe(READ_AHEAD_BYTES);
    await source.finishAll();
    expect(source.inFlightBytes).toBe(READ_AHEAD_BYTES);
    await source.finishAll();
    expect(c.sent.length).toBe(n);
  });

  it('keeps all peers together under MAX_READ_BYTES', async () => {
    const { source, add } = setup();
    const peers = Math.ceil(MAX_READ_BYTES / READ_AHEAD_BYTES) + 2;
    const per = READ_AHEAD_BYTES / PIECE;
    const conns = Array.from({ length: peers }, (_, i) => add(`127.0.0.1:${i + 1}`));
    // Each asks for pieces of its own (the queue holds 250 requests: 15 pieces).
    conns.forEach((c, i) =>
      requestPieces(
        c,
        Array.from({ length: Math.min(per, 15) }, (_, k) => (i * per + k) % PIECES),
      ),
    );
    // A peer with no read under way may always start one, so the bound is one piece more each.
    expect(source.inFlightBytes).toBeLessThanOrEqual(MAX_READ_BYTES + peers * PIECE);
    expect(source.inFlightBytes).toBeGreaterThan(MAX_READ_BYTES - READ_AHEAD_BYTES);
    for (let i = 0; i < 20 && source.pending.length > 0; i++) await source.finishAll();
    expect(source.pending.length).toBe(0);
    for (const c of conns) expect(c.sent.length).toBe(Math.min(per, 15) * (PIECE / BLOCK));
  });

  it('a peer whose socket is full gets nothing more until it drains', async () => {
    const { source, add } = setup();
    const c = add();
    c.writeQueued = 10 * 1024 * 1024;
    requestPieces(c, [1]);
    expect(source.pending.length).toBe(0);
    c.writeQueued = 0;
    c.emit('writable');
    expect(source.pending.length).toBe(1);
    await source.finishAll();
    expect(c.sent.length).toBe(PIECE / BLOCK);
  });

  it('takes at most MAX_PENDING_BYTES of blocks from a queue while their reads are under way', async () => {
    const { upload, source, add } = setup();
    // Two other peers start the reads of pieces 0-31 (all in the read cache), so that the blocks
    // a third peer asks of them cost it no read of its own: only the pending cap stops it
    // taking them all out of its queue.
    const per = READ_AHEAD_BYTES / PIECE;
    expect(2 * READ_AHEAD_BYTES).toBeLessThanOrEqual(CACHE_BYTES);
    for (let k = 0; k < 2; k++) {
      const o = add(`127.0.0.1:${k + 10}`);
      for (let i = 0; i < per; i++) o.emit('request', per * k + i, 0, BLOCK);
    }
    const reads = source.reads;
    const c = add();
    requestPieces(
      c,
      Array.from({ length: 2 * per }, (_, i) => i),
    );
    expect(source.reads).toBe(reads);
    expect(2 * READ_AHEAD_BYTES).toBeGreaterThan(MAX_PENDING_BYTES);
    expect(upload.pendingBytes(c as unknown as PeerConnection)).toBe(MAX_PENDING_BYTES);
    // The rest waits in its queue (not refused: it is under MAX_QUEUE) and goes out as reads end.
    expect(c.rejected.length).toBe(0);
    expect((2 * READ_AHEAD_BYTES) / BLOCK).toBeLessThanOrEqual(
      MAX_QUEUE + MAX_PENDING_BYTES / BLOCK,
    );
    for (let i = 0; i < 4; i++) await source.finishAll();
    expect(c.sent.length).toBe((2 * READ_AHEAD_BYTES) / BLOCK);
  });

  it('reads a piece over WHOLE_PIECE_READ in aligned stretches of that size, each once', async () => {
    // 4 MiB pieces, the last one 1.5 MiB + 1 block.
    const big = 4 * 1024 * 1024;
    const lastSize = WHOLE_PIECE_READ + WHOLE_PIECE_READ / 2 + BLOCK;
    const layout = new Layout([{ offset: 0, length: 3 * big + lastSize }], big, 3 * big + lastSize);
    const have = new Bitfield(layout.pieceCount);
    have.setAll();
    const source = new SlowSource();
    const upload = new UploadService(layout, have, source);
    const c = new FakeConn();
    upload.add(c as unknown as PeerConnection);
    // Every block of piece 1, in order: four reads of 1 MiB, not 256 of a block.
    requestPieces(c, [1], big);
    for (let i = 0; i < 8 && source.pending.length > 0; i++) await source.finishAll();
    expect(c.sent.length).toBe(big / BLOCK);
    expect(source.log).toEqual(
      [0, 1, 2, 3].map((n) => [1, n * WHOLE_PIECE_READ, WHOLE_PIECE_READ]),
    );
    // The last piece's last stretch is shorter; a block across two stretches is read alone.
    source.log = [];
    c.emit('request', 3, lastSize - BLOCK, BLOCK);
    c.emit('request', 3, WHOLE_PIECE_READ - 100, BLOCK);
    c.emit('request', 3, WHOLE_PIECE_READ + BLOCK, BLOCK);
    for (let i = 0; i < 4 && source.pending.length > 0; i++) await source.finishAll();
    expect(source.log).toEqual([
      [3, WHOLE_PIECE_READ, lastSize - WHOLE_PIECE_READ],
      [3, WHOLE_PIECE_READ - 100, BLOCK],
    ]);
    // Each from its own place (sendPiece checks the bytes); answers need not keep the order.
    const begins = (xs: { begin: number }[]) => xs.map((x) => x.begin).sort((a, b) => a - b);
    expect(begins(c.sent.slice(-3))).toEqual(
      begins([
        { begin: lastSize - BLOCK },
        { begin: WHOLE_PIECE_READ - 100 },
        { begin: WHOLE_PIECE_READ + BLOCK },
      ]),
    );
  });

  it('a request shorter than a block reads its bytes alone unless its stretch is cached', async () => {
    const { source, add } = setup();
    const c = add();
    // A byte of each of 20 pieces: 20 reads of a byte, not 20 whole pieces.
    for (let i = 0; i < 20; i++) c.emit('request', i, 0, 1);
    while (source.pending.length > 0) await source.finishAll();
    expect(source.log).toEqual(Array.from({ length: 20 }, (_, i) => [i, 0, 1]));
    // A piece asked block by block is read once, its short last request cut from it.
    requestPieces(c, [30]);
    c.emit('request', 30, PIECE - 100, 100);
    while (source.pending.length > 0) await source.finishAll();
    expect(source.log.slice(20)).toEqual([[30, 0, PIECE]]);
    expect(c.sent.length).toBe(20 + PIECE / BLOCK + 1);
  });

  it('the blocks a socket holds keep at most MAX_VIEW_BYTES of read buffers alive', async () => {
    const { source, add } = setup();
    const c = add();
    // The first block of each of 100 pieces (each read whole), and the socket writes nothing out.
    for (let i = 0; i < 100; i++) c.emit('request', i, 0, BLOCK);
    while (source.pending.length > 0) await source.finishAll();
    expect(c.sent.length).toBe(100);
    expect(100 * PIECE).toBeGreaterThan(2 * MAX_VIEW_BYTES);
    // Views of at most MAX_VIEW_BYTES of pieces, and copies of a block.
    expect(c.heldBytes).toBeLessThanOrEqual(MAX_VIEW_BYTES + 100 * BLOCK);
    // Written out, they hold nothing: the next blocks go as views again.
    c.flush();
    c.emit('request', 100, 0, BLOCK);
    c.emit('request', 100, BLOCK, BLOCK);
    await source.finishAll();
    expect(c.held.map((h) => h.data.buffer.byteLength)).toEqual([PIECE, PIECE]);
  });

  it('blocks whose read finishes after we choked a fast peer are rejected, not dropped', async () => {
    const { upload, source, add } = setup();
    const c = add();
    requestPieces(c, [3]);
    c.amChoking = true;
    upload.choked(c as unknown as PeerConnection);
    await source.finishAll();
    expect(c.sent.length).toBe(0);
    expect(c.rejected.length).toBe(PIECE / BLOCK);
  });
});

describe('UploadService: a peer whose socket stays full', () => {
  afterEach(() => vi.useRealTimers());

  it('is dropped after STUCK_MS only if its socket never went below HIGH_WATER meanwhile', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { upload, source, add } = setup();
    const slow = add('127.0.0.1:2');
    const stuck = add('127.0.0.1:3');
    for (const c of [slow, stuck]) {
      c.writeQueued = HIGH_WATER;
      // More than it may have in its socket and being read: some stays queued throughout.
      requestPieces(
        c,
        Array.from({ length: 40 }, (_, i) => i),
      );
    }
    expect(source.pending.length).toBe(0);
    // The slow peer reads part of its backlog (the socket takes it, without emptying: no
    // 'writable'), gets more blocks, and is full again. The other never reads a byte.
    vi.advanceTimersByTime(STUCK_MS / 2);
    slow.writeQueued = HIGH_WATER / 2;
    upload.tick(Date.now());
    await source.finishAll();
    expect(slow.sent.length).toBeGreaterThan(0);
    slow.writeQueued = HIGH_WATER;
    vi.advanceTimersByTime(STUCK_MS / 2 + 1000);
    upload.tick(Date.now());
    expect(stuck.state).toBe('closed');
    expect(slow.state).toBe('open');
    // Full ever since then: dropped STUCK_MS after that.
    vi.advanceTimersByTime(STUCK_MS + 1000);
    upload.tick(Date.now());
    expect(slow.state).toBe('closed');
  });

  it('a slow reader whose socket shrinks a batch at a time, never below HIGH_WATER, is kept', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { upload, add } = setup();
    const slow = add('127.0.0.1:2');
    // The reads in flight landed: 4 MiB in its socket, which it reads 1 MiB a batch, a batch
    // every 40 s (26 KiB/s): never below HIGH_WATER for more than STUCK_MS.
    slow.writeQueued = 4 * 1024 * 1024;
    requestPieces(
      slow,
      Array.from({ length: 40 }, (_, i) => i),
    );
    upload.tick(Date.now());
    for (let left = 3; left >= 1; left--) {
      vi.advanceTimersByTime(40_000);
      slow.writeQueued = left * 1024 * 1024;
      upload.tick(Date.now());
      expect(slow.state).toBe('open');
    }
    // Grown again (more reads landed) is no progress: it stops reading and is dropped.
    slow.writeQueued = 2 * 1024 * 1024;
    upload.tick(Date.now());
    vi.advanceTimersByTime(STUCK_MS / 2);
    upload.tick(Date.now());
    expect(slow.state).toBe('open');
    vi.advanceTimersByTime(STUCK_MS / 2 + 1000);
    upload.tick(Date.now());
    expect(slow.state).toBe('closed');
  });
});

describe('UploadService allowed fast (BEP 6)', () => {
  const infoHash = Buffer.alloc(20, 0xaa);
  const set = allowedFastSet('127.0.0.1', infoHash, PIECES, ALLOWED_FAST_PIECES);

  it('offers the pieces of the set we have, the others as they verify, none the peer has', async () => {
    const { upload, source, add, have } = setup();
    for (const i of set) have.clear(i);
    have.set(set[0]!);
    const c = add();
    c.bitfield.set(set[1]!);
    c.amChoking = true;
    upload.grantAllowedFast(c as unknown as PeerConnection, infoHash);
    expect(c.offeredFast).toEqual([set[0]]);

    // Verified later: offered then, unless the peer has it; other pieces never.
    for (const i of [set[1]!, set[2]!]) {
      have.set(i);
      upload.pieceVerified(i);
    }
    const outside = [...Array(PIECES).keys()].find((i) => !set.includes(i))!;
    upload.pieceVerified(outside);
    expect(c.offeredFast).toEqual([set[0], set[2]]);

    // Choked: the offered pieces are served, another piece of the set is refused.
    c.emit('request', set[0], 0, BLOCK);
    c.emit('request', set[2], 0, BLOCK);
    c.emit('request', set[1], 0, BLOCK);
    await source.finishAll();
    expect(c.sent.map((b) => b.index)).toEqual([set[0], set[2]]);
    expect(c.rejected).toEqual([{ index: set[1], begin: 0 }]);
  });

  it('offers nothing to a seed, to a peer without the fast extension, or on a tiny torrent', () => {
    const { upload, add } = setup();
    const seed = add('127.0.0.1:2');
    seed.bitfield.setAll();
    const slow = add('127.0.0.1:3');
    slow.fast = false;
    for (const c of [seed, slow]) upload.grantAllowedFast(c as unknown as PeerConnection, infoHash);
    upload.pieceVerified(set[0]!);
    expect([seed.offeredFast, slow.offeredFast]).toEqual([[], []]);

    // Three pieces: a quarter of them is none.
    const tiny = setup(PIECE, 3);
    const c = tiny.add();
    tiny.upload.grantAllowedFast(c as unknown as PeerConnection, infoHash);
    expect(c.offeredFast).toEqual([]);
  });
});
