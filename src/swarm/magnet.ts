/**
 * From a magnet link to metainfo: the metadata kept by an earlier run (`<root>.tdl-torrent`
 * beside the resume file), else fetched from peers (src/swarm/metadata-swarm.ts). Either way it
 * goes through the same strict parser and path checks as a .torrent file, so a hostile info
 * dictionary that hashes right is refused (exit 3) before anything is created.
 *
 * For a download (`handoff` option), the metadata phase already listens and announces the real
 * port, and what it built is handed to the download rather than torn down (MagnetHandoff): the
 * live connections, the announce session (one `started`, no `stopped` in between) and the peer
 * id. See docs/DESIGN.md, "Magnet hand-over".
 */
import { createHash } from 'node:crypto';
import { logger } from '../log.js';
import { findKept } from '../storage/kept-metadata.js';
import type { Dht } from '../dht/dht.js';
import { DhtPeerSource } from '../dht/peer-source.js';
import { MetainfoError, NoPeersError, TdlError } from '../errors.js';
import { decodeStrict } from '../metainfo/bencode.js';
import type { Magnet } from '../metainfo/magnet.js';
import type { EncryptionMode } from '../peer/connection.js';
import { parseTorrent, type Metainfo } from '../metainfo/torrent.js';
import { Announcer, requireUsableTracker } from '../tracker/announcer.js';
import { preloadHttpClient } from '../tracker/http.js';
import type { PeerAddress } from '../tracker/types.js';
import { torrentFromInfo } from './metadata-fetch.js';
import type { PeerHandoff, PeerSource } from './download-api.js';
import { Listener, type ListenOptions } from './listener.js';
import { MetadataSwarm, type TakeOverSink } from './metadata-swarm.js';
import { farPeers, farPeersError, type HandoffCandidate, type PeerOrigin } from './peer-pool.js';

const log = logger('tdl:metadata');

export interface MagnetOptions {
  magnet: Magnet;
  output?: string;
  /** `--peer` addresses, beside the magnet's `x.pe`. */
  peers: PeerAddress[];
  peerId: Buffer;
  timeoutMs: number;
  handshakeMs: number;
  /** `--encryption` (default allow). */
  encryption?: EncryptionMode;
  /** Outgoing connections (peers, trackers, web seeds) are made from this address (`--bind`). */
  localAddress?: string;
  signal?: AbortSignal;
  /** Called about once a second while fetching, with the peers connected and those with metadata. */
  onProgress?: (p: { connected: number; withMetadata: number; known: number }) => void;
  onWarning?: (message: string) => void;
  /** The DHT, to find peers of magnets without trackers too. */
  dht?: Dht | null;
  /**
   * A download follows (`tdl download`): listen (unless false) and announce our real port from
   * the start, and keep the connections and the announce session for it (`handoff`).
   */
  handoff?: { listen: ListenOptions | false };
}

type AnnounceStats = { uploaded: number; downloaded: number; left: number };

/**
 * What the metadata phase hands to the download: its peer id, listener, announce session and
 * live connections. Whoever gets it must pass it to the download (`ClientOptions.handoff`) or
 * call `close()`; `close()` ends whatever was not taken and may always be called again.
 */
export class MagnetHandoff implements PeerHandoff {
  private listenerTaken = false;
  private announcerTaken = false;
  private statsFn: () => AnnounceStats = () => ({ uploaded: 0, downloaded: 0, left: 1 });
  private closed = false;

  constructor(
    readonly peerId: Buffer,
    private readonly swarm: MetadataSwarm,
    private readonly listenerRef: Listener | null,
    private readonly announcerRef: Announcer | null,
    private readonly dhtSource: DhtPeerSource | null,
  ) {}

  /** What the announce session reports (the download's counts, once it runs). */
  announceStats(): AnnounceStats {
    return this.statsFn();
  }

  setAnnounceStats(fn: () => AnnounceStats): void {
    this.statsFn = fn;
  }

  /** The listener, already listening; the caller closes it from now on. */
  takeListener(): Listener | null {
    this.listenerTaken = true;
    return this.listenerRef;
  }

  /** The announce session, `started` already sent; the caller completes and stops it. */
  takeAnnouncer(): Announcer | null {
    this.announcerTaken = true;
    return this.announcerRef;
  }

  candidates(): HandoffCandidate[] {
    return this.swarm.candidates();
  }

  /**
   * The download takes the connections (see MetadataSwarm.takeOver); connections accepted from
   * now on are for `pieceCount` pieces. The metadata phase's DHT lookup ends here (the download
   * runs its own, which announces our port).
   */
  take(pieceCount: number, sink: TakeOverSink): void {
    this.listenerRef?.setPieceCount(pieceCount);
    this.swarm.takeOver(sink, pieceCount);
    void this.dhtSource?.stop().catch(() => {});
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.swarm.close();
    await this.dhtSource?.stop().catch(() => {});
    if (!this.announcerTaken) await this.announcerRef?.stop().catch(() => {});
    if (!this.listenerTaken) await this.listenerRef?.close();
  }
}

export interface ResolvedMagnet {
  meta: Metainfo;
  /** A .torrent around the exact info bytes, with the magnet's trackers. */
  torrent: Buffer;
  /**
   * Peers that answered while fetching; empty with a handoff, whose connections and candidates
   * the download takes over (see MagnetHandoff.candidates).
   */
  peers: PeerAddress[];
  /** The metadata came from an earlier run's kept copy. */
  fromCache: boolean;
  /** With the `handoff` option and fetched metadata: what the download takes over. */
  handoff: MagnetHandoff | null;
}

export async function resolveMagnet(o: MagnetOptions): Promise<ResolvedMagnet> {
  const trackers = o.magnet.trackers;
  // The first HTTP announce should not wait for the HTTP client to load: start now.
  preloadHttpClient(trackers.flat());
  const kept = await findKept(o.magnet.infoHash, o.output);
  if (kept) {
    log('metadata kept by an earlier run: %s', kept.file);
    // This link's trackers and web seeds come first, then those the earlier run had.
    const tiers = [...trackers];
    const seen = new Set(trackers.flat());
    for (const tier of kept.meta.announceList) {
      const rest = tier.filter((u) => !seen.has(u));
      for (const u of rest) seen.add(u);
      if (rest.length > 0) tiers.push(rest);
    }
    const seeds = [...new Set([...o.magnet.webSeeds, ...kept.meta.urlList])];
    const torrent = torrentFromInfo(kept.meta.info, tiers, seeds);
    const meta = parseTorrent(torrent);
    checkV2Hash(o.magnet, meta, kept.meta.info, o.onWarning);
    return { meta, torrent, peers: [], fromCache: true, handoff: null };
  }
  const peers = [...o.magnet.peers, ...o.peers];
  if (trackers.length === 0 && peers.length === 0 && !o.dht) {
    // As for a .torrent that names no tracker (exit 4): nothing could bring a peer.
    throw new NoPeersError(
      'the magnet link names no tracker and no peer, and the DHT is off: give peers with --peer HOST:PORT',
    );
  }
  // Peers given only at addresses of the other family than --bind, and nothing else: as for a
  // .torrent (exit 4 at once).
  const far = farPeers(peers, o.localAddress);
  if (peers.length > 0 && far.length === peers.length && trackers.length === 0 && !o.dht) {
    throw farPeersError(far, o.localAddress!);
  }
  // Trackers of kinds tdl cannot use (wss://…) as the only source: exit 4 at once, as for a
  // .torrent (web seeds do not count here: the metadata only comes from peers).
  if (peers.length === far.length && !o.dht) requireUsableTracker(trackers, o.localAddress);
  let listener: Listener | null = null;
  if (o.handoff && o.handoff.listen !== false) {
    listener = new Listener(
      {
        infoHash: o.magnet.infoHash,
        peerId: o.peerId,
        pieceCount: 0,
        metadataOnly: true,
        handshakeMs: Math.min(o.handshakeMs, 15_000),
      },
      o.encryption,
    );
    await listener.listen(o.handoff.listen);
  }
  let handoff: MagnetHandoff | null = null;
  const announcer =
    trackers.length > 0
      ? new Announcer({
          announceList: trackers,
          infoHash: o.magnet.infoHash,
          peerId: o.peerId,
          // Without a download to follow we do not listen (`tdl info`): port 0.
          port: listener?.port ?? 0,
          stats: () => handoff?.announceStats() ?? { uploaded: 0, downloaded: 0, left: 1 },
          localAddress: o.localAddress,
        })
      : null;
  // Announced to the DHT as to trackers: the port a download listens on (none for `tdl info`).
  const dhtSource = o.dht
    ? new DhtPeerSource(o.dht, o.magnet.infoHash, { announcePort: listener?.port || undefined })
    : null;
  const sources: { source: PeerSource; origin: PeerOrigin }[] = [];
  if (announcer) sources.push({ source: announcer, origin: 'tracker' });
  if (dhtSource) sources.push({ source: dhtSource, origin: 'dht' });
  const swarm = new MetadataSwarm({
    infoHash: o.magnet.infoHash,
    peerId: o.peerId,
    peers: o.magnet.peers,
    cliPeers: o.peers,
    sources,
    timeoutMs: o.timeoutMs,
    handshakeMs: o.handshakeMs,
    signal: o.signal,
    listener,
    port: listener?.port,
    encryption: o.encryption,
    localAddress: o.localAddress,
  });
  if (o.onWarning) swarm.on('warning', o.onWarning);
  swarm.on('progress', () => o.onProgress?.(swarm.counts()));
  handoff = new MagnetHandoff(o.peerId, swarm, listener, announcer, dhtSource);
  let handedOver = false;
  try {
    const r = await swarm.run();
    // The magnet's `ws` become the torrent's web seeds, as its `tr` become its trackers.
    const torrent = torrentFromInfo(r.info, trackers, o.magnet.webSeeds);
    // The same checks as a .torrent file: a hostile info dictionary is refused here.
    const meta = parseMetadata(torrent, r.info);
    // The bytes hash to the link's info hash, but the parser reads one dictionary: anything
    // after it would become keys of the .torrent around it, and the torrent another info hash.
    if (meta.info.length !== r.info.length) throw afterInfo(r.info.length - meta.info.length);
    checkV2Hash(o.magnet, meta, r.info, o.onWarning);
    // A private torrent (BEP 27) gets its peers from its trackers alone: the metadata phase's
    // DHT lookup and announces end now, not when the download takes over.
    if (meta.private) await dhtSource?.stop().catch(() => {});
    handedOver = o.handoff !== undefined;
    // The download follows: the seeders may unchoke us while it sets up.
    if (handedOver) swarm.interested(meta.pieceCount);
    return {
      meta,
      torrent,
      peers: handedOver ? [] : r.peers,
      fromCache: false,
      handoff: handedOver ? handoff : null,
    };
  } finally {
    if (!handedOver) await handoff.close();
  }
}

/**
 * The .torrent built around fetched metadata, parsed: its errors say the metadata from peers is
 * at fault (it hashes right, so the torrent itself is bad), naming bytes after the dictionary as
 * such rather than as the keys they would be read as.
 */
function parseMetadata(torrent: Buffer, info: Buffer): Metainfo {
  try {
    return parseTorrent(torrent);
  } catch (e) {
    if (!(e instanceof TdlError) || e.kind !== 'invalid-torrent') throw e;
    let trailing = 0;
    try {
      trailing = decodeStrict(info, { allowTrailing: true }).trailing;
    } catch {
      // not bencode at all: the parser's own message says where
    }
    if (trailing > 0) throw afterInfo(trailing);
    e.message = `the torrent's metadata from peers: ${e.message}`;
    throw e;
  }
}

/**
 * A link naming a v2 info hash (`btmh`) beside the v1 one is for a hybrid torrent: metadata
 * that hashes to the v1 hash but is not that torrent (another hybrid, whose v2 hash differs) is
 * refused; v1-only metadata has no v2 hash to compare, and the `btmh` is ignored with a warning.
 */
function checkV2Hash(
  magnet: Magnet,
  meta: Metainfo,
  info: Buffer,
  warn?: (message: string) => void,
): void {
  if (!magnet.v2InfoHash) return;
  if (!meta.hybrid) {
    warn?.('the magnet link names a v2 info hash (btmh), but the torrent is v1 only: ignored');
    return;
  }
  const v2 = createHash('sha256').update(info).digest();
  if (!v2.equals(magnet.v2InfoHash)) {
    throw new MetainfoError(
      'magnet.xt',
      `the link's v2 info hash (btmh ${magnet.v2InfoHash.toString('hex')}) is not the metadata's (${v2.toString('hex')})`,
    );
  }
}

function afterInfo(bytes: number): MetainfoError {
  return new MetainfoError(
    'info',
    `the metadata from peers has ${bytes} byte(s) after the info dictionary (it must be one bencoded dictionary)`,
  );
}
