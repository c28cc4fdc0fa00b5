/**
 * Fetching a torrent's info dictionary from peers (ut_metadata, BEP 9), as a pure state
 * machine: the caller feeds it extended handshakes and decoded messages, and sends the
 * requests it hands out. No sockets, no timers; time comes from `opts.now`.
 *
 * - Pieces of 16 KiB are asked from several peers at once, at most `maxPerPeer` (2) in flight
 *   per peer; free pieces go to whichever peer asks first, so they spread across peers.
 * - One attempt at a time, for one `metadata_size`: the size most peers announce (among those
 *   not resting after a reject; when all the peers of the attempt's size rest, or none of them
 *   has sent a piece METADATA_HEDGE_MS after the first was asked, another size is tried), and
 *   first of all a size whose attempts hashed wrong the fewest times.
 *   Pieces are kept (copied) as they arrive, so memory follows what was received, at
 *   most MAX_METADATA_SIZE plus the piece being received per peer.
 * - When every piece is there, SHA-1(info) must equal the info hash. On a mismatch, if one
 *   peer sent every piece it is dropped; otherwise no one can be blamed, and from then on an
 *   attempt takes every piece from one peer (exclusive mode), so the next mismatch has a
 *   single culprit. Each mismatch drops a peer; one that comes back under another port
 *   cannot win the next attempt for its size, and after FRUITLESS_ATTEMPTS mismatches the
 *   pieces received are no progress for `--timeout`: so this ends.
 * - A `data` message with another `total_size` than the peer announced, a piece index out of
 *   range, a piece never asked of that peer (or sent more times than asked), or a piece of
 *   the wrong length drops the peer.
 * - A `reject` frees the piece and rests the peer (5 s, doubling to 60 s); a request left
 *   unanswered for METADATA_REQUEST_TIMEOUT_MS is given to another peer, and a peer that lets
 *   MAX_TIMEOUTS requests time out is not asked again (it may still serve the data later).
 * - Once no piece is left unasked, a peer with a free slot is also asked for a piece that
 *   another peer was asked for METADATA_HEDGE_MS ago or more and has not sent (the same piece
 *   at most once per METADATA_HEDGE_MS, as libtorrent does, except by a peer never asked
 *   anything yet, which takes it once it has waited that long); the first copy counts. A peer
 *   that announced the metadata and never answers then holds the fetch back a few seconds,
 *   not two request timeouts. Not in exclusive mode, whose attempt has a single source: there,
 *   an attempt whose peer has sent nothing METADATA_HEDGE_MS after it was asked goes whole to
 *   the next peer that asks.
 */
import { createHash } from 'node:crypto';
import { encode } from '../metainfo/bencode.js';
import {
  MAX_METADATA_SIZE,
  type UtMetadataMessage,
  metadataPieceCount,
  metadataPieceLength,
} from '../wire/ut-metadata.js';

/** Requests in flight per peer by default (as libtorrent). */
export const METADATA_REQUESTS_PER_PEER = 2;
/** A metadata request unanswered this long is given to another peer. */
export const METADATA_REQUEST_TIMEOUT_MS = 15_000;
/**
 * With no piece left unasked, a piece asked this long ago and not received is asked of another
 * peer too (and then again of a third at most this often).
 */
export const METADATA_HEDGE_MS = 3_000;
/**
 * Attempts that ended in a hash mismatch after which no piece of metadata is progress for
 * `--timeout` any more (`piecesCount`): peers that lie, are dropped, and come back under new
 * ports would otherwise hold the wait open for good.
 */
export const FRUITLESS_ATTEMPTS = 3;
/** Requests a peer may let time out before it is asked no more. */
export const MAX_TIMEOUTS = 2;
/** Rest after a peer's first reject; doubles with each further reject, up to the max. */
export const REJECT_BACKOFF_MS = 5_000;
export const MAX_REJECT_BACKOFF_MS = 60_000;

export type FetchResult = 'ok' | 'done' | { drop: string };

interface PeerState {
  size: number;
  /** Pieces counted against this peer's cap, with the time asked. */
  inflight: Map<number, number>;
  /**
   * Pieces asked of this peer and not answered yet (including timed out ones), with how many
   * times: a piece asked again after a timeout is answered twice.
   */
  asked: Map<number, number>;
  rejects: number;
  restUntil: number;
  timeouts: number;
  /** Asked for a piece at least once (else a peer whose worth is unknown yet). */
  tried: boolean;
}

interface Attempt {
  size: number;
  pieces: (Buffer | null)[];
  /** Peer that supplied each piece. */
  from: (string | null)[];
  /** Piece -> the peers currently asked for it (more than one once hedged). */
  inflight: Map<number, Set<string>>;
  received: number;
  /** In exclusive mode: the one peer this attempt takes pieces from. */
  exclusive: string | null;
  /** When its first piece was asked for (Infinity before). */
  firstAskAt: number;
}

/** Counts an answer (data or reject) to one of `p`'s requests for `piece`; false if none is left. */
function answered(p: PeerState, piece: number): boolean {
  const n = p.asked.get(piece);
  if (n === undefined) return false;
  if (n > 1) p.asked.set(piece, n - 1);
  else p.asked.delete(piece);
  return true;
}

export class MetadataFetch {
  readonly #infoHash: Buffer;
  readonly #maxPerPeer: number;
  readonly #now: () => number;
  readonly #timeoutMs: number;
  readonly #hedgeMs: number;
  readonly #peers = new Map<string, PeerState>();
  readonly #banned = new Set<string>();
  #attempt: Attempt | null = null;
  /** Attempts that hashed wrong, per metadata_size. */
  readonly #failedSizes = new Map<number, number>();
  #mismatches = 0;
  #exclusiveMode = false;
  #info: Buffer | null = null;

  constructor(
    infoHash: Buffer,
    opts: {
      maxPerPeer?: number;
      now?: () => number;
      requestTimeoutMs?: number;
      hedgeMs?: number;
    } = {},
  ) {
    if (infoHash.length !== 20) throw new RangeError('info hash must be 20 bytes');
    this.#infoHash = Buffer.from(infoHash);
    this.#maxPerPeer = Math.max(1, opts.maxPerPeer ?? METADATA_REQUESTS_PER_PEER);
    this.#now = opts.now ?? Date.now;
    this.#timeoutMs = opts.requestTimeoutMs ?? METADATA_REQUEST_TIMEOUT_MS;
    this.#hedgeMs = opts.hedgeMs ?? METADATA_HEDGE_MS;
  }

  /** When done: the exact info dictionary bytes, whose SHA-1 is the info hash. */
  get info(): Buffer | null {
    return this.#info;
  }

  /**
   * Whether a piece received now is progress for `--timeout`: not once FRUITLESS_ATTEMPTS
   * attempts hashed wrong (their pieces were not).
   */
  get piecesCount(): boolean {
    return this.#mismatches < FRUITLESS_ATTEMPTS;
  }

  /** True once every piece of one attempt was received at some point and hashed wrong. */
  get exclusiveMode(): boolean {
    return this.#exclusiveMode;
  }

  /**
   * A peer's `metadata_size` from its extended handshake (again when it sends a new one).
   * Returns false, and forgets the peer, for a size of 0 or above MAX_METADATA_SIZE, or a
   * peer dropped earlier for bad metadata.
   */
  addPeer(id: string, metadataSize: number): boolean {
    if (this.#banned.has(id)) return false;
    const valid =
      Number.isInteger(metadataSize) && metadataSize > 0 && metadataSize <= MAX_METADATA_SIZE;
    const old = this.#peers.get(id);
    if (old && old.size === metadataSize) return true;
    if (old) this.removePeer(id);
    if (!valid) return false;
    this.#peers.set(id, {
      size: metadataSize,
      inflight: new Map(),
      asked: new Map(),
      rejects: 0,
      restUntil: 0,
      timeouts: 0,
      tried: false,
    });
    return true;
  }

  /** The peer disconnected (or its connection is dropped): its requests are freed. */
  removePeer(id: string): void {
    const p = this.#peers.get(id);
    if (!p) return;
    this.#freeRequests(id, p);
    this.#peers.delete(id);
    this.#afterPeerLoss(id);
  }

  /** Peers that announced a usable metadata size and may still be asked. */
  peersWithMetadata(): number {
    let n = 0;
    for (const p of this.#peers.values()) if (this.#usable(p)) n++;
    return n;
  }

  /** Whether this peer announced a usable metadata size and may still be asked. */
  canServe(id: string): boolean {
    const p = this.#peers.get(id);
    return p !== undefined && this.#usable(p);
  }

  /**
   * Piece numbers to request from this peer now (send a ut_metadata `request` for each).
   * Call after addPeer, after each message from the peer, and on a periodic tick (about a
   * second) for every peer, so that timed-out requests and rested peers are picked up.
   */
  requestsFor(id: string): number[] {
    const p = this.#peers.get(id);
    if (this.#info || !p || !this.#usable(p)) return [];
    const now = this.#now();
    if (now < p.restUntil) return [];
    this.#expire(now);
    // Its own requests may just have timed out: those pieces go to others, not back to it.
    if (!this.#usable(p)) return [];
    let a = this.#ensureAttempt(now);
    if (a && a.size !== p.size && !this.#anyReady(a.size, now)) {
      // Every peer of the attempt's size rests after a reject: this peer's size is tried
      // instead (peers that only reject must not keep the others waiting).
      for (const q of this.#peers.values()) if (q.size === a.size) q.inflight.clear();
      this.#attempt = null;
      a = this.#ensureAttempt(now);
    }
    if (a && a.size !== p.size && a.received === 0 && now - a.firstAskAt >= this.#hedgeMs) {
      // Nothing came for the attempt's size since it was first asked (a peer announcing a size
      // it never serves, which a tie of votes let go first): this peer's size is tried
      // instead. Late answers for the other size are taken as answers and dropped.
      for (const q of this.#peers.values()) if (q.size === a.size) q.inflight.clear();
      this.#attempt = null;
      a = this.#ensureAttempt(now, p.size);
    }
    if (!a || a.size !== p.size) return [];
    // Not asked anything before this call: see the hedging below.
    const untried = !p.tried;
    if (this.#exclusiveMode) {
      if (a.exclusive === null) a.exclusive = id;
      else if (a.exclusive !== id && a.received === 0) this.#takeOverSilent(a, id, now);
      if (a.exclusive !== id) return [];
    }
    const out: number[] = [];
    for (let i = 0; i < a.pieces.length && p.inflight.size < this.#maxPerPeer; i++) {
      if (a.pieces[i] !== null || a.inflight.has(i)) continue;
      this.#ask(a, id, p, i, now);
      out.push(i);
    }
    // A slot still free: every piece is received or asked for. One asked of others long enough
    // ago is asked of this peer too (not in exclusive mode: one source per attempt there): by a
    // peer asked before, once per METADATA_HEDGE_MS for each piece; by a peer never asked yet,
    // as soon as the piece has waited that long. Peers that announce the metadata and never
    // send it would otherwise each take their turn of 3 s before a peer behind them that does.
    if (this.#exclusiveMode) return out;
    for (let i = 0; i < a.pieces.length && p.inflight.size < this.#maxPerPeer; i++) {
      const holders = a.inflight.get(i);
      if (a.pieces[i] !== null || !holders || holders.has(id)) continue;
      const since = untried ? this.#firstAsked(i, holders) : this.#lastAsked(i, holders);
      if (now - since < this.#hedgeMs) continue;
      this.#ask(a, id, p, i, now);
      out.push(i);
    }
    return out;
  }

  /**
   * An exclusive attempt whose peer has sent nothing for METADATA_HEDGE_MS since it was asked
   * goes to peer `id` instead (hedging is not possible there: one source per attempt). A peer
   * that announced the metadata and never answers held the fetch up for a request timeout.
   */
  #takeOverSilent(a: Attempt, id: string, now: number): void {
    const holder = a.exclusive!;
    const q = this.#peers.get(holder);
    let first = Infinity;
    for (const at of q?.inflight.values() ?? []) first = Math.min(first, at);
    if (q === undefined || first === Infinity || now - first < this.#hedgeMs) return;
    this.#freeRequests(holder, q);
    a.exclusive = id;
  }

  #ask(a: Attempt, id: string, p: PeerState, piece: number, now: number): void {
    if (a.firstAskAt === Infinity) a.firstAskAt = now;
    p.tried = true;
    const holders = a.inflight.get(piece);
    if (holders) holders.add(id);
    else a.inflight.set(piece, new Set([id]));
    p.inflight.set(piece, now);
    p.asked.set(piece, (p.asked.get(piece) ?? 0) + 1);
  }

  /** When `piece` was first asked of one of `holders` (who still hold it). */
  #firstAsked(piece: number, holders: Set<string>): number {
    let first = Infinity;
    for (const h of holders)
      first = Math.min(first, this.#peers.get(h)?.inflight.get(piece) ?? first);
    return first;
  }

  /** When `piece` was last asked of one of `holders`. */
  #lastAsked(piece: number, holders: Set<string>): number {
    let last = -Infinity;
    for (const h of holders) last = Math.max(last, this.#peers.get(h)?.inflight.get(piece) ?? last);
    return last;
  }

  /** A decoded ut_metadata message from this peer. */
  onMessage(id: string, m: UtMetadataMessage): FetchResult {
    if (m.type === 'request' || m.type === 'unknown') return 'ok';
    const p = this.#peers.get(id);
    if (!p) {
      if (m.type === 'reject' || this.#info) return 'ok';
      return this.#banned.has(id) ? 'ok' : { drop: 'metadata piece without metadata_size' };
    }
    if (m.type === 'reject') {
      if (!answered(p, m.piece)) return 'ok';
      this.#release(id, p, m.piece);
      p.rejects++;
      const rest = REJECT_BACKOFF_MS * 2 ** Math.min(p.rejects - 1, 8);
      p.restUntil = this.#now() + Math.min(MAX_REJECT_BACKOFF_MS, rest);
      // An exclusive attempt cannot wait for a peer that refuses: start over with another.
      if (this.#attempt?.exclusive === id) {
        this.#freeRequests(id, p);
        this.#attempt = null;
      }
      return 'ok';
    }
    // data
    if (m.totalSize !== p.size) {
      return this.#drop(id, `metadata total_size ${m.totalSize} differs from ${p.size}`);
    }
    const count = metadataPieceCount(p.size);
    if (m.piece >= count) {
      return this.#drop(id, `metadata piece ${m.piece} out of range (${count} pieces)`);
    }
    if (!answered(p, m.piece)) {
      if (this.#info) return 'ok';
      return this.#drop(id, `metadata piece ${m.piece} was not requested`);
    }
    const expected = metadataPieceLength(p.size, m.piece);
    if (m.data.length !== expected) {
      return this.#drop(
        id,
        `metadata piece ${m.piece} is ${m.data.length} bytes, expected ${expected}`,
      );
    }
    this.#release(id, p, m.piece);
    const a = this.#attempt;
    if (this.#info || !a || a.size !== p.size || a.pieces[m.piece] !== null) return 'ok';
    if (this.#exclusiveMode && a.exclusive !== id) return 'ok';
    // Other peers asked for the same piece (after a timeout, or hedged) no longer hold a slot
    // for it; their copies may still come, as answers to requests made.
    for (const holder of a.inflight.get(m.piece) ?? []) {
      this.#peers.get(holder)?.inflight.delete(m.piece);
    }
    a.inflight.delete(m.piece);
    a.pieces[m.piece] = Buffer.from(m.data);
    a.from[m.piece] = id;
    a.received++;
    if (a.received < a.pieces.length) return 'ok';
    return this.#verify(a);
  }

  #verify(a: Attempt): FetchResult {
    const info = Buffer.concat(a.pieces as Buffer[], a.size);
    if (createHash('sha1').update(info).digest().equals(this.#infoHash)) {
      this.#info = info;
      this.#attempt = null;
      for (const p of this.#peers.values()) {
        p.inflight.clear();
        p.asked.clear();
      }
      return 'done';
    }
    const culprits = new Set(a.from);
    this.#attempt = null;
    this.#mismatches++;
    this.#failedSizes.set(a.size, (this.#failedSizes.get(a.size) ?? 0) + 1);
    for (const p of this.#peers.values()) p.inflight.clear();
    if (culprits.size === 1) {
      const id = a.from[0]!;
      return this.#drop(id, 'metadata does not match the info hash');
    }
    // Several peers contributed: no one can be blamed. From now on each attempt takes all its
    // pieces from a single peer, so that a failure has one culprit.
    this.#exclusiveMode = true;
    return 'ok';
  }

  #usable(p: PeerState): boolean {
    return p.timeouts < MAX_TIMEOUTS;
  }

  /** Drops a peer for bad metadata: it is forgotten and never added again. */
  #drop(id: string, reason: string): FetchResult {
    this.#banned.add(id);
    this.removePeer(id);
    return { drop: reason };
  }

  /** Frees the slot and the attempt's claim of `piece` held by peer `id`. */
  #release(id: string, p: PeerState, piece: number): void {
    p.inflight.delete(piece);
    const holders = this.#attempt?.inflight.get(piece);
    if (holders?.delete(id) && holders.size === 0) this.#attempt!.inflight.delete(piece);
  }

  #freeRequests(id: string, p: PeerState): void {
    for (const piece of p.inflight.keys()) this.#release(id, p, piece);
    p.inflight.clear();
  }

  /** After a peer left: restart an exclusive attempt it fed, or the attempt of a lost size. */
  #afterPeerLoss(id: string): void {
    const a = this.#attempt;
    if (!a) return;
    if (a.exclusive === id) {
      this.#attempt = null;
      return;
    }
    for (const p of this.#peers.values()) if (p.size === a.size && this.#usable(p)) return;
    this.#attempt = null;
  }

  /** Requests unanswered for the timeout free their piece for another peer. */
  #expire(now: number): void {
    const a = this.#attempt;
    if (!a) return;
    for (const [piece, holders] of [...a.inflight]) {
      for (const holder of [...holders]) {
        const p = this.#peers.get(holder);
        const at = p?.inflight.get(piece);
        if (p === undefined || at === undefined || now - at < this.#timeoutMs) continue;
        this.#release(holder, p, piece);
        p.timeouts++;
        if (!this.#usable(p)) {
          this.#freeRequests(holder, p);
          this.#afterPeerLoss(holder);
          if (this.#attempt !== a) return;
        }
      }
    }
  }

  /** Whether a usable peer that announced `size` may be asked now (it is not resting). */
  #anyReady(size: number, now: number): boolean {
    for (const p of this.#peers.values()) {
      if (p.size === size && this.#usable(p) && now >= p.restUntil) return true;
    }
    return false;
  }

  /**
   * The current attempt, starting one for a size usable peers announce, among those not resting
   * after a reject: the size whose attempts hashed wrong the fewest times, then the one most
   * peers announce, then the smallest (a lie costs less to find out). Peers dropped for a
   * mismatch that come back under new ports cannot make their size win again and again over
   * the size of an honest peer.
   */
  #ensureAttempt(now: number, sizeWanted?: number): Attempt | null {
    if (this.#attempt) return this.#attempt;
    if (sizeWanted !== undefined) return this.#startAttempt(sizeWanted);
    const votes = new Map<number, number>();
    for (const p of this.#peers.values()) {
      if (this.#usable(p) && now >= p.restUntil) votes.set(p.size, (votes.get(p.size) ?? 0) + 1);
    }
    let size = 0;
    let bestFailed = Infinity;
    let bestVotes = 0;
    for (const [s, n] of votes) {
      const failed = this.#failedSizes.get(s) ?? 0;
      const better =
        failed < bestFailed ||
        (failed === bestFailed && (n > bestVotes || (n === bestVotes && s < size)));
      if (!better) continue;
      size = s;
      bestFailed = failed;
      bestVotes = n;
    }
    if (bestVotes === 0) return null;
    return this.#startAttempt(size);
  }

  #startAttempt(size: number): Attempt {
    const count = metadataPieceCount(size);
    this.#attempt = {
      size,
      pieces: new Array<Buffer | null>(count).fill(null),
      from: new Array<string | null>(count).fill(null),
      inflight: new Map(),
      received: 0,
      exclusive: null,
      firstAskAt: Infinity,
    };
    return this.#attempt;
  }
}

/**
 * The bytes of a .torrent file around the exact info dictionary bytes `info` (so that its
 * info hash is unchanged): `d[8:announce…][13:announce-list…]4:info<info>[8:url-list…]e`, with
 * `announce` the first tracker, `announce-list` the tiers and `url-list` the web seeds (a
 * magnet's `ws`). Parse it with parseTorrent for the same validation and path checks as any
 * .torrent (a web seed that is not an http(s) URL is then a warning, and left out).
 */
export function torrentFromInfo(
  info: Buffer,
  trackers: string[][],
  webSeeds: readonly string[] = [],
): Buffer {
  const tiers = trackers.map((t) => t.filter((u) => u !== '')).filter((t) => t.length > 0);
  const parts: Buffer[] = [Buffer.from('d')];
  if (tiers.length > 0) {
    parts.push(encode('announce'), encode(tiers[0]![0]!));
    parts.push(encode('announce-list'), encode(tiers));
  }
  parts.push(encode('info'), info);
  const seeds = webSeeds.filter((u) => u !== '');
  if (seeds.length > 0) parts.push(encode('url-list'), encode(seeds));
  parts.push(Buffer.from('e'));
  return Buffer.concat(parts);
}
