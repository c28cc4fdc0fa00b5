/**
 * The upload limit's tokens, shared in turn: peers waiting for them take one block each, first
 * come first served, whichever connected first and whoever's reads finish first. Fake timers
 * (they fake performance.now too, the token bucket's clock) make it exact.
 */
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PeerConnection } from '../../src/peer/connection.js';
import { Layout } from '../../src/storage/layout.js';
import { UploadService, type BlockSource } from '../../src/swarm/upload.js';
import { Bitfield } from '../../src/wire/bitfield.js';

const BLOCK = 16384;
const PIECE = 256 * 1024;
const PIECES = 64;
const RATE = 64 * 1024;

/** The parts of a connection the upload service uses; counts the blocks sent. */
class FakeConn extends EventEmitter {
  state = 'open';
  amChoking = false;
  fast = true;
  writeQueued = 0;
  sent = 0;
  constructor(readonly address: string) {
    super();
  }
  sendPiece(): void {
    this.sent++;
  }
  reject(): void {}
  close(): void {
    this.state = 'closed';
  }
}

/** Reads that finish at once. */
const source: BlockSource = {
  readBlock: (index, begin, length) => Promise.resolve(Buffer.alloc(length)),
};

function setup(rate = RATE) {
  const layout = new Layout([{ offset: 0, length: PIECE * PIECES }], PIECE, PIECE * PIECES);
  const have = new Bitfield(layout.pieceCount);
  have.setAll();
  const upload = new UploadService(layout, have, source, rate);
  const add = (address: string) => {
    const c = new FakeConn(address);
    upload.add(c as unknown as PeerConnection);
    return c;
  };
  return { upload, add };
}

/** `n` block requests, through the pieces in turn. */
function ask(c: FakeConn, n: number, from = 0): void {
  for (let i = from; i < from + n; i++) {
    const at = (i * BLOCK) % (PIECE * PIECES);
    c.emit('request', Math.floor(at / PIECE), at % PIECE, BLOCK);
  }
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('UploadService: the upload limit shared in turn', () => {
  it('three peers asking all the time get a block each in turn', async () => {
    const { upload, add } = setup();
    const cs = ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'].map(add);
    for (const c of cs) ask(c, 500);
    await vi.advanceTimersByTimeAsync(10_000);
    const sent = cs.map((c) => c.sent);
    const total = sent.reduce((a, b) => a + b, 0);
    // 10 s at 4 blocks a second (the bucket starts empty).
    expect(total).toBeGreaterThanOrEqual(39);
    expect(total).toBeLessThanOrEqual(40);
    for (const n of sent)
      expect(Math.abs(n - total / 3), `${sent.join(', ')}`).toBeLessThanOrEqual(1);
    upload.close();
  });

  it('a peer that comes later is served at once, in turn with the others', async () => {
    const { upload, add } = setup();
    const a = add('127.0.0.1:1');
    ask(a, 500);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(a.sent).toBeGreaterThanOrEqual(19);
    const b = add('127.0.0.1:2');
    ask(b, 500);
    const [a0, b0] = [a.sent, b.sent];
    await vi.advanceTimersByTimeAsync(5_000);
    expect(Math.abs(a.sent - a0 - (b.sent - b0))).toBeLessThanOrEqual(1);
    expect(b.sent).toBeGreaterThanOrEqual(9);
    upload.close();
  });

  it('a peer whose socket is full leaves the line, and the others share its tokens', async () => {
    const { upload, add } = setup();
    const [a, b, c] = ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'].map(add) as [
      FakeConn,
      FakeConn,
      FakeConn,
    ];
    for (const x of [a, b, c]) ask(x, 500);
    await vi.advanceTimersByTimeAsync(3_000);
    a.writeQueued = 10 * 1024 * 1024;
    const [a0, b0, c0] = [a.sent, b.sent, c.sent];
    await vi.advanceTimersByTimeAsync(6_000);
    // At most the block it was granted before its socket filled.
    expect(a.sent - a0).toBeLessThanOrEqual(1);
    const [db, dc] = [b.sent - b0, c.sent - c0];
    expect(db + dc).toBeGreaterThanOrEqual(22);
    expect(Math.abs(db - dc)).toBeLessThanOrEqual(1);
    // Drained, it is back in the line.
    a.writeQueued = 0;
    a.emit('writable');
    const a1 = a.sent;
    await vi.advanceTimersByTimeAsync(3_000);
    expect(a.sent - a1).toBeGreaterThanOrEqual(3);
    upload.close();
  });

  it('without a limit nobody waits: every request is served at once', async () => {
    const { upload, add } = setup(0);
    const cs = ['127.0.0.1:1', '127.0.0.1:2'].map(add);
    for (const c of cs) ask(c, 20);
    await vi.advanceTimersByTimeAsync(0);
    expect(cs.map((c) => c.sent)).toEqual([20, 20]);
    upload.close();
  });
});
