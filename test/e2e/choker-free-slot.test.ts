/**
 * An upload slot freed by a peer that stops being interested goes to a peer waiting for one at
 * once, not at the next choker round (up to CHOKE_INTERVAL_MS later). tdl seeds in process to
 * fake leechers on 127.0.7.x.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { CHOKE_INTERVAL_MS } from '../../src/swarm/choker.js';
import { download } from '../../src/swarm/client.js';
import { FakeLeecher } from '../helpers/fake-leecher.js';
import { useFixture } from '../helpers/fixture.js';
import { until } from '../helpers/tdl-process.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();
const PIECE = 32 * 1024;

describe('a freed upload slot', () => {
  it('goes to a waiting peer as soon as one unchoked loses interest', async () => {
    const data = randomBytesSeeded(1 << 20, 'free-slot');
    const t = makeTorrent({ name: 'free.bin', pieceLength: PIECE, files: { data } });
    const file = path.join(fx.dir, 'free.bin');
    await writeFile(file, data);
    const stop = new AbortController();
    let port = 0;
    let startedAt = 0;
    const running = download({
      meta: parseTorrent(t.torrent),
      output: file,
      seedOnly: true,
      seed: {},
      listen: { port: 0, bind: '127.0.0.1' },
      // One regular slot and the optimistic unchoke: two interested peers unchoked at most.
      uploadSlots: 1,
      signal: stop.signal,
      onStart: (_d, _plan, info) => {
        port = info.port;
        // The choker's rounds are CHOKE_INTERVAL_MS apart from about now.
        startedAt = Date.now();
      },
    });
    running.catch(() => {});
    fx.onClose(async () => {
      stop.abort(new Error('test over'));
      await running.catch(() => {});
    });
    await until(() => port > 0, 10_000, 'the seed listening');
    const ls: FakeLeecher[] = [];
    for (let i = 0; i < 3; i++) {
      const l = await FakeLeecher.connect({
        port,
        infoHash: t.infoHash,
        fast: true,
        keepBlocks: false,
        peerId: Buffer.from(`-CF0001-freeslot${String(i).padStart(4, '0')}`),
        localAddress: `127.0.7.${10 + i}`,
      });
      fx.onClose(async () => l.close());
      await l.waitHandshake();
      l.haveNone();
      l.interested();
      ls.push(l);
    }
    await until(() => ls.filter((l) => !l.choked).length === 2, 10_000, 'two unchoked');
    // Just after a round: the next one is most of CHOKE_INTERVAL_MS away.
    const phase = (Date.now() - startedAt) % CHOKE_INTERVAL_MS;
    const wait = (1_000 - phase + CHOKE_INTERVAL_MS) % CHOKE_INTERVAL_MS;
    await new Promise((r) => setTimeout(r, wait));
    expect(ls.filter((l) => !l.choked)).toHaveLength(2);
    const waiting = ls.find((l) => l.choked)!;
    const leaving = ls.find((l) => !l.choked)!;
    const t0 = Date.now();
    leaving.notInterested();
    await until(() => !waiting.choked, CHOKE_INTERVAL_MS + 5_000, 'the waiting peer unchoked');
    // Well before the next round.
    expect(Date.now() - t0).toBeLessThan(CHOKE_INTERVAL_MS / 2);
  }, 40_000);
});
