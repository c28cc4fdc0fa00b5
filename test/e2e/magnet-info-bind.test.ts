/**
 * `tdl info` with `--bind`: what it opens to read a magnet link (the tracker's announce, the
 * connections to peers) or to fetch a .torrent URL leaves from the bound address (127.0.0.5
 * here), as for `download`, so that a VPN-bound user learns what a link holds without another
 * way out. A value that is not an IP address is a usage error.
 */
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';
import { startWebSeedServer } from '../helpers/web-seed-server.js';

const fx = useFixture();
const PIECE = 32768;
const BIND = '127.0.0.5';

describe('tdl info --bind', () => {
  it('the metadata of a magnet link is fetched from the --bind address', async () => {
    const data = randomBytesSeeded(300_000, 'info-bind');
    const made = makeTorrent({ name: 'b.bin', pieceLength: PIECE, files: { data } });
    const seeder = await fx.seeder(made, PIECE, { metadata: parseTorrent(made.torrent).info });
    const tr = await fx.tracker([seeder]);
    const link =
      `magnet:?xt=urn:btih:${made.infoHash.toString('hex')}` + `&tr=${encodeURIComponent(tr.url)}`;
    const r = await runCli(['info', link, '--json', '--no-dht', '--bind', BIND]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'b.bin' });
    const trackerSaw = tr.announces.map((a) => a.remoteAddress);
    expect(trackerSaw.length).toBeGreaterThan(0);
    expect(new Set(trackerSaw)).toEqual(new Set([BIND]));
    expect(seeder.remoteAddresses.length).toBeGreaterThan(0);
    expect(new Set(seeder.remoteAddresses)).toEqual(new Set([BIND]));
  });

  it('a .torrent URL is fetched from it; a --bind that is not an IP address is a usage error', async () => {
    const made = makeTorrent({
      name: 'u.bin',
      pieceLength: PIECE,
      files: { data: randomBytesSeeded(50_000, 'info-bind-url') },
    });
    const s = await startWebSeedServer({ files: { '/t.torrent': made.torrent } });
    fx.onClose(() => s.close());
    const r = await runCli(['info', `${s.origin}/t.torrent`, '--json', '--bind', BIND]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'u.bin' });
    expect(new Set(s.remoteAddresses)).toEqual(new Set([BIND]));
    const bad = await runCli(['info', 'x.torrent', '--bind', 'localhost']);
    expect(bad.code).toBe(2);
  });
});
