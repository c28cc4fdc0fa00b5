/**
 * BEP 6 allowed fast, against a real `tdl seed`: a fast-extension peer that is not a seed is
 * offered the pieces of its canonical allowed fast set, and may download those while tdl
 * chokes it (here: it never says it is interested, so it is never unchoked); a request for any
 * other piece is rejected. A peer without the fast extension is offered nothing.
 *
 * Runs `node dist/bundle/main.js`: build first (`npm run build`; `npm test` does it).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ALLOWED_FAST_PIECES } from '../../src/swarm/upload.js';
import { allowedFastSet } from '../../src/wire/allowed-fast.js';
import { ExtraId, FakeLeecher } from '../helpers/fake-leecher.js';
import { useFixture } from '../helpers/fixture.js';
import { assertBuilt } from '../helpers/tdl-process.js';
import { randomBytesSeeded } from '../helpers/torrent.js';

const PIECE = 16384;
const PIECES = 64;
const data = randomBytesSeeded(PIECE * PIECES, 'allowed-fast');

const fx = useFixture();

beforeAll(() => assertBuilt());

describe('allowed fast (BEP 6) from tdl seed', () => {
  it('offers the canonical set, serves it while choking, and rejects other pieces', async () => {
    const { t, tdl, port } = await fx.tdlSeed(data, PIECE);
    const expected = allowedFastSet('127.0.4.40', t.infoHash, PIECES, ALLOWED_FAST_PIECES);
    expect(expected).toHaveLength(5);
    const connect = async (localAddress: string, fast: boolean) => {
      const l = await FakeLeecher.connect({
        port,
        infoHash: t.infoHash,
        fast,
        localAddress,
        checkAgainst: { data, pieceLength: PIECE },
      });
      fx.onClose(() => l.close());
      await l.waitHandshake();
      return l;
    };

    const l = await connect('127.0.4.40', true);
    await l.waitFor(() => l.allowedFast.size === expected.length);
    expect([...l.allowedFast].sort((a, b) => a - b)).toEqual([...expected].sort((a, b) => a - b));

    const outside = [...Array(PIECES).keys()].find((i) => !l.allowedFast.has(i))!;
    for (const index of expected) l.request(index, 0, PIECE);
    l.request(outside, 0, PIECE);
    const pieces = await l.waitPieces(expected.length);
    await l.waitFor((f) => f.id === ExtraId.reject);
    expect(pieces.map((p) => p.index).sort((a, b) => a - b)).toEqual(
      [...expected].sort((a, b) => a - b),
    );
    for (const p of pieces) {
      expect(p.block.equals(data.subarray(p.index * PIECE, (p.index + 1) * PIECE))).toBe(true);
    }
    expect(l.badBlocks).toBe(0);
    expect(l.rejects).toEqual([{ index: outside, begin: 0, length: PIECE }]);
    expect(l.choked).toBe(true);

    // Another address of the same /24 is offered the same pieces; no fast extension, none.
    const same = await connect('127.0.4.41', true);
    await same.waitFor(() => same.allowedFast.size === expected.length);
    expect([...same.allowedFast].sort()).toEqual([...l.allowedFast].sort());
    const plain = await connect('127.0.4.42', false);
    plain.interested();
    await plain.waitFor((f) => f.id === 1);
    expect(plain.allowedFast.size).toBe(0);
    expect(plain.frames.some((f) => f.id === ExtraId.allowedFast)).toBe(false);
    expect(tdl.child.exitCode).toBeNull();
  }, 60_000);
});
