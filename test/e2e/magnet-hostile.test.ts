/**
 * Hostile metadata peers against the real CLI (in process), one per case of BEP 9 abuse: a
 * `metadata_size` of 0 or above the cap, a `total_size` that changes between messages, a piece
 * index out of range, a data piece longer than 16 KiB, only `reject`s, and a copy that does not
 * hash to the info hash. Alone, none of them gets tdl to show a torrent: it drops the peer (or,
 * for rejects, rests it) and gives up at `--timeout` with exit 4. All of them together beside one
 * honest peer: the fetch goes on from the honest one. Metadata that hashes right but names an
 * unsafe path, or holds bytes after its dictionary, exits 3 with nothing created or shown. Peers
 * without the metadata in every slot make room for one not tried yet.
 */
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encode } from '../../src/metainfo/bencode.js';
import { Framer } from '../../src/wire/framer.js';
import { RESERVED_EXTENDED, encodeHandshake } from '../../src/wire/handshake.js';
import { encodeExtended } from '../../src/wire/messages.js';
import {
  UT_METADATA,
  decodeExtendedHandshake,
  encodeExtendedHandshake,
  peerExtensionId,
} from '../../src/wire/extension.js';
import {
  MAX_METADATA_SIZE,
  METADATA_PIECE_SIZE,
  decodeUtMetadata,
  encodeUtMetadata,
} from '../../src/wire/ut-metadata.js';
import { METADATA_MAX_PEERS } from '../../src/swarm/metadata-swarm.js';
import { runCli } from '../helpers/cli.js';
import { startHttpTracker } from '../helpers/fake-tracker.js';
import { useFixture } from '../helpers/fixture.js';
import { until } from '../helpers/tdl-process.js';
import { freePort as closedPort } from '../helpers/ports.js';

const fx = useFixture();

/** The ut_metadata id these peers give in their extension handshake. */
const OUR_UT_METADATA = 3;

/** An info dictionary of several metadata pieces (3,000 piece hashes: about 60 KB). */
function infoDict(name: string, extra: Record<string, unknown> = {}): Buffer {
  const pieces = Buffer.alloc(3000 * 20);
  for (let i = 0; i < pieces.length; i++) pieces[i] = (i * 7 + name.length) & 0xff;
  const d: Record<string, unknown> = { name, 'piece length': 16384, pieces, length: 3000 * 16384 };
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete d[k];
    else d[k] = v;
  }
  return Buffer.from(encode(d));
}

interface MetadataPeer {
  port: number;
  /** Connections tdl closed (the peer never closes one itself). */
  droppedByTdl: number;
  requests: number;
}

/**
 * A peer that speaks BEP 10 and answers ut_metadata requests with `answer(piece, nth)` (the
 * payloads to send; nth counts this peer's answers from 0), announcing `size` as metadata_size.
 */
async function metadataPeer(
  infoHash: Buffer,
  /** undefined: a peer without the metadata (its handshake has no metadata_size). */
  size: number | undefined,
  answer: (piece: number, nth: number) => Buffer[],
  /** Messages sent unasked every 200 ms once the extension handshakes are done. */
  chatter?: () => Buffer[],
): Promise<MetadataPeer> {
  const state: MetadataPeer = { port: 0, droppedByTdl: 0, requests: 0 };
  const sockets = new Set<net.Socket>();
  let answered = 0;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => {
      if (sockets.delete(socket)) state.droppedByTdl++;
    });
    const framer = new Framer({ maxLength: 1 << 20, expectHandshake: true });
    let handshaken = false;
    let theirId: number | undefined;
    socket.on('data', (chunk: Buffer) => {
      framer.push(chunk);
      if (!handshaken) {
        if (!framer.nextHandshake()) return;
        handshaken = true;
        const reserved = Buffer.alloc(8);
        reserved[RESERVED_EXTENDED.byte]! |= RESERVED_EXTENDED.bit;
        socket.write(encodeHandshake(infoHash, Buffer.from('-HM0001-metadatapeer'), reserved));
        const m = new Map([[UT_METADATA, OUR_UT_METADATA]]);
        socket.write(encodeExtended(0, encodeExtendedHandshake({ m, metadataSize: size })));
      }
      for (let msg = framer.next(); msg; msg = framer.next()) {
        if (msg.type !== 'extended') continue;
        if (msg.extId === 0) {
          theirId = peerExtensionId(decodeExtendedHandshake(msg.payload), UT_METADATA);
          if (chatter && theirId !== undefined) {
            const id = theirId;
            const tick = setInterval(() => {
              for (const b of chatter()) socket.write(encodeExtended(id, b));
            }, 200);
            socket.on('close', () => clearInterval(tick));
          }
        } else if (msg.extId === OUR_UT_METADATA && theirId !== undefined) {
          const req = decodeUtMetadata(msg.payload);
          if (req.type !== 'request') continue;
          state.requests++;
          for (const p of answer(req.piece, answered++)) socket.write(encodeExtended(theirId, p));
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.address() as net.AddressInfo).port;
  fx.onClose(async () => {
    for (const s of [...sockets]) {
      sockets.delete(s);
      s.destroy();
    }
    await new Promise<void>((r) => server.close(() => r()));
  });
  return state;
}

/** The `data` answer for `piece` of `info`, as an honest peer sends it. */
function data(info: Buffer, piece: number, totalSize = info.length): Buffer {
  const start = piece * METADATA_PIECE_SIZE;
  const bytes = info.subarray(start, Math.min(start + METADATA_PIECE_SIZE, info.length));
  return encodeUtMetadata({ type: 'data', piece, totalSize, data: bytes });
}

const infoHashOf = (info: Buffer) => createHash('sha1').update(info).digest();

function magnetTo(infoHash: Buffer, ports: number[]): string {
  return (
    `magnet:?xt=urn:btih:${infoHash.toString('hex')}` +
    ports.map((p) => `&x.pe=127.0.0.1:${p}`).join('')
  );
}

/** The hostile peers of `info`, by name. */
async function hostilePeers(info: Buffer): Promise<Record<string, MetadataPeer>> {
  const ih = infoHashOf(info);
  const honest = (piece: number) => [data(info, piece)];
  // No hostile peer sends a single right piece: the honest peer's pieces are the only good ones,
  // so the test knows where the metadata came from.
  const badCopy = Buffer.from(info);
  for (let at = 100; at < badCopy.length; at += METADATA_PIECE_SIZE) badCopy[at]! ^= 0xff;
  return {
    'metadata_size 0': await metadataPeer(ih, 0, honest),
    'metadata_size over the cap': await metadataPeer(ih, MAX_METADATA_SIZE + 1, honest),
    'total_size that changes': await metadataPeer(ih, info.length, (piece, nth) => [
      nth === 0 ? data(badCopy, piece) : data(info, piece, info.length + 1),
    ]),
    'piece index out of range': await metadataPeer(ih, info.length, () => [data(info, 1000)]),
    'data piece over 16 KiB': await metadataPeer(ih, info.length, (piece) => [
      Buffer.concat([
        Buffer.from(encode({ msg_type: 1, piece, total_size: info.length })),
        Buffer.alloc(METADATA_PIECE_SIZE + 1, 7),
      ]),
    ]),
    'only rejects': await metadataPeer(ih, info.length, (piece) => [
      encodeUtMetadata({ type: 'reject', piece }),
    ]),
    'a copy that hashes wrong': await metadataPeer(ih, info.length, (piece) => [
      data(badCopy, piece),
    ]),
    // Busy, never useful: requests of its own and rejects nobody asked for must not count as
    // progress, or the wait would never end.
    'requests and rejects, unasked': await metadataPeer(
      ih,
      info.length,
      (piece) => [encodeUtMetadata({ type: 'reject', piece })],
      () => [
        encodeUtMetadata({ type: 'request', piece: 0 }),
        encodeUtMetadata({ type: 'reject', piece: 1 }),
      ],
    ),
  };
}

/** What the final message of a run against each hostile peer alone says it was dropped for. */
const droppedWhy: Record<string, string> = {
  'metadata_size 0': 'unusable metadata size 0',
  'metadata_size over the cap': `metadata of ${MAX_METADATA_SIZE + 1} bytes, over tdl's limit of ${MAX_METADATA_SIZE} (16 MiB)`,
  'piece index out of range': 'metadata piece 1000 out of range (4 pieces)',
  'data piece over 16 KiB': 'ut_metadata: data piece of 16385 bytes is too long',
  'a copy that hashes wrong': 'metadata does not match the info hash',
};

describe('magnet links against hostile metadata peers', () => {
  it('each hostile peer alone: no torrent shown, the liar dropped, exit 4 at --timeout', async () => {
    const info = infoDict('h.bin');
    const ih = infoHashOf(info);
    const peers = await hostilePeers(info);
    const runs = await Promise.all(
      Object.entries(peers).map(async ([name, p]) => {
        let ended = false;
        const run = runCli([
          'info',
          magnetTo(ih, [p.port]),
          '--json',
          '--no-dht',
          '--timeout',
          '4',
        ]).then((r) => ((ended = true), r));
        // A liar is dropped for its lie, while the run still waits for metadata (at its end
        // every connection closes anyway); the rejecting peer is only asked less.
        let droppedInTime = true;
        if (name !== 'only rejects' && name !== 'requests and rejects, unasked') {
          await until(() => p.droppedByTdl > 0 || ended, 10_000, `${name}: a close`);
          droppedInTime = !ended;
        }
        return { name, p, r: await run, droppedInTime };
      }),
    );
    for (const { name, p, r, droppedInTime } of runs) {
      expect(r.code, `${name}: ${r.stderr}`).toBe(4);
      // Nothing but the error event: no torrent was shown.
      expect(r.events, name).toHaveLength(1);
      expect(r.events[0], name).toMatchObject({ event: 'error', kind: 'no-peers' });
      expect(r.events[0]!['message'], name).toMatch(/no metadata within 4s/);
      // The peer that was dropped, and why (the rejecting ones are only asked less).
      if (droppedWhy[name]) {
        expect(r.events[0]!['message'], name).toContain(
          `; last: 127.0.0.1:${p.port}: ${droppedWhy[name]})`,
        );
      }
      expect(droppedInTime, `${name}: dropped before the run ended`).toBe(true);
      if (name === 'only rejects') expect(p.requests, name).toBeGreaterThan(0);
      if (name.startsWith('metadata_size')) expect(p.requests, name).toBe(0);
    }
  }, 30_000);

  it('all of them beside one honest peer: the metadata comes from the honest one', async () => {
    const info = infoDict('h.bin');
    const ih = infoHashOf(info);
    const peers = await hostilePeers(info);
    const honest = await metadataPeer(ih, info.length, (piece) => [data(info, piece)]);
    const saved = path.join(fx.dir, 'saved.torrent');
    const ports = [...Object.values(peers).map((p) => p.port), honest.port];
    const r = await runCli([
      'info',
      magnetTo(ih, ports),
      '--json',
      '--no-dht',
      '--timeout',
      '20',
      '--save-torrent',
      saved,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const shown = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(shown['infoHash']).toBe(ih.toString('hex'));
    expect(shown['name']).toBe('h.bin');
    expect(honest.requests).toBeGreaterThan(0);
    const again = await runCli(['info', saved, '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ infoHash: ih.toString('hex') });
  }, 30_000);

  it('no metadata: the error names what the tracker said, as a download does', async () => {
    const port = await closedPort();
    const tr = `http://127.0.0.1:${port}/announce`;
    const magnet = `magnet:?xt=urn:btih:${'ab'.repeat(20)}&tr=${encodeURIComponent(tr)}`;
    const r = await runCli(['info', magnet, '--no-dht', '--timeout', '1', '--json']);
    expect(r.code, r.stderr).toBe(4);
    const err = r.events.find((e) => e['event'] === 'error')!;
    expect(err['message']).toMatch(
      new RegExp(
        `^no metadata within 1s \\(0 peer addresses, 0 with metadata; tracker ${tr}: .+\\)$`,
      ),
    );
  });

  it('--save-torrent where it cannot be written: refused before any wait, never a crash', async () => {
    const info = infoDict('s.bin');
    const ih = infoHashOf(info);
    const honest = await metadataPeer(ih, info.length, (piece) => [data(info, piece)]);
    const link = magnetTo(ih, [honest.port]);
    const noDir = await runCli([
      'info',
      link,
      '--no-dht',
      '--save-torrent',
      path.join(fx.dir, 'no', 'x.torrent'),
    ]);
    expect(noDir.code, noDir.stderr).toBe(2);
    expect(noDir.stderr).toMatch(/^tdl: --save-torrent .*: no folder .*\n$/);
    expect(honest.requests).toBe(0);
    const folder = await runCli(['info', link, '--no-dht', '--save-torrent', fx.dir]);
    expect(folder.code).toBe(2);
    expect(folder.stderr).toMatch(/is a folder/);
    // A failure after the metadata came on a terminal: the "fetching" line is cleared first.
    const tty = await runCli(['info', link, '--no-dht', '--timeout', '1'], { tty: true });
    expect(tty.code).toBe(0);
    const quiet = await runCli(
      ['info', magnetTo(ih, [await closedPort()]), '--no-dht', '--timeout', '1'],
      { tty: true },
    );
    expect(quiet.code).toBe(4);
    // The last line drawn is wiped before the error is written.
    expect(quiet.stderr).toMatch(/\r\x1b\[2Ktdl: /);
  }, 30_000);

  it('a warning while the "fetching metadata" line is up (a terminal) starts a line of its own', async () => {
    // The tracker fails after the line was first drawn (about a second in).
    const tracker = await startHttpTracker({
      handler: (_req, res) => {
        setTimeout(() => res.end(encode({ 'failure reason': 'go away' })), 2_500);
      },
    });
    const link = `${magnetTo(Buffer.alloc(20, 7), [])}&tr=${encodeURIComponent(tracker.url)}`;
    try {
      const r = await runCli(['info', link, '--no-dht', '--timeout', '4'], { tty: true });
      expect(r.code).toBe(4);
      expect(r.stderr).toContain('fetching metadata from 0 of 0 peers');
      expect(r.stderr).toContain('tdl: warning: ');
      // Never written after the drawn line, where it would share (and keep) its text.
      for (const text of r.stderr.split(/\r\x1b\[2K|\n/)) {
        if (text.includes('tdl: warning: ')) expect(text).toMatch(/^tdl: warning: /);
      }
      // The line the warning wiped is drawn again, though its figures did not change.
      const after = r.stderr.slice(r.stderr.lastIndexOf('tdl: warning: '));
      expect(after).toContain('fetching metadata from 0 of 0 peers');
    } finally {
      await tracker.close();
    }
  }, 30_000);

  it('metadata that hashes right but names an unsafe path: exit 3, nothing created', async () => {
    const info = infoDict('evil', {
      length: undefined,
      files: [{ path: ['..', 'escaped.bin'], length: 3000 * 16384 }],
    });
    const ih = infoHashOf(info);
    const honest = await metadataPeer(ih, info.length, (piece) => [data(info, piece)]);
    const out = path.join(fx.dir, 'out');
    const before = readdirSync(fx.dir);
    const r = await runCli([
      'download',
      magnetTo(ih, [honest.port]),
      '-o',
      out,
      '--no-dht',
      '--no-listen',
      '--timeout',
      '20',
    ]);
    expect(r.code, r.stderr).toBe(3);
    // Said to come from the peers' metadata, as a .torrent's errors name the file.
    expect(r.stderr).toMatch(
      /^tdl: the torrent's metadata from peers: info\.files\[0\]\.path\[0\]: .*\.\./,
    );
    expect(honest.requests).toBeGreaterThan(0);
    expect(readdirSync(fx.dir)).toEqual(before);
    const i = await runCli(['info', magnetTo(ih, [honest.port]), '--no-dht', '--timeout', '20']);
    expect(i.code, i.stderr).toBe(3);
    expect(i.stdout).toBe('');
  }, 30_000);
});

describe('a hybrid link (btih and btmh)', () => {
  it("metadata whose v2 hash is not the link's: exit 3; the right one is taken", async () => {
    const info = infoDict('hy.bin', {
      'meta version': 2,
      'file tree': {
        'hy.bin': { '': { length: 3000 * 16384, 'pieces root': Buffer.alloc(32, 7) } },
      },
    });
    const ih = infoHashOf(info);
    const v2 = createHash('sha256').update(info).digest('hex');
    const honest = await metadataPeer(ih, info.length, (piece) => [data(info, piece)]);
    const link = (v2hex: string) => `${magnetTo(ih, [honest.port])}&xt=urn:btmh:1220${v2hex}`;
    const wrong = await runCli(['info', link('ee'.repeat(32)), '--no-dht', '--timeout', '20']);
    expect(wrong.code, wrong.stderr).toBe(3);
    expect(wrong.stdout).toBe('');
    expect(wrong.stderr).toBe(
      `tdl: magnet.xt: the link's v2 info hash (btmh ${'ee'.repeat(32)}) is not the metadata's (${v2})\n`,
    );
    const right = await runCli(['info', link(v2), '--no-dht', '--timeout', '20']);
    expect(right.code, right.stderr).toBe(0);
    expect(right.stdout).toContain(`info hash v2: ${v2}`);
  }, 30_000);
});

describe('metadata that hashes right but is more than one info dictionary', () => {
  it('exit 3, and no torrent shown under another info hash', async () => {
    const dict = infoDict('tail');
    // The link names the hash of these bytes: the dictionary, then a key and a value that would
    // sit beside it in the .torrent made around them.
    const info = Buffer.concat([
      dict,
      Buffer.from(encode('url-list')),
      Buffer.from(encode(['http://127.0.0.1:1/x/'])),
    ]);
    const ih = infoHashOf(info);
    const honest = await metadataPeer(ih, info.length, (piece) => [data(info, piece)]);
    const i = await runCli(['info', magnetTo(ih, [honest.port]), '--no-dht', '--timeout', '20']);
    expect(honest.requests).toBeGreaterThan(0);
    expect(i.code, i.stderr).toBe(3);
    expect(i.stdout).toBe('');
    expect(i.stderr).toMatch(/after the info dictionary/);
  }, 30_000);

  it('bytes after it that are not bencode are named as such, not as a bad key', async () => {
    const info = Buffer.concat([infoDict('junk'), Buffer.from('xyz')]);
    const ih = infoHashOf(info);
    const honest = await metadataPeer(ih, info.length, (piece) => [data(info, piece)]);
    const i = await runCli(['info', magnetTo(ih, [honest.port]), '--no-dht', '--timeout', '20']);
    expect(i.code, i.stderr).toBe(3);
    expect(i.stderr).toBe(
      'tdl: info: the metadata from peers has 3 byte(s) after the info dictionary (it must be one bencoded dictionary)\n',
    );
  }, 30_000);
});

describe('peers without the metadata in every slot', () => {
  it('make room for an address not tried yet: the metadata comes from it', async () => {
    const info = infoDict('room.bin');
    const ih = infoHashOf(info);
    // Leechers of the same link: BEP 10 and ut_metadata, no metadata_size, silent.
    const without = await Promise.all(
      Array.from({ length: METADATA_MAX_PEERS }, () => metadataPeer(ih, undefined, () => [])),
    );
    const honest = await metadataPeer(ih, info.length, (piece) => [data(info, piece)]);
    const ports = [...without.map((p) => p.port), honest.port];
    const r = await runCli(['info', magnetTo(ih, ports), '--json', '--no-dht', '--timeout', '20']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ infoHash: ih.toString('hex'), name: 'room.bin' });
    expect(honest.requests).toBeGreaterThan(0);
  }, 40_000);
});
