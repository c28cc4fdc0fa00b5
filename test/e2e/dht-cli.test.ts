/**
 * The DHT through the real CLI, on a loopback network of independent nodes (the npm
 * `bittorrent-dht` package) and no tracker anywhere:
 * - a trackerless .torrent downloads from a seeder that announced itself only to the DHT;
 * - `tdl info` on a magnet link without `tr` or `x.pe` fetches the metadata from a seeder found
 *   through the DHT;
 * - `tdl seed` announces itself, another client's lookup finds it, and a magnet link without
 *   `tr` downloads from it (metadata included).
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
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

  it("a torrent's own nodes start the lookup when the bootstrap node gives nothing", async () => {
    const data = randomBytesSeeded(200_000, 'dht-nodes');
    const a = network.addresses()[0]!;
    const t = makeTorrent({
      name: 'n.bin',
      pieceLength: 32768,
      files: { data },
      extraRoot: { nodes: [[a.host, a.port]] },
    });
    const seeder = await fx.seeder(t, 32768);
    await network.announce(3, t.infoHash, seeder.port);
    const tp = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'n.bin');
    // A bootstrap name that does not resolve (no DNS, as offline): the first lookup has nobody
    // to ask. Its retry waited a minute, past this --timeout; the torrent's nodes that answered
    // their ping now start it again at once.
    const args = ['--json', '--port', '0', '--dht-bootstrap', 'no-such-router.invalid:6881'];
    const r = await runCli(['download', tp, '-o', out, '--timeout', '20', ...args]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
  }, 60_000);

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

  it('on a terminal, the metadata line says how many DHT nodes tdl knows', async () => {
    const magnet = `magnet:?xt=urn:btih:${'cd'.repeat(20)}`;
    const r = await runCli(['info', magnet, '--timeout', '2', ...bootstrap()], { tty: true });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/fetching metadata from 0 of 0 peers \(0 known, dht [1-9]\d* nodes\)/);
  }, 30_000);

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

  it('the progress line shows the DHT nodes known and the peers the DHT found', async () => {
    const data = randomBytesSeeded(600_000, 'dht-progress');
    const t = makeTorrent({ name: 'p.bin', pieceLength: 32768, files: { data } });
    // Slow enough for a few progress lines.
    const seeder = await fx.seeder(t, 32768, { rateLimit: 300 * 1024 });
    await network.announce(3, t.infoHash, seeder.port);
    const out = path.join(fx.dir, 'p.bin');
    const tp = await fx.writeTorrent(t);
    // A wide terminal: on a narrow one the DHT's figures are the first to go.
    const r = await runCli(['download', tp, '-o', out, '--port', '0', ...bootstrap()], {
      tty: true,
      columns: 200,
    });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\r\x1b[2K').filter((l) => l.includes('%'));
    // `dht N/M`: at least the bootstrap node, and the seeder.
    const counts = lines.flatMap((l) => {
      const m = / dht (\d+)\/(\d+) /.exec(l);
      return m ? [[Number(m[1]), Number(m[2])]] : [];
    });
    expect(counts.length, JSON.stringify(lines.slice(0, 3))).toBeGreaterThan(0);
    expect(counts.some(([nodes, peers]) => nodes! >= 1 && peers! >= 1)).toBe(true);
  }, 60_000);

  it('a DHT that cannot run is a warning: a magnet with an IPv6 --bind downloads from x.pe', async () => {
    const data = randomBytesSeeded(200_000, 'dht-bind6');
    const t = makeTorrent({ name: 'b.bin', pieceLength: 32768, files: { data } });
    // On ::1: with --bind ::1, tdl connects from there, so only IPv6 peers can be reached.
    const seeder = await fx.seeder(t, 32768, {
      metadata: parseTorrent(t.torrent).info,
      host: '::1',
    });
    const magnet = `magnet:?xt=urn:btih:${t.infoHash.toString('hex')}&x.pe=[::1]:${seeder.port}`;
    const out = path.join(fx.dir, 'b.bin');
    const r = await runCli([
      'download',
      magnet,
      '-o',
      out,
      '--port',
      '0',
      '--bind',
      '::1',
      '--timeout',
      '40',
      ...bootstrap(),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('tdl: warning: the DHT is IPv4 only: not used with --bind ::1');
    expect((await readFile(out)).equals(data)).toBe(true);
  }, 60_000);

  it('a bad --dht-bootstrap is a usage error naming it, before any announce', async () => {
    const tr = await fx.tracker([]);
    const t = makeTorrent({
      name: 'x.bin',
      pieceLength: 32768,
      files: { data: randomBytesSeeded(1000, 'x') },
      announce: tr.url,
    });
    const out = path.join(fx.dir, 'x-out');
    const r = await runCli([
      'download',
      await fx.writeTorrent(t),
      '-o',
      out,
      '--dht-bootstrap',
      'foo',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--dht-bootstrap foo: expected HOST:PORT');
    expect(tr.announces).toHaveLength(0);
    await expect(readdir(fx.dir)).resolves.not.toContain('x-out');
    const magnet = 'magnet:?xt=urn:btih:' + 'ab'.repeat(20);
    for (const [node, message] of [
      ['h:0', '--dht-bootstrap h:0'],
      ['[::1]:6881', '--dht-bootstrap [::1]:6881: the DHT is IPv4 only'],
    ] as const) {
      const info = await runCli(['info', magnet, '--dht-bootstrap', node]);
      expect(info.code).toBe(2);
      expect(info.stderr).toContain(message);
    }
    // With --no-dht it has nothing to do: said so, not dropped without a word.
    const off = await runCli([
      'download',
      await fx.writeTorrent(t),
      '-o',
      out,
      '--no-dht',
      '--dht-bootstrap',
      '127.0.0.1:9',
      '--peer',
      '127.0.0.1:9',
      '--no-listen',
      '--timeout',
      '1',
    ]);
    expect(off.code).toBe(4);
    expect(off.stderr).toContain('tdl: warning: --dht-bootstrap is not used with --no-dht\n');
    // tdl info of a magnet link too.
    const info = await runCli([
      'info',
      `magnet:?xt=urn:btih:${t.infoHash.toString('hex')}`,
      '--no-dht',
      '--dht-bootstrap',
      '127.0.0.1:9',
      '--peer',
      '127.0.0.1:9',
      '--timeout',
      '1',
    ]);
    expect(info.code).toBe(4);
    expect(info.stderr).toContain('tdl: warning: --dht-bootstrap is not used with --no-dht\n');
    // A .torrent with --peer asks no DHT either: said too.
    const peer = await runCli([
      'download',
      await fx.writeTorrent(t),
      '-o',
      out,
      '--dht-bootstrap',
      '127.0.0.1:9',
      '--peer',
      '127.0.0.1:9',
      '--no-listen',
      '--timeout',
      '1',
    ]);
    expect(peer.code).toBe(4);
    expect(peer.stderr).toContain(
      'tdl: warning: --dht-bootstrap is not used: with --peer, peers come from --peer only\n',
    );
    // A DHT that cannot run (IPv6 --bind) is said once, with that reason, not --peer's.
    const v6 = await runCli([
      'download',
      await fx.writeTorrent(t),
      '-o',
      out,
      '--bind',
      '::1',
      '--dht-bootstrap',
      '127.0.0.1:9',
      '--no-listen',
      '--timeout',
      '1',
    ]);
    expect(v6.code).toBe(4);
    expect(v6.stderr).toContain('tdl: warning: the DHT is IPv4 only: not used with --bind ::1\n');
    expect(v6.stderr).not.toContain('--dht-bootstrap is not used');
  });
});
