/**
 * The swarm orchestrator: one torrent, many peers, both directions.
 *
 * It wires the parts together and owns each peer's session:
 * - the peer pool (src/swarm/peer-pool.ts) dials candidate addresses; the listener
 *   (src/swarm/listener.ts) brings incoming peers; both count against `maxPeers`;
 * - request scheduling (src/swarm/requests.ts) with the piece picker decides what to ask for;
 * - the piece store (src/swarm/piece-store.ts) verifies and writes pieces; a piece is announced
 *   with `have` to every peer once verified (served from memory until written);
 * - the upload service (src/swarm/upload.ts) answers requests, and the choker
 *   (src/swarm/choker.ts) decides every 10 s whom we unchoke;
 * - the connection slots (src/swarm/slots.ts) say whether a peer may stay and which one makes
 *   room for another; admission (src/swarm/admission.ts) refuses a connection that doubles one
 *   we have, or comes from a banned peer, and opens the session of one it takes;
 * - the rules over the set of sessions (which peer makes room, which is too slow for a stream's
 *   window, which connection is useless, the memory budget) are in src/swarm/session.ts, and
 *   what the download takes and reports (options, sources, stats, events) in download-api.ts.
 *
 * With `maxPeers: 1` it is the sequential probe of the core design: a peer must complete the
 * handshake, show every piece and unchoke within `peerTimeoutMs`, or the next one is tried. With
 * more peers a peer that chokes us is kept, interested, until it unchokes (swarms rotate their
 * unchokes every 10 and 30 s): a peer is dropped only for a protocol fault, when it has nothing we
 * need and wants nothing from us, when it truly stops sending, or to make room for a fresh
 * candidate.
 *
 * `run()` resolves once every piece is verified and on disk; the swarm goes on (serving, when
 * seeding) until `close()`. Nothing a peer does is fatal; the download fails only when no data
 * arrives for `stallTimeoutMs`.
 */
import { EventEmitter } from 'node:events';
import { logger } from '../log.js';
import { CLIENT_NAME } from '../version.js';
import { DiskError, InterruptedError, TdlError } from '../errors.js';
import type { Metainfo } from '../metainfo/torrent.js';
import type { PeerConnection } from '../peer/connection.js';
import type { Layout } from '../storage/layout.js';
import { formatPeerAddress, type PeerAddress } from '../tracker/types.js';
import type { WebSeeds } from '../webseed/scheduler.js';
import { Bitfield } from '../wire/bitfield.js';
import { encodeExtendedHandshake, localExtendedHandshake } from '../wire/extension.js';
import { BLOCK_SIZE } from '../wire/messages.js';
import {
  openSession,
  receiveHandoff,
  refusal,
  replacesTwin,
  turnAway,
  twinOf,
} from './admission.js';
import { Choker, CHOKE_INTERVAL_MS, DEFAULT_UPLOAD_SLOTS } from './choker.js';
import type { DownloadEvents, DownloadOptions, DownloadStats, PeerSource } from './download-api.js';
import { PeerExtensions, pexFlags } from './extensions.js';
import { dataBytesOf, piecePadding, type PiecePadding } from './padding.js';
import { PeerPool, type Candidate, type PeerOrigin } from './peer-pool.js';
import { peerIdKey, PiecePicker, type PieceInProgress } from './picker.js';
import { PieceStore } from './piece-store.js';
import { ProgressWatch } from './progress-watch.js';
import { sparingHints, standsIn } from './seed-sparing.js';
import { ReadLimiter, TokenBucket } from './rate-limit.js';
import { RequestScheduler, type PeerRequests } from './requests.js';
import { RateWindow } from './rate-window.js';
import {
  chokerView,
  memoryBudget,
  MIN_INFLIGHT_BYTES,
  slotsMoveOn,
  slowForWindow,
  uselessReason,
  type Session,
} from './session.js';
import { PeerSlots } from './slots.js';
import { neededPieces, noPeersError, stalledError, type StallFacts } from './stall-report.js';
import { MAX_QUEUE, UploadService } from './upload.js';
import { startWebSeedFeed } from './web-seed-feed.js';

const log = logger('tdl:swarm');

export const DEFAULT_MAX_PEERS = 30;
/** Bad pieces a peer may send before it is dropped for the rest of the run. */
export const MAX_HASH_FAILURES = 2;
/** Pieces failing verification in a row after which blocks are no longer progress by themselves. */
export const FRUITLESS_PIECES = 3;
const TICK_MS = 500;
/**
 * Ticks this far apart mean the process did not run meanwhile (SIGSTOP, a system suspend): the
 * peers' clocks move on by the gap (RequestScheduler.paused). A busy machine delays a tick by far
 * less; taking such a delay for a pause would only spare the peers one check.
 */
const PAUSE_GAP_MS = 5_000;
/**
 * How long the connections open at the end of a run may take to close gracefully (see
 * PeerConnection.close): about as long as the trackers' `stopped`, which runs beside it.
 */
export const END_GRACE_MS = 1_500;
/**
 * Blocks still due from a peer at most for a socket read to be acknowledged at once (see
 * Download.acknowledge): the rest of its reply then fits in about one TCP segment (64 KiB on
 * loopback, where 4 blocks do; far less over a network), which is what Nagle's algorithm holds.
 */
const ACK_WHEN_DUE = 4;
/**
 * How long a seed that reached its --seed-ratio or --seed-time waits, at most, for peers still
 * reading what it sent (a leecher reading at 6 MB/s had several MB of it in the sockets, and
 * libtorrent says nothing to a seed meanwhile). A peer closes its side once it has read the end.
 */
export const SEED_END_DRAIN_MS = 30_000;
/** Addresses the user gave (`--peer`, a magnet's `x.pe`): a lone seed keeps trying them. */
const BY_HAND: readonly PeerOrigin[] = ['cli', 'magnet'];
export class Download extends EventEmitter<DownloadEvents> {
  private readonly meta: Metainfo;
  private readonly layout: Layout;
  private readonly picker: PiecePicker;
  private readonly have: Bitfield;
  private readonly slots: PeerSlots;
  private readonly sequential: boolean;
  private readonly peerTimeoutMs: number;
  private readonly stallTimeoutMs: number;
  private readonly pool: PeerPool;
  private readonly scheduler: RequestScheduler;
  private readonly store: PieceStore;
  private readonly upload: UploadService;
  private readonly choker: Choker;
  private readonly readLimiter: ReadLimiter | null;
  private readonly sessions = new Map<PeerConnection, Session>();
  private readonly startedAt = Date.now();
  /** The last progress, for `--timeout` and starvation. */
  private readonly watch = new ProgressWatch(this.startedAt);
  /**
   * Pieces that failed verification since the last one verified. From FRUITLESS_PIECES on, only
   * blocks of peers that sent a good piece are progress for `--timeout` (see blocksCount).
   */
  private failedInRow = 0;
  private firstUnchokeAt = 0;
  private downloaded = 0;
  /** Of `downloaded`, the bytes web seeds sent. */
  private fromWebSeeds = 0;
  private replaced = 0;
  private readonly initial: number;
  /** Bytes of the pieces to fetch (all of them without a selection). */
  private readonly total: number;
  /** A `fault` was emitted (seeding ends on the first). */
  private faulted = false;
  /** BEP 47 padding in the pieces (null: none): never fetched, never counted. */
  private readonly padding: PiecePadding | null;
  private readonly usedPeers = new Set<string>();
  /** Verified bytes over the last 3 s (the rate). */
  private readonly lastSeconds = new RateWindow(3_000);
  private ticker: NodeJS.Timeout | null = null;
  /** When the last tick ran (see PAUSE_GAP_MS). */
  private lastTickAt = Date.now();
  private chokeTimer: NodeJS.Timeout | null = null;
  private complete = false;
  private closed = false;
  /** Settles once every connection open at close() is gone. */
  private ended: Promise<void> = Promise.resolve();
  private everReady = false;
  private lastFailure = '';
  private resolveRun!: () => void;
  private rejectRun!: (e: Error) => void;
  private readonly done: Promise<void>;
  private detach: (() => void)[] = [];
  private webSeeds: WebSeeds | null = null;
  /**
   * We left a seed as useless (both complete) once we had every piece: the swarm still has a
   * source of every piece, and leaving takes nothing from it (see soleCopies). A seed that
   * closed the connection itself may have left the swarm: it does not count.
   */
  private seedAtEnd = false;
  /** No block is asked for until `ready` settles. */
  private gated = false;
  /** Every web seed of this run was banned (bad pieces): they serve no one else either. */
  private webSeedsFailed = false;

  constructor(private readonly opts: DownloadOptions) {
    super();
    this.meta = opts.meta;
    this.layout = opts.layout;
    this.have = opts.have ?? new Bitfield(this.layout.pieceCount);
    this.padding = opts.padding !== undefined ? opts.padding : piecePadding(this.meta, this.layout);
    this.total = dataBytesOf(this.layout, this.padding, opts.wanted ?? null);
    this.initial = dataBytesOf(this.layout, this.padding, this.have, opts.wanted);
    this.picker = new PiecePicker(
      this.layout,
      this.have,
      MIN_INFLIGHT_BYTES,
      opts.random,
      opts.wanted ?? null,
      this.padding && ((index, start, end) => this.padding!.isPadding(index, start, end)),
    );
    this.ownKey = peerIdKey(opts.peerId);
    this.slots = new PeerSlots(Math.max(1, opts.maxPeers ?? DEFAULT_MAX_PEERS));
    this.sequential = this.slots.sequential;
    this.peerTimeoutMs = opts.peerTimeoutMs ?? 15_000;
    this.stallTimeoutMs = opts.stallTimeoutMs ?? 120_000;
    this.scheduler = new RequestScheduler(this.layout, this.picker, opts.timeouts?.requestMs);
    // Pieces the tap keeps stay in the memory budget: half of it at most, so that the download
    // goes on (to disk) however slow the tap's reader.
    this.store = new PieceStore(this.meta, opts.storage, opts.tap, () =>
      Math.floor(this.picker.maxInflightBytes / 2),
    );
    const storage = opts.storage;
    const source = {
      readBlock: (index: number, begin: number, length: number) => {
        const mem = this.store.readVerified(index, begin, length);
        return mem ? Promise.resolve(mem) : storage.readBlock(index, begin, length);
      },
    };
    this.upload = new UploadService(this.layout, this.have, source, opts.maxUploadRate, (e) =>
      this.fail(e),
    );
    this.choker = new Choker({
      slots: opts.uploadSlots ?? DEFAULT_UPLOAD_SLOTS,
      random: opts.random ?? Math.random,
    });
    // The download limit counts every byte read from every peer; sockets pause while in debt.
    this.readLimiter =
      opts.maxDownloadRate && opts.maxDownloadRate > 0
        ? new ReadLimiter(new TokenBucket(opts.maxDownloadRate))
        : null;
    this.pool = new PeerPool({
      infoHash: this.meta.infoHash,
      peerId: opts.peerId,
      pieceCount: this.layout.pieceCount,
      sequential: this.sequential,
      timeouts: opts.timeouts,
      handshakeMs: opts.timeouts?.handshakeMs ?? this.peerTimeoutMs,
      encryption: opts.encryption,
      localAddress: opts.localAddress,
      done: () => this.complete,
      isOwn: (p) => this.isOwn(p),
    });
    this.pool.on('connecting', (address) => {
      const c = this.pool.candidates.get(address);
      this.emit('peer', { address, status: 'connecting', source: c?.origin });
    });
    this.pool.on('failed', (address, reason) => {
      this.lastFailure = `${address}: ${reason}`;
      this.emit('peer', { address, status: 'dropped', reason });
      this.fill();
    });
    this.pool.on('abandoned', (address) => {
      this.emit('peer', { address, status: 'dropped', reason: 'run ended' });
    });
    this.pool.on('connected', (conn, cand) => this.admit(conn, cand));
    this.store.on('failed', (p) => this.pieceFailed(p));
    this.store.on('verified', (p) => this.pieceVerified(p));
    this.store.on('written', (p) => this.pieceWritten(p));
    this.store.on('released', (p, late) => this.pieceReleased(p, late));
    this.store.on('error', (e) => this.fail(e));
    this.done = new Promise<void>((resolve, reject) => {
      this.resolveRun = resolve;
      this.rejectRun = reject;
    });
    // A failure with nobody awaiting yet must not become an unhandled rejection.
    this.done.catch(() => {});
  }

  /** Our peer id's key for the seeds' rendezvous (see seed-sparing.ts). */
  private readonly ownKey: number;

  /** Run until every piece is verified and on disk. The swarm keeps running until close(). */
  async run(): Promise<DownloadStats> {
    const onAbort = () => {
      const reason = this.opts.signal?.reason;
      this.fail(reason instanceof Error ? reason : new InterruptedError('SIGINT'));
    };
    if (this.opts.signal?.aborted) onAbort();
    this.opts.signal?.addEventListener('abort', onAbort, { once: true });
    this.detach.push(() => this.opts.signal?.removeEventListener('abort', onAbort));
    if (this.opts.ready) {
      this.gated = true;
      this.opts.ready.then(
        () => {
          this.gated = false;
          if (this.closed) return;
          this.startWebSeeds();
          this.wakeAll();
        },
        (e: unknown) => this.fail(e instanceof Error ? e : new Error(String(e))),
      );
    }
    this.startSources();
    if (this.picker.isComplete()) this.finish();
    try {
      await this.done;
      await this.store.flush();
      return this.stats();
    } catch (e) {
      // Stopping (Ctrl-C, a fault): no block more is taken while the writes in flight end; a
      // fast swarm otherwise went on until the torrent was complete.
      this.close();
      // Only the writes begun are waited for: with thousands of small files, those queued took
      // seconds after Ctrl-C (pieces a later run fetches again in less).
      const dropped = this.store.cancelQueued();
      if (dropped > 0) log('stopping: %d queued piece writes dropped', dropped);
      await this.store.flush().catch(() => {});
      throw e;
    }
  }

  private startSources(): void {
    this.lastTickAt = Date.now();
    this.ticker = setInterval(() => this.tick(), TICK_MS);
    this.chokeTimer = setInterval(() => this.rechoke(), CHOKE_INTERVAL_MS);
    const listener = this.opts.listener;
    if (listener) {
      const onPeer = (conn: PeerConnection) => this.incoming(conn);
      listener.on('peer', onPeer);
      this.detach.push(() => listener.off('peer', onPeer));
    }
    const sources: { source: PeerSource; origin: PeerOrigin; quiet?: boolean }[] = [
      ...(this.opts.sources ?? []),
    ];
    if (this.opts.tracker) sources.unshift({ source: this.opts.tracker, origin: 'tracker' });
    for (const { source, origin, quiet } of sources) {
      const onPeers = (peers: PeerAddress[]) => this.addPeers(peers, origin);
      // A helper source (the DHT beside trackers) that fails is not worth a warning.
      const onWarning = (message: string) =>
        quiet ? log('%s: %s', origin, message) : this.emit('warning', message);
      source.on('peers', onPeers);
      source.on('warning', onWarning);
      this.detach.push(() => {
        source.off('peers', onPeers);
        source.off('warning', onWarning);
      });
    }
    // Before any address is dialled, and with our listeners on the sources and the listener
    // already (the metadata phase's come off now): the connections we already have.
    if (this.opts.handoff) {
      receiveHandoff(this.opts.handoff, this.pool, {
        privateTorrent: this.meta.private === true,
        pieceCount: this.layout.pieceCount,
        admit: (conn, cand, extHandshake) => this.admit(conn, cand, extHandshake),
        fill: () => this.fill(),
      });
    }
    if (this.opts.magnetPeers) this.addPeers(this.opts.magnetPeers, 'magnet');
    if (this.opts.peers) this.addPeers(this.opts.peers, 'cli');
    if (!this.gated) this.startWebSeeds();
    for (const { source } of sources) source.start();
  }

  /** Stop the web seeds; what they read and no piece kept is wasted. */
  private stopWebSeeds(): void {
    if (!this.webSeeds) return;
    if (!this.webSeeds.usable()) this.webSeedsFailed = true;
    this.scheduler.waste.webSeed += this.webSeeds.bytesUnused;
    void this.webSeeds.stop();
    this.webSeeds = null;
  }

  /** Web seeds fetch whole pieces the picker reserves for them (see web-seed-feed.ts). */
  private startWebSeeds(): void {
    const urls = this.opts.webSeeds ?? [];
    if (urls.length === 0 || this.webSeeds || this.picker.isComplete()) return;
    this.webSeeds = startWebSeedFeed(urls, this.meta, this.layout, {
      picker: this.picker,
      takeBack: (p) => {
        const freed = new Set<Session>();
        for (let b = 0; b < p.blockCount; b++) {
          for (const o of this.scheduler.cancelElsewhere(p.index, b, null, this.reqs())) {
            const os = this.sessions.get(o.conn);
            if (os) freed.add(os);
          }
        }
        return () => {
          for (const os of freed) this.request(os);
        };
      },
      store: (p) => {
        this.everReady = true;
        this.watch.progress(Date.now());
        const ok = this.store.complete(p);
        if (ok) this.fromWebSeeds += this.padding ? this.padding.dataBytes(p.index) : p.size;
        return ok;
      },
      wake: () => this.wakeAll(),
      warn: (m) => this.emit('warning', m),
      fail: (e) => this.fail(e),
      limiter: this.readLimiter,
      localAddress: this.opts.localAddress,
      stallTimeoutMs: this.stallTimeoutMs,
      waste: this.scheduler.waste,
    });
  }

  /**
   * Start the pieces in [cursor, cursor + size) before any other, lowest index first (a stream
   * to stdout moves the cursor as it writes; see PiecePicker.setWindow).
   */
  setPriorityWindow(cursor: number, size: number): void {
    this.picker.setWindow(cursor, size);
  }

  /**
   * The stream waits on piece `index`: other peers may fetch its outstanding blocks too (see
   * PiecePicker.hurry). Nothing happens when the piece is not in progress.
   */
  hurry(index: number): void {
    if (this.complete || !this.picker.hurry(index)) return;
    log('piece %d holds the stream up: asking other peers too', index);
    this.wakeAll();
  }

  /** Upload at most `bytes` of payload, then call `reached` (`--seed-ratio`; UploadService.capTotal). */
  capUpload(bytes: number, reached: () => void): void {
    this.upload.capTotal(bytes, reached);
  }

  /** The download is complete: wait for it (resolves at once when it already is). */
  whenComplete(): Promise<void> {
    return this.done;
  }

  /** Wanted bytes not verified yet. */
  get missing(): number {
    return this.total - this.initial - this.downloaded;
  }

  /** Every wanted piece is verified and written (true from the last piece's `piece` event on). */
  get allWritten(): boolean {
    return this.picker.isComplete() && this.store.unwritten === 0;
  }

  get isComplete(): boolean {
    return this.complete;
  }

  stats(): DownloadStats {
    const now = Date.now();
    const bytes = this.lastSeconds.sum(now);
    const span = Math.max(1, Math.min(3_000, now - this.startedAt)) / 1000;
    let active = 0;
    let connected = 0;
    let served = 0;
    for (const s of this.sessions.values()) {
      if (s.ready || !this.sequential) connected++;
      if (now - s.req.recentBytes.lastAt < 3_000) active++;
      if (!s.conn.amChoking && s.conn.peerInterested) served++;
    }
    const w = this.scheduler.waste;
    return {
      total: this.total,
      completed: this.initial + this.downloaded,
      initial: this.initial,
      downloaded: this.downloaded,
      wasted: w.hashFailed + w.duplicate + w.afterCancel + w.webSeed,
      wastedBy: { ...w },
      piecesDone: this.picker.doneWanted,
      pieceCount: this.layout.pieceCount,
      rate: bytes / span,
      uploaded: this.upload.uploaded,
      uploadRate: this.upload.rate(now),
      served,
      connected,
      active,
      peersUsed: this.usedPeers.size,
      fromWebSeeds: this.fromWebSeeds,
      piecesReplaced: this.replaced,
      elapsedMs: now - this.startedAt,
      firstUnchokeMs: this.firstUnchokeAt > 0 ? this.firstUnchokeAt - this.startedAt : -1,
      heldBytes: this.picker.bytesInFlight,
      budgetBytes: this.picker.maxInflightBytes,
      ...(this.opts.dhtStats ? { dht: this.opts.dhtStats() } : {}),
    };
  }

  /**
   * Pieces of ours that no connected peer has, while peers take blocks from us (one sent within
   * the last 3 s) and one still wants some (interested): what leaving now would take from the
   * peers connected, for whom we may be the last source; 0 when nobody takes or wants anything.
   * A peer that completes says it wants nothing more even when it sends no `have` to a peer
   * that has the piece (tdl does not, nor do others by default). Never while the torrent has
   * web seeds, a seed is connected, or we left one as useless: the swarm has every piece then.
   * The torrent's web seeds count though this run did not use them (`--no-web-seeds`): the other
   * peers may; not when every one of them sent us bad pieces.
   */
  soleCopies(now = Date.now()): number {
    if (this.upload.rate(now) === 0 || this.seedAtEnd) return 0;
    // Web seeds serve every piece (the torrent's own, so present for every peer).
    if (this.meta.urlList.length > 0 && !this.webSeedsFailed) return 0;
    let wanted = false;
    for (const s of this.sessions.values()) {
      if (s.conn.bitfield.isComplete()) return 0;
      wanted ||= s.conn.peerInterested;
    }
    if (!wanted) return 0;
    const availability = this.picker.availability;
    let n = 0;
    for (let i = 0; i < this.layout.pieceCount; i++) {
      if (availability[i] === 0 && this.have.has(i)) n++;
    }
    return n;
  }

  /** Add peer addresses (duplicates and banned ones are ignored). */
  addPeers(peers: readonly PeerAddress[], origin: PeerOrigin = 'tracker'): void {
    this.pool.add(peers, origin);
    this.fill();
  }

  private fill(): void {
    if (this.closed) return;
    // Once complete, only a seed dials (it skips known seeds): leechers that announced before
    // it started do not know of it until their next announce, maybe half an hour away. Every
    // piece verified is complete enough: the last writes may take seconds (thousands of files),
    // and a peer dropped as useless then was dialled again.
    if ((this.complete || this.picker.isComplete()) && !this.opts.seeds) return;
    this.pool.fill(this.sessions.size, this.slots.target(this.sessions.size, this.starving()));
  }

  /**
   * No data for STARVED_MS (progress-watch.ts) while the download runs: whatever the peers
   * connected (none has a piece we need, each chokes us, or none sends), sources are asked
   * again, failed addresses retried, and one connection beyond `maxPeers` may show its pieces
   * (src/swarm/slots.ts).
   */
  private starving(now = Date.now()): boolean {
    return !this.complete && !this.picker.isComplete() && !this.closed && this.watch.starving(now);
  }

  private incoming(conn: PeerConnection): void {
    // One that replaces its twin takes that one's slot (admit): with every slot taken, refusing
    // it here kept our own dial while the peer, by the same rule, closed that one.
    const full = !this.slots.hasRoom(this.sessions.size, this.starving());
    if (this.closed || (full && !this.replacedTwin(conn))) {
      conn.close(this.closed ? 'shutting down' : 'no free peer slot');
      return;
    }
    const cand = this.pool.acceptIncoming(conn, this.sessions.keys());
    if (cand) this.admit(conn, cand);
  }

  /**
   * A handshaken connection, ours or theirs: take it, or close it when there is no room. A
   * metadata-only one (kept from a magnet's metadata phase) is adopted, its peer's extension
   * handshake (`extHandshake`, received before) read first.
   */
  private admit(conn: PeerConnection, cand: Candidate, extHandshake: Buffer | null = null): void {
    let twin = conn.state === 'open' && !this.closed ? twinOf(conn, this.sessions.values()) : null;
    const replaced = twin && replacesTwin(conn, twin, this.opts.peerId) ? twin : null;
    if (replaced) {
      // Both dialled at once: this one is kept on both sides, the other closed on both.
      this.drop(
        replaced,
        'already connected to this peer (both sides dialled: the other connection is kept)',
      );
      twin = null;
    }
    // The one replaced leaves its slot to this one, even the one beyond `maxPeers` a starving
    // download may have (which may be gone by now: the two would be lost).
    const room = replaced !== null || this.slots.hasRoom(this.sessions.size, this.starving());
    if (!room) twin = null;
    const banned = this.pool.isBannedPeer(conn);
    const refused = refusal(conn, { closed: this.closed, room, banned, twin });
    if (refused) {
      conn.close(refused);
      // Said where its `connecting` was (an incoming peer had none).
      if (conn.direction === 'out') {
        this.emit('peer', { address: conn.address, status: 'dropped', reason: refused });
      }
      turnAway(this.pool, conn, cand, refused, twin);
      return;
    }
    const ext = new PeerExtensions(conn, {
      info: this.meta.info,
      privateTorrent: this.meta.private,
      onPeers: (peers) => this.addPeers(peers, 'pex'),
      isOwn: (p) => this.isOwn(p),
      seenAt: (host) => this.opts.listener?.own?.learn(host),
    });
    const s = openSession(conn, cand, ext, Date.now());
    this.sessions.set(conn, s);
    this.slots.admitted(s, this.sessions.size);
    if (this.readLimiter) conn.limitReads(this.readLimiter);
    this.emit('peer', {
      address: conn.address,
      status: 'connected',
      source: cand.origin,
      encryption: conn.encryption,
    });
    this.upload.add(conn);

    if (this.sequential) {
      // The probe: every piece, then an unchoke, in time.
      s.readyTimer = setTimeout(() => {
        const why = !conn.bitfield.isComplete() ? 'does not have every piece' : 'did not unchoke';
        this.drop(s, `${why} within ${Math.round(this.peerTimeoutMs / 1000)}s`);
      }, this.peerTimeoutMs);
      s.readyTimer.unref();
    }

    conn.on('bitfield', () => {
      this.picker.peerHas(conn.bitfield);
      s.wanted = 0;
      for (let i = 0; i < conn.bitfield.size; i++)
        if (conn.bitfield.has(i) && this.picker.needs(i)) s.wanted++;
      this.interest(s);
    });
    conn.on('have', (index) => {
      s.lastHaveAt = Date.now();
      this.picker.peerHave(index);
      if (this.picker.needs(index)) s.wanted++;
      const touched = this.handOver(s, index);
      this.interest(s);
      for (const o of touched) {
        const os = this.sessions.get(o.conn);
        if (os) this.request(os);
      }
    });
    conn.on('unchoke', () => {
      log('%s unchoked us', conn.address);
      s.chokedSince = 0;
      if (this.firstUnchokeAt === 0) this.firstUnchokeAt = Date.now();
      this.scheduler.unchoked(s.req);
      this.request(s);
    });
    conn.on('choke', () => {
      log('%s choked us', conn.address);
      s.chokedSince = Date.now();
      // With the fast extension the peer rejects what it will not serve; without it, a choke
      // drops every request.
      if (!conn.fast) this.scheduler.releaseAll(s.req);
      // Every piece in, a seed's choke answers our not-interested: no reason to drop it.
      if (this.sequential && !this.picker.isComplete()) this.drop(s, 'choked us');
      else queueMicrotask(() => this.wakeAll());
    });
    conn.on('interest', () => {
      // A peer that wants something while a slot is free need not wait for the next round; one
      // we left unchoked when it lost interest, and whose slot went to another meanwhile, is
      // choked now rather than making one more than the slots until the next round. One we
      // unchoke that loses interest frees its slot for a peer waiting for one, now too (only
      // then: a peer flipping its interest costs one decision, after which it is choked).
      const slots = (this.opts.uploadSlots ?? DEFAULT_UPLOAD_SLOTS) + 1;
      if (slotsMoveOn(conn, this.sessions.values(), slots)) this.rechoke();
      this.checkUseless(s);
    });
    conn.on('reject', (index, begin) => {
      // Single-peer mode wants a peer that sends every piece: one that refuses a request while
      // it unchokes us gives its only slot up (a rejected piece would never come); the answer
      // to a cancel of ours does not.
      if (
        this.sequential &&
        !conn.peerChoking &&
        !s.req.allowedFast.has(index) &&
        !this.scheduler.answersCancel(s.req, index, begin)
      ) {
        this.drop(s, `rejected a request for piece ${index}`);
        return;
      }
      this.scheduler.onReject(s.req, index, begin);
      queueMicrotask(() => this.wakeAll());
    });
    conn.on('allowedFast', (index) => {
      if (s.req.allowedFast.size < 64) s.req.allowedFast.add(index);
      this.request(s);
    });
    conn.on('extended', (extId, payload) => this.onExtended(s, extId, payload));
    conn.on('block', (index, begin, data) => this.onBlock(s, index, begin, data));
    conn.on('drained', () => {
      const due = s.req.inflight.size;
      this.request(s);
      if (s.req.inflight.size <= due) this.acknowledge(s);
    });
    // Part of a block: nothing to ask for yet, but what came may need acknowledging.
    conn.on('partRead', () => this.acknowledge(s));
    conn.on('close', (reason) => this.onClose(s, reason));
    if (extHandshake && !this.onExtended(s, 0, extHandshake)) return;
    const hello = encodeExtendedHandshake(
      localExtendedHandshake({
        privateTorrent: this.meta.private,
        port: this.opts.listener?.port || undefined,
        version: CLIENT_NAME,
        reqq: MAX_QUEUE,
        metadataSize: this.meta.info.length,
      }),
    );
    if (conn.metadataOnly) conn.adopt(this.layout.pieceCount, this.have, hello);
    else conn.start(this.have, hello);
    this.upload.grantAllowedFast(conn, this.meta.infoHash);
  }

  /** The session `conn` replaces, both sides having dialled at once (see replacesTwin). */
  private replacedTwin(conn: PeerConnection): Session | null {
    if (conn.state !== 'open' || this.closed) return null;
    const twin = twinOf(conn, this.sessions.values());
    return twin && replacesTwin(conn, twin, this.opts.peerId) ? twin : null;
  }

  private interest(s: Session): void {
    const conn = s.conn;
    const useful = this.sequential ? conn.bitfield.isComplete() : s.wanted > 0;
    if (useful && !this.complete) {
      conn.interested();
      this.request(s);
    } else if (!useful && s.req.inflight.size === 0) {
      conn.notInterested();
    }
    this.checkUseless(s);
  }

  /** Neither side wants anything from the other: the slot is better used by someone else. */
  private checkUseless(s: Session): void {
    if (this.sequential) return;
    const why = uselessReason(
      s,
      Date.now(),
      this.have.isComplete(),
      this.complete,
      this.opts.timeouts?.idleWhileCompleteMs,
    );
    if (!why) return;
    // A seed we leave is still in the swarm (one that leaves us is not: see soleCopies).
    if (s.conn.bitfield.isComplete()) this.seedAtEnd = true;
    this.drop(s, why);
  }

  private request(s: Session): void {
    const conn = s.conn;
    if (this.closed || this.complete || conn.state !== 'open' || !conn.amInterested) return;
    if (this.sequential && !s.ready) {
      if (conn.peerChoking || !conn.bitfield.isComplete()) return;
    }
    if (!conn.peerChoking && !s.ready) {
      s.ready = true;
      this.everReady = true;
      if (s.readyTimer) clearTimeout(s.readyTimer);
      s.readyTimer = null;
      this.emit('peer', { address: conn.address, status: 'ready' });
    }
    // Until the first checkpoint is written no block is asked for; a peer that unchoked us is
    // ready all the same (its unchoke deadline is met).
    if (this.gated) return;
    this.scheduler.fill(
      s.req,
      s.req.goodPieces > 0 || ((index) => !this.trustedCanServe(index)),
      () => this.reqs(),
      () =>
        this.sequential ? {} : sparingHints(s, this.sessions.values(), this.ownKey, Date.now()),
    );
    if (s.req.inflight.size === 0 && s.wanted === 0) conn.notInterested();
  }

  /**
   * An extension message (id 0: the extension handshake, whose `reqq` caps our requests to the
   * peer). False when the message was bad, or the peer banned, and the peer dropped.
   */
  private onExtended(s: Session, extId: number, payload: Buffer): boolean {
    try {
      s.ext.onMessage(extId, payload);
    } catch (e) {
      this.drop(s, (e as Error).message);
      return false;
    }
    if (extId !== 0) return true;
    const reqq = s.ext.handshake?.reqq;
    if (reqq !== undefined) s.req.maxOut = Math.max(1, reqq);
    return this.holdListening(s);
  }

  /**
   * An incoming peer that told us where it listens: that address is held busy in the pool while
   * the peer is connected. Dialled again (a tracker or PEX report of it), it would be one peer
   * over two connections, and a client settling the pair by peer id may close the one we keep.
   * An address we are dialling already is left alone (`twinOf` settles that pair). A peer
   * that listens where a banned one does is that peer come back from another port (an incoming
   * connection's own port is new each time): it is closed, and false returned.
   */
  private holdListening(s: Session): boolean {
    const listen = s.ext.listenAddress;
    if (s.conn.direction !== 'in' || s.listening || !listen) return true;
    if (this.pool.candidates.get(formatPeerAddress(listen))?.banned) {
      this.drop(s, 'banned');
      return false;
    }
    s.listening = this.pool.holdListening(listen);
    return true;
  }

  private onBlock(s: Session, index: number, begin: number, data: Buffer): void {
    const r = this.scheduler.onBlock(s.req, index, begin, data);
    if (r.kind === 'fault') {
      this.drop(s, r.reason);
      return;
    }
    if (r.kind === 'waste') return;
    this.usedPeers.add(s.conn.address);
    if (this.blocksCount(s)) this.watch.progress(Date.now());
    if (r.duplicated) {
      const block = begin / BLOCK_SIZE;
      for (const o of this.scheduler.cancelElsewhere(index, block, s.req, this.reqs())) {
        const os = this.sessions.get(o.conn);
        if (os) this.request(os);
      }
    }
    if (r.piece) this.store.complete(r.piece);
    // More requests go out once the whole socket read is handled ('drained'): one write per batch.
  }

  /**
   * After a socket read from `s` that asked it nothing: with a few blocks still to come from it
   * and none left to ask of it (the end of the download, as far as it goes), answer at once. A
   * sender with Nagle's algorithm on (libtorrent) holds the rest of what we asked, less than a
   * TCP segment, until our side acknowledges what came; with nothing of ours to carry that
   * acknowledgement, our kernel waits its 40 ms delayed-ACK timer. One keep-alive carries it now.
   * Only at the end, where the wait was measured: sent whenever the memory budget held requests
   * back mid-download, they came to about 100 per 32 MiB, writes of their own, and on a fast
   * transfer a share of the control messages a tdl peer takes (see MAX_ACKS_PER_SECOND).
   */
  private acknowledge(s: Session): void {
    const left = s.req.inflight.size;
    if (left === 0 || left > ACK_WHEN_DUE || left >= s.req.depth >> 1) return;
    if (this.picker.endgame(s.conn.bitfield)) s.conn.acknowledge();
  }

  private *reqs(): Iterable<PeerRequests> {
    for (const s of this.sessions.values()) yield s.req;
  }

  /**
   * Whether the blocks `s` sends are progress for `--timeout`: not once FRUITLESS_PIECES pieces
   * in a row failed verification, unless `s` has sent a good piece. A peer that sends bad
   * pieces is banned, but may come back from another port with another peer id, again and
   * again: its blocks held a download that got nothing else open past `--timeout` for good.
   */
  private blocksCount(s: Session): boolean {
    return this.failedInRow < FRUITLESS_PIECES || s.req.goodPieces > 0;
  }

  private pieceFailed(p: PieceInProgress): void {
    this.failedInRow++;
    this.scheduler.waste.hashFailed += this.padding ? this.padding.dataBytes(p.index) : p.size;
    const culprits = new Set(p.deliveredBy.filter((x): x is string => x !== undefined));
    log('piece %d failed verification (from %s)', p.index, [...culprits].join(', '));
    // Only a piece that came whole from one peer proves that peer wrong. A mixed piece charges
    // no one (a liar could otherwise get honest peers banned) and is fetched again from a single
    // peer, so that a second failure has one culprit.
    this.picker.failed(p, culprits.size > 1);
    // Said before the ban it may bring: the failure, then what it led to. Naming who sent it
    // lets a reader of several peers' warnings tell which one sent bad data.
    this.emit(
      'warning',
      `piece ${p.index} failed verification${sentBy(culprits)}; fetching it again`,
    );
    const [only] = culprits;
    const s = culprits.size === 1 && only !== undefined ? this.byAddress(only) : undefined;
    if (s) {
      s.req.hashFailures++;
      if (s.req.hashFailures >= MAX_HASH_FAILURES)
        this.ban(s, `sent ${s.req.hashFailures} bad pieces`);
    }
    this.wakeAll();
  }

  private pieceVerified(p: PieceInProgress): void {
    this.failedInRow = 0;
    const from = p.deliveredBy[0];
    if (from !== undefined && p.deliveredBy.every((x) => x === from)) {
      const s = this.byAddress(from);
      if (s) s.req.goodPieces++;
    }
    // Servable from now on (the picker's `done` is our `have`): from its buffer until that is
    // released, then from disk.
    this.picker.verified(p);
    for (const s of this.sessions.values()) {
      // Peers that have the piece need no `have` for it (libtorrent's "lazy" haves).
      if (!s.conn.bitfield.has(p.index)) s.conn.have(p.index);
    }
    this.upload.pieceVerified(p.index);
    // Data bytes: padding was never fetched (nor is it counted in `total`).
    const got = this.padding ? this.padding.dataBytes(p.index) : p.size;
    this.downloaded += got;
    this.lastSeconds.add(Date.now(), got);
    this.watch.progress(Date.now());
    for (const s of this.sessions.values()) {
      if (s.conn.bitfield.has(p.index) && s.wanted > 0) {
        s.wanted--;
        if (s.wanted === 0) this.interest(s);
      }
    }
  }

  /** The piece's buffer is free: back to the pool, and out of the memory budget. */
  private pieceReleased(p: PieceInProgress, late: boolean): void {
    this.picker.written(p);
    // Released just before `written`, whose handler asks for more; a late one asks itself.
    if (late && !this.complete && !this.closed) this.wakeAll();
  }

  private pieceWritten(p: PieceInProgress): void {
    if (this.opts.replacing?.has(p.index)) this.replaced++;
    this.emit('piece', p.index);
    if (this.picker.isComplete() && this.store.unwritten === 0) {
      this.finish();
    } else this.wakeAll();
  }

  private finish(): void {
    if (this.complete) return;
    this.complete = true;
    this.stopWebSeeds();
    log('all %d pieces verified and written', this.layout.pieceCount);
    for (const s of this.sessions.values()) {
      log('%s: received %d, sent %d', s.conn.address, s.req.received, this.upload.sent(s.conn));
    }
    for (const s of [...this.sessions.values()]) {
      s.conn.notInterested();
      this.scheduler.releaseAll(s.req, true);
      this.checkUseless(s);
    }
    this.emit('complete');
    this.resolveRun();
    this.rechoke();
  }

  private fail(e: Error): void {
    // An interrupt (a signal, or stdout closed by its reader) ends the run even once complete;
    // any other failure then is only a warning.
    if (this.complete && !(e instanceof TdlError && e.kind === 'interrupted')) {
      // A disk fault while seeding ends the seeding (whoever waits on it listens), once: the
      // reads in flight that fail after it (their waiter has gone) say nothing more.
      if (this.faulted) return;
      if (e instanceof DiskError && this.listenerCount('fault') > 0) {
        this.faulted = true;
        this.emit('fault', e);
        return;
      }
      this.emit('warning', e.message);
      return;
    }
    this.rejectRun(e);
  }

  /** Requests freed (memory released, choke): give every idle peer a chance. */
  private wakeAll(): void {
    this.webSeeds?.wake();
    for (const s of this.sessions.values()) {
      if (s.req.inflight.size < s.req.depth) this.request(s);
    }
  }

  private ban(s: Session, reason: string): void {
    this.pool.ban(s.cand, s.conn);
    if (s.listening) s.listening.banned = true;
    this.emit('peer', { address: s.conn.address, status: 'banned', reason });
    s.conn.close(reason);
  }

  private drop(s: Session, reason: string): void {
    s.conn.close(reason);
  }

  private byAddress(address: string): Session | undefined {
    for (const s of this.sessions.values()) if (s.conn.address === address) return s;
    return undefined;
  }

  private onClose(s: Session, reason: string): void {
    if (this.sessions.get(s.conn) !== s) return;
    this.sessions.delete(s.conn);
    this.slots.gone(s);
    this.upload.remove(s.conn);
    if (s.readyTimer) clearTimeout(s.readyTimer);
    this.scheduler.releaseAll(s.req);
    this.picker.peerGone(s.conn.bitfield);
    // A seed is not dialled again once we are one too (PoolOptions.done).
    if (s.conn.bitfield.isComplete()) s.cand.seed = true;
    this.pool.released(s.cand, s.ready || !this.sequential);
    if (s.listening) this.pool.released(s.listening, s.ready || !this.sequential);
    this.lastFailure = `${s.conn.address}: ${reason}`;
    if (!s.cand.banned) this.emit('peer', { address: s.conn.address, status: 'dropped', reason });
    if (!this.closed) {
      queueMicrotask(() => this.wakeAll());
      this.fill();
      if (!s.conn.amChoking) this.rechoke();
    }
  }

  /** Every CHOKE_INTERVAL_MS (and when a slot frees): whom we upload to. */
  private rechoke(): void {
    if (this.closed) return;
    const now = Date.now();
    const peers = chokerView(this.sessions.values(), this.upload, now);
    const unchoke = this.choker.decide(now, peers, this.complete);
    for (const s of this.sessions.values()) {
      if (unchoke.has(s.conn.address)) {
        if (s.conn.amChoking) {
          s.conn.unchoke();
          this.upload.unchoked(s.conn);
        }
      } else if (!s.conn.amChoking && s.conn.peerInterested) {
        // A peer that lost interest stays unchoked (choking it saves nothing): when it wants a
        // piece again, it asks at once instead of waiting for our unchoke (a round trip each
        // time among peers that trade pieces as they get them). It is choked here once it is
        // interested and not chosen.
        s.conn.choke();
        this.upload.choked(s.conn);
      }
    }
  }

  /** An address of ours, as peers may list it (never dialled, never taken from PEX). */
  private isOwn(p: PeerAddress): boolean {
    return this.opts.listener?.own?.has(p) ?? false;
  }

  /** PEX: every peer hears about the others we are connected to (at most once a minute each). */
  private sharePeers(now: number): void {
    if (this.meta.private) return;
    const connected: (PeerAddress & { flags: number })[] = [];
    for (const s of this.sessions.values()) {
      const a = s.ext.listenAddress;
      if (a) connected.push({ ...a, flags: pexFlags(s.conn) });
    }
    for (const s of this.sessions.values()) s.ext.sharePeers(now, connected);
  }

  private tick(): void {
    if (this.closed) return;
    const now = Date.now();
    const gap = now - this.lastTickAt - TICK_MS;
    this.lastTickAt = now;
    if (gap > PAUSE_GAP_MS) {
      // Woken: due timers run before the sockets are read, so what the peers sent meanwhile is
      // still unread. This tick judges no one.
      log('no tick for %d ms (the process was stopped): nobody is judged on that time', gap);
      for (const s of this.sessions.values()) this.scheduler.paused(s.req, gap);
      this.watch.paused(gap);
      return;
    }
    this.upload.tick(now);
    this.sharePeers(now);
    if (this.complete) {
      // Peers that stopped wanting anything from us make way for those that will.
      for (const s of [...this.sessions.values()]) this.checkUseless(s);
      if (this.opts.seeds) {
        this.fill();
        // Alone, with only the addresses given by hand (no tracker brings new ones): each gets
        // another try, as a starving download's do (a peer that was not up yet). Only those:
        // a peer the DHT or PEX named and that has left would be dialled every 10 s for good
        // (the source names it again if it comes back).
        const alone = this.sessions.size === 0 && this.pool.connecting === 0;
        if (alone && !this.opts.tracker && this.pool.dialable() === 0) this.pool.retryAll(BY_HAND);
      }
      return;
    }
    // Block bytes still arriving count as progress once there are enough (progress-watch.ts);
    // whether a peer that trickles is worth keeping is its own checks' call.
    let blockBytes = 0;
    for (const s of [...this.sessions.values()]) {
      const seen = s.conn.blockBytesIn;
      if (this.blocksCount(s)) blockBytes += seen - s.blockBytesSeen;
      s.blockBytesSeen = seen;
      // Single-peer mode gives a trickle's slot up only to an address that waits for it (the
      // peer's own is busy: hopeful() counted it, and a lone seeder frozen 15 s was dropped).
      const verdict = this.scheduler.check(s.req, now, this.sequential && this.pool.dialable() > 0);
      if (verdict && typeof verdict === 'object') {
        this.drop(s, verdict.drop);
        continue;
      }
      if (verdict === 'snubbed' || verdict === 'expired') this.wakeAll();
      if (s.req.inflight.size < s.req.depth) this.request(s);
    }
    const webBytes = this.webSeeds?.progressBytes ?? 0;
    this.watch.tick(now, blockBytes, webBytes, this.readLimiter?.paused === true);
    this.picker.maxInflightBytes = memoryBudget(this.sessions.values(), this.layout.pieceLength);
    // A priority window (a stream): slow peers are kept out of it at each tick.
    const live = [...this.sessions.values()];
    const w = this.picker.window;
    if (w.start < w.end) this.picker.setWindowSkip(slowForWindow(live, now));
    const room = this.slots.toDrop(live, now, () => this.pool.untried());
    if (room) this.drop(room.session, room.reason);
    this.fill();
    const starved = this.sessions.size === 0 || (!this.sequential && this.starving(now));
    if (this.pool.connecting === 0 && starved) {
      this.opts.tracker?.requestMore();
      for (const { source } of this.opts.sources ?? []) source.requestMore();
      // Give failed addresses another try once everything else is exhausted. Peers still
      // connected that send nothing do not count: a seeder that restarted on its address after
      // its retries ran out was never dialled again while a partial peer with nothing for us
      // kept a slot. With a tracker too: it lists them again only at its next announce, which
      // its `min interval` may put half an hour away.
      const left = this.sequential ? this.pool.hopeful() : this.pool.dialable();
      if (left === 0) this.pool.retryAll();
    }
    if (this.watch.stalled(now, this.stallTimeoutMs)) {
      const facts = this.stallFacts();
      this.fail(
        !this.everReady && this.downloaded === 0
          ? noPeersError(facts, this.stallTimeoutMs)
          : stalledError(facts, this.stallTimeoutMs),
      );
    }
  }

  /**
   * Peer `q` announced piece `index`: if we are fetching it from seeds it can stand in for, the
   * rest of the piece comes from `q` and the seeds' requests are cancelled. Returns the peers
   * whose requests were taken back (to be given other work).
   */
  private handOver(q: Session, index: number): PeerRequests[] {
    if (this.sequential || this.complete || !this.picker.inProgress.has(index)) return [];
    if (!q.ready || q.conn.peerChoking || q.conn.bitfield.isComplete()) return [];
    return this.scheduler.handOver(index, q.req, this.reqs(), (o) => {
      const os = this.sessions.get(o.conn);
      return os !== undefined && os.conn.bitfield.isComplete() && standsIn(q, os);
    });
  }

  /**
   * Can a peer that has delivered good pieces on its own fetch this piece now (it has it and
   * does not choke us)? A piece that failed with several contributors waits for such a peer;
   * when none can serve it, any peer that has it may take it alone, or it would wait for good.
   */
  private trustedCanServe(index: number): boolean {
    for (const s of this.sessions.values()) {
      if (s.req.goodPieces > 0 && s.ready && !s.conn.peerChoking && s.conn.bitfield.has(index)) {
        return true;
      }
    }
    return false;
  }

  /** What the errors of a download that gets nothing say (see stall-report.ts). */
  private stallFacts(): StallFacts {
    return {
      sessions: this.sessions.values(),
      candidates: this.pool.candidates.size,
      otherFamily: this.pool.otherFamily,
      own: this.pool.ownSkipped.size,
      lastFailure: this.lastFailure,
      tracker: this.opts.tracker,
      sources: this.opts.sources ?? [],
      webSeeds: this.webSeeds,
      needed: neededPieces(this.picker, this.layout.pieceCount),
    };
  }

  /**
   * End every connection and timer (idempotent). Trackers are the caller's. A connection that
   * was sent blocks is ended gracefully (see PeerConnection.close), waiting `drainMs` at most
   * for the peer to close its side.
   */
  close(drainMs = END_GRACE_MS): Promise<void> {
    if (this.closed) return this.ended;
    this.closed = true;
    if (this.ticker) clearInterval(this.ticker);
    if (this.chokeTimer) clearInterval(this.chokeTimer);
    this.ticker = null;
    this.chokeTimer = null;
    for (const d of this.detach) d();
    this.detach = [];
    const ending: Promise<void>[] = [];
    for (const s of [...this.sessions.values()]) {
      if (s.readyTimer) clearTimeout(s.readyTimer);
      // Ended gracefully: the blocks sent (and counted as uploaded) reach the peer.
      s.conn.close('run ended', drainMs);
      ending.push(s.conn.closed());
    }
    this.ended = Promise.all(ending).then(() => {});
    this.pool.close();
    this.stopWebSeeds();
    this.upload.close();
    this.readLimiter?.close();
    if (!this.complete) this.rejectRun(new InterruptedError('SIGINT'));
    return this.ended;
  }
}

/** ` (from A)`, ` (blocks from A and B)`: who sent a piece's blocks, up to 3 named. */
function sentBy(addresses: ReadonlySet<string>): string {
  const all = [...addresses];
  if (all.length === 0) return '';
  if (all.length === 1) return ` (from ${all[0]})`;
  const named = all.slice(0, 3);
  const rest = all.length - named.length;
  const list =
    rest > 0
      ? `${named.join(', ')} and ${rest} more`
      : `${named.slice(0, -1).join(', ')} and ${named.at(-1)}`;
  return ` (blocks from ${list})`;
}
