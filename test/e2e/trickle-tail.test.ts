/**
 * Many peers that trickle, and one good seeder that comes later: the tricklers hold every piece
 * (and, in endgame, each other's blocks) by the time the seeder comes. The seeder must still get
 * the blocks, long before any request of the tricklers times out.
 */
import { describe, expect, it } from 'vitest';
import { REQUEST_TIMEOUT_MS } from '../../src/swarm/requests.js';
import { encodePiece } from '../../src/wire/messages.js';
import { startFakeSeeder } from '../helpers/fake-seeder.js';
import { useFixture } from '../helpers/fixture.js';
import { memoryDownload } from '../helpers/memory-download.js';
import { startHostilePeer, type HostilePeer } from '../helpers/hostile-peer.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();

/**
 * A peer with every piece that answers each request in turn at about `bytesPerSecond`, a few
 * bytes at a time (never snubbed: its bytes keep coming), and skips cancelled requests.
 */
async function trickler(
  n: number,
  infoHash: Buffer,
  data: Buffer,
  pieceLength: number,
  bytesPerSecond: number,
) {
  const pieceCount = Math.ceil(data.length / pieceLength);
  const peerId = Buffer.from(`-TR0001-${String(n).padStart(12, '0')}`);
  return startHostilePeer(async (c) => {
    await c.exchangeHandshakes(infoHash, peerId);
    await c.sendFullBitfield(pieceCount);
    await c.waitForMessage('interested');
    await c.send({ type: 'unchoke' });
    const STEP_MS = 100;
    const step = Math.max(1, Math.round((bytesPerSecond * STEP_MS) / 1000));
    while (!c.isClosed) {
      const r = await c.waitForMessage('request', 120_000);
      const cancelled = () =>
        c.received.some((m) => m.type === 'cancel' && m.index === r.index && m.begin === r.begin);
      const start = r.index * pieceLength + r.begin;
      const msg = encodePiece(r.index, r.begin, data.subarray(start, start + r.length));
      for (let at = 0; at < msg.length && !c.isClosed; at += step) {
        if (at === 0 && cancelled()) break;
        await c.write(msg.subarray(at, at + step));
        await c.sleep(STEP_MS);
      }
    }
  });
}

describe('a tail held by trickling peers', () => {
  // 128 B/s: a block takes two minutes. 2 KB/s: 8 s a block, so each trickler's first request
  // seems near (it counts against two requesters), and its last ones far (it does not).
  it.each([128, 2_048])(
    'a good seeder that joins after 16 peers trickling %d B/s took every block gets them',
    async (rate) => {
      const pieceLength = 32 * 1024;
      const data = randomBytesSeeded(16 * pieceLength, 'trickle-tail');
      const t = makeTorrent({ name: 't.bin', pieceLength, files: { data } });
      const slow: HostilePeer[] = [];
      for (let i = 0; i < 16; i++) {
        const p = await trickler(i, t.infoHash, data, pieceLength, rate);
        fx.onClose(() => p.close());
        slow.push(p);
      }
      const good = await startFakeSeeder({
        infoHash: t.infoHash,
        data,
        pieceLength,
        rateLimit: 2 * 1024 * 1024,
      });
      fx.onClose(() => good.close());
      const { dl, bytes } = memoryDownload(t.torrent, {
        peerId: Buffer.from('-TD0000-tricklefirst'),
        peers: slow.map((p) => p.address),
        stallTimeoutMs: 120_000,
      });
      fx.onClose(async () => dl.close());
      const run = dl.run();
      // Every block is asked of a trickler, and the tricklers have been measured, before the
      // seeder comes (a later announce).
      const asked = () =>
        slow.reduce(
          (n, p) => n + (p.conns[0]?.received.filter((m) => m.type === 'request').length ?? 0),
          0,
        );
      const deadline = Date.now() + 20_000;
      while (asked() < 32) {
        if (Date.now() > deadline) throw new Error(`the trickling peers were asked ${asked()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 2_000));
      const joinedAt = Date.now();
      dl.addPeers([good.address], 'tracker');
      await run;
      const took = Date.now() - joinedAt;
      expect(bytes().equals(data)).toBe(true);
      // The tricklers would have taken minutes; the seeder sent most of it, long before any of
      // their requests timed out (REQUEST_TIMEOUT_MS, 30 s).
      expect(good.served).toBeGreaterThan(data.length / 2);
      expect(took).toBeLessThan(REQUEST_TIMEOUT_MS);
    },
    120_000,
  );
});
