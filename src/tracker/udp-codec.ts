/**
 * BEP 15 (UDP tracker protocol) packet codec. Pure: no sockets, no clocks.
 *
 * Requests are built into fresh Buffers. Replies are decoded from one datagram each:
 * `decodeUdpReply` returns null for a packet too short to hold its action's fixed fields
 * (the client ignores it and keeps waiting) and throws TrackerError for an unknown action.
 */
import { TrackerError } from '../errors.js';
import { PeerCollector, clampInterval } from './compact.js';
import type { AnnounceEvent, AnnounceRequest, PeerAddress } from './types.js';

/** The magic constant opening every connect request. */
export const UDP_PROTOCOL_ID = 0x41727101980n;

export const UDP_ACTION_CONNECT = 0;
export const UDP_ACTION_ANNOUNCE = 1;
export const UDP_ACTION_SCRAPE = 2;
export const UDP_ACTION_ERROR = 3;

export const UDP_CONNECT_REQUEST_BYTES = 16;
export const UDP_CONNECT_REPLY_BYTES = 16;
export const UDP_ANNOUNCE_REQUEST_BYTES = 98;
/** Fixed part of an announce reply before the peer entries. */
export const UDP_ANNOUNCE_REPLY_HEADER_BYTES = 20;
/** Longest error message kept from an error reply (bytes). */
export const MAX_UDP_ERROR_MESSAGE_BYTES = 1024;
/**
 * Longest URL data (the tracker URL's path and query, BEP 41) sent with an announce: four
 * options of 255 bytes and one of 4, well inside a datagram.
 */
export const MAX_UDP_URL_DATA_BYTES = 1024;
/** BEP 41's option carrying URL data: its type byte, then a length byte and that many bytes. */
const OPTION_URL_DATA = 2;
const URL_DATA_CHUNK = 255;

const EVENT_CODES: Record<AnnounceEvent, number> = { completed: 1, started: 2, stopped: 3 };

const U64_MAX = (1n << 64n) - 1n;

function u64(n: number): bigint {
  if (!Number.isFinite(n) || n <= 0) return 0n;
  const b = BigInt(Math.trunc(n));
  return b > U64_MAX ? U64_MAX : b;
}

export function encodeConnectRequest(transactionId: number): Buffer {
  const b = Buffer.alloc(UDP_CONNECT_REQUEST_BYTES);
  b.writeBigUInt64BE(UDP_PROTOCOL_ID, 0);
  b.writeUInt32BE(UDP_ACTION_CONNECT, 8);
  b.writeUInt32BE(transactionId >>> 0, 12);
  return b;
}

/**
 * The URL data of a udp:// tracker URL (BEP 41): its path and query as written, such as
 * `/announce?passkey=…`, which a tracker that serves private torrents over UDP needs as much as
 * one over HTTP; empty when the URL has neither.
 */
export function urlDataOf(url: URL): Buffer {
  return Buffer.from(url.pathname + url.search, 'utf8');
}

/** Why the URL data of this udp:// URL cannot be sent; undefined when it can. */
export function urlDataProblem(url: URL): string | undefined {
  const bytes = urlDataOf(url).length;
  if (bytes <= MAX_UDP_URL_DATA_BYTES) return undefined;
  return (
    `its path and query are too long for a UDP announce: ` +
    `${bytes} bytes, at most ${MAX_UDP_URL_DATA_BYTES}`
  );
}

/**
 * Announce request: 98 bytes, then the URL data (BEP 41) when there is any, in options of at
 * most 255 bytes each, which the tracker joins. numWant absent -> -1 (tracker default); the IP
 * field is 0 (use the sender's address); key defaults to 0.
 */
export function encodeAnnounceRequest(
  connectionId: Buffer,
  transactionId: number,
  req: AnnounceRequest,
  urlData: Buffer = Buffer.alloc(0),
): Buffer {
  if (connectionId.length !== 8) throw new TrackerError('connection id must be 8 bytes');
  if (req.infoHash.length !== 20 || req.peerId.length !== 20) {
    throw new TrackerError('info hash and peer id must be 20 bytes');
  }
  if (urlData.length > MAX_UDP_URL_DATA_BYTES) {
    throw new TrackerError(
      `URL data of ${urlData.length} bytes (at most ${MAX_UDP_URL_DATA_BYTES})`,
    );
  }
  const chunks = Math.ceil(urlData.length / URL_DATA_CHUNK);
  const b = Buffer.alloc(UDP_ANNOUNCE_REQUEST_BYTES + 2 * chunks + urlData.length);
  connectionId.copy(b, 0);
  b.writeUInt32BE(UDP_ACTION_ANNOUNCE, 8);
  b.writeUInt32BE(transactionId >>> 0, 12);
  req.infoHash.copy(b, 16);
  req.peerId.copy(b, 36);
  b.writeBigUInt64BE(u64(req.downloaded), 56);
  b.writeBigUInt64BE(u64(req.left), 64);
  b.writeBigUInt64BE(u64(req.uploaded), 72);
  b.writeUInt32BE(req.event ? EVENT_CODES[req.event] : 0, 80);
  b.writeUInt32BE(0, 84); // IP address: default
  b.writeUInt32BE((req.key ?? 0) >>> 0, 88);
  const numWant =
    req.numWant === undefined || !Number.isFinite(req.numWant)
      ? -1
      : Math.max(0, Math.min(0x7fffffff, Math.trunc(req.numWant)));
  b.writeInt32BE(numWant, 92);
  b.writeUInt16BE(Math.max(0, Math.min(65535, Math.trunc(req.port) || 0)), 96);
  let at = UDP_ANNOUNCE_REQUEST_BYTES;
  for (let from = 0; from < urlData.length; from += URL_DATA_CHUNK) {
    const chunk = urlData.subarray(from, from + URL_DATA_CHUNK);
    b[at++] = OPTION_URL_DATA;
    b[at++] = chunk.length;
    at += chunk.copy(b, at);
  }
  return b;
}

export type UdpReply =
  | { action: 'connect'; transactionId: number; connectionId: Buffer }
  | {
      action: 'announce';
      transactionId: number;
      interval: number;
      leechers: number;
      seeders: number;
      peers: PeerAddress[];
    }
  | { action: 'scrape'; transactionId: number }
  | { action: 'error'; transactionId: number; message: string };

/**
 * Decodes one reply datagram. `family` is the address family of the socket the reply came
 * in on: 4 -> 6-byte peer entries, 6 -> 18-byte entries (BEP 15). A trailing partial peer
 * entry is ignored; port 0, unspecified addresses and duplicates are dropped; at most
 * MAX_PEERS_PER_REPLY peers are kept; interval is clamped like HTTP intervals.
 *
 * Returns null when the packet is too short for its action; throws TrackerError for an
 * unknown action.
 */
export function decodeUdpReply(
  packet: Uint8Array,
  family: 4 | 6 = 4,
  peersFrom = 0,
): UdpReply | null {
  if (packet.length < 8) return null;
  const b = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
  const action = b.readUInt32BE(0);
  const transactionId = b.readUInt32BE(4);
  switch (action) {
    case UDP_ACTION_CONNECT:
      if (b.length < UDP_CONNECT_REPLY_BYTES) return null;
      return { action: 'connect', transactionId, connectionId: Buffer.from(b.subarray(8, 16)) };
    case UDP_ACTION_ANNOUNCE: {
      if (b.length < UDP_ANNOUNCE_REPLY_HEADER_BYTES) return null;
      const collector = new PeerCollector(undefined, peersFrom);
      const entries = b.subarray(UDP_ANNOUNCE_REPLY_HEADER_BYTES);
      if (family === 6) collector.addCompact6(entries);
      else collector.addCompact4(entries);
      return {
        action: 'announce',
        transactionId,
        interval: clampInterval(b.readUInt32BE(8)),
        leechers: b.readUInt32BE(12),
        seeders: b.readUInt32BE(16),
        peers: collector.peers,
      };
    }
    case UDP_ACTION_SCRAPE:
      return { action: 'scrape', transactionId };
    case UDP_ACTION_ERROR: {
      const text = b.subarray(8, 8 + MAX_UDP_ERROR_MESSAGE_BYTES).toString('utf8');
      return { action: 'error', transactionId, message: text.replace(/\0+$/, '') };
    }
    default:
      throw new TrackerError(`UDP tracker reply has unknown action ${action}`);
  }
}
