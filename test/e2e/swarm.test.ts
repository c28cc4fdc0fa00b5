/**
 * Swarm behaviour, in process: many fake seeders at once on 127.0.0.1, driven through the CLI.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Dht } from '../../src/dht/dht.js';
import { encode } from '../../src/metainfo/bencode.js';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { download } from '../../src/swarm/client.js';
import type { PeerAddress } from '../../src/tracker/types.js';
import { runCli } from '../helpers/cli.js';
import type { FakeSeeder } from '../helpers/fake-seeder.js';
import { compactPeers, parseHttpAnnounce, startHttpTracker } from '../helpers/fake-tracker.js';
import { useFixture } from '../helpers/fixture.js';
import { makeTorrent, randomBytesSeeded, type MadeTorrent } from '../helpers/torrent.js';

const fx = useFixture();
const { seeder } = fx;

async function downloadCli(
  t: MadeTorrent,
  seeders: FakeSeeder[],
  extra: string[] = [],
  name = 'out.bin',
) {
  const tp = await fx.writeTorrent(t);
  const out = path.join(fx.dir, name);
  const r = await runCli([
    'download',
    tp,
    '-o',
    out,
    '--json',
    ...seeders.flatMap((s) => ['--peer', `127.0.0.1:${s.port}`]),
    ...extra,
  ]);
  return { r, out };
}

describe('swarm download', () => {
  it('completes when no peer has every piece but together they have all', async () => {
    const data = randomBytesSeeded(40 * 32768 + 5, 21);
    const t = makeTorrent({ name: 's.bin', pieceLength: 32768, files: { data } });
    // Three partial seeders: piece i is on seeders (i mod 3) and ((i + 1) mod 3).
    const seeders = await Promise.all(
      [0, 1, 2].map((k) => seeder(t, 32768, { pieces: (i) => i % 3 === k || (i + 1) % 3 === k })),
    );
    const { r, out } = await downloadCli(t, seeders);
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    for (const s of seeders) expect(s.served).toBeGreaterThan(0);
    // The same partial peers fail the single-peer probe: nobody has every piece.
    const single = await downloadCli(
      t,
      seeders,
      ['--max-peers', '1', '--peer-timeout', '0.5', '--timeout', '2'],
      'single.bin',
    );
    expect(single.r.code).toBe(4);
  });

  it('--max-peers 1: a seed that chokes once we are not interested is no drop of ours', async () => {
    const data = randomBytesSeeded(8 * 32768, 28);
    const t = makeTorrent({ name: 'nc.bin', pieceLength: 32768, files: { data } });
    const s = await seeder(t, 32768, { chokeWhenNotInterested: true });
    const { r, out } = await downloadCli(t, [s], ['--max-peers', '1'], 'nc.bin');
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    const drops = r.events.filter((e) => e['event'] === 'peer' && e['status'] === 'dropped');
    expect(drops.map((e) => e['reason'])).not.toContain('choked us');
  });

  it('--max-peers 1: a lone seeder silent for 15 s is snubbed, not dropped (no other address)', async () => {
    // It ignores every request of its first 8 s (a frozen process): snubbed at 15 s, its
    // requests are asked again and served. "No whole block for 15 s" gives the slot up only to
    // another address waiting for it.
    const data = randomBytesSeeded(8 * 32768, 29);
    const t = makeTorrent({ name: 'fz.bin', pieceLength: 32768, files: { data } });
    const until = Date.now() + 8_000;
    const s = await seeder(t, 32768, { ignoreRequest: () => Date.now() < until });
    const { r, out } = await downloadCli(t, [s], ['--max-peers', '1'], 'fz.bin');
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    const drops = r.events.filter((e) => e['event'] === 'peer' && e['status'] === 'dropped');
    // Closed at the end of the run only.
    expect(drops.map((e) => e['reason'])).toEqual(['run ended']);
  }, 60_000);

  it('spreads the load over four throttled seeders', async () => {
    const data = randomBytesSeeded(4 * 1024 * 1024, 22);
    const t = makeTorrent({ name: 'th.bin', pieceLength: 65536, files: { data } });
    const seeders = await Promise.all(
      [0, 1, 2, 3].map(() => seeder(t, 65536, { rateLimit: 2 * 1024 * 1024 })),
    );
    const { r, out } = await downloadCli(t, seeders);
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    // Each seeder, limited to a quarter of the total, served a fair share.
    for (const s of seeders) expect(s.served).toBeGreaterThan(data.length * 0.15);
    const done = r.events.at(-1)!;
    expect(done['peersUsed']).toBe(4);
  });

  it('drops a corrupting peer among good ones and still writes the right bytes', async () => {
    const data = randomBytesSeeded(2 * 1024 * 1024, 23);
    const t = makeTorrent({ name: 'bad.bin', pieceLength: 32768, files: { data } });
    const bad = await seeder(t, 32768, { corruptAll: true });
    const good = await Promise.all(
      [0, 1].map(() => seeder(t, 32768, { rateLimit: 4 * 1024 * 1024 })),
    );
    const { r, out } = await downloadCli(t, [bad, ...good]);
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    const banned = r.events.filter((e) => e['event'] === 'peer' && e['status'] === 'banned');
    expect(banned.map((e) => e['address'])).toEqual([`127.0.0.1:${bad.port}`]);
    // Not reconnected after the ban.
    expect(bad.connections).toBe(1);
    expect(Number(r.events.at(-1)!['wasted'])).toBeGreaterThan(0);
  });

  it('survives a peer that disconnects in the middle of a piece', async () => {
    const data = randomBytesSeeded(1024 * 1024, 24);
    const t = makeTorrent({ name: 'd.bin', pieceLength: 65536, files: { data } });
    const quitter = await seeder(t, 65536, { disconnectAfterBytes: 100_000 });
    const good = await seeder(t, 65536, { rateLimit: 2 * 1024 * 1024 });
    const { r, out } = await downloadCli(t, [quitter, good]);
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    const drops = r.events.filter((e) => e['event'] === 'peer' && e['status'] === 'dropped');
    expect(drops.some((e) => e['address'] === `127.0.0.1:${quitter.port}`)).toBe(true);
  });

  it('sends cancels in endgame when a duplicated block arrives', async () => {
    const data = randomBytesSeeded(512 * 1024, 25);
    const t = makeTorrent({ name: 'e.bin', pieceLength: 32768, files: { data } });
    const fast = await seeder(t, 32768, { rateLimit: 4 * 1024 * 1024 });
    const slow = await seeder(t, 32768, { rateLimit: 64 * 1024 });
    const { r, out } = await downloadCli(t, [fast, slow]);
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(fast.cancels + slow.cancels).toBeGreaterThan(0);
  });
});

describe('requests a peer never answers', () => {
  it('are given back after the request timeout, even with one peer that answers the rest', async () => {
    const data = randomBytesSeeded(512 * 1024, 26);
    const t = makeTorrent({ name: 'r.bin', pieceLength: 65536, files: { data } });
    // The one seeder silently drops its request for piece 3, block 1, once.
    const s = await seeder(t, 65536, {
      ignoreRequest: (index, begin) => index === 3 && begin === 16384,
    });
    const out = path.join(fx.dir, 'r.bin');
    const started = Date.now();
    const result = await download({
      meta: parseTorrent(t.torrent),
      output: out,
      peers: [s.address],
      maxPeers: 1,
      timeouts: { requestMs: 500 },
      stallTimeoutMs: 10_000,
    });
    expect(result.stats.downloaded).toBe(data.length);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('the first announce, sent before the download starts', () => {
  it('hands its peers and warning to the download, which ends with stopped to the tracker', async () => {
    const data = randomBytesSeeded(256 * 1024, 27);
    const events: string[] = [];
    const peers: PeerAddress[] = [];
    const tracker = await startHttpTracker({
      handler: (req, res) => {
        events.push(parseHttpAnnounce(req.url ?? '')?.event ?? '');
        const reply = { interval: 1800, 'warning message': 'hello from the tracker' };
        res.end(encode({ ...reply, peers: compactPeers(peers, 4) }));
      },
    });
    const dht = new Dht({ port: 0, bind: '127.0.0.1', bootstrap: [], cacheFile: null });
    try {
      const t = makeTorrent({
        name: 'early.bin',
        pieceLength: 32768,
        files: { data },
        announce: tracker.url,
      });
      peers.push((await seeder(t, 32768)).address);
      // The DHT is handed over still starting and is ready only once the tracker has answered:
      // the download cannot start before that answer is in, so it must take the held peers.
      const ready = (async () => {
        while (events.length === 0) await new Promise((r) => setTimeout(r, 5));
        await new Promise((r) => setTimeout(r, 50));
        await dht.start();
        return dht;
      })();
      const warnings: string[] = [];
      const out = path.join(fx.dir, 'early.bin');
      const result = await download({
        meta: parseTorrent(t.torrent),
        output: out,
        dht: ready,
        listen: { port: 0, bind: '127.0.0.1' },
        stallTimeoutMs: 10_000,
        onStart: (d) => d.on('warning', (w) => warnings.push(w)),
      });
      expect(result.stats.downloaded).toBe(data.length);
      expect((await readFile(out)).equals(data)).toBe(true);
      expect(warnings.some((w) => w.includes('hello from the tracker'))).toBe(true);
      expect(events).toEqual(['started', 'completed', 'stopped']);
    } finally {
      await dht.stop();
      await tracker.close();
    }
  });
});
