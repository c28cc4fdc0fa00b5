/**
 * Faults a review found in real swarms, each reproduced in process:
 * - a seeder that chokes us for 11 s and then unchokes is not snubbed at the next tick (no
 *   cancelled requests, no waste, no drop);
 * - with a disk whose writes never finish, the pieces held in memory stay within the budget;
 * - a peer whose blocks each take longer than `--timeout` to arrive, their bytes flowing all the
 *   while, is not taken for a stall: `--timeout` is about no data at all.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { Layout } from '../../src/storage/layout.js';
import { Download } from '../../src/swarm/download.js';
import { MAX_INFLIGHT_BYTES } from '../../src/swarm/session.js';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { correctBlock, startHostilePeer } from '../helpers/hostile-peer.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();

describe('swarm faults', () => {
  it('a seeder that chokes for 11 s and unchokes again is not snubbed: nothing wasted', async () => {
    const data = randomBytesSeeded(2 * 1024 * 1024, 'choke-11');
    const t = makeTorrent({ name: 'c.bin', pieceLength: 65536, files: { data } });
    const seeder = await fx.seeder(t, 65536, {
      rateLimit: 1024 * 1024,
      chokeAfterBytes: 512 * 1024,
      unchokeAfterMs: 11_000,
    });
    const tp = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'c.bin');
    const r = await runCli([
      'download',
      tp,
      '-o',
      out,
      '--json',
      '--no-dht',
      '--port',
      '0',
      '--peer',
      `127.0.0.1:${seeder.port}`,
    ]);
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    const done = r.events.find((e) => e['event'] === 'done')!;
    expect(done['wasted']).toBe(0);
    expect(seeder.cancels).toBe(0);
    expect(seeder.connections).toBe(1);
  }, 60_000);

  it('--timeout does not fire while block data flows, however slowly', async () => {
    const pieceLength = 32 * 1024;
    const data = randomBytesSeeded(pieceLength, 'slow-blocks');
    const t = makeTorrent({ name: 'slow.bin', pieceLength, files: { data } });
    // 1 KiB every 300 ms: each 16 KiB block takes about 5 s, over the 3 s --timeout below.
    const peer = await startHostilePeer(async (c) => {
      await c.becomeReadySeeder(t.infoHash, 1);
      for (;;) {
        const r = await c.waitForMessage('request', 60_000);
        const msg = correctBlock(data, pieceLength, r);
        for (let at = 0; at < msg.length && !c.isClosed; at += 1024) {
          await c.write(msg.subarray(at, at + 1024));
          await c.sleep(300);
        }
      }
    });
    fx.onClose(() => peer.close());
    const tp = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'slow.bin');
    const r = await runCli([
      'download',
      tp,
      '-o',
      out,
      '--no-dht',
      '--no-listen',
      '--timeout',
      '3',
      '--peer',
      peer.hostPort,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(peer.conns).toHaveLength(1);
  }, 60_000);

  it('a disk that never finishes a write: memory held stays within the budget', async () => {
    const data = randomBytesSeeded(24 * 1024 * 1024, 'slow-disk');
    const pieceLength = 256 * 1024;
    const t = makeTorrent({ name: 's.bin', pieceLength, files: { data } });
    const seeder = await fx.seeder(t, pieceLength);
    const meta = parseTorrent(t.torrent);
    const layout = new Layout(meta.files, meta.pieceLength, meta.length);
    let writes = 0;
    const stuck: (() => void)[] = [];
    const dl = new Download({
      meta,
      layout,
      storage: {
        writePiece: () => {
          writes++;
          return new Promise<void>((resolve) => stuck.push(resolve));
        },
        readBlock: () => Promise.reject(new Error('not written')),
      },
      peerId: Buffer.from('-TD0000-slowdisktest'),
      peers: [{ host: '127.0.0.1', port: seeder.port }],
      stallTimeoutMs: 60_000,
    });
    const run = dl.run().catch(() => {});
    let over = 0;
    const counts: number[] = [];
    for (let i = 0; i < 40; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const st = dl.stats();
      // Pieces verified and waiting for the disk count: one piece may always start.
      if (st.heldBytes > st.budgetBytes + pieceLength) over++;
      counts.push(writes);
    }
    dl.close();
    for (const done of stuck) done();
    await run;
    expect(writes).toBeGreaterThan(0);
    expect(over).toBe(0);
    // Every pending write holds its piece; their number stopped growing within the cap.
    expect(writes * pieceLength).toBeLessThanOrEqual(MAX_INFLIGHT_BYTES + pieceLength);
    expect(counts.at(-1)).toBe(counts.at(-10));
    expect(writes * pieceLength).toBeLessThan(data.length);
  });
});
