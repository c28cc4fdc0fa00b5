/**
 * Uploading end to end, against the built CLI in child processes: 50 fake leechers at once from
 * one `tdl seed` (memory bounded), the seeding lifecycle (`seed`, `--seed-time`, `--seed-ratio`,
 * `download --seed`), two tdl processes that each start with half the pieces and finish from
 * each other, the choker seen from the leechers (`--upload-slots`, tit for tat), and three tdl
 * processes sharing one throttled seeder (each piece leaves it about once).
 *
 * Runs `node dist/bundle/main.js`: build first (`npm run build`; `npm test` does it).
 */
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, readFile, truncate, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Bitfield } from '../../src/wire/bitfield.js';
import { FakeLeecher } from '../helpers/fake-leecher.js';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { assertBuilt, spawnTdl, until } from '../helpers/tdl-process.js';
import { startHttpTracker } from '../helpers/fake-tracker.js';
import { makeTorrent, randomBytesSeeded, type MadeTorrent } from '../helpers/torrent.js';
import { freePort } from '../helpers/ports.js';

const fx = useFixture();

beforeAll(() => assertBuilt());

let seq = 0;
function peerId(): Buffer {
  return Buffer.from(`-UP0001-${String(++seq).padStart(12, '0')}`);
}

/** A torrent announcing to a tracker that knows no peer, its file, and where its data goes. */
async function prepare(
  size: number,
  pieceLength: number,
  seed: string,
  onDisk: 'all' | 'none' | ((index: number) => boolean) = 'all',
): Promise<{ t: MadeTorrent; data: Buffer; torrent: string; file: string }> {
  const data = randomBytesSeeded(size, seed);
  const { t, torrent } = await fx.singleFile(data, pieceLength);
  const out = path.join(fx.dir, 'out');
  await mkdir(out, { recursive: true });
  const file = path.join(out, 'data.bin');
  if (onDisk === 'all') await writeFile(file, data);
  else if (onDisk !== 'none') await writeFile(`${file}.part`, partial(data, pieceLength, onDisk));
  return { t, data, torrent, file };
}

/** The data with the pieces `keep` rejects zeroed. */
function partial(data: Buffer, pieceLength: number, keep: (index: number) => boolean): Buffer {
  const out = Buffer.alloc(data.length);
  for (let i = 0; i * pieceLength < data.length; i++) {
    if (keep(i)) data.copy(out, i * pieceLength, i * pieceLength, (i + 1) * pieceLength);
  }
  return out;
}

async function leecher(
  t: MadeTorrent,
  port: number,
  from: string,
  check?: { data: Buffer; pieceLength: number },
): Promise<FakeLeecher> {
  const l = await FakeLeecher.connect({
    port,
    infoHash: t.infoHash,
    peerId: peerId(),
    fast: true,
    localAddress: from,
    keepBlocks: false,
    checkAgainst: check,
    connectTimeoutMs: 20_000,
  });
  fx.onClose(() => l.close());
  return l;
}

describe('memory', () => {
  it('50 leechers at once from one tdl seed: all get every byte, peak RSS under 150 MB', async () => {
    const SIZE = 4 * 1024 * 1024;
    const PIECE = 65536;
    const { t, data, torrent, file } = await prepare(SIZE, PIECE, 'fifty');
    const tdl = spawnTdl(
      ['seed', torrent, '-o', file, '--port', '0', '--json', '--max-peers', '60'],
      fx.onClose,
    );
    const port = await tdl.port();
    const leechers = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        leecher(t, port, `127.0.1.${10 + i}`, { data, pieceLength: PIECE }),
      ),
    );
    const got = await Promise.all(
      leechers.map(async (l) => {
        await l.waitHandshake(20_000);
        const n = await l.downloadAll(SIZE, PIECE, { timeoutMs: 150_000 });
        // Done: leave, so the slot goes to the next.
        await l.close();
        return n;
      }),
    );
    expect(got.every((n) => n === SIZE)).toBe(true);
    expect(leechers.map((l) => l.badBlocks).reduce((a, b) => a + b, 0)).toBe(0);
    const rss = tdl.peakRss();
    expect(rss).not.toBeNull();
    expect(rss!).toBeLessThan(150 * 1024 * 1024);
    const progress = tdl.events.filter((e) => e.event === 'progress');
    await until(
      () => tdl.events.filter((e) => e.event === 'progress').length > progress.length,
      5_000,
      'a progress event',
    );
    const last = tdl.events.filter((e) => e.event === 'progress').at(-1)!;
    expect(last['uploaded'] as number).toBeGreaterThanOrEqual(50 * SIZE);
  }, 200_000);
});

describe('seeding lifecycle', () => {
  it('tdl seed refuses incomplete data: exit 5 and a clear message', async () => {
    const { torrent, file } = await prepare(256 * 1024, 32768, 'incomplete', (i) => i < 4);
    const tdl = spawnTdl(['seed', torrent, '-o', file, '--port', '0'], fx.onClose);
    const { code } = await tdl.exited;
    expect(code).toBe(5);
    expect(tdl.stderr()).toMatch(/incomplete \(4 of 8 pieces valid\).*tdl download/);
  });

  it('tdl seed -o where no file of the torrent is: exit 5, saying so, and nothing created', async () => {
    const { torrent } = await prepare(256 * 1024, 32768, 'seed-nothing', 'none');
    const typo = path.join(fx.dir, 'ouy', 'data.bin');
    const tdl = spawnTdl(['seed', torrent, '-o', typo, '--port', '0', '--no-dht'], fx.onClose);
    const { code } = await tdl.exited;
    expect(code).toBe(5);
    // Not "incomplete …: finish it with tdl download": there is nothing there to finish.
    expect(tdl.stderr()).toBe(
      `tdl: no file of this torrent is at ${typo}: -o names where the data is, as given to tdl download\n`,
    );
    expect(existsSync(path.dirname(typo))).toBe(false);
  });

  it('tdl seed --select of a file that is not there, beside one that is: says the selection', async () => {
    const a = randomBytesSeeded(100_000, 'sel-a');
    const b = randomBytesSeeded(50_000, 'sel-b');
    const t = makeTorrent({
      name: 'multi',
      pieceLength: 16384,
      files: [
        { path: ['a.bin'], data: a },
        { path: ['b.bin'], data: b },
      ],
    });
    const tp = path.join(fx.dir, 'sel.torrent');
    await writeFile(tp, t.torrent);
    const out = path.join(fx.dir, 'sel', 'multi');
    await mkdir(out, { recursive: true });
    await writeFile(path.join(out, 'a.bin'), a);
    const r = await runCli(['seed', tp, '-o', out, '--select', '2', '--port', '0', '--no-dht']);
    expect(r.code).toBe(5);
    expect(r.stderr).toBe(
      `tdl: none of the selected files of this torrent is at ${out}: -o names where the data is, ` +
        'as given to tdl download, and the selection the files it holds\n',
    );
  });

  it('tdl seed --seed-time 0.05 exits 0 after about 3 s, with seeding and done events', async () => {
    const { torrent, file } = await prepare(256 * 1024, 32768, 'seed-time');
    const t0 = Date.now();
    const tdl = spawnTdl(
      ['seed', torrent, '-o', file, '--port', '0', '--json', '--seed-time', '0.05'],
      fx.onClose,
    );
    const { code } = await tdl.exited;
    const ms = Date.now() - t0;
    expect(code).toBe(0);
    expect(ms).toBeGreaterThanOrEqual(2_900);
    expect(ms).toBeLessThan(25_000);
    expect(tdl.events.find((e) => e.event === 'seeding')).toBeDefined();
    const done = tdl.events.find((e) => e.event === 'done')!;
    expect(done['uploaded']).toBe(0);
  }, 40_000);

  it('a seed started after a leecher dials it, known from its tracker (announces an hour apart)', async () => {
    const SIZE = 512 * 1024 + 99;
    const data = randomBytesSeeded(SIZE, 'late-seed');
    const leecherPort = await freePort();
    // The tracker lists the leecher alone, to everyone, and asks for announces an hour apart:
    // the leecher can only learn of the seed by being dialled.
    const tr = await startHttpTracker({
      peers: () => [{ host: '127.0.0.1', port: leecherPort }],
      interval: 3600,
    });
    fx.onClose(() => tr.close());
    const t = makeTorrent({
      name: 'data.bin',
      pieceLength: 32768,
      files: { data },
      announce: tr.url,
    });
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'got.bin');
    const leecher = spawnTdl(
      [
        'download',
        torrent,
        '-o',
        out,
        '--json',
        '--no-dht',
        '--port',
        String(leecherPort),
        '--timeout',
        '60',
      ],
      fx.onClose,
    );
    await leecher.waitEvent('started');
    await until(() => tr.announces.length >= 1, 20_000, "the leecher's announce");
    const file = path.join(fx.dir, 'seed.bin');
    await writeFile(file, data);
    const seed = spawnTdl(
      ['seed', torrent, '-o', file, '--port', '0', '--no-dht', '--json'],
      fx.onClose,
    );
    expect((await leecher.exited).code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(
      seed.events.some(
        (e) =>
          e.event === 'peer' &&
          e.status === 'connecting' &&
          e.address === `127.0.0.1:${leecherPort}`,
      ),
    ).toBe(true);
    await seed.interrupt();
  }, 90_000);

  it('a seed given a --peer that is not up yet dials it again until it is', async () => {
    const SIZE = 256 * 1024 + 7;
    const data = randomBytesSeeded(SIZE, 'late-leecher');
    const t = makeTorrent({ name: 'data.bin', pieceLength: 32768, files: { data } });
    const torrent = await fx.writeTorrent(t);
    const leecherPort = await freePort();
    const file = path.join(fx.dir, 'seed.bin');
    await writeFile(file, data);
    const seed = spawnTdl(
      [
        'seed',
        torrent,
        '-o',
        file,
        '--no-listen',
        '--no-dht',
        '--json',
        '--peer',
        `127.0.0.1:${leecherPort}`,
      ],
      fx.onClose,
    );
    // Its first dial is refused: nobody listens there yet.
    await seed.waitEvent('peer', 30_000, (e) => e.status === 'dropped');
    const out = path.join(fx.dir, 'got.bin');
    // The leecher's only address is a dead one: the data can only come from the seed dialling it.
    const leecher = spawnTdl(
      [
        'download',
        torrent,
        '-o',
        out,
        '--no-dht',
        '--port',
        String(leecherPort),
        '--peer',
        '127.0.0.1:1',
        '--timeout',
        '60',
      ],
      fx.onClose,
    );
    expect((await leecher.exited).code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    await seed.interrupt();
  }, 90_000);

  it('download --seed-time alone seeds once complete (it implies --seed)', async () => {
    const { t, data, torrent } = await prepare(256 * 1024, 32768, 'seed-time-implies', 'none');
    const s = await fx.seeder(t, 32768);
    const out = path.join(fx.dir, 'got.bin');
    const tdl = spawnTdl(
      ['download', torrent, '-o', out, '--peer', `127.0.0.1:${s.port}`, '--port', '0'].concat([
        '--json',
        '--seed-time',
        '0.02',
      ]),
      fx.onClose,
    );
    const { code } = await tdl.exited;
    expect(code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(tdl.events.find((e) => e.event === 'seeding')).toBeDefined();
  }, 40_000);

  it('download --seed on a terminal: the summary times the download and the seeding apart', async () => {
    const { t, data, torrent } = await prepare(64 * 1024, 32768, 'seed-summary', 'none');
    const s = await fx.seeder(t, 32768);
    const out = path.join(fx.dir, 'got.bin');
    const peer = ['--peer', `127.0.0.1:${s.port}`, '--no-dht', '--port', '0'];
    // Seeding alone lasts 6 s.
    const r = await runCli(['download', torrent, '-o', out, ...peer, '--seed-time', '0.1'], {
      tty: true,
    });
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    const lines = r.stderr.split(/[\r\n]/).map((l) => l.replace(/^\x1b\[2K/, ''));
    const done = lines.find((l) => l.startsWith('done: '));
    const seeded = lines.find((l) => l.startsWith('seeded: '));
    expect(done, r.stderr).toMatch(/^done: 64\.0 KiB in \d+\.\d s, avg /);
    expect(seeded, r.stderr).toMatch(
      /^seeded: 0 B uploaded \(ratio 0\.00\) in ([6-9]|\d\d)\.\d s from /,
    );
    // The download took a moment, not the seconds spent seeding after it.
    expect(Number(/in (\d+\.\d) s/.exec(done!)![1])).toBeLessThan(6);
  }, 40_000);

  /**
   * `tdl seed` of 1 MiB in 32 KiB pieces, the file changed by `change` once seeding, and a
   * leecher asking for piece `piece`: the seed's exit code and stderr, and the leecher.
   */
  async function changedWhileSeeding(
    name: string,
    change: (file: string, data: Buffer) => Promise<void>,
    piece: number,
  ) {
    const SIZE = 1024 * 1024;
    const PIECE = 32768;
    const { t, data, torrent, file } = await prepare(SIZE, PIECE, name);
    const tdl = spawnTdl(['seed', torrent, '-o', file, '--port', '0', '--json'], fx.onClose);
    const port = await tdl.port();
    await change(file, data);
    const l = await leecher(t, port, '127.0.0.3', { data, pieceLength: PIECE });
    await l.waitHandshake();
    l.interested();
    await until(() => l.framesOf(1).length > 0, 20_000, 'an unchoke');
    l.requestPiece(piece, PIECE);
    const { code } = await tdl.exited;
    return { code, stderr: tdl.stderr(), l };
  }

  it('a file edited in place while seeding: its changed bytes are never served (exit 6)', async () => {
    const { code, stderr, l } = await changedWhileSeeding(
      'edit-while-seeding',
      async (file, data) => {
        // Same size, other bytes in piece 5, a later modification time.
        const edited = Buffer.from(data);
        edited.fill(0x55, 5 * 32768, 6 * 32768);
        await writeFile(file, edited);
        await utimes(file, new Date(), new Date(Date.now() + 10_000));
      },
      5,
    );
    expect(code, stderr).toBe(6);
    expect(stderr).toMatch(
      /data\.bin was modified since it was checked: its data can no longer be served as verified/,
    );
    expect(l.badBlocks).toBe(0);
    expect(l.blockBytes).toBe(0);
  }, 40_000);

  it('a file edited in place right after a block was served: the next block read is not sent (exit 6)', async () => {
    // The look at the file comes after each read: an edit just after a block went out is seen
    // by the next read, not up to seconds later.
    const SIZE = 1024 * 1024;
    const PIECE = 32768;
    const { t, data, torrent, file } = await prepare(SIZE, PIECE, 'edit-between-blocks');
    const tdl = spawnTdl(['seed', torrent, '-o', file, '--port', '0', '--json'], fx.onClose);
    const port = await tdl.port();
    const l = await leecher(t, port, '127.0.0.5', { data, pieceLength: PIECE });
    await l.waitHandshake();
    l.interested();
    await until(() => l.framesOf(1).length > 0, 20_000, 'an unchoke');
    l.requestPiece(0, PIECE);
    await until(() => l.blockBytes >= PIECE, 20_000, 'piece 0');
    const edited = Buffer.from(data);
    edited.fill(0x55, 5 * PIECE, 6 * PIECE);
    await writeFile(file, edited);
    await utimes(file, new Date(), new Date(Date.now() + 10_000));
    l.requestPiece(5, PIECE);
    const { code } = await tdl.exited;
    expect(code, tdl.stderr()).toBe(6);
    expect(tdl.stderr()).toMatch(/data\.bin was modified since it was checked/);
    expect(l.badBlocks).toBe(0);
    expect(l.blockBytes).toBe(PIECE);
  }, 40_000);

  it('a file cut short while seeding: never zeros for its pieces, and the seeding ends (exit 6)', async () => {
    const { code, stderr, l } = await changedWhileSeeding(
      'cut-while-seeding',
      (file, data) => truncate(file, data.length / 2),
      30,
    );
    expect(code, stderr).toBe(6);
    expect(stderr).toMatch(/shorter than its verified data: it changed on disk/);
    // What it got of piece 30, if anything, was a reject: no block of zeros passed for data.
    expect(l.badBlocks).toBe(0);
  }, 40_000);

  it('a file cut short while a tdl downloads from the seed: said once, not once per read', async () => {
    const SIZE = 16 * 1024 * 1024;
    const { torrent, file } = await prepare(SIZE, 256 * 1024, 'cut-under-tdl');
    const seed = spawnTdl(['seed', torrent, '-o', file, '--port', '0', '--json'], fx.onClose);
    const port = await seed.port();
    await truncate(file, SIZE / 4);
    const got = path.join(fx.dir, 'got.bin');
    const dl = spawnTdl(
      ['download', torrent, '-o', got, '--peer', `127.0.0.1:${port}`, '--no-dht', '--timeout', '5'],
      fx.onClose,
    );
    expect((await seed.exited).code, seed.stderr()).toBe(6);
    // The reads in flight that fail after the first add no warning.
    const warned = seed.events.filter(
      (e) => e.event === 'warning' && /shorter than its verified data/.test(String(e['message'])),
    );
    expect(warned).toEqual([]);
    expect(seed.stderr().match(/shorter than its verified data/g)?.length).toBe(1);
    await dl.interrupt();
  }, 60_000);

  it('tdl seed of 4 MiB pieces (read in 1 MiB stretches): a leecher gets every byte right', async () => {
    // Three whole pieces and a short last one, whose last stretch is shorter still.
    const PIECE = 4 * 1024 * 1024;
    const SIZE = 3 * PIECE + 1024 * 1024 + 100_000;
    const { t, data, torrent, file } = await prepare(SIZE, PIECE, 'big-pieces');
    const tdl = spawnTdl(['seed', torrent, '-o', file, '--port', '0', '--json'], fx.onClose);
    const port = await tdl.port();
    const l = await leecher(t, port, '127.0.0.4', { data, pieceLength: PIECE });
    await l.waitHandshake();
    expect(await l.downloadAll(SIZE, PIECE, { timeoutMs: 30_000 })).toBe(SIZE);
    expect(l.badBlocks).toBe(0);
  }, 60_000);

  it('tdl seed of a file longer than the torrent serves it and leaves the extra bytes alone', async () => {
    const { torrent, file, data } = await prepare(64 * 1024, 32768, 'longer-file');
    await appendFile(file, 'extra');
    const tdl = spawnTdl(
      ['seed', torrent, '-o', file, '--port', '0', '--seed-time', '0'],
      fx.onClose,
    );
    const { code } = await tdl.exited;
    expect(code, tdl.stderr()).toBe(0);
    expect(tdl.stderr()).toContain(
      "is longer than the torrent's file: served as it is, the bytes past its end left alone",
    );
    // tdl seed only reads: the user's file is as it was.
    expect((await readFile(file)).equals(Buffer.concat([data, Buffer.from('extra')]))).toBe(true);
  }, 40_000);

  it('tdl seed --seed-ratio 1 exits once a leecher took the whole torrent', async () => {
    const SIZE = 512 * 1024 + 100;
    const PIECE = 32768;
    const { t, data, torrent, file } = await prepare(SIZE, PIECE, 'ratio');
    const tdl = spawnTdl(
      ['seed', torrent, '-o', file, '--port', '0', '--json', '--seed-ratio', '1'],
      fx.onClose,
    );
    const port = await tdl.port();
    await new Promise((r) => setTimeout(r, 1_000));
    expect(tdl.child.exitCode).toBeNull();
    const l = await leecher(t, port, '127.0.0.2', { data, pieceLength: PIECE });
    await l.waitHandshake();
    expect(await l.downloadAll(SIZE, PIECE)).toBe(SIZE);
    expect(l.badBlocks).toBe(0);
    const { code } = await tdl.exited;
    expect(code).toBe(0);
    const done = tdl.events.find((e) => e.event === 'done')!;
    expect(done['uploaded'] as number).toBeGreaterThanOrEqual(SIZE);
  }, 40_000);

  it('tdl download --seed --seed-ratio 1 seeds after completing, then exits', async () => {
    const SIZE = 512 * 1024 + 100;
    const PIECE = 32768;
    const { t, data, torrent, file } = await prepare(SIZE, PIECE, 'download-seed', 'none');
    const seeder = await fx.seeder(t, PIECE);
    const tdl = spawnTdl(
      [
        'download',
        torrent,
        '-o',
        file,
        '--port',
        '0',
        '--json',
        '--peer',
        `127.0.0.1:${seeder.port}`,
        '--seed',
        '--seed-ratio',
        '1',
      ],
      fx.onClose,
    );
    const port = await tdl.port();
    await tdl.waitEvent('seeding', 30_000);
    expect((await readFile(file)).equals(data)).toBe(true);
    expect(tdl.child.exitCode).toBeNull();
    const l = await leecher(t, port, '127.0.0.2', { data, pieceLength: PIECE });
    await l.waitHandshake();
    expect(await l.downloadAll(SIZE, PIECE)).toBe(SIZE);
    const { code } = await tdl.exited;
    expect(code).toBe(0);
    const done = tdl.events.find((e) => e.event === 'done')!;
    expect(done['uploaded'] as number).toBeGreaterThanOrEqual(SIZE);
    expect(done['downloaded']).toBe(SIZE);
    // The average is the download's, up to the `seeding` event; the seeding's time is apart.
    const seedingAt = tdl.events.find((e) => e.event === 'seeding')!['time'] as number;
    expect(done['averageRate']).toBe(Math.round(SIZE / (seedingAt / 1000)));
    expect(done['seedingMs']).toBe((done['elapsedMs'] as number) - seedingAt);
  }, 60_000);

  it("after --seed, the done line gives the download's upload, the seeded line the rest", async () => {
    const SIZE = 256 * 1024;
    const PIECE = 32768;
    const { t, data, torrent, file } = await prepare(SIZE, PIECE, 'seed-summary', 'none');
    const seeder = await fx.seeder(t, PIECE);
    const port = await freePort();
    const run = runCli(
      [
        'download',
        torrent,
        '-o',
        file,
        '--port',
        String(port),
        '--no-dht',
        '--peer',
        `127.0.0.1:${seeder.port}`,
        '--seed-ratio',
        '1',
      ],
      { tty: true },
    );
    // Complete under its final name: seeding has begun (nothing was uploaded before).
    await until(() => existsSync(file) && readFileSync(file).equals(data), 30_000, 'the download');
    const l = await leecher(t, port, '127.0.0.2', { data, pieceLength: PIECE });
    await l.waitHandshake();
    expect(await l.downloadAll(SIZE, PIECE)).toBe(SIZE);
    const r = await run;
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split(/[\r\n]/).map((x) => x.replace('\x1b[2K', ''));
    const done = lines.find((x) => x.startsWith('done: '));
    expect(done).toBeDefined();
    expect(done).not.toMatch(/uploaded/);
    expect(lines.find((x) => x.startsWith('seeded: '))).toMatch(
      /^seeded: 256 KiB uploaded \(ratio 1\.00\) in /,
    );
  }, 60_000);

  for (const extra of [[], ['--seed-time', '0'], ['--seed-ratio', '0']]) {
    it(`tdl download ${extra.join(' ') || 'without --seed'} exits as soon as it is complete`, async () => {
      // A limit of 0 is "as if not seeding": no seeding line, no `seeding` event.
      const SIZE = 256 * 1024;
      const PIECE = 32768;
      const { t, data, torrent, file } = await prepare(
        SIZE,
        PIECE,
        `no-seed${extra.length}`,
        'none',
      );
      const seeder = await fx.seeder(t, PIECE);
      const tdl = spawnTdl(
        [
          'download',
          torrent,
          '-o',
          file,
          '--port',
          '0',
          '--json',
          '--peer',
          `127.0.0.1:${seeder.port}`,
          ...extra,
        ],
        fx.onClose,
      );
      const { code } = await tdl.exited;
      expect(code).toBe(0);
      expect(tdl.events.find((e) => e.event === 'seeding')).toBeUndefined();
      expect(tdl.events.find((e) => e.event === 'done')!['uploaded']).toBe(0);
      expect(tdl.events.find((e) => e.event === 'done')!['seedingMs']).toBeUndefined();
      expect((await readFile(file)).equals(data)).toBe(true);
    }, 60_000);
  }
});

describe('two tdl processes, no seeder anywhere', () => {
  it('each starts with half the pieces and both finish byte for byte', async () => {
    const SIZE = 2 * 1024 * 1024 + 777;
    const PIECE = 32768;
    const data = randomBytesSeeded(SIZE, 'halves');
    const { t, torrent } = await fx.singleFile(data, PIECE);
    const pieces = Math.ceil(SIZE / PIECE);
    const a = path.join(fx.dir, 'a.bin');
    const b = path.join(fx.dir, 'b.bin');
    // No resume file: the start-up check finds each half by hashing.
    await writeFile(
      `${a}.part`,
      partial(data, PIECE, (i) => i < pieces / 2),
    );
    await writeFile(
      `${b}.part`,
      partial(data, PIECE, (i) => i >= pieces / 2),
    );
    const [pa, pb] = [await freePort(), await freePort()];
    // Each stays after completing until it has uploaded what the other lacks (its own half,
    // rounded down to 0.0001 of the size: its last block is then sent), or 30 s at most. One
    // ratio for both would let the first to finish leave before the other had all of its half.
    const half = (from: number, to: number): number =>
      Math.min(to * PIECE, SIZE) - Math.min(from * PIECE, SIZE);
    const firstHalf = Math.ceil(pieces / 2);
    const ratioOf = (bytes: number): string => String(Math.floor((bytes / SIZE) * 1e4) / 1e4);
    const args = (out: string, port: number, other: number, ratio: string) => [
      'download',
      torrent,
      '-o',
      out,
      '--json',
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--peer',
      `127.0.0.1:${other}`,
      '--seed',
      '--seed-ratio',
      ratio,
      '--seed-time',
      '0.5',
    ];
    const ta = spawnTdl(args(a, pa, pb, ratioOf(half(0, firstHalf))), fx.onClose);
    const tb = spawnTdl(args(b, pb, pa, ratioOf(half(firstHalf, pieces))), fx.onClose);
    const [sa, sb] = await Promise.all([ta.waitEvent('started'), tb.waitEvent('started')]);
    expect(sa['port']).toBe(pa);
    expect(sb['port']).toBe(pb);
    expect(sa['present'] as number).toBeGreaterThan(0);
    expect(sb['present'] as number).toBeGreaterThan(0);
    const [ea, eb] = await Promise.all([ta.exited, tb.exited]);
    expect(ea.code).toBe(0);
    expect(eb.code).toBe(0);
    expect((await readFile(a)).equals(data)).toBe(true);
    expect((await readFile(b)).equals(data)).toBe(true);
    const da = ta.events.find((e) => e.event === 'done')!;
    const db = tb.events.find((e) => e.event === 'done')!;
    expect((da['downloaded'] as number) + (db['downloaded'] as number)).toBe(SIZE);
    expect(da['uploaded'] as number).toBeGreaterThan(0);
    expect(db['uploaded'] as number).toBeGreaterThan(0);
  }, 90_000);
});

describe('choking', () => {
  /** `tdl seed` of 1 MiB in pieces of 32 KiB, with these options: the torrent and its port. */
  async function seeding(name: string, ...options: string[]) {
    const { t, torrent, file } = await prepare(1024 * 1024, 32768, name);
    const args = ['seed', torrent, '-o', file, '--port', '0', '--json', ...options];
    const tdl = spawnTdl(args, fx.onClose);
    return { t, port: await tdl.port() };
  }
  /** A leecher from `host`, handshaken and interested. */
  async function interestedLeecher(t: MadeTorrent, port: number, host: string) {
    const l = await leecher(t, port, host);
    await l.waitHandshake();
    l.interested();
    return l;
  }

  it('--upload-slots 2 with 5 interested leechers: at most 3 unchoked at once', async () => {
    const { t, port } = await seeding('slots', '--upload-slots', '2');
    const ls = await Promise.all(
      Array.from({ length: 5 }, (_, i) => interestedLeecher(t, port, `127.0.2.${10 + i}`)),
    );
    let most = 0;
    let least = Infinity;
    const end = Date.now() + 13_000; // across one choker round (10 s)
    await until(
      () => {
        const n = ls.filter((l) => !l.choked).length;
        most = Math.max(most, n);
        if (Date.now() > end - 10_000) least = Math.min(least, n);
        return Date.now() > end;
      },
      20_000,
      'the observation',
    );
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThanOrEqual(2);
    expect(least).toBeGreaterThanOrEqual(1);
    expect(ls.every((l) => !l.isClosed)).toBe(true);
  }, 40_000);

  it('a leecher that loses interest stays unchoked, and asks again at once', async () => {
    const { t, port } = await seeding('lazy');
    const l = await interestedLeecher(t, port, '127.0.2.40');
    await until(() => !l.choked, 10_000, 'the unchoke');
    l.notInterested();
    // Another peer comes and goes interested: each time tdl decides again whom it unchokes.
    const other = await interestedLeecher(t, port, '127.0.2.41');
    await until(() => !other.choked, 10_000, "the other's unchoke");
    other.notInterested();
    other.interested();
    await new Promise((r) => setTimeout(r, 300));
    expect(l.choked).toBe(false);
    // Interested again, it is served without a new unchoke.
    const frames = l.frames.length;
    l.interested();
    l.request(3, 0, 16384);
    const piece = await l.waitFor((f) => f.id === 7);
    expect(piece.payload.readUInt32BE(0)).toBe(3);
    expect(l.frames.slice(frames).some((f) => f.id === 0)).toBe(false); // no choke came
  }, 40_000);

  it('one left unchoked that wants again while its slot went to others is choked at once', async () => {
    // One regular slot and the optimistic unchoke: at most two interested peers unchoked.
    const { t, port } = await seeding('over', '--upload-slots', '1');
    const a = await interestedLeecher(t, port, '127.0.2.50');
    await until(() => !a.choked, 10_000, 'the unchoke of the first');
    a.notInterested();
    const others = await Promise.all([
      interestedLeecher(t, port, '127.0.2.51'),
      interestedLeecher(t, port, '127.0.2.52'),
    ]);
    await until(() => others.every((l) => !l.choked), 10_000, 'the others unchoked');
    expect(a.choked).toBe(false); // left unchoked while not interested
    a.interested();
    // Well before the next round (10 s): back to two interested peers unchoked.
    await until(
      () => [a, ...others].filter((l) => !l.choked).length <= 2,
      3_000,
      'one of three choked',
    );
  }, 40_000);

  it('while downloading, a leecher that uploads to tdl gets a regular slot', async () => {
    // 2 MiB to fetch at 64 KiB/s: tdl is still downloading after two choker rounds.
    const SIZE = 4 * 1024 * 1024;
    const PIECE = 32768;
    const pieces = SIZE / PIECE;
    // tdl has the first half; everyone wants from it; one peer also has the second half.
    const { t, data, torrent, file } = await prepare(
      SIZE,
      PIECE,
      'tit-for-tat',
      (i) => i < pieces / 2,
    );
    const tdl = spawnTdl(
      [
        'download',
        torrent,
        '-o',
        file,
        '--port',
        '0',
        '--json',
        '--upload-slots',
        '1',
        '--seed',
        '--seed-time',
        '0.05',
      ],
      fx.onClose,
    );
    const port = await tdl.port();
    const takers = await Promise.all(
      Array.from({ length: 4 }, (_, i) => leecher(t, port, `127.0.3.${10 + i}`)),
    );
    for (const l of takers) {
      await l.waitHandshake();
      l.interested();
    }
    await new Promise((r) => setTimeout(r, 1_000));
    // The uploader: it shows the second half, unchokes tdl and serves it slowly (about 64 KiB/s, so tdl is still downloading at the next round).
    const up = await leecher(t, port, '127.0.3.50');
    await up.waitHandshake();
    const bits = new Bitfield(pieces);
    for (let i = pieces / 2; i < pieces; i++) bits.set(i);
    up.bitfield(bits.toBuffer());
    up.sendMessage({ type: 'unchoke' });
    up.interested();
    let served = 0;
    let next = 0;
    const serve = setInterval(() => {
      for (let k = 0; k < 1; next++) {
        const f = up.frames[next];
        if (!f) break;
        if (f.id !== 6 || f.payload.length !== 12) continue;
        const index = f.payload.readUInt32BE(0);
        const begin = f.payload.readUInt32BE(4);
        const length = f.payload.readUInt32BE(8);
        const start = index * PIECE + begin;
        up.sendMessage({
          type: 'piece',
          index,
          begin,
          block: data.subarray(start, start + length),
        });
        served += length;
        k++;
      }
    }, 250);
    fx.onClose(async () => clearInterval(serve));
    const arrived = Date.now();
    await up.waitFor((f) => f.id === 1, { timeoutMs: 30_000 });
    clearInterval(serve);
    expect(served).toBeGreaterThan(0);
    // It got its slot at a full choker round, not when it arrived (the slot was taken). A
    // round is due every 10 s, but one forced by an early interest can push the next full round
    // to almost 20 s after it, hence 30 s.
    expect(Date.now() - arrived).toBeGreaterThan(3_000);
    expect(Date.now() - arrived).toBeLessThan(30_000);
    expect(takers.filter((l) => !l.choked).length).toBeLessThanOrEqual(1);
  }, 60_000);
});

describe('a flock: three tdl processes on one throttled seeder', () => {
  it('the seeder sends each piece about once: the tdl peers share its pieces out', async () => {
    const SIZE = 3 * 1024 * 1024;
    const PIECE = 65536;
    const data = randomBytesSeeded(SIZE, 'flock');
    const { t, torrent } = await fx.singleFile(data, PIECE);
    // 512 KiB/s to each downloader: 6 s for one of them alone.
    const seed = await fx.seeder(t, PIECE, { rateLimit: 512 * 1024 });
    const ports = [await freePort(), await freePort(), await freePort()];
    const outs = ports.map((_, k) => path.join(fx.dir, `flock${k}.bin`));
    const procs = ports.map((port, k) =>
      spawnTdl(
        [
          'download',
          torrent,
          '-o',
          outs[k]!,
          '--json',
          '--bind',
          '127.0.0.1',
          '--port',
          String(port),
          '--peer',
          `127.0.0.1:${seed.port}`,
          ...ports.filter((p) => p !== port).flatMap((p) => ['--peer', `127.0.0.1:${p}`]),
        ],
        fx.onClose,
      ),
    );
    const exits = await Promise.all(procs.map((p) => p.exited));
    for (const e of exits) expect(e.code).toBe(0);
    for (const out of outs) expect((await readFile(out)).equals(data)).toBe(true);
    // Without the rules the three fetched many of the same pieces from the seeder (each picks
    // at random among the rarest, blind to what the others are fetching): 1.6x the size; 1.04-1.08x
    // with them.
    expect(seed.served).toBeLessThan(1.2 * SIZE);
    const uploaded = procs.map((p) => p.events.find((e) => e.event === 'done')!['uploaded']);
    expect((uploaded as number[]).reduce((a, b) => a + b, 0)).toBeGreaterThan(SIZE);
  }, 90_000);
});

describe('the end of a seed', () => {
  it('--seed-ratio 1: every block counted as sent reaches a leecher that reads late', async () => {
    const SIZE = 1024 * 1024;
    const PIECE = 65536;
    const { t, data, torrent, file } = await prepare(SIZE, PIECE, 'ratio-end');
    const tdl = spawnTdl(
      ['seed', torrent, '-o', file, '--port', '0', '--json', '--seed-ratio', '1'],
      fx.onClose,
    );
    const port = await tdl.port();
    const l = await leecher(t, port, '127.0.0.1', { data, pieceLength: PIECE });
    await l.waitHandshake();
    l.interested();
    await l.waitFor((f) => f.id === 1);
    // Every block asked for at once.
    for (let i = 0; i < SIZE / PIECE; i++) l.requestPiece(i, PIECE);
    l.pause();
    const talk = setInterval(() => l.keepAlive(), 10);
    // Nothing read for a while: tdl meets the ratio once the sockets hold every block, and
    // stops while they are still on their way. The leecher goes on talking meanwhile, as a
    // client reading slowly does (its `have`s), past the 1.5 s a silent peer is given.
    await new Promise((r) => setTimeout(r, 2_500));
    clearInterval(talk);
    l.resume();
    const exit = await tdl.exited;
    expect(exit.code).toBe(0);
    await until(() => l.isClosed || l.blockBytes >= SIZE, 20_000, 'the last block or the end');
    expect(l.badBlocks).toBe(0);
    expect(l.blockBytes).toBe(SIZE);
  });
});
