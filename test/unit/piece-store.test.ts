import { describe, expect, it } from 'vitest';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { WriteCancelled } from '../../src/storage/piece-writes.js';
import { PieceStore, type PieceSink } from '../../src/swarm/piece-store.js';
import { PieceInProgress } from '../../src/swarm/picker.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const PL = 32 * 1024;

function setup() {
  const data = randomBytesSeeded(3 * PL, 'piece-store');
  const t = makeTorrent({ name: 'a.bin', pieceLength: PL, files: { data } });
  const meta = parseTorrent(t.torrent);
  const piece = (i: number, bad = false) => {
    const buf = Buffer.from(t.pieces[i]!);
    if (bad) buf[0]! ^= 1;
    return new PieceInProgress(i, buf.length, 'a', buf);
  };
  return { meta, piece };
}

/** A sink whose writes end when the test says so. */
function slowSink() {
  const pending: { index: number; data: Buffer; done: () => void; fail: (e: Error) => void }[] = [];
  const sink: PieceSink = {
    writePiece: (index, data) =>
      new Promise<void>((done, fail) => pending.push({ index, data, done, fail })),
  };
  return { sink, pending };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('PieceStore', () => {
  it('verifies, writes, then releases the buffer just before `written`', async () => {
    const { meta, piece } = setup();
    const { sink, pending } = slowSink();
    const store = new PieceStore(meta, sink);
    const events: string[] = [];
    store.on('verified', (p) => events.push(`verified ${p.index}`));
    store.on('released', (p, late) => events.push(`released ${p.index} ${late}`));
    store.on('written', (p) => events.push(`written ${p.index}`));
    expect(store.complete(piece(1))).toBe(true);
    expect(store.unwritten).toBe(PL);
    expect(pending).toHaveLength(1);
    pending[0]!.done();
    await store.flush();
    expect(events).toEqual(['verified 1', 'released 1 false', 'written 1']);
    expect(store.unwritten).toBe(0);
  });

  it('a bad piece is neither written nor tapped', () => {
    const { meta, piece } = setup();
    const { sink, pending } = slowSink();
    const tapped: number[] = [];
    const store = new PieceStore(meta, sink, (i) => (tapped.push(i), null));
    const failed: number[] = [];
    store.on('failed', (p) => failed.push(p.index));
    expect(store.complete(piece(0, true))).toBe(false);
    expect(failed).toEqual([0]);
    expect(pending).toHaveLength(0);
    expect(tapped).toEqual([]);
  });

  it('a tap sees the same buffer; it is released once the disk and the tap are done', async () => {
    const { meta, piece } = setup();
    const { sink, pending } = slowSink();
    let endTap = () => {};
    const seen: { index: number; data: Buffer; room: number }[] = [];
    const store = new PieceStore(
      meta,
      sink,
      (index, data, room) => {
        seen.push({ index, data, room });
        return new Promise<void>((r) => (endTap = r));
      },
      () => 12345,
    );
    const released: [number, boolean][] = [];
    const written: number[] = [];
    store.on('released', (p, late) => released.push([p.index, late]));
    store.on('written', (p) => written.push(p.index));
    const p = piece(2);
    store.complete(p);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.data).toBe(p.buffer);
    expect(seen[0]!.room).toBe(12345);
    // The disk first: written, not released (the tap still reads the buffer).
    pending[0]!.done();
    await store.flush();
    expect(written).toEqual([2]);
    expect(released).toEqual([]);
    endTap();
    await tick();
    expect(released).toEqual([[2, true]]);

    // The tap first: released when the disk write ends, before `written`.
    const order: string[] = [];
    store.on('released', () => order.push('released'));
    store.on('written', () => order.push('written'));
    store.complete(piece(0));
    endTap();
    await tick();
    expect(order).toEqual([]);
    pending[1]!.done();
    await store.flush();
    expect(order).toEqual(['released', 'written']);
  });

  it('a tap that does not keep the piece (null) changes nothing', async () => {
    const { meta, piece } = setup();
    const { sink, pending } = slowSink();
    const store = new PieceStore(meta, sink, () => null);
    const events: string[] = [];
    store.on('released', (p, late) => events.push(`released ${late}`));
    store.on('written', () => events.push('written'));
    store.complete(piece(0));
    pending[0]!.done();
    await store.flush();
    expect(events).toEqual(['released false', 'written']);
  });

  it('a failed write is an error, and the buffer is never released', async () => {
    const { meta, piece } = setup();
    const { sink, pending } = slowSink();
    const store = new PieceStore(meta, sink);
    const errors: Error[] = [];
    let released = 0;
    store.on('error', (e) => errors.push(e));
    store.on('released', () => released++);
    store.complete(piece(0));
    pending[0]!.fail(new Error('disk full'));
    await store.flush();
    expect(errors.map((e) => e.message)).toEqual(['disk full']);
    expect(released).toBe(0);
    expect(store.unwritten).toBe(0);
  });
  it('a write dropped by a run that stops is neither an error nor written', async () => {
    const { meta, piece } = setup();
    const { sink, pending } = slowSink();
    sink.cancelQueuedWrites = () => {
      for (const w of pending.splice(1)) w.fail(new WriteCancelled(w.index));
      return 0;
    };
    const store = new PieceStore(meta, sink);
    const seen: string[] = [];
    store.on('error', (e) => seen.push(`error ${e.message}`));
    store.on('written', (p) => seen.push(`written ${p.index}`));
    store.complete(piece(0));
    store.complete(piece(1));
    store.complete(piece(2));
    store.cancelQueued();
    pending[0]!.done();
    await store.flush();
    expect(seen).toEqual(['written 0']);
    expect(store.unwritten).toBe(0);
    expect(store.readVerified(1, 0, 1)).toBeNull();
  });

  it('serves a verified piece from memory, as a copy, until its buffer is released', async () => {
    const { meta, piece } = setup();
    const { sink, pending } = slowSink();
    let endTap!: () => void;
    const store = new PieceStore(meta, sink, () => new Promise<void>((r) => (endTap = r)));
    const bad = piece(0, true);
    expect(store.complete(bad)).toBe(false);
    expect(store.readVerified(0, 0, 16)).toBeNull(); // never a piece that failed
    const p = piece(1);
    const expected = Buffer.from(p.buffer);
    let atVerified: Buffer | null = null;
    store.on('verified', () => (atVerified = store.readVerified(1, 100, 16)));
    expect(store.complete(p)).toBe(true);
    expect(atVerified).toEqual(expected.subarray(100, 116));
    const got = store.readVerified(1, 0, PL)!;
    expect(got).toEqual(expected);
    p.buffer.fill(0); // the pool reusing the buffer does not change what was handed out
    expect(got).toEqual(expected);
    expect(store.readVerified(1, PL - 8, 16)).toBeNull(); // out of range
    expect(store.readVerified(2, 0, 16)).toBeNull(); // not verified
    // Written, but the tap still reads it: still held, still served from memory.
    pending[0]!.done();
    await tick();
    expect(store.readVerified(1, 0, 4)).not.toBeNull();
    endTap();
    await tick();
    expect(store.readVerified(1, 0, 4)).toBeNull(); // released: from disk now
  });

  it('forgets the buffer of a piece whose write failed', async () => {
    const { meta, piece } = setup();
    const { sink, pending } = slowSink();
    const store = new PieceStore(meta, sink);
    store.on('error', () => {});
    store.complete(piece(2));
    expect(store.readVerified(2, 0, 4)).not.toBeNull();
    pending[0]!.fail(new Error('disk full'));
    await store.flush();
    expect(store.readVerified(2, 0, 4)).toBeNull();
  });
});
