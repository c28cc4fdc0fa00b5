/**
 * Hostile downloaders against a real `tdl seed` (and one `tdl download`) child process: request
 * floods, requests for pieces tdl lacks, absurd requests, requests while choked, a wrong info
 * hash, hundreds of connections from one address, a peer that never reads, garbage after
 * `interested`. In every case tdl keeps serving an honest fake leecher (from another loopback
 * address), byte for byte, and keeps its own download going. Each runs with and without the
 * fast extension (BEP 6): tdl rejects what it will not serve, or drops the peer.
 *
 * Runs `node dist/bundle/main.js`: build first (`npm run build`; `npm test` does it).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_INCOMING_PER_ADDRESS } from '../../src/swarm/peer-pool.js';
import { ALLOWED_FAST_PIECES } from '../../src/swarm/upload.js';
import { allowedFastSet } from '../../src/wire/allowed-fast.js';
import { encodeHandshake } from '../../src/wire/handshake.js';
import { FakeLeecher } from '../helpers/fake-leecher.js';
import { useFixture } from '../helpers/fixture.js';
import { assertBuilt, spawnTdl, until } from '../helpers/tdl-process.js';
import { randomBytesSeeded, type MadeTorrent } from '../helpers/torrent.js';

const PIECE = 32768;
const SIZE = 1024 * 1024 + 12345;
const data = randomBytesSeeded(SIZE, 'hostile-downloaders');
const HONEST = '127.0.0.2';
const HOSTILE = '127.0.0.3';

const fx = useFixture();

beforeAll(() => assertBuilt());

let seq = 0;
function peerId(): Buffer {
  return Buffer.from(`-HD0001-${String(++seq).padStart(12, '0')}`);
}

/** The torrent (announcing to a tracker that knows no peer) and its complete data on disk. */
async function leecher(
  t: MadeTorrent,
  port: number,
  o: { fast: boolean; from?: string; keepBlocks?: boolean },
): Promise<FakeLeecher> {
  const l = await FakeLeecher.connect({
    port,
    infoHash: t.infoHash,
    peerId: peerId(),
    fast: o.fast,
    localAddress: o.from ?? HOSTILE,
    keepBlocks: o.keepBlocks ?? false,
    checkAgainst: { data, pieceLength: PIECE },
  });
  fx.onClose(() => l.close());
  return l;
}

/** An honest leecher from its own address gets every byte, unchanged. */
async function honestGetsAll(t: MadeTorrent, port: number, fast: boolean): Promise<void> {
  const l = await leecher(t, port, { fast, from: HONEST });
  await l.waitHandshake();
  const got = await l.downloadAll(SIZE, PIECE, { timeoutMs: 60_000 });
  expect(got).toBe(SIZE);
  expect(l.badBlocks).toBe(0);
  await l.close();
}

/** Interested, then waits for tdl's unchoke. */
async function unchoked(l: FakeLeecher): Promise<void> {
  await l.waitHandshake();
  l.interested();
  await l.waitFor((f) => f.id === 1, { timeoutMs: 15_000 });
}

describe.each([
  { fast: true, name: 'with the fast extension' },
  { fast: false, name: 'without the fast extension' },
])('hostile downloaders, $name', ({ fast }) => {
  it('10,000 requests at once: the queue is capped, the rest rejected or the peer dropped', async () => {
    const { t, tdl, port } = await fx.tdlSeed(data, PIECE);
    const h = await leecher(t, port, { fast });
    await unchoked(h);
    const pieceCount = Math.ceil(SIZE / PIECE);
    const reqs: Buffer[] = [];
    for (let i = 0; i < 10_000; i++) {
      const index = i % pieceCount;
      const begin = (Math.floor(i / pieceCount) % 2) * 16384;
      const len = Math.min(16384, Math.min(PIECE, SIZE - index * PIECE) - begin);
      const p = Buffer.alloc(17);
      p.writeUInt32BE(13, 0);
      p[4] = 6;
      p.writeUInt32BE(index, 5);
      p.writeUInt32BE(begin, 9);
      p.writeUInt32BE(Math.max(1, len), 13);
      reqs.push(p);
    }
    h.send(Buffer.concat(reqs));
    if (fast) {
      await until(() => h.rejects.length > 0, 15_000, 'rejects');
      // Never more blocks than it asked for, and what it got is right.
      expect(h.blocksReceived).toBeLessThanOrEqual(10_000);
    } else {
      await h.waitClosed(15_000);
    }
    expect(h.badBlocks).toBe(0);
    await honestGetsAll(t, port, fast);
    expect(tdl.child.exitCode).toBeNull();
  });

  it('out-of-range index, begin and length, and a 1 MiB length: rejected or dropped', async () => {
    const { t, tdl, port } = await fx.tdlSeed(data, PIECE);
    const h = await leecher(t, port, { fast });
    await unchoked(h);
    const pieceCount = Math.ceil(SIZE / PIECE);
    const absurd: [number, number, number][] = [
      [pieceCount, 0, 16384],
      [0xffffffff, 0, 16384],
      [0, PIECE, 16384],
      [0, 0xffffffff, 16384],
      [0, 16384, 32768],
      [pieceCount - 1, SIZE - (pieceCount - 1) * PIECE, 1],
      [0, 0, 0],
    ];
    for (const [i, b, n] of absurd) h.request(i, b, n);
    if (fast) {
      await until(() => h.rejects.length >= absurd.length, 15_000, 'a reject for each');
      expect(h.isClosed).toBe(false);
      // A 1 MiB length is no mistake: the peer is dropped even with the fast extension.
      h.request(0, 0, 1 << 20);
    }
    await h.waitClosed(15_000);
    expect(h.blocksReceived).toBe(0);
    await honestGetsAll(t, port, fast);
    expect(tdl.child.exitCode).toBeNull();
  });

  it('requests while choked are refused, never served', async () => {
    const { t, tdl, port } = await fx.tdlSeed(data, PIECE);
    const h = await leecher(t, port, { fast });
    await h.waitHandshake();
    // Not interested, so never unchoked: requests anyway, for pieces outside the allowed fast
    // set a fast-extension peer at this address is offered (those it may fetch while choked).
    const pieceCount = Math.ceil(SIZE / PIECE);
    const allowed = allowedFastSet(HOSTILE, t.infoHash, pieceCount, ALLOWED_FAST_PIECES);
    const [a, b] = [...Array(pieceCount).keys()].filter((i) => !allowed.includes(i));
    h.request(a!, 0, 16384);
    h.request(b!, 0, 16384);
    if (fast) {
      await until(() => h.rejects.length >= 2, 15_000, 'two rejects');
      expect(h.isClosed).toBe(false);
    } else {
      // Within the grace after our choke they are ignored; after it, the peer is dropped.
      await new Promise((r) => setTimeout(r, 500));
      expect(h.isClosed).toBe(false);
      await new Promise((r) => setTimeout(r, 5_500));
      h.request(2, 0, 16384);
      await h.waitClosed(15_000);
    }
    expect(h.blocksReceived).toBe(0);
    await honestGetsAll(t, port, fast);
    expect(tdl.child.exitCode).toBeNull();
  }, 40_000);

  it('interested, then garbage: dropped', async () => {
    const { t, tdl, port } = await fx.tdlSeed(data, PIECE);
    const h = await leecher(t, port, { fast });
    await unchoked(h);
    h.garbage(4096, 7);
    await h.waitClosed(15_000);
    await honestGetsAll(t, port, fast);
    expect(tdl.child.exitCode).toBeNull();
  });

  it('a peer that never reads: what tdl holds for it stays bounded', async () => {
    const { t, tdl, port } = await fx.tdlSeed(data, PIECE);
    const h = await leecher(t, port, { fast });
    await unchoked(h);
    h.pause();
    // Ask for the whole torrent over and over (within the queue cap) for a few seconds.
    const pieceCount = Math.ceil(SIZE / PIECE);
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 100; i++) {
        const index = (round * 100 + i) % pieceCount;
        h.request(index, 0, 16384);
      }
      await new Promise((r) => setTimeout(r, 200));
      if (h.isClosed) break;
    }
    await honestGetsAll(t, port, fast);
    const rss = tdl.peakRss();
    expect(rss).not.toBeNull();
    expect(rss!).toBeLessThan(150 * 1024 * 1024);
    expect(tdl.child.exitCode).toBeNull();
  }, 40_000);
});

describe('hostile connections', () => {
  it('a handshake with a wrong info hash is closed at once', async () => {
    const { t, tdl, port } = await fx.tdlSeed(data, PIECE);
    const wrong = Buffer.from(t.infoHash);
    wrong[0]! ^= 0xff;
    const h = await FakeLeecher.connect({ port, infoHash: wrong, localAddress: HOSTILE });
    fx.onClose(() => h.close());
    await h.waitClosed(10_000);
    expect(h.blocksReceived).toBe(0);
    await honestGetsAll(t, port, true);
    expect(tdl.child.exitCode).toBeNull();
  });

  it('hundreds of connections from one address do not lock out the others', async () => {
    const { t, tdl, port } = await fx.tdlSeed(data, PIECE);
    const sockets: net.Socket[] = [];
    fx.onClose(async () => {
      for (const s of sockets) s.destroy();
    });
    const hs = encodeHandshake(t.infoHash, peerId(), Buffer.alloc(8));
    const opened = await Promise.all(
      Array.from(
        { length: 300 },
        (_, i) =>
          new Promise<boolean>((resolve) => {
            const s = net.connect({ host: '127.0.0.1', port, localAddress: HOSTILE });
            sockets.push(s);
            s.on('error', () => resolve(false));
            s.on('connect', () => {
              // Half complete the handshake (each with its own peer id), half stay silent.
              if (i % 2 === 0) {
                const h = Buffer.from(hs);
                h.write(`-HD0002-${String(i).padStart(12, '0')}`, 48, 'latin1');
                s.write(h);
              }
              resolve(true);
            });
          }),
      ),
    );
    expect(opened.filter(Boolean).length).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 1_000));
    const admitted = tdl.events.filter(
      (e) =>
        e.event === 'peer' &&
        e['status'] === 'connected' &&
        String(e['address']).startsWith(`${HOSTILE}:`),
    ).length;
    // One address keeps a few connections at most, so it cannot fill --max-peers (30).
    expect(admitted).toBeGreaterThan(0);
    expect(admitted).toBeLessThanOrEqual(MAX_INCOMING_PER_ADDRESS);
    await honestGetsAll(t, port, true);
    await honestGetsAll(t, port, false);
    expect(tdl.child.exitCode).toBeNull();
  }, 60_000);

  it('while tdl downloads: requests for pieces it lacks are refused, its download completes', async () => {
    const { t, torrent } = await fx.singleFile(data, PIECE);
    const pieceCount = Math.ceil(SIZE / PIECE);
    // A slow seeder for the missing half keeps tdl downloading while the hostile peers ask.
    const seeder = await fx.seeder(t, PIECE, { rateLimit: 128 * 1024 });
    const out = path.join(fx.dir, 'out');
    await mkdir(out);
    // The first half on disk (a resume-less .part), the rest zeros.
    const partial = Buffer.alloc(SIZE);
    data.copy(partial, 0, 0, Math.floor(pieceCount / 2) * PIECE);
    await writeFile(path.join(out, 'data.bin.part'), partial);
    const tdl = spawnTdl(
      [
        'download',
        torrent,
        '-o',
        out,
        '--port',
        '0',
        '--json',
        '--peer',
        `127.0.0.1:${seeder.port}`,
        '--seed',
        '--seed-time',
        '0.1',
      ],
      fx.onClose,
    );
    const port = await tdl.port();
    const last = pieceCount - 1;
    for (const fast of [true, false]) {
      const h = await leecher(t, port, { fast });
      await unchoked(h);
      h.request(last, 0, 16384);
      if (fast) {
        await until(() => h.rejects.length > 0, 15_000, 'a reject');
        expect(h.rejects[0]).toEqual({ index: last, begin: 0, length: 16384 });
      } else {
        await h.waitClosed(15_000);
      }
      expect(h.blocksReceived).toBe(0);
      await h.close();
    }
    // Pieces tdl has are served while it downloads.
    const l = await leecher(t, port, { fast: true, from: HONEST, keepBlocks: true });
    await unchoked(l);
    l.request(0, 0, 16384);
    await l.waitPieces(1, 15_000);
    expect(l.badBlocks).toBe(0);
    await tdl.waitEvent('seeding', 60_000);
    expect(tdl.events.find((e) => e.event === 'seeding')).toBeDefined();
    const { code } = await tdl.exited;
    expect(code).toBe(0);
    expect((await readFile(path.join(out, 'data.bin'))).equals(data)).toBe(true);
  }, 90_000);
});
