/**
 * Faults a review found in real swarms, each reproduced in process:
 * - a seeder that chokes us for 11 s and then unchokes is not snubbed at the next tick (no
 *   cancelled requests, no waste, no drop);
 * - with a disk whose writes never finish, the pieces held in memory stay within the budget;
 * - a peer whose blocks each take longer than `--timeout` to arrive, their bytes flowing all the
 *   while, is not taken for a stall: `--timeout` is about no data at all; one that trickles a
 *   byte now and then, never a whole block, is (it held a download at 0 % for ever);
 * - a peer trickling the blocks of a small torrent holds all of them: a good seeder that joins
 *   later is given them once the trickle is measured (test/e2e/trickle-tail.test.ts has many);
 * - a piece that failed with blocks from two peers, beside a proven peer that lacks it, is
 *   fetched again alone by one of the peers that have it;
 * - the only seeder quits and comes back on its address after its retries ran out, while a
 *   partial peer with nothing more for us stays connected: it is dialled again;
 * - the same with every slot (`--max-peers 2`) held by leechers we upload to: the seeder is
 *   dialled beyond the limit and, once it shows pieces we need, a leecher makes way for it.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InterruptedError } from '../../src/errors.js';
import { encode } from '../../src/metainfo/bencode.js';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { Layout } from '../../src/storage/layout.js';
import { WriteCancelled } from '../../src/storage/piece-writes.js';
import { Download } from '../../src/swarm/download.js';
import type { SwarmStorage } from '../../src/swarm/download-api.js';
import { MAX_INFLIGHT_BYTES } from '../../src/swarm/session.js';
import { encodePiece } from '../../src/wire/messages.js';
import { runCli } from '../helpers/cli.js';
import { startFakeSeeder } from '../helpers/fake-seeder.js';
import { compactPeers, startHttpTracker } from '../helpers/fake-tracker.js';
import { useFixture } from '../helpers/fixture.js';
import { freePort } from '../helpers/ports.js';
import { memoryDownload } from '../helpers/memory-download.js';
import { FakeLeecher } from '../helpers/fake-leecher.js';
import { correctBlock, startHostilePeer } from '../helpers/hostile-peer.js';
import { spawnTdl } from '../helpers/tdl-process.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();

/**
 * A Download of `size` seeded bytes from one fake seeder, its pieces written through `storage`
 * (a disk double: made once the torrent's layout is known), its peer id from `id`.
 */
async function throughDisk(
  seed: string,
  size: number,
  pieceLength: number,
  id: string,
  storage: (layout: Layout) => SwarmStorage,
  signal?: AbortSignal,
) {
  const data = randomBytesSeeded(size, seed);
  const t = makeTorrent({ name: `${seed}.bin`, pieceLength, files: { data } });
  const seeder = await fx.seeder(t, pieceLength);
  const meta = parseTorrent(t.torrent);
  const layout = new Layout(meta.files, meta.pieceLength, meta.length);
  const dl = new Download({
    meta,
    layout,
    storage: storage(layout),
    peerId: Buffer.from(`-TD0000-${id}`),
    peers: [{ host: '127.0.0.1', port: seeder.port }],
    stallTimeoutMs: 60_000,
    signal,
  });
  return { dl, seeder, data, layout };
}

/** `tdl download` of the torrent at `tp` into `out` from these peers only (`host:port`). */
function fromPeers(tp: string, out: string, peers: string[], ...more: string[]) {
  const peerArgs = peers.flatMap((p) => ['--peer', p]);
  return runCli(['download', tp, '-o', out, '--no-dht', '--no-listen', ...peerArgs, ...more]);
}

/**
 * A seeder of `data` that stops serving after `bytes`; `quit()` waits for that and closes it
 * (its port refuses connections from then on).
 */
async function seederThatQuits(infoHash: Buffer, data: Buffer, pieceLength: number, bytes: number) {
  const s = await startFakeSeeder({ infoHash, data, pieceLength, disconnectAfterBytes: bytes });
  const quit = async () => {
    const deadline = Date.now() + 10_000;
    while (s.served < bytes) {
      if (Date.now() > deadline) throw new Error('the first seeder was never asked');
      await new Promise((r) => setTimeout(r, 10));
    }
    await s.close();
  };
  return { port: s.port, quit };
}

describe('swarm faults', () => {
  it('one peer listed at two addresses is connected once', async () => {
    // A dual-stack peer, or one on two interfaces, that a tracker lists once per address.
    const data = randomBytesSeeded(2 * 1024 * 1024, 'two-addresses');
    const { t, torrent } = await fx.singleFile(data, 32768);
    const s = await fx.seeder(t, 32768, { host: '0.0.0.0', rateLimit: 4 * 1024 * 1024 });
    const out = path.join(fx.dir, 'two.bin');
    const r = await runCli([
      'download',
      torrent,
      '-o',
      out,
      '--json',
      '--no-dht',
      '--no-listen',
      '--peer',
      `127.0.0.1:${s.port}`,
      '--peer',
      `127.0.0.2:${s.port}`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(r.events.find((e) => e.event === 'done')).toMatchObject({ peersUsed: 1 });
    const ready = r.events.filter((e) => e.event === 'peer' && e.status === 'connected');
    expect(ready).toHaveLength(1);
    // The second address's connection closed at its handshake, saying why.
    expect(
      r.events.some(
        (e) => e.event === 'peer' && /already connected to this peer at /.test(String(e.reason)),
      ),
    ).toBe(true);
  });

  it("a --peer that is tdl's own address is not dialled, and the exit 4 says so", async () => {
    const data = randomBytesSeeded(64 * 1024, 'own-address');
    const { torrent } = await fx.singleFile(data, 32768);
    const port = await freePort();
    const r = await runCli([
      'download',
      torrent,
      '-o',
      path.join(fx.dir, 'own.bin'),
      '--no-dht',
      '--port',
      String(port),
      '--peer',
      `127.0.0.1:${port}`,
      '--timeout',
      '1',
    ]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(
      "no peer address but tdl's own; 1 address left out for being tdl's own",
    );
  });

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
    const r = await fromPeers(tp, out, [`127.0.0.1:${seeder.port}`], '--json');
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
    const r = await fromPeers(tp, out, [peer.hostPort], '--timeout', '3');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(peer.conns).toHaveLength(1);
  }, 60_000);

  it('--timeout fires when the only peer trickles a byte now and then, never a whole block', async () => {
    const pieceLength = 32 * 1024;
    const data = randomBytesSeeded(pieceLength, 'trickle-only');
    const t = makeTorrent({ name: 'trickle.bin', pieceLength, files: { data } });
    // One byte of the block every 200 ms: 15 bytes in the 3 s --timeout below.
    const peer = await startHostilePeer(async (c) => {
      await c.becomeReadySeeder(t.infoHash, 1);
      const r = await c.waitForMessage('request', 60_000);
      const msg = correctBlock(data, pieceLength, r);
      for (let at = 0; at < msg.length && !c.isClosed; at++) {
        await c.write(msg.subarray(at, at + 1));
        await c.sleep(200);
      }
    });
    fx.onClose(() => peer.close());
    const tp = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'trickle.bin');
    const r = await fromPeers(tp, out, [peer.hostPort], '--timeout', '3');
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/no data for 3s/);
  }, 60_000);

  it('a seeder that joins after a trickling peer took every block still gets them', async () => {
    const pieceLength = 32 * 1024;
    const data = randomBytesSeeded(4 * pieceLength, 'trickle-holds-all');
    const t = makeTorrent({ name: 't.bin', pieceLength, files: { data } });
    // Ready at once, it takes every request and sends one byte of a block every 50 ms.
    const slow = await startHostilePeer(async (c) => {
      await c.becomeReadySeeder(t.infoHash, 4);
      const r = await c.waitForMessage('request');
      const piece = encodePiece(r.index, r.begin, Buffer.alloc(r.length));
      for (let i = 0; !c.isClosed; i++) {
        await c.write(piece.subarray(i % piece.length, (i % piece.length) + 1));
        await c.sleep(50);
      }
    });
    fx.onClose(() => slow.close());
    const good = await startFakeSeeder({ infoHash: t.infoHash, data, pieceLength });
    fx.onClose(() => good.close());
    const { dl, bytes } = memoryDownload(t.torrent, {
      peerId: Buffer.from('-TD0000-tricklefirst'),
      peers: [slow.address],
      stallTimeoutMs: 60_000,
      timeouts: { requestMs: 3_000 },
    });
    fx.onClose(async () => dl.close());
    const run = dl.run();
    // The trickling peer holds every block by the time the seeder comes (a later announce).
    const deadline = Date.now() + 10_000;
    const asked = () => slow.conns[0]?.received.filter((m) => m.type === 'request').length ?? 0;
    while (asked() < 8) {
      if (Date.now() > deadline) throw new Error('the trickling peer was never asked');
      await new Promise((r) => setTimeout(r, 50));
    }
    dl.addPeers([good.address], 'tracker');
    await run;
    expect(bytes().equals(data)).toBe(true);
    expect(good.served).toBeGreaterThan(0);
  }, 60_000);

  it('a piece failed by two peers is retried by one that has it, beside a proven peer without it', async () => {
    // Piece 0 comes from a seeder of it alone, which proves itself and stays; piece 1 from two
    // others, split between them, and one of them corrupts it: the piece fails with two
    // contributors, so one peer must fetch it alone. The proven peer lacks it.
    const PL = 512 * 1024;
    const data = randomBytesSeeded(2 * PL, 'claim-failed');
    const t = makeTorrent({ name: 'f.bin', pieceLength: PL, files: { data } });
    const proven = await fx.seeder(t, PL, { pieces: (i) => i === 0 });
    const slow = { pieces: (i: number) => i === 1, rateLimit: 256 * 1024 };
    const liar = await fx.seeder(t, PL, { ...slow, corruptPiece: 1, corruptTimes: 1000 });
    const honest = await fx.seeder(t, PL, slow);
    const tp = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'f.bin');
    const peers = [proven, liar, honest].map((s) => `127.0.0.1:${s.port}`);
    const r = await fromPeers(tp, out, peers, '--json', '--timeout', '20');
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(liar.served).toBeGreaterThan(0);
    expect(honest.served).toBeGreaterThan(0);
  }, 60_000);

  it.each(['--peer', 'a tracker'])(
    'a seeder back on its address after its retries ran out is dialled again beside a useless peer (from %s)',
    async (from) => {
      const PL = 64 * 1024;
      const data = randomBytesSeeded(16 * PL, 'seeder-restarts');
      const t = makeTorrent({ name: 'r.bin', pieceLength: PL, files: { data } });
      // A partial peer that stays: once its four pieces are ours it has nothing more for us.
      const partial = await fx.seeder(t, PL, { pieces: (i) => i < 4 });
      const { port, quit } = await seederThatQuits(t.infoHash, data, PL, 4 * PL);
      const out = path.join(fx.dir, 'r.bin');
      const peers = [`127.0.0.1:${partial.port}`, `127.0.0.1:${port}`];
      let run: ReturnType<typeof runCli>;
      if (from === '--peer') {
        run = fromPeers(await fx.writeTorrent(t), out, peers, '--json', '--timeout', '30');
      } else {
        // A tracker that lists both once, and asks not to be asked again for half an hour.
        const tr = await startHttpTracker({
          handler: (_req, res) => {
            const list = [partial.port, port].map((p) => ({ host: '127.0.0.1', port: p }));
            res.end(encode({ interval: 1800, 'min interval': 1800, peers: compactPeers(list, 4) }));
          },
        });
        fx.onClose(() => tr.close());
        const withTracker = makeTorrent({
          name: 'r.bin',
          pieceLength: PL,
          files: { data },
          announce: tr.url,
        });
        const tp = await fx.writeTorrent(withTracker);
        const opts = ['--no-dht', '--no-listen', '--json', '--timeout', '30'];
        run = runCli(['download', tp, '-o', out, ...opts]);
      }
      // The seeder quits after a few pieces ...
      await quit();
      // ... and restarts on the same port once tdl's retries of it (3 and 6 s apart) have failed.
      await new Promise((r) => setTimeout(r, 11_000));
      const again = await startFakeSeeder({ infoHash: t.infoHash, data, pieceLength: PL, port });
      fx.onClose(() => again.close());
      const r = await run;
      expect(r.code, r.stderr).toBe(0);
      expect((await readFile(out)).equals(data)).toBe(true);
      expect(again.served).toBeGreaterThan(0);
    },
    60_000,
  );

  it.each(['back on its address', 'dialling us'])(
    'a seeder %s while leechers we upload to hold every slot gets one',
    async (how) => {
      const PL = 64 * 1024;
      const data = randomBytesSeeded(16 * PL, 'seeder-returns-to-full-slots');
      const t = makeTorrent({ name: 'f.bin', pieceLength: PL, files: { data } });
      const { port, quit } = await seederThatQuits(t.infoHash, data, PL, 4 * PL);
      const tp = await fx.writeTorrent(t);
      const out = path.join(fx.dir, 'f.bin');
      const tdl = spawnTdl(
        [
          'download',
          tp,
          '-o',
          out,
          '--no-dht',
          '--json',
          '--port',
          '0',
          '--max-peers',
          '2',
          '--peer',
          `127.0.0.1:${port}`,
          '--timeout',
          '30',
        ],
        fx.onClose,
      );
      const listenPort = await tdl.port();
      await quit();
      // Two leechers with nothing take both slots; tdl unchokes them (it has pieces for them).
      for (const localAddress of ['127.0.0.2', '127.0.0.3']) {
        const l = await FakeLeecher.connect({
          port: listenPort,
          infoHash: t.infoHash,
          localAddress,
        });
        fx.onClose(async () => l.close());
        await l.waitHandshake();
        l.bitfield(Buffer.alloc(2));
        l.interested();
      }
      // Back on its address: once tdl's retries of it (3 and 6 s apart) have failed. Dialling
      // us: once no data has come for 5 s with every slot taken (one more connection is let in).
      const back = how === 'back on its address';
      await new Promise((r) => setTimeout(r, back ? 11_000 : 6_000));
      const again = await startFakeSeeder({
        infoHash: t.infoHash,
        data,
        pieceLength: PL,
        ...(back ? { port } : {}),
      });
      fx.onClose(() => again.close());
      if (!back) await again.dial(listenPort);
      const r = await tdl.exited;
      expect(r.code, tdl.stderr()).toBe(0);
      expect((await readFile(out)).equals(data)).toBe(true);
      expect(again.served).toBeGreaterThan(0);
    },
    60_000,
  );

  it('every piece verified, the last writes still going: a seeder dropped as done is not dialled again', async () => {
    // Thousands of files take seconds to write and name at the end; meanwhile the seeder, with
    // nothing left to give, is dropped ("both complete") and must not be dialled every 3 s.
    let last: (() => void) | null = null;
    let writes = 0;
    const { dl, seeder } = await throughDisk(
      'verified-not-written',
      256 * 1024,
      32 * 1024,
      'notwritten01',
      (layout) => ({
        // The last piece's write hangs until the test lets it go.
        writePiece: () =>
          ++writes < layout.pieceCount
            ? Promise.resolve()
            : new Promise<void>((resolve) => (last = resolve)),
        readBlock: () => Promise.reject(new Error('not served')),
      }),
    );
    const events: string[] = [];
    dl.on('peer', (p) => events.push(`${p.status}${p.reason ? ` ${p.reason}` : ''}`));
    const run = dl.run();
    for (let i = 0; i < 200 && !events.includes('dropped both complete'); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(events).toContain('dropped both complete');
    // Past the pool's retry delay (3 s after the drop).
    await new Promise((r) => setTimeout(r, 4_000));
    expect(seeder.connections).toBe(1);
    expect(events.filter((e) => e === 'connecting')).toHaveLength(1);
    (last as (() => void) | null)?.();
    await run;
  }, 30_000);

  it('Ctrl-C waits only for the writes begun, not for those queued behind them', async () => {
    // Thousands of small files: a few MiB of verified pieces queued are thousands of files to
    // write. A run that stops drops the queue (a later run fetches those pieces again).
    // Every write hangs (a disk far behind); the first is "begun", the others queued.
    const queued: { index: number; fail: (e: Error) => void }[] = [];
    let begun: (() => void) | null = null;
    const ctl = new AbortController();
    const { dl } = await throughDisk(
      'queued-writes',
      2 * 1024 * 1024,
      64 * 1024,
      'queuedwrite1',
      () => ({
        writePiece: (index) =>
          new Promise<void>((resolve, fail) => {
            if (begun === null) begun = resolve;
            else queued.push({ index, fail });
          }),
        cancelQueuedWrites: () => {
          for (const q of queued.splice(0)) q.fail(new WriteCancelled(q.index));
          return 0;
        },
        readBlock: () => Promise.reject(new Error('not served')),
      }),
      ctl.signal,
    );
    const run = dl.run().catch((e: Error) => e);
    for (let i = 0; i < 200 && queued.length < 4; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(queued.length).toBeGreaterThanOrEqual(4);
    ctl.abort(new InterruptedError('SIGINT'));
    // The begun write ends; nothing else is waited for.
    setTimeout(() => (begun as (() => void) | null)?.(), 200);
    const settled = await Promise.race([
      run,
      new Promise((r) => setTimeout(() => r('still waiting'), 10_000)),
    ]);
    expect(settled).toBeInstanceOf(InterruptedError);
  }, 30_000);

  it('a disk that never finishes a write: memory held stays within the budget', async () => {
    const pieceLength = 256 * 1024;
    let writes = 0;
    const stuck: (() => void)[] = [];
    const { dl, data } = await throughDisk(
      'slow-disk',
      24 * 1024 * 1024,
      pieceLength,
      'slowdisktest',
      () => ({
        writePiece: () => {
          writes++;
          return new Promise<void>((resolve) => stuck.push(resolve));
        },
        readBlock: () => Promise.reject(new Error('not written')),
      }),
    );
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
