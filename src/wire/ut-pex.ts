/**
 * ut_pex (BEP 11) peer exchange: the payload after <20><extended id>, and the per-peer
 * bookkeeping that sends deltas at most once a minute.
 *
 * A message is a bencoded dictionary of compact peer lists: `added` (6 bytes per IPv4 peer),
 * `added.f` (one flag byte per `added` peer), `added6` (18 bytes per IPv6 peer), `added6.f`,
 * `dropped` and `dropped6`. At most MAX_PEX_PEERS are taken from (and put into) each list.
 * Private torrents never use PEX: tdl does not offer ut_pex in their extended handshake
 * (see localExtendedHandshake) and must not create a PexPeer for them.
 */
import { isIPv4 } from 'node:net';
import { WireError } from '../errors.js';
import { type BDict, encode, isBytes } from '../metainfo/bencode.js';
import { PeerCollector, formatIPv6, ipv6ToBytes } from '../tracker/compact.js';
import { type PeerAddress } from '../tracker/types.js';
import { decodeDictPayload } from './extension.js';

/** Peers taken from, or put into, one list of one message. */
export const MAX_PEX_PEERS = 50;
/** We send a peer at most one message per this interval. */
export const PEX_INTERVAL_MS = 60_000;
/**
 * Messages from a peer closer together than this are ignored (a minute, less 10 s of slack
 * for network jitter so that a peer sending exactly every minute is not half ignored).
 */
export const PEX_ACCEPT_INTERVAL_MS = 50_000;

/** `added.f` flag bits (BEP 11). */
export const PexFlag = {
  encryption: 0x01,
  seed: 0x02,
  utp: 0x04,
  holepunch: 0x08,
  /** The sender connected to this peer itself, so the peer accepts connections. */
  reachable: 0x10,
} as const;

export interface PexMessage {
  /** IPv4 then IPv6 peers. */
  added: PeerAddress[];
  /** One flag byte per `added` peer (0 when the sender gave none). */
  addedFlags: number[];
  dropped: PeerAddress[];
}

/** What a peer's `added.f` flags say of it (absent: not known, as for a tracker's peers). */
export interface PexHints {
  /** It speaks encryption (0x01). */
  prefersEncryption?: boolean;
  /** It is a seed (0x02). */
  seed?: boolean;
  /** The sender dialled it: it accepts connections (0x10). */
  reachable?: boolean;
}

/** A peer reported by PEX, with what its flags say of it. */
export type PexPeerAddress = PeerAddress & Required<PexHints>;

/** The `added` peers of a message, each with what its `added.f` flags say. */
export function addedPeers(m: PexMessage): PexPeerAddress[] {
  return m.added.map((p, i) => {
    const f = m.addedFlags[i] ?? 0;
    return {
      ...p,
      prefersEncryption: (f & PexFlag.encryption) !== 0,
      seed: (f & PexFlag.seed) !== 0,
      reachable: (f & PexFlag.reachable) !== 0,
    };
  });
}

const MAX_DEPTH = 4;

function key(p: PeerAddress): string {
  return `${p.host}|${p.port}`;
}

/** `key` with IPv6 text in the canonical form the compact decoder produces. */
function canonicalKey(p: PeerAddress): string {
  const b = p.host.includes(':') ? ipv6ToBytes(p.host) : null;
  return b ? `${formatIPv6(b)}|${p.port}` : key(p);
}

/** 6 bytes (IPv4) or 18 bytes (IPv6), or null if `host` is not an IP literal. */
function compact(p: PeerAddress): { v6: boolean; bytes: Buffer } | null {
  if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) return null;
  if (isIPv4(p.host)) {
    const out = Buffer.allocUnsafe(6);
    p.host.split('.').forEach((o, i) => (out[i] = Number(o)));
    out.writeUInt16BE(p.port, 4);
    return { v6: false, bytes: out };
  }
  const b = ipv6ToBytes(p.host);
  if (b === null) return null;
  const out = Buffer.allocUnsafe(18);
  out.set(b, 0);
  out.writeUInt16BE(p.port, 16);
  return { v6: true, bytes: out };
}

/**
 * The payload of a PEX message. Peers are split into the IPv4 and IPv6 lists; each list takes
 * its first MAX_PEX_PEERS usable entries (hosts that are not IP literals are skipped).
 */
export function encodePex(m: PexMessage): Buffer {
  const lists = { added: [] as Buffer[], added6: [] as Buffer[] };
  const flags = { added: [] as number[], added6: [] as number[] };
  const dropped = { dropped: [] as Buffer[], dropped6: [] as Buffer[] };
  m.added.forEach((p, i) => {
    const c = compact(p);
    if (!c) return;
    const name = c.v6 ? 'added6' : 'added';
    if (lists[name].length >= MAX_PEX_PEERS) return;
    lists[name].push(c.bytes);
    flags[name].push((m.addedFlags[i] ?? 0) & 0xff);
  });
  for (const p of m.dropped) {
    const c = compact(p);
    if (!c) continue;
    const name = c.v6 ? 'dropped6' : 'dropped';
    if (dropped[name].length < MAX_PEX_PEERS) dropped[name].push(c.bytes);
  }
  return encode({
    added: Buffer.concat(lists.added),
    'added.f': Buffer.from(flags.added),
    added6: Buffer.concat(lists.added6),
    'added6.f': Buffer.from(flags.added6),
    dropped: Buffer.concat(dropped.dropped),
    dropped6: Buffer.concat(dropped.dropped6),
  });
}

function listBytes(d: BDict, name: string, entry: number): Buffer | undefined {
  const v = d[name];
  if (v === undefined) return undefined;
  if (!isBytes(v)) throw new WireError(`ut_pex: ${name} is not a byte string`);
  if (entry > 1 && v.length % entry !== 0) {
    throw new WireError(`ut_pex: ${name} is ${v.length} bytes, not a multiple of ${entry}`);
  }
  return v;
}

/**
 * Reads up to MAX_PEX_PEERS entries of a compact list into `out` (dropping port 0,
 * unspecified and `own` addresses and duplicates), with their flags when `flags` is given.
 */
function readList(
  list: Buffer | undefined,
  v6: boolean,
  own: (p: PeerAddress) => boolean,
  out: PeerAddress[],
  flags?: { from: Buffer | undefined; to: number[] },
): void {
  if (!list) return;
  const size = v6 ? 18 : 6;
  const collector = new PeerCollector(MAX_PEX_PEERS);
  for (let i = 0; i * size < list.length && !collector.full; i++) {
    const o = i * size;
    const host = v6
      ? formatIPv6(list, o)
      : `${list[o]}.${list[o + 1]}.${list[o + 2]}.${list[o + 3]}`;
    const port = list.readUInt16BE(o + size - 2);
    if (own({ host, port })) continue;
    const before = collector.peers.length;
    collector.add(host, port);
    if (collector.peers.length > before && flags) flags.to.push(flags.from?.[i] ?? 0);
  }
  out.push(...collector.peers);
}

/** Our own addresses, as peers may list us: a list, or a test (see swarm/own-addresses). */
export type OwnFilter = readonly PeerAddress[] | ((p: PeerAddress) => boolean);

function ownTest(own: OwnFilter | undefined): (p: PeerAddress) => boolean {
  if (typeof own === 'function') return own;
  const keys = new Set((own ?? []).map(canonicalKey));
  return (p) => keys.has(key(p));
}

/**
 * Decodes a PEX payload. WireError when it is not a bencoded dictionary or a list is not a
 * byte string of whole entries. Port 0, unspecified addresses, duplicates and the addresses
 * in `opts.own` (ours, as peers see us) are left out; at most MAX_PEX_PEERS per list are read.
 */
export function decodePex(payload: Buffer, opts: { own?: OwnFilter } = {}): PexMessage {
  const d = decodeDictPayload(payload, 'ut_pex', MAX_DEPTH);
  const own = ownTest(opts.own);
  const m: PexMessage = { added: [], addedFlags: [], dropped: [] };
  const added = listBytes(d, 'added', 6);
  const added6 = listBytes(d, 'added6', 18);
  const dropped = listBytes(d, 'dropped', 6);
  const dropped6 = listBytes(d, 'dropped6', 18);
  const addedF = listBytes(d, 'added.f', 1);
  const added6F = listBytes(d, 'added6.f', 1);
  readList(added, false, own, m.added, { from: addedF, to: m.addedFlags });
  readList(added6, true, own, m.added, { from: added6F, to: m.addedFlags });
  readList(dropped, false, own, m.dropped);
  readList(dropped6, true, own, m.dropped);
  return m;
}

/**
 * PEX state for one connected peer that supports ut_pex on a public torrent: rate limits
 * what it sends us, and turns our set of connected peers into the deltas we send it.
 * Memory: the addresses this peer was told about, at most the connected set.
 */
export class PexPeer {
  #lastAccepted = -Infinity;
  #lastSent = -Infinity;
  /** Peers this peer has been told are connected (by key). */
  readonly #told = new Map<string, PeerAddress>();
  readonly #self: string;
  readonly #intervalMs: number;
  readonly #acceptIntervalMs: number;

  /**
   * `self`: this peer's own address (never sent to it). `connectedAt`: when the peer connected;
   * the first message goes one interval after it, not at once (default: no wait). In its first
   * minute a peer has just heard the same tracker or DHT answer we did, and is connected to most
   * of the peers we would list, often through connections it cannot match to their listening
   * addresses (the ones they dialled); an early list makes it dial them again, and clients that
   * settle such duplicates by peer id can lose both connections (docs/DESIGN.md, "PEX").
   */
  constructor(
    self: PeerAddress,
    opts: { intervalMs?: number; acceptIntervalMs?: number; connectedAt?: number } = {},
  ) {
    this.#self = key(self);
    this.#intervalMs = opts.intervalMs ?? PEX_INTERVAL_MS;
    this.#acceptIntervalMs = opts.acceptIntervalMs ?? PEX_ACCEPT_INTERVAL_MS;
    if (opts.connectedAt !== undefined) this.#lastSent = opts.connectedAt;
  }

  /**
   * A PEX payload received from this peer at time `now` (ms): the decoded message, or null
   * when it came too soon after the last one taken (ignored, not an error). WireError when
   * malformed.
   */
  receive(now: number, payload: Buffer, own?: OwnFilter): PexMessage | null {
    if (now - this.#lastAccepted < this.#acceptIntervalMs) return null;
    const m = decodePex(payload, own ? { own } : {});
    this.#lastAccepted = now;
    return m;
  }

  /**
   * The message to send this peer at time `now`, given our connected peers (with optional
   * PexFlag bits), or null when the last one was under a minute ago or nothing changed.
   * Up to MAX_PEX_PEERS added and dropped per list; the rest goes in later messages.
   */
  next(now: number, connected: ReadonlyArray<PeerAddress & { flags?: number }>): PexMessage | null {
    if (now - this.#lastSent < this.#intervalMs) return null;
    const current = new Map<string, PeerAddress & { flags?: number }>();
    for (const p of connected) {
      const k = key(p);
      if (k !== this.#self && compact(p) !== null) current.set(k, p);
    }
    const m: PexMessage = { added: [], addedFlags: [], dropped: [] };
    let v4 = 0;
    let v6 = 0;
    for (const [k, p] of current) {
      if (this.#told.has(k)) continue;
      const isV6 = p.host.includes(':');
      if (isV6 ? v6 >= MAX_PEX_PEERS : v4 >= MAX_PEX_PEERS) continue;
      if (isV6) v6++;
      else v4++;
      m.added.push({ host: p.host, port: p.port });
      m.addedFlags.push(p.flags ?? 0);
      this.#told.set(k, { host: p.host, port: p.port });
    }
    let d4 = 0;
    let d6 = 0;
    for (const [k, p] of this.#told) {
      if (current.has(k)) continue;
      const isV6 = p.host.includes(':');
      if (isV6 ? d6 >= MAX_PEX_PEERS : d4 >= MAX_PEX_PEERS) continue;
      if (isV6) d6++;
      else d4++;
      m.dropped.push(p);
      this.#told.delete(k);
    }
    if (m.added.length === 0 && m.dropped.length === 0) return null;
    this.#lastSent = now;
    return m;
  }
}
