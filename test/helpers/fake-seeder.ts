/**
 * An in-process BitTorrent seeder over a real TCP socket on 127.0.0.1, with switches for the
 * misbehaviours tests need. It counts what it serves so tests can assert who sent what.
 */
import net from 'node:net';
import { Framer } from '../../src/wire/framer.js';
import { RESERVED_EXTENDED, encodeHandshake } from '../../src/wire/handshake.js';
import {
  encodeExtended,
  encodeMessage,
  encodePiece,
  type Message,
} from '../../src/wire/messages.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { encodePex } from '../../src/wire/ut-pex.js';
import {
  UT_METADATA,
  UT_PEX,
  decodeExtendedHandshake,
  encodeExtendedHandshake,
  peerExtensionId,
} from '../../src/wire/extension.js';
import {
  answerMetadataRequest,
  decodeUtMetadata,
  encodeUtMetadata,
} from '../../src/wire/ut-metadata.js';

export interface FakeSeederOptions {
  infoHash: Buffer;
  /** The torrent's whole data. */
  data: Buffer;
  pieceLength: number;
  /** Pieces this seeder has (default: all). */
  pieces?: (index: number) => boolean;
  /** Announce pieces by `have` messages instead of a bitfield. */
  haveMessages?: boolean;
  /** Answer the handshake with another info hash. */
  wrongInfoHash?: boolean;
  /** Never send unchoke. */
  neverUnchoke?: boolean;
  /** Corrupt this piece the first `corruptTimes` times it is served (default once). */
  corruptPiece?: number;
  corruptTimes?: number;
  /** Corrupt every piece, always. */
  corruptAll?: boolean;
  /** Close the connection after serving this many block bytes. */
  disconnectAfterBytes?: number;
  /** Serve at most this many bytes per second. */
  rateLimit?: number;
  /** Choke the peer after serving this many bytes (and never unchoke again). */
  chokeAfterBytes?: number;
  /** With chokeAfterBytes: unchoke again after this long (once). */
  unchokeAfterMs?: number;
  /** Choke a peer as soon as it says it is not interested (libtorrent and aria2c do). */
  chokeWhenNotInterested?: boolean;
  /** Silently drop the first request for which this returns true (never answered). */
  ignoreRequest?: (index: number, begin: number) => boolean;
  /**
   * The torrent's info dictionary: the seeder speaks BEP 10 (its extension handshake goes first,
   * as libtorrent's does) and serves it by ut_metadata (BEP 9), for magnet links.
   */
  metadata?: Buffer;
  /** With `metadata`: also speak ut_pex, and tell each peer of these addresses once. */
  pex?: { host: string; port: number }[];
  /** Send unchoke right after the availability, without waiting for `interested`. */
  unchokeAtOnce?: boolean;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Listen on this port (default: any free one). */
  port?: number;
  /** Its peer id (default: `-FK0001-` and a count, less than tdl's `-TD…`). */
  peerId?: Buffer;
}

export interface FakeSeeder {
  port: number;
  address: { host: string; port: number };
  /** Block bytes sent. */
  served: number;
  connections: number;
  /** The address each incoming connection came from. */
  remoteAddresses: string[];
  requests: number;
  cancels: number;
  /** Blocks served per piece index. */
  servedBlocks: Map<number, number>;
  /** ut_metadata pieces served. */
  metadataServed: number;
  /** Connections this seeder opened itself (`dial`), and that connected. */
  dialled: number;
  /**
   * The kinds of message received, in order, all connections together (the first 200):
   * `interested`, `request`, `extended:<id>`, ...
   */
  received: string[];
  /**
   * Connect to a peer listening on 127.0.0.1:`port` and serve it like an incoming one (our
   * handshake goes first). Rejects when the connection cannot be made.
   */
  dial(port: number): Promise<void>;
  close(): Promise<void>;
}

/** The ut_metadata id the fake seeder gives in its extension handshake. */
const FAKE_UT_METADATA_ID = 3;
const FAKE_UT_PEX_ID = 4;

/** Each fake seeder has its own peer id, as real peers do (tdl skips a second connection to one). */
let seeders = 0;

export async function startFakeSeeder(o: FakeSeederOptions): Promise<FakeSeeder> {
  const peerId = o.peerId ?? Buffer.from(`-FK0001-${String(++seeders).padStart(12, '0')}`);
  const pieceCount = Math.ceil(o.data.length / o.pieceLength);
  const has = o.pieces ?? (() => true);
  const corruptLeft = new Map<number, number>();
  let ignored = false;
  if (o.corruptPiece !== undefined) corruptLeft.set(o.corruptPiece, o.corruptTimes ?? 1);
  const sockets = new Set<net.Socket>();
  const state: FakeSeeder = {
    port: 0,
    address: { host: '127.0.0.1', port: 0 },
    served: 0,
    connections: 0,
    remoteAddresses: [],
    requests: 0,
    cancels: 0,
    servedBlocks: new Map(),
    metadataServed: 0,
    dialled: 0,
    received: [],
    dial: (port) =>
      new Promise<void>((resolve, reject) => {
        const socket = net.connect({ host: '127.0.0.1', port });
        socket.once('error', reject);
        socket.once('connect', () => {
          state.dialled++;
          socket.write(encodeHandshake(o.infoHash, peerId, handshakeReserved()));
          onSocket(socket, true);
          resolve();
        });
      }),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  const handshakeReserved = () => {
    const reserved = Buffer.alloc(8);
    if (o.metadata) reserved[RESERVED_EXTENDED.byte]! |= RESERVED_EXTENDED.bit;
    return reserved;
  };
  const server = net.createServer((socket) => {
    state.connections++;
    state.remoteAddresses.push(socket.remoteAddress ?? '');
    onSocket(socket, false);
  });

  /** One peer's session; `dialled`: we opened it and sent our handshake already. */
  function onSocket(socket: net.Socket, dialled: boolean): void {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const framer = new Framer({ maxLength: 1 << 20, expectHandshake: true });
    let handshaken = false;
    let peerMetadataId: number | undefined;
    let choked = true;
    let ended = false;
    const queue: { index: number; begin: number; length: number }[] = [];
    let timer: NodeJS.Timeout | null = null;
    // A bucket of 100 ms worth of data: the rate holds from the first second on.
    let tokens = (o.rateLimit ?? 0) / 10;
    let last = Date.now();

    const send = (m: Message) => {
      if (!socket.destroyed) socket.write(encodeMessage(m));
    };

    const serveOne = (r: { index: number; begin: number; length: number }) => {
      const start = r.index * o.pieceLength + r.begin;
      let block = o.data.subarray(start, start + r.length);
      const left = corruptLeft.get(r.index) ?? 0;
      if (o.corruptAll || left > 0) {
        block = Buffer.from(block);
        block[0] = block[0]! ^ 0xff;
        const pieceEnd = Math.min(o.pieceLength, o.data.length - r.index * o.pieceLength);
        if (left > 0 && r.begin + r.length >= pieceEnd) corruptLeft.set(r.index, left - 1);
      }
      socket.write(encodePiece(r.index, r.begin, block));
      state.served += r.length;
      state.servedBlocks.set(r.index, (state.servedBlocks.get(r.index) ?? 0) + 1);
      if (o.disconnectAfterBytes !== undefined && state.served >= o.disconnectAfterBytes) {
        ended = true;
        socket.destroy();
      } else if (o.chokeAfterBytes !== undefined && state.served >= o.chokeAfterBytes && !choked) {
        choked = true;
        queue.length = 0;
        send({ type: 'choke' });
        if (o.unchokeAfterMs !== undefined) {
          const t = setTimeout(() => {
            if (ended || socket.destroyed) return;
            choked = false;
            o = { ...o, chokeAfterBytes: undefined };
            send({ type: 'unchoke' });
          }, o.unchokeAfterMs);
          socket.once('close', () => clearTimeout(t));
        }
      }
    };

    const pump = () => {
      timer = null;
      while (queue.length > 0 && !ended && !socket.destroyed && !choked) {
        if (o.rateLimit) {
          const now = Date.now();
          tokens = Math.min(
            Math.max(o.rateLimit / 10, queue[0]!.length),
            tokens + ((now - last) / 1000) * o.rateLimit,
          );
          last = now;
          if (tokens < queue[0]!.length) {
            timer = setTimeout(pump, 10);
            return;
          }
          tokens -= queue[0]!.length;
        }
        serveOne(queue.shift()!);
      }
    };

    socket.on('data', (chunk: Buffer) => {
      try {
        framer.push(chunk);
        if (!handshaken) {
          const hs = framer.nextHandshake();
          if (!hs) return;
          handshaken = true;
          const ih = o.wrongInfoHash ? Buffer.alloc(20, 0xab) : o.infoHash;
          if (!dialled) socket.write(encodeHandshake(ih, peerId, handshakeReserved()));
          if (o.metadata) {
            const m = new Map([[UT_METADATA, FAKE_UT_METADATA_ID]]);
            if (o.pex) m.set(UT_PEX, FAKE_UT_PEX_ID);
            const ext = encodeExtendedHandshake({ m, metadataSize: o.metadata.length });
            socket.write(encodeExtended(0, ext));
          }
          if (o.haveMessages) {
            for (let i = 0; i < pieceCount; i++) if (has(i)) send({ type: 'have', index: i });
          } else {
            const bf = new Bitfield(pieceCount);
            for (let i = 0; i < pieceCount; i++) if (has(i)) bf.set(i);
            send({ type: 'bitfield', bitfield: bf.toBuffer() });
          }
          if (o.unchokeAtOnce && !o.neverUnchoke) {
            choked = false;
            send({ type: 'unchoke' });
          }
        }
        for (let m = framer.next(); m; m = framer.next()) {
          if (state.received.length < 200) {
            state.received.push(m.type === 'extended' ? `extended:${m.extId}` : m.type);
          }
          if (m.type === 'interested' && choked && !o.neverUnchoke && !ended) {
            choked = false;
            send({ type: 'unchoke' });
          } else if (m.type === 'not-interested' && o.chokeWhenNotInterested && !choked) {
            choked = true;
            send({ type: 'choke' });
          } else if (m.type === 'request') {
            state.requests++;
            if (!ignored && o.ignoreRequest?.(m.index, m.begin)) {
              ignored = true;
              continue;
            }
            if (!choked && has(m.index)) queue.push(m);
          } else if (m.type === 'extended' && o.metadata) {
            if (m.extId === 0) {
              const theirs = decodeExtendedHandshake(m.payload);
              peerMetadataId = peerExtensionId(theirs, UT_METADATA);
              const pexId = peerExtensionId(theirs, UT_PEX);
              if (o.pex && pexId !== undefined) {
                const pex = encodePex({ added: o.pex, addedFlags: [], dropped: [] });
                socket.write(encodeExtended(pexId, pex));
              }
            } else if (m.extId === FAKE_UT_METADATA_ID && peerMetadataId !== undefined) {
              const req = decodeUtMetadata(m.payload);
              if (req.type === 'request') {
                const answer = answerMetadataRequest(o.metadata, req.piece);
                if (answer.type === 'data') state.metadataServed++;
                socket.write(encodeExtended(peerMetadataId, encodeUtMetadata(answer)));
              }
            }
          } else if (m.type === 'cancel') {
            state.cancels++;
            const i = queue.findIndex(
              (r) => r.index === m.index && r.begin === m.begin && r.length === m.length,
            );
            if (i >= 0) queue.splice(i, 1);
          }
        }
        if (!timer) pump();
      } catch {
        socket.destroy();
      }
    });
    socket.on('close', () => {
      if (timer) clearTimeout(timer);
    });
  }

  const host = o.host ?? '127.0.0.1';
  await new Promise<void>((resolve) => server.listen(o.port ?? 0, host, () => resolve()));
  const addr = server.address() as net.AddressInfo;
  state.port = addr.port;
  state.address = { host, port: addr.port };
  return state;
}
