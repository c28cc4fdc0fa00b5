/**
 * BEP 6 with `cancel`, against a real `tdl seed`: with the fast extension every request gets
 * exactly one answer, a block or a `reject`, even when it is cancelled. A slow
 * `--max-upload-rate` keeps the requests queued long enough for the cancel to find one there.
 *
 * Runs `node dist/bundle/main.js`: build first (`npm run build`; `npm test` does it).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ExtraId, FakeLeecher } from '../helpers/fake-leecher.js';
import { useFixture } from '../helpers/fixture.js';
import { assertBuilt, until } from '../helpers/tdl-process.js';
import { randomBytesSeeded } from '../helpers/torrent.js';

const PIECE = 32768;
const BLOCK = 16384;
const SIZE = 256 * 1024;
const data = randomBytesSeeded(SIZE, 'upload-cancel');

const fx = useFixture();

beforeAll(() => assertBuilt());

/** Answers (blocks and rejects) for the block at index/begin among `l`'s frames from `from`. */
function answers(l: FakeLeecher, from: number, index: number, begin: number): number {
  return l.frames
    .slice(from)
    .filter(
      (f) =>
        (f.id === 7 || f.id === ExtraId.reject) &&
        f.payload.readUInt32BE(0) === index &&
        f.payload.readUInt32BE(4) === begin,
    ).length;
}

describe('cancel with the fast extension', () => {
  it('a cancelled request still queued is rejected; the others get their blocks, once', async () => {
    // 8 KiB/s: one block every 2 s.
    const { t, tdl, port } = await fx.tdlSeed(data, PIECE, ['--max-upload-rate', '8K']);
    const l = await FakeLeecher.connect({
      port,
      infoHash: t.infoHash,
      peerId: Buffer.from('-UC0001-000000000001'),
      fast: true,
      keepBlocks: false,
      localAddress: '127.0.4.30',
      checkAgainst: { data, pieceLength: PIECE },
    });
    fx.onClose(() => l.close());
    await l.waitHandshake();
    l.interested();
    await l.waitFor((f) => f.id === 1, { timeoutMs: 15_000 });
    // Empty the bucket first: four blocks are its burst, and what accrued since tdl started.
    for (let i = 0; i < 4; i++) l.request(Math.floor(i / 2), (i % 2) * BLOCK, BLOCK);
    await l.waitPieces(4, 30_000);
    // Four more, and the last taken back at once: it waits behind three blocks (6 s).
    const from = l.frames.length;
    const reqs = [4, 5, 6, 7].map((i) => [Math.floor(i / 2), (i % 2) * BLOCK] as const);
    for (const [index, begin] of reqs) l.request(index, begin, BLOCK);
    const [ci, cb] = reqs[3]!;
    l.cancel(ci, cb, BLOCK);
    await until(
      () => reqs.every(([index, begin]) => answers(l, from, index, begin) > 0),
      30_000,
      'an answer to each request',
    );
    // Time for a second answer to any of them (a block every 2 s), which must not come.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(reqs.map(([index, begin]) => answers(l, from, index, begin))).toEqual([1, 1, 1, 1]);
    expect(l.rejects).toEqual([{ index: ci, begin: cb, length: BLOCK }]);
    expect(l.blocksReceived).toBe(7);
    expect(l.badBlocks).toBe(0);
    expect(l.isClosed).toBe(false);
    expect(tdl.child.exitCode).toBeNull();
  }, 90_000);
});
