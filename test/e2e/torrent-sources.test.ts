/**
 * Where the .torrent comes from: stdin (`-`) and http(s) URLs, for `download` and `info`, with
 * the same refusals as files for hostile input: a huge body (declared or not), a body that never
 * ends, redirects to other schemes or in a loop, a bad torrent.
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants,
  createReadStream,
  createWriteStream,
  existsSync,
  openSync,
} from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/program.js';
import { loadTorrent, MAX_TORRENT_REDIRECTS } from '../../src/cli/torrent-file.js';
import { InterruptedError, TdlError, UsageError } from '../../src/errors.js';
import { MAX_TORRENT_FILE_BYTES } from '../../src/metainfo/torrent.js';
import { tempDir } from '../helpers/cli.js';
import { startFakeSeeder } from '../helpers/fake-seeder.js';
import { assertBuilt, interruptAfter } from '../helpers/tdl-process.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const PIECE = 16384;
const data = randomBytesSeeded(100 * 1024, 'torrent-sources');
const t = makeTorrent({
  name: 'src.bin',
  pieceLength: PIECE,
  files: { data },
  announce: 'http://127.0.0.1:1/announce',
});

let dir: string;
let cleanup: () => Promise<void>;
const closers: (() => Promise<void> | void)[] = [];

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-sources-'));
});

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await Promise.resolve(c()).catch(() => {});
  await cleanup();
});

/** The CLI in process, with `stdin` as its standard input. */
async function cli(args: string[], stdin?: Readable) {
  let stdout = '';
  let stderr = '';
  const code = await run(args, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s), isTTY: false },
    stdin,
  });
  return { code, stdout, stderr };
}

/** A writer still waiting to open `fifo` gets a reader (that leaves at once: EPIPE). */
function releaseWriter(fifo: string): void {
  closeSync(openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK));
}

/** A reader still waiting to open `fifo` gets a writer (that leaves at once: end of file). */
function releaseReader(fifo: string): void {
  try {
    closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
  } catch {
    // ENXIO: no reader waits
  }
}

/** A local HTTP server; `handler` answers every request. Returns its base URL. */
async function server(handler: http.RequestListener): Promise<string> {
  const srv = http.createServer(handler);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  closers.push(
    () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  );
  return `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
}

/** Streams `total` bytes of a bencoded string as fast as the client reads. */
function streaming(total: number, declare: boolean): http.RequestListener {
  return (_req, res) => {
    res.writeHead(200, declare ? { 'content-length': String(total) } : {});
    // `d`, as a torrent starts: only the cap stops it.
    const chunk = Buffer.alloc(64 * 1024, 0x64);
    let written = 0;
    const pump = (): void => {
      while (!res.destroyed && written < total) {
        written += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      if (!res.destroyed) res.end();
    };
    pump();
  };
}

async function seeder() {
  const s = await startFakeSeeder({ infoHash: t.infoHash, data, pieceLength: PIECE });
  closers.push(() => s.close());
  return s;
}

describe('stdin and URL sources', () => {
  it('info - reads the .torrent from stdin', async () => {
    const r = await cli(['info', '-', '--json'], Readable.from([t.torrent]));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'src.bin', size: data.length });
  });

  it('verify - reads stdin, and Ctrl-C while it waits there ends it (130)', async () => {
    const out = path.join(dir, 'src.bin');
    await writeFile(out, data);
    const ok = await cli(['verify', '-', '-o', out], Readable.from([t.torrent]));
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/result: +complete/);
    // A stdin that never ends: only the interrupt stops the wait.
    const never = new Readable({ read() {} });
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(new InterruptedError('SIGINT')), 50);
    let stderr = '';
    const code = await run(['verify', '-', '-o', out], {
      stdout: { write: () => true },
      stderr: { write: (s: string) => (stderr += s), isTTY: false },
      stdin: never,
      signal: ctl.signal,
    });
    never.destroy();
    expect(code, stderr).toBe(130);
  });

  it('a named pipe (`tdl info <(curl …)`) is read like stdin: the cap, and Ctrl-C while it waits', async () => {
    const fifo = path.join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    // The writer's open waits for tdl's, as a shell's process substitution does.
    const writer = writeFile(fifo, t.torrent).catch(() => {});
    const r = await cli(['info', fifo, '--json']);
    releaseWriter(fifo);
    await writer;
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'src.bin', size: data.length });
    // More than the cap: refused once past it, without reading it all.
    const huge = createWriteStream(fifo);
    huge.on('error', () => {}); // EPIPE once tdl stops reading
    const chunk = Buffer.alloc(1024 * 1024, 0x64); // `d`: only the cap stops it
    let written = 0;
    const pump = (): void => {
      while (!huge.destroyed && written < 4 * MAX_TORRENT_FILE_BYTES) {
        written += chunk.length;
        if (!huge.write(chunk)) return void huge.once('drain', pump);
      }
      huge.end();
    };
    pump();
    const big = await cli(['info', fifo]);
    releaseWriter(fifo);
    huge.destroy();
    // Its descriptor closed: the next open of the pipe waits for a writer of its own.
    if (!huge.closed) await new Promise<void>((r) => huge.once('close', () => r()));
    expect(big.code, big.stderr).toBe(3);
    expect(big.stderr).toContain('bytes a .torrent may have');
    expect(written).toBeLessThan(4 * MAX_TORRENT_FILE_BYTES);
    // Nobody writes: only the interrupt ends the wait.
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(new InterruptedError('SIGINT')), 50);
    const code = await run(['info', fifo], {
      stdout: { write: () => true },
      stderr: { write: () => true, isTTY: false },
      signal: ctl.signal,
    });
    releaseReader(fifo);
    expect(code).toBe(130);
  });

  it('the real program waiting on a named pipe nobody writes to exits on Ctrl-C', async () => {
    assertBuilt();
    const fifo = path.join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    // A blocking open of the pipe would hold a pool thread that Node joins at exit: the process
    // printed its message and then hung for good, a second Ctrl-C too.
    const { code, stderr } = await interruptAfter(['info', fifo]);
    releaseReader(fifo);
    expect(code, stderr).toBe(130);
    expect(stderr).toBe('tdl: interrupted by SIGINT\n');
  }, 20_000);

  it('--save-torrent keeps a copy of the .torrent as it came, comment and all', async () => {
    const withComment = Buffer.concat([
      t.torrent.subarray(0, 1),
      Buffer.from('7:comment5:hello'),
      t.torrent.subarray(1),
    ]);
    const saved = path.join(dir, 'saved.torrent');
    const r = await cli(['info', '-', '--save-torrent', saved], Readable.from([withComment]));
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(saved)).equals(withComment)).toBe(true);
  });

  it('--save-torrent onto the download or a file kept beside it is refused before anything', async () => {
    const out = path.join(dir, 'same.bin');
    const torrent = path.join(dir, 't.torrent');
    await writeFile(torrent, t.torrent);
    for (const save of [out, `${out}.tdl-resume`, `${out}.part`, `${out}.tdl-torrent`]) {
      const r = await cli([
        'download',
        torrent,
        '-o',
        out,
        '--peer',
        '127.0.0.1:9',
        '--save-torrent',
        save,
      ]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        `tdl: --save-torrent ${save}: the download (-o ${out}) writes there; name another file\n`,
      );
    }
    expect(await readdir(dir)).toEqual(['t.torrent']);
  });

  it('--save-torrent onto the data where -o puts it (inside an existing folder) is refused', async () => {
    const torrent = path.join(dir, 't.torrent');
    await writeFile(torrent, t.torrent);
    const multi = makeTorrent({
      name: 'multi',
      pieceLength: PIECE,
      files: [
        { path: ['a.bin'], data: data.subarray(0, 40_000) },
        { path: ['sub', 'b.bin'], data: data.subarray(40_000) },
      ],
      announce: 'http://127.0.0.1:1/announce',
    });
    const multiTorrent = path.join(dir, 'm.torrent');
    await writeFile(multiTorrent, multi.torrent);
    const into = path.join(dir, 'into');
    // The torrent's folders are there (an earlier run): a path inside can be named.
    await mkdir(path.join(into, 'multi', 'sub'), { recursive: true });
    for (const [file, save] of [
      [torrent, path.join(into, 'src.bin')],
      [torrent, path.join(into, 'src.bin.part')],
      [torrent, path.join(into, 'src.bin.tdl-resume')],
      [multiTorrent, path.join(into, 'multi.tdl-resume')],
      [multiTorrent, path.join(into, 'multi.tdl-parts')],
      [multiTorrent, path.join(into, 'multi', 'a.bin')],
      [multiTorrent, path.join(into, 'multi', 'a.bin.part')],
      [multiTorrent, path.join(into, 'multi', 'sub', 'b.bin')],
    ] as const) {
      const r = await cli([
        'download',
        file,
        '-o',
        into,
        '--peer',
        '127.0.0.1:9',
        '--save-torrent',
        save,
      ]);
      expect(r.code, save).toBe(2);
      expect(r.stderr).toBe(
        `tdl: --save-torrent ${save}: the download (-o ${into}) writes there; name another file\n`,
      );
    }
    expect(await readdir(into)).toEqual(['multi']);
    expect(await readdir(path.join(into, 'multi'))).toEqual(['sub']);
    // Beside the data, or inside the torrent's folder under a name it does not use: fine.
    const beside = path.join(into, 'multi', 'copy.torrent');
    const ok = await cli([
      'download',
      multiTorrent,
      '-o',
      into,
      '--peer',
      '127.0.0.1:9',
      '--save-torrent',
      beside,
      '--timeout',
      '1',
    ]);
    expect(ok.code, ok.stderr).toBe(4);
    expect((await readFile(beside)).equals(multi.torrent)).toBe(true);
  });

  it('a --peer of the other address family than --bind: exit 4 at once when it is the only one, named when no peer came', async () => {
    const torrent = path.join(dir, 't.torrent');
    await writeFile(torrent, t.torrent);
    const args = ['download', torrent, '-o', path.join(dir, 'out.bin'), '--bind', '127.0.0.1'];
    // Nothing could connect: said at once, not after --timeout (120 s by default).
    const alone = await cli([...args, '--peer', '[::1]:9', '--no-listen']);
    expect(alone.code, alone.stderr).toBe(4);
    expect(alone.stderr).toBe(
      'tdl: every peer given is of the other address family than --bind 127.0.0.1 ' +
        '(IPv4 and IPv6 do not mix): [::1]:9; give peers of its family with --peer HOST:PORT\n',
    );
    expect(existsSync(path.join(dir, 'out.bin'))).toBe(false);
    // A magnet link's own peers (x.pe) too, before any wait for metadata.
    const hex = t.infoHash.toString('hex');
    const magnet = await cli([
      'download',
      `magnet:?xt=urn:btih:${hex}&x.pe=%5B::1%5D:9`,
      '-o',
      path.join(dir, 'm'),
      '--bind',
      '127.0.0.1',
      '--no-dht',
      '--no-listen',
    ]);
    expect(magnet.code, magnet.stderr).toBe(4);
    expect(magnet.stderr).toContain('every peer given is of the other address family');
    // Beside one that could: tried, and counted when no peer came.
    const r = await cli([
      ...args,
      '--peer',
      '[::1]:9',
      '--peer',
      '127.0.0.1:9',
      '--no-listen',
      '--timeout',
      '1',
    ]);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(
      'tdl: warning: --peer [::1]:9: of the other address family than --bind 127.0.0.1 ' +
        '(IPv4 and IPv6 do not mix): not dialled\n',
    );
    expect(r.stderr).toContain(
      '1 of the other address family than --bind left out (IPv4 and IPv6 do not mix)',
    );
    // A seed never ends with an error that would say so: the warning does, at its start.
    const src = path.join(dir, 'src.bin');
    await writeFile(src, t.data);
    const seed = await cli([
      'seed',
      torrent,
      '-o',
      src,
      '--bind',
      '127.0.0.1',
      '--port',
      '0',
      '--peer',
      '[::1]:9',
      '--seed-time',
      '0.001',
    ]);
    expect(seed.code, seed.stderr).toBe(0);
    expect(seed.stderr).toContain('tdl: warning: --peer [::1]:9: of the other address family');
  });

  it('a folder on stdin (`- < dir`) is refused as unreadable, not read as an empty torrent', async () => {
    const out = ['-o', path.join(dir, 'out'), '--peer', '127.0.0.1:9'];
    for (const args of [
      ['info', '-'],
      ['download', '-', ...out],
    ]) {
      // What process.stdin is for `< dir`: a stream of descriptor 0, which just ends.
      const stdin = createReadStream('', { fd: openSync(dir, 'r') });
      const r = await cli(args, stdin);
      stdin.destroy();
      expect(r.code).toBe(2);
      expect(r.stderr).toBe('tdl: cannot read the .torrent from stdin: it is a folder\n');
    }
  });

  it('download - downloads the torrent read from stdin (in small chunks)', async () => {
    const s = await seeder();
    const chunks: Buffer[] = [];
    for (let i = 0; i < t.torrent.length; i += 7) chunks.push(t.torrent.subarray(i, i + 7));
    const out = path.join(dir, 'out.bin');
    const peer = `127.0.0.1:${s.port}`;
    const r = await cli(['download', '-', '-o', out, '--peer', peer], Readable.from(chunks));
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
  });

  it('info and download fetch an http:// URL, following a redirect', async () => {
    const base = await server((req, res) => {
      if (req.url === '/old') {
        res.writeHead(302, { location: '/x.torrent?passkey=abc' });
        return void res.end();
      }
      res.writeHead(200, { 'content-type': 'application/x-bittorrent' });
      res.end(t.torrent);
    });
    const info = await cli(['info', `${base}/old`, '--json']);
    expect(info.code, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout)).toMatchObject({ name: 'src.bin' });
    const s = await seeder();
    const out = path.join(dir, 'out.bin');
    const r = await cli([
      'download',
      `${base}/x.torrent`,
      '-o',
      out,
      '--peer',
      `127.0.0.1:${s.port}`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
  });
  it('a URL, or a redirect, to an address of the other family than --bind: said so, exit 2', async () => {
    const base = await server((_req, res) => {
      res.writeHead(302, { location: 'http://[::1]:9/x.torrent' });
      res.end();
    });
    const v4 = await cli(['info', `${base}/x.torrent`, '--bind', '::1']);
    expect(v4.code).toBe(2);
    expect(v4.stderr).toBe(
      `tdl: cannot fetch ${base}/x.torrent: an IPv4 address, not reachable from --bind ::1\n`,
    );
    const moved = await cli(['info', `${base}/x.torrent`, '--bind', '127.0.0.1']);
    expect(moved.code).toBe(2);
    expect(moved.stderr).toBe(
      `tdl: cannot fetch ${base}/x.torrent: redirected to http://[::1]:9/x.torrent: ` +
        'an IPv6 address, not reachable from --bind 127.0.0.1\n',
    );
  });
});

describe('hostile sources get the same refusals as files', () => {
  it('a body larger than the cap, declared: exit 3 before reading it', async () => {
    const base = await server(streaming(100 * 1024 * 1024, true));
    const r = await cli(['info', `${base}/big.torrent`]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `${base}/big.torrent: 104857600 bytes, over the ${MAX_TORRENT_FILE_BYTES} bytes a .torrent may have`,
    );
  });

  it('a body larger than the cap, undeclared: exit 3 once past the cap', async () => {
    const base = await server(streaming(MAX_TORRENT_FILE_BYTES + 1024 * 1024, false));
    const r = await cli(['info', `${base}/big.torrent`]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`: over the ${MAX_TORRENT_FILE_BYTES} bytes a .torrent may have`);
  });

  it('stdin larger than the cap: exit 3 without reading it all', async () => {
    let given = 0;
    const chunk = Buffer.alloc(1024 * 1024, 0x31);
    // It starts as a torrent does (a dictionary), so only the cap stops it.
    const first = Buffer.concat([Buffer.from('d4:info'), chunk]);
    const endless = new Readable({
      read() {
        this.push(given === 0 ? first : chunk);
        given += chunk.length;
      },
    });
    const r = await cli(['info', '-'], endless);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      new RegExp(`^tdl: stdin: over the ${MAX_TORRENT_FILE_BYTES} bytes a \\.torrent may have`),
    );
    expect(given).toBeLessThan(MAX_TORRENT_FILE_BYTES + 8 * chunk.length);
  });

  it('stdin that is not a dictionary is refused from its first bytes, not read to the cap', async () => {
    let given = 0;
    const chunk = Buffer.from('y\n'.repeat(32 * 1024));
    const endless = new Readable({
      read() {
        given += chunk.length;
        this.push(chunk);
      },
    });
    const r = await cli(['info', '-'], endless);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe("tdl: stdin: unexpected byte 'y' at byte 0\n");
    expect(given).toBeLessThan(8 * chunk.length);
  });

  it('a body that never ends: refused at the fetch timeout', async () => {
    const base = await server((_req, res) => {
      res.writeHead(200);
      res.write('d8:announce');
      const tick = setInterval(() => res.write('1'), 50);
      res.on('close', () => clearInterval(tick));
      closers.push(() => clearInterval(tick));
    });
    const err = await loadTorrent(`${base}/slow.torrent`, { timeoutMs: 500 }).catch((e) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toContain('no complete answer within 500 ms');
  });

  it('informational replies without end: refused after 16, exit 2, not at the timeout', async () => {
    const base = await server((_req, res) => {
      for (let i = 0; i < 1000; i++) res.writeProcessing();
    });
    const r = await cli(['info', `${base}/x.torrent`, '--timeout', '30']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('more than 16 informational (1xx) replies');
  });

  it('redirects to file: or in a loop: exit 2', async () => {
    const base = await server((req, res) => {
      res.writeHead(302, { location: req.url === '/file' ? 'file:///etc/passwd' : '/loop' });
      res.end();
    });
    const file = await cli(['info', `${base}/file`]);
    expect(file.code).toBe(2);
    expect(file.stderr).toContain('redirect to unsupported scheme file:');
    const loop = await cli(['download', `${base}/loop`, '-o', path.join(dir, 'o')]);
    expect(loop.code).toBe(2);
    expect(loop.stderr).toContain(`more than ${MAX_TORRENT_REDIRECTS} redirects`);
  });

  it('a gzip or deflate body is decoded, within the cap; another coding is refused', async () => {
    const bomb = gzipSync(Buffer.alloc(MAX_TORRENT_FILE_BYTES + 1024 * 1024, 0x64));
    const base = await server((req, res) => {
      const [body, encoding] =
        req.url === '/gz'
          ? [gzipSync(t.torrent), 'gzip']
          : req.url === '/deflate'
            ? [deflateSync(t.torrent), 'deflate']
            : req.url === '/bomb'
              ? [bomb, 'gzip']
              : [brotliCompressSync(t.torrent), 'br'];
      res.writeHead(200, { 'content-encoding': encoding });
      res.end(body);
    });
    for (const p of ['/gz', '/deflate']) {
      const r = await cli(['info', `${base}${p}`, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ name: 'src.bin' });
    }
    const big = await cli(['info', `${base}/bomb`]);
    expect(big.code).toBe(3);
    expect(big.stderr).toContain(`over the ${MAX_TORRENT_FILE_BYTES} bytes a .torrent may have`);
    const br = await cli(['info', `${base}/br`]);
    expect(br.code).toBe(2);
    expect(br.stderr).toContain('unsupported Content-Encoding br');
  });

  it('an HTTP error or an unreachable server: exit 2', async () => {
    const base = await server((_req, res) => {
      res.writeHead(404);
      res.end('not here');
    });
    const r = await cli(['info', `${base}/x.torrent`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('HTTP status 404');
    const gone = await cli(['info', 'http://127.0.0.1:1/x.torrent']);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toMatch(/cannot fetch .*ECONNREFUSED/);
  });

  it('a bad torrent from a URL or stdin: exit 3, like a file, the message naming where it came from', async () => {
    const base = await server((_req, res) => res.end('<html>not a torrent</html>'));
    const url = await cli(['info', `${base}/x.torrent`]);
    expect(url.code).toBe(3);
    expect(url.stderr).toBe(
      `tdl: ${base}/x.torrent: not a .torrent file, it looks like a web page ` +
        `(a login or error page?): unexpected byte '<' at byte 0\n`,
    );
    const bad = await cli(['info', '-'], Readable.from([Buffer.from('d4:infoi1ee')]));
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/^tdl: stdin: info: /);
    // What people get in place of a .torrent is named, with the parser's own words after it.
    const like: [Buffer, string][] = [
      [gzipSync(Buffer.from('d4:infoi1ee')), 'it is gzip-compressed (gunzip it first)'],
      [Buffer.from('\ufeff  <!DOCTYPE html>'), 'it looks like a web page (a login or error page?)'],
      [
        Buffer.from('magnet:?xt=urn:btih:x\n'),
        'it holds a magnet link (give the link itself, quoted)',
      ],
      [Buffer.from('{"error":"bad passkey"}'), 'it looks like JSON'],
    ];
    for (const [body, what] of like) {
      const r = await cli(['info', '-'], Readable.from([body]));
      expect(r.code).toBe(3);
      expect(
        r.stderr.startsWith(`tdl: stdin: not a .torrent file, ${what}: unexpected byte `),
      ).toBe(true);
      expect(r.stderr.endsWith(' at byte 0\n')).toBe(true);
    }
    // Anything else keeps the parser's message alone.
    const other = await cli(['info', '-'], Readable.from([Buffer.from('x')]));
    expect(other.stderr).toBe("tdl: stdin: unexpected byte 'x' at byte 0\n");
    const empty = await cli(['info', '-'], Readable.from([]));
    expect(empty.code).toBe(3);
    expect(empty.stderr).toBe('tdl: stdin: empty input at byte 0\n');
  });

  it('a .torrent of millions of tiny values: exit 3 at the cap, not gigabytes later', async () => {
    // A valid torrent, then a key holding 3,000,000 empty strings (6 MB): each would cost about
    // 130 bytes decoded.
    const info = t.torrent.subarray(0, -1);
    const body = Buffer.concat([info, Buffer.from(`2:zzl${'0:'.repeat(3_000_000)}ee`, 'latin1')]);
    const r = await cli(['info', '-'], Readable.from([body]));
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^tdl: stdin: more than 2,000,000 values at byte \d+\n$/);
  });

  it('other schemes and magnet links are usage errors', async () => {
    for (const src of ['ftp://example.com/x.torrent', 'magnet:?xt=urn:btih:abc']) {
      const err = await loadTorrent(src).catch((e) => e);
      expect(err).toBeInstanceOf(TdlError);
      expect((err as TdlError).kind).toBe('usage');
    }
    // verify asks no peer: a magnet link is refused with the way to get its .torrent.
    const v = await cli(['verify', `magnet:?xt=urn:btih:${'ab'.repeat(20)}`, '-o', 'x']);
    expect(v.code).toBe(2);
    expect(v.stderr).toContain('needs the .torrent, not a magnet link');
    expect(v.stderr).toContain('--save-torrent');
  });

  it('a magnet link pasted with white space around it is the link (a file name keeps its own)', async () => {
    // A link with a bad hash: what the message says shows how the argument was read.
    const r = await cli(['info', ' magnet:?xt=urn:btih:abc\n']);
    expect(r.code).toBe(3);
    expect(r.stderr).not.toContain('cannot read');
    expect(r.stderr).toContain('magnet');
    const file = await cli(['info', ' spaced.torrent']);
    expect(file.code).toBe(2);
    expect(file.stderr).toContain('cannot read  spaced.torrent');
  });
});
