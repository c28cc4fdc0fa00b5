/**
 * The upload service: answers other peers' `request`s from verified pieces (its BlockSource reads
 * a piece from memory until it is written, then from disk).
 *
 * Each peer has a bounded queue of requests (MAX_QUEUE, advertised as `reqq`). A request is
 * checked (src/swarm/request-check.ts) and refused with a BEP 6 `reject` where the peer speaks the
 * fast extension, else the peer is dropped; a `cancel` removes it from the queue (and, with the
 * fast extension, answers it with a `reject`: every request gets one answer). Blocks are read
 * from disk with positional reads through a small bounded cache, and only while the peer's socket
 * takes them: a peer whose write buffer holds HIGH_WATER bytes gets nothing more until it drains,
 * and is dropped when it has not drained for STUCK_MS (the connection itself closes one that lets
 * far more pile up, refusals included: MAX_WRITE_QUEUED, MAX_REFUSE_QUEUED in peer/connection.ts).
 * The upload rate limit is one token bucket shared by all peers; the peers waiting for its tokens
 * take them in turn, one block each, so that none is starved by one that connected first or whose
 * reads finish first.
 *
 * A piece of up to WHOLE_PIECE_READ bytes is read whole and its blocks are cut from the cache;
 * a bigger one is read in aligned stretches of that size, so that serving a 16 MiB piece takes 16
 * reads, not 1,024 (each read is a round trip through libuv's pool and a buffer of its own).
 *
 * Reads run ahead of the socket: the disk reads of the next queued pieces are started together
 * (up to READ_AHEAD_BYTES per peer and MAX_READ_BYTES for all), because each read waits for a
 * thread of libuv's pool and then for the event loop, and on a busy machine that wait, not the
 * copy, is what a read costs. One read at a time left a peer with a full queue idle most of the
 * time (aria2c keeps 256 requests out and picks pieces at random).
 */
import { logger } from '../log.js';
import type { PeerConnection } from '../peer/connection.js';
import type { Layout } from '../storage/layout.js';
import { allowedFastSet } from '../wire/allowed-fast.js';
import type { Bitfield } from '../wire/bitfield.js';
import { TokenBucket } from './rate-limit.js';
import { RateWindow } from './rate-window.js';
import { MAX_REQUEST_LENGTH, checkRequest } from './request-check.js';

const log = logger('tdl:upload');

/**
 * Requests queued per peer at most (our `reqq`). A queued request costs a few dozen bytes (the
 * blocks being read are bounded by MAX_PENDING_BYTES), and a fast downloader needs many out: at
 * 250 (4 MiB of blocks) libtorrent's downloader from a loopback tdl seed idled between answers,
 * 1.40–1.50 s for 256 MiB against 1.08–1.27 s at 1,000; libtorrent itself advertises 2,000.
 */
export const MAX_QUEUE = 1000;
/** Stop reading blocks for a peer while this much waits in its socket. */
export const HIGH_WATER = 256 * 1024;
/** A peer whose socket has held HIGH_WATER or more all this long is dropped. */
export const STUCK_MS = 60_000;
/** ... and after this long, it is one that reads nothing (see notReading): its turn is over. */
export const NOT_READING_MS = 5_000;
/** Bytes of blocks kept in the read cache. */
export const CACHE_BYTES = 8 * 1024 * 1024;
/**
 * Pieces are read in stretches of this size, aligned on it within the piece (a piece up to this
 * size: whole), and served from the cache.
 */
export const WHOLE_PIECE_READ = 1024 * 1024;
/** Bytes of disk reads one peer may have started and not yet seen finish (its read-ahead). */
export const READ_AHEAD_BYTES = 4 * 1024 * 1024;
/** Bytes of disk reads in flight for all peers together. */
export const MAX_READ_BYTES = 16 * 1024 * 1024;
/** Bytes of blocks taken from a peer's queue and not yet handed to its socket, at most. */
export const MAX_PENDING_BYTES = 4 * 1024 * 1024;
/**
 * Bytes of read buffers that blocks waiting in one peer's socket may keep alive; past it, blocks
 * go as copies. A block is a view of the stretch read for it, and while it waits in the socket it
 * keeps that whole buffer (up to WHOLE_PIECE_READ) alive, cache or not: an honest peer's backlog
 * (blocks of a few stretches, under MAX_PENDING_BYTES) stays below it, but a peer that does not
 * read and asks one block of each stretch in turn kept a stretch per block, up to the hundreds
 * of blocks that HIGH_WATER and MAX_PENDING_BYTES let into its socket.
 */
export const MAX_VIEW_BYTES = 2 * MAX_PENDING_BYTES;
/** Requests that arrive this soon after our choke crossed it on the wire: ignored, not a fault. */
export const CHOKE_GRACE_MS = 5_000;
/**
 * Pieces of BEP 6's allowed fast set offered to each peer (libtorrent offers 5 too), and never
 * more than a quarter of the torrent's pieces: a peer we choke may still fetch these, which gets
 * a newcomer its first pieces to trade.
 */
export const ALLOWED_FAST_PIECES = 5;

/** Where blocks are read from (DiskStorage). */
export interface BlockSource {
  readBlock(index: number, begin: number, length: number): Promise<Buffer>;
}

interface Req {
  index: number;
  begin: number;
  length: number;
}

/**
 * The stretch of a piece read at once to serve a block: `length` bytes at `begin` in the piece;
 * its key in the read cache is where it starts in the torrent.
 */
interface Stretch {
  key: number;
  begin: number;
  length: number;
}

interface Upload {
  conn: PeerConnection;
  queue: Req[];
  /** Bytes of blocks taken from the queue and not yet sent (their reads are under way). */
  pending: number;
  /** Bytes of the disk reads this peer started that have not finished. */
  reading: number;
  /** Pieces it may request while choked (BEP 6 allowed fast, sent by us). */
  allowedFast: Set<number>;
  /** Its allowed fast set (grantAllowedFast): offered piece by piece as we get them. */
  fastSet: number[];
  /** When we last choked it; bytes sent when we last unchoked it. */
  chokedAt: number;
  sentAtUnchoke: number;
  /**
   * Since when its socket holds HIGH_WATER or more without having gone below it, or shrunk (0 =
   * it does not): its 'writable' comes only once the socket is empty, which a peer that reads as
   * we top its socket up may never let happen; and a slow reader's socket may hold the reads in
   * flight (MAX_PENDING_BYTES) for longer than STUCK_MS, going down a batched write at a time.
   */
  fullSince: number;
  /** What its socket held when last seen full: less since is progress (see `stuck`). */
  fullLevel: number;
  /** Read buffers that blocks waiting in its socket are views of (blocks each), and their bytes. */
  views: Map<ArrayBufferLike, number>;
  viewBytes: number;
  /** Payload bytes sent: in all, and over the choker's 20 s window. */
  sent: number;
  recentBytes: RateWindow;
}

export class UploadService {
  private readonly peers = new Map<PeerConnection, Upload>();
  /** Stretches read (or being read), by key; the map's order is the eviction order. */
  private readonly cache = new Map<number, { data: Promise<Buffer>; length: number }>();
  private cacheBytes = 0;
  /** Bytes of disk reads in flight, for all peers. */
  private reading = 0;
  private readonly bucket: TokenBucket;
  private waitTimer: NodeJS.Timeout | null = null;
  /**
   * Peers whose next block waits for the rate limit's tokens, first come first served (a Set
   * keeps insertion order). Only the first may take tokens; after one block it goes to the back.
   */
  private readonly waiting = new Set<Upload>();
  /** Payload bytes sent to all peers. */
  uploaded = 0;
  /** Most payload bytes to send in all (capTotal): `--seed-ratio`'s target. */
  private cap = Infinity;
  private onCap: (() => void) | null = null;
  private readonly lastSeconds = new RateWindow(3_000);
  private closed = false;

  constructor(
    private readonly layout: Layout,
    private readonly have: Bitfield,
    private readonly source: BlockSource,
    maxRate = 0,
    /** A read failed (a file changed on disk, a disk error): the owner decides what follows. */
    private readonly onFault: (e: Error) => void = () => {},
  ) {
    this.bucket = new TokenBucket(maxRate > 0 ? maxRate : Infinity);
  }

  /**
   * Send at most `bytes` of payload in all, then call `reached` once (at once if already there):
   * `--seed-ratio` stops on the block that meets it, not on a timer's next look, which at
   * loopback speed let twice the target out.
   */
  capTotal(bytes: number, reached: () => void): void {
    this.cap = bytes;
    this.onCap = reached;
    if (this.uploaded >= bytes) {
      this.onCap = null;
      queueMicrotask(reached);
    }
  }

  add(conn: PeerConnection): void {
    const u: Upload = {
      conn,
      queue: [],
      pending: 0,
      reading: 0,
      allowedFast: new Set(),
      fastSet: [],
      chokedAt: Date.now(),
      sentAtUnchoke: 0,
      fullSince: 0,
      fullLevel: 0,
      views: new Map(),
      viewBytes: 0,
      sent: 0,
      recentBytes: new RateWindow(20_000),
    };
    this.peers.set(conn, u);
    conn.on('request', (index, begin, length) => this.onRequest(u, index, begin, length));
    conn.on('cancel', (index, begin, length) => {
      const i = u.queue.findIndex(
        (r) => r.index === index && r.begin === begin && r.length === length,
      );
      // Not queued: answered already, or its read is under way and the block follows.
      if (i < 0) return;
      u.queue.splice(i, 1);
      // BEP 6: every request gets exactly one answer, a cancelled one too.
      conn.reject(index, begin, length);
    });
    conn.on('writable', () => {
      u.fullSince = 0;
      this.pump(u);
    });
  }

  remove(conn: PeerConnection): void {
    const u = this.peers.get(conn);
    if (u) this.waiting.delete(u);
    this.peers.delete(conn);
  }

  /**
   * Offer a fast-extension peer that is not a seed the pieces of its allowed fast set that we
   * have and it lacks (BEP 6): it may request those while we choke it; the others follow as we
   * verify them (pieceVerified). Call after the connection's start(), whose bitfield must come
   * first.
   */
  grantAllowedFast(conn: PeerConnection, infoHash: Buffer): void {
    const u = this.peers.get(conn);
    if (!u || !conn.fast || conn.bitfield.isComplete()) return;
    const k = Math.min(ALLOWED_FAST_PIECES, Math.floor(this.layout.pieceCount / 4));
    u.fastSet = allowedFastSet(conn.host, infoHash, this.layout.pieceCount, k);
    for (const index of u.fastSet) this.offerFast(u, index);
  }

  /** A piece verified: offered to the peers whose allowed fast set holds it and that lack it. */
  pieceVerified(index: number): void {
    for (const u of this.peers.values()) if (u.fastSet.includes(index)) this.offerFast(u, index);
  }

  private offerFast(u: Upload, index: number): void {
    const conn = u.conn;
    if (!this.have.has(index) || u.allowedFast.has(index) || conn.bitfield.has(index)) return;
    u.allowedFast.add(index);
    conn.allowedFast(index);
  }

  /** We choked the peer: without the fast extension its queue is dropped; with it, rejected. */
  choked(conn: PeerConnection): void {
    const u = this.peers.get(conn);
    if (!u) return;
    u.chokedAt = Date.now();
    const keep: Req[] = [];
    for (const r of u.queue) {
      if (u.allowedFast.has(r.index)) keep.push(r);
      else conn.reject(r.index, r.begin, r.length);
    }
    u.queue = keep;
  }

  /** We unchoked the peer: its seeding quota starts again. */
  unchoked(conn: PeerConnection): void {
    const u = this.peers.get(conn);
    if (u) u.sentAtUnchoke = u.sent;
  }

  /**
   * Its socket has held HIGH_WATER or more, without shrinking, for NOT_READING_MS: the peer
   * reads nothing of what we send (as last seen by the tick's check; see socketState).
   */
  notReading(conn: PeerConnection, now: number): boolean {
    const u = this.peers.get(conn);
    if (!u || u.fullSince === 0 || u.conn.writeQueued < HIGH_WATER) return false;
    return now - u.fullSince >= NOT_READING_MS;
  }

  /** Bytes sent to the peer since we last unchoked it. */
  sinceUnchoke(conn: PeerConnection): number {
    const u = this.peers.get(conn);
    return u ? u.sent - u.sentAtUnchoke : 0;
  }

  /** Bytes of blocks taken from the peer's queue whose reads are under way (not yet sent). */
  pendingBytes(conn: PeerConnection): number {
    return this.peers.get(conn)?.pending ?? 0;
  }

  /** Payload bytes sent to the peer in all. */
  sent(conn: PeerConnection): number {
    return this.peers.get(conn)?.sent ?? 0;
  }

  /** Bytes sent to this peer in the last `windowMs`. */
  recent(conn: PeerConnection, now: number, windowMs = 20_000): number {
    const u = this.peers.get(conn);
    if (!u) return 0;
    return u.recentBytes.sum(now, windowMs);
  }

  /** Upload rate over the last few seconds, in bytes per second. */
  rate(now = Date.now()): number {
    return this.lastSeconds.sum(now) / 3;
  }

  setRate(bytesPerSecond: number): void {
    this.bucket.setRate(bytesPerSecond > 0 ? bytesPerSecond : Infinity);
    if (!this.bucket.unlimited) return;
    // No limit any more: nobody waits for tokens.
    const waited = [...this.waiting];
    this.waiting.clear();
    for (const u of waited) this.pump(u);
  }

  private onRequest(u: Upload, index: number, begin: number, length: number): void {
    const conn = u.conn;
    if (conn.amChoking && !u.allowedFast.has(index) && !conn.fast) {
      // A request that crossed our choke is normal; one long after it is a fault.
      if (Date.now() - u.chokedAt < CHOKE_GRACE_MS) return;
      conn.close('requested while choked');
      return;
    }
    const verdict = checkRequest(
      { index, begin, length },
      {
        pieceCount: this.layout.pieceCount,
        pieceSize: (i) => this.layout.pieceSize(i),
        have: (i) => this.have.has(i),
        choking: conn.amChoking,
        allowedFast: (i) => u.allowedFast.has(i),
        queued: u.queue.length,
        maxQueue: MAX_QUEUE,
      },
    );
    if (!verdict.ok) {
      if (verdict.action === 'close' || !conn.fast) {
        conn.close(`bad request: ${verdict.reason}`);
        return;
      }
      log('%s reject piece %d+%d: %s', conn.address, index, begin, verdict.reason);
      conn.reject(index, begin, length);
      return;
    }
    u.queue.push({ index, begin, length });
    this.pump(u);
  }

  /**
   * Serve queued requests of a peer while its socket, the read-ahead limits and the rate limit
   * allow. Blocks whose piece is cached or being read cost no new read; a block that needs one
   * waits while the peer's or everyone's reads in flight are at their limit (a peer with none in
   * flight may always start one, so that a big piece cannot block it forever). A peer held back
   * by anything but the rate limit leaves the line for tokens: its socket draining or a read
   * finishing pumps it again.
   */
  private pump(u: Upload): void {
    if (!this.serveQueue(u)) this.waiting.delete(u);
  }

  /** pump's loop: true when it stopped to wait for tokens (the peer is then in `waiting`). */
  private serveQueue(u: Upload): boolean {
    while (!this.closed && u.queue.length > 0 && u.conn.state === 'open') {
      const socket = this.socketState(u, Date.now());
      if (socket !== 'room') {
        if (socket === 'stuck') u.conn.close('does not read what we send');
        return false;
      }
      if (u.conn.writeQueued + u.pending >= MAX_PENDING_BYTES) return false;
      const r = u.queue[0]!;
      const st = this.stretchOf(r);
      const cost = this.readCost(r, st);
      if (
        cost > 0 &&
        u.reading > 0 &&
        (u.reading + cost > READ_AHEAD_BYTES || this.reading + cost > MAX_READ_BYTES)
      )
        return false;
      if (!this.takeTokens(u, r.length)) return true;
      u.queue.shift();
      this.serve(u, r, st, cost);
      if (this.waiting.size > 0 && u.queue.length > 0) {
        // Others wait for tokens: its turn is over, it queues again behind them.
        this.waiting.add(u);
        this.waitForTokens(r.length);
        return true;
      }
    }
    return false;
  }

  /**
   * Tokens for a block of `n` bytes: taken when there are enough and no other peer is waiting
   * before this one, else it joins (or keeps its place in) the line and a timer is set.
   */
  private takeTokens(u: Upload, n: number): boolean {
    if (this.bucket.unlimited) return true;
    const first = this.firstWaiting();
    if ((first === undefined || first === u) && this.bucket.tryTake(n)) {
      this.waiting.delete(u);
      return true;
    }
    this.waiting.add(u);
    this.waitForTokens(n);
    return false;
  }

  private firstWaiting(): Upload | undefined {
    for (const u of this.waiting) return u;
    return undefined;
  }

  /** Bytes of the disk read that serving this block would start (0: cached or being read). */
  private readCost(r: Req, st: Stretch | null): number {
    if (!st) return r.length;
    return this.cache.has(st.key) ? 0 : st.length;
  }

  /**
   * The stretch read to serve this block: the aligned WHOLE_PIECE_READ bytes of its piece that
   * hold it (the whole piece up to that size); null for a block across two of them, or one
   * shorter than MAX_REQUEST_LENGTH whose stretch is neither cached nor being read (read alone:
   * a peer asking a byte of each stretch in turn would make every 17-byte request read 1 MiB).
   */
  private stretchOf(r: Req): Stretch | null {
    const begin = r.begin - (r.begin % WHOLE_PIECE_READ);
    const length = Math.min(WHOLE_PIECE_READ, this.layout.pieceSize(r.index) - begin);
    if (r.begin + r.length > begin + length) return null;
    const key = this.layout.pieceOffset(r.index) + begin;
    if (r.length < MAX_REQUEST_LENGTH && !this.cache.has(key)) return null;
    return { key, begin, length };
  }

  private serve(u: Upload, r: Req, st: Stretch | null, cost: number): void {
    u.pending += r.length;
    u.reading += cost;
    this.reading += cost;
    const settled = () => {
      u.pending -= r.length;
      u.reading -= cost;
      this.reading -= cost;
    };
    this.read(r, st).then(
      (data) => {
        settled();
        if (u.conn.state !== 'open' || !this.peers.has(u.conn)) return this.pumpAll(cost);
        if (u.conn.amChoking && !u.allowedFast.has(r.index)) {
          // Choked while the read was under way: a fast-extension peer is told, or it would wait.
          u.conn.reject(r.index, r.begin, r.length);
          return this.pumpAll(cost);
        }
        // The cap is reached: nothing more goes out (the owner ends the seeding).
        if (this.uploaded >= this.cap) return;
        // The block that meets the cap calls back once the socket has written it: the owner
        // closes the connections then, which must not cut it off.
        const meets = this.uploaded + data.length >= this.cap ? this.onCap : null;
        if (meets) this.onCap = null;
        this.send(u, r, data, meets ?? undefined);
        const now = Date.now();
        u.sent += data.length;
        this.uploaded += data.length;
        u.recentBytes.add(now, data.length);
        this.lastSeconds.add(now, data.length);
        this.pump(u);
        this.pumpAll(cost);
      },
      (e: unknown) => {
        settled();
        log('%s read of piece %d failed: %s', u.conn.address, r.index, (e as Error).message);
        // Never data in place of what could not be read: the peer is told no.
        u.conn.reject(r.index, r.begin, r.length);
        this.onFault(e instanceof Error ? e : new Error(String(e)));
        this.pump(u);
        this.pumpAll(cost);
      },
    );
  }

  /**
   * Hands a block to the peer's socket: as it is, unless it is a view of a bigger buffer that the
   * socket does not hold already and MAX_VIEW_BYTES of such buffers are held: then a copy.
   */
  /** `written`: called once the socket has written the block out. */
  private send(u: Upload, r: Req, data: Buffer, written?: () => void): void {
    const whole = data.buffer;
    const size = whole.byteLength;
    const n = u.views.get(whole);
    if (size <= data.length) {
      u.conn.sendPiece(r.index, r.begin, data, written);
    } else if (n === undefined && u.viewBytes + size > MAX_VIEW_BYTES) {
      u.conn.sendPiece(r.index, r.begin, Buffer.from(data), written);
    } else {
      u.views.set(whole, (n ?? 0) + 1);
      if (n === undefined) u.viewBytes += size;
      u.conn.sendPiece(r.index, r.begin, data, () => {
        const left = u.views.get(whole)! - 1;
        if (left > 0) {
          u.views.set(whole, left);
        } else {
          u.views.delete(whole);
          u.viewBytes -= size;
        }
        written?.();
      });
    }
  }

  /** A read finished: peers that waited for the shared read limit may go on. */
  private pumpAll(freed: number): void {
    if (freed === 0 || this.closed) return;
    for (const u of this.peers.values()) if (u.queue.length > 0) this.pump(u);
  }

  private waitForTokens(n: number): void {
    if (this.waitTimer) return;
    const ms = Math.max(1, Math.min(1_000, this.bucket.waitMs(n)));
    this.waitTimer = setTimeout(() => {
      this.waitTimer = null;
      this.serveWaiting();
    }, ms);
    this.waitTimer.unref();
  }

  /**
   * Tokens accrued: the waiting peers take them in turn, a block each, until the first in line
   * finds too few (its pump sets the next timer). Each round serves a block, or takes a peer out
   * of the line, or stops.
   */
  private serveWaiting(): void {
    for (let u = this.firstWaiting(); u && !this.closed; u = this.firstWaiting()) {
      this.pump(u);
      if (this.firstWaiting() === u) return;
    }
  }

  /** Check for stuck sockets (called by the orchestrator's tick). */
  tick(now: number): void {
    for (const u of this.peers.values()) {
      if (this.socketState(u, now) === 'stuck') u.conn.close('does not read what we send');
      else this.pump(u);
    }
  }

  /**
   * Its socket: `room` below HIGH_WATER (the peer reads, even if the socket never empties: no
   * 'writable'), else `full`, or `stuck` when it has held HIGH_WATER or more without shrinking
   * once for STUCK_MS. A socket that shrank (the peer read a batched write) starts the clock
   * again; one that grew (reads in flight landed) does not.
   */
  private socketState(u: Upload, now: number): 'room' | 'full' | 'stuck' {
    const queued = u.conn.writeQueued;
    if (queued < HIGH_WATER) {
      u.fullSince = 0;
      return 'room';
    }
    if (u.fullSince === 0 || queued < u.fullLevel) {
      u.fullSince = now;
      u.fullLevel = queued;
      return 'full';
    }
    u.fullLevel = queued;
    return now - u.fullSince > STUCK_MS ? 'stuck' : 'full';
  }

  /**
   * A block's bytes. Peers ask for a piece's blocks one after another, so the stretch that holds
   * it (stretchOf) is read once and its blocks are cut from the cache.
   */
  private async read(r: Req, st: Stretch | null): Promise<Buffer> {
    if (!st) return this.source.readBlock(r.index, r.begin, r.length);
    let entry = this.cache.get(st.key);
    if (entry) {
      // Refresh its place: the map's order is the eviction order.
      this.cache.delete(st.key);
      this.cache.set(st.key, entry);
    } else {
      const e = { data: this.source.readBlock(r.index, st.begin, st.length), length: st.length };
      entry = e;
      this.cache.set(st.key, e);
      this.cacheBytes += e.length;
      e.data.catch(() => {
        if (this.cache.get(st.key) === e) {
          this.cache.delete(st.key);
          this.cacheBytes -= e.length;
        }
      });
      while (this.cacheBytes > CACHE_BYTES && this.cache.size > 1) {
        const [k, old] = this.cache.entries().next().value as [number, { length: number }];
        this.cache.delete(k);
        this.cacheBytes -= old.length;
      }
    }
    const data = await entry.data;
    return data.subarray(r.begin - st.begin, r.begin - st.begin + r.length);
  }

  close(): void {
    this.closed = true;
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.waitTimer = null;
    this.waiting.clear();
    this.peers.clear();
    this.cache.clear();
  }
}
