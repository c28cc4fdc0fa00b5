import { Agent } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { TdlError } from '../../src/errors.js';
import { parseTorrent, type Metainfo } from '../../src/metainfo/torrent.js';
import { Layout } from '../../src/storage/layout.js';
import {
  FREE_FILE_FAULTS,
  MAX_BAD_PIECES,
  WebSeed,
  type WebSeedOptions,
} from '../../src/webseed/client.js';
import { WebSeedError, type WebSeedFault } from '../../src/webseed/reply.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';
import {
  startWebSeedServer,
  type ServerFault,
  type WebSeedServer,
} from '../helpers/web-seed-server.js';

const dispatcher = new Agent({ keepAliveTimeout: 1_000 });
afterAll(async () => {
  await dispatcher.destroy();
});

const servers: WebSeedServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function torrent(t: ReturnType<typeof makeTorrent>): { meta: Metainfo; layout: Layout } {
  const meta = parseTorrent(t.torrent);
  return { meta, layout: new Layout(meta.files, meta.pieceLength, meta.length) };
}

// Multi-file: names that need encoding, a piece that crosses three files.
const A = randomBytesSeeded(3000, 'ws-a');
const B = randomBytesSeeded(1000, 'ws-b');
const C = randomBytesSeeded(500, 'ws-c');
const multi = makeTorrent({
  name: 'multi dir',
  pieceLength: 1024,
  files: [
    { path: ['a b', 'x#1.bin'], data: A },
    { path: ['c%.bin'], data: B },
    { path: ['ü?.txt'], data: C },
  ],
});
const multiFiles = {
  '/seed/multi%20dir/a%20b/x%231.bin': A,
  '/seed/multi%20dir/c%25.bin': B,
  '/seed/multi%20dir/%C3%BC%3F.txt': C,
};

const S = randomBytesSeeded(5000, 'ws-single');
const single = makeTorrent({ name: 'single file.bin', pieceLength: 1024, files: { data: S } });

async function server(
  files: Record<string, Buffer>,
  fault?: ServerFault,
  faultCount?: number,
): Promise<WebSeedServer> {
  const s = await startWebSeedServer({ files, fault, faultCount });
  servers.push(s);
  return s;
}

/** A clock the test moves by hand. */
function clock(start = 1_000_000): { now: () => number; t: number } {
  const c = { t: start, now: () => c.t };
  return c;
}

function seedFor(
  url: string,
  t: { meta: Metainfo; layout: Layout },
  opts: WebSeedOptions = {},
): WebSeed {
  return new WebSeed(url, t.meta, t.layout, { dispatcher, timeoutMs: 5_000, ...opts });
}

async function faultOf(p: Promise<unknown>): Promise<WebSeedFault> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(WebSeedError);
    expect(err).toBeInstanceOf(TdlError);
    return (err as WebSeedError).fault;
  }
  throw new Error('expected the fetch to fail');
}

describe('WebSeed.fetchPiece', () => {
  it('fetches every piece of a single-file torrent with range requests', async () => {
    const s = await server({ '/single%20file.bin': S });
    const t = torrent(single);
    const seed = seedFor(`${s.origin}/`, t);
    const got: Buffer[] = [];
    for (let i = 0; i < t.meta.pieceCount; i++) got.push(await seed.fetchPiece(i));
    expect(Buffer.concat(got).equals(S)).toBe(true);
    expect(s.requests.map((r) => r.range)).toEqual([
      'bytes=0-1023',
      'bytes=1024-2047',
      'bytes=2048-3071',
      'bytes=3072-4095',
      'bytes=4096-4999',
    ]);
    expect(seed.bytesFetched).toBe(5000);
    expect(seed.piecesFetched).toBe(5);
    expect(seed.failures).toBe(0);
  });

  it('a single-file URL without a trailing slash is used as it is', async () => {
    const s = await server({ '/mirror/file.bin': S });
    const seed = seedFor(`${s.origin}/mirror/file.bin`, torrent(single));
    expect((await seed.fetchPiece(4)).equals(S.subarray(4096))).toBe(true);
  });

  it('multi-file: one request per file a piece touches, paths percent-encoded', async () => {
    const s = await server(multiFiles);
    const t = torrent(multi);
    const seed = seedFor(`${s.origin}/seed`, t);
    const got: Buffer[] = [];
    for (let i = 0; i < t.meta.pieceCount; i++) got.push(await seed.fetchPiece(i));
    expect(Buffer.concat(got).equals(multi.data)).toBe(true);
    // Piece 3 (bytes 3072..4095) is all in c%.bin; piece 2 crosses from x#1.bin into c%.bin.
    expect(s.requests.slice(2, 4)).toEqual([
      { path: '/seed/multi%20dir/a%20b/x%231.bin', range: 'bytes=2048-2999' },
      { path: '/seed/multi%20dir/c%25.bin', range: 'bytes=0-71' },
    ]);
    expect(s.requests.every((r) => Object.hasOwn(multiFiles, r.path))).toBe(true);
  });

  it('follows a redirect to the same scheme', async () => {
    const s = await server(multiFiles, 'redirect-ok');
    const seed = seedFor(`${s.origin}/seed/`, torrent(multi));
    expect((await seed.fetchPiece(0)).equals(multi.pieces[0]!)).toBe(true);
    expect(s.requests.map((r) => r.path)).toEqual([
      '/seed/multi%20dir/a%20b/x%231.bin',
      '/seed/multi%20dir/a%20b/x%231.bin',
    ]);
  });

  it('accepts a 200 with the whole file when the range is the whole file', async () => {
    const files = [100, 200, 300].map((n, i) => randomBytesSeeded(n, `small-${i}`));
    const small = makeTorrent({
      name: 'small',
      pieceLength: 1024,
      files: files.map((data, i) => ({ path: [`f${i}`], data })),
    });
    const s = await server(
      Object.fromEntries(files.map((d, i) => [`/small/f${i}`, d])),
      'full-200',
    );
    const seed = seedFor(s.origin, torrent(small));
    expect((await seed.fetchPiece(0)).equals(small.data)).toBe(true);
  });

  it('multi-file: a 200 for a range is read from the file start; a run goes on inside that file', async () => {
    // A is 3,000 bytes: pieces 0 and 1 lie wholly inside it, piece 2 reaches into B.
    const s = await server(multiFiles, 'full-200');
    const seed = seedFor(`${s.origin}/seed`, torrent(multi));
    const got: number[] = [];
    const check = (i: number, data: Buffer) => {
      expect(data.equals(multi.pieces[i]!)).toBe(true);
      got.push(i);
    };
    const asked: number[] = [];
    await seed.fetchRun(1, 1, check, undefined, (i) => (asked.push(i), true));
    expect(seed.ignoresRanges).toBe(true);
    expect(seed.bytesSkipped).toBe(1024);
    // The reply went on to the end of A, never into piece 2, which A's bytes cannot fill.
    expect(got).toEqual([1]);
    expect(asked).toEqual([]);
    // Piece 0's reply goes on with piece 1, inside A; then stops.
    await seed.fetchRun(0, 1, check, undefined, (i) => (asked.push(i), true));
    expect(got).toEqual([1, 0, 1]);
    expect(asked).toEqual([1]);
    // The piece across two files: one range per file, each read from its file's start.
    const before = s.requests.length;
    await seed.fetchRun(2, 1, check, undefined, (i) => (asked.push(i), true));
    expect(got.at(-1)).toBe(2);
    expect(s.requests.length - before).toBe(2);
    expect(asked).toEqual([1]);
  });

  it('single-file: a 200 for a range is read from the start, the run taken from it', async () => {
    const s = await server({ '/single%20file.bin': S }, 'full-200');
    const seed = seedFor(`${s.origin}/`, torrent(single));
    const got: number[] = [];
    const check = (i: number, data: Buffer) => {
      expect(data.equals(single.pieces[i]!)).toBe(true);
      got.push(i);
    };
    await seed.fetchRun(1, 1, check);
    expect(got).toEqual([1]);
    expect(seed.ignoresRanges).toBe(true);
    expect(seed.bytesSkipped).toBe(1024);
    // The run goes on while `extend` takes the following pieces, and passes over (reads and
    // drops) those it does not, to reach later ones.
    await seed.fetchRun(2, 1, check, undefined, (i) => i === 3);
    expect(got).toEqual([1, 2, 3]);
    expect(seed.bytesSkipped).toBe(1024 + 2048 + 904);
    await seed.fetchRun(0, 1, check, undefined, (i) => i === 4);
    expect(got).toEqual([1, 2, 3, 0, 4]);
    expect(seed.failures).toBe(0);
    expect(seed.bytesSkipped).toBe(1024 + 2048 + 904 + 3 * 1024);
    // A piece needed but not to be taken yet (`later`): the reply waits for it, drops nothing.
    let asked = 0;
    await seed.fetchRun(3, 1, check, undefined, () => (++asked < 3 ? 'later' : true));
    expect(got).toEqual([1, 2, 3, 0, 4, 3, 4]);
    expect(asked).toBe(3);
    expect(seed.bytesSkipped).toBe(1024 + 2048 + 904 + 3 * 1024 + 3 * 1024);
    // The next piece may wait for the memory the run's own piece holds: that piece is
    // delivered before the run asks to grow, or each waits for the other for good.
    const order: string[] = [];
    await seed.fetchRun(
      1,
      1,
      (i, data) => {
        check(i, data);
        order.push(`piece ${i}`);
      },
      undefined,
      (i) => {
        order.push(`extend ${i}`);
        if (i !== 2) return false;
        return got.at(-1) === 1 ? true : 'later';
      },
    );
    expect(order.slice(0, 3)).toEqual(['piece 1', 'extend 2', 'piece 2']);
  });

  it('BEP 47 padding files are zeros and are never requested', async () => {
    const a = randomBytesSeeded(1000, 'pad-a');
    const b = randomBytesSeeded(1500, 'pad-b');
    const padded = makeTorrent({
      name: 'padded',
      pieceLength: 1024,
      files: [
        { path: ['a'], data: a },
        { path: ['.pad', '24'], data: Buffer.alloc(24) },
        { path: ['b'], data: b },
      ],
    });
    const t = torrent(padded);
    t.meta.files[1]!.padding = true;
    const s = await server({ '/padded/a': a, '/padded/b': b });
    const seed = seedFor(`${s.origin}/`, t);
    const got = [await seed.fetchPiece(0), await seed.fetchPiece(1), await seed.fetchPiece(2)];
    expect(Buffer.concat(got).equals(padded.data)).toBe(true);
    expect(s.requests.some((r) => r.path.includes('.pad'))).toBe(false);
  });

  it('refuses a URL that is not http(s)', () => {
    const t = torrent(single);
    for (const url of ['ftp://h/x', 'file:///etc/passwd', 'not a url']) {
      expect(() => new WebSeed(url, t.meta, t.layout)).toThrow(WebSeedError);
    }
  });
});

describe('WebSeed.fetchRun', () => {
  it('single-file: one request for a run of pieces, each handed over in order', async () => {
    const s = await server({ '/single%20file.bin': S });
    const seed = seedFor(`${s.origin}/`, torrent(single));
    const got: [number, Buffer][] = [];
    await seed.fetchRun(0, 5, (i, d) => got.push([i, d]));
    expect(got.map(([i]) => i)).toEqual([0, 1, 2, 3, 4]);
    got.forEach(([i, d]) => expect(d.equals(single.pieces[i]!)).toBe(true));
    expect(s.requests.map((r) => r.range)).toEqual(['bytes=0-4999']);
    expect(seed.piecesFetched).toBe(5);
  });

  it('multi-file: one request per file the run touches', async () => {
    const s = await server(multiFiles);
    const seed = seedFor(`${s.origin}/seed`, torrent(multi));
    const got: Buffer[] = [];
    await seed.fetchRun(1, 4, (_i, d) => got.push(d));
    expect(Buffer.concat(got).equals(multi.data.subarray(1024))).toBe(true);
    expect(s.requests).toEqual([
      { path: '/seed/multi%20dir/a%20b/x%231.bin', range: 'bytes=1024-2999' },
      { path: '/seed/multi%20dir/c%25.bin', range: 'bytes=0-999' },
      { path: '/seed/multi%20dir/%C3%BC%3F.txt', range: 'bytes=0-499' },
    ]);
  });

  it('padding inside and at the end of a run stays zeros, unrequested', async () => {
    const a = randomBytesSeeded(1000, 'run-pad-a');
    const b = randomBytesSeeded(1000, 'run-pad-b');
    const padded = makeTorrent({
      name: 'padded',
      pieceLength: 1024,
      files: [
        { path: ['a'], data: a },
        { path: ['.pad', '24'], data: Buffer.alloc(24) },
        { path: ['b'], data: b },
        { path: ['.pad', '1048'], data: Buffer.alloc(1048) },
      ],
    });
    const t = torrent(padded);
    t.meta.files[1]!.padding = true;
    t.meta.files[3]!.padding = true;
    const s = await server({ '/padded/a': a, '/padded/b': b });
    const seed = seedFor(`${s.origin}/`, t);
    const got: number[] = [];
    const data: Buffer[] = [];
    await seed.fetchRun(0, 3, (i, d) => (got.push(i), data.push(d)));
    expect(got).toEqual([0, 1, 2]);
    expect(Buffer.concat(data).equals(padded.data)).toBe(true);
    expect(s.requests.map((r) => r.path)).toEqual(['/padded/a', '/padded/b']);
  });

  it('a failure mid-run keeps the pieces already handed over and backs off', async () => {
    const s = await server({ '/single%20file.bin': S }, 'short-body');
    const seed = seedFor(`${s.origin}/`, torrent(single));
    const got: number[] = [];
    expect(await faultOf(seed.fetchRun(0, 5, (i) => got.push(i)))).toBe('length');
    expect(got).toEqual([0, 1, 2, 3]);
    expect(seed.available()).toBe(false);
  });
});

describe('WebSeed accounting', () => {
  it('bytes handed over are the bytes fetched: padding (never fetched) is left out', async () => {
    const PL = 1024;
    const a = randomBytesSeeded(1500, 'acc-a');
    const b = randomBytesSeeded(700, 'acc-b');
    const padded = makeTorrent({
      name: 'p',
      pieceLength: PL,
      files: [
        { path: ['a'], data: a },
        { path: ['.pad', '548'], data: Buffer.alloc(548), attr: 'p' },
        { path: ['b'], data: b },
      ],
    });
    const s = await server({ '/seed/p/a': a, '/seed/p/b': b });
    const seed = seedFor(`${s.origin}/seed`, torrent(padded));
    for (let i = 0; i < 3; i++) await seed.fetchPiece(i);
    expect(seed.bytesFetched).toBe(2200);
    expect(seed.bytesHanded).toBe(2200);
  });
});

describe('WebSeed faults', () => {
  it('long-body: the range is kept and the rest cut off, with no failure', async () => {
    const s = await server(multiFiles, 'long-body');
    const seed = seedFor(`${s.origin}/seed`, torrent(multi), { timeoutMs: 300 });
    expect((await seed.fetchPiece(1)).equals(multi.pieces[1]!)).toBe(true);
    expect(seed.failures).toBe(0);
    expect(seed.available()).toBe(true);
  });

  const cases: [ServerFault, WebSeedFault][] = [
    ['not-found', 'not-found'],
    ['server-error', 'status'],
    ['stall-headers', 'timeout'],
    // Refused at the 17th, not at the timeout.
    ['informational-flood', 'status'],
    ['stall-body', 'timeout'],
    ['redirect-file', 'redirect'],
    ['redirect-ftp', 'redirect'],
    ['redirect-loop', 'redirect'],
    ['redirect-no-location', 'redirect'],
    ['short-body', 'length'],
    ['wrong-content-length', 'length'],
    ['wrong-range', 'range'],
    ['gzip', 'status'],
  ];
  for (const [serverFault, fault] of cases) {
    it(`${serverFault}: fails with '${fault}' and backs the seed off`, async () => {
      const s = await server(multiFiles, serverFault);
      const c = clock();
      const seed = seedFor(`${s.origin}/seed`, torrent(multi), { now: c.now, timeoutMs: 300 });
      expect(await faultOf(seed.fetchPiece(1))).toBe(fault);
      expect(seed.failures).toBe(1);
      expect(seed.available()).toBe(false);
      expect(seed.backoffUntil).toBe(c.t + 5_000);
      expect(seed.lastError?.fault).toBe(fault);
      // Once the back-off is over and the server behaves, the seed works again.
      s.setFault('none');
      c.t += 5_000;
      expect(seed.available()).toBe(true);
      expect((await seed.fetchPiece(1)).equals(multi.pieces[1]!)).toBe(true);
      expect(seed.backoffUntil).toBe(0);
    });
  }

  it('a redirect to an address of the other family than --bind is said so, not tried', async () => {
    const s = await server(multiFiles, 'redirect-v6');
    const seed = seedFor(`${s.origin}/seed/`, torrent(multi), { localAddress: '127.0.0.1' });
    const err = await seed.fetchPiece(0).then(
      () => null,
      (e: unknown) => e as WebSeedError,
    );
    expect(err?.fault).toBe('redirect');
    expect(err?.message).toMatch(
      /redirected to http:\/\/\[::1\]:\d+\/seed\/.*: an IPv6 address, not reachable from --bind 127\.0\.0\.1$/,
    );
    expect(s.requests).toHaveLength(1);
  });

  it('a failure where a redirect led names the redirect and its target', async () => {
    const s = await server(multiFiles, 'redirect-refused');
    const seed = seedFor(`${s.origin}/seed/`, torrent(multi));
    const err = await seed.fetchPiece(0).then(
      () => null,
      (e: unknown) => e as WebSeedError,
    );
    expect(err?.fault).toBe('network');
    expect(err?.message).toMatch(
      /^web seed http:\/\/127\.0\.0\.1:\d+\/seed\/: redirected to http:\/\/127\.0\.0\.1:1\/seed\/.*: connect ECONNREFUSED 127\.0\.0\.1:1/,
    );
  });

  it("a reply cut short by the server is said in words, not by undici's code", async () => {
    const s = await server(multiFiles, 'cut-body');
    const seed = seedFor(`${s.origin}/seed`, torrent(multi));
    const err = await seed.fetchPiece(2).then(
      () => null,
      (e: unknown) => e as WebSeedError,
    );
    expect(err?.fault).toBe('network');
    expect(err?.message).toMatch(
      /: the server closed the connection before its reply was complete$/,
    );
  });

  it('a redirect loop stops after maxRedirects', async () => {
    const s = await server(multiFiles, 'redirect-loop');
    const seed = seedFor(`${s.origin}/seed`, torrent(multi), { maxRedirects: 2 });
    expect(await faultOf(seed.fetchPiece(0))).toBe('redirect');
    expect(s.requests).toHaveLength(3);
  });

  it('a connection refused is a network fault', async () => {
    const s = await server(multiFiles);
    const url = `${s.origin}/seed`;
    await s.close();
    servers.length = 0;
    const seed = seedFor(url, torrent(multi));
    expect(await faultOf(seed.fetchPiece(0))).toBe('network');
  });

  it('the back-off doubles with each failure in a row, up to the maximum', async () => {
    const s = await server(multiFiles, 'not-found');
    const c = clock();
    const seed = seedFor(`${s.origin}/seed`, torrent(multi), { now: c.now, backoffMaxMs: 30_000 });
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      await faultOf(seed.fetchPiece(0));
      delays.push(seed.backoffUntil - c.t);
    }
    expect(delays).toEqual([5_000, 10_000, 20_000, 30_000, 30_000]);
    s.setFault('none');
    await seed.fetchPiece(0);
    // (A server that is down: a missing file, once it has sent a piece, would not back it off.)
    await faultOf((s.setFault('server-error'), seed.fetchPiece(0)));
    expect(seed.backoffUntil - c.t).toBe(5_000);
  });

  it('two requests that fail together back the seed off once, not twice', async () => {
    const s = await server(multiFiles, 'not-found');
    const c = clock();
    const seed = seedFor(`${s.origin}/seed`, torrent(multi), { now: c.now });
    const both = [seed.fetchPiece(0), seed.fetchPiece(4)];
    // Both are in flight when the first answer comes.
    c.t += 1;
    expect(await Promise.all(both.map(faultOf))).toEqual(['not-found', 'not-found']);
    expect(seed.failures).toBe(2);
    expect(seed.backoffUntil - c.t).toBe(5_000);
  });

  it('multi-file: a file that 404s is not asked for again (has() is false for its pieces)', async () => {
    const { '/seed/multi%20dir/c%25.bin': _missing, ...others } = multiFiles;
    const s = await server(others);
    const t = torrent(multi);
    const seed = seedFor(`${s.origin}/seed`, t);
    expect(await faultOf(seed.fetchPiece(3))).toBe('not-found');
    expect([...seed.lackingFiles]).toEqual([1]);
    // c%.bin is bytes 3000..3999: pieces 2 and 3.
    expect([0, 1, 2, 3, 4].map((i) => seed.has(i))).toEqual([true, true, false, false, true]);
  });

  it('multi-file: a seed that has sent a piece and lacks a file is asked for its others at once', async () => {
    const { '/seed/multi%20dir/c%25.bin': _missing, ...others } = multiFiles;
    const s = await server(others);
    const c = clock();
    const seed = seedFor(`${s.origin}/seed`, torrent(multi), { now: c.now });
    await seed.fetchPiece(0);
    expect(await faultOf(seed.fetchPiece(3))).toBe('not-found');
    expect([...seed.lackingFiles]).toEqual([1]);
    // The server is up and holds the other files: no back-off for them.
    expect(seed.available()).toBe(true);
    expect(seed.failures).toBe(1);
    expect((await seed.fetchPiece(4)).length).toBe(404);
  });

  it('multi-file: a seed that has sent nothing yet, or lacks file after file, is backed off', async () => {
    // Eight files of 1 KiB, one piece each; the server holds the first only.
    const data = Array.from({ length: 8 }, (_, i) => randomBytesSeeded(1024, `ws-many-${i}`));
    const many = makeTorrent({
      name: 'many',
      pieceLength: 1024,
      files: data.map((d, i) => ({ path: [`f${i}.bin`], data: d })),
    });
    const s = await server({ '/seed/many/f0.bin': data[0]! });
    const c = clock();
    // Nothing sent yet: a base URL that is wrong 404s every file.
    const fresh = seedFor(`${s.origin}/seed`, torrent(many), { now: c.now });
    expect(await faultOf(fresh.fetchPiece(1))).toBe('not-found');
    expect(fresh.backoffUntil - c.t).toBe(5_000);
    // After a piece: FREE_FILE_FAULTS files missing in a row are free, the next one is not.
    const seed = seedFor(`${s.origin}/seed`, torrent(many), { now: c.now });
    expect((await seed.fetchPiece(0)).equals(data[0]!)).toBe(true);
    for (let i = 1; i <= FREE_FILE_FAULTS; i++) {
      expect(await faultOf(seed.fetchPiece(i))).toBe('not-found');
      expect(seed.available()).toBe(true);
    }
    expect(await faultOf(seed.fetchPiece(FREE_FILE_FAULTS + 1))).toBe('not-found');
    expect(seed.available()).toBe(false);
    expect(seed.backoffUntil - c.t).toBe(5_000);
    expect(seed.lackingFiles.size).toBe(FREE_FILE_FAULTS + 1);
  });

  it('multi-file: a file shorter on the server (416, or a 206 cut short) is not asked for again', async () => {
    const short = { ...multiFiles, '/seed/multi%20dir/a%20b/x%231.bin': A.subarray(0, 1500) };
    const s = await server(short);
    const t = torrent(multi);
    // Piece 2 starts at byte 2048 of x#1.bin, past the end of its 1500 bytes on the server: 416.
    const seed = seedFor(`${s.origin}/seed`, t);
    expect(await faultOf(seed.fetchPiece(2))).toBe('range');
    expect([...seed.lackingFiles]).toEqual([0]);
    expect(seed.lastError?.message).toMatch(/HTTP 416/);
    // Piece 1 runs past its end: a 206 for bytes 1024-1499/1500.
    const seed2 = seedFor(`${s.origin}/seed`, t);
    expect(await faultOf(seed2.fetchPiece(1))).toBe('range');
    expect([...seed2.lackingFiles]).toEqual([0]);
    // x#1.bin is bytes 0..2999: pieces 0, 1 and 2.
    expect([0, 1, 2, 3, 4].map((i) => seed2.has(i))).toEqual([false, false, false, true, true]);
  });

  it('multi-file: a file longer on the server (a 206 naming another size) is not asked again', async () => {
    // The bytes asked for are there, but the file is another version: 1 byte longer.
    const longer = {
      ...multiFiles,
      '/seed/multi%20dir/a%20b/x%231.bin': Buffer.concat([A, Buffer.from('!')]),
    };
    const s = await server(longer);
    const seed = seedFor(`${s.origin}/seed`, torrent(multi));
    expect(await faultOf(seed.fetchPiece(0))).toBe('range');
    expect(seed.lastError?.message).toMatch(
      /is 3001 bytes there \(Content-Range\), 3000 in the torrent/,
    );
    expect([...seed.lackingFiles]).toEqual([0]);
  });

  it('single-file: a 416 backs the seed off without marking the file', async () => {
    const s = await server({ '/single%20file.bin': S.subarray(0, 100) });
    const seed = seedFor(`${s.origin}/`, torrent(single));
    expect(await faultOf(seed.fetchPiece(1))).toBe('range');
    expect(seed.available()).toBe(false);
    expect(seed.lackingFiles.size).toBe(0);
  });

  it('multi-file: a bad piece inside one file marks that file; across files it does not', () => {
    const t = torrent(multi);
    const seed = seedFor('http://127.0.0.1:1/seed', t);
    seed.reportBadPiece(2); // crosses x#1.bin and c%.bin
    expect(seed.lackingFiles.size).toBe(0);
    seed.reportBadPiece(0); // inside x#1.bin
    expect([...seed.lackingFiles]).toEqual([0]);
    expect([0, 1, 2, 3, 4].map((i) => seed.has(i))).toEqual([false, false, false, true, true]);
  });

  it('single-file: neither a 404 nor a bad piece marks the file', async () => {
    const s = await server({});
    const seed = seedFor(`${s.origin}/`, torrent(single));
    expect(await faultOf(seed.fetchPiece(0))).toBe('not-found');
    seed.reportBadPiece(1);
    expect(seed.lackingFiles.size).toBe(0);
    expect(seed.has(0)).toBe(true);
  });

  it('wrong bytes pass the fetch; after MAX_BAD_PIECES reports the seed is banned', async () => {
    const s = await server(multiFiles, 'wrong-bytes');
    const c = clock();
    const seed = seedFor(`${s.origin}/seed`, torrent(multi), { now: c.now });
    for (let i = 1; i <= MAX_BAD_PIECES; i++) {
      const data = await seed.fetchPiece(0);
      expect(data.equals(multi.pieces[0]!)).toBe(false);
      expect(seed.reportBadPiece()).toBe(i === MAX_BAD_PIECES);
      expect(seed.available()).toBe(false);
      c.t = seed.backoffUntil;
    }
    expect(seed.banned).toBe(true);
    expect(seed.available(Number.MAX_SAFE_INTEGER)).toBe(false);
    expect(await faultOf(seed.fetchPiece(0))).toBe('banned');
  });

  it("the caller's abort is not a failure", async () => {
    const s = await server(multiFiles, 'stall-headers');
    const seed = seedFor(`${s.origin}/seed`, torrent(multi));
    const ac = new AbortController();
    const p = seed.fetchPiece(0, ac.signal);
    while (s.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    ac.abort();
    expect(await faultOf(p)).toBe('aborted');
    expect(seed.failures).toBe(0);
    expect(seed.available()).toBe(true);
  });

  it('time held back by a download limit does not count toward pieceTimeoutMs', async () => {
    const s = await server({ '/single%20file.bin': S });
    let waits = 0;
    let read = 0;
    const limit = {
      onRead: (n: number) => (read += n),
      waitMs: () => (waits++ < 3 ? 1_000 : 0),
    };
    const seed = seedFor(`${s.origin}/`, torrent(single), { pieceTimeoutMs: 2_000, limit });
    expect((await seed.fetchPiece(1)).equals(single.pieces[1]!)).toBe(true);
    expect(waits).toBeGreaterThan(3);
    expect(read).toBe(1024);
  }, 20_000);

  it('the whole piece is bounded by pieceTimeoutMs even when data keeps trickling', async () => {
    const s = await server(multiFiles, 'stall-body');
    const seed = seedFor(`${s.origin}/seed`, torrent(multi), { pieceTimeoutMs: 200 });
    expect(await faultOf(seed.fetchPiece(0))).toBe('timeout');
  });
});
