/**
 * Web seeds through the real CLI: a torrent whose only source is its `url-list` downloads, a
 * seed that sends wrong bytes is banned while a good one finishes, --no-web-seeds turns them
 * off, and a magnet link's `ws` and `so` are used (the web seed, the selection).
 */
import { readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { assertBuilt, spawnTdl } from '../helpers/tdl-process.js';
import { useFixture } from '../helpers/fixture.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { startWebSeedServer, type WebSeedServer } from '../helpers/web-seed-server.js';

const fx = useFixture();
beforeAll(() => assertBuilt());
const servers: WebSeedServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function server(
  files: Record<string, Buffer>,
  fault?: 'wrong-bytes' | 'close-each' | 'full-200-close',
) {
  const s = await startWebSeedServer({ files, fault });
  servers.push(s);
  return s;
}

/** A single-file torrent of `data` named f.bin whose one web seed is `${origin}/f.bin`. */
function webSeeded(origin: string, data: Buffer, pieceLength: number) {
  return makeTorrent({
    name: 'f.bin',
    pieceLength,
    files: { data },
    extraRoot: { 'url-list': [`${origin}/f.bin`] },
  });
}

/** `tdl download` of the torrent at `tp` into `out`, with no DHT and no listening port. */
function offline(tp: string, out: string, ...more: string[]) {
  return runCli(['download', tp, '-o', out, '--no-dht', '--no-listen', ...more]);
}

describe('web seeds from the CLI', () => {
  it('downloads a multi-file torrent from its web seed alone, byte for byte', async () => {
    const a = randomBytesSeeded(300_000, 'ws-a');
    const b = randomBytesSeeded(200_000, 'ws-b');
    const s = await server({ '/base/pack/dir/a.bin': a, '/base/pack/b%20c.bin': b });
    const t = makeTorrent({
      name: 'pack',
      pieceLength: 32768,
      files: [
        { path: ['dir', 'a.bin'], data: a },
        { path: ['b c.bin'], data: b },
      ],
      extraRoot: { 'url-list': [`${s.origin}/base/`] },
    });
    const tp = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'pack');
    const r = await runCli(['download', tp, '-o', out, '--json', '--no-dht', '--port', '0']);
    expect(r.code).toBe(0);
    expect((await readFile(path.join(out, 'dir', 'a.bin'))).equals(a)).toBe(true);
    expect((await readFile(path.join(out, 'b c.bin'))).equals(b)).toBe(true);
  });

  it("a magnet link's ws and so: the selected file alone, from the web seed, kept in --save-torrent", async () => {
    const files = ['a', 'b', 'c'].map((n, i) => ({
      path: [`${n}.bin`],
      data: randomBytesSeeded(100_000 + i * 7_777, `ws-magnet-${n}`),
    }));
    const s = await server(Object.fromEntries(files.map((f) => [`/m/${f.path[0]}`, f.data])));
    const t = makeTorrent({ name: 'm', pieceLength: 16384, files });
    // The only peer serves the metadata and has no piece: the data comes from the web seed.
    const peer = await fx.seeder(t, 16384, {
      metadata: parseTorrent(t.torrent).info,
      pieces: () => false,
    });
    const link =
      `magnet:?xt=urn:btih:${t.infoHash.toString('hex')}&x.pe=127.0.0.1:${peer.port}` +
      `&ws=${encodeURIComponent(`${s.origin}/`)}&so=1,7&dn=My+Pack`;
    const out = path.join(fx.dir, 'm');
    const saved = path.join(fx.dir, 'saved.torrent');
    const r = await runCli([
      'download',
      link,
      '-o',
      out,
      '--json',
      '--no-dht',
      '--no-listen',
      '--save-torrent',
      saved,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(out)).toEqual(['b.bin']);
    expect((await readFile(path.join(out, 'b.bin'))).equals(files[1]!.data)).toBe(true);
    expect(r.events.find((e) => e['event'] === 'done')).toMatchObject({ selectedFiles: 1 });
    // dn names the torrent while its metadata is fetched.
    expect(
      r.events.find((e) => e['event'] === 'metadata' && e['state'] === 'fetching'),
    ).toMatchObject({ name: 'My Pack' });
    // so=7 names no file of the three: a warning, not a failure.
    expect(
      r.events.some((e) => e['event'] === 'warning' && /so=: index 7/.test(String(e['message']))),
    ).toBe(true);
    expect(s.requests.length).toBeGreaterThan(0);
    expect(parseTorrent(await readFile(saved)).urlList).toEqual([`${s.origin}/`]);
  });

  it('bans a web seed that sends wrong bytes; a good one finishes', async () => {
    const data = randomBytesSeeded(400_000, 'ws-bad');
    const bad = await server({ '/f.bin': data }, 'wrong-bytes');
    const good = await server({ '/f.bin': data });
    const t = makeTorrent({
      name: 'f.bin',
      pieceLength: 16384,
      files: { data },
      extraRoot: { 'url-list': [`${bad.origin}/f.bin`, `${good.origin}/f.bin`] },
    });
    const tp = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'f.bin');
    const r = await runCli(['download', tp, '-o', out, '--json', '--no-dht', '--port', '0']);
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
  });

  it('bytes a web seed sent and no piece kept are counted as wasted', async () => {
    // The second mirror ignores Range: its reply for a piece past the first mirror's starts at
    // byte 0, and the bytes before that piece are read and dropped.
    const data = randomBytesSeeded(1_000_000, 'ws-waste');
    const good = await server({ '/f.bin': data });
    const whole = await startWebSeedServer({ files: { '/f.bin': data }, fault: 'full-200' });
    servers.push(whole);
    const t = makeTorrent({
      name: 'f.bin',
      pieceLength: 16384,
      files: { data },
      extraRoot: { 'url-list': [`${good.origin}/f.bin`, `${whole.origin}/f.bin`] },
    });
    const tp = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'f.bin');
    const r = await offline(tp, out, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(whole.requests.length).toBeGreaterThan(0);
    const done = r.events.find((e) => e['event'] === 'done')!;
    const by = done['wastedBy'] as Record<string, number>;
    // Asked for a piece past the file's start (which mirror asks first is the machine's), it
    // read and dropped the bytes before it.
    if (whole.requests.some((q) => q.range !== undefined && !q.range.startsWith('bytes=0-'))) {
      expect(by['webSeed']).toBeGreaterThan(0);
    }
    // No peer: every byte kept came from the web seeds.
    expect(done['fromWebSeeds']).toBe(data.length);
    expect(done['peersUsed']).toBe(0);
    expect(done['wasted']).toBe(
      by['hashFailed']! + by['duplicate']! + by['afterCancel']! + by['webSeed']!,
    );
  });

  it('wasted web seed bytes are counted with padding files too (their bytes are never fetched)', async () => {
    // Padded as libtorrent pads: each file starts a piece. Mirror A's replies end 10 bytes short.
    const PL = 16384;
    const a = randomBytesSeeded(70_000, 'pad-a');
    const b = randomBytesSeeded(70_000, 'pad-b');
    const pad = Buffer.alloc(5 * PL - a.length);
    const files = { '/item/a.bin': a, '/item/b.bin': b };
    const short = await startWebSeedServer({ files, fault: 'short-body' });
    const good = await server(files);
    servers.push(short);
    const t = makeTorrent({
      name: 'item',
      pieceLength: PL,
      files: [
        { path: ['a.bin'], data: a },
        { path: ['.pad', String(pad.length)], data: pad, attr: 'p' },
        { path: ['b.bin'], data: b },
      ],
      extraRoot: { 'url-list': [`${short.origin}/`, `${good.origin}/`] },
    });
    const tp = await fx.writeTorrent(t);
    const r = await offline(tp, path.join(fx.dir, 'item'), '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(short.requests.length).toBeGreaterThan(0);
    const done = r.events.find((e) => e['event'] === 'done')!;
    // A's replies brought all but 10 of their bytes; the last piece of each made nothing. The
    // padding (never fetched) is not counted as bytes kept, which hid those bytes.
    const sent = short.requests.reduce((n, q) => {
      const m = /bytes=(\d+)-(\d+)/.exec(q.range ?? '')!;
      return n + Number(m[2]) - Number(m[1]) + 1 - 10;
    }, 0);
    const wasted = (done['wastedBy'] as Record<string, number>)['webSeed']!;
    expect(wasted).toBeGreaterThan(0);
    expect(wasted).toBeLessThanOrEqual(sent);
  });

  it('--bind: a web seed at an address of the other family is said once and left out', async () => {
    const data = randomBytesSeeded(100_000, 'ws-family');
    const good = await server({ '/f.bin': data });
    const v6 = 'http://[::1]:9/f.bin';
    const t = makeTorrent({
      name: 'f.bin',
      pieceLength: 16384,
      files: { data },
      extraRoot: { 'url-list': [v6, `${good.origin}/f.bin`] },
    });
    const tp = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'f.bin');
    const r = await offline(tp, out, '--bind', '127.0.0.1');
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(r.stderr).toBe(
      `tdl: warning: web seed ${v6}: an IPv6 address, not reachable from --bind 127.0.0.1: not used\n`,
    );
    // With it the only source: exit 4 at once, naming it (it waited --timeout, naming nothing).
    const only = makeTorrent({
      name: 'f.bin',
      pieceLength: 16384,
      files: { data },
      extraRoot: { 'url-list': [v6] },
    });
    const op = await fx.writeTorrent(only, 'only.torrent');
    const alone = await offline(op, path.join(fx.dir, 'alone.bin'), '--bind', '127.0.0.1');
    expect(alone.code, alone.stderr).toBe(4);
    expect(alone.stderr).toBe(
      `tdl: the torrent names no tracker, its web seeds cannot be reached from --bind 127.0.0.1 (${v6}), and the DHT is off: give peers with --peer HOST:PORT\n`,
    );
  });

  it('--max-download-rate holds web seeds too', async () => {
    const data = randomBytesSeeded(2 * 1024 * 1024, 'ws-rate');
    const s = await server({ '/f.bin': data });
    const t = webSeeded(s.origin, data, 32768);
    const tp = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'f.bin');
    const started = performance.now();
    const r = await offline(tp, out, '--json', '--max-download-rate', '256K');
    const seconds = (performance.now() - started) / 1000;
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    // 8 s at the limit, less what the two requests in flight read past it (a chunk each).
    expect(seconds).toBeGreaterThan(5);
  }, 60_000);

  it('--max-download-rate with servers that close after each reply: no crash, every byte', async () => {
    // A read held by the limit leaves the HTTP parser paused when the server closes (undici 7
    // threw from the socket's end handler then: exit 1). With and without Range support.
    const data = randomBytesSeeded(6 * 1024 * 1024 + 99, 'ws-close');
    for (const mode of ['close-each', 'full-200-close'] as const) {
      const s = await server({ '/f.bin': data }, mode);
      // Small pieces: many replies, many chances for one to end while its read is held.
      const t = webSeeded(s.origin, data, 16384);
      const tp = await fx.writeTorrent(t, `${mode}.torrent`);
      const out = path.join(fx.dir, `${mode}.bin`);
      // The shipped bundle, whose undici is patched (scripts/bundle.mjs), in its own process:
      // the crash was an uncaught exception there.
      const tdl = spawnTdl(
        ['download', tp, '-o', out, '--no-dht', '--no-listen', '--max-download-rate', '8M'],
        fx.onClose,
      );
      expect((await tdl.exited).code, tdl.stderr()).toBe(0);
      expect((await readFile(out)).equals(data)).toBe(true);
    }
  }, 60_000);

  it('--timeout: web seed bytes still arriving are data, a piece slower than it is not a stall', async () => {
    // One 512 KiB piece at 64 KiB/s: 8 s for the piece, bytes every second or so.
    const data = randomBytesSeeded(512 * 1024, 'ws-timeout');
    const s = await server({ '/f.bin': data });
    const t = webSeeded(s.origin, data, 512 * 1024);
    const tp = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'f.bin');
    const r = await offline(tp, out, '--json', '--max-download-rate', '64K', '--timeout', '4');
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
  }, 60_000);

  it('--timeout: bytes of replies that always break before a piece is whole are no data', async () => {
    // Every reply is 10 bytes short. Asked every 5 s (the back-off), each sent bytes within the
    // 6 s of --timeout, and the download, getting nothing, ran for good.
    const data = randomBytesSeeded(16384, 'ws-fruitless');
    const s = await startWebSeedServer({ files: { '/f.bin': data }, fault: 'short-body' });
    servers.push(s);
    const tp = await fx.writeTorrent(webSeeded(s.origin, data, 16384));
    const r = await offline(tp, path.join(fx.dir, 'f.bin'), '--timeout', '6');
    // Nothing ever came: exit 4, naming the web seed's fault.
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(
      /no usable peer within 6s \(.*web seed .*: body does not match its Content-Length\)/,
    );
    expect(s.requests.length).toBeGreaterThanOrEqual(3);
  }, 90_000);

  it('a web seed failing for a while is asked again within --timeout, not only after it', async () => {
    const data = randomBytesSeeded(50_000, 'ws-back-off');
    const up = await startWebSeedServer({ files: { '/f.bin': data }, fault: 'server-error' });
    servers.push(up);
    const t = webSeeded(up.origin, data, 16384);
    const tp = await fx.writeTorrent(t);
    // 503 for 9 s: asked at 0 and 5 s, then (backing off 10 s) at 15 s, past a 14 s --timeout.
    // At most a third of --timeout apart, the third try (at 10 s) finds it answering.
    const heal = setTimeout(() => up.setFault('none'), 9_000);
    try {
      const r = await offline(tp, path.join(fx.dir, 'f.bin'), '--timeout', '14');
      expect(r.code, r.stderr).toBe(0);
    } finally {
      clearTimeout(heal);
    }
    expect((await readFile(path.join(fx.dir, 'f.bin'))).equals(data)).toBe(true);
  }, 60_000);

  it('a mirror that never answers gives its pieces up to a good one within --timeout', async () => {
    const data = randomBytesSeeded(1024 * 1024, 'ws-mirrors');
    const hang = await startWebSeedServer({ files: { '/f.bin': data }, fault: 'stall-headers' });
    const good = await startWebSeedServer({ files: { '/f.bin': data } });
    servers.push(hang, good);
    const t = makeTorrent({
      name: 'f.bin',
      pieceLength: 65536,
      files: { data },
      extraRoot: { 'url-list': [`${hang.origin}/f.bin`, `${good.origin}/f.bin`] },
    });
    const tp = await fx.writeTorrent(t);
    // The silent mirror was waited on 20 s, past the --timeout, while the good one sat idle.
    const r = await offline(tp, path.join(fx.dir, 'f.bin'), '--timeout', '8');
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(path.join(fx.dir, 'f.bin'))).equals(data)).toBe(true);
    expect(hang.requests.length).toBeGreaterThan(0);
  }, 60_000);

  it('a web seed that fails to the end is named in the exit message', async () => {
    const s = await server({});
    const data = randomBytesSeeded(50_000, 'ws-gone');
    const t = webSeeded(s.origin, data, 16384);
    const tp = await fx.writeTorrent(t);
    const r = await offline(tp, path.join(fx.dir, 'f.bin'), '--timeout', '2');
    expect(r.code).toBe(4);
    const last = r.stderr.trim().split('\n').at(-1)!;
    expect(last).toMatch(/^tdl: no usable peer within 2s/);
    expect(last).toContain(`web seed ${s.origin}/f.bin: HTTP 404`);
  }, 30_000);

  it('a piece held by a very slow peer is fetched from the web seed too', async () => {
    const data = randomBytesSeeded(8 * 65536, 'ws-takeover');
    const web = await server({ '/f.bin': data });
    const t = webSeeded(web.origin, data, 65536);
    // 2 KiB/s: a piece of 64 KiB takes it half a minute, and it keeps sending (never dropped).
    const slow = await fx.seeder(t, 65536, { rateLimit: 2048 });
    const tp = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'f.bin');
    const r = await offline(tp, out, '--peer', `127.0.0.1:${slow.port}`, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    // Not held up until the slow peer had sent its pieces: a generous bound for a busy machine
    // (the download itself takes well under a second).
    const done = r.events.find((e) => e['event'] === 'done')!;
    expect(Number(done['elapsedMs'])).toBeLessThan(15_000);
  }, 90_000);

  it('a web seed that fails while the peers run dry is named in the stall message', async () => {
    const s = await server({});
    const data = randomBytesSeeded(4 * 16384, 'ws-stall');
    const t = webSeeded(s.origin, data, 16384);
    // The peer has half the pieces: the download starts, then nothing more comes.
    const half = await fx.seeder(t, 16384, { pieces: (i) => i < 2 });
    const tp = await fx.writeTorrent(t);
    const r = await offline(
      tp,
      path.join(fx.dir, 'f.bin'),
      '--peer',
      `127.0.0.1:${half.port}`,
      '--timeout',
      '2',
    );
    expect(r.code).toBe(5);
    const last = r.stderr.trim().split('\n').at(-1)!;
    // The peer is named for what it lacks: the pieces still needed.
    expect(last).toMatch(
      /^tdl: no data for 2s \(1 peer connected: 1 with none of the pieces still needed\); 2 pieces still needed, on no connected peer;/,
    );
    expect(last).toContain(`web seed ${s.origin}/f.bin: HTTP 404`);
  }, 30_000);

  it('tdl seed: web seeds bring no peer, so --no-listen with no tracker and no DHT is exit 4', async () => {
    const data = randomBytesSeeded(50_000, 'ws-seed');
    const s = await server({ '/f.bin': data });
    const t = webSeeded(s.origin, data, 16384);
    const tp = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'f.bin');
    await writeFile(out, data);
    const r = await runCli(['seed', tp, '-o', out, '--no-dht', '--no-listen'], {
      signal: AbortSignal.timeout(15_000),
    });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain('no peer can reach this seed');
    expect(s.requests).toEqual([]);
  }, 30_000);

  it('a web seed that holds every piece and sends nothing does not keep a good peer waiting', async () => {
    const data = randomBytesSeeded(128 * 1024, 'ws-hold');
    // Answers nothing: each request waits for its headers timeout (20 s).
    const s = await startWebSeedServer({ files: { '/f.bin': data }, fault: 'stall-headers' });
    servers.push(s);
    const t = webSeeded(s.origin, data, 16384);
    const tp = await fx.writeTorrent(t);
    const peer = await fx.seeder(t, 16384);
    const out = path.join(fx.dir, 'f.bin');
    const started = performance.now();
    const r = await offline(tp, out, '--json', '--peer', `127.0.0.1:${peer.port}`);
    const seconds = (performance.now() - started) / 1000;
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    // The web seed was asked first (it holds its pieces at once), then the peer got them all.
    expect(s.requests.length).toBeGreaterThan(0);
    expect(seconds).toBeLessThan(15);
  }, 60_000);

  it('--no-web-seeds: with no other source, exit 4 at once', async () => {
    const data = randomBytesSeeded(50_000, 'ws-off');
    const s = await server({ '/f.bin': data });
    const t = webSeeded(s.origin, data, 16384);
    const tp = await fx.writeTorrent(t);
    const r = await runCli([
      'download',
      tp,
      '-o',
      path.join(fx.dir, 'x'),
      '--no-web-seeds',
      '--no-dht',
    ]);
    expect(r.code).toBe(4);
    expect(s.requests).toEqual([]);
  });
});
