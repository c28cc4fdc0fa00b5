/**
 * The upload limit shared fairly, end to end: `tdl seed --max-upload-rate 256K` with three
 * unchoked fast leechers that all keep requests out. The bucket grants about one block at a
 * time, and every peer waiting for tokens gets its turn: no leecher is starved because another
 * connected first (each used to be pumped in connection order, and the first took everything).
 *
 * The bound is loose (each more than a sixth of the total, a fair share being a third), so that
 * a loaded machine cannot make it fail.
 *
 * Runs `node dist/bundle/main.js`: build first (`npm run build`; `npm test` does it).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { FakeLeecher } from '../helpers/fake-leecher.js';
import { useFixture } from '../helpers/fixture.js';
import { assertBuilt, until } from '../helpers/tdl-process.js';
import { randomBytesSeeded } from '../helpers/torrent.js';

const PIECE = 32768;
const BLOCK = 16384;
/** 4 MiB: more than the 8 s of the test at 256 KiB/s, so nobody runs out of blocks to ask for. */
const SIZE = 4 * 1024 * 1024;
const data = randomBytesSeeded(SIZE, 'upload-fairness');

const fx = useFixture();

beforeAll(() => assertBuilt());

/** Keeps `depth` requests out at `l` (every block of the torrent in turn) until the stop. */
function keepAsking(l: FakeLeecher, depth = 32): () => void {
  let asked = 0;
  const top = () => {
    while (asked - l.blocksReceived - l.rejects.length < depth) {
      const at = (asked * BLOCK) % SIZE;
      l.request(Math.floor(at / PIECE), at % PIECE, BLOCK);
      asked++;
    }
  };
  top();
  const timer = setInterval(top, 20);
  return () => clearInterval(timer);
}

describe('the upload limit, shared', () => {
  it('--max-upload-rate 256K with three unchoked leechers: each gets a fair share', async () => {
    const { t, tdl, port } = await fx.tdlSeed(data, PIECE, ['--max-upload-rate', '256K']);
    // One after the other, so that the connection order (the service's peer order) is known.
    const ls: FakeLeecher[] = [];
    for (let i = 0; i < 3; i++) {
      const l = await FakeLeecher.connect({
        port,
        infoHash: t.infoHash,
        peerId: Buffer.from(`-UF0001-${String(i).padStart(12, '0')}`),
        fast: true,
        keepBlocks: false,
        localAddress: `127.0.4.${10 + i}`,
        checkAgainst: { data, pieceLength: PIECE },
        connectTimeoutMs: 20_000,
      });
      fx.onClose(() => l.close());
      await l.waitHandshake(20_000);
      l.interested();
      ls.push(l);
    }
    // Four upload slots and the optimistic one: all three are unchoked.
    await until(() => ls.every((l) => !l.choked), 20_000, 'three unchokes');
    const stops = ls.map((l) => keepAsking(l));
    fx.onClose(async () => stops.forEach((stop) => stop()));
    await new Promise((r) => setTimeout(r, 8_000));
    stops.forEach((stop) => stop());
    const got = ls.map((l) => l.blockBytes);
    const total = got.reduce((a, b) => a + b, 0);
    // About 2 MiB in 8 s at the limit; far less would say nothing about fairness.
    expect(total).toBeGreaterThan(16 * BLOCK);
    for (const n of got) expect(n, `bytes received: ${got.join(', ')}`).toBeGreaterThan(total / 6);
    for (const l of ls) {
      expect(l.badBlocks).toBe(0);
      expect(l.isClosed).toBe(false);
    }
    expect(tdl.child.exitCode).toBeNull();
  }, 60_000);
});
