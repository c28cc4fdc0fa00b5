/**
 * Request scheduling: which blocks each peer is asked for, and what happens to those requests.
 *
 * Per peer: a pipeline depth (src/swarm/pipeline.ts, never above the peer's `reqq`), the requests
 * in flight, and those taken back (a block that still comes for one is waste, not a fault).
 * Requests are taken back on choke, snub, timeout and disconnect, and in endgame when a block
 * arrived from another peer (with `cancel`).
 *
 * Progress is judged by bytes of block data, not whole blocks and not other messages: a peer that
 * keeps sending at 1 KiB/s is slow, not stalled; one that sends only keep-alives is silent. A
 * peer with requests out that sends no block byte for SNUB_MS is snubbed (its requests go to
 * others, its depth to the floor); one that sends none for STALL_MS is dropped. A request times
 * out after REQUEST_TIMEOUT_MS or three times the time the peer's queue should take at its
 * measured rate, whichever is longer. A piece the peer rejects while it unchokes us is not asked
 * of it for REJECT_BACKOFF_MS.
 */
import { logger } from '../log.js';
import type { PeerConnection } from '../peer/connection.js';
import type { Layout } from '../storage/layout.js';
import type { Bitfield } from '../wire/bitfield.js';
import { BLOCK_SIZE } from '../wire/messages.js';
import {
  BLOCKS_PER_PIECE_KEY,
  MAX_ENDGAME_REQUESTERS,
  type PickHints,
  type PieceInProgress,
  type PiecePicker,
} from './picker.js';
import { MAX_DEPTH, Pipeline } from './pipeline.js';
import { RateWindow } from './rate-window.js';
import { makeRoom } from '../bounded.js';

const log = logger('tdl:requests');

/** A peer with requests out that sends no byte for this long is snubbed... */
export const SNUB_MS = 15_000;
/** ...and dropped after this long. */
export const STALL_MS = 60_000;
/**
 * A piece the peer rejected a request of while it did not choke us is not asked of it again for
 * this long: it will not send it now (libtorrent does the same), and asking again at once made a
 * peer that rejects everything cost a request per reject, hundreds of thousands a minute.
 */
export const REJECT_BACKOFF_MS = 30_000;
/** Pieces remembered as rejected per peer. */
export const MAX_REJECTED_REMEMBERED = 4096;
/** Shortest time a request may stay unanswered while the peer answers others. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** Released or cancelled requests remembered per peer, so their late blocks are not errors. */
export const MAX_CANCELLED_REMEMBERED = 4096;
/**
 * Endgame: a block in flight elsewhere is requested again only if its current holder should
 * take longer than this to send it (by its place in that peer's queue and its rate)...
 */
export const ENDGAME_MIN_WAIT_MS = 750;
/** ...or is this late with it. Blocks due sooner are likely in the peer's send buffer already. */
export const ENDGAME_OVERDUE_MS = 1_000;
/**
 * Endgame: a holder that should take longer than this to send a block (or is this late with it)
 * trickles: it does not count against MAX_ENDGAME_REQUESTERS, and a new peer may ask for the
 * block beside it.
 */
export const ENDGAME_HOPELESS_MS = 10_000;
/**
 * A peer that has sent nothing yet asks for a duplicate beside holders that should take longer
 * than this (or are late), and have sent something measurable.
 */
export const ENDGAME_NEW_PEER_WAIT_MS = 2_000;
/** A peer's flow (bytes of blocks, whole or not, per second) is sampled over at least this. */
export const FLOW_SAMPLE_MS = 1_000;
/** Weight of a new sample in a peer's request-to-block latency (EWMA). */
export const LATENCY_WEIGHT = 0.2;

/** What a peer's requests look like, per connection. */
export class PeerRequests {
  readonly pipeline: Pipeline;
  /** Request key -> time sent. */
  readonly inflight = new Map<number, number>();
  /**
   * Request key -> when the block should arrive: its place in the queue at the measured rate, or
   * sooner when the peer's blocks lately came sooner after their request (`latency`).
   */
  readonly due = new Map<number, number>();
  /**
   * Time from request to block, averaged (EWMA) over the peer's recent blocks; 0 before the
   * first. A peer that sends all it has at once but has little to send (a partial peer in a
   * swarm held back by a slow seed) measures a low rate: by the rate alone its blocks seemed
   * late, endgame duplicates were asked elsewhere, and both copies came (5-18 % of each
   * download wasted among five tdl peers of a 1 MiB/s seed).
   */
  latency = 0;
  /**
   * Keys taken back recently -> how many copies of the block may still come for them: a late
   * block is waste, not a protocol error. A count, not a flag: a block taken back and asked
   * again twice (two snubs while our download limit held its bytes unread) can come three times.
   */
  readonly cancelled = new Map<number, number>();
  /** When bytes last arrived while requests were out (or requests were first sent). */
  lastProgressAt = 0;
  bytesAtProgress = 0;
  /** When the last whole block came (or requests were first sent, or the peer unchoked). */
  lastBlockAt = 0;
  /**
   * When the last byte came (or the peer unchoked us, or was asked again after a spell with
   * nothing to ask of it): a snub does not move it.
   */
  lastByteAt = 0;
  /** Snubbed, and no byte since: requests sent again do not restart its stall clock. */
  snubbed = false;
  /**
   * Bytes of block data per second while requests are out, the block still arriving included
   * (EWMA of FLOW_SAMPLE_MS samples; 0 until the first): the only rate of a peer that trickles,
   * whose blocks take too long to come whole for `pipeline.rate` to see one.
   */
  flowRate = 0;
  /** When the flow's current sample began (-1: none), and the block bytes then. */
  flowSince = -1;
  flowBytes = 0;
  /** Most requests the peer accepts (its `reqq`), and pieces it lets us fetch while choked. */
  maxOut = MAX_DEPTH;
  readonly allowedFast = new Set<number>();
  /** Piece -> when the peer rejected one of its blocks while unchoking us (REJECT_BACKOFF_MS). */
  readonly rejectedAt = new Map<number, number>();
  hashFailures = 0;
  /** Pieces this peer delivered alone that verified: it may re-fetch pieces that failed. */
  goodPieces = 0;
  /** Payload bytes received: in all, and over the choker's 20 s window. */
  received = 0;
  readonly recentBytes = new RateWindow(20_000);

  constructor(
    readonly conn: PeerConnection,
    now: number,
  ) {
    this.pipeline = new Pipeline(now);
  }

  get depth(): number {
    return Math.min(this.pipeline.depth, this.maxOut);
  }

  /** Bytes received in the last `windowMs` (at most 20 s). */
  recent(now: number, windowMs = 20_000): number {
    return this.recentBytes.sum(now, windowMs);
  }
}

export interface Waste {
  /** Pieces that failed their hash check. */
  hashFailed: number;
  /** Blocks that came twice in endgame. */
  duplicate: number;
  /** Blocks that came after their request was taken back (choke, snub, timeout, cancel). */
  afterCancel: number;
  /**
   * Bytes web seeds sent that were not kept: a copy of a piece peers completed first, a piece cut
   * short (a reply cancelled, failed, or under way when the download ended), bytes a whole-file
   * reply passed over. Their pieces that failed the hash check are in `hashFailed`.
   */
  webSeed: number;
}

export type BlockResult =
  /** `duplicated`: the block was also requested from others (endgame): they should cancel. */
  | { kind: 'ok'; piece: PieceInProgress | null; duplicated: boolean }
  | { kind: 'waste' }
  | { kind: 'fault'; reason: string };

export class RequestScheduler {
  readonly waste: Waste = { hashFailed: 0, duplicate: 0, afterCancel: 0, webSeed: 0 };

  constructor(
    private readonly layout: Layout,
    private readonly picker: PiecePicker,
    private readonly requestTimeoutMs = REQUEST_TIMEOUT_MS,
  ) {}

  /**
   * Top up a peer's requests. Refills in batches, when half the pipeline is free: a write per
   * block would cost a system call per 16 KiB. Returns false when the peer has nothing we need.
   * `hints`: pieces to leave to other peers or to start first (see PiecePicker.pick), asked for
   * only when blocks are picked.
   */
  fill(
    r: PeerRequests,
    trusted: boolean | ((index: number) => boolean),
    all: () => Iterable<PeerRequests> = () => [],
    hints: () => PickHints = () => ({}),
  ): boolean {
    const conn = r.conn;
    const choked = conn.peerChoking;
    if (choked && r.allowedFast.size === 0) return true;
    const depth = r.depth;
    const want = depth - r.inflight.size;
    if (want <= 0 || (r.inflight.size > 0 && want < depth >> 1)) return true;
    // While choked, only the allowed-fast pieces; never one it rejected lately.
    let bf = choked ? narrowed(conn.bitfield, (i) => r.allowedFast.has(i)) : conn.bitfield;
    if (pruneRejected(r.rejectedAt, Date.now())) bf = narrowed(bf, (i) => !r.rejectedAt.has(i));
    const blocks = this.picker.pick(
      conn.address,
      bf,
      want,
      (k) => r.inflight.has(k),
      r.inflight.size,
      trusted,
      (k) => this.worthDuplicating(k, r, all()),
      hints(),
    );
    if (blocks.length === 0) return r.inflight.size > 0 || choked;
    const now = Date.now();
    if (r.inflight.size === 0) {
      r.lastProgressAt = now;
      r.bytesAtProgress = conn.blockBytesIn;
      r.lastBlockAt = now;
      // Nothing was asked of it since (its pieces were taken, or it had none we need): silence
      // then was not a stall. A snubbed peer's clock runs on from its last byte.
      if (!r.snubbed || r.lastByteAt === 0) r.lastByteAt = now;
    }
    // Requests are served in order: a block is due once those before it have come at the rate,
    // or as soon as the peer's blocks lately came after their request when that is sooner (a
    // rate held down by what the peer has to send, not by how fast it sends).
    // Neither known: due never (a peer without a measured rate counts as slow). A peer whose
    // blocks come too slowly to measure whole is paced by its flow of bytes.
    const rate = r.pipeline.rate > 0 ? r.pipeline.rate : r.flowRate;
    const perBlock = rate > 0 ? (1000 * BLOCK_SIZE) / rate : Infinity;
    const soonest = r.latency > 0 ? r.latency : Infinity;
    let ahead = r.inflight.size;
    for (const b of blocks) {
      const key = b.index * BLOCKS_PER_PIECE_KEY + b.block;
      r.inflight.set(key, now);
      r.due.set(key, now + Math.min(++ahead * perBlock, soonest));
    }
    conn.request(blocks);
    return true;
  }

  /**
   * Endgame: may `self` ask for block `key`, in flight to other peers (its holders) already?
   *
   * - Not while a holder should send it within ENDGAME_MIN_WAIT_MS and is no more than
   *   ENDGAME_OVERDUE_MS late with it: it is probably in that peer's send buffer, and a cancel
   *   would not stop it.
   * - Not from a peer that should take longer for it than a holder: a duplicate is for a
   *   faster peer. Each peer's time for a block is its queue at its rate, or at its flow of
   *   bytes when no whole block came lately; a peer that delivered blocks and went idle (its
   *   rate decayed while choked, or with nothing to fetch) counts as fast.
   * - Not beside MAX_ENDGAME_REQUESTERS holders that may still send it, unless this peer is
   *   measured to send it in half the time of the soonest. A holder that should take more than
   *   ENDGAME_HOPELESS_MS (a trickle), or that has sent nothing measurable and held the block a
   *   whole request timeout, does not count.
   * - A peer that has sent nothing yet: beside holders that have sent something measurable and
   *   should take more than ENDGAME_NEW_PEER_WAIT_MS yet. Never beside one that has sent
   *   nothing measurable: two such peers holding both requests of a block would leave a good
   *   peer no way to ask for it. A snubbed peer: only beside holders that do not count. A block
   *   no peer holds (a web seed has it, which no request timeout of ours bounds) may be asked
   *   for at once.
   *
   * Many peers that trickle would otherwise hold every block of the tail between them, and a
   * seeder that came later wait out their trickles (16 peers at 128 B/s: minutes; at 2 KB/s,
   * whose first requests seem near, a minute).
   */
  worthDuplicating(key: number, self: PeerRequests, all: Iterable<PeerRequests>): boolean {
    const now = Date.now();
    const selfRate = self.pipeline.rate >= 1 ? self.pipeline.rate : self.flowRate;
    const unproven = selfRate === 0 && (self.received === 0 || self.snubbed);
    // Its time for one more block, as `fill` would make it due, or its latency alone before its
    // rate is measured (0: unknown, counted as fast).
    const byRate = selfRate > 0 ? (1000 * (self.inflight.size + 1) * BLOCK_SIZE) / selfRate : 0;
    const selfTime =
      byRate === 0 ? self.latency : self.latency > 0 ? Math.min(byRate, self.latency) : byRate;
    let counted = 0;
    let unmeasured = false;
    let soonest = Infinity;
    for (const o of all) {
      if (o === self) continue;
      const sentAt = o.inflight.get(key);
      if (sentAt === undefined) continue;
      const left = this.timeLeft(o, key, now);
      if (left === null) {
        // Nothing measurable yet: it counts until it has held the block a request timeout.
        if (now - sentAt < this.requestTimeoutMs) {
          counted++;
          unmeasured = true;
        }
        continue;
      }
      if (left <= ENDGAME_MIN_WAIT_MS && -left <= ENDGAME_OVERDUE_MS) return false;
      if (selfTime > 0 && left > 0 && selfTime >= left) return false;
      if (left > 0) soonest = Math.min(soonest, left);
      if (left <= ENDGAME_HOPELESS_MS && -left <= ENDGAME_HOPELESS_MS) counted++;
    }
    if (unproven) {
      // A snubbed peer: only beside holders that do not count. A new one: also beside measured
      // holders that should take ENDGAME_NEW_PEER_WAIT_MS more (or are late), never beside one
      // that has sent nothing measurable; and, with nothing in flight, beyond the holders that
      // count (one pick: ENDGAME_DEPTH blocks at most), so that it can show its rate: peers
      // trickling 8 KB/s, new themselves a moment before, held every block twice over.
      if (self.snubbed || unmeasured) return counted === 0;
      if (soonest <= ENDGAME_NEW_PEER_WAIT_MS) return false;
      return counted < MAX_ENDGAME_REQUESTERS || self.inflight.size === 0;
    }
    // Beyond the holders that count, only a peer measured to send it in half the time of any.
    if (counted >= MAX_ENDGAME_REQUESTERS)
      return !unmeasured && selfTime > 0 && 2 * selfTime < soonest;
    return true;
  }

  /**
   * How long until holder `o` should have sent block `key` (negative: late), by its `due` (its
   * queue at its rate, latency or flow), else by its flow (at least the block itself); null when
   * none is known.
   */
  private timeLeft(o: PeerRequests, key: number, now: number): number | null {
    const due = o.due.get(key);
    if (due !== undefined && Number.isFinite(due)) return due - now;
    return o.flowRate > 0 ? (1000 * BLOCK_SIZE) / o.flowRate : null;
  }

  /**
   * A block arrived from a peer. One whose request was taken back (handed to a partial peer, a
   * snub, a choke) and still came is kept like any while it is still missing, and then the copy
   * another peer was asked for is the one to cancel (`duplicated`); once in, it is waste.
   */
  onBlock(r: PeerRequests, index: number, begin: number, data: Buffer): BlockResult {
    const block = begin / BLOCK_SIZE;
    const key = index * BLOCKS_PER_PIECE_KEY + block;
    const asked = Number.isInteger(block) && r.inflight.has(key);
    const expected =
      index < this.layout.pieceCount && begin < this.layout.pieceSize(index)
        ? Math.min(BLOCK_SIZE, this.layout.pieceSize(index) - begin)
        : -1;
    if (!asked) {
      const late = Number.isInteger(block) ? (r.cancelled.get(key) ?? 0) : 0;
      if (late === 0) {
        return {
          kind: 'fault',
          reason: `sent a block we did not request (piece ${index}, offset ${begin})`,
        };
      }
      if (late > 1) r.cancelled.set(key, late - 1);
      else r.cancelled.delete(key);
      if (data.length !== expected) {
        this.waste.afterCancel += data.length;
        return { kind: 'waste' };
      }
    } else if (data.length !== expected) {
      return {
        kind: 'fault',
        reason: `sent a block of ${data.length} bytes, expected ${expected}`,
      };
    }
    const now = Date.now();
    if (asked) {
      const took = Math.max(0, now - r.inflight.get(key)!);
      r.latency =
        r.latency === 0 ? Math.max(1, took) : r.latency + LATENCY_WEIGHT * (took - r.latency);
      r.inflight.delete(key);
      r.due.delete(key);
      r.pipeline.onBlock(data.length);
      this.noteBytes(r, now, data.length);
    }
    // Requests other peers hold for it: to cancel once it is in.
    const others = this.picker.requestCount(index, block) - (asked ? 1 : 0);
    const got = this.picker.receive(index, block, data, r.conn.address);
    if (got === 'dup' || got === 'stale') {
      if (asked) this.waste.duplicate += data.length;
      else this.waste.afterCancel += data.length;
      return { kind: 'waste' };
    }
    if (!asked) this.noteBytes(r, now, data.length);
    return { kind: 'ok', piece: got, duplicated: others > 0 };
  }

  /** Is a reject of this block the answer to a cancel of ours (see onReject)? */
  answersCancel(r: PeerRequests, index: number, begin: number): boolean {
    return (r.cancelled.get(index * BLOCKS_PER_PIECE_KEY + begin / BLOCK_SIZE) ?? 0) > 0;
  }

  /** Block bytes taken from `r`. */
  private noteBytes(r: PeerRequests, now: number, bytes: number): void {
    r.lastBlockAt = now;
    r.received += bytes;
    r.recentBytes.add(now, bytes);
  }

  /**
   * The peer rejected one of our requests (BEP 6). While it unchokes us (and the piece is not
   * allowed-fast), it will not send that piece now: not asked of it for REJECT_BACKOFF_MS.
   * Rejects after a choke are the expected answer to the requests it dropped, and a reject of a
   * block we cancelled is the answer to that cancel (a peer answers a cancel with the block or a
   * reject, in the order of our messages), not to a request of the block sent since: a snub's
   * cancels and its new requests of the same blocks went out together, and libtorrent's rejects
   * of the cancelled ones kept the piece from that peer for 30 s (a lone seeder: a stall).
   */
  onReject(r: PeerRequests, index: number, begin: number): void {
    const key = index * BLOCKS_PER_PIECE_KEY + begin / BLOCK_SIZE;
    const cancels = r.cancelled.get(key) ?? 0;
    if (cancels > 0) {
      if (cancels > 1) r.cancelled.set(key, cancels - 1);
      else r.cancelled.delete(key);
      return;
    }
    if (!r.inflight.has(key)) return;
    r.inflight.delete(key);
    r.due.delete(key);
    this.picker.release(index, begin / BLOCK_SIZE);
    if (!r.conn.peerChoking && !r.allowedFast.has(index)) {
      if (r.rejectedAt.size < MAX_REJECTED_REMEMBERED || r.rejectedAt.has(index)) {
        r.rejectedAt.set(index, Date.now());
      }
    }
  }

  /**
   * Peer `to` announced piece `index` (`have`) while we fetch it from others: the piece is handed
   * over to `to` (PiecePicker.handOver), and the blocks not yet received are taken back, with
   * `cancel`, from every other peer that `from` accepts. Nothing happens unless such a peer has
   * requests of the piece out. Returns the peers whose requests were taken back.
   */
  handOver(
    index: number,
    to: PeerRequests,
    all: Iterable<PeerRequests>,
    from: (r: PeerRequests) => boolean,
  ): PeerRequests[] {
    const p = this.picker.inProgress.get(index);
    if (!p || p.complete || p.exclusive) return [];
    const base = index * BLOCKS_PER_PIECE_KEY;
    const holders: PeerRequests[] = [];
    for (const o of all) {
      if (o === to) continue;
      let holds = false;
      for (let b = 0; b < p.blockCount && !holds; b++) holds = o.inflight.has(base + b);
      if (holds) {
        if (!from(o)) return [];
        holders.push(o);
      }
    }
    if (holders.length === 0 || !this.picker.handOver(index, to.conn.address)) return [];
    for (const o of holders) {
      for (let b = 0; b < p.blockCount; b++) {
        if (o.inflight.has(base + b)) this.withdraw(o, base + b, true);
      }
    }
    log('piece %d handed over to %s', index, to.conn.address);
    return holders;
  }

  /**
   * Endgame: the block arrived from one peer (`from`; null: from a web seed), so the other
   * requesters cancel theirs.
   */
  cancelElsewhere(
    index: number,
    block: number,
    from: PeerRequests | null,
    all: Iterable<PeerRequests>,
  ): PeerRequests[] {
    const key = index * BLOCKS_PER_PIECE_KEY + block;
    const touched: PeerRequests[] = [];
    for (const o of all) {
      if (o === from || !o.inflight.has(key)) continue;
      this.withdraw(o, key, true);
      log('%s cancel piece %d (endgame)', o.conn.address, index);
      touched.push(o);
    }
    return touched;
  }

  /**
   * Take a request back: the block is free for the picker again (unless it arrived meanwhile),
   * and a block that still comes for it is waste, not a protocol error. With `cancel`, the peer
   * is told.
   */
  withdraw(r: PeerRequests, key: number, cancel: boolean): void {
    const index = Math.floor(key / BLOCKS_PER_PIECE_KEY);
    const block = key % BLOCKS_PER_PIECE_KEY;
    r.inflight.delete(key);
    r.due.delete(key);
    this.picker.release(index, block);
    const times = r.cancelled.get(key);
    if (times === undefined) makeRoom(r.cancelled, MAX_CANCELLED_REMEMBERED);
    r.cancelled.set(key, (times ?? 0) + 1);
    if (cancel) {
      r.conn.cancel(index, block * BLOCK_SIZE, this.layout.blockSize(index, block, BLOCK_SIZE));
    }
  }

  /** Free every request in flight to a peer (choke, snub, disconnect). */
  releaseAll(r: PeerRequests, cancel = false): void {
    for (const key of [...r.inflight.keys()]) this.withdraw(r, key, cancel);
    this.picker.unclaim(r.conn.address);
  }

  /** The peer unchoked us: its silence so far was not a stall. */
  unchoked(r: PeerRequests): void {
    r.lastProgressAt = r.lastBlockAt = r.lastByteAt = Date.now();
    r.bytesAtProgress = r.conn.blockBytesIn;
    r.snubbed = false;
  }

  /**
   * The process did not run for `gapMs` (stopped by SIGSTOP, or a system suspend, which the wall
   * clock counts): the peer's silence meanwhile was ours. Its clocks move on by the gap, so that
   * neither a stall, a snub nor a request's deadline counts it (after a stop of 75 s both
   * seeders were dropped for "sent no data for 75s", and every request in flight was asked again
   * of others, the first copies then coming for nothing: 4-6 MiB of a 128 MiB download).
   */
  paused(r: PeerRequests, gapMs: number): void {
    if (r.lastProgressAt > 0) r.lastProgressAt += gapMs;
    if (r.lastBlockAt > 0) r.lastBlockAt += gapMs;
    if (r.lastByteAt > 0) r.lastByteAt += gapMs;
    r.flowSince = -1;
    for (const [key, at] of r.inflight) r.inflight.set(key, at + gapMs);
    for (const [key, at] of r.due) r.due.set(key, at + gapMs);
  }

  /**
   * Once a tick: snub or stall checks and request timeouts. Returns 'drop' with a reason when the
   * peer truly stopped, 'snubbed' when its requests went back to the picker.
   */
  check(
    r: PeerRequests,
    now: number,
    strict = false,
  ): { drop: string } | 'snubbed' | 'expired' | null {
    r.pipeline.tick(now);
    if (r.inflight.size === 0 || r.conn.readHeld) {
      r.flowSince = -1;
    } else {
      sampleFlow(r, now);
    }
    if (r.inflight.size === 0) return null;
    // Our download limit holds its socket unread: what it sent waits in the kernel, which is not
    // silence. One read of 256 KiB at --max-download-rate 16K holds every socket 16 s, past
    // SNUB_MS: the seeder was snubbed on each read, its blocks taken back and asked again, and
    // they came after the cancels (waste); the download stood still for 100 s.
    if (r.conn.readHeld) {
      r.lastProgressAt = r.lastByteAt = r.lastBlockAt = now;
      return null;
    }
    // Single-peer mode with other addresses to try: a peer that delivers no whole block in
    // SNUB_MS (a trickle) gives its only slot up.
    if (strict && now - r.lastBlockAt > SNUB_MS) {
      return { drop: `sent no whole block for ${SNUB_MS / 1000}s` };
    }
    // Only block data is progress: a peer that sends keep-alives or `have`s but no block for
    // our requests is silent as far as they are concerned.
    const blockBytes = r.conn.blockBytesIn;
    if (blockBytes !== r.bytesAtProgress) {
      r.bytesAtProgress = blockBytes;
      r.lastProgressAt = r.lastByteAt = now;
      r.snubbed = false;
    }
    const stalled = now - r.lastByteAt;
    if (stalled > STALL_MS) return { drop: `sent no data for ${Math.round(stalled / 1000)}s` };
    const silent = now - r.lastProgressAt;
    if (silent > SNUB_MS) {
      log('%s snubbed: no data for %dms', r.conn.address, silent);
      r.pipeline.snubbed();
      r.flowRate = 0;
      r.snubbed = true;
      this.releaseAll(r, true);
      // Measured again from now: its next requests get a full SNUB_MS.
      r.lastProgressAt = now;
      return 'snubbed';
    }
    // A request older than its deadline (scaled to the peer's queue at its rate) goes to others.
    // A peer whose rate is too low to measure (a trickle of a block every few seconds) keeps its
    // requests: it is sending them. One that sends no block data at all is snubbed above, and
    // in endgame its blocks are asked of others too (worthDuplicating).
    const rate = Math.max(r.pipeline.rate, 1);
    const deadline = Math.max(
      this.requestTimeoutMs,
      (3 * 1000 * r.inflight.size * BLOCK_SIZE) / rate,
    );
    let expired = 0;
    for (const [key, sentAt] of [...r.inflight]) {
      if (now - sentAt < deadline) continue;
      this.withdraw(r, key, true);
      expired++;
    }
    if (expired > 0) {
      log('%s: %d requests timed out, given to other peers', r.conn.address, expired);
      return 'expired';
    }
    return null;
  }
}

/** One sample of a peer's flow (see PeerRequests.flowRate), once FLOW_SAMPLE_MS went by. */
function sampleFlow(r: PeerRequests, now: number): void {
  const bytes = r.conn.blockBytesIn;
  if (r.flowSince < 0) {
    r.flowSince = now;
    r.flowBytes = bytes;
    return;
  }
  if (now - r.flowSince < FLOW_SAMPLE_MS) return;
  const sample = ((bytes - r.flowBytes) * 1000) / (now - r.flowSince);
  r.flowRate = r.flowRate === 0 ? sample : 0.5 * r.flowRate + 0.5 * sample;
  r.flowSince = now;
  r.flowBytes = bytes;
  // Requests sent before the peer was measured were due never: now by their place in its queue
  // at its rate, or at its flow. With no whole block measured, all of them are, each sample: a
  // trickle's last request is not as near as its first (16 requests at 2 KB/s, 8 s a block,
  // end 2 minutes out).
  const rate = r.pipeline.rate > 0 ? r.pipeline.rate : r.flowRate;
  if (rate <= 0) return;
  const all = r.pipeline.rate === 0 && r.latency === 0;
  const perBlock = (1000 * BLOCK_SIZE) / rate;
  let ahead = 0;
  for (const key of r.inflight.keys()) {
    ahead++;
    if (all || !Number.isFinite(r.due.get(key) ?? Infinity)) r.due.set(key, now + ahead * perBlock);
  }
}

/** `bf` narrowed to the pieces `keep` accepts (all the picker reads of a bitfield: size, has). */
function narrowed(bf: Bitfield, keep: (i: number) => boolean): Bitfield {
  return { size: bf.size, has: (i: number) => keep(i) && bf.has(i) } as unknown as Bitfield;
}

/** Forgets rejects older than REJECT_BACKOFF_MS; false when none is left. */
function pruneRejected(rejectedAt: Map<number, number>, now: number): boolean {
  for (const [i, t] of rejectedAt) if (now - t >= REJECT_BACKOFF_MS) rejectedAt.delete(i);
  return rejectedAt.size > 0;
}
