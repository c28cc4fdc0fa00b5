/**
 * The download orchestrator: peers in, verified pieces out.
 *
 * It keeps a list of candidate peer addresses (from trackers or the command line), keeps up to
 * `maxPeers` connections open, asks each unchoked peer for blocks chosen by the piece picker with
 * a per-peer pipeline depth, verifies every completed piece with SHA-1 and hands good pieces to
 * storage. With `maxPeers: 1` it is the sequential probe of the core design: a peer must complete
 * the handshake, show every piece and unchoke within `peerTimeoutMs`, or the next one is tried.
 *
 * Nothing a peer does is fatal: bad data, protocol errors, stalls and disconnects cost that peer
 * its connection (and, after repeated bad pieces, its place in this run). The download fails only
 * when no verified data arrives for `stallTimeoutMs`.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import createDebug from 'debug';
import pLimit from 'p-limit';
import { InterruptedError, NoPeersError, TransferError } from '../errors.js';
import { pieceHash, type Metainfo } from '../metainfo/torrent.js';
import { PeerConnection, type PeerTimeouts } from '../peer/connection.js';
import type { DiskStorage } from '../storage/disk.js';
import type { Layout } from '../storage/layout.js';
import { formatPeerAddress, type PeerAddress } from '../tracker/types.js';
import { Bitfield } from '../wire/bitfield.js';
import { BLOCK_SIZE } from '../wire/messages.js';
import { BLOCKS_PER_PIECE_KEY, PiecePicker, type PieceInProgress } from './picker.js';
import { Pipeline } from './pipeline.js';

const log = createDebug('tdl:swarm');

export const DEFAULT_MAX_PEERS = 30;
/** Connection attempts under way at once. */
export const CONNECT_CONCURRENCY = 8;
/**
 * Memory for pieces being downloaded or waiting for the disk: the budget follows what the
 * peers' pipelines need (twice their queued bytes, plus a piece per peer and a few for the disk),
 * within these bounds.
 */
export const MIN_INFLIGHT_BYTES = 4 * 1024 * 1024;
export const MAX_INFLIGHT_BYTES = 64 * 1024 * 1024;

/** The in-flight memory budget for ready peers with these pipeline depths (in blocks). */
export function inflightBudget(depths: readonly number[], pieceLength: number): number {
  const queued = depths.reduce((sum, d) => sum + d * BLOCK_SIZE, 0);
  const want = 2 * queued + (depths.length + 4) * pieceLength;
  return Math.max(MIN_INFLIGHT_BYTES, Math.min(MAX_INFLIGHT_BYTES, want));
}
/** A peer with requests outstanding that sends no block for this long is snubbed. */
export const SNUB_TIMEOUT_MS = 10_000;
/** Bad pieces a peer may send before it is dropped for the rest of the run. */
export const MAX_HASH_FAILURES = 2;
/** A peer address that failed is tried again after this long, at most MAX_CONNECT_ATTEMPTS times. */
export const RETRY_DELAY_MS = 3_000;
export const MAX_CONNECT_ATTEMPTS = 3;
/** A request not answered within this long (while the peer answers others) is given to others. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** Released or cancelled requests remembered per peer, so their late blocks are not errors. */
export const MAX_CANCELLED_REMEMBERED = 4096;
/** Most candidate addresses remembered. */
export const MAX_CANDIDATES = 2_000;
const TICK_MS = 500;

/** Where peer addresses come from (the tracker announcer): emits 'peers' and 'warning'. */
export interface PeerSource extends EventEmitter {
  start(): void;
  requestMore(): void;
  complete(): Promise<void>;
  stop(): Promise<void>;
  /** The last failure of each tracker that is failing, for the final error message. */
  readonly failures: readonly { url: string; message: string }[];
}

export interface DownloadOptions {
  meta: Metainfo;
  layout: Layout;
  storage: DiskStorage;
  peerId: Buffer;
  /** Pieces already verified on disk. */
  have?: Bitfield;
  /** Pieces whose bytes on disk are other data: counted in `piecesReplaced` once rewritten. */
  replacing?: Bitfield;
  peers?: PeerAddress[];
  tracker?: PeerSource;
  maxPeers?: number;
  /** Handshake, bitfield and unchoke must each come within this. */
  peerTimeoutMs?: number;
  /** Give up when no verified data arrives for this long. */
  stallTimeoutMs?: number;
  /** Other timeouts (tests): the peer connection's, and `requestMs` (REQUEST_TIMEOUT_MS). */
  timeouts?: Partial<PeerTimeouts> & { requestMs?: number };
  signal?: AbortSignal;
}

export interface PeerEvent {
  address: string;
  status: 'connecting' | 'connected' | 'ready' | 'dropped' | 'banned';
  reason?: string;
}

export interface DownloadStats {
  total: number;
  /** Verified bytes, including what was on disk at the start. */
  completed: number;
  /** Bytes present at the start. */
  initial: number;
  /** Verified bytes fetched in this run. */
  downloaded: number;
  /** Bytes received that were thrown away (bad pieces, duplicates). */
  wasted: number;
  piecesDone: number;
  pieceCount: number;
  /** Bytes per second over the last few seconds. */
  rate: number;
  connected: number;
  /** Peers that sent data in the last few seconds. */
  active: number;
  peersUsed: number;
  piecesReplaced: number;
  elapsedMs: number;
}

export interface DownloadEvents {
  peer: [PeerEvent];
  piece: [index: number];
  warning: [message: string];
}

interface Candidate {
  host: string;
  port: number;
  address: string;
  attempts: number;
  notBefore: number;
  banned: boolean;
  busy: boolean;
}

interface Session {
  conn: PeerConnection;
  cand: Candidate;
  pipeline: Pipeline;
  /** Request key -> time sent. */
  inflight: Map<number, number>;
  /** Keys cancelled recently: a late block for them is not a protocol error. */
  cancelled: Set<number>;
  ready: boolean;
  readyTimer: NodeJS.Timeout | null;
  lastBlockAt: number;
  hashFailures: number;
  /** Pieces this peer delivered alone that verified: it may re-fetch pieces that failed. */
  goodPieces: number;
  /** Whole blocks received since the peer became ready or was last snubbed. */
  blocksSinceSnub: number;
}

export class Download extends EventEmitter<DownloadEvents> {
  private readonly meta: Metainfo;
  private readonly layout: Layout;
  private readonly storage: DiskStorage;
  private readonly picker: PiecePicker;
  private readonly maxPeers: number;
  private readonly sequential: boolean;
  private readonly peerTimeoutMs: number;
  private readonly stallTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly candidates = new Map<string, Candidate>();
  private readonly sessions = new Map<string, Session>();
  private readonly handshaking = new Set<PeerConnection>();
  private readonly limit = pLimit(CONNECT_CONCURRENCY);
  private connecting = 0;
  private readonly startedAt = Date.now();
  private lastProgressAt = Date.now();
  private downloaded = 0;
  private wasted = 0;
  private replaced = 0;
  private readonly initial: number;
  private readonly usedPeers = new Set<string>();
  private readonly rateSamples: { t: number; bytes: number }[] = [];
  private ticker: NodeJS.Timeout | null = null;
  private finished = false;
  private everReady = false;
  private lastFailure = '';
  private resolveRun!: () => void;
  private rejectRun!: (e: Error) => void;
  private readonly writes = new Set<Promise<void>>();
  private writing = 0;

  constructor(private readonly opts: DownloadOptions) {
    super();
    this.meta = opts.meta;
    this.layout = opts.layout;
    this.storage = opts.storage;
    const have = opts.have ?? new Bitfield(this.layout.pieceCount);
    this.initial = bytesOf(this.layout, have);
    this.picker = new PiecePicker(this.layout, have, MIN_INFLIGHT_BYTES);
    this.maxPeers = Math.max(1, opts.maxPeers ?? DEFAULT_MAX_PEERS);
    this.sequential = this.maxPeers === 1;
    this.peerTimeoutMs = opts.peerTimeoutMs ?? 15_000;
    this.stallTimeoutMs = opts.stallTimeoutMs ?? 120_000;
    this.requestTimeoutMs = opts.timeouts?.requestMs ?? REQUEST_TIMEOUT_MS;
  }

  /** Run to completion. Resolves when every piece is verified and on disk. */
  async run(): Promise<DownloadStats> {
    const done = new Promise<void>((resolve, reject) => {
      this.resolveRun = resolve;
      this.rejectRun = reject;
    });
    const onAbort = () => {
      const reason = this.opts.signal?.reason;
      this.fail(reason instanceof Error ? reason : new InterruptedError('SIGINT'));
    };
    if (this.opts.signal?.aborted) onAbort();
    this.opts.signal?.addEventListener('abort', onAbort, { once: true });
    const tracker = this.opts.tracker;
    const onPeers = (peers: PeerAddress[]) => this.addPeers(peers);
    const onWarning = (message: string) => this.emit('warning', message);
    tracker?.on('peers', onPeers);
    tracker?.on('warning', onWarning);
    try {
      if (this.picker.isComplete()) {
        this.finished = true;
        this.resolveRun();
      } else {
        this.ticker = setInterval(() => this.tick(), TICK_MS);
        if (this.opts.peers) this.addPeers(this.opts.peers);
        tracker?.start();
      }
      await done;
      await this.flushWrites();
      if (tracker) await tracker.complete().catch(() => {});
      return this.stats();
    } catch (e) {
      await this.flushWrites().catch(() => {});
      throw e;
    } finally {
      this.opts.signal?.removeEventListener('abort', onAbort);
      this.shutdown();
      tracker?.off('peers', onPeers);
      tracker?.off('warning', onWarning);
      if (tracker) await tracker.stop().catch(() => {});
    }
  }

  stats(): DownloadStats {
    const now = Date.now();
    const horizon = now - 3_000;
    while (this.rateSamples.length > 0 && this.rateSamples[0]!.t < horizon)
      this.rateSamples.shift();
    let bytes = 0;
    for (const s of this.rateSamples) bytes += s.bytes;
    const span = Math.max(1, Math.min(3_000, now - this.startedAt)) / 1000;
    let active = 0;
    let connected = 0;
    for (const s of this.sessions.values()) {
      if (s.ready) connected++;
      if (now - s.lastBlockAt < 3_000) active++;
    }
    const piecesDone = this.picker.done.count;
    return {
      total: this.layout.totalLength,
      completed: this.initial + this.downloaded,
      initial: this.initial,
      downloaded: this.downloaded,
      wasted: this.wasted,
      piecesDone,
      pieceCount: this.layout.pieceCount,
      rate: bytes / span,
      connected,
      active,
      peersUsed: this.usedPeers.size,
      piecesReplaced: this.replaced,
      elapsedMs: now - this.startedAt,
    };
  }

  /** Add peer addresses (duplicates and banned ones are ignored). */
  addPeers(peers: readonly PeerAddress[]): void {
    let added = 0;
    for (const p of peers) {
      if (this.candidates.size >= MAX_CANDIDATES) break;
      const address = formatPeerAddress(p);
      const known = this.candidates.get(address);
      if (known) {
        // A fresh tracker reply gives a failed peer another chance.
        if (!known.banned && !known.busy && known.attempts >= MAX_CONNECT_ATTEMPTS) {
          known.attempts = MAX_CONNECT_ATTEMPTS - 1;
        }
        continue;
      }
      this.candidates.set(address, {
        host: p.host,
        port: p.port,
        address,
        attempts: 0,
        notBefore: 0,
        banned: false,
        busy: false,
      });
      added++;
    }
    if (added > 0) log('%d new peer addresses (%d known)', added, this.candidates.size);
    this.fill();
  }

  private fill(): void {
    if (this.finished) return;
    const now = Date.now();
    for (const c of this.candidates.values()) {
      if (this.sessions.size + this.connecting >= this.maxPeers) return;
      if (c.busy || c.banned || c.attempts >= MAX_CONNECT_ATTEMPTS || c.notBefore > now) continue;
      c.busy = true;
      c.attempts++;
      this.connecting++;
      void this.limit(() => this.connect(c)).finally(() => {
        this.connecting--;
      });
    }
  }

  private async connect(c: Candidate): Promise<void> {
    if (this.finished) {
      c.busy = false;
      return;
    }
    const conn = new PeerConnection({
      host: c.host,
      port: c.port,
      infoHash: this.meta.infoHash,
      peerId: this.opts.peerId,
      pieceCount: this.layout.pieceCount,
      timeouts: {
        connectMs: this.opts.timeouts?.connectMs,
        handshakeMs: this.opts.timeouts?.handshakeMs ?? this.peerTimeoutMs,
        idleMs: this.opts.timeouts?.idleMs,
      },
    });
    this.emit('peer', { address: c.address, status: 'connecting' });
    this.handshaking.add(conn);
    try {
      await conn.connect();
    } catch (e) {
      c.busy = false;
      c.notBefore = Date.now() + RETRY_DELAY_MS;
      const reason = e instanceof Error ? e.message : String(e);
      this.lastFailure = `${c.address}: ${reason}`;
      this.emit('peer', { address: c.address, status: 'dropped', reason });
      this.fill();
      return;
    } finally {
      this.handshaking.delete(conn);
    }
    if (this.finished) {
      conn.close('download finished');
      c.busy = false;
      return;
    }
    this.attach(c, conn);
  }

  private attach(c: Candidate, conn: PeerConnection): void {
    const now = Date.now();
    const s: Session = {
      conn,
      cand: c,
      pipeline: new Pipeline(now),
      inflight: new Map(),
      cancelled: new Set(),
      ready: false,
      readyTimer: null,
      lastBlockAt: 0,
      hashFailures: 0,
      blocksSinceSnub: 0,
      goodPieces: 0,
    };
    this.sessions.set(c.address, s);
    this.emit('peer', { address: c.address, status: 'connected' });

    // The probe: every piece (sequential mode) or anything we need, then an unchoke, in time.
    s.readyTimer = setTimeout(() => {
      const why = !this.peerUseful(s)
        ? this.sequential
          ? 'does not have every piece'
          : 'has no piece we need'
        : 'did not unchoke';
      this.drop(s, `${why} within ${Math.round(this.peerTimeoutMs / 1000)}s`);
    }, this.peerTimeoutMs);
    s.readyTimer.unref();

    const availability = () => {
      if (!this.peerUseful(s)) return;
      if (this.picker.interesting(conn.bitfield)) conn.interested();
      this.request(s);
    };
    conn.on('bitfield', () => {
      this.picker.peerHas(conn.bitfield);
      availability();
    });
    conn.on('have', (index) => {
      this.picker.peerHave(index);
      // A piece we lack makes the peer useful (in single-peer mode, once it has them all).
      if (this.picker.done.has(index) || (this.sequential && !conn.bitfield.isComplete())) return;
      conn.interested();
      this.request(s);
    });
    conn.on('unchoke', () => {
      log('%s unchoked us', conn.address);
      this.request(s);
    });
    conn.on('choke', () => {
      log('%s choked us', conn.address);
      this.releaseAll(s);
      if (this.sequential) this.drop(s, 'choked us');
    });
    conn.on('block', (index, begin, data) => this.onBlock(s, index, begin, data));
    conn.on('drained', () => this.request(s));
    conn.on('close', (reason) => this.onClose(s, reason));
    conn.start();
  }

  /** In sequential mode a peer must have everything; otherwise anything we still need. */
  private peerUseful(s: Session): boolean {
    const bf = s.conn.bitfield;
    if (this.sequential) return bf.isComplete();
    return this.picker.interesting(bf);
  }

  private request(s: Session): void {
    const conn = s.conn;
    if (this.finished || conn.state !== 'open' || conn.peerChoking || !conn.amInterested) return;
    if (!s.ready) {
      s.ready = true;
      this.everReady = true;
      if (s.readyTimer) clearTimeout(s.readyTimer);
      s.readyTimer = null;
      this.emit('peer', { address: conn.address, status: 'ready' });
    }
    const want = s.pipeline.depth - s.inflight.size;
    // Refill in batches, when half the pipeline is free: a write per block would cost a system
    // call per 16 KiB.
    if (want <= 0 || (s.inflight.size > 0 && want < s.pipeline.depth >> 1)) {
      return;
    }
    const blocks = this.picker.pick(
      conn.address,
      conn.bitfield,
      want,
      (k) => s.inflight.has(k),
      s.inflight.size,
      s.goodPieces > 0 || !this.anyTrusted(),
    );
    if (blocks.length === 0) {
      if (s.inflight.size === 0 && !this.picker.interesting(conn.bitfield)) conn.notInterested();
      return;
    }
    const now = Date.now();
    for (const b of blocks) s.inflight.set(b.index * BLOCKS_PER_PIECE_KEY + b.block, now);
    if (s.lastBlockAt === 0) s.lastBlockAt = now;
    conn.request(blocks);
  }

  private onBlock(s: Session, index: number, begin: number, data: Buffer): void {
    const conn = s.conn;
    const block = begin / BLOCK_SIZE;
    const key = index * BLOCKS_PER_PIECE_KEY + block;
    if (!Number.isInteger(block) || !s.inflight.has(key)) {
      if (Number.isInteger(block) && s.cancelled.delete(key)) {
        this.wasted += data.length;
        return;
      }
      this.drop(s, `sent a block we did not request (piece ${index}, offset ${begin})`);
      return;
    }
    const expected =
      index < this.layout.pieceCount && begin < this.layout.pieceSize(index)
        ? Math.min(BLOCK_SIZE, this.layout.pieceSize(index) - begin)
        : -1;
    if (data.length !== expected) {
      this.drop(s, `sent a block of ${data.length} bytes, expected ${expected}`);
      return;
    }
    s.inflight.delete(key);
    s.blocksSinceSnub++;
    s.lastBlockAt = Date.now();
    s.pipeline.onBlock(data.length);
    this.usedPeers.add(conn.address);
    const duplicated = this.picker.requestedTwice(index, block);
    const r = this.picker.receive(index, block, data, conn.address);
    if (r === 'dup' || r === 'stale') {
      this.wasted += data.length;
      return;
    }
    if (duplicated) this.cancelBlockElsewhere(key, s);
    if (r) this.pieceComplete(r);
    // More requests go out once the whole socket read is handled ('drained'): one write per batch.
  }

  /** Endgame: the block arrived from one peer, so the other requesters are told to cancel. */
  private cancelBlockElsewhere(key: number, from: Session): void {
    for (const o of this.sessions.values()) {
      if (o === from || !o.inflight.has(key)) continue;
      this.withdraw(o, key, true);
      log('%s cancel piece %d (endgame)', o.conn.address, Math.floor(key / BLOCKS_PER_PIECE_KEY));
      this.request(o);
    }
  }

  /**
   * Take a request back from a peer: the block is free for the picker again (unless it arrived
   * meanwhile), and a block that still comes for it is waste, not a protocol error. With
   * `cancel`, the peer is told.
   */
  private withdraw(s: Session, key: number, cancel: boolean): void {
    const index = Math.floor(key / BLOCKS_PER_PIECE_KEY);
    const block = key % BLOCKS_PER_PIECE_KEY;
    s.inflight.delete(key);
    this.picker.release(index, block);
    s.cancelled.add(key);
    if (s.cancelled.size > MAX_CANCELLED_REMEMBERED) {
      // Sets iterate in insertion order: forget the oldest.
      s.cancelled.delete(s.cancelled.values().next().value as number);
    }
    if (cancel) {
      s.conn.cancel(index, block * BLOCK_SIZE, this.layout.blockSize(index, block, BLOCK_SIZE));
    }
  }

  /** Every block of a piece is in: verify it (SHA-1, about 0.15 ms per 256 KiB), then write it. */
  private pieceComplete(p: PieceInProgress): void {
    const digest = createHash('sha1').update(p.buffer).digest();
    if (!digest.equals(pieceHash(this.meta, p.index))) {
      this.pieceFailed(p);
      return;
    }
    this.writing++;
    const job = this.pieceVerified(p);
    this.writes.add(job);
    void job.finally(() => this.writes.delete(job));
  }

  private pieceFailed(p: PieceInProgress): void {
    this.wasted += p.size;
    const culprits = new Set(p.deliveredBy.filter((x): x is string => x !== undefined));
    log('piece %d failed verification (from %s)', p.index, [...culprits].join(', '));
    // Only a piece that came whole from one peer proves that peer wrong. A mixed piece charges
    // no one (a liar could otherwise get honest peers banned) and is fetched again from a single
    // peer, so that a second failure has one culprit.
    this.picker.failed(p, culprits.size > 1);
    const [only] = culprits;
    const s = culprits.size === 1 && only !== undefined ? this.sessions.get(only) : undefined;
    if (s) {
      s.hashFailures++;
      if (s.hashFailures >= MAX_HASH_FAILURES) this.ban(s, `sent ${s.hashFailures} bad pieces`);
    }
    this.emit('warning', `piece ${p.index} failed verification; fetching it again`);
    this.wakeAll();
  }

  private async pieceVerified(p: PieceInProgress): Promise<void> {
    const from = p.deliveredBy[0];
    if (from !== undefined && p.deliveredBy.every((x) => x === from)) {
      const s = this.sessions.get(from);
      if (s) s.goodPieces++;
    }
    this.picker.verified(p);
    this.downloaded += p.size;
    this.rateSamples.push({ t: Date.now(), bytes: p.size });
    this.lastProgressAt = Date.now();
    try {
      await this.storage.writePiece(p.index, p.buffer);
    } catch (e) {
      this.writing--;
      this.fail(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    this.writing--;
    this.picker.written(p);
    if (this.opts.replacing?.has(p.index)) this.replaced++;
    this.emit('piece', p.index);
    if (this.picker.isComplete() && this.writing === 0) this.finish();
    else this.wakeAll();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    log('all %d pieces verified', this.layout.pieceCount);
    this.resolveRun();
  }

  private fail(e: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.rejectRun(e);
  }

  /** Requests freed (memory released, choke): give every idle peer a chance. */
  private wakeAll(): void {
    for (const s of this.sessions.values()) {
      if (s.inflight.size < s.pipeline.depth) this.request(s);
    }
  }

  /**
   * Free every request in flight to a peer (choke, snub, disconnect). With `cancel`, the peer is
   * told so; either way a block that still arrives for them is wasted, not a protocol error.
   */
  private releaseAll(s: Session, cancel = false): void {
    for (const key of [...s.inflight.keys()]) this.withdraw(s, key, cancel);
    this.picker.unclaim(s.conn.address);
    if (!this.finished) queueMicrotask(() => this.wakeAll());
  }

  private ban(s: Session, reason: string): void {
    s.cand.banned = true;
    this.emit('peer', { address: s.conn.address, status: 'banned', reason });
    s.conn.close(reason);
  }

  private drop(s: Session, reason: string): void {
    s.conn.close(reason);
  }

  private onClose(s: Session, reason: string): void {
    if (this.sessions.get(s.cand.address) !== s) return;
    this.sessions.delete(s.cand.address);
    if (s.readyTimer) clearTimeout(s.readyTimer);
    this.releaseAll(s);
    this.picker.peerGone(s.conn.bitfield);
    s.cand.busy = false;
    s.cand.notBefore = Date.now() + RETRY_DELAY_MS;
    // A peer that was useful may come back; one that never got ready has had its chance.
    if (!s.ready) s.cand.attempts = Math.max(s.cand.attempts, MAX_CONNECT_ATTEMPTS - 1);
    this.lastFailure = `${s.conn.address}: ${reason}`;
    if (!s.cand.banned) this.emit('peer', { address: s.conn.address, status: 'dropped', reason });
    if (!this.finished) this.fill();
  }

  private tick(): void {
    if (this.finished) return;
    const now = Date.now();
    for (const s of this.sessions.values()) {
      s.pipeline.tick(now);
      if (s.inflight.size > 0 && now - s.lastBlockAt > SNUB_TIMEOUT_MS) {
        // A peer that sent not one whole block in that time (a trickle, or nothing) gives its
        // slot up; one that was useful before is snubbed and measured again.
        if (this.sequential || s.blocksSinceSnub === 0) {
          this.drop(s, `sent no data for ${SNUB_TIMEOUT_MS / 1000}s`);
          continue;
        }
        log('%s snubbed: no block for %dms', s.conn.address, now - s.lastBlockAt);
        s.pipeline.snubbed();
        s.blocksSinceSnub = 0;
        this.releaseAll(s, true);
        s.lastBlockAt = now;
        continue;
      }
      this.expireRequests(s, now);
      if (s.inflight.size < s.pipeline.depth) this.request(s);
    }
    this.picker.maxInflightBytes = this.memoryBudget();
    this.fill();
    const usable = this.sessions.size + this.connecting;
    if (usable === 0 || (this.sequential && this.sessions.size === 0)) {
      this.opts.tracker?.requestMore();
      // Give failed addresses another try once everything else is exhausted.
      let waiting = false;
      for (const c of this.candidates.values()) {
        if (!c.banned && c.attempts < MAX_CONNECT_ATTEMPTS) waiting = true;
      }
      if (!waiting && !this.opts.tracker) {
        for (const c of this.candidates.values())
          if (!c.banned) c.attempts = MAX_CONNECT_ATTEMPTS - 1;
      }
    }
    if (now - this.lastProgressAt > this.stallTimeoutMs) {
      const secs = Math.round(this.stallTimeoutMs / 1000);
      if (!this.everReady && this.downloaded === 0) {
        const detail = this.noPeersDetail();
        this.fail(new NoPeersError(`no usable peer within ${secs}s${detail}`));
      } else {
        this.fail(
          new TransferError(
            `no data for ${secs}s (${this.sessions.size} peers connected)${this.lastFailure ? `; last peer problem: ${this.lastFailure}` : ''}`,
          ),
        );
      }
    }
  }

  /**
   * A peer that keeps sending may still never answer some requests (it dropped them): those
   * older than REQUEST_TIMEOUT_MS are cancelled and go back to the picker for any peer.
   */
  private expireRequests(s: Session, now: number): void {
    let expired = 0;
    for (const [key, sentAt] of [...s.inflight]) {
      if (now - sentAt < this.requestTimeoutMs) continue;
      this.withdraw(s, key, true);
      expired++;
    }
    if (expired > 0) {
      log('%s: %d requests timed out, given to other peers', s.conn.address, expired);
      this.wakeAll();
    }
  }

  /** Is a peer that has delivered good pieces on its own connected? */
  private anyTrusted(): boolean {
    for (const s of this.sessions.values()) if (s.goodPieces > 0 && s.ready) return true;
    return false;
  }

  private memoryBudget(): number {
    const depths: number[] = [];
    for (const s of this.sessions.values()) if (s.ready) depths.push(s.pipeline.depth);
    return inflightBudget(depths, this.layout.pieceLength);
  }

  private noPeersDetail(): string {
    const parts: string[] = [];
    if (this.candidates.size === 0) parts.push('no peer addresses found');
    else parts.push(`${this.candidates.size} peer addresses tried`);
    if (this.lastFailure) parts.push(`last: ${this.lastFailure}`);
    const tf = this.opts.tracker?.failures ?? [];
    for (const f of tf.slice(0, 3)) parts.push(`tracker ${f.url}: ${f.message}`);
    return ` (${parts.join('; ')})`;
  }

  private async flushWrites(): Promise<void> {
    while (this.writes.size > 0) await Promise.allSettled([...this.writes]);
  }

  private shutdown(): void {
    this.finished = true;
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
    for (const s of [...this.sessions.values()]) {
      if (s.readyTimer) clearTimeout(s.readyTimer);
      s.conn.close('download ended');
    }
    // Connections still connecting or handshaking end now too, not at their timeouts.
    for (const conn of [...this.handshaking]) conn.close('download ended');
    this.limit.clearQueue();
  }
}

function bytesOf(layout: Layout, have: Bitfield): number {
  let n = 0;
  for (let i = 0; i < layout.pieceCount; i++) if (have.has(i)) n += layout.pieceSize(i);
  return n;
}
