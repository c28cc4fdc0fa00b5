/**
 * A magnet link cannot say whether its torrent is private: the metadata phase asks the DHT like
 * any other. Once the metadata says `private=1` (BEP 27), the torrent's peers come from its
 * trackers alone, and the DHT node stops at once: it no longer answers the DHT's queries, while
 * the download goes on.
 */
import dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();
const PIECE = 16 * 1024;
const sockets: dgram.Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

/** A KRPC `ping` query (BEP 5) with transaction id `t`. */
function ping(t: string): Buffer {
  const id = Buffer.alloc(20, 7);
  return Buffer.concat([
    Buffer.from('d1:ad2:id20:'),
    id,
    Buffer.from(`e1:q4:ping1:t${t.length}:${t}1:y1:qe`),
  ]);
}

describe('DHT: a magnet link whose torrent is private', () => {
  it('stops the DHT node once the metadata says private; the download goes on', async () => {
    const data = randomBytesSeeded(4 * PIECE, 'dht-private-magnet');
    const t = makeTorrent({
      name: 'q.bin',
      pieceLength: PIECE,
      files: { data },
      extraInfo: { private: 1 },
    });
    const info = parseTorrent(t.torrent).info;
    // The data pauses after a piece: the download is still running when the node is pinged.
    const s = await fx.seeder(t, PIECE, {
      metadata: info,
      chokeAfterBytes: PIECE,
      unchokeAfterMs: 4000,
    });
    // The DHT's bootstrap node: it answers nothing, and learns tdl's UDP port from its queries.
    const boot = dgram.createSocket('udp4');
    sockets.push(boot);
    let dhtPort = 0;
    const replies: string[] = [];
    boot.on('message', (m, rinfo) => {
      if (m.includes('1:y1:q')) dhtPort ||= rinfo.port;
      else if (m.includes('1:y1:r')) replies.push(m.toString('latin1'));
    });
    await new Promise<void>((r) => boot.bind(0, '127.0.0.1', r));
    let pinged: Promise<void> | null = null;
    const out = path.join(fx.dir, 'q.bin');
    const magnet = `magnet:?xt=urn:btih:${t.infoHash.toString('hex')}&x.pe=127.0.0.1:${s.port}`;
    const r = await runCli(
      [
        'download',
        magnet,
        '-o',
        out,
        '--json',
        '--port',
        '0',
        '--dht-bootstrap',
        `127.0.0.1:${boot.address().port}`,
        '--timeout',
        '60',
      ],
      {
        onStdout: (stdout) => {
          // Pinged once the metadata is there (the data is still seconds away).
          if (pinged === null && /"event":"metadata"[^\n]*"state":"done"/.test(stdout)) {
            pinged = (async () => {
              await new Promise((r) => setTimeout(r, 300));
              expect(dhtPort).toBeGreaterThan(0);
              for (let i = 0; i < 5; i++) {
                boot.send(ping(`p${i}`), dhtPort, '127.0.0.1');
                await new Promise((r) => setTimeout(r, 200));
              }
            })();
          }
        },
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(pinged).not.toBeNull();
    await pinged;
    expect(replies).toEqual([]);
    expect((await readFile(out)).equals(data)).toBe(true);
  });
});
