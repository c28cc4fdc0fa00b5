/**
 * A peer and tdl dial each other at once: both must keep the same one of the two connections
 * (the one the greater peer id dialled, as libtorrent decides), whichever reached each first.
 * Keeping each its first one closed both, and two tdl then waited 3.5 s to dial again.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encode } from '../../src/metainfo/bencode.js';
import { runCli } from '../helpers/cli.js';
import { compactPeers, startHttpTracker } from '../helpers/fake-tracker.js';
import { useFixture } from '../helpers/fixture.js';
import { freePort } from '../helpers/ports.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();

describe('a peer that dials tdl while tdl dials it', () => {
  it('tdl keeps the connection the greater peer id dialled, though it came second', async () => {
    const PIECE = 32768;
    const data = randomBytesSeeded(1024 * 1024, 'dial-both-ways');
    const t0 = makeTorrent({ name: 'got.bin', pieceLength: PIECE, files: { data } });
    // About 2.5 s of download: time for the second connection while the first one serves.
    const s = await fx.seeder(t0, PIECE, { rateLimit: 400_000 });
    // The tracker names the seeder only once it has dialled tdl, so tdl's own dial comes second.
    let dialled: () => void = () => {};
    const seederDialled = new Promise<void>((r) => (dialled = r));
    const tr = await startHttpTracker({
      handler: (_req, res) => {
        void seederDialled.then(() =>
          res.end(
            encode({
              interval: 1800,
              peers: compactPeers([{ host: '127.0.0.1', port: s.port }], 4),
            }),
          ),
        );
      },
    });
    fx.onClose(() => tr.close());
    const t = makeTorrent({
      name: 'got.bin',
      pieceLength: PIECE,
      files: { data },
      announce: tr.url,
    });
    const port = await freePort();
    const out = path.join(fx.dir, 'got.bin');
    const run = runCli([
      'download',
      await fx.writeTorrent(t),
      '-o',
      out,
      '--json',
      '--no-dht',
      '--port',
      String(port),
    ]);
    // The seeder dials tdl once it listens, and serves it; tdl asks for blocks on that one.
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (
        await s.dial(port).then(
          () => true,
          () => false,
        )
      )
        break;
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 20));
    }
    while (s.requests === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(s.requests).toBeGreaterThan(0);
    dialled();
    const r = await run;
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    // tdl's id (-TD…) is greater than the seeder's (-FK…): its own dial is the one both keep,
    // and the seeder's, taken first, goes.
    const dropped = r.events.filter((e) => e['event'] === 'peer' && e['status'] === 'dropped');
    expect(dropped.map((e) => e['reason'])).toContain(
      'already connected to this peer (both sides dialled: the other connection is kept)',
    );
    expect(dropped).not.toContainEqual(
      expect.objectContaining({
        address: `127.0.0.1:${s.port}`,
        reason: 'already connected to this peer',
      }),
    );
  });

  it('with every slot taken, the peer whose id is greater keeps its own dial', async () => {
    const PIECE = 32768;
    const data = randomBytesSeeded(1024 * 1024, 'dial-both-ways-full');
    const t = makeTorrent({ name: 'got.bin', pieceLength: PIECE, files: { data } });
    // `-ZZ…` is greater than tdl's `-TD…`: the seeder's dial is the one both sides keep.
    const greater = await fx.seeder(t, PIECE, {
      rateLimit: 200_000,
      peerId: Buffer.from('-ZZ0001-000000000001'),
    });
    const other = await fx.seeder(t, PIECE, { rateLimit: 200_000 });
    const port = await freePort();
    const out = path.join(fx.dir, 'got.bin');
    const run = runCli([
      'download',
      await fx.writeTorrent(t),
      '-o',
      out,
      '--json',
      '--no-dht',
      '--max-peers',
      '2',
      '--port',
      String(port),
      '--peer',
      `127.0.0.1:${greater.port}`,
      '--peer',
      `127.0.0.1:${other.port}`,
    ]);
    // Both slots taken by tdl's own dials, then the greater one dials tdl.
    const deadline = Date.now() + 30_000;
    while ((greater.requests === 0 || other.requests === 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(greater.requests).toBeGreaterThan(0);
    expect(other.requests).toBeGreaterThan(0);
    await greater.dial(port);
    const r = await run;
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    // tdl closed its own dial, not the seeder's (which a full house turned away before).
    const dropped = r.events.filter((e) => e['event'] === 'peer' && e['status'] === 'dropped');
    expect(dropped).toContainEqual(
      expect.objectContaining({
        address: `127.0.0.1:${greater.port}`,
        reason: 'already connected to this peer (both sides dialled: the other connection is kept)',
      }),
    );
  });
});
