/**
 * In-process fake BitTorrent trackers for tests: an HTTP tracker (compact, dictionary and
 * peers6 replies, failure/warning, full handler override for hostile tests) and a UDP tracker
 * (BEP 15, with packet dropping, error replies and wrong transaction ids).
 *
 * Both listen on 127.0.0.1 with an ephemeral port and record every announce they accept.
 * close() frees the port and ends open connections; call it in afterAll/finally.
 */
import dgram from 'node:dgram';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import { encode } from '../../src/metainfo/bencode.js';
import { Announcer, type AnnouncerOptions } from '../../src/tracker/announcer.js';
import type { AnnounceRequest, PeerAddress } from '../../src/tracker/types.js';

/** What a fake tracker decoded from an announce: the request's fields, as they arrived. */
export interface ParsedAnnounce extends Omit<AnnounceRequest, 'event' | 'numWant' | 'key'> {
  /** Any text the client sent, not only the events tdl knows. */
  event?: string;
  /** `numwant` as sent (HTTP) or as a signed 32-bit number (UDP, -1 = default). */
  numWant?: number;
  /** `key` as sent (HTTP: text; UDP: the 32-bit number as decimal text). */
  key?: string;
  /** Address the announce came from. */
  remoteAddress?: string;
  /** UDP: the URL data (BEP 41) the options after the 98 bytes carried, joined; '' for none. */
  urlData?: string;
}

export type PeersOption = PeerAddress[] | ((q: ParsedAnnounce) => PeerAddress[]);

export interface HttpTrackerOptions {
  peers?: PeersOption;
  /** Seconds; 1800 when absent. */
  interval?: number;
  minInterval?: number;
  failure?: string;
  warning?: string;
  /** true (default): compact `peers` string (IPv6 peers go to `peers6`); false: list of dicts. */
  compact?: boolean;
  peers6?: PeerAddress[];
  complete?: number;
  incomplete?: number;
  /** Full override: the announce is still parsed and recorded when the query allows it. */
  handler?: (req: http.IncomingMessage, res: http.ServerResponse) => void;
}

export interface FakeTracker {
  url: string;
  announces: ParsedAnnounce[];
  close(): Promise<void>;
}

export interface FakeUdpTracker extends FakeTracker {
  /**
   * Counters of packets seen (dropped included), connect requests answered, and announces
   * refused for a connection id that was not given to their address and port.
   */
  stats: { packets: number; connects: number; dropped: number; idErrors: number };
}

/** Decodes a percent-encoded query component into raw bytes ('+' is a space). */
export function decodeQueryBytes(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25 /* % */ && i + 2 < s.length && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      out.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c === 0x2b /* + */) {
      out.push(0x20);
    } else {
      // Raw (possibly non-ASCII) characters: their UTF-8 bytes.
      for (const b of Buffer.from(s[i]!, 'utf8')) out.push(b);
    }
  }
  return Buffer.from(out);
}

/** Parses a raw query string into byte values (last occurrence wins). */
export function parseQueryBytes(query: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = decodeQueryBytes(eq < 0 ? part : part.slice(0, eq)).toString('latin1');
    const v = decodeQueryBytes(eq < 0 ? '' : part.slice(eq + 1));
    out.set(k, v);
  }
  return out;
}

function num(v: Buffer | undefined): number {
  if (!v) return NaN;
  const s = v.toString('latin1');
  return /^-?\d+$/.test(s) ? Number(s) : NaN;
}

/** Parses an HTTP announce query; null when info_hash/peer_id/port are missing or wrong. */
export function parseHttpAnnounce(rawUrl: string, remoteAddress?: string): ParsedAnnounce | null {
  const q = rawUrl.indexOf('?');
  if (q < 0) return null;
  const params = parseQueryBytes(rawUrl.slice(q + 1));
  const infoHash = params.get('info_hash');
  const peerId = params.get('peer_id');
  const port = num(params.get('port'));
  if (!infoHash || infoHash.length !== 20 || !peerId || peerId.length !== 20) return null;
  if (!Number.isInteger(port)) return null;
  const a: ParsedAnnounce = {
    infoHash,
    peerId,
    port,
    uploaded: num(params.get('uploaded')),
    downloaded: num(params.get('downloaded')),
    left: num(params.get('left')),
  };
  const event = params.get('event');
  if (event && event.length > 0) a.event = event.toString('latin1');
  const numWant = num(params.get('numwant'));
  if (Number.isFinite(numWant)) a.numWant = numWant;
  const key = params.get('key');
  if (key) a.key = key.toString('latin1');
  if (remoteAddress) a.remoteAddress = remoteAddress;
  return a;
}

function ipv4Bytes(host: string): Buffer {
  return Buffer.from(host.split('.').map((p) => Number(p)));
}

function ipv6Bytes(host: string): Buffer {
  // Expand "::" then write 8 groups (no embedded IPv4 needed in tests).
  const [head = '', tail] = host.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups =
    tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), 2 * i));
  return out;
}

/** Compact encoding of peers: 6 bytes per IPv4 peer, 18 per IPv6 peer. */
export function compactPeers(peers: PeerAddress[], family: 4 | 6): Buffer {
  const parts: Buffer[] = [];
  for (const p of peers) {
    const port = Buffer.alloc(2);
    port.writeUInt16BE(p.port & 0xffff);
    parts.push(family === 4 ? ipv4Bytes(p.host) : ipv6Bytes(p.host), port);
  }
  return Buffer.concat(parts);
}

function resolvePeers(opt: PeersOption | undefined, a: ParsedAnnounce): PeerAddress[] {
  if (!opt) return [];
  return typeof opt === 'function' ? opt(a) : opt;
}

/** Starts a fake HTTP tracker on 127.0.0.1 (any path answers announces). */
export async function startHttpTracker(opts: HttpTrackerOptions = {}): Promise<FakeTracker> {
  const announces: ParsedAnnounce[] = [];
  const server = http.createServer((req, res) => {
    const parsed = parseHttpAnnounce(req.url ?? '', req.socket.remoteAddress);
    if (parsed) announces.push(parsed);
    if (opts.handler) {
      opts.handler(req, res);
      return;
    }
    let body: Buffer;
    if (!parsed) {
      body = encode({ 'failure reason': 'invalid announce' });
    } else if (opts.failure !== undefined) {
      body = encode({ 'failure reason': opts.failure });
    } else {
      const peers = resolvePeers(opts.peers, parsed);
      const reply: Record<string, unknown> = { interval: opts.interval ?? 1800 };
      if (opts.minInterval !== undefined) reply['min interval'] = opts.minInterval;
      if (opts.warning !== undefined) reply['warning message'] = opts.warning;
      if (opts.complete !== undefined) reply['complete'] = opts.complete;
      if (opts.incomplete !== undefined) reply['incomplete'] = opts.incomplete;
      if (opts.compact === false) {
        reply['peers'] = [...peers, ...(opts.peers6 ?? [])].map((p) => ({
          ip: p.host,
          port: p.port,
        }));
      } else {
        const v4 = peers.filter((p) => isIP(p.host) === 4);
        const v6 = [...peers.filter((p) => isIP(p.host) === 6), ...(opts.peers6 ?? [])];
        reply['peers'] = compactPeers(v4, 4);
        if (v6.length > 0) reply['peers6'] = compactPeers(v6, 6);
      }
      body = encode(reply);
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closed = false;
  return {
    url: `http://127.0.0.1:${port}/announce`,
    announces,
    close: () => {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

export interface UdpTrackerOptions {
  peers?: PeersOption;
  /** Seconds; 1800 when absent. */
  interval?: number;
  /** Drops the first N packets received (Infinity: never answers). */
  dropFirst?: number;
  /** Answers announces with an error (action 3) carrying this message. */
  errorMessage?: string;
  /**
   * Answers an error to announces whose URL data (BEP 41) is not this, as a private tracker
   * that reads the passkey from the URL does.
   */
  urlData?: string;
  /** Answers everything with a transaction id that does not match the request. */
  wrongTransactionId?: boolean;
  seeders?: number;
  leechers?: number;
  /** Address to listen on: '127.0.0.1' (default) or '::1' (peers then go out as 18-byte entries). */
  host?: '127.0.0.1' | '::1';
}

const PROTOCOL_ID = 0x41727101980n;
const UDP_EVENTS = ['', 'completed', 'started', 'stopped'];

/**
 * The URL data of a UDP announce's options (BEP 41): type 0 ends them, 1 is one byte of
 * padding, 2 carries URL data after a length byte. A malformed option ends the reading.
 */
function urlDataOptions(options: Buffer): string {
  const parts: Buffer[] = [];
  let at = 0;
  while (at < options.length) {
    const type = options[at++];
    if (type === 0) break;
    if (type === 1) continue;
    if (at >= options.length) break;
    const len = options[at++]!;
    if (type === 2) parts.push(options.subarray(at, at + len));
    at += len;
  }
  return Buffer.concat(parts).toString('utf8');
}

/** Starts a fake UDP tracker (BEP 15) on 127.0.0.1. */
export async function startUdpTracker(opts: UdpTrackerOptions = {}): Promise<FakeUdpTracker> {
  const announces: ParsedAnnounce[] = [];
  const stats = { packets: 0, connects: 0, dropped: 0, idErrors: 0 };
  /**
   * Connection id -> the address and port it was given to: an id is good only from there, as
   * trackers that derive it from the client's socket address check (Torrust bans an address
   * after 10 wrong ones).
   */
  const connectionIds = new Map<string, string>();
  const host = opts.host ?? '127.0.0.1';
  const family: 4 | 6 = host === '::1' ? 6 : 4;
  const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
  socket.on('error', () => {
    /* ignore: tests assert on the client side */
  });
  socket.on('message', (msg, rinfo) => {
    stats.packets++;
    if (stats.packets <= (opts.dropFirst ?? 0)) {
      stats.dropped++;
      return;
    }
    if (msg.length < 16) return;
    const action = msg.readUInt32BE(8);
    const tid = msg.readUInt32BE(12);
    const replyTid = opts.wrongTransactionId ? (tid + 1) >>> 0 : tid;
    const send = (buf: Buffer): void => {
      socket.send(buf, rinfo.port, rinfo.address);
    };
    if (action === 0) {
      if (msg.readBigUInt64BE(0) !== PROTOCOL_ID) return;
      stats.connects++;
      const id = Buffer.alloc(8);
      id.writeUInt32BE((Math.random() * 0x100000000) >>> 0, 0);
      id.writeUInt32BE((Math.random() * 0x100000000) >>> 0, 4);
      connectionIds.set(id.toString('hex'), `${rinfo.address}|${rinfo.port}`);
      const out = Buffer.alloc(16);
      out.writeUInt32BE(0, 0);
      out.writeUInt32BE(replyTid, 4);
      id.copy(out, 8);
      send(out);
      return;
    }
    if (action === 1) {
      if (msg.length < 98) return;
      const errorReply = (text: string): void => {
        const t = Buffer.from(text, 'utf8');
        const out = Buffer.alloc(8 + t.length);
        out.writeUInt32BE(3, 0);
        out.writeUInt32BE(replyTid, 4);
        t.copy(out, 8);
        send(out);
      };
      const givenTo = connectionIds.get(msg.subarray(0, 8).toString('hex'));
      if (givenTo === undefined) {
        errorReply('unknown connection id');
        return;
      }
      if (givenTo !== `${rinfo.address}|${rinfo.port}`) {
        stats.idErrors++;
        errorReply('connection id of another address');
        return;
      }
      const a: ParsedAnnounce = {
        infoHash: Buffer.from(msg.subarray(16, 36)),
        peerId: Buffer.from(msg.subarray(36, 56)),
        downloaded: Number(msg.readBigUInt64BE(56)),
        left: Number(msg.readBigUInt64BE(64)),
        uploaded: Number(msg.readBigUInt64BE(72)),
        port: msg.readUInt16BE(96),
        numWant: msg.readInt32BE(92),
        key: String(msg.readUInt32BE(88)),
        remoteAddress: rinfo.address,
        urlData: urlDataOptions(msg.subarray(98)),
      };
      const ev = UDP_EVENTS[msg.readUInt32BE(80)];
      if (ev) a.event = ev;
      announces.push(a);
      if (opts.errorMessage !== undefined) {
        errorReply(opts.errorMessage);
        return;
      }
      if (opts.urlData !== undefined && a.urlData !== opts.urlData) {
        errorReply('unregistered passkey');
        return;
      }
      const peers = resolvePeers(opts.peers, a).filter((p) => isIP(p.host) === family);
      const head = Buffer.alloc(20);
      head.writeUInt32BE(1, 0);
      head.writeUInt32BE(replyTid, 4);
      head.writeUInt32BE(opts.interval ?? 1800, 8);
      head.writeUInt32BE(opts.leechers ?? 0, 12);
      head.writeUInt32BE(opts.seeders ?? peers.length, 16);
      send(Buffer.concat([head, compactPeers(peers, family)]));
    }
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const { port } = socket.address();
  let closed = false;
  return {
    url: family === 6 ? `udp://[::1]:${port}` : `udp://127.0.0.1:${port}`,
    announces,
    stats,
    close: () => {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

/**
 * An Announcer for tests: port 6881, stats of a download with 1,000 bytes left, warnings
 * swallowed (tests read them from the events they want), stopped after the test.
 */
export function testAnnouncer(
  opts: Partial<AnnouncerOptions> & Pick<AnnouncerOptions, 'announceList' | 'infoHash' | 'peerId'>,
  onClose: (close: () => Promise<void>) => void,
): Announcer {
  const a = new Announcer({
    port: 6881,
    stats: () => ({ uploaded: 0, downloaded: 0, left: 1000 }),
    ...opts,
  });
  a.on('warning', () => undefined);
  onClose(() => a.stop());
  return a;
}
