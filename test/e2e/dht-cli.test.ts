/**
 * The DHT through the real CLI, on a loopback network of independent nodes (the npm
 * `bittorrent-dht` package) and no tracker anywhere:
 * - a trackerless .torrent downloads from a seeder that announced itself only to the DHT;
 * - `tdl info` on a magnet link without `tr` or `x.pe` fetches the metadata from a seeder found
 *   through the DHT;
 * - `tdl seed` announces itself, another client's lookup finds it, and a magnet link without
 *   `tr` downloads from it (metadata included).
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { startDhtNetwork, type DhtNetwork } from '../helpers/dht-network.js';
import { useFixture } from '../helpers/fixture.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { freePort } from '../helpers/ports.js';

const fx = useFixture();
let network: DhtNetwork;

beforeAll(async () => {
  network = await startDhtNetwork(20, 7);
}, 60_000);
afterAll(async () => {
  await network?.close();
});

function bootstrap(): string[] {
  const a = network.addresses()[0]!;
  return ['--dht-bootstrap', `${a.host}:${a.port}`];
}

describe('DHT from the CLI (loopback network, no tracker)', () => {
  it('downloads a trackerless torrent from a seeder found only through the DHT', async () => {
    const data = randomBytesSeeded(600_000, 'dht-cli');
    const t = makeTorrent({ name: 'd.bin', pieceLength: 32768, files: { data } });
    const seeder = await fx.seeder(t, 32768);
    await network.announce(3, t.infoHash, seeder.port);
    const tp = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'd.bin');
    const r = await runCli(['download', tp, '-o', out, '--json', '--port', '0', ...bootstrap()]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    const peers = r.events.filter((e) => e['event'] === 'peer' && e['status'] === 'connecting');
    expect(peers.some((e) => e['source'] === 'dht')).toBe(true);
  });

  it('tdl info shows a magnet without tr or x.pe from a seeder found through the DHT', async () => {
    const data = randomBytesSeeded(300_000, 'dht-info');
    const t = makeTorrent({ name: 'i.bin', pieceLength: 16384, files: { data } });
    const seeder = await fx.seeder(t, 16384, { metadata: parseTorrent(t.torrent).info });
    await network.announce(3, t.infoHash, seeder.port);
    const magnet = `magnet:?xt=urn:btih:${t.infoHash.toString('hex')}`;
    const r = await runCli(['info', magnet, '--json', ...bootstrap()]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      name: 'i.bin',
      infoHash: t.infoHash.toString('hex'),
      size: data.length,
    });
    expect(seeder.metadataServed).toBeGreaterThan(0);
    // Without the DHT nothing is left to ask: no peers (exit 4, as for such a .torrent), at once.
    const off = await runCli(['info', magnet, '--no-dht']);
    expect(off.code).toBe(4);
    expect(off.stderr).toContain('names no tracker and no peer, and the DHT is off');
  });

  it('tdl seed announces itself; a lookup finds it; a magnet without tr downloads from it', async () => {
    const data = randomBytesSeeded(500_000, 'dht-magnet');
    const t = makeTorrent({ name: 'm.bin', pieceLength: 16384, files: { data } });
    const src = path.join(fx.dir, 'src.bin');
    await writeFile(src, data);
    const tp = await fx.writeTorrent(t);
    const port = await freePort();
    const stop = new AbortController();
    const seeding = runCli(
      ['seed', tp, '-o', src, '--port', String(port), '--json', ...bootstrap()],
      { signal: stop.signal },
    );
    try {
      // Another DHT client finds the announce of tdl's seeder.
      let found: { host: string; port: number }[] = [];
      for (let i = 0; i < 60 && !found.some((p) => p.port === port); i++) {
        await new Promise((r) => setTimeout(r, 500));
        found = await network.lookup(5, t.infoHash);
      }
      expect(found.map((p) => p.port)).toContain(port);
      const out = path.join(fx.dir, 'm-out.bin');
      const magnet = `magnet:?xt=urn:btih:${t.infoHash.toString('hex')}&dn=m.bin`;
      const r = await runCli([
        'download',
        magnet,
        '-o',
        out,
        '--json',
        '--port',
        '0',
        ...bootstrap(),
      ]);
      expect(r.code).toBe(0);
      expect((await readFile(out)).equals(data)).toBe(true);
      expect(r.events.some((e) => e['event'] === 'metadata' && e['state'] === 'done')).toBe(true);
    } finally {
      stop.abort();
      const s = await seeding;
      expect(s.code).toBe(0);
    }
  }, 60_000);
});
