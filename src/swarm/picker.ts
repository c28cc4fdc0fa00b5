/**
 * Piece picker: which blocks to ask a peer for.
 *
 * Invariants (see docs/DESIGN.md):
 * - a piece is in exactly one of: missing, in progress (has a buffer), done;
 * - a block of an in-progress piece is free, requested (by `reqCount` peers), or received;
 * - only in-progress pieces hold memory, and their total size stays under `maxInflightBytes`
 *   (one piece may always be started, so a piece larger than the cap still downloads);
 * - a peer is only asked for pieces its bitfield says it has.
 *
 * Order: first the blocks of pieces this peer already works on (piece affinity keeps a piece's
 * blocks from one peer, which makes hash failures attributable), then a new piece chosen
 * rarest-first with random tie-breaking, then free blocks of pieces other peers started; once no
 * free block is left anywhere the peer has (endgame), blocks already requested from others are
 * requested again, only while the peer has fewer than `ENDGAME_DEPTH` requests of its own (a
 * deep queue would double the tail's traffic). How many peers may hold a block is the caller's
 * call (`mayDuplicate`, by default `MAX_ENDGAME_REQUESTERS`), within `MAX_BLOCK_REQUESTERS`.
 *
 * A peer may be told to leave some pieces to others (`avoid`, used for a seed when a partial peer
 * about as fast has the piece: the seed's bandwidth is for what no one else can give). It then
 * starts none of them, and takes no free block of them that another peer started; only pieces
 * that another peer has too (availability 2 and up) are asked about, at most MAX_AVOIDED a pick.
 * `handOver` gives an in-progress piece to another peer (one that announced it with `have`).
 *
 * A priority window (`setWindow`, for `tdl download -o -`) puts the pieces in
 * [cursor, cursor + size) before the rarest: a new piece is taken there first, lowest index first.
 * Peers too slow for the window (`setWindowSkip`) start pieces beyond it. A piece the stream has
 * waited on too long can be hurried (`hurry`): its outstanding blocks, and those of the window
 * pieces its owner holds after it, are requested from other peers too, as in endgame.
 */
import { AvailabilityBuckets } from './availability-buckets.js';
import { Bitfield } from '../wire/bitfield.js';
import type { Layout } from '../storage/layout.js';
import { BLOCK_SIZE } from '../wire/messages.js';

export const MAX_ENDGAME_REQUESTERS = 2;
/**
 * Most peers one block is ever asked of: the scheduler lets peers beyond MAX_ENDGAME_REQUESTERS
 * ask for a block whose holders all trickle (see RequestScheduler.worthDuplicating).
 */
export const MAX_BLOCK_REQUESTERS = 16;
/** In endgame a peer gets duplicate requests only while it has fewer than this in flight. */
export const ENDGAME_DEPTH = 4;
const EMPTY = Buffer.alloc(0);
/** Blocks per piece are addressed as index * BLOCKS_PER_PIECE_KEY + block in request keys. */
export const BLOCKS_PER_PIECE_KEY = 1 << 16;
/**
 * Most pieces a priority window may span: a partial peer may skip that many pieces it lacks in
 * one pick, so the window bounds the cost per pick as much as the bytes ahead of the stream.
 */
export const MAX_WINDOW_PIECES = 1024;
/** Most pieces hurried at once (see `hurry`). */
export const MAX_HURRIED = 8;
/** Pieces a pick leaves to others (see `avoid` in `pick`) before it gives up starting one. */
export const MAX_AVOIDED = 64;

/** What a pick from one peer should leave to others or prefer (both for seeds: see Download). */
export interface PickHints {
  /** Leave this piece, which other peers have too, to them: start none, help with none. */
  avoid?: (index: number) => boolean;
  /**
   * Among the rarest pieces, start this one before the others (the peers that download from the
   * same seed agree on who starts what: see `rendezvous`). At most MAX_PREFER_SCAN pieces are
   * passed over for it; then the first one found is taken (with `strict`: none is).
   */
  prefer?: (index: number) => boolean;
  /**
   * Start no piece `prefer` rejects (others will bring it), except one per pick when `strict` is
   * false: the peer is never left with nothing to send while it has what we need.
   */
  strict?: boolean;
}

/** Pieces a pick passes over looking for a preferred one (see PickHints.prefer). */
export const MAX_PREFER_SCAN = 64;

/** A 32-bit key for a peer id, for `rendezvous`. */
export function peerIdKey(id: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of id) h = Math.imul(h ^ b, 0x01000193);
  return h >>> 0;
}

/**
 * Rendezvous hashing: which of `keys` (peerIdKey of each peer) owns piece `index`. Every peer
 * that knows the same keys computes the same owner, with no message exchanged; when a key goes,
 * only its pieces move. Returns the position in `keys` (-1 when empty).
 */
export function rendezvous(keys: readonly number[], index: number): number {
  let best = -1;
  let bestScore = -1;
  for (let k = 0; k < keys.length; k++) {
    // A 32-bit mix (murmur3's finalizer) of key and index.
    let h = (keys[k]! ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h = (h ^ (h >>> 16)) >>> 0;
    if (h > bestScore || (h === bestScore && keys[k]! < keys[best]!)) {
      best = k;
      bestScore = h;
    }
  }
  return best;
}

export interface BlockRef {
  index: number;
  block: number;
  begin: number;
  length: number;
}

export type PeerKey = string;

export class PieceInProgress {
  readonly blockCount: number;
  readonly reqCount: Uint8Array;
  readonly received: Uint8Array;
  /** Who delivered each block (for charging hash failures). */
  readonly deliveredBy: (PeerKey | undefined)[];
  receivedCount = 0;
  /** Blocks neither received nor requested (kept by the picker). */
  free: number;
  buffer: Buffer;
  /** The peer that started the piece ('' once unclaimed). */
  owner: PeerKey;
  /** After a failure with several contributors: only its owner may fetch blocks of it. */
  exclusive = false;

  constructor(
    readonly index: number,
    readonly size: number,
    owner: PeerKey,
    buffer: Buffer,
  ) {
    this.blockCount = Math.ceil(size / BLOCK_SIZE);
    this.reqCount = new Uint8Array(this.blockCount);
    this.received = new Uint8Array(this.blockCount);
    this.deliveredBy = new Array<PeerKey | undefined>(this.blockCount);
    this.free = this.blockCount;
    this.buffer = buffer;
    this.owner = owner;
  }

  get complete(): boolean {
    return this.receivedCount === this.blockCount;
  }

  blockLength(block: number): number {
    return Math.min(BLOCK_SIZE, this.size - block * BLOCK_SIZE);
  }
}

export class PiecePicker {
  readonly availability: Uint32Array;
  /** Pieces verified (and queued for, or already on, disk). */
  readonly done: Bitfield;
  readonly inProgress = new Map<number, PieceInProgress>();
  private inflightBytes = 0;
  private readonly pool: Buffer[] = [];
  private remainingPieces: number;
  /**
   * Missing pieces not started, grouped by availability (see availability-buckets.ts). Finding
   * the rarest piece a seeder has is O(1); a piece's availability moving is O(1).
   */
  private readonly buckets: AvailabilityBuckets;
  /** In-progress pieces with at least one free block (the only ones steps 1 and 3 look at). */
  private readonly withFree = new Set<PieceInProgress>();
  /** Pieces and blocks looked at while picking: tests pin the cost per piece with it. */
  steps = 0;
  /**
   * The priority window [winStart, winEnd): empty unless `setWindow` was called. Every piece in
   * [winStart, winNext) is out of the buckets (started, done or not wanted); a piece that goes
   * back in (`bucketAdd`) pulls `winNext` down, so a seeder's pick there is O(1) amortized.
   */
  private winStart = 0;
  private winEnd = 0;
  private winNext = 0;
  /** Pieces in progress whose outstanding blocks any peer may duplicate (see `hurry`). */
  private readonly urgent = new Set<PieceInProgress>();
  /** Peers that start no piece of the window (too slow for it: see `setWindowSkip`). */
  private windowSkip: ReadonlySet<PeerKey> = new Set();

  constructor(
    private readonly layout: Layout,
    done: Bitfield,
    /** The memory budget; the orchestrator adjusts it to what the peers' pipelines need. */
    public maxInflightBytes: number,
    private readonly random: () => number = Math.random,
    /** The pieces to fetch (a file selection); null: all of them. */
    private readonly wanted: Bitfield | null = null,
    /**
     * BEP 47 padding: whether byte range [start, end) of piece `index` is all padding (known
     * zeros, never asked of a peer). Absent: no padding.
     */
    private readonly isPadding:
      ((index: number, start: number, end: number) => boolean) | null = null,
  ) {
    this.done = done;
    this.availability = new Uint32Array(layout.pieceCount);
    this.buckets = new AvailabilityBuckets(layout.pieceCount);
    let remaining = 0;
    for (let i = 0; i < layout.pieceCount; i++) {
      if (!this.needs(i)) continue;
      remaining++;
      this.bucketAdd(i);
    }
    this.remainingPieces = remaining;
  }

  /** Is piece `i` still to fetch: wanted and not done? */
  needs(i: number): boolean {
    return !this.done.has(i) && (this.wanted === null || this.wanted.has(i));
  }

  /** Is piece `i` still to fetch and not started by anyone? */
  isFree(i: number): boolean {
    return this.needs(i) && !this.inProgress.has(i);
  }

  private bucketAdd(i: number): void {
    this.buckets.add(i, this.availability[i]!);
    if (i >= this.winStart && i < this.winNext) this.winNext = i;
  }

  private bucketRemove(i: number): void {
    this.buckets.remove(i, this.availability[i]!);
  }

  /** Availability of piece i moves by `delta` (±1), and the piece with it between groups. */
  private shift(i: number, delta: 1 | -1): void {
    const a = this.availability[i]!;
    if (delta > 0) this.buckets.up(i, a);
    else this.buckets.down(i, a);
    this.availability[i] = a + delta;
  }

  /** Keeps `free` and the `withFree` set in step after the block counts of `p` changed. */
  private recount(p: PieceInProgress): void {
    let free = 0;
    for (let b = 0; b < p.blockCount; b++) if (!p.received[b] && p.reqCount[b] === 0) free++;
    p.free = free;
    this.track(p);
  }

  private track(p: PieceInProgress): void {
    if (p.free > 0 && this.inProgress.get(p.index) === p) this.withFree.add(p);
    else this.withFree.delete(p);
  }

  /**
   * Pieces [cursor, cursor + size) are started before any other, lowest index first (size is
   * capped at MAX_WINDOW_PIECES; 0 turns the window off). Moving the cursor forward costs
   * nothing; moving it back rescans the window once.
   */
  setWindow(cursor: number, size: number): void {
    const start = Math.max(0, Math.min(cursor, this.layout.pieceCount));
    const end = Math.min(
      this.layout.pieceCount,
      start + Math.max(0, Math.min(size, MAX_WINDOW_PIECES)),
    );
    this.winNext = start < this.winStart ? start : Math.max(this.winNext, start);
    this.winStart = start;
    this.winEnd = end;
  }

  /**
   * Piece `index` holds the stream up: until it completes, every peer that has it may be asked
   * for its outstanding blocks too (at most MAX_ENDGAME_REQUESTERS requests per block; the
   * first to arrive cancels the others). One piece at a time; false when it is not in progress.
   */
  hurry(index: number): boolean {
    const p = this.inProgress.get(index);
    if (!p || p.complete || p.exclusive) return false;
    this.urgent.clear();
    this.urgent.add(p);
    // The owner's next pieces of the window would hold the stream up next, one after another.
    const end = Math.min(this.winEnd, index + MAX_WINDOW_PIECES);
    for (let i = index + 1; i < end && this.urgent.size < MAX_HURRIED; i++) {
      const q = this.inProgress.get(i);
      if (q && q.owner === p.owner && !q.complete && !q.exclusive) this.urgent.add(q);
    }
    return true;
  }

  /**
   * Peers that start no new piece of the priority window: the stream would wait on them. They
   * still fetch pieces beyond it, and blocks of window pieces others started.
   */
  setWindowSkip(peers: ReadonlySet<PeerKey>): void {
    this.windowSkip = peers;
  }

  /** The priority window as [start, end) (start === end: none). */
  get window(): { start: number; end: number } {
    return { start: this.winStart, end: this.winEnd };
  }

  get bytesInFlight(): number {
    return this.inflightBytes;
  }

  peerHas(bf: Bitfield): void {
    for (let i = 0; i < bf.size; i++) if (bf.has(i)) this.shift(i, 1);
  }

  peerGone(bf: Bitfield): void {
    for (let i = 0; i < bf.size; i++) if (bf.has(i) && this.availability[i]! > 0) this.shift(i, -1);
  }

  peerHave(index: number): void {
    this.shift(index, 1);
  }

  /** Does the peer have any piece we still need? */
  interesting(bf: Bitfield): boolean {
    if (this.remainingPieces === 0) return false;
    for (let i = 0; i < bf.size; i++) if (bf.has(i) && this.needs(i)) return true;
    return false;
  }

  /**
   * Up to `n` blocks to request from a peer. `isRequested(key)` tells whether this peer already
   * has that block in flight (for endgame duplicates); `inflight` is how many it has in all;
   * `mayClaim` lets it take a piece that failed with several contributors (given to peers that
   * have proven themselves, or that any peer may take, see Download), for all pieces or by
   * index; `mayDuplicate(key, requesters)` whether an endgame duplicate of that block, in flight
   * to `requesters` peers already, is worth asking for; `hints` which pieces to leave to others
   * or to start first (see PickHints).
   */
  pick(
    peer: PeerKey,
    bf: Bitfield,
    n: number,
    isRequested: (key: number) => boolean,
    inflight = 0,
    mayClaim: boolean | ((index: number) => boolean) = true,
    mayDuplicate: (key: number, requesters: number) => boolean = (_key, requesters) =>
      requesters < MAX_ENDGAME_REQUESTERS,
    hints: PickHints = {},
  ): BlockRef[] {
    const { avoid, prefer } = hints;
    let strict = hints.strict === true && prefer !== undefined;
    const out: BlockRef[] = [];
    if (n <= 0 || this.remainingPieces === 0) return out;
    // 0. hurried pieces: their blocks in flight elsewhere, requested again (at most twice in all)
    for (const u of this.urgent) {
      if (out.length >= n) break;
      if (!bf.has(u.index) || u.exclusive) continue;
      for (let b = 0; b < u.blockCount && out.length < n; b++) {
        this.steps++;
        if (u.received[b] || u.reqCount[b]! >= MAX_ENDGAME_REQUESTERS) continue;
        if (isRequested(u.index * BLOCKS_PER_PIECE_KEY + b)) continue;
        if (u.reqCount[b]!++ === 0 && --u.free === 0) this.withFree.delete(u);
        out.push({ index: u.index, block: b, begin: b * BLOCK_SIZE, length: u.blockLength(b) });
      }
    }
    // 1. pieces this peer started, and failed pieces waiting for a single peer to take them
    for (const p of this.withFree) {
      if (out.length >= n) return out;
      this.steps++;
      if (p.exclusive && p.owner === '' && bf.has(p.index)) {
        if (typeof mayClaim === 'function' ? mayClaim(p.index) : mayClaim) p.owner = peer;
      }
      // `bf` may leave out a piece the peer has (one it just rejected): not asked again.
      if (p.owner === peer && bf.has(p.index)) this.takeFree(p, n, out);
    }
    // 2. new pieces: in the priority window in order, then rarest first
    while (out.length < n && !this.windowSkip.has(peer)) {
      const idx = this.windowNew(bf);
      if (idx < 0) break;
      const p = this.start(idx, peer);
      this.takeFree(p, n, out);
    }
    while (out.length < n) {
      const idx = this.rarestNew(bf, false, avoid, prefer, strict);
      if (idx < 0) break;
      if (prefer && !prefer(idx)) strict = true;
      const p = this.start(idx, peer);
      this.takeFree(p, n, out);
    }
    // 3. free blocks of pieces others started
    for (const p of this.withFree) {
      if (out.length >= n) return out;
      this.steps++;
      if (p.owner === peer || p.exclusive || !bf.has(p.index)) continue;
      if (avoid && this.availability[p.index]! >= 2 && avoid(p.index)) continue;
      this.takeFree(p, n, out);
    }
    if (out.length > 0 || inflight >= ENDGAME_DEPTH || !this.endgame(bf)) return out;
    // 4. endgame: duplicate requests of blocks in flight elsewhere, a few at a time per peer.
    // Newest pieces and last blocks first: those sit at the back of the other peers' queues,
    // so the cancel reaches them before they are sent (the oldest are on the wire already,
    // and a duplicate of them comes twice: wasted).
    const room = Math.min(n, ENDGAME_DEPTH - inflight);
    for (const p of [...this.inProgress.values()].reverse()) {
      if (out.length >= room) break;
      if (!bf.has(p.index) || (p.exclusive && p.owner !== peer)) continue;
      for (let b = p.blockCount - 1; b >= 0 && out.length < room; b--) {
        if (p.received[b] || p.reqCount[b]! >= MAX_BLOCK_REQUESTERS) continue;
        const key = p.index * BLOCKS_PER_PIECE_KEY + b;
        if (isRequested(key) || !mayDuplicate(key, p.reqCount[b]!)) continue;
        if (p.reqCount[b]!++ === 0 && --p.free === 0) this.withFree.delete(p);
        out.push({ index: p.index, block: b, begin: b * BLOCK_SIZE, length: p.blockLength(b) });
      }
    }
    return out;
  }

  /**
   * True when no piece the peer has is left to start and no free block is left in those started:
   * every block it could send us is asked for (the end of the download, as far as it goes).
   */
  endgame(bf: Bitfield): boolean {
    if (this.rarestNew(bf, true) >= 0) return false;
    for (const p of this.withFree) if (bf.has(p.index)) return false;
    return true;
  }

  private takeFree(p: PieceInProgress, n: number, out: BlockRef[]): void {
    for (let b = 0; b < p.blockCount && out.length < n && p.free > 0; b++) {
      this.steps++;
      if (p.received[b] || p.reqCount[b]! > 0) continue;
      p.reqCount[b] = 1;
      p.free--;
      out.push({ index: p.index, block: b, begin: b * BLOCK_SIZE, length: p.blockLength(b) });
    }
    if (p.free === 0) this.withFree.delete(p);
  }

  /**
   * Rarest missing piece the peer has that is not started, random among equals; -1 if none.
   * The lowest non-empty bucket is searched from a random place; a peer that has a piece of it
   * is found at the first look, so a seeder costs O(1). Pieces the peer lacks are skipped: a
   * partial peer may cost up to the missing pieces rarer than its rarest. Pieces `avoid` names
   * (asked only from availability 2 up) are skipped, MAX_AVOIDED at most: then -1.
   */
  private rarestNew(
    bf: Bitfield,
    ignoreMemory = false,
    avoid?: (index: number) => boolean,
    prefer?: (index: number) => boolean,
    strict = false,
  ): number {
    if (!ignoreMemory && !this.hasRoom()) return -1;
    let avoided = 0;
    let refused = 0;
    const buckets = this.buckets;
    for (let a = 0; a < buckets.groups; a++) {
      const len = buckets.groupSize(a);
      if (len === 0) continue;
      const startAt = Math.floor(this.random() * len);
      let first = -1;
      let passed = 0;
      for (let k = 0; k < len; k++) {
        this.steps++;
        const i = buckets.at(a, startAt + k < len ? startAt + k : startAt + k - len);
        if (!bf.has(i)) continue;
        if (avoid && a >= 2 && avoid(i)) {
          if (++avoided >= MAX_AVOIDED) return first;
          continue;
        }
        if (!prefer || prefer(i)) return i;
        if (strict) {
          // Nothing but preferred pieces: a seed's pieces are mostly others' share.
          if (++refused >= MAX_PREFER_SCAN) return -1;
          continue;
        }
        if (first < 0) first = i;
        if (++passed >= MAX_PREFER_SCAN) return first;
      }
      if (first >= 0) return first;
    }
    return -1;
  }

  /** Is there room in the memory budget for one more piece? */
  private hasRoom(): boolean {
    // Pieces verified but not yet written hold memory too: one piece may always start, but only
    // when nothing at all is held (a disk that does not keep up slows the download down).
    return (
      this.inflightBytes === 0 ||
      this.inflightBytes + this.layout.pieceLength <= this.maxInflightBytes
    );
  }

  /**
   * The first piece of the priority window that is missing, not started and that the peer has;
   * -1 if none (or no window, or no memory). Costs O(1) amortized for a seeder, at most the
   * window for a partial peer.
   */
  private windowNew(bf: Bitfield): number {
    if (this.winNext >= this.winEnd || !this.hasRoom()) return -1;
    while (this.winNext < this.winEnd && !this.buckets.has(this.winNext)) {
      this.steps++;
      this.winNext++;
    }
    for (let i = this.winNext; i < this.winEnd; i++) {
      this.steps++;
      if (this.buckets.has(i) && bf.has(i)) return i;
    }
    return -1;
  }

  private start(index: number, owner: PeerKey): PieceInProgress {
    const size = this.layout.pieceSize(index);
    // Piece buffers are recycled: a steady download allocates no new memory for pieces.
    const pooled = size === this.layout.pieceLength ? this.pool.pop() : undefined;
    const p = new PieceInProgress(index, size, owner, pooled ?? Buffer.allocUnsafe(size));
    this.fillPadding(p);
    this.bucketRemove(index);
    this.inProgress.set(index, p);
    this.track(p);
    this.inflightBytes += p.size;
    return p;
  }

  /**
   * A whole piece for a web seed: the rarest missing piece that `has` allows and no peer has
   * started, within the memory budget, with every block marked requested. Null if none.
   */
  reserveWhole(owner: PeerKey, has: (index: number) => boolean): PieceInProgress | null {
    if (this.remainingPieces === 0) return null;
    const bf = { has } as unknown as Bitfield;
    const first = this.windowNew(bf);
    const idx = first >= 0 ? first : this.rarestNew(bf);
    return idx < 0 ? null : this.startWhole(idx, owner);
  }

  /** Piece `index` as well, if it is still missing and not started (within the budget). */
  tryReserveWhole(owner: PeerKey, index: number): PieceInProgress | null {
    if (index < 0 || index >= this.layout.pieceCount) return null;
    if (!this.isFree(index)) return null;
    if (this.inflightBytes + this.layout.pieceSize(index) > this.maxInflightBytes) return null;
    return this.startWhole(index, owner);
  }

  private startWhole(index: number, owner: PeerKey): PieceInProgress {
    const p = this.start(index, owner);
    p.reqCount.fill(1);
    this.recount(p);
    return p;
  }

  /** A web seed delivered the whole piece: it is complete (verify it next). */
  fillWhole(p: PieceInProgress, data: Buffer, from: PeerKey): void {
    data.copy(p.buffer, 0, 0, p.size);
    p.received.fill(1);
    p.reqCount.fill(0);
    p.deliveredBy.fill(from);
    p.receivedCount = p.blockCount;
    this.recount(p);
  }

  /** A web seed gave a piece up: its unreceived blocks are free for peers. */
  abandon(index: number): void {
    const p = this.inProgress.get(index);
    if (!p) return;
    // Blocks of padding are "received" from no one: they do not make the piece busy.
    const busy = p.deliveredBy.some((d) => d !== undefined);
    for (let b = 0; b < p.blockCount; b++) {
      if (!p.received[b]) p.reqCount[b] = 0;
    }
    p.owner = '';
    p.exclusive = false;
    // Nothing of it is held: it goes back to "missing", for a web seed or a peer to start again.
    if (!busy) {
      this.urgent.delete(p);
      this.inProgress.delete(index);
      this.withFree.delete(p);
      this.bucketAdd(index);
      this.written(p);
    } else this.recount(p);
  }

  /**
   * Piece `index` is to come from `peer` from now on (it announced the piece while another peer
   * was sending it to us): its owner becomes `peer`, so that its free blocks go to that peer
   * first. False when the piece is not in progress, complete, or exclusive (a failed piece keeps
   * its single source).
   */
  handOver(index: number, peer: PeerKey): boolean {
    const p = this.inProgress.get(index);
    if (!p || p.complete || p.exclusive || p.owner === peer) return false;
    p.owner = peer;
    return true;
  }

  /** Requests held for this block of a piece in progress (0: none, or not in progress). */
  requestCount(index: number, block: number): number {
    return this.inProgress.get(index)?.reqCount[block] ?? 0;
  }

  /** A request was dropped (choke, timeout, disconnect, cancel): the block is free again. */
  release(index: number, block: number): void {
    const p = this.inProgress.get(index);
    if (p && !p.received[block] && p.reqCount[block]! > 0) {
      if (--p.reqCount[block]! === 0) {
        p.free++;
        this.withFree.add(p);
      }
    }
  }

  /**
   * A block arrived. Returns the piece when this block completed it, 'dup' when the block was
   * already received (endgame duplicate), 'stale' when the piece is no longer in progress, else null.
   */
  receive(
    index: number,
    block: number,
    data: Buffer,
    from: PeerKey,
  ): PieceInProgress | 'dup' | 'stale' | null {
    const p = this.inProgress.get(index);
    if (!p) return 'stale';
    if (p.received[block]) return 'dup';
    data.copy(p.buffer, block * BLOCK_SIZE);
    if (p.reqCount[block] === 0 && --p.free === 0) this.withFree.delete(p);
    p.received[block] = 1;
    p.reqCount[block] = 0;
    p.deliveredBy[block] = from;
    p.receivedCount++;
    return p.complete ? p : null;
  }

  /** The piece verified: it no longer needs memory once written. */
  verified(p: PieceInProgress): void {
    this.urgent.delete(p);
    this.inProgress.delete(p.index);
    this.withFree.delete(p);
    if (this.needs(p.index)) this.remainingPieces--;
    this.done.set(p.index);
  }

  /**
   * Blocks of `p` wholly inside BEP 47 padding are zeros, received already: no peer is asked
   * for them (a hybrid torrent pads every file to a piece boundary). A piece of padding only is
   * fetched as usual (there is nothing else to verify it by).
   */
  private fillPadding(p: PieceInProgress): void {
    if (!this.isPadding) return;
    let pad = 0;
    for (let b = 0; b < p.blockCount; b++) {
      const start = b * BLOCK_SIZE;
      if (this.isPadding(p.index, start, start + p.blockLength(b))) pad++;
    }
    if (pad === 0 || pad === p.blockCount) return;
    for (let b = 0; b < p.blockCount; b++) {
      const start = b * BLOCK_SIZE;
      const end = start + p.blockLength(b);
      if (!this.isPadding(p.index, start, end)) continue;
      p.buffer.fill(0, start, end);
      p.received[b] = 1;
      p.receivedCount++;
      p.free--;
    }
  }

  /**
   * The piece is on disk: its buffer goes back to the pool and out of the memory budget. The pool
   * keeps what fits in the budget, and one buffer whatever the budget: one piece may always be
   * in progress, and a budget below a piece (16 MiB pieces before any peer is ready) dropped
   * each buffer for the next piece to take a fresh one, whose memory the system must fault in
   * page by page (0.38 s for 128 MiB on a virtual machine, against 0.01 s to refill it).
   */
  written(p: PieceInProgress): void {
    this.inflightBytes -= p.size;
    const pooled = this.pool.length;
    if (
      p.buffer.length === this.layout.pieceLength &&
      (pooled === 0 || (pooled + 1) * this.layout.pieceLength <= this.maxInflightBytes)
    ) {
      this.pool.push(p.buffer);
    }
    p.buffer = EMPTY;
  }

  /**
   * The piece failed verification: start it over (keeping its memory slot). With `exclusive`, the
   * next peer to take it fetches all of it alone.
   */
  failed(p: PieceInProgress, exclusive = false): void {
    p.received.fill(0);
    p.reqCount.fill(0);
    p.deliveredBy.fill(undefined);
    p.receivedCount = 0;
    p.free = p.blockCount;
    this.fillPadding(p);
    this.track(p);
    if (exclusive) {
      p.exclusive = true;
      p.owner = '';
    }
  }

  /** A peer's requests were all released: exclusive pieces it held are free for another peer. */
  unclaim(peer: PeerKey): void {
    for (const p of this.inProgress.values()) {
      if (p.exclusive && p.owner === peer) {
        p.owner = '';
        p.reqCount.fill(0);
        this.recount(p);
      }
    }
  }

  /** Does this in-progress piece have any block still outstanding? */
  isComplete(): boolean {
    return this.remainingPieces === 0;
  }

  /**
   * Pieces verified among those to fetch (a selection's, or all): a boundary piece kept from an
   * earlier, other selection is not one of them.
   */
  get doneWanted(): number {
    return (this.wanted?.count ?? this.layout.pieceCount) - this.remainingPieces;
  }
}
