/**
 * End to end, in process: the real CLI against fake trackers and fake seeders on 127.0.0.1.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import type { FakeSeeder } from '../helpers/fake-seeder.js';
import { encode } from '../../src/metainfo/bencode.js';
import { startHttpTracker, startUdpTracker } from '../helpers/fake-tracker.js';
import { useFixture } from '../helpers/fixture.js';
import { spawnTdl } from '../helpers/tdl-process.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();
const { seeder, tracker, writeTorrent } = fx;

const peerArgs = (...ss: FakeSeeder[]) => ss.flatMap((s) => ['--peer', `127.0.0.1:${s.port}`]);

const PAD_PL = 32 * 1024;

/** a.bin, BEP 47 padding up to `pieces` pieces, then b.bin. */
function paddedTorrent(pieces: number) {
  const a = randomBytesSeeded(40_000, 'pad-a');
  const b = randomBytesSeeded(20_000, 'pad-b');
  const pad = Buffer.alloc(pieces * PAD_PL - a.length);
  const t = makeTorrent({
    name: 'padded',
    pieceLength: PAD_PL,
    files: [
      { path: ['a.bin'], data: a },
      { path: ['.pad', String(pad.length)], data: pad },
      { path: ['b.bin'], data: b },
    ],
    extraInfo: {
      files: [
        { path: ['a.bin'], length: a.length },
        { path: ['.pad', String(pad.length)], length: pad.length, attr: 'p' },
        { path: ['b.bin'], length: b.length },
      ],
    },
  });
  return { t, a, b };
}

describe('single-peer core path', () => {
  it('downloads a single-file torrent through an HTTP tracker, byte for byte', async () => {
    const data = randomBytesSeeded(1024 * 1024 + 123, 1);
    // The tracker URL must be known before the torrent is made: start it first, fill peers later.
    const seeders: FakeSeeder[] = [];
    const tr = await tracker(() => seeders);
    const t = makeTorrent({
      name: 'file.bin',
      pieceLength: 65536,
      files: { data },
      announce: tr.url,
    });
    seeders.push(await seeder(t, 65536));
    const out = path.join(fx.dir, 'out');
    await mkdir(out);
    const r = await runCli(['download', await writeTorrent(t), '-o', out, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((await readFile(path.join(out, 'file.bin'))).equals(data)).toBe(true);
    const kinds = r.events.map((e) => e['event']);
    expect(kinds[0]).toBe('started');
    expect(kinds.at(-1)).toBe('done');
    const done = r.events.at(-1)!;
    expect(done['size']).toBe(data.length);
    expect(done['peersUsed']).toBe(1);
    // The tracker heard started and completed (stopped is sent at exit).
    const events = tr.announces.map((a) => a.event).filter(Boolean);
    expect(events).toContain('started');
    expect(events).toContain('completed');
  });

  it('downloads a multi-file torrent whose pieces cross file boundaries', async () => {
    const files = [
      { path: ['a.txt'], data: randomBytesSeeded(40_000, 2) },
      { path: ['sub', 'b.bin'], data: randomBytesSeeded(1, 3) },
      { path: ['sub', 'empty'], data: Buffer.alloc(0) },
      { path: ['sub', 'deep', 'c.bin'], data: randomBytesSeeded(100_001, 4) },
    ];
    const t = makeTorrent({ name: 'multi', pieceLength: 32768, files });
    const s = await seeder(t, 32768);
    const out = path.join(fx.dir, 'newname');
    const r = await runCli(['download', await writeTorrent(t), '-o', out, ...peerArgs(s)]);
    expect(r.code).toBe(0);
    for (const f of files) {
      expect((await readFile(path.join(out, ...f.path))).equals(f.data)).toBe(true);
    }
  });

  it.each([
    { what: '32 KiB pieces with a 1-byte last piece', pieceLength: 32768, size: 32768 * 5 + 1 },
    {
      what: 'a piece length (8 KiB) smaller than a block',
      pieceLength: 8192,
      size: 8192 * 20 + 100,
    },
  ])('handles $what', async ({ pieceLength, size }) => {
    const data = randomBytesSeeded(size, pieceLength);
    const t = makeTorrent({ name: 'odd.bin', pieceLength, files: { data } });
    const s = await seeder(t, pieceLength);
    const out = path.join(fx.dir, 'odd.bin');
    const r = await runCli(['download', await writeTorrent(t), '-o', out, ...peerArgs(s)]);
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
  });

  it('never asks a peer for blocks of BEP 47 padding, and creates no padding file', async () => {
    const { t, a, b } = paddedTorrent(2);
    const s = await fx.seeder(t, PAD_PL);
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'padded');
    const r = await runCli([
      'download',
      torrent,
      '-o',
      out,
      '--peer',
      `127.0.0.1:${s.port}`,
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    // Sizes count the files' bytes, as tdl info does: padding is neither data nor fetched.
    const size = a.length + b.length;
    expect(r.events.find((e) => e['event'] === 'started')).toMatchObject({ size });
    expect(r.events.find((e) => e['event'] === 'done')).toMatchObject({ size, downloaded: size });
    // The last progress is the run's last figures: the same time as done's.
    const lastTime = (events: typeof r.events) =>
      events.filter((e) => e['event'] === 'progress').at(-1)?.['time'];
    const doneTime = (events: typeof r.events) =>
      events.find((e) => e['event'] === 'done')?.['elapsedMs'];
    expect(lastTime(r.events)).toBe(doneTime(r.events));
    // Complete at the start: 0 both.
    const again = await runCli(['download', torrent, '-o', out, '--peer', '127.0.0.1:9', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(doneTime(again.events)).toBe(0);
    expect(lastTime(again.events) ?? 0).toBe(0);
    expect((await readFile(path.join(out, 'a.bin'))).equals(a)).toBe(true);
    expect((await readFile(path.join(out, 'b.bin'))).equals(b)).toBe(true);
    expect(existsSync(path.join(out, '.pad'))).toBe(false);
    // The last 16 KiB block of piece 1 is all padding: it was never requested.
    expect(s.served).toBe(t.data.length - 16 * 1024);
    // A check's progress counts the same bytes (verify's, and a seed's before it serves).
    const v = await runCli(['verify', torrent, '-o', out, '--json']);
    expect(v.code, v.stderr).toBe(0);
    const checked = { checked: size, total: size, valid: size };
    expect(v.events.filter((e) => e['event'] === 'progress').at(-1)).toMatchObject(checked);
    expect(v.events.find((e) => e['event'] === 'verified')).toMatchObject({ size, valid: size });
    const none = ['--peer', '127.0.0.1:9', '--no-dht', '--seed-time', '0', '--json'];
    const sd = await runCli(['seed', torrent, '-o', out, ...none]);
    expect(sd.code, sd.stderr).toBe(0);
    expect(sd.events.filter((e) => e['event'] === 'checking').at(-1)).toMatchObject(checked);
  });

  it('a piece of BEP 47 padding only is never fetched, and the data needs no peer once there', async () => {
    // Padding up to 3 pieces: piece 2 lies wholly in it.
    const { t, a, b } = paddedTorrent(3);
    const PL = PAD_PL;
    const s = await fx.seeder(t, PL);
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'padded');
    const r = await runCli(['download', torrent, '-o', out, '--peer', `127.0.0.1:${s.port}`]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(path.join(out, 'a.bin'))).equals(a)).toBe(true);
    expect((await readFile(path.join(out, 'b.bin'))).equals(b)).toBe(true);
    // Neither piece 2 nor the last block of piece 1 was asked for.
    expect(s.served).toBe(t.data.length - PL - 16 * 1024);
    // Complete as it is: verify says so, and neither a second download nor a seed needs a peer.
    const none = ['--peer', '127.0.0.1:9', '--no-dht'];
    const v = await runCli(['verify', torrent, '-o', out]);
    expect(v.code, v.stdout).toBe(0);
    expect(v.stdout).toContain('4 of 4 pieces');
    const again = await runCli(['download', torrent, '-o', out, ...none, '--timeout', '5']);
    expect(again.code, again.stderr).toBe(0);
    const seed = await runCli(['seed', torrent, '-o', out, ...none, '--seed-time', '0.01']);
    expect(seed.code, seed.stderr).toBe(0);
    // A limit of 0 checks the data and stops: no seeding line or event to announce it.
    for (const limit of [
      ['--seed-time', '0'],
      ['--seed-ratio', '0'],
    ]) {
      const zero = await runCli(['seed', torrent, '-o', out, ...none, ...limit, '--json']);
      expect(zero.code, zero.stderr).toBe(0);
      expect(zero.events.find((e) => e['event'] === 'seeding')).toBeUndefined();
      const text = await runCli(['seed', torrent, '-o', out, ...none, ...limit]);
      expect(text.stderr).not.toContain('seeding');
    }
    // No peer source at all (no tracker, no --peer, --no-dht): complete data is still done;
    // missing data is refused (exit 4), leaving nothing behind.
    const rerun = await runCli(['download', torrent, '-o', out, '--no-dht']);
    expect(rerun.code, rerun.stderr).toBe(0);
    const fresh = path.join(fx.dir, 'fresh', 'padded');
    const cannot = await runCli(['download', torrent, '-o', fresh, '--no-dht']);
    expect(cannot.code).toBe(4);
    expect(cannot.stderr).toBe(
      'tdl: the torrent names no tracker and the DHT is off: give peers with --peer HOST:PORT\n',
    );
    expect(existsSync(path.join(fx.dir, 'fresh'))).toBe(false);
    // A peer that never answers: exit 4 at --timeout, and nothing of the run is left either
    // (no resume file recording nothing, no folder it made).
    for (const o of [path.join(fx.dir, 'pp', 'newdir') + path.sep, path.join(fx.dir, 'pp', 'x')]) {
      const gone = await runCli([
        'download',
        torrent,
        '-o',
        o,
        '--no-dht',
        '--peer',
        '127.0.0.1:9',
        '--timeout',
        '1',
      ]);
      expect(gone.code, gone.stderr).toBe(4);
      expect(existsSync(path.join(fx.dir, 'pp')), o).toBe(false);
    }
  });

  it('a second tdl on the same output stops at once (exit 6), naming the first', async () => {
    const data = randomBytesSeeded(2 * 1024 * 1024, 'two-on-one');
    const t = makeTorrent({ name: 'two.bin', pieceLength: 32 * 1024, files: { data } });
    const s = await fx.seeder(t, 32 * 1024, { rateLimit: 512 * 1024 });
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'two.bin');
    const peer = ['--peer', `127.0.0.1:${s.port}`, '--no-listen', '--no-dht', '--json'];
    const first = spawnTdl(['download', torrent, '-o', out, ...peer], fx.onClose);
    await first.waitEvent('started');
    const second = await runCli(['download', torrent, '-o', out, ...peer]);
    expect(second.code).toBe(6);
    expect(second.stderr).toMatch(/two\.bin is in use by another tdl \(pid \d+\)/);
    const { code } = await first.exited;
    expect(code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(existsSync(`${out}.tdl-lock`)).toBe(false);
  }, 60_000);

  it("a second tdl through a link to the first one's folder stops at once too", async () => {
    const a = randomBytesSeeded(1024 * 1024, 'two-via-link-a');
    const b = randomBytesSeeded(1024 * 1024, 'two-via-link-b');
    const t = makeTorrent({
      name: 'two',
      pieceLength: 32 * 1024,
      files: [
        { path: ['a.bin'], data: a },
        { path: ['sub', 'b.bin'], data: b },
      ],
    });
    const s = await fx.seeder(t, 32 * 1024, { rateLimit: 512 * 1024 });
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'two');
    const peer = ['--peer', `127.0.0.1:${s.port}`, '--no-listen', '--no-dht', '--json'];
    const first = spawnTdl(['download', torrent, '-o', out, ...peer], fx.onClose);
    await first.waitEvent('started');
    const alias = path.join(fx.dir, 'alias');
    await symlink(out, alias);
    const second = await runCli(['download', torrent, '-o', alias, ...peer]);
    expect(second.code, second.stderr).toBe(6);
    expect(second.stderr).toMatch(/two is in use by another tdl \(pid \d+\)/);
    expect(existsSync(`${alias}.tdl-resume`)).toBe(false);
    const { code } = await first.exited;
    expect(code).toBe(0);
    expect((await readFile(path.join(out, 'sub', 'b.bin'))).equals(b)).toBe(true);
    expect((await readFile(path.join(out, 'a.bin'))).equals(a)).toBe(true);
  }, 60_000);

  it('a peer that never unchokes: the no-peer error says it chokes us', async () => {
    const data = randomBytesSeeded(100_000, 'choker');
    const t = makeTorrent({ name: 'c.bin', pieceLength: 32768, files: { data } });
    const choker = await seeder(t, 32768, { neverUnchoke: true });
    const out = path.join(fx.dir, 'c.bin');
    const args = ['--timeout', '2', ...peerArgs(choker)];
    const r = await runCli(['download', await writeTorrent(t), '-o', out, ...args]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(
      'no usable peer within 2s (1 peer address tried; connected: 1 choking us (not letting us download))',
    );
  });

  it('--max-peers 1 with only a partial peer: the error says it lacks some pieces, not all', async () => {
    const data = randomBytesSeeded(300_000, 'partial-only');
    const t = makeTorrent({ name: 'p.bin', pieceLength: 32768, files: { data } });
    const partial = await seeder(t, 32768, { pieces: (i) => i % 2 === 0 });
    const out = path.join(fx.dir, 'p.bin');
    const args = [
      '--max-peers',
      '1',
      '--peer-timeout',
      '5',
      '--timeout',
      '2',
      ...peerArgs(partial),
    ];
    const r = await runCli(['download', await writeTorrent(t), '-o', out, ...args]);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(
      'connected: 1 with some of the pieces needed but not every piece, which --max-peers 1 asks of its peer',
    );
    expect(r.stderr).not.toContain('none of the pieces');
  });

  it('probes peers in turn: skips an incomplete one, one that never unchokes and a wrong info hash', async () => {
    const data = randomBytesSeeded(300_000, 7);
    const t = makeTorrent({ name: 'p.bin', pieceLength: 32768, files: { data } });
    const partial = await seeder(t, 32768, { pieces: (i) => i !== 3 });
    const choker = await seeder(t, 32768, { neverUnchoke: true });
    const wrong = await seeder(t, 32768, { wrongInfoHash: true });
    const good = await seeder(t, 32768, { haveMessages: true });
    const out = path.join(fx.dir, 'p.bin');
    const r = await runCli([
      'download',
      await writeTorrent(t),
      '-o',
      out,
      '--max-peers',
      '1',
      '--peer-timeout',
      '1',
      '--json',
      ...peerArgs(partial, choker, wrong, good),
    ]);
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(partial.served + choker.served + wrong.served).toBe(0);
    expect(good.served).toBe(data.length);
    const drops = r.events.filter((e) => e['event'] === 'peer' && e['status'] === 'dropped');
    const reasons = drops.map((e) => String(e['reason']));
    expect(reasons.some((x) => x.includes('every piece'))).toBe(true);
    expect(reasons.some((x) => x.includes('unchoke'))).toBe(true);
    expect(reasons.some((x) => x.includes('info hash'))).toBe(true);
  });

  it('fetches a corrupted piece again and still writes the right bytes', async () => {
    const data = randomBytesSeeded(200_000, 8);
    const t = makeTorrent({ name: 'c.bin', pieceLength: 32768, files: { data } });
    const s = await seeder(t, 32768, { corruptPiece: 2 });
    const out = path.join(fx.dir, 'c.bin');
    const r = await runCli([
      'download',
      await writeTorrent(t),
      '-o',
      out,
      '--max-peers',
      '1',
      '--json',
      ...peerArgs(s),
    ]);
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(r.events.at(-1)!['wasted']).toBe(32768);
  });

  it('continues with the next peer when one disconnects halfway, keeping verified pieces', async () => {
    const data = randomBytesSeeded(512 * 1024, 9);
    const t = makeTorrent({ name: 'h.bin', pieceLength: 32768, files: { data } });
    const quitter = await seeder(t, 32768, { disconnectAfterBytes: 256 * 1024 });
    const second = await seeder(t, 32768);
    const out = path.join(fx.dir, 'h.bin');
    const r = await runCli([
      'download',
      await writeTorrent(t),
      '-o',
      out,
      '--max-peers',
      '1',
      ...peerArgs(quitter, second),
    ]);
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(quitter.served).toBeGreaterThan(0);
    // The second seeder only had to send what was not already verified.
    expect(second.served).toBeLessThan(data.length);
  });

  it('starts within seconds when dead trackers come before a working tier', async () => {
    const silentUdp = await startUdpTracker({ dropFirst: Infinity });
    fx.onClose(() => silentUdp.close());
    const seeders: FakeSeeder[] = [];
    const tr = await tracker(() => seeders);
    const data = randomBytesSeeded(300_000, 12);
    const t = makeTorrent({
      name: 'tiers.bin',
      pieceLength: 32768,
      files: { data },
      // First tier: a closed TCP port and a UDP tracker that never answers.
      announceList: [['http://127.0.0.1:1/announce', silentUdp.url], [tr.url]],
    });
    seeders.push(await seeder(t, 32768));
    const out = path.join(fx.dir, 'tiers.bin');
    const started = Date.now();
    const r = await runCli(['download', await writeTorrent(t), '-o', out, '--json']);
    const elapsed = Date.now() - started;
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    // The working second tier is asked at once, not after the first tier's retries (~22 s).
    expect(elapsed).toBeLessThan(5_000);
    console.log(`dead first tier: download done in ${elapsed} ms`);
  });

  it('announces to a private UDP tracker with the passkey of its URL', async () => {
    const data = randomBytesSeeded(100_000, 41);
    const t0 = makeTorrent({ name: 'p.bin', pieceLength: 32768, files: { data } });
    const s = await seeder(t0, 32768);
    const udp = await startUdpTracker({
      peers: [{ host: '127.0.0.1', port: s.port }],
      urlData: '/8f14e45fceea167a/announce',
    });
    fx.onClose(() => udp.close());
    const t = makeTorrent({
      name: 'p.bin',
      pieceLength: 32768,
      files: { data },
      announce: `${udp.url}/8f14e45fceea167a/announce`,
    });
    const out = path.join(fx.dir, 'p.bin');
    const r = await runCli(['download', await writeTorrent(t), '-o', out, '--no-dht']);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain('warning');
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(udp.announces[0]!.urlData).toBe('/8f14e45fceea167a/announce');
  });

  it('--json: progress samples stop where the figures end, so the last is the latest', async () => {
    // The `completed` announce is answered late: the files have their names, the run waits for
    // it (up to 1.5 s), and samples taken meanwhile would run past done's figures.
    const data = randomBytesSeeded(200_000, 77);
    const t0 = makeTorrent({ name: 'late.bin', pieceLength: 32768, files: { data } });
    const s = await seeder(t0, 32768);
    const peer = Buffer.from([127, 0, 0, 1, s.port >> 8, s.port & 0xff]);
    const tr = await startHttpTracker({
      handler: (req, res) => {
        const reply = (): void => {
          res.end(encode({ interval: 1800, peers: peer }));
        };
        if ((req.url ?? '').includes('event=completed')) setTimeout(reply, 1_200);
        else reply();
      },
    });
    fx.onClose(() => tr.close());
    const t = makeTorrent({
      name: 'late.bin',
      pieceLength: 32768,
      files: { data },
      announce: tr.url,
    });
    const out = path.join(fx.dir, 'late.bin');
    const r = await runCli(['download', await writeTorrent(t), '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(tr.announces.map((a) => a.event)).toContain('completed');
    const progress = r.events.filter((e) => e['event'] === 'progress');
    const times = progress.map((e) => Number(e['time']));
    const uploaded = progress.map((e) => Number(e['uploaded']));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(uploaded).toEqual([...uploaded].sort((a, b) => a - b));
    const done = r.events.find((e) => e['event'] === 'done')!;
    expect(progress.at(-1)).toMatchObject({ time: done['elapsedMs'], uploaded: done['uploaded'] });
  });

  it('exits 4 within the deadline when the tracker knows no peers', async () => {
    const tr = await tracker([]);
    const t = makeTorrent({
      name: 'n.bin',
      pieceLength: 16384,
      files: { data: randomBytesSeeded(1000, 10) },
      announce: tr.url,
    });
    const started = Date.now();
    const r = await runCli([
      'download',
      await writeTorrent(t),
      '-o',
      path.join(fx.dir, 'n.bin'),
      '--timeout',
      '2',
    ]);
    expect(r.code).toBe(4);
    expect(Date.now() - started).toBeLessThan(6000);
    expect(r.stderr).toMatch(/no usable peer/);
  });

  it('refuses a path-traversal torrent with exit 3 and writes nothing', async () => {
    const t = makeTorrent({
      name: 'evil',
      pieceLength: 16384,
      files: [{ path: ['..', 'escaped.txt'], data: Buffer.from('x') }],
    });
    const tp = await writeTorrent(t);
    const out = path.join(fx.dir, 'out');
    await mkdir(out);
    const r = await runCli(['download', tp, '-o', out, '--peer', '127.0.0.1:9']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/path/);
    expect(await readdir(out)).toEqual([]);
    expect(existsSync(path.join(fx.dir, 'escaped.txt'))).toBe(false);
  });
});

describe('output naming follows cp', () => {
  it('-o naming an existing folder puts the file inside it; no -o means the current folder', async () => {
    const data = randomBytesSeeded(5000, 11);
    const t = makeTorrent({ name: 'named.bin', pieceLength: 16384, files: { data } });
    const s = await seeder(t, 16384);
    const r = await runCli(['download', await writeTorrent(t), '-o', fx.dir, ...peerArgs(s)]);
    expect(r.code).toBe(0);
    expect((await readFile(path.join(fx.dir, 'named.bin'))).equals(data)).toBe(true);
  });
});

describe('command line', () => {
  it('exits 2 on a bad option and on a missing torrent', async () => {
    expect((await runCli(['download'])).code).toBe(2);
    expect((await runCli(['download', 'x.torrent', '--max-peers', 'zero'])).code).toBe(2);
    const r = await runCli(['download', path.join(fx.dir, 'missing.torrent')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot read/);
  });

  it('exits 3 on a file that is not a torrent', async () => {
    const p = path.join(fx.dir, 'bad.torrent');
    await writeFile(p, 'l-3:e');
    const r = await runCli(['download', p, '--peer', '127.0.0.1:9']);
    expect(r.code).toBe(3);
  });

  it('info prints name, size, files, pieces, trackers and info hash; --json too', async () => {
    const t = makeTorrent({
      name: 'in\x1bfo',
      pieceLength: 16384,
      files: [
        { path: ['a'], data: Buffer.alloc(20000) },
        { path: ['b'], data: Buffer.alloc(5) },
      ],
      announceList: [['http://a.example/announce'], ['udp://b.example:80']],
    });
    const p = await writeTorrent(t);
    const r = await runCli(['info', p]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('in\\x1bfo');
    expect(r.stdout).not.toContain('\x1b');
    expect(r.stdout).toContain(t.infoHash.toString('hex'));
    expect(r.stdout).toContain('tier 2: udp://b.example:80');
    const j = await runCli(['info', p, '--json']);
    const info = JSON.parse(j.stdout) as Record<string, unknown>;
    expect(info['size']).toBe(20005);
    expect(info['pieces']).toBe(2);
    expect(info['infoHash']).toBe(t.infoHash.toString('hex'));
  });
});
