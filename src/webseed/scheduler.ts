/**
 * Web seeds for one download: keeps every usable web seed busy with pieces the orchestrator
 * hands out, alongside the peers.
 *
 * The orchestrator owns piece selection, verification and storage; this module only asks
 * `pick()` (and, if given, `pickNext()` for the following pieces of a run) for pieces it
 * reserved, fetches them from a seed that is neither banned nor backed off, and hands each
 * piece to `onPiece()` (which verifies and writes it) as soon as its last byte is in. Every
 * index reserved through `pick()` or `pickNext()` ends in exactly one call: `onPiece()`
 * (whatever it returns) or `onRelease()` (the fetch failed or was aborted, or the run stopped
 * after a bad piece: the piece goes back to the picker).
 *
 * Bounded: at most MAX_WEB_SEEDS seeds, `maxConcurrentPerSeed` requests per seed and
 * `maxInFlight` requests in all (fewer when `maxInFlightBytes` / piece length is smaller, never
 * fewer than one); a request holds one piece buffer at a time.
 *
 * A slow seed does not hold the last pieces while another sits idle: when a seed has nothing
 * left to fetch and another seed's requests should take, at the rate it has sent them lately
 * (over its last WEB_SEED_RECENT_MS, TAKEOVER_PROBE_MS at least), over twice what the idle seed would need at its
 * last rate (or, never measured, over TAKEOVER_MIN_MS), those requests are aborted, their
 * pieces go back to the picker, and the slow seed rests for TAKEOVER_REST_MS, so the idle one
 * takes them. */
import { logger } from '../log.js';
import type { Metainfo } from '../metainfo/torrent.js';
import type { Layout } from '../storage/layout.js';
import { WEB_SEED_RECENT_MS, WebSeed, type WebSeedOptions } from './client.js';
import { WebSeedError } from './reply.js';

const debug = logger('tdl:webseeds');

/** Web seeds used at most per torrent (the rest of `url-list` is ignored with a warning). */
export const MAX_WEB_SEEDS = 10;
/** Unusable web seeds named in a warning each; the rest are counted in one. */
const NAMED_UNUSABLE = 3;
/** Requests (a piece or a run of pieces each) at once to one web seed (default). */
export const WEB_SEED_CONCURRENCY = 2;
/** Requests in flight to all web seeds together (default). */
export const WEB_SEEDS_MAX_IN_FLIGHT = 8;
/** Largest run of consecutive pieces asked for in one go (default), when `pickNext` is given. */
export const WEB_SEED_MAX_RUN_BYTES = 1024 * 1024;
/** Piece buffers held by web seed requests together (default); at least one piece is allowed. */
export const WEB_SEEDS_MAX_IN_FLIGHT_BYTES = 32 * 1024 * 1024;

export interface WebSeedsOptions {
  /** Requests at once to one seed (default WEB_SEED_CONCURRENCY). */
  maxConcurrentPerSeed?: number;
  /** Requests in flight to all seeds together (default WEB_SEEDS_MAX_IN_FLIGHT). */
  maxInFlight?: number;
  /**
   * Bytes of piece buffers in flight from all seeds together (default
   * WEB_SEEDS_MAX_IN_FLIGHT_BYTES): caps `maxInFlight` to this / piece length, never below one.
   */
  maxInFlightBytes?: number;
  /**
   * Reserves the next piece to fetch for one seed and returns its index, or null when there is
   * none. `has(index)` is false for pieces that seed should not be asked for (files it lacks):
   * the picker should skip them. A piece the seed lacks is released at once and that seed is
   * left alone until the next completed fetch, timer or external `wake()`.
   */
  pick: (has: (index: number) => boolean) => number | null;
  /**
   * Optional: reserves piece `index` too if it is still needed and not reserved, and returns
   * whether it did. With it, a seed asks for runs of consecutive pieces (`index` is always the
   * piece after the last one reserved for the run, and one the seed `has`); without it, one
   * piece per request.
   */
  pickNext?: (index: number) => boolean;
  /**
   * Optional: whether piece `index` is still needed and reserved by no one, though `pickNext`
   * would not take it now (the memory budget is full): a server's whole-file reply then waits
   * for it rather than passing over it.
   */
  isFree?: (index: number) => boolean;
  /** Bytes of consecutive pieces asked for in one run (default WEB_SEED_MAX_RUN_BYTES). */
  maxRunBytes?: number;
  /** Verifies and stores a fetched piece; returns true when its hash matched. */
  onPiece: (index: number, data: Buffer, seedUrl: string, fetched: number) => boolean;
  /** The fetch of a picked piece failed or was aborted: the piece is free again. */
  onRelease: (index: number) => void;
  /** A seed failed, sent a bad piece, was banned, or a url-list entry was skipped. */
  onWarning: (msg: string) => void;
  /** `onPiece` threw (say, a disk error): default, the error is passed to `onWarning`. */
  onError?: (err: unknown) => void;
  /** Options for every WebSeed (timeouts, redirects, dispatcher, clock, back-off). */
  seed?: WebSeedOptions;
}

export interface WebSeedStats {
  url: string;
  bytesFetched: number;
  piecesFetched: number;
  failures: number;
  badPieces: number;
  banned: boolean;
  backoffUntil: number;
  inFlight: number;
  lastError: string | undefined;
}

const MIN_TIMER_MS = 25;
/**
 * A seed's requests are taken over for an idle seed that was never measured when they should
 * take longer than this...
 */
export const TAKEOVER_MIN_MS = 10_000;
/** ...or for one that should finish them in less than half their time, this included... */
export const TAKEOVER_RESTART_MS = 1_000;
/** ...by the seed's rate measured over this long at least (while it had requests out)... */
export const TAKEOVER_PROBE_MS = 3_000;
/** ...and it is then left alone this long. */
export const TAKEOVER_REST_MS = 30_000;
/** While a seed is idle beside busy ones, how often they are looked at again. */
const TAKEOVER_CHECK_MS = 1_000;

interface Run {
  seed: WebSeed;
  first: number;
  end: number;
}

/** One seed's current spell of requests: since when, and what its requests have left. */
interface Spell {
  since: number;
  bytesAtStart: number;
  /** Bytes asked for in the spell. */
  asked: number;
}

/** The same failure of a web seed that works in between is said again at most this often. */
export const SAME_WARNING_MS = 60_000;

export class WebSeeds {
  readonly seeds: readonly WebSeed[];
  private readonly perSeed: number;
  private readonly maxRunPieces: number;
  private readonly pieceCount: number;
  private readonly maxInFlight: number;
  private readonly now: () => number;
  private readonly inFlight = new Map<WebSeed, number>();
  /** Seeds with requests out: since when, and what is left of them. */
  private readonly spells = new Map<WebSeed, Spell>();
  /** A seed's rate in its last spell (bytes/s), once measured. */
  private readonly lastRate = new Map<WebSeed, number>();
  /** Seeds whose requests were taken over: not asked before this time. */
  private readonly restUntil = new Map<WebSeed, number>();
  private readonly layout: Layout;
  /** Requests in flight: the seed and the pieces [first, end) each was sent for. */
  private readonly controllers = new Map<AbortController, Run>();
  private readonly tasks = new Set<Promise<void>>();
  private total = 0;
  private running = false;
  private filling = false;
  /** Seeds that were handed a piece they lack: skipped until something else happens. */
  private readonly starved = new Set<WebSeed>();
  /**
   * The last failure each seed was named for in a warning, when, and whether the seed delivered
   * a piece since (see warned).
   */
  private readonly lastWarned = new Map<
    WebSeed,
    { said: string; at: number; delivered: boolean }
  >();
  private refill = false;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  constructor(
    urls: readonly string[],
    meta: Metainfo,
    layout: Layout,
    private readonly opts: WebSeedsOptions,
  ) {
    this.perSeed = Math.max(1, opts.maxConcurrentPerSeed ?? WEB_SEED_CONCURRENCY);
    const byBytes = Math.floor(
      (opts.maxInFlightBytes ?? WEB_SEEDS_MAX_IN_FLIGHT_BYTES) / layout.pieceLength,
    );
    this.maxInFlight = Math.max(1, Math.min(opts.maxInFlight ?? WEB_SEEDS_MAX_IN_FLIGHT, byBytes));
    this.now = opts.seed?.now ?? Date.now;
    this.pieceCount = layout.pieceCount;
    this.layout = layout;
    this.maxRunPieces = Math.max(
      1,
      Math.floor((opts.maxRunBytes ?? WEB_SEED_MAX_RUN_BYTES) / layout.pieceLength),
    );
    const seeds: WebSeed[] = [];
    const seen = new Set<string>();
    // Said once each, however many (a torrent may list 100,000): the first few unusable ones by
    // name, then how many more; those over the cap by their number.
    let unusable = 0;
    let leftOut = 0;
    for (const url of urls) {
      if (seen.has(url)) continue;
      seen.add(url);
      if (seeds.length >= MAX_WEB_SEEDS) {
        leftOut++;
        continue;
      }
      try {
        seeds.push(new WebSeed(url, meta, layout, opts.seed));
      } catch (err) {
        if (!(err instanceof WebSeedError)) throw err;
        if (++unusable <= NAMED_UNUSABLE) opts.onWarning(`${err.message}: skipped`);
      }
    }
    if (unusable > NAMED_UNUSABLE) {
      const more = unusable - NAMED_UNUSABLE;
      opts.onWarning(`${more} more web seed${more === 1 ? '' : 's'} skipped likewise`);
    }
    if (leftOut > 0) {
      opts.onWarning(
        `${seeds.length + leftOut} web seeds: using the first ${MAX_WEB_SEEDS}, ` +
          `${leftOut} more ${leftOut === 1 ? 'was' : 'were'} left out`,
      );
    }
    this.seeds = seeds;
    for (const s of seeds) this.inFlight.set(s, 0);
  }

  /** Whether any seed can still be used (none, or all banned: the peers are on their own). */
  usable(): boolean {
    return this.seeds.some((s) => !s.banned);
  }

  /** Requests in flight right now. */
  get active(): number {
    return this.total;
  }

  /** Bytes received from all seeds (including bad pieces). */
  get bytesFetched(): number {
    return this.seeds.reduce((n, s) => n + s.bytesFetched, 0);
  }

  /** Bytes from all seeds that count as data for `--timeout` (see WebSeed.progressBytes). */
  get progressBytes(): number {
    return this.seeds.reduce((n, s) => n + s.progressBytes, 0);
  }

  /**
   * Body bytes read that never reached `onPiece` as a whole piece: pieces cut short (cancelled,
   * failed, or under way), pieces handed back unread, bytes a whole-file reply passed over.
   */
  get bytesUnused(): number {
    return this.seeds.reduce(
      (n, s) => n + Math.max(0, s.bytesFetched + s.bytesSkipped - s.bytesHanded),
      0,
    );
  }

  stats(): WebSeedStats[] {
    return this.seeds.map((s) => ({
      url: s.url,
      bytesFetched: s.bytesFetched,
      piecesFetched: s.piecesFetched,
      failures: s.failures,
      badPieces: s.badPieces,
      banned: s.banned,
      backoffUntil: s.backoffUntil,
      inFlight: this.inFlight.get(s) ?? 0,
      lastError: s.lastError?.message,
    }));
  }

  /** Starts fetching: as many pieces as `pick()` gives and the bounds allow. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.fill();
  }

  /** New work may be available (a piece was released, a peer went away, …). */
  wake(): void {
    if (!this.filling) this.starved.clear();
    this.fill();
  }

  /** Aborts every request in flight and resolves when all have released their pieces. */
  async stop(): Promise<void> {
    this.running = false;
    this.clearTimer();
    for (const c of this.controllers.keys()) c.abort();
    await Promise.allSettled([...this.tasks]);
  }

  private fill(): void {
    if (!this.running) return;
    // pick(), onPiece() and onRelease() may call wake(): never run two fills at once.
    if (this.filling) {
      this.refill = true;
      return;
    }
    this.filling = true;
    try {
      do {
        this.refill = false;
        this.fillOnce();
      } while (this.refill && this.running);
    } finally {
      this.filling = false;
    }
  }

  private fillOnce(): void {
    const now = this.now();
    let nextWake = Infinity;
    // Least busy seeds first, so that a second seed gets work before the first gets its second.
    const order = this.seeds
      .filter((s) => !s.banned)
      .sort((a, b) => this.inFlight.get(a)! - this.inFlight.get(b)!);
    const noWork = new Set<WebSeed>();
    for (const seed of order) {
      if (!seed.available(now)) nextWake = Math.min(nextWake, seed.backoffUntil);
      const rest = this.restUntil.get(seed);
      if (rest !== undefined && rest > now) nextWake = Math.min(nextWake, rest);
    }
    if (nextWake !== Infinity) this.wakeAt(nextWake);
    const resting = (seed: WebSeed) => (this.restUntil.get(seed) ?? 0) > now;
    const working = order.filter((s) => s.available(now) && !resting(s));
    // A resting seed (its requests were taken over) fetches only what no working seed has.
    const wanted = (seed: WebSeed) =>
      resting(seed)
        ? (i: number) => seed.has(i) && !working.some((o) => o.has(i))
        : (i: number) => seed.has(i);
    for (let round = 0; round < this.perSeed; round++) {
      for (const seed of order) {
        if (!this.running || this.total >= this.maxInFlight) break;
        if (!seed.available(now) || noWork.has(seed) || this.starved.has(seed)) continue;
        if (this.inFlight.get(seed)! > round) continue;
        // Each reply of a server that ignores ranges starts at the file's start: one at a time.
        if (seed.ignoresRanges && this.inFlight.get(seed)! > 0) continue;
        const has = wanted(seed);
        const index = seed.ignoresRanges ? this.lowestFree(has) : this.opts.pick(has);
        if (index === null) {
          noWork.add(seed);
          continue;
        }
        if (!seed.has(index)) {
          this.starved.add(seed);
          this.opts.onRelease(index);
          continue;
        }
        this.launch(seed, index, has);
      }
    }
    if (this.running)
      this.takeOver(
        [...noWork].filter((s) => this.inFlight.get(s) === 0 && !resting(s)),
        now,
      );
  }

  /**
   * `idle` seeds found nothing to fetch: abort the requests of the seed that should take longest
   * to finish them at its rate lately, when an idle seed should do it in less than half that
   * (by its rate last time, plus TAKEOVER_RESTART_MS to start over), or, with none measured,
   * when they should take more than TAKEOVER_MIN_MS. Seeds not measured TAKEOVER_PROBE_MS yet
   * are looked at again a second later.
   */
  private takeOver(idle: WebSeed[], now: number): void {
    if (idle.length === 0) return;
    let slowest: WebSeed | null = null;
    let slowestTime = 0;
    let waiting = false;
    for (const [seed, spell] of this.spells) {
      // Only to seeds that have what it fetches (a multi-file seed may lack a file).
      const takers = new Set<WebSeed>();
      for (const r of this.controllers.values()) {
        const t = r.seed === seed ? this.takerOf(r, idle) : undefined;
        if (t) takers.add(t);
      }
      if (takers.size === 0) continue;
      let idleRate = 0;
      for (const s of takers) idleRate = Math.max(idleRate, this.lastRate.get(s) ?? 0);
      // Not yet measured, or not slow enough: judged again each second while a seed is idle
      // (it may slow down).
      waiting = true;
      if (now - spell.since < TAKEOVER_PROBE_MS) continue;
      // Its rate over its last seconds, not since the spell began: a seed that slowed down after
      // a fast start kept its start's average for minutes.
      const elapsed = Math.min(now - spell.since, WEB_SEED_RECENT_MS);
      const got = seed.recentBytes.sum(now, elapsed);
      const left = Math.max(0, spell.asked - (seed.bytesFetched - spell.bytesAtStart));
      const time = got > 0 ? (left * elapsed) / got : Infinity;
      const worth =
        idleRate > 0
          ? time > 2 * ((left * 1000) / idleRate + TAKEOVER_RESTART_MS)
          : time > TAKEOVER_MIN_MS;
      if (worth && time > slowestTime) {
        slowest = seed;
        slowestTime = time;
      }
    }
    if (!slowest) {
      if (waiting) this.wakeAt(now + TAKEOVER_CHECK_MS);
      return;
    }
    debug('%s: requests taken over (%d ms left at its rate)', slowest.url, Math.round(slowestTime));
    this.restUntil.set(slowest, now + TAKEOVER_REST_MS);
    for (const [c, r] of this.controllers)
      if (r.seed === slowest && this.takerOf(r, idle)) c.abort();
  }

  /** An idle seed that has every piece of run `r`, if any. */
  private takerOf(r: Run, idle: WebSeed[]): WebSeed | undefined {
    return idle.find((s) => {
      for (let i = r.first; i < r.end; i++) if (!s.has(i)) return false;
      return true;
    });
  }

  /**
   * For a server that ignores ranges (each reply starts at the file's start): the lowest piece
   * still needed, reserved, so that a reply drops as little as it can before it.
   */
  private lowestFree(has: (index: number) => boolean): number | null {
    const next = this.opts.pickNext;
    if (!next) return this.opts.pick(has);
    for (let i = 0; i < this.pieceCount; i++) if (has(i) && next(i)) return i;
    return null;
  }

  private wakeAt(at: number): void {
    if (this.timer !== undefined && this.timerAt <= at) return;
    this.clearTimer();
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Infinity;
        this.starved.clear();
        this.fill();
      },
      // Never a tight loop, even with a clock that setTimeout does not follow.
      Math.max(MIN_TIMER_MS, at - this.now()),
    );
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  private launch(seed: WebSeed, first: number, has: (index: number) => boolean): void {
    // Extend the run with the following pieces while the picker hands them over.
    let count = 1;
    const next = this.opts.pickNext;
    if (next) {
      while (
        count < this.maxRunPieces &&
        first + count < this.pieceCount &&
        has(first + count) &&
        next(first + count)
      ) {
        count++;
      }
    }
    this.inFlight.set(seed, this.inFlight.get(seed)! + 1);
    this.total++;
    let spell = this.spells.get(seed);
    if (!spell) {
      spell = { since: this.now(), bytesAtStart: seed.bytesFetched, asked: 0 };
      this.spells.set(seed, spell);
    }
    for (let i = first; i < first + count; i++) spell.asked += this.layout.pieceSize(i);
    const controller = new AbortController();
    this.controllers.set(controller, { seed, first, end: first + count });
    const task = this.run(seed, first, count, controller).finally(() => {
      this.starved.clear();
      const n = this.inFlight.get(seed)! - 1;
      this.inFlight.set(seed, n);
      if (n === 0) this.endSpell(seed);
      this.total--;
      this.controllers.delete(controller);
      this.tasks.delete(task);
      this.fill();
    });
    this.tasks.add(task);
  }

  private async run(seed: WebSeed, first: number, count: number, controller: AbortController) {
    let pending = first; // the first piece of the run not handed over yet
    const end = first + count; // after the run's last piece
    // Pieces a whole-file reply took on beyond `end` (others between them were not ours).
    const more: number[] = [];
    const next = this.opts.pickNext;
    try {
      await seed.fetchRun(
        first,
        count,
        (index, data, fetched) => {
          pending = index + 1;
          // After a bad piece the rest of the run is not trusted: it goes back to the picker.
          if (!this.deliver(seed, index, data, fetched)) controller.abort();
        },
        controller.signal,
        // A server that sends the whole file: its reply goes on with the pieces still needed.
        (index) => {
          if (!next || !this.running || !seed.has(index)) return false;
          if (!next(index)) return this.opts.isFree?.(index) === true ? 'later' : false;
          more.push(index);
          return true;
        },
      );
    } catch (err) {
      for (let i = pending; i < end; i++) this.opts.onRelease(i);
      for (const i of more) if (i >= pending) this.opts.onRelease(i);
      if (err instanceof WebSeedError && err.fault === 'aborted') return;
      const message = err instanceof Error ? err.message : String(err);
      const said = err instanceof WebSeedError ? warningKey(err, seed) : message;
      if (!this.warned(seed, said)) return;
      // A file the seed lacks (404, another length) is not asked for again (multi-file
      // torrents); its other files are.
      const lacks = err instanceof WebSeedError && err.lackedFile !== undefined;
      const after =
        lacks && seed.lackingFiles.size > 0 && !seed.banned
          ? `that file is not asked for again; the others: ${this.retryText(seed)}`
          : this.retryText(seed);
      this.opts.onWarning(`${message}; ${after}`);
    }
  }

  /** Hands a fetched piece to the orchestrator; false when the rest of the run should stop. */
  private deliver(seed: WebSeed, index: number, data: Buffer, fetched: number): boolean {
    if (!this.running || seed.banned) {
      // Stopped, or the seed was banned, while the bytes arrived: hand the piece back.
      this.opts.onRelease(index);
      return false;
    }
    let ok: boolean;
    try {
      ok = this.opts.onPiece(index, data, seed.url, fetched);
    } catch (err) {
      if (this.opts.onError) this.opts.onError(err);
      else this.opts.onWarning(err instanceof Error ? err.message : String(err));
      return false;
    }
    if (ok) {
      debug('%s: piece %d verified', seed.url, index);
      // Working again: its next failure is said (the same one at most every SAME_WARNING_MS).
      const w = this.lastWarned.get(seed);
      if (w) w.delivered = true;
      return true;
    }
    const banned = seed.reportBadPiece(index);
    if (banned) {
      // Its other requests are for pieces we would not trust either.
      for (const [c, r] of this.controllers) if (r.seed === seed) c.abort();
    }
    this.opts.onWarning(
      banned
        ? `web seed ${seed.url}: piece ${index} failed verification; banned after ${seed.badPieces} bad pieces`
        : `web seed ${seed.url}: piece ${index} failed verification; ${this.retryText(seed)}`,
    );
    return false;
  }

  /** A seed's requests are all over: keep the rate of the spell, if it was long enough to tell. */
  private endSpell(seed: WebSeed): void {
    const spell = this.spells.get(seed);
    this.spells.delete(seed);
    if (!spell) return;
    const elapsed = this.now() - spell.since;
    const bytes = seed.bytesFetched - spell.bytesAtStart;
    if (elapsed >= TAKEOVER_PROBE_MS || bytes >= this.layout.pieceLength) {
      this.lastRate.set(seed, (bytes * 1000) / Math.max(1, elapsed));
    }
  }

  /**
   * Whether failure `said` of `seed` is to be said now (and noted as said): not while it is the
   * last one said and the seed has delivered nothing since, nor, when it delivered, within
   * SAME_WARNING_MS of the last time (a server that breaks every other reply, 348 warnings in
   * 14 minutes before). Another failure is said at once.
   */
  private warned(seed: WebSeed, said: string): boolean {
    const now = this.now();
    const last = this.lastWarned.get(seed);
    if (last?.said === said && (!last.delivered || now - last.at < SAME_WARNING_MS)) return false;
    this.lastWarned.set(seed, { said, at: now, delivered: false });
    return true;
  }

  private retryText(seed: WebSeed): string {
    if (seed.banned) return 'banned';
    const s = Math.max(0, Math.ceil((seed.backoffUntil - this.now()) / 1000));
    return s === 0 ? 'next try now' : `next try in ${s} s`;
  }
}

/**
 * What a failure is said once for, until the seed delivers a piece again (see lastWarned):
 * requests in flight together fail alike (a file's 404 for each of its ranges), a server that
 * is down answers each file's URL (one 503), and a fault whose message names its range (a
 * wrong Content-Range, a length) is one kind. A missing file is said for each file of a seed
 * that serves others, once for a seed that has sent nothing yet (a wrong base URL).
 */
function warningKey(err: WebSeedError, seed: WebSeed): string {
  if (err.statusCode !== undefined) return `HTTP ${err.statusCode}`;
  if (err.lackedFile !== undefined && seed.piecesFetched > 0) {
    return `${err.fault} ${err.lackedFile}`;
  }
  return err.fault;
}
