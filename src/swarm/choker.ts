/**
 * Who we upload to: a pure choker. No timers, no sockets; the time, the peers' counters and the
 * randomness are inputs, the output is the set of peers to keep or make unchoked.
 *
 * - Downloading (tit for tat): every CHOKE_INTERVAL_MS the `slots` interested peers that sent
 *   us the most in the last 20 s get the regular slots; a peer that sent us nothing for SNUB_MS
 *   ranks below every other; peers that tie (sent us nothing) take turns as when seeding.
 * - Seeding: round robin with a byte quota, so every interested peer gets served in turn, the
 *   fastest first when there are more unchoked peers than slots. A peer that reads nothing of
 *   what we send has had its turn.
 * - Plus one optimistic unchoke, rotated every OPTIMISTIC_INTERVAL_MS, new peers three times as
 *   likely to be picked.
 *
 * The rules and their maths are in docs/DESIGN.md ("Choker").
 */

export const CHOKE_INTERVAL_MS = 10_000;
export const OPTIMISTIC_INTERVAL_MS = 30_000;
export const SNUB_MS = 60_000;
/** Regular upload slots (`--upload-slots`) unless told otherwise. */
export const DEFAULT_UPLOAD_SLOTS = 4;
/** A peer connected less than this long ago is "new" for the optimistic unchoke ... */
export const NEW_PEER_MS = 60_000;
/** ... and this many times as likely to be picked as another. */
export const NEW_PEER_WEIGHT = 3;
/** Seeding: bytes a peer may receive in one turn before it yields its slot to a waiting peer. */
export const DEFAULT_SEED_QUOTA_BYTES = 4 * 1024 * 1024;
/** Seeding: a turn lasts at least this long (so a slot is worth the unchoke) ... */
export const SEED_MIN_TURN_MS = 2 * CHOKE_INTERVAL_MS;
/** ... and at most this long, even for a peer too slow to use up its quota. */
export const SEED_MAX_TURN_MS = 6 * CHOKE_INTERVAL_MS;
/**
 * A turn in which the peer took nothing (interested, but it asked for no block) is over after
 * this long: its slot would otherwise stand empty for SEED_MAX_TURN_MS while others wait.
 */
export const SEED_IDLE_TURN_MS = CHOKE_INTERVAL_MS;

export interface ChokerPeer {
  /** Address, unique among the peers passed to one `decide`. */
  id: string;
  /** The peer is interested in us. */
  interested: boolean;
  /** When the connection opened (ms, same clock as `now`). */
  connectedAt: number;
  /** Piece payload bytes the peer sent us in the last 20 s. */
  downloadedRecent: number;
  /** When the peer last sent us piece payload (ms); 0 = never. */
  lastReceivedAt: number;
  /** Piece payload bytes we sent it in the last 20 s. */
  uploadedRecent: number;
  /** Piece payload bytes we sent it since we last unchoked it (the seeding quota). */
  uploadedSinceUnchoke: number;
  /** We currently unchoke it. */
  unchoked: boolean;
  /**
   * Its socket has held all we may queue for it, without the peer reading any, for a while
   * (see UploadService.notReading): an unchoked peer that takes nothing holds its slot for no
   * one's good. Absent: false.
   */
  notReading?: boolean;
}

export interface ChokerOptions {
  /** Regular slots; default DEFAULT_UPLOAD_SLOTS. 0 unchokes nobody (no upload at all). */
  slots?: number;
  /** Uniform in [0, 1); seeded in tests. Default Math.random. */
  random?: () => number;
  /** Seeding byte quota per turn; default DEFAULT_SEED_QUOTA_BYTES. */
  seedQuotaBytes?: number;
}

/** A peer is snubbed when it has sent us nothing for SNUB_MS (counting from its connection). */
export function isSnubbed(now: number, p: ChokerPeer): boolean {
  return now - Math.max(p.lastReceivedAt, p.connectedAt) >= SNUB_MS;
}

/** Our last observed choke state of a peer and since when (ms). */
interface Since {
  unchoked: boolean;
  at: number;
}

const byId = (a: ChokerPeer, b: ChokerPeer): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

export class Choker {
  readonly #slots: number;
  readonly #random: () => number;
  readonly #quota: number;
  #optimistic: string | null = null;
  #optimisticAt = -Infinity;
  #regular = new Set<string>();
  #lastRoundAt = -Infinity;
  /** Per present peer: when it was last choked or unchoked. Pruned to the peers passed in. */
  #since = new Map<string, Since>();

  constructor(opts: ChokerOptions = {}) {
    const slots = opts.slots ?? DEFAULT_UPLOAD_SLOTS;
    if (!Number.isInteger(slots) || slots < 0) throw new RangeError(`bad slot count ${slots}`);
    this.#slots = slots;
    this.#random = opts.random ?? Math.random;
    this.#quota = opts.seedQuotaBytes ?? DEFAULT_SEED_QUOTA_BYTES;
  }

  /** The optimistic unchoke, or null. */
  get optimistic(): string | null {
    return this.#optimistic;
  }

  /** The peers holding regular slots after the last `decide`. */
  get regular(): ReadonlySet<string> {
    return this.#regular;
  }

  /**
   * Recompute. Call every CHOKE_INTERVAL_MS, and whenever a peer leaves, stops or starts being
   * interested: a call less than CHOKE_INTERVAL_MS after the last full round keeps the regular
   * slots that are still valid and only fills free ones, so extra calls cause no churn.
   * Returns the ids to keep or make unchoked; every other peer is to be choked.
   */
  decide(now: number, peers: readonly ChokerPeer[], seeding: boolean): Set<string> {
    const present = new Map<string, ChokerPeer>();
    for (const p of peers) present.set(p.id, p);
    this.#observe(now, present);

    const interested = [...present.values()].filter((p) => p.interested);
    const wanted = (id: string | null): id is string =>
      id !== null && present.get(id)?.interested === true;

    if (this.#slots === 0) {
      this.#regular = new Set();
      this.#optimistic = null;
      return this.#record(now, present, new Set());
    }

    // Regular slots.
    const ranked = seeding
      ? this.#rankSeeding(now, interested)
      : this.#rankDownloading(now, interested);
    const fullRound = now - this.#lastRoundAt >= CHOKE_INTERVAL_MS || now < this.#lastRoundAt;
    let regular: Set<string>;
    if (fullRound) {
      this.#lastRoundAt = now;
      regular = new Set(ranked.slice(0, this.#slots).map((p) => p.id));
    } else {
      regular = new Set([...this.#regular].filter(wanted));
      const opt = wanted(this.#optimistic) ? this.#optimistic : null;
      for (const p of ranked) {
        if (regular.size >= this.#slots) break;
        if (p.id !== opt) regular.add(p.id);
      }
    }
    this.#regular = regular;

    // The optimistic unchoke: rotated when due, or when it left, lost interest or won a slot.
    const current = this.#optimistic;
    const valid = wanted(current) && !regular.has(current);
    if (!valid || now - this.#optimisticAt >= OPTIMISTIC_INTERVAL_MS || now < this.#optimisticAt) {
      const candidates = interested.filter((p) => !regular.has(p.id));
      const others = candidates.filter((p) => p.id !== current);
      this.#optimistic = this.#pick(now, others.length > 0 ? others : candidates);
      this.#optimisticAt = now;
    }

    const out = new Set(regular);
    if (this.#optimistic !== null) out.add(this.#optimistic);
    return this.#record(now, present, out);
  }

  /** Updates the choke/unchoke times from the peers' reported state, forgetting absent peers. */
  #observe(now: number, present: Map<string, ChokerPeer>): void {
    for (const id of this.#since.keys()) if (!present.has(id)) this.#since.delete(id);
    for (const p of present.values()) {
      const s = this.#since.get(p.id);
      if (s === undefined) {
        this.#since.set(p.id, { unchoked: p.unchoked, at: p.unchoked ? now : p.connectedAt });
      } else if (s.unchoked !== p.unchoked) {
        this.#since.set(p.id, { unchoked: p.unchoked, at: now });
      }
    }
  }

  /** Records the changes about to be made, so turn lengths count from now. */
  #record(now: number, present: Map<string, ChokerPeer>, out: Set<string>): Set<string> {
    for (const p of present.values()) {
      const unchoked = out.has(p.id);
      if (this.#since.get(p.id)?.unchoked !== unchoked)
        this.#since.set(p.id, { unchoked, at: now });
    }
    return out;
  }

  /** Weighted random choice: new peers weigh NEW_PEER_WEIGHT, others 1. */
  #pick(now: number, candidates: readonly ChokerPeer[]): string | null {
    if (candidates.length === 0) return null;
    const weight = (p: ChokerPeer) => (now - p.connectedAt < NEW_PEER_MS ? NEW_PEER_WEIGHT : 1);
    const total = candidates.reduce((sum, p) => sum + weight(p), 0);
    let r = Math.min(Math.max(this.#random(), 0), 1 - Number.EPSILON) * total;
    for (const p of candidates) {
      r -= weight(p);
      if (r < 0) return p.id;
    }
    return candidates[candidates.length - 1]!.id;
  }

  /**
   * Seeding order: round robin (`#roundRobin`); download rates are all zero while seeding.
   */
  #rankSeeding(now: number, peers: readonly ChokerPeer[]): ChokerPeer[] {
    return [...peers].sort(this.#roundRobin(now, peers));
  }

  /**
   * Downloading order: not snubbed before snubbed; reading what we send before not reading it;
   * then most bytes sent to us in the last 20 s;
   * peers that tie (in practice: that sent us nothing) take turns like seeding's round robin,
   * as libtorrent does, or the first to get a slot would keep it for good and the others would
   * see only the optimistic unchoke.
   */
  #rankDownloading(now: number, peers: readonly ChokerPeer[]): ChokerPeer[] {
    const snubbed = new Map(peers.map((p) => [p.id, isSnubbed(now, p)]));
    const turns = this.#roundRobin(now, peers);
    return [...peers].sort((a, b) => {
      const sa = snubbed.get(a.id)!;
      const sb = snubbed.get(b.id)!;
      if (sa !== sb) return sa ? 1 : -1;
      // One that reads nothing of what we send gets nothing from a slot, whatever it gives.
      const na = a.notReading === true;
      if (na !== (b.notReading === true)) return na ? 1 : -1;
      if (a.downloadedRecent !== b.downloadedRecent) return b.downloadedRecent - a.downloadedRecent;
      return turns(a, b);
    });
  }

  /**
   * Round robin: (0) unchoked peers still within their turn, fastest first; (1) choked peers,
   * the one waiting longest first; (2) unchoked peers whose turn is over, fastest first. Ties
   * go to the peers holding a regular slot, then by id.
   */
  #roundRobin(now: number, peers: readonly ChokerPeer[]): (a: ChokerPeer, b: ChokerPeer) => number {
    const since = (p: ChokerPeer) => this.#since.get(p.id)?.at ?? p.connectedAt;
    const group = (p: ChokerPeer): number => {
      if (!p.unchoked) return 1;
      const turn = now - since(p);
      const over =
        p.notReading === true ||
        (turn >= SEED_IDLE_TURN_MS && p.uploadedSinceUnchoke === 0) ||
        (turn >= SEED_MIN_TURN_MS &&
          (p.uploadedSinceUnchoke >= this.#quota || turn >= SEED_MAX_TURN_MS));
      return over ? 2 : 0;
    };
    const g = new Map(peers.map((p) => [p.id, group(p)]));
    return (a, b) => {
      const ga = g.get(a.id)!;
      const gb = g.get(b.id)!;
      if (ga !== gb) return ga - gb;
      if (ga === 1) {
        const d = since(a) - since(b);
        if (d !== 0) return d;
      } else if (a.uploadedRecent !== b.uploadedRecent) {
        return b.uploadedRecent - a.uploadedRecent;
      }
      // A regular slot holder keeps its slot against the optimistic unchoke on a tie.
      const ra = this.#regular.has(a.id);
      if (ra !== this.#regular.has(b.id)) return ra ? -1 : 1;
      return byId(a, b);
    };
  }
}
