/**
 * Two tdl on a network with no tracker and no other DHT node (a LAN, say), each the other's
 * only DHT contact: a seed, then a magnet download of its torrent. Neither has any peer to
 * give the other when it is asked; what brings them together is an announce to the other's
 * node, which the other takes as a peer at once (src/dht/peer-source.ts), and the peers
 * announced to a node before its torrent's lookup began.
 *
 * Its own file, with a DHT cache of its own (this worker's XDG_CACHE_HOME): nodes cached by
 * other tests' networks would find the seed another way.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { freePort } from '../helpers/ports.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();
let cache: string;
let before: string | undefined;

beforeAll(async () => {
  cache = await mkdtemp(path.join(os.tmpdir(), 'tdl-test-dht-pair-'));
  before = process.env['XDG_CACHE_HOME'];
  process.env['XDG_CACHE_HOME'] = cache;
});
afterAll(async () => {
  if (before === undefined) delete process.env['XDG_CACHE_HOME'];
  else process.env['XDG_CACHE_HOME'] = before;
  await rm(cache, { recursive: true, force: true });
});

describe('DHT: two tdl that know only each other', () => {
  it('they find each other: the first to announce is dialled by the other', async () => {
    const data = randomBytesSeeded(300_000, 'dht-pair');
    const t = makeTorrent({ name: 'p.bin', pieceLength: 16384, files: { data } });
    const src = path.join(fx.dir, 'src.bin');
    await writeFile(src, data);
    const tp = await fx.writeTorrent(t);
    const seedPort = await freePort();
    const dlPort = await freePort();
    const stop = new AbortController();
    const seeding = runCli(
      ['seed', tp, '-o', src, '--port', String(seedPort), '--json'].concat([
        '--dht-bootstrap',
        `127.0.0.1:${dlPort}`,
      ]),
      { signal: stop.signal },
    );
    try {
      const out = path.join(fx.dir, 'out.bin');
      const r = await runCli([
        'download',
        `magnet:?xt=urn:btih:${t.infoHash.toString('hex')}`,
        '-o',
        out,
        '--json',
        '--port',
        String(dlPort),
        '--dht-bootstrap',
        `127.0.0.1:${seedPort}`,
        '--timeout',
        '30',
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect((await readFile(out)).equals(data)).toBe(true);
    } finally {
      stop.abort();
      const s = await seeding;
      expect(s.code).toBe(0);
    }
  }, 60_000);
});
