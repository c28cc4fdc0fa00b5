/**
 * Who holds a seed's connection and upload slots: peers that want nothing make way for peers
 * that do, and a peer cannot be served outside the upload slots by saying it is not interested.
 * tdl seeds in process (a short idle limit) to fake leechers on 127.0.0.x.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { download } from '../../src/swarm/client.js';
import { FakeLeecher } from '../helpers/fake-leecher.js';
import { useFixture } from '../helpers/fixture.js';
import { until } from '../helpers/tdl-process.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();
const PIECE = 32 * 1024;

/** Seeds `data` in process until the test ends; resolves with the listening port. */
async function seed(
  tag: string,
  size: number,
  o: { maxPeers?: number; uploadSlots?: number; idleWhileCompleteMs?: number },
) {
  const data = randomBytesSeeded(size, tag);
  const t = makeTorrent({ name: `${tag}.bin`, pieceLength: PIECE, files: { data } });
  const file = path.join(fx.dir, `${tag}.bin`);
  await writeFile(file, data);
  const stop = new AbortController();
  let port = 0;
  const running = download({
    meta: parseTorrent(t.torrent),
    output: file,
    seedOnly: true,
    seed: {},
    listen: { port: 0, bind: '127.0.0.1' },
    maxPeers: o.maxPeers,
    uploadSlots: o.uploadSlots,
    timeouts: { idleWhileCompleteMs: o.idleWhileCompleteMs },
    signal: stop.signal,
    onStart: (_d, _plan, info) => (port = info.port),
  });
  running.catch(() => {});
  fx.onClose(async () => {
    stop.abort(new Error('test over'));
    await running.catch(() => {});
  });
  await until(() => port > 0, 10_000, 'the seed listening');
  const leecher = async (i: number, localAddress = `127.0.6.${10 + i}`) => {
    const l = await FakeLeecher.connect({
      port,
      infoHash: t.infoHash,
      fast: true,
      keepBlocks: false,
      peerId: Buffer.from(`-SS0001-${tag.slice(0, 6).padEnd(6, '0')}${String(i).padStart(6, '0')}`),
      localAddress,
    });
    fx.onClose(async () => l.close());
    await l.waitHandshake();
    return l;
  };
  return { t, port, leecher };
}

describe('the connection and upload slots of a seed', () => {
  it('peers that want nothing make way for one that wants pieces', async () => {
    const { leecher } = await seed('idle', 256 * 1024, { maxPeers: 2, idleWhileCompleteMs: 1500 });
    const idle = [await leecher(0), await leecher(1)];
    for (const l of idle) l.haveNone();
    // They keep the connection alive, and want nothing: the seed lets them go.
    const alive = setInterval(() => idle.forEach((l) => l.isClosed || l.keepAlive()), 300);
    try {
      for (const l of idle) await l.waitClosed(15_000);
    } finally {
      clearInterval(alive);
    }
    const honest = await leecher(2);
    honest.interested();
    await until(() => !honest.choked, 10_000, 'the honest leecher unchoked');
    expect(honest.isClosed).toBe(false);
  }, 40_000);

  it('a request after not-interested counts as interest: it takes a slot like any other', async () => {
    // One upload slot (plus the optimistic one): at most two interested peers unchoked.
    const { leecher } = await seed('slots', 4 << 20, { uploadSlots: 1 });
    const a = await leecher(0);
    a.interested();
    await until(() => !a.choked, 10_000, 'a unchoked');
    a.notInterested();
    const b = await leecher(1);
    const c = await leecher(2);
    b.interested();
    c.interested();
    await until(() => !b.choked || !c.choked, 10_000, 'b or c unchoked');
    // a asks for a block while it says it is not interested, and keeps asking.
    let next = 0;
    const ask = setInterval(() => {
      if (!a.choked && !a.isClosed) a.request(next++ % 128, 0, 16384);
    }, 100);
    try {
      await until(
        () => [a, b, c].filter((l) => !l.choked).length <= 2,
        10_000,
        'no more than two unchoked',
      );
      // And it stays so: a is choked or served in a slot, never beside two others.
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, 200));
        expect([a, b, c].filter((l) => !l.choked).length).toBeLessThanOrEqual(2);
      }
    } finally {
      clearInterval(ask);
    }
  }, 40_000);
});
