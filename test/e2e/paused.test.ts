/**
 * tdl stopped (SIGSTOP, as by Ctrl-Z or a laptop's sleep) for longer than a peer may stay
 * silent: the time it did not run is no peer's fault. On waking, its due timers run before it
 * reads what the peers sent meanwhile; no peer is dropped or snubbed for that time, and no
 * request is asked again of another peer (whose copy then came for nothing).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SNUB_MS } from '../../src/swarm/requests.js';
import { useFixture } from '../helpers/fixture.js';
import { assertBuilt, spawnTdl } from '../helpers/tdl-process.js';
import { randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();

beforeAll(() => assertBuilt());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a download stopped and continued', () => {
  it('judges no peer on the time it was stopped', async () => {
    const PIECE = 32768;
    const data = randomBytesSeeded(2 * 1024 * 1024, 'paused');
    const { t, torrent } = await fx.singleFile(data, PIECE);
    const seeders = [
      await fx.seeder(t, PIECE, { rateLimit: 100_000 }),
      await fx.seeder(t, PIECE, { rateLimit: 100_000 }),
    ];
    const out = path.join(fx.dir, 'got.bin');
    const peers = seeders.flatMap((s) => ['--peer', `127.0.0.1:${s.port}`]);
    const tdl = spawnTdl(
      ['download', torrent, '-o', out, ...peers, '--no-dht', '--port', '0', '--json'],
      fx.onClose,
    );
    const served = () => seeders.reduce((n, s) => n + s.served, 0);
    const deadline = Date.now() + 30_000;
    while (served() < 200_000 && Date.now() < deadline) await sleep(20);
    expect(served()).toBeGreaterThanOrEqual(200_000);
    const pid = tdl.child.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      await sleep(SNUB_MS + 2_000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const { code } = await tdl.exited;
    expect(code, tdl.stderr()).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    const drops = tdl.events.filter((e) => e.event === 'peer' && e['status'] === 'dropped');
    expect(drops.map((e) => e['reason'])).not.toContainEqual(expect.stringMatching(/no data/));
    const done = tdl.events.find((e) => e.event === 'done')!;
    expect(done['wastedBy']).toMatchObject({ afterCancel: 0 });
  }, 90_000);
});
