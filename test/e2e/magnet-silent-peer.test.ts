/**
 * A peer that announces the metadata (`metadata_size`) and never answers a request, beside an
 * honest one, against the real CLI (in process). The silent peer is asked first (its extension
 * handshake comes first); once the honest peer has sent everything else, it is asked for the
 * silent peer's pieces too after a few seconds (METADATA_HEDGE_MS), as libtorrent does, rather
 * than after the silent peer let its requests time out twice (2 × 15 s): `--timeout 10`, which
 * counts from the last metadata piece received, is not reached.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { encode } from '../../src/metainfo/bencode.js';
import { METADATA_REQUEST_TIMEOUT_MS } from '../../src/swarm/metadata-fetch.js';
import {
  UT_METADATA,
  decodeExtendedHandshake,
  encodeExtendedHandshake,
  peerExtensionId,
} from '../../src/wire/extension.js';
import { Framer } from '../../src/wire/framer.js';
import { RESERVED_EXTENDED, encodeHandshake } from '../../src/wire/handshake.js';
import { encodeExtended } from '../../src/wire/messages.js';
import {
  METADATA_PIECE_SIZE,
  decodeUtMetadata,
  encodeUtMetadata,
} from '../../src/wire/ut-metadata.js';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';

const fx = useFixture();

/** The ut_metadata id these peers give in their extension handshake. */
const OUR_UT_METADATA = 3;
/** How long the honest peer waits before its extension handshake: the silent one is first. */
const HONEST_DELAY_MS = 500;
const TIMEOUT_S = 10;

/** An info dictionary of 4 metadata pieces (3,000 piece hashes: about 60 KB). */
function infoDict(): Buffer {
  const pieces = Buffer.alloc(3000 * 20);
  for (let i = 0; i < pieces.length; i++) pieces[i] = (i * 13) & 0xff;
  return Buffer.from(
    encode({ name: 'quiet.bin', 'piece length': 16384, pieces, length: 3000 * 16384 }),
  );
}

/**
 * A BEP 10 peer announcing `info.length` as metadata_size after `delayMs`; it answers requests
 * with the pieces if `honest`, else never. Counts the requests it gets.
 */
async function metadataPeer(info: Buffer, honest: boolean, delayMs: number) {
  const infoHash = createHash('sha1').update(info).digest();
  const state = { port: 0, requests: 0 };
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    const framer = new Framer({ maxLength: 1 << 20, expectHandshake: true });
    let handshaken = false;
    let ready = false;
    let theirId: number | undefined;
    const read = () => {
      for (let msg = framer.next(); msg; msg = framer.next()) {
        if (msg.type !== 'extended') continue;
        if (msg.extId === 0) {
          theirId = peerExtensionId(decodeExtendedHandshake(msg.payload), UT_METADATA);
        } else if (msg.extId === OUR_UT_METADATA && theirId !== undefined) {
          const req = decodeUtMetadata(msg.payload);
          if (req.type !== 'request') continue;
          state.requests++;
          if (!honest) continue;
          const start = req.piece * METADATA_PIECE_SIZE;
          const data = info.subarray(start, Math.min(start + METADATA_PIECE_SIZE, info.length));
          const m = { type: 'data', piece: req.piece, totalSize: info.length, data } as const;
          socket.write(encodeExtended(theirId, encodeUtMetadata(m)));
        }
      }
    };
    socket.on('data', (chunk: Buffer) => {
      framer.push(chunk);
      if (!handshaken) {
        if (!framer.nextHandshake()) return;
        handshaken = true;
        const reserved = Buffer.alloc(8);
        reserved[RESERVED_EXTENDED.byte]! |= RESERVED_EXTENDED.bit;
        socket.write(encodeHandshake(infoHash, Buffer.from('-QP0001-quietpeer000'), reserved));
        const t = setTimeout(() => {
          timers.delete(t);
          const m = new Map([[UT_METADATA, OUR_UT_METADATA]]);
          socket.write(
            encodeExtended(0, encodeExtendedHandshake({ m, metadataSize: info.length })),
          );
          ready = true;
          read();
        }, delayMs);
        timers.add(t);
      }
      if (ready) read();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.address() as net.AddressInfo).port;
  fx.onClose(async () => {
    for (const t of timers) clearTimeout(t);
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { infoHash, state };
}

describe('a metadata peer that never answers', () => {
  it('holds the fetch back a few seconds, not two request timeouts', async () => {
    // The point of the test: without asking the honest peer for the silent peer's pieces, the
    // fetch would wait past --timeout.
    expect(METADATA_REQUEST_TIMEOUT_MS).toBeGreaterThan(TIMEOUT_S * 1000 + HONEST_DELAY_MS);
    const info = infoDict();
    const silent = await metadataPeer(info, false, 0);
    const honest = await metadataPeer(info, true, HONEST_DELAY_MS);
    const link =
      `magnet:?xt=urn:btih:${silent.infoHash.toString('hex')}` +
      `&x.pe=127.0.0.1:${silent.state.port}&x.pe=127.0.0.1:${honest.state.port}`;
    const r = await runCli(['info', link, '--json', '--no-dht', '--timeout', String(TIMEOUT_S)]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      infoHash: silent.infoHash.toString('hex'),
      name: 'quiet.bin',
    });
    // The silent peer was asked first, and the honest peer for more than its own two pieces.
    expect(silent.state.requests).toBeGreaterThan(0);
    expect(honest.state.requests).toBeGreaterThan(2);
  }, 40_000);
});
