/**
 * `--bind` applies to tdl's own connections too: peers, HTTP and UDP trackers and web seeds see
 * them come from the bound address (127.0.0.5 here), not from the address the system would pick.
 * A value that is not an IP address is a usage error.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { startUdpTracker } from '../helpers/fake-tracker.js';
import { useFixture } from '../helpers/fixture.js';
import { makeTorrent, randomBytesSeeded, type MadeTorrent } from '../helpers/torrent.js';
import { startWebSeedServer, type WebSeedServer } from '../helpers/web-seed-server.js';

const fx = useFixture();
const PIECE = 32768;
const BIND = '127.0.0.5';
const servers: WebSeedServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

/** Downloads `made` (a single file) with `--bind BIND`; checks the exit code and the bytes. */
async function downloadBound(made: MadeTorrent): Promise<void> {
  const torrent = await fx.writeTorrent(made, 'bind.torrent');
  const out = path.join(fx.dir, 'out.bin');
  const args = ['download', torrent, '-o', out, '--bind', BIND, '--port', '0', '--no-dht'];
  const r = await runCli(args);
  expect(r.code, r.stderr).toBe(0);
  expect((await readFile(out)).equals(made.data)).toBe(true);
}

/** Some connections came, all of them from BIND. */
function allFromBind(addresses: (string | undefined)[]): void {
  expect(addresses.length).toBeGreaterThan(0);
  expect(new Set(addresses)).toEqual(new Set([BIND]));
}

describe('--bind for outgoing connections', () => {
  it('peers and an HTTP tracker see tdl come from the --bind address', async () => {
    const data = randomBytesSeeded(300_000, 'bind-peers');
    const made = makeTorrent({ name: 'data.bin', pieceLength: PIECE, files: { data } });
    const seeder = await fx.seeder(made, PIECE);
    const tr = await fx.tracker([seeder]);
    await downloadBound(
      makeTorrent({ name: 'data.bin', pieceLength: PIECE, files: { data }, announce: tr.url }),
    );
    allFromBind(seeder.remoteAddresses);
    allFromBind(tr.announces.map((a) => a.remoteAddress));
  });

  it('an IPv4-mapped --bind is the IPv4 address: IPv4 peers are reached from it', async () => {
    const data = randomBytesSeeded(100_000, 'bind-mapped');
    const made = makeTorrent({ name: 'data.bin', pieceLength: PIECE, files: { data } });
    const seeder = await fx.seeder(made, PIECE);
    const torrent = await fx.writeTorrent(made, 'mapped.torrent');
    const out = path.join(fx.dir, 'mapped.bin');
    const r = await runCli([
      ...['download', torrent, '-o', out, '--bind', `::ffff:${BIND}`, '--port', '0', '--no-dht'],
      ...['--peer', `127.0.0.1:${seeder.port}`],
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    allFromBind(seeder.remoteAddresses);
  });

  it('a UDP tracker and a web seed see it too', async () => {
    const data = randomBytesSeeded(200_000, 'bind-ws');
    const s = await startWebSeedServer({ files: { '/f.bin': data } });
    servers.push(s);
    const udp = await startUdpTracker({ peers: [] });
    fx.onClose(() => udp.close());
    await downloadBound(
      makeTorrent({
        name: 'f.bin',
        pieceLength: PIECE,
        files: { data },
        announce: udp.url,
        extraRoot: { 'url-list': [`${s.origin}/f.bin`] },
      }),
    );
    allFromBind(s.remoteAddresses);
    allFromBind(udp.announces.map((a) => a.remoteAddress));
  });

  it('a .torrent given as a URL is fetched from it too', async () => {
    const data = randomBytesSeeded(100_000, 'bind-url');
    const made = makeTorrent({ name: 'data.bin', pieceLength: PIECE, files: { data } });
    const seeder = await fx.seeder(made, PIECE);
    const s = await startWebSeedServer({ files: { '/t.torrent': made.torrent } });
    servers.push(s);
    const out = path.join(fx.dir, 'url.bin');
    const r = await runCli([
      'download',
      `${s.origin}/t.torrent`,
      '-o',
      out,
      '--bind',
      BIND,
      '--port',
      '0',
      '--no-dht',
      '--peer',
      `127.0.0.1:${seeder.port}`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    allFromBind(s.remoteAddresses);
    allFromBind(seeder.remoteAddresses);
  });

  it('a tracker at an address of the other family is said once and not used; alone, exit 4', async () => {
    const data = randomBytesSeeded(100_000, 'bind-family');
    const made = makeTorrent({ name: 'data.bin', pieceLength: PIECE, files: { data } });
    const seeder = await fx.seeder(made, PIECE);
    const tr = await fx.tracker([seeder]);
    const v6 = 'http://[::1]:9/announce';
    const both = await fx.writeTorrent(
      makeTorrent({
        name: 'data.bin',
        pieceLength: PIECE,
        files: { data },
        announce: v6,
        announceList: [[v6], [tr.url]],
      }),
      'both.torrent',
    );
    const out = path.join(fx.dir, 'fam.bin');
    const opts = ['--bind', BIND, '--port', '0', '--no-dht'];
    const r = await runCli(['download', both, '-o', out, ...opts]);
    expect(r.code, r.stderr).toBe(0);
    const said = `tracker ${v6}: an IPv6 address, not reachable from --bind ${BIND}: not used`;
    expect(r.stderr.split('\n').filter((l) => l.includes(v6))).toEqual([`tdl: warning: ${said}`]);
    // Nothing else to find peers with: said at once, not after --timeout.
    const torrent = await fx.writeTorrent(
      makeTorrent({ name: 'data.bin', pieceLength: PIECE, files: { data }, announce: v6 }),
      'v6.torrent',
    );
    const alone = await runCli(['download', torrent, '-o', `${out}-2`, ...opts]);
    expect(alone.code, alone.stderr).toBe(4);
    expect(alone.stderr).toContain(
      `no tracker tdl can use: ${v6} (an IPv6 address, not reachable from --bind ${BIND})`,
    );
  });

  it('an IPv6 --bind, which runs no DHT, is as --no-dht: nothing else to find peers with, exit 4 at once', async () => {
    const data = randomBytesSeeded(50_000, 'bind-v6-dht');
    const v4 = 'http://127.0.0.1:9/announce';
    const torrent = await fx.writeTorrent(
      makeTorrent({ name: 'data.bin', pieceLength: PIECE, files: { data }, announce: v4 }),
      'v4.torrent',
    );
    const out = path.join(fx.dir, 'v6.bin');
    // A --timeout that the test would notice: before, tdl waited all of it for a DHT not there.
    const args = ['download', torrent, '-o', out, '--bind', '::1', '--port', '0'];
    const r = await runCli([...args, '--timeout', '600']);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain('tdl: warning: the DHT is IPv4 only: not used with --bind ::1');
    expect(r.stderr).toContain(`no tracker tdl can use: ${v4} (an IPv4 address`);
  }, 60_000);

  it('a --bind that is not an IP address is a usage error', async () => {
    const r = await runCli(['download', 'x.torrent', '--bind', 'localhost']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--bind');
    expect(r.stderr).toContain('must be an IP address');
  });

  it('an address this machine does not have is a usage error, said alike listening, with --no-listen and for info', async () => {
    const data = randomBytesSeeded(20_000, 'bind-absent');
    const torrent = await fx.writeTorrent(
      makeTorrent({ name: 'a.bin', pieceLength: PIECE, files: { data } }),
      'absent.torrent',
    );
    const out = path.join(fx.dir, 'absent.bin');
    // 192.0.2.0/24 is for documentation: no machine has it.
    const bind = ['--bind', '192.0.2.7'];
    const said =
      "tdl: --bind 192.0.2.7: cannot use this address (address not available (EADDRNOTAVAIL)): give one of this machine's addresses\n";
    for (const args of [
      ['download', torrent, '-o', out, '--no-dht', '--peer', '127.0.0.1:9', ...bind],
      ['download', torrent, '-o', out, '--no-listen', '--no-dht', '--peer', '127.0.0.1:9', ...bind],
      ['info', torrent, ...bind],
      // No tracker, no DHT, no peer: the address is still the mistake said first.
      ['download', torrent, '-o', out, '--no-dht', ...bind],
      ['seed', torrent, '-o', out, '--no-dht', '--no-listen', ...bind],
    ]) {
      const r = await runCli(args);
      expect(r.code, args[0]).toBe(2);
      expect(r.stderr).toBe(said);
    }
  });
});
