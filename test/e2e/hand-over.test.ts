/**
 * A download that does not seed, complete while a peer is taking blocks from it, stays until
 * that peer has every piece no other peer connected has (the seeder left once it had sent
 * everything): leaving at once would strand it.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ExtraId, FakeLeecher } from '../helpers/fake-leecher.js';
import { useFixture } from '../helpers/fixture.js';
import { assertBuilt, spawnTdl } from '../helpers/tdl-process.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();

beforeAll(() => assertBuilt());

const PIECE = 32768;
const PIECES = 40;
const SIZE = PIECE * PIECES;

/**
 * Takes, one piece at a time and at most one every `gapMs`, each piece the peer announces, and
 * announces it back once whole: a leecher slower than the download it takes from.
 */
function trail(l: FakeLeecher, gapMs: number): { got: Set<number>; stop: () => void } {
  const got = new Set<number>();
  const offered: number[] = [];
  const blocks = new Map<number, number>();
  let asked = -1;
  let askedAt = 0;
  let seen = 0;
  const timer = setInterval(() => {
    for (; seen < l.frames.length; seen++) {
      const f = l.frames[seen]!;
      if (f.id === 4) offered.push(f.payload.readUInt32BE(0));
      else if (f.id === ExtraId.reject && f.payload.readUInt32BE(0) === asked) asked = -1;
      else if (f.id === 7) {
        const index = f.payload.readUInt32BE(0);
        const n = (blocks.get(index) ?? 0) + 1;
        blocks.set(index, n);
        if (n === PIECE / 16384) {
          got.add(index);
          l.have(index);
          if (asked === index) asked = -1;
        }
      }
    }
    if (asked >= 0 || l.choked || Date.now() - askedAt < gapMs) return;
    const next = offered.find((i) => !got.has(i));
    if (next === undefined) return;
    asked = next;
    askedAt = Date.now();
    l.requestPiece(next, PIECE);
  }, 10);
  return { got, stop: () => clearInterval(timer) };
}

/**
 * The swarm of the tests: tdl downloading, the only source of half the pieces leaving once it
 * has sent them (or a seeder that stays), and a slow leecher of tdl's.
 */
async function handOverSwarm(o: { seederStays?: boolean; webSeeds?: 'off' } = {}): Promise<{
  data: Buffer;
  out: string;
  tdl: ReturnType<typeof spawnTdl>;
  taker: { got: Set<number>; stop: () => void };
}> {
  const data = randomBytesSeeded(SIZE, 'hand-over');
  // With web seeds (turned off for this run): the swarm's other peers may use them.
  const { t, torrent } = o.webSeeds
    ? await (async () => {
        const tr = await fx.tracker([]);
        const t = makeTorrent({
          name: 'data.bin',
          pieceLength: PIECE,
          files: { data },
          announce: tr.url,
          extraRoot: { 'url-list': ['http://127.0.0.1:9/data.bin'] },
        });
        return { t, torrent: await fx.writeTorrent(t) };
      })()
    : await fx.singleFile(data, PIECE);
  // About 3 s of download. Left: a seeder that stays. Otherwise two partial peers: the only one
  // with the first half leaves once it has sent it, the other has the second half.
  const FIRST = PIECES / 2;
  const sources = o.seederStays
    ? [await fx.seeder(t, PIECE, { rateLimit: 400_000 })]
    : [
        await fx.seeder(t, PIECE, {
          rateLimit: 400_000,
          pieces: (i) => i < FIRST,
          disconnectAfterBytes: FIRST * PIECE,
        }),
        await fx.seeder(t, PIECE, { rateLimit: 400_000, pieces: (i) => i >= FIRST }),
      ];
  const out = path.join(fx.dir, 'got.bin');
  const peers = sources.flatMap((s) => ['--peer', `127.0.0.1:${s.port}`]);
  const tdl = spawnTdl(
    [
      'download',
      torrent,
      '-o',
      out,
      ...peers,
      '--port',
      '0',
      '--json',
      ...(o.webSeeds ? ['--no-web-seeds'] : []),
    ],
    fx.onClose,
  );
  const port = await tdl.port();
  const l = await FakeLeecher.connect({
    port,
    infoHash: t.infoHash,
    peerId: Buffer.from('-HO0001-handoverpeer'),
    fast: true,
    localAddress: '127.0.0.2',
  });
  fx.onClose(() => l.close());
  await l.waitHandshake();
  l.haveNone();
  l.interested();
  // Five pieces a second at most, against the download's twelve.
  const taker = trail(l, 200);
  fx.onClose(async () => taker.stop());
  return { data, out, tdl, taker };
}

describe('a download that does not seed, at its end', () => {
  it('stays until the peer taking blocks from it has the pieces only it had', async () => {
    const { data, out, tdl, taker } = await handOverSwarm();
    const { code } = await tdl.exited;
    taker.stop();
    expect(code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    // Every piece of the half whose only source left reached the leecher before tdl left (the
    // other half is still on a peer connected to tdl).
    const firstHalf = Array.from({ length: PIECES / 2 }, (_, i) => i);
    expect(firstHalf.filter((i) => !taker.got.has(i))).toEqual([]);
    const kinds = tdl.events.map((e) => e.event);
    expect(kinds).toContain('handover');
    expect(kinds.indexOf('handover')).toBeLessThan(kinds.indexOf('done'));
    const handover = tdl.events.find((e) => e.event === 'handover')!;
    expect(handover['pieces']).toBeGreaterThan(0);
    const done = tdl.events.find((e) => e.event === 'done')!;
    expect(done['uploaded']).toBeGreaterThanOrEqual((taker.got.size - 1) * PIECE);
    // The run's time runs to its end, the wait included; the download's average, to completion.
    const elapsedMs = done['elapsedMs'] as number;
    expect(elapsedMs).toBeGreaterThanOrEqual(handover['time'] as number);
    expect(tdl.events.filter((e) => e.event === 'progress').at(-1)?.['time']).toBe(elapsedMs);
    expect(done['uploadRate']).toBe(Math.round((done['uploaded'] as number) / (elapsedMs / 1000)));
    expect(done['averageRate'] as number).toBeGreaterThan(
      Math.round((done['downloaded'] as number) / (elapsedMs / 1000)),
    );
  }, 60_000);

  it('does not wait while a seed was connected at the end: the swarm has every piece', async () => {
    const { data, out, tdl, taker } = await handOverSwarm({ seederStays: true });
    const { code } = await tdl.exited;
    taker.stop();
    expect(code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(tdl.events.map((e) => e.event)).not.toContain('handover');
    // The leecher, slower by design, had not everything when tdl left: the seeder serves it.
    expect(taker.got.size).toBeLessThan(PIECES);
  }, 60_000);

  it('does not wait when the torrent has web seeds, though this run does not use them', async () => {
    const { data, out, tdl, taker } = await handOverSwarm({ webSeeds: 'off' });
    const { code } = await tdl.exited;
    taker.stop();
    expect(code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(tdl.events.map((e) => e.event)).not.toContain('handover');
  }, 60_000);

  it('Ctrl-C ends the wait: the download is complete, exit 0', async () => {
    const { data, out, tdl, taker } = await handOverSwarm();
    await tdl.waitEvent('handover', 30_000);
    const { code } = await tdl.interrupt();
    taker.stop();
    expect(code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(tdl.events.at(-1)?.event).toBe('done');
    expect(taker.got.size).toBeLessThan(PIECES);
  }, 60_000);
});
