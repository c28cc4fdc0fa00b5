/**
 * Fetching a torrent's metadata from peers (a magnet link, BEP 9).
 *
 *   peers ──► connect (pieces unknown: availability ignored) ──► extension handshakes
 *        ──► MetadataFetch: 16 KiB pieces from several peers, 2 in flight each ──► SHA-1 = info hash
 *
 * The peers come from the magnet's trackers, `x.pe` and `--peer`, and from PEX. A peer that
 * lies (a wrong size, pieces that hash wrong, out-of-range pieces) is dropped and the fetch goes on
 * from others. `run()` resolves with the exact info bytes and the addresses of the peers that
 * answered; it fails only at `timeoutMs` without progress.
 *
 * Once the metadata is complete the connections stay open (no new ones are dialled) until
 * `takeOver()` hands them to the download, or `close()` ends them: see docs/DESIGN.md, "Magnet
 * hand-over". Until then this swarm keeps every listener it had (connections, pool, listener,
 * peer sources), so nothing that arrives in between goes unheard.
 */
import { EventEmitter } from 'node:events';
import { logger } from '../log.js';
import { InterruptedError, NoPeersError } from '../errors.js';
import type { EncryptionMode, PeerConnection } from '../peer/connection.js';
import type { Listener } from './listener.js';
import type { PeerAddress } from '../tracker/types.js';
import { Bitfield } from '../wire/bitfield.js';
import {
  LOCAL_EXTENSION_IDS,
  UT_METADATA,
  UT_PEX,
  decodeExtendedHandshake,
  encodeExtendedHandshake,
  localExtendedHandshake,
  peerExtensionId,
  type ExtendedHandshake,
} from '../wire/extension.js';
import { MAX_METADATA_SIZE, decodeUtMetadata, encodeUtMetadata } from '../wire/ut-metadata.js';
import { PexPeer, addedPeers } from '../wire/ut-pex.js';
import { CLIENT_NAME } from '../version.js';
import type { PeerSource } from './download-api.js';
import { MetadataFetch } from './metadata-fetch.js';
import { hostOfBytes } from './own-addresses.js';
import {
  PeerPool,
  handoffOf,
  type Candidate,
  type HandoffCandidate,
  type PeerOrigin,
} from './peer-pool.js';
import { someProblems, sourceFailures } from './stall-report.js';

const log = logger('tdl:metadata');

/** Peers connected at once while fetching metadata. */
export const METADATA_MAX_PEERS = 30;
/**
 * With every slot taken and untried addresses waiting, a peer connected this long that cannot
 * serve the metadata (none announced, or asked no more) gives its slot up, one per tick.
 */
export const METADATA_ROOM_AFTER_MS = 5_000;
const TICK_MS = 1_000;

export interface MetadataSwarmOptions {
  infoHash: Buffer;
  peerId: Buffer;
  /** The magnet link's own peers (`x.pe`). */
  peers: PeerAddress[];
  /** Peers given with --peer. */
  cliPeers?: PeerAddress[];
  sources: { source: PeerSource; origin: PeerOrigin }[];
  /** Give up when no metadata piece arrives for this long. */
  timeoutMs: number;
  handshakeMs: number;
  signal?: AbortSignal;
  /** Incoming peers (listening for the download that follows): they may serve the metadata too. */
  listener?: Listener | null;
  /** Our listening port, told to peers in our extension handshake. */
  port?: number;
  /** How our own connections are made (`--encryption`). */
  encryption?: EncryptionMode;
  /** Outgoing connections (peers, trackers, web seeds) are made from this address (`--bind`). */
  localAddress?: string;
}

/** Where `takeOver` sends the connections. */
export interface TakeOverSink {
  /** A live connection (metadata-only: adopt it), its origin, the peer's BEP 10 handshake. */
  peer(conn: PeerConnection, origin: PeerOrigin, extHandshake: Buffer | null): void;
  /** A connection attempt still in flight at `takeOver` failed. */
  gone(address: string): void;
}

interface ConnState {
  ext: ExtendedHandshake | null;
  /** The peer's last extension handshake payload (a copy), for the download. */
  rawExt: Buffer | null;
  pex: PexPeer | null;
  origin: PeerOrigin;
  /** When it was attached (Date.now()). */
  since: number;
  /** Closed to make room: it had its chance. */
  evicted: boolean;
  /** Removes this swarm's listeners from the connection. */
  off: () => void;
}

/** The most bytes of a peer's extension handshake kept for the download. */
const MAX_KEPT_EXT_HANDSHAKE = 64 * 1024;

export interface MetadataResult {
  info: Buffer;
  /** Peers that spoke to us, to be dialled again for the data. */
  peers: PeerAddress[];
}

export class MetadataSwarm extends EventEmitter<{ warning: [string]; progress: [] }> {
  private readonly fetch: MetadataFetch;
  private readonly pool: PeerPool;
  private readonly conns = new Map<PeerConnection, ConnState>();
  private readonly answered = new Map<string, PeerAddress>();
  private lastProgressAt = Date.now();
  /** `address: reason` of the last peer that closed or was dropped while we waited. */
  private lastFailure = '';
  /** The metadata is complete: dial no one new. */
  private complete = false;
  private closed = false;
  private sink: TakeOverSink | null = null;
  /** Listeners on the pool, the sources, the listener and the signal, removed at the end. */
  private detach: (() => void)[] = [];

  constructor(private readonly opts: MetadataSwarmOptions) {
    super();
    this.fetch = new MetadataFetch(opts.infoHash);
    this.pool = new PeerPool({
      infoHash: opts.infoHash,
      peerId: opts.peerId,
      pieceCount: 0,
      sequential: false,
      handshakeMs: opts.handshakeMs,
      metadataOnly: true,
      encryption: opts.encryption,
      localAddress: opts.localAddress,
      isOwn: (p) => this.isOwn(p),
    });
  }

  /** An address of ours (swarm/own-addresses): never dialled, never taken from PEX. */
  private isOwn(p: PeerAddress): boolean {
    return this.opts.listener?.own?.has(p) ?? false;
  }

  /** Peers connected, and those of them that have the metadata. */
  counts(): { connected: number; withMetadata: number; known: number } {
    return {
      connected: this.conns.size,
      withMetadata: this.fetch.peersWithMetadata(),
      known: this.pool.candidates.size,
    };
  }

  async run(): Promise<MetadataResult> {
    let ticker: NodeJS.Timeout | null = null;
    let ok = false;
    let offSignal = () => {};
    try {
      const r = await new Promise<MetadataResult>((resolve, reject) => {
        const onAbort = () => {
          const r = this.opts.signal?.reason;
          reject(r instanceof Error ? r : new InterruptedError('SIGINT'));
        };
        if (this.opts.signal?.aborted) return onAbort();
        this.opts.signal?.addEventListener('abort', onAbort, { once: true });
        offSignal = () => this.opts.signal?.removeEventListener('abort', onAbort);
        const onConnected = (conn: PeerConnection, cand: Candidate) =>
          this.attach(conn, cand, resolve);
        this.pool.on('connected', onConnected);
        // A dial that failed (refused, timed out, a bad handshake) says why as well.
        const onFailed = (address: string, reason: string) => {
          if (!this.complete) this.lastFailure = `${address}: ${reason}`;
        };
        this.pool.on('failed', onFailed);
        this.detach.push(() => {
          this.pool.off('connected', onConnected);
          this.pool.off('failed', onFailed);
        });
        const listener = this.opts.listener;
        if (listener) {
          const onPeer = (conn: PeerConnection) => this.incoming(conn, resolve);
          listener.on('peer', onPeer);
          this.detach.push(() => listener.off('peer', onPeer));
        }
        for (const { source, origin } of this.opts.sources) {
          const onPeers = (peers: PeerAddress[]) => this.add(peers, origin);
          const onWarning = (m: string) => this.emit('warning', m);
          source.on('peers', onPeers);
          source.on('warning', onWarning);
          this.detach.push(() => {
            source.off('peers', onPeers);
            source.off('warning', onWarning);
          });
          source.start();
        }
        this.add(this.opts.peers, 'magnet');
        this.add(this.opts.cliPeers ?? [], 'cli');
        ticker = setInterval(() => {
          for (const c of this.conns.keys()) this.ask(c);
          this.makeRoom(Date.now());
          this.pool.fill(this.conns.size, METADATA_MAX_PEERS);
          if (this.conns.size + this.pool.connecting === 0) {
            for (const { source } of this.opts.sources) source.requestMore();
          }
          this.emit('progress');
          if (Date.now() - this.lastProgressAt > this.opts.timeoutMs) {
            const secs = Math.round(this.opts.timeoutMs / 100) / 10; // --timeout 1.5: 1.5s
            const c = this.counts();
            reject(
              new NoPeersError(
                `no metadata within ${secs}s (${c.known} peer address${c.known === 1 ? '' : 'es'}, ` +
                  `${c.withMetadata} with metadata` +
                  (this.pool.otherFamily > 0
                    ? `; ${this.pool.otherFamily} of the other address family than --bind left out`
                    : '') +
                  `${this.lastFailure ? `; last: ${this.lastFailure}` : ''}` +
                  // What the trackers and the DHT said, as the download's own error names them.
                  someProblems(sourceFailures(this.opts.sources))
                    .map((m) => `; ${m}`)
                    .join('') +
                  ')',
              ),
            );
          }
        }, TICK_MS);
      });
      ok = true;
      return r;
    } finally {
      this.complete = true;
      if (ticker) clearInterval(ticker);
      offSignal();
      // Kept for the download (takeOver) on success; ended at once on failure.
      if (!ok) this.close();
    }
  }

  /**
   * Known addresses, for the download's pool; `busy`: connected, or still being dialled by this
   * swarm (such an attempt ends in `sink.peer` or `sink.gone` after takeOver).
   */
  candidates(): HandoffCandidate[] {
    const out: HandoffCandidate[] = [];
    for (const c of this.pool.candidates.values()) {
      if (c.banned) continue;
      out.push(handoffOf(c));
    }
    return out;
  }

  /**
   * Hand every live connection to `sink` (now, synchronously), and those still connecting as
   * they open (or `gone` when they fail). This swarm's listeners come off each connection, the
   * peer sources and the listener first, so attach the download's own listeners to the sources
   * and the listener before calling this (the same tick: nothing is missed in between).
   * Live connections go in order of the pieces they have shown of the torrent's `pieceCount`,
   * most first (seeders first): a download that admits fewer than it is given (`--max-peers`)
   * keeps those that can serve it most, not those that happened to connect first.
   */
  takeOver(sink: TakeOverSink, pieceCount = 0): void {
    if (this.closed || this.sink) return;
    this.sink = sink;
    for (const d of this.detach) d();
    this.detach = [];
    this.pool.on('connected', (conn, cand) => {
      if (this.closed) conn.close('run ended');
      else sink.peer(conn, cand.origin, null);
    });
    this.pool.on('failed', (address) => sink.gone(address));
    const shown = new Map<PeerConnection, number>();
    for (const conn of this.conns.keys()) shown.set(conn, conn.piecesShown(pieceCount));
    // A stable sort: among equals, the order they connected in.
    const live = [...this.conns].sort(([a], [b]) => shown.get(b)! - shown.get(a)!);
    this.conns.clear();
    for (const [conn, st] of live) {
      st.off();
      if (conn.state === 'open') sink.peer(conn, st.origin, st.rawExt);
    }
  }

  /**
   * The metadata is known and valid (`pieceCount` pieces): each connected peer that has shown
   * pieces hears `interested` now, so that its unchoke is on its way while the download sets up
   * (output, start-up check, first checkpoint) instead of one round trip after it. The download
   * adopts the connection in that state (and says `not interested` if it wants none of them).
   */
  interested(pieceCount: number): void {
    if (this.closed || this.sink) return;
    for (const conn of this.conns.keys()) {
      if (conn.showsPieces(pieceCount)) conn.interested();
    }
  }

  /** End what was not handed over: connection attempts and connections (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const d of this.detach) d();
    this.detach = [];
    this.pool.close();
    for (const c of [...this.conns.keys()]) {
      c.close(this.complete ? 'metadata complete' : 'metadata fetch ended');
    }
  }

  private add(peers: PeerAddress[], origin: PeerOrigin): void {
    this.pool.add(peers, origin);
    if (!this.complete) this.pool.fill(this.conns.size, METADATA_MAX_PEERS);
  }

  /** An incoming peer (it found us through the tracker or the DHT). */
  private incoming(conn: PeerConnection, done: (r: MetadataResult) => void): void {
    const cand = this.pool.acceptIncoming(conn, this.conns.keys());
    if (cand) this.attach(conn, cand, done);
  }

  private attach(conn: PeerConnection, cand: Candidate, done: (r: MetadataResult) => void): void {
    if (this.closed || this.conns.size >= METADATA_MAX_PEERS) {
      conn.close(this.closed ? 'run ended' : 'no free peer slot');
      this.pool.released(cand);
      // Turned away for lack of room, it has not had its chance yet.
      if (!this.closed && cand.origin !== 'incoming') this.pool.untry(cand);
      return;
    }
    const state: ConnState = {
      ext: null,
      rawExt: null,
      pex: null,
      origin: cand.origin,
      since: Date.now(),
      evicted: false,
      off: () => {
        conn.off('close', onClose);
        conn.off('extended', onExtended);
      },
    };
    this.conns.set(conn, state);
    // Once complete, the `metadata` `done` event has been written: no `fetching` after it.
    if (!this.complete) this.emit('progress');
    const onClose = (reason: string) => {
      this.conns.delete(conn);
      this.fetch.removePeer(conn.address);
      this.pool.released(cand, !state.evicted);
      log('%s closed: %s', conn.address, reason);
      if (!this.closed && !this.complete) this.lastFailure = `${conn.address}: ${reason}`;
      if (!this.complete) this.pool.fill(this.conns.size, METADATA_MAX_PEERS);
    };
    const onExtended = (extId: number, payload: Buffer) => {
      try {
        if (extId === 0) {
          state.ext = decodeExtendedHandshake(payload);
          const seen = state.ext.yourip ? hostOfBytes(state.ext.yourip) : null;
          if (seen !== null) this.opts.listener?.own?.learn(seen);
          state.rawExt = payload.length <= MAX_KEPT_EXT_HANDSHAKE ? Buffer.from(payload) : null;
          this.answered.set(conn.address, { host: conn.host, port: conn.port });
          if (peerExtensionId(state.ext, UT_PEX) !== undefined) {
            // A repeated extension handshake keeps the PEX state: a new one each time reset the
            // once-a-minute limit (100 addresses taken per handshake and message pair).
            state.pex ??= new PexPeer({ host: conn.host, port: conn.port });
          }
          const size = state.ext.metadataSize;
          if (peerExtensionId(state.ext, UT_METADATA) !== undefined && size !== undefined) {
            if (!this.fetch.addPeer(conn.address, size)) {
              cand.banned = true;
              conn.close(
                size > MAX_METADATA_SIZE
                  ? `metadata of ${size} bytes, over tdl's limit of ${MAX_METADATA_SIZE} (16 MiB)`
                  : `unusable metadata size ${size}`,
              );
              return;
            }
          }
          this.ask(conn);
          return;
        }
        if (extId === LOCAL_EXTENSION_IDS[UT_PEX] && state.pex) {
          const m = state.pex.receive(Date.now(), payload, (p) => this.isOwn(p));
          if (m) this.add(addedPeers(m), 'pex');
          return;
        }
        if (extId !== LOCAL_EXTENSION_IDS[UT_METADATA]) return;
        const m = decodeUtMetadata(payload);
        if (m.type === 'request') {
          // Nothing to serve yet: said at once, so the peer asks someone else.
          const theirs = state.ext ? peerExtensionId(state.ext, UT_METADATA) : undefined;
          if (theirs !== undefined) {
            conn.sendExtended(theirs, encodeUtMetadata({ type: 'reject', piece: m.piece }));
          }
          return;
        }
        const r = this.fetch.onMessage(conn.address, m);
        if (r === 'done' && this.fetch.info) {
          this.complete = true;
          log('metadata complete: %d bytes', this.fetch.info.length);
          done({ info: this.fetch.info, peers: [...this.answered.values()] });
          return;
        }
        if (typeof r === 'object') {
          // Dropped for bad metadata: never dialled again (the fetch would refuse it anyway).
          cand.banned = true;
          conn.close(r.drop);
          return;
        }
        if (this.complete) return;
        // Only a piece of metadata is progress: rejects, or messages of no use, must not hold
        // the wait open past --timeout; nor pieces once attempts keep hashing wrong (peers
        // that lie and come back under new ports).
        if (m.type === 'data' && this.fetch.piecesCount) {
          this.lastProgressAt = Date.now();
          this.emit('progress');
        }
        this.ask(conn);
      } catch (e) {
        conn.close((e as Error).message);
      }
    };
    conn.on('close', onClose);
    conn.on('extended', onExtended);
    const ext = encodeExtendedHandshake(
      localExtendedHandshake({
        privateTorrent: false,
        version: CLIENT_NAME,
        port: this.opts.port,
      }),
    );
    conn.start(new Bitfield(0), ext);
  }

  /**
   * Every slot taken while untried addresses wait: the peer connected longest (at least
   * METADATA_ROOM_AFTER_MS) among those that cannot serve the metadata gives its slot up.
   */
  private makeRoom(now: number): void {
    if (this.conns.size < METADATA_MAX_PEERS || this.pool.untried() === 0) return;
    let worst: PeerConnection | undefined;
    let worstSince = Infinity;
    for (const [conn, st] of this.conns) {
      if (now - st.since < METADATA_ROOM_AFTER_MS || this.fetch.canServe(conn.address)) continue;
      if (st.since < worstSince) {
        worst = conn;
        worstSince = st.since;
      }
    }
    if (worst === undefined) return;
    this.conns.get(worst)!.evicted = true;
    worst.close('making room: it cannot serve the metadata');
  }

  /** Send this peer the metadata requests the fetch wants from it now. */
  private ask(conn: PeerConnection): void {
    const state = this.conns.get(conn);
    const id = state?.ext ? peerExtensionId(state.ext, UT_METADATA) : undefined;
    if (id === undefined) return;
    for (const piece of this.fetch.requestsFor(conn.address)) {
      conn.sendExtended(id, encodeUtMetadata({ type: 'request', piece }));
    }
  }
}
