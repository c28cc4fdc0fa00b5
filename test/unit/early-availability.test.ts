/**
 * A magnet link's connections learn the piece count only once the metadata is known: what the
 * peer said before (availability, unchoke, interest, allowed fast) is recorded and given back by
 * adopt(), with the checks the messages would have met then (docs/DESIGN.md, "Magnet hand-over").
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { WireError } from '../../src/errors.js';
import { PeerConnection } from '../../src/peer/connection.js';
import { EarlyAvailability, MAX_EARLY_PIECES } from '../../src/peer/early-availability.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { encodeHandshake, ourReserved } from '../../src/wire/handshake.js';
import { HOSTILE_PEER_ID, startHostilePeer } from '../helpers/hostile-peer.js';

const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 42;

function wire(n: number, pieces: number[]): Buffer {
  const bf = new Bitfield(n);
  for (const p of pieces) bf.set(p);
  return bf.toBuffer();
}

function list(bf: Bitfield): number[] {
  const out: number[] = [];
  for (let i = 0; i < bf.size; i++) if (bf.has(i)) out.push(i);
  return out;
}

describe('EarlyAvailability', () => {
  it('a first bitfield, then haves and a late bitfield: their union', () => {
    const e = new EarlyAvailability();
    expect(e.seen).toBe(false);
    e.bitfield(wire(20, [0, 5]));
    e.have(7);
    e.bitfield(wire(20, [19]));
    expect(e.seen).toBe(true);
    expect(list(e.resolve(20))).toEqual([0, 5, 7, 19]);
  });

  it('haves alone, have all, have none', () => {
    const haves = new EarlyAvailability();
    haves.have(3);
    haves.have(3);
    expect(list(haves.resolve(4))).toEqual([3]);
    const all = new EarlyAvailability();
    all.haveNone();
    all.haveAll();
    expect(all.resolve(10).isComplete()).toBe(true);
    const none = new EarlyAvailability();
    none.haveNone();
    none.have(1);
    expect(list(none.resolve(10))).toEqual([1]);
    expect(new EarlyAvailability().resolve(10).count).toBe(0);
  });

  it('refuses at resolve what the piece count rules out', () => {
    const short = new EarlyAvailability();
    short.bitfield(Buffer.alloc(2));
    expect(() => short.resolve(20)).toThrow(WireError);
    const spare = new EarlyAvailability();
    spare.bitfield(Buffer.from([0xff, 0xff, 0xff]));
    expect(() => spare.resolve(20)).toThrow(/spare bits/);
    const far = new EarlyAvailability();
    far.have(20);
    expect(() => far.resolve(20)).toThrow(/nonexistent piece 20/);
    const huge = new EarlyAvailability();
    huge.have(MAX_EARLY_PIECES + 5);
    expect(() => huge.resolve(MAX_EARLY_PIECES)).toThrow(WireError);
    const late = new EarlyAvailability();
    late.haveNone();
    late.bitfield(Buffer.alloc(5));
    expect(() => late.resolve(20)).toThrow(/bitfield is 5 bytes/);
    const two = new EarlyAvailability();
    two.bitfield(Buffer.alloc(3));
    expect(() => two.bitfield(Buffer.alloc(4))).toThrow(/bitfields of 3 and 4 bytes/);
    expect(() => new EarlyAvailability().bitfield(Buffer.alloc(MAX_EARLY_PIECES))).toThrow(
      /longer than any torrent/,
    );
  });

  it('keeps at most 64 allowed-fast pieces, each once', () => {
    const e = new EarlyAvailability();
    for (let i = 0; i < 200; i++) e.allowed(i % 100);
    expect(e.allowedFast).toHaveLength(64);
    expect(new Set(e.allowedFast).size).toBe(64);
  });

  it('resolves to what the messages would have built (property)', () => {
    const msg = (n: number) =>
      fc.oneof(
        fc.record({ t: fc.constant('have' as const), i: fc.nat(n - 1) }),
        fc.record({ t: fc.constant('bitfield' as const), p: fc.uniqueArray(fc.nat(n - 1)) }),
        fc.record({ t: fc.constant('all' as const) }),
        fc.record({ t: fc.constant('none' as const) }),
      );
    const arb = fc
      .integer({ min: 1, max: 70 })
      .chain((n) => fc.tuple(fc.constant(n), fc.array(msg(n), { maxLength: 30 })));
    fc.assert(
      fc.property(arb, ([n, msgs]) => {
        const e = new EarlyAvailability();
        const model = new Set<number>();
        for (const m of msgs) {
          if (m.t === 'have') {
            e.have(m.i);
            model.add(m.i);
          } else if (m.t === 'bitfield') {
            e.bitfield(wire(n, m.p));
            for (const p of m.p) model.add(p);
          } else if (m.t === 'all') {
            e.haveAll();
            for (let i = 0; i < n; i++) model.add(i);
          } else e.haveNone();
        }
        expect(list(e.resolve(n))).toEqual([...model].sort((a, b) => a - b));
      }),
      { seed, numRuns: 500 },
    );
  });
});

const infoHash = Buffer.alloc(20, 9);

/** Until the connection has read `n` bytes (polling: metadata-only connections emit nothing). */
async function bytesIn(conn: PeerConnection, n: number): Promise<void> {
  while (conn.bytesIn < n) {
    if (conn.state === 'closed') throw new Error(`closed: ${conn.closeReason}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

/** A started connection to `port` that does not know the torrent's piece count yet. */
async function metadataOnlyConnection(port: number): Promise<PeerConnection> {
  const conn = new PeerConnection({
    host: '127.0.0.1',
    port,
    infoHash,
    peerId: Buffer.alloc(20, 1),
    pieceCount: 0,
    metadataOnly: true,
  });
  closers.push(() => conn.close('test over'));
  await conn.connect();
  conn.start(new Bitfield(0));
  return conn;
}

describe('PeerConnection.adopt', () => {
  it('replays what a peer sent before the piece count was known, then carries on', async () => {
    const p = await startHostilePeer(async (c) => {
      await c.readHandshake();
      await c.write(encodeHandshake(infoHash, HOSTILE_PEER_ID, ourReserved()));
      await c.send({ type: 'have-none' });
      await c.send({ type: 'have', index: 2 });
      await c.send({ type: 'allowed-fast', index: 1 });
      await c.send({ type: 'interested' });
      await c.send({ type: 'unchoke' });
      // We send have-none at start, then `have 0` once adopted: from then on, ordinary messages.
      for (let m = await c.nextMessage(); m.type !== 'have'; m = await c.nextMessage());
      await c.send({ type: 'have', index: 5 });
      await c.sleep(2_000);
    });
    closers.push(() => p.close());
    const conn = await metadataOnlyConnection(p.port);
    // The handshake and five messages (33 bytes) are in.
    await bytesIn(conn, 68 + 33);
    expect(conn.metadataOnly).toBe(true);
    const seen: string[] = [];
    conn.on('bitfield', () => seen.push(`bitfield ${list(conn.bitfield).join(',')}`));
    conn.on('unchoke', () => seen.push('unchoke'));
    conn.on('interest', (i) => seen.push(`interest ${i}`));
    conn.on('allowedFast', (i) => seen.push(`allowedFast ${i}`));
    const later = new Promise<number>((resolve, reject) => {
      conn.on('have', resolve);
      conn.once('close', (why) => reject(new Error(`closed: ${why}`)));
    });
    const ours = new Bitfield(8);
    ours.set(0);
    conn.adopt(8, ours);
    expect(conn.metadataOnly).toBe(false);
    expect(seen).toEqual(['bitfield 2', 'unchoke', 'interest true', 'allowedFast 1']);
    expect(await later).toBe(5);
    expect(list(conn.bitfield)).toEqual([2, 5]);
  });

  it('closes a connection whose early pieces do not fit the torrent', async () => {
    const p = await startHostilePeer(async (c) => {
      await c.readHandshake();
      await c.write(encodeHandshake(infoHash, HOSTILE_PEER_ID, ourReserved()));
      await c.send({ type: 'have', index: 40 });
      await c.sleep(2_000);
    });
    closers.push(() => p.close());
    const conn = await metadataOnlyConnection(p.port);
    await bytesIn(conn, 68 + 9);
    conn.adopt(8, new Bitfield(8));
    expect(conn.state).toBe('closed');
    expect(conn.closeReason).toMatch(/nonexistent piece 40/);
  });
});
