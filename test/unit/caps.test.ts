/**
 * Every resource cap, by its named constant, crossed by one: at the cap the input is taken, one
 * past it it is refused or cut, and nothing is allocated for the part past the cap.
 */
import { truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BencodeError, MetainfoError, TrackerError, WireError } from '../../src/errors.js';
import { MAX_BENCODE_DEPTH, decodeStrict, encode } from '../../src/metainfo/bencode.js';
import { MAX_PATH_DEPTH, checkRelativePath } from '../../src/metainfo/paths.js';
import {
  MAX_FILES,
  MAX_PIECE_LENGTH,
  MAX_TORRENT_FILE_BYTES,
  parseTorrent,
} from '../../src/metainfo/torrent.js';
import { PeerConnection } from '../../src/peer/connection.js';
import { Layout } from '../../src/storage/layout.js';
import { MAX_INFLIGHT_BYTES } from '../../src/swarm/session.js';
import { PiecePicker } from '../../src/swarm/picker.js';
import { INITIAL_DEPTH, MAX_DEPTH, MIN_DEPTH, Pipeline } from '../../src/swarm/pipeline.js';
import { MAX_PEERS_PER_REPLY } from '../../src/tracker/compact.js';
import {
  MAX_TRACKER_BODY_BYTES,
  MAX_TRACKER_MESSAGE_CHARS,
  MAX_TRACKER_REDIRECTS,
  announceHttp,
  parseHttpResponse,
} from '../../src/tracker/http.js';
import { MAX_UDP_ERROR_MESSAGE_BYTES, decodeUdpReply } from '../../src/tracker/udp-codec.js';
import type { AnnounceRequest } from '../../src/tracker/types.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { Framer } from '../../src/wire/framer.js';
import {
  BLOCK_SIZE,
  MESSAGE_LENGTH_SLACK,
  encodeMessage,
  maxMessageLength,
} from '../../src/wire/messages.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { compactPeers, startHttpTracker } from '../helpers/fake-tracker.js';
import { startHostilePeer, type HostileConnection } from '../helpers/hostile-peer.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => {});
});

function prefix(length: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(length);
  return b;
}

function framer(maxLength: number): Framer {
  return new Framer({ maxLength, expectHandshake: false });
}

describe('peer wire caps', () => {
  it('message length: maxMessageLength(pieceCount) is taken, one more is refused from the prefix alone', () => {
    for (const pieces of [1, 1000, 140_000, 1_000_000]) {
      const max = maxMessageLength(pieces);
      expect(max).toBe(
        Math.max(1 + 8 + BLOCK_SIZE, 1 + Math.ceil(pieces / 8)) + MESSAGE_LENGTH_SLACK,
      );
      const ok = framer(max);
      ok.push(prefix(max));
      expect(ok.next()).toBeNull(); // waits for the body
      const over = framer(max);
      over.push(prefix(max + 1));
      expect(() => over.next()).toThrow(WireError);
      expect(() => over.next()).toThrow(`message length ${max + 1} exceeds the limit of ${max}`);
      // Nothing was set aside for the announced body.
      expect(over.buffered).toBe(4);
    }
  });

  it('a 4 GiB length prefix is refused as soon as its 4 bytes are in, even split', () => {
    const f = framer(maxMessageLength(100));
    f.push(Buffer.from([0xff, 0xff]));
    expect(f.next()).toBeNull();
    f.push(Buffer.from([0xff, 0xff]));
    expect(() => f.next()).toThrow(/message length 4294967295 exceeds the limit/);
  });

  it('a block larger than BLOCK_SIZE + slack does not fit in a piece message', () => {
    const max = maxMessageLength(10);
    const fits = encodeMessage({
      type: 'piece',
      index: 0,
      begin: 0,
      block: Buffer.alloc(max - 9),
    });
    const f = framer(max);
    f.push(fits);
    expect(f.next()).toMatchObject({ type: 'piece' });
    const tooBig = encodeMessage({
      type: 'piece',
      index: 0,
      begin: 0,
      block: Buffer.alloc(max - 8),
    });
    const g = framer(max);
    g.push(tooBig.subarray(0, 4));
    expect(() => g.next()).toThrow(WireError);
  });

  it('bitfield size: exactly ceil(pieceCount / 8) bytes, a byte more or less is refused', () => {
    for (const pieces of [1, 8, 9, 1000, 1_000_001]) {
      const bytes = Math.ceil(pieces / 8);
      expect(Bitfield.fromWire(Buffer.alloc(bytes), pieces).size).toBe(pieces);
      expect(() => Bitfield.fromWire(Buffer.alloc(bytes + 1), pieces)).toThrow(WireError);
      expect(() => Bitfield.fromWire(Buffer.alloc(bytes - 1), pieces)).toThrow(WireError);
      // A bitfield message past the length cap never reaches fromWire.
      const max = maxMessageLength(pieces);
      const f = framer(max);
      f.push(prefix(1 + bytes + MESSAGE_LENGTH_SLACK + BLOCK_SIZE + 9));
      expect(() => f.next()).toThrow(/exceeds the limit/);
    }
  });

  it('the idle timeout (IDLE_TIMEOUT_MS, here 300 ms) closes a connection gone silent', async () => {
    const infoHash = Buffer.alloc(20, 7);
    const p = await startHostilePeer(async (c) => {
      await c.exchangeHandshakes(infoHash);
      await c.closed;
    });
    closers.push(() => p.close());
    const conn = new PeerConnection({
      host: '127.0.0.1',
      port: p.port,
      infoHash,
      peerId: Buffer.alloc(20, 1),
      pieceCount: 4,
      timeouts: { idleMs: 300 },
    });
    const closed = new Promise<string>((r) => conn.once('close', r));
    await conn.connect();
    conn.start(new Bitfield(4));
    const t0 = Date.now();
    expect(await closed).toBe('idle timeout');
    expect(Date.now() - t0).toBeLessThan(1_500);
  });

  it('a timeout falling due while bytes wait unread (the process was stopped) does not close', async () => {
    const infoHash = Buffer.alloc(20, 8);
    let peer: HostileConnection | undefined;
    const p = await startHostilePeer(async (c) => {
      await c.exchangeHandshakes(infoHash);
      peer = c;
      await c.closed;
    });
    closers.push(() => p.close());
    const conn = new PeerConnection({
      host: '127.0.0.1',
      port: p.port,
      infoHash,
      peerId: Buffer.alloc(20, 1),
      pieceCount: 4,
      timeouts: { idleMs: 300 },
    });
    let reason: string | null = null;
    conn.once('close', (r: string) => (reason = r));
    await conn.connect();
    conn.start(new Bitfield(4));
    while (!peer) await new Promise((r) => setTimeout(r, 5));
    // The peer's keep-alive goes into our socket (written at once), then this process runs
    // nothing past the timeout, as a stopped one: on waking, due timers run before the sockets
    // are read.
    const sender = peer;
    await new Promise<void>((resolve) =>
      // From the event loop's last phase: the next turn starts with its timers.
      setImmediate(() => {
        void sender.send({ type: 'keep-alive' });
        const until = Date.now() + 400;
        while (Date.now() < until) {
          // stopped
        }
        resolve();
      }),
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(reason).toBeNull();
    expect(conn.state).toBe('open');
    conn.close('done');
  });
});

describe('swarm caps', () => {
  it('outstanding requests per peer: the pipeline depth never passes MAX_DEPTH', () => {
    const p = new Pipeline(0);
    expect(p.depth).toBe(INITIAL_DEPTH);
    // Slow start: one more per block received...
    for (let i = 0; i < 10 * MAX_DEPTH; i++) p.onBlock(BLOCK_SIZE);
    expect(p.depth).toBe(MAX_DEPTH);
    // ...and after it, the measured rate: 100 GB/s would want far more than MAX_DEPTH.
    p.snubbed();
    expect(p.depth).toBe(MIN_DEPTH);
    let now = 0;
    for (let i = 0; i < 20; i++) {
      now += 1000;
      p.onBlock(100e9);
      p.tick(now);
    }
    expect(p.depth).toBe(MAX_DEPTH);
  });

  it('memory for in-flight pieces: the picker stops starting pieces at MAX_INFLIGHT_BYTES', () => {
    const pieceLength = 1024 * 1024;
    const pieceCount = Math.ceil((3 * MAX_INFLIGHT_BYTES) / pieceLength);
    const layout = new Layout(
      [{ offset: 0, length: pieceCount * pieceLength }],
      pieceLength,
      pieceCount * pieceLength,
    );
    const all = new Bitfield(pieceCount);
    for (let i = 0; i < pieceCount; i++) all.set(i);
    const picker = new PiecePicker(layout, new Bitfield(pieceCount), MAX_INFLIGHT_BYTES);
    picker.peerHas(all);
    // Ten greedy peers asking for every block there is.
    let blocks = 0;
    for (let peer = 0; peer < 10; peer++) {
      blocks += picker.pick(`peer${peer}`, all, 1_000_000, () => false).length;
    }
    expect(picker.bytesInFlight).toBeLessThanOrEqual(MAX_INFLIGHT_BYTES);
    expect(picker.bytesInFlight).toBeGreaterThan(MAX_INFLIGHT_BYTES - pieceLength);
    expect(blocks * BLOCK_SIZE).toBeLessThanOrEqual(MAX_INFLIGHT_BYTES);
    expect(picker.inProgress.size).toBe(Math.floor(MAX_INFLIGHT_BYTES / pieceLength));
  });

  it('one piece larger than the in-flight budget still starts (alone)', () => {
    const budget = 1024 * 1024;
    const pieceLength = 2 * budget;
    const layout = new Layout(
      [{ offset: 0, length: 3 * pieceLength }],
      pieceLength,
      3 * pieceLength,
    );
    const all = new Bitfield(3);
    for (let i = 0; i < 3; i++) all.set(i);
    const picker = new PiecePicker(layout, new Bitfield(3), budget);
    picker.peerHas(all);
    picker.pick('a', all, 1_000_000, () => false);
    expect(picker.inProgress.size).toBe(1);
    expect(picker.bytesInFlight).toBe(pieceLength);
    // The cap for the whole run is therefore max(MAX_INFLIGHT_BYTES, MAX_PIECE_LENGTH).
    expect(MAX_PIECE_LENGTH).toBeGreaterThanOrEqual(MAX_INFLIGHT_BYTES);
  });
});

describe('tracker caps', () => {
  const request: AnnounceRequest = {
    infoHash: Buffer.alloc(20, 1),
    peerId: Buffer.alloc(20, 2),
    port: 6881,
    uploaded: 0,
    downloaded: 0,
    left: 1,
  };

  function distinctPeers(n: number) {
    return Array.from({ length: n }, (_, i) => ({
      host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      port: 1000 + (i % 1000),
    }));
  }

  it('peers taken from one reply: MAX_PEERS_PER_REPLY, in every reply form', () => {
    for (const n of [MAX_PEERS_PER_REPLY, MAX_PEERS_PER_REPLY + 1, 10 * MAX_PEERS_PER_REPLY]) {
      const peers = distinctPeers(n);
      const compact = parseHttpResponse(encode({ interval: 60, peers: compactPeers(peers, 4) }));
      expect(compact.peers).toHaveLength(Math.min(n, MAX_PEERS_PER_REPLY));
      const dict = parseHttpResponse(
        encode({ interval: 60, peers: peers.map((p) => ({ ip: p.host, port: p.port })) }),
      );
      expect(dict.peers).toHaveLength(Math.min(n, MAX_PEERS_PER_REPLY));
      const udp = Buffer.concat([Buffer.alloc(20), compactPeers(peers, 4)]);
      udp.writeUInt32BE(1, 0);
      const r = decodeUdpReply(udp);
      expect(r && r.action === 'announce' && r.peers.length).toBe(Math.min(n, MAX_PEERS_PER_REPLY));
    }
  });

  /** A valid bencoded reply of exactly `size` bytes. */
  function bodyOfSize(size: number): Buffer {
    for (let n = size; n > 0; n--) {
      const b = Buffer.from(`d8:intervali1800e5:peers${n}:${'\u0000'.repeat(n)}e`, 'latin1');
      if (b.length === size) return b;
    }
    throw new Error(`no body of ${size} bytes`);
  }

  it('tracker body size: MAX_TRACKER_BODY_BYTES is read, one byte more is refused', async () => {
    let body: Buffer = Buffer.alloc(0);
    let declare = false;
    const t = await startHttpTracker({
      handler: (_req, res) => {
        res.writeHead(200, declare ? { 'content-length': String(body.length) } : {});
        // Streamed in pieces, with or without a length: the cap must hold while reading.
        for (let o = 0; o < body.length; o += 100_000) res.write(body.subarray(o, o + 100_000));
        res.end();
      },
    });
    closers.push(() => t.close());
    for (const d of [false, true]) {
      declare = d;
      body = bodyOfSize(MAX_TRACKER_BODY_BYTES);
      expect(body.length).toBe(MAX_TRACKER_BODY_BYTES);
      const ok = await announceHttp(t.url, request);
      expect(ok.interval).toBe(1800);
      body = Buffer.concat([body, Buffer.from('\n')]); // still valid bencode, one byte over
      await expect(announceHttp(t.url, request)).rejects.toThrow(
        `reply body is larger than ${MAX_TRACKER_BODY_BYTES} bytes`,
      );
    }
  });

  it('tracker messages are cut at MAX_TRACKER_MESSAGE_CHARS / MAX_UDP_ERROR_MESSAGE_BYTES', () => {
    const long = 'x'.repeat(10 * MAX_TRACKER_MESSAGE_CHARS);
    let err: unknown;
    try {
      parseHttpResponse(encode({ 'failure reason': long }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TrackerError);
    expect((err as Error).message).toBe(
      `tracker failure: ${'x'.repeat(MAX_TRACKER_MESSAGE_CHARS)}`,
    );
    const warning = parseHttpResponse(encode({ 'warning message': long, peers: '' })).warning;
    expect(warning).toHaveLength(MAX_TRACKER_MESSAGE_CHARS);
    const udp = Buffer.concat([Buffer.alloc(8), Buffer.alloc(10_000, 0x79)]);
    udp.writeUInt32BE(3, 0);
    const r = decodeUdpReply(udp);
    expect(r && r.action === 'error' && r.message.length).toBe(MAX_UDP_ERROR_MESSAGE_BYTES);
  });

  it('redirects: MAX_TRACKER_REDIRECTS are followed, one more is refused', async () => {
    let hops = 0;
    const t = await startHttpTracker({
      handler: (req, res) => {
        const m = /\/r(\d+)/.exec(req.url ?? '');
        const left = m ? Number(m[1]) : 0;
        if (left > 0) {
          res.writeHead(302, { location: `/r${left - 1}` });
          res.end();
          return;
        }
        hops++;
        res.end(encode({ interval: 60, peers: '' }));
      },
    });
    closers.push(() => t.close());
    const base = t.url.replace(/\/announce$/, '');
    await expect(announceHttp(`${base}/r${MAX_TRACKER_REDIRECTS}`, request)).resolves.toMatchObject(
      {
        interval: 60,
      },
    );
    expect(hops).toBe(1);
    await expect(announceHttp(`${base}/r${MAX_TRACKER_REDIRECTS + 1}`, request)).rejects.toThrow(
      `more than ${MAX_TRACKER_REDIRECTS} redirects`,
    );
  });
});

describe('metainfo caps', () => {
  const info = (over: Record<string, unknown> = {}) => ({
    name: 'f',
    'piece length': 16384,
    length: 1,
    pieces: Buffer.alloc(20),
    ...over,
  });

  it('MAX_TORRENT_FILE_BYTES: refused by size, by the CLI before it reads the file', async () => {
    expect(() => parseTorrent(Buffer.alloc(MAX_TORRENT_FILE_BYTES + 1))).toThrow(MetainfoError);
    const { dir, cleanup } = await tempDir('tdl-caps-');
    try {
      const big = path.join(dir, 'big.torrent');
      await writeFile(big, '');
      await truncate(big, MAX_TORRENT_FILE_BYTES + 1); // sparse: nothing to read
      const started = Date.now();
      const r = await runCli(['download', big, '--peer', '127.0.0.1:9']);
      expect(r.code).toBe(3);
      // Named as any refusal of a .torrent is: by its file (it said `file:`).
      expect(r.stderr).toBe(
        `tdl: ${big}: ${MAX_TORRENT_FILE_BYTES + 1} bytes, over the ${MAX_TORRENT_FILE_BYTES} bytes a .torrent may have\n`,
      );
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      await cleanup();
    }
  });

  it('MAX_PIECE_LENGTH', () => {
    expect(parseTorrent(encode({ info: info({ 'piece length': MAX_PIECE_LENGTH }) }))).toBeTruthy();
    expect(() =>
      parseTorrent(encode({ info: info({ 'piece length': MAX_PIECE_LENGTH + 1 }) })),
    ).toThrow(/piece length/);
  });

  it('MAX_FILES', () => {
    const files = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ length: 0, path: [`${i}`] }));
    const at = { name: 'd', 'piece length': 16384, pieces: Buffer.alloc(20) };
    const ok = files(MAX_FILES);
    ok[0]!.length = 1;
    expect(parseTorrent(encode({ info: { ...at, files: ok } })).files).toHaveLength(MAX_FILES);
    const over = files(MAX_FILES + 1);
    over[0]!.length = 1;
    expect(() => parseTorrent(encode({ info: { ...at, files: over } }))).toThrow(
      `more than ${MAX_FILES}`,
    );
  });

  it('MAX_PATH_DEPTH', () => {
    expect(() => checkRelativePath(Array(MAX_PATH_DEPTH).fill('d'), 'p')).not.toThrow();
    expect(() => checkRelativePath(Array(MAX_PATH_DEPTH + 1).fill('d'), 'p')).toThrow(
      MetainfoError,
    );
  });

  it('MAX_BENCODE_DEPTH', () => {
    const nest = (n: number) => Buffer.from('l'.repeat(n) + 'e'.repeat(n));
    expect(() => decodeStrict(nest(MAX_BENCODE_DEPTH))).not.toThrow();
    expect(() => decodeStrict(nest(MAX_BENCODE_DEPTH + 1))).toThrow(BencodeError);
  });
});
