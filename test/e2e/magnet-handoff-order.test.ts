/**
 * The magnet hand-over gives the download the metadata phase's connections seeders first
 * (docs/DESIGN.md, "Magnet hand-over"). With `--max-peers 1` the download admits one of them:
 * a partial peer that happened to connect first must not take the only slot from a seeder that
 * was connected too (it held it for `--peer-timeout` waiting for pieces the peer does not have,
 * then the seeder was dialled again).
 */
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();
const PIECE = 32 * 1024;
/** The seeder's bytes reach tdl this late: the partial peer is attached first. */
const SEEDER_DELAY_MS = 300;

/** A TCP relay to `port` that holds the first bytes from upstream for `delayMs`; counts connections. */
async function delayingRelay(port: number, delayMs: number) {
  const state = { port: 0, connections: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    state.connections++;
    const upstream = net.connect({ host: '127.0.0.1', port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pause();
    const t = setTimeout(() => upstream.pipe(client), delayMs);
    client.on('close', () => clearTimeout(t));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.address() as net.AddressInfo).port;
  fx.onClose(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return state;
}

describe('magnet hand-over order', () => {
  it('--max-peers 1 keeps the connected seeder, not a partial peer that connected first', async () => {
    const data = randomBytesSeeded(24 * PIECE + 1234, 'handoff-order');
    const t = makeTorrent({ name: 'm.bin', pieceLength: PIECE, files: { data } });
    const info = parseTorrent(t.torrent).info;
    // Half the pieces and no metadata: it only shows a bitfield.
    const partial = await fx.seeder(t, PIECE, { pieces: (i) => i < 12 });
    const seeder = await fx.seeder(t, PIECE, { metadata: info });
    const relay = await delayingRelay(seeder.port, SEEDER_DELAY_MS);
    const out = path.join(fx.dir, 'out.bin');
    const link =
      `magnet:?xt=urn:btih:${t.infoHash.toString('hex')}` +
      `&x.pe=127.0.0.1:${partial.port}&x.pe=127.0.0.1:${relay.port}`;
    const r = await runCli([
      'download',
      link,
      '-o',
      out,
      '--json',
      '--no-dht',
      '--no-listen',
      '--max-peers',
      '1',
      // Long enough that waiting for the partial peer to complete would outlast --timeout.
      '--peer-timeout',
      '30',
      '--timeout',
      '10',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(t.data)).toBe(true);
    // The seeder served everything over the connection that brought the metadata.
    expect(seeder.served).toBe(t.data.length);
    expect(relay.connections).toBe(1);
    expect(partial.served).toBe(0);
  }, 60_000);
});
