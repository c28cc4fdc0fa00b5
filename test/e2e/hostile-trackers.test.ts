/**
 * Hostile trackers against the real CLI, in process, on 127.0.0.1: garbage, a 100 MB body, a
 * body that never ends, redirects to other schemes, a `failure reason` full of control
 * characters, a peer list full of tdl's own address and port 0. The download must finish when
 * another tracker works, and fail with exit 4 and a clear, escaped message when none does.
 */
import dgram from 'node:dgram';
import type http from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encode } from '../../src/metainfo/bencode.js';
import { MAX_PEERS_PER_REPLY, MAX_TRACKER_BODY_BYTES } from '../../src/tracker/http.js';
import type { PeerAddress } from '../../src/tracker/types.js';
import { runCli, tempDir, type CliResult } from '../helpers/cli.js';
import { startFakeSeeder, type FakeSeeder } from '../helpers/fake-seeder.js';
import {
  compactPeers,
  parseHttpAnnounce,
  startHttpTracker,
  type FakeTracker,
} from '../helpers/fake-tracker.js';
import { makeTorrent, randomBytesSeeded, type MadeTorrent } from '../helpers/torrent.js';

const PIECE = 32768;
const data = randomBytesSeeded(256 * 1024, 'hostile-trackers');
const HUNDRED_MB = 100 * 1024 * 1024;
/** A failure reason that would clear the screen, recolour it, ring the bell and rewrite the line. */
const EVIL_REASON = 'go away\x1b[2J\x1b[31mPWNED\x07\r\x1b]0;title\x07 \u009b6n \u202edisguised';
/** Raw control characters a terminal would act on (newline excepted). */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

let dir: string;
let cleanup: () => Promise<void>;
const closers: (() => Promise<void> | void)[] = [];

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-trackers-'));
});

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await Promise.resolve(c()).catch(() => {});
  await cleanup();
});

async function tracker(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<FakeTracker> {
  const t = await startHttpTracker({ handler });
  closers.push(() => t.close());
  return t;
}

/** A tracker that answers with the peers `peers()` lists (filled in once the seeder runs). */
async function goodTracker(peers: () => PeerAddress[]): Promise<FakeTracker> {
  const t = await startHttpTracker({ peers: () => peers(), interval: 1800 });
  closers.push(() => t.close());
  return t;
}

/** A body of `total` bytes streamed as fast as the client reads; counts what was written. */
function streamingBody(total: number, declareLength: boolean) {
  const state = { written: 0, closed: false };
  const handler = (_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(200, declareLength ? { 'content-length': String(total) } : {});
    res.on('close', () => {
      state.closed = true;
    });
    const chunk = Buffer.alloc(64 * 1024, 0x31);
    res.write(`d5:peers${total}:`);
    const pump = (): void => {
      while (!res.destroyed && state.written < total) {
        state.written += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
    };
    pump();
  };
  return { state, handler };
}

/** A body that never ends: one byte every 100 ms. */
function endlessBody(): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return (_req, res) => {
    res.writeHead(200);
    res.write('d8:intervali1800e5:peers999999999:');
    const tick = setInterval(() => res.write('1'), 100);
    closers.push(() => clearInterval(tick));
    res.on('close', () => clearInterval(tick));
  };
}

const redirectTo = (location: string) => (_req: http.IncomingMessage, res: http.ServerResponse) => {
  res.writeHead(302, { location });
  res.end();
};

/** A UDP tracker that answers every packet with junk. */
async function garbageUdpTracker(): Promise<string> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    const junk = randomBytesSeeded(8 + (msg.length % 57), msg.readUInt32BE(12));
    socket.send(junk, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise<void>((r) => socket.close(() => r())));
  return `udp://127.0.0.1:${socket.address().port}`;
}

/** A seeder; `rateLimit` (bytes/s) makes the download last long enough for slow failures. */
async function seeder(t: MadeTorrent, rateLimit?: number): Promise<FakeSeeder> {
  const s = await startFakeSeeder({ infoHash: t.infoHash, data, pieceLength: PIECE, rateLimit });
  closers.push(() => s.close());
  return s;
}

async function download(t: MadeTorrent, extra: string[] = []): Promise<CliResult & { ms: number }> {
  const tp = path.join(dir, 't.torrent');
  await writeFile(tp, t.torrent);
  const started = Date.now();
  const r = await runCli(['download', tp, '-o', path.join(dir, 'out.bin'), ...extra]);
  return { ...r, ms: Date.now() - started };
}

async function expectRightBytes(): Promise<void> {
  expect((await readFile(path.join(dir, 'out.bin'))).equals(data)).toBe(true);
}

describe('hostile trackers beside a working one', () => {
  it('garbage, 100 MB bodies, an endless body, redirects to file:/ftp:/data:, control characters and UDP junk: the download still finishes', async () => {
    const declared = streamingBody(HUNDRED_MB, true);
    const chunked = streamingBody(HUNDRED_MB, false);
    const hostile = [
      await tracker((_q, res) => res.end('<html><body>502 Bad Gateway</body></html>')),
      await tracker((_q, res) => res.end(randomBytesSeeded(4096, 'junk'))),
      await tracker(declared.handler),
      await tracker(chunked.handler),
      await tracker(endlessBody()),
      await tracker(redirectTo('file:///etc/passwd')),
      await tracker(redirectTo('ftp://127.0.0.1/announce')),
      await tracker(redirectTo('data:text/plain,d5:peers0:e')),
      await tracker((_q, res) => res.end(encode({ 'failure reason': EVIL_REASON }))),
    ].map((x) => x.url);
    const peers: PeerAddress[] = [];
    const good = await goodTracker(() => peers);
    const t = makeTorrent({
      name: 'out.bin',
      pieceLength: PIECE,
      files: { data },
      announceList: [...hostile.map((u) => [u]), [await garbageUdpTracker()], [good.url]],
    });
    // About a second of download: every hostile tracker has failed (and been reported) by then.
    peers.push((await seeder(t, 128 * 1024)).address);

    const r = await download(t);
    expect(r.code).toBe(0);
    await expectRightBytes();
    expect(r.ms).toBeLessThan(5_000);
    // Warnings name what went wrong, with every control character escaped.
    expect(r.stderr).toMatch(/not valid bencode/);
    expect(r.stderr).toContain(`larger than ${MAX_TRACKER_BODY_BYTES} bytes`);
    expect(r.stderr).toContain('redirect to unsupported scheme file:');
    expect(r.stderr).toContain('redirect to unsupported scheme ftp:');
    expect(r.stderr).toContain('redirect to unsupported scheme data:');
    expect(r.stderr).toContain('go away\\x1b[2J\\x1b[31mPWNED\\x07\\r');
    expect(r.stderr).not.toMatch(RAW_CONTROL);
    // The 100 MB bodies were cut near the cap, never read whole.
    expect(declared.state.written).toBeLessThan(8 * 1024 * 1024);
    expect(chunked.state.written).toBeLessThan(16 * 1024 * 1024);
    expect(chunked.state.written).toBeGreaterThan(MAX_TRACKER_BODY_BYTES);
    // The working tracker heard started and completed, and the download did not wait for the rest.
    const events = good.announces.map((a) => a.event);
    expect(events).toContain('started');
    expect(events).toContain('completed');
  });

  it("a peer list full of tdl's own address and port 0: those are never dialled", async () => {
    let seederAddress: PeerAddress | null = null;
    let selfSeen: PeerAddress | null = null;
    const tr = await tracker((req, res) => {
      const a = parseHttpAnnounce(req.url ?? '', req.socket.remoteAddress);
      if (!a) return void res.end(encode({ 'failure reason': 'bad announce' }));
      const self = { host: a.remoteAddress ?? '127.0.0.1', port: a.port };
      selfSeen = self;
      const list: PeerAddress[] = [];
      // More entries than MAX_PEERS_PER_REPLY: duplicates and port 0 are dropped before they
      // count against the cap, so the real seeder at the end is still taken.
      for (let i = 0; i < MAX_PEERS_PER_REPLY; i++) list.push(self);
      for (let i = 0; i < MAX_PEERS_PER_REPLY; i++) {
        list.push({ host: `127.0.${i >> 8}.${i & 255}`, port: 0 });
      }
      if (seederAddress) list.push(seederAddress);
      res.end(encode({ interval: 1800, peers: compactPeers(list, 4) }));
    });
    const t = makeTorrent({
      name: 'out.bin',
      pieceLength: PIECE,
      files: { data },
      announce: tr.url,
    });
    seederAddress = (await seeder(t)).address;
    const r = await download(t, ['--json']);
    expect(r.code).toBe(0);
    await expectRightBytes();
    // tdl announces the port it really listens on.
    const started = r.events.find((e) => e['event'] === 'started');
    expect(selfSeen).toEqual({ host: '127.0.0.1', port: started?.['port'] });
    const dialled = new Set(
      r.events.filter((e) => e['event'] === 'peer').map((e) => String(e['address'])),
    );
    expect([...dialled]).toEqual([`${seederAddress!.host}:${seederAddress!.port}`]);
  });
});

describe('a hostile tracker as the only source: exit 4 with a clear, escaped message', () => {
  const cases: {
    name: string;
    handler: () => (req: http.IncomingMessage, res: http.ServerResponse) => void;
    message: RegExp | string;
  }[] = [
    {
      name: 'garbage body',
      handler: () => (_q, res) => res.end('<html>nope</html>'),
      message: 'reply is not valid bencode',
    },
    {
      name: '100 MB body',
      handler: () => streamingBody(HUNDRED_MB, false).handler,
      message: `reply body is larger than ${MAX_TRACKER_BODY_BYTES} bytes`,
    },
    {
      name: 'redirect to file:',
      handler: () => redirectTo('file:///etc/passwd'),
      message: 'redirect to unsupported scheme file:',
    },
    {
      name: 'failure reason with control characters',
      handler: () => (_q, res) => res.end(encode({ 'failure reason': EVIL_REASON })),
      message:
        'tracker failure: go away\\x1b[2J\\x1b[31mPWNED\\x07\\r\\x1b]0;title\\x07 \\x9b6n \\u202edisguised',
    },
    {
      name: 'body that never ends',
      handler: () => endlessBody(),
      message: /no usable peer within 1s \(no peer addresses found/,
    },
  ];

  for (const c of cases) {
    it(c.name, async () => {
      const tr = await tracker(c.handler());
      const t = makeTorrent({
        name: 'out.bin',
        pieceLength: PIECE,
        files: { data },
        announce: tr.url,
      });
      const r = await download(t, ['--timeout', '1']);
      expect(r.code).toBe(4);
      expect(r.ms).toBeLessThan(4_000);
      // Warnings come first (as the tracker fails); the last line is the error.
      const last = r.stderr.trimEnd().split('\n').at(-1)!;
      expect(last.startsWith('tdl: no usable peer within 1s')).toBe(true);
      if (typeof c.message === 'string') expect(last).toContain(c.message);
      else expect(last).toMatch(c.message);
      expect(r.stderr).not.toMatch(RAW_CONTROL);
      // The tracker's URL is named once per failure, not twice.
      expect(last).not.toContain(`${tr.url}: tracker ${tr.url}`);
    });
  }

  it('--json: the warning and error events carry the message escaped, as the text lines do', async () => {
    const tr = await tracker((_q, res) => res.end(encode({ 'failure reason': EVIL_REASON })));
    const t = makeTorrent({
      name: 'out.bin',
      pieceLength: PIECE,
      files: { data },
      announce: tr.url,
    });
    const r = await download(t, ['--timeout', '1', '--json']);
    expect(r.code).toBe(4);
    // JSON escapes every C0 control character (ESC, BEL, CR...) as \uXXXX.
    expect(r.stdout.replaceAll('\n', '')).not.toMatch(/[\u0000-\u001f]/);
    const err = r.events.find((e) => e['event'] === 'error');
    expect(err).toMatchObject({ kind: 'no-peers', exitCode: 4 });
    const escaped =
      'tracker failure: go away\\x1b[2J\\x1b[31mPWNED\\x07\\r\\x1b]0;title\\x07 \\x9b6n \\u202edisguised';
    expect(String(err!['message'])).toContain(escaped);
    expect(String(err!['message'])).not.toMatch(RAW_CONTROL);
    const warnings = r.events
      .filter((e) => e['event'] === 'warning')
      .map((e) => String(e['message']));
    expect(warnings.some((w) => w.includes(escaped))).toBe(true);
    for (const w of warnings) expect(w).not.toMatch(RAW_CONTROL);
    expect(r.stderr).not.toMatch(RAW_CONTROL);
  });
});
