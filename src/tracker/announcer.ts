/**
 * The announce loop: BEP 12 tiers over HTTP(S) and UDP trackers.
 *
 * Rule (see also docs/DESIGN.md):
 * - Trackers within a tier are shuffled once; a tracker that answers moves to the front of
 *   its tier. Unsupported schemes (ws:, wss:, anything but http:, https:, udp:) and
 *   duplicate URLs are skipped. The first MAX_TRACKERS usable trackers, in tier order, are
 *   used; the rest are left out with one warning (tracker lists pasted in by the thousand).
 * - Every tier runs its own announce round, all tiers in parallel (at start and for every
 *   later re-announce), but at most `announceSlots` announces are in flight at once, across
 *   tiers (every tracker used under the usual open-file limit of 1,024, 64 under a limit of
 *   256): each holds a socket until it is answered or given up (22 s for a silent UDP tracker),
 *   so the others wait their turn, first come first served, except that trackers that have
 *   answered before go first. A tier treats its trackers as mirrors: a round asks
 *   the tier's first tracker; the next one is asked as well when the previous one fails or
 *   stays silent for `hedgeMs` after it was sent. The first tracker to answer ends the round
 *   and moves to the front; any other tracker of the round that still answers contributes its
 *   peers too.
 * - After an answer the tier re-announces after the tracker's interval (never sooner than
 *   `minReannounceMs`). When every tracker of the tier failed, the tier retries after
 *   `retryAfterFailureMs`, doubling up to `maxRetryAfterFailureMs`.
 * - requestMore() brings rounds forward: not before the tracker's `min interval` (or
 *   `requestMoreDefaultMs` when it gave none, and never under `requestMoreMinMs`) after an
 *   answer, doubled at each answer in a row that brought no peer the one before had not (up to
 *   `maxRetryAfterFailureMs`); after failed rounds, `requestMoreMinMs` doubled at each failed
 *   round in a row (up to `maxRetryAfterFailureMs`).
 * - A tracker's first successful announce carries event=started; complete() and stop()
 *   send completed/stopped only to trackers that acknowledged started, bounded in time.
 * - An HTTP tracker's `tracker id` goes back to it in every later announce (regular, completed,
 *   stopped); a reply without one keeps the one it gave before (BEP 3).
 * - Peers that are this client as the tracker sees it (an address of this host with the port we
 *   announce) are dropped from every reply: trackers often list the announcing client itself.
 *
 * Nothing a tracker does throws out of the announcer: failures become 'warning' events, one per
 * tracker and failure: a tracker that keeps failing the same way is warned about once (until it
 * answers again), not at every retry. A tracker's `warning message` is a 'warning' too, named
 * `tracker <url>: <message>` like a failure, once while the tracker keeps giving the same one.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter, setMaxListeners } from 'node:events';
import { canonicalHost, MAX_PEERS_PER_REPLY, otherFamily } from './compact.js';
import { interfaceAddresses } from './local-addresses.js';
import { logger } from '../log.js';
import { describeError, NoPeersError, TdlError } from '../errors.js';
import { fdLimit } from '../fd-limit.js';
import { announceHttp } from './http.js';
import { announceUdp, type UdpRetryOptions } from './udp.js';
import { urlDataProblem } from './udp-codec.js';
import type { AnnounceEvent, AnnounceRequest, AnnounceResponse, PeerAddress } from './types.js';

const debug = logger('tdl:tracker');

export interface AnnouncerTiming {
  /** Ask the next tracker of a tier too when the current one has been silent this long. */
  hedgeMs: number;
  /** Floor under tracker intervals for regular re-announces. */
  minReannounceMs: number;
  /** requestMore(): earliest re-announce after an answer when the tracker gave no min interval. */
  requestMoreDefaultMs: number;
  /**
   * requestMore(): absolute floor after an answer, and the retry delay after a failed round
   * (doubled at each further failed round in a row).
   */
  requestMoreMinMs: number;
  /** First retry of a tier whose trackers all failed (doubles on each failed round). */
  retryAfterFailureMs: number;
  /** Cap of the failure retry delay. */
  maxRetryAfterFailureMs: number;
}

export const ANNOUNCER_TIMING: Readonly<AnnouncerTiming> = Object.freeze({
  hedgeMs: 3_000,
  minReannounceMs: 60_000,
  requestMoreDefaultMs: 30_000,
  requestMoreMinMs: 5_000,
  retryAfterFailureMs: 10_000,
  maxRetryAfterFailureMs: 300_000,
});

/** Trackers used at most, in tier order: as many as a magnet link's `tr` (MAX_MAGNET_TRACKERS). */
export const MAX_TRACKERS = 200;
/**
 * Announces in flight at most, across tiers (completed and stopped included), whatever the
 * open-file limit (see announceSlots).
 */
export const MAX_ANNOUNCES_IN_FLIGHT = 64;

/**
 * Announces in flight at most for a process allowed `limit` open files: each holds a socket
 * (and a descriptor) until it is answered or given up, 22 s for a silent UDP tracker, so the
 * others wait. A quarter of the limit, as the storage's file pool takes (MAX_ANNOUNCES_IN_FLIGHT
 * at least, MAX_TRACKERS at most): under the usual limit of 1,024 every tracker tdl uses is asked
 * at once, and a working one listed after dozens of dead ones is not kept waiting by them.
 */
export function announceSlots(limit: number): number {
  return Math.min(MAX_TRACKERS, Math.max(MAX_ANNOUNCES_IN_FLIGHT, Math.floor(limit / 4)));
}

/** Default bound on stop() (and on complete()). */
export const DEFAULT_STOP_TIMEOUT_MS = 1_500;
/** Peers asked for in each announce when the caller does not say. */
export const DEFAULT_NUM_WANT = 50;

export interface AnnouncerOptions {
  announceList: string[][];
  infoHash: Buffer;
  peerId: Buffer;
  port: number;
  stats: () => { uploaded: number; downloaded: number; left: number };
  numWant?: number;
  /** Bound on stop() and complete() (ms). */
  stopTimeoutMs?: number;
  /** Overrides of ANNOUNCER_TIMING (tests use short values). */
  timing?: Partial<AnnouncerTiming>;
  /** UDP retransmission schedule override. */
  udpRetry?: UdpRetryOptions;
  /** Bound on one regular announce (defaults of the HTTP/UDP clients when absent). */
  announceTimeoutMs?: number;
  /** Announces in flight at most (announceSlots of the process's open-file limit when absent). */
  maxInFlight?: number;
  /** Announces go out from this address (`--bind`). */
  localAddress?: string;
}

type Scheme = 'http' | 'udp';

interface TrackerState {
  url: string;
  scheme: Scheme;
  /** Answered at least once. */
  answered: boolean;
  /** Acknowledged an announce with event=started (so it gets completed/stopped). */
  startedAcked: boolean;
  /**
   * Left our `completed` unanswered within its bound, and has not answered since: our `stopped`
   * would wait the bound out again, so it is not sent (the end waits once, not twice).
   */
  missedCompleted: boolean;
  failedOnce: boolean;
  /** The last failure, until the tracker answers again (also what was last warned about). */
  lastFailure: string | undefined;
  /** The `warning message` of its last answer (what was last warned about), if any. */
  lastWarning: string | undefined;
  inFlight: AbortController | undefined;
  /** The last `tracker id` it gave (HTTP), sent back in every later announce. */
  trackerId: Buffer | undefined;
  /** Where its next reply's peer list is read from, when it is long (see PeerCollector). */
  peersFrom: number;
}

interface TierState {
  index: number;
  /** Current order: shuffled once, answering trackers moved to the front. */
  trackers: TrackerState[];
  running: boolean;
  timer: NodeJS.Timeout | undefined;
  /** When the scheduled round will run (ms since epoch), Infinity if none. */
  nextAt: number;
  lastSuccessAt: number | undefined;
  lastRoundEndAt: number;
  minIntervalMs: number | undefined;
  failedRounds: number;
  /** requestMore() was called while a round was running. */
  moreRequested: boolean;
  /** The peers of the tier's last answer (addresses), to tell whether the next one brings any. */
  lastPeers: Set<string>;
  /** Answers in a row that brought no peer the answer before had not (see bringForward). */
  staleAnswers: number;
}

export interface AnnouncerEvents {
  peers: [peers: PeerAddress[], url: string];
  warning: [message: string, url: string];
  announce: [url: string, response: AnnounceResponse];
  allFailed: [];
}

/**
 * Why tdl cannot announce to this tracker URL (from `localAddress`, `--bind`, when given);
 * undefined when it can.
 */
export function unsupportedTracker(raw: unknown, localAddress?: string): string | undefined {
  if (typeof raw !== 'string') return 'not a URL';
  if (SPACE_OR_CONTROL.test(raw.trim())) return 'it holds white space or control characters';
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    return 'not a valid URL';
  }
  if (u.protocol === 'udp:' && (u.port === '' || u.port === '0')) {
    // No default port for UDP trackers (BEP 15): every announce would fail the same way.
    return 'a UDP tracker URL needs a port (udp://host:port)';
  }
  if (u.protocol === 'udp:') {
    const tooLong = urlDataProblem(u);
    if (tooLong) return tooLong;
  }
  if (u.protocol === 'http:' || u.protocol === 'https:' || u.protocol === 'udp:') {
    return otherFamily(u, localAddress);
  }
  if (u.protocol === 'ws:' || u.protocol === 'wss:') {
    return 'WebSocket (WebTorrent) trackers are not supported';
  }
  return `unsupported scheme ${u.protocol}`;
}

/**
 * Throws NoPeersError (exit 4), saying why, when the torrent names trackers but tdl can use
 * none of them: waiting for `--timeout` could not help.
 */
export function requireUsableTracker(
  announceList: readonly (readonly unknown[])[],
  localAddress?: string,
): void {
  const urls = announceList.flat();
  const reasons = urls.map((u) => unsupportedTracker(u, localAddress));
  if (urls.length === 0 || reasons.some((r) => r === undefined)) return;
  const shown = urls.slice(0, 3).map((u, i) => `${String(u)} (${reasons[i]})`);
  if (urls.length > 3) shown.push(`and ${urls.length - 3} more`);
  throw new NoPeersError(
    `no tracker tdl can use: ${shown.join('; ')}; give peers with --peer HOST:PORT`,
  );
}

/**
 * White space or a control character inside a tracker URL: the URL parser drops tabs and
 * newlines without a word, so tdl would announce to another URL than the one it shows
 * (`/ann\nounce` is `/announce`); a space is not valid there either. Refused, as `tdl create`
 * refuses them.
 */
const SPACE_OR_CONTROL = /[\s\x00-\x1f\x7f]/;

function schemeOf(raw: string): { url: string; scheme: Scheme } | undefined {
  const url = raw.trim();
  if (SPACE_OR_CONTROL.test(url)) return undefined;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol === 'http:' || u.protocol === 'https:') return { url, scheme: 'http' };
  if (u.protocol === 'udp:') return { url, scheme: 'udp' };
  return undefined;
}

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export class Announcer extends EventEmitter<AnnouncerEvents> {
  private readonly opts: AnnouncerOptions;
  private readonly timing: AnnouncerTiming;
  private readonly tiers: TierState[] = [];
  private readonly all: TrackerState[] = [];
  /** Usable trackers beyond MAX_TRACKERS, not used. */
  private leftOut = 0;
  /** Trackers whose address is of the other family than `localAddress`: URL and why. */
  private readonly unreachable: [string, string][] = [];
  private readonly key = randomBytes(4).readUInt32BE(0);
  /** Announces in flight at most. */
  readonly maxInFlight: number;
  /** Announces in flight (holding a slot). */
  private inFlightCount = 0;
  /** Announces waiting for a slot, in the order they get one. */
  private readonly waiting: { urgent: boolean; go: () => void }[] = [];
  /** Our interface addresses, listed on first need (not before the first announce). */
  private selfHosts: Set<string> | null = null;
  private started = false;
  private stopped = false;
  private stopPromise: Promise<void> | undefined;
  private allFailedEmitted = false;
  /** `{ localAddress }` for every announce, or nothing. */
  private readonly local: { localAddress?: string };

  constructor(opts: AnnouncerOptions) {
    super();
    this.opts = opts;
    this.local = opts.localAddress === undefined ? {} : { localAddress: opts.localAddress };
    this.timing = { ...ANNOUNCER_TIMING, ...opts.timing };
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? announceSlots(fdLimit()));
    const seen = new Set<string>();
    for (const tierUrls of opts.announceList) {
      const trackers: TrackerState[] = [];
      for (const raw of tierUrls) {
        const s = typeof raw === 'string' ? schemeOf(raw) : undefined;
        if (!s) {
          debug('skipping tracker %s: unsupported or invalid URL', String(raw));
          continue;
        }
        if (seen.has(s.url)) continue;
        seen.add(s.url);
        // Announcing would fail at every try with the socket's "bind EINVAL": said once.
        const unreachable = otherFamily(new URL(s.url), opts.localAddress);
        if (unreachable !== undefined) {
          this.unreachable.push([s.url, unreachable]);
          continue;
        }
        if (this.all.length >= MAX_TRACKERS) {
          this.leftOut++;
          continue;
        }
        const t: TrackerState = {
          url: s.url,
          scheme: s.scheme,
          answered: false,
          startedAcked: false,
          missedCompleted: false,
          peersFrom: 0,
          failedOnce: false,
          lastFailure: undefined,
          lastWarning: undefined,
          inFlight: undefined,
          trackerId: undefined,
        };
        trackers.push(t);
        this.all.push(t);
      }
      if (trackers.length === 0) continue;
      this.tiers.push({
        index: this.tiers.length,
        trackers: shuffle(trackers),
        running: false,
        timer: undefined,
        nextAt: Infinity,
        lastSuccessAt: undefined,
        lastRoundEndAt: 0,
        minIntervalMs: undefined,
        failedRounds: 0,
        moreRequested: false,
        lastPeers: new Set(),
        staleAnswers: 0,
      });
    }
    debug(
      'tiers: %s',
      this.tiers.map((t) => `[${t.trackers.map((x) => x.url).join(', ')}]`).join(' '),
    );
  }

  /** Usable trackers used (http, https, udp; duplicates counted once; MAX_TRACKERS at most). */
  get trackerCount(): number {
    return this.all.length;
  }

  /**
   * The last failure of each tracker whose most recent announce failed, and each one that has
   * never answered and is still being asked (a UDP tracker's retries outlast a short
   * `--timeout`: exit 4 named no tracker at all); `message` does not repeat the URL.
   */
  get failures(): { url: string; message: string }[] {
    const out: { url: string; message: string }[] = [];
    for (const t of this.all) {
      if (t.lastFailure !== undefined) {
        const prefix = `tracker ${t.url}: `;
        const m = t.lastFailure;
        out.push({ url: t.url, message: m.startsWith(prefix) ? m.slice(prefix.length) : m });
      } else if (!t.answered && t.inFlight) {
        out.push({ url: t.url, message: 'no answer yet' });
      }
    }
    return out;
  }

  /** Is `p` this client, as a tracker sees it? */
  private isSelf(p: PeerAddress): boolean {
    if (p.port !== this.opts.port) return false;
    this.selfHosts ??= new Set(['127.0.0.1', '::1', ...interfaceAddresses()]);
    return this.selfHosts.has(canonicalHost(p.host) ?? p.host);
  }

  /**
   * True when no tracker can be expected to give peers: every usable tracker failed at least
   * once and none has ever answered (also true when there is no usable tracker at all).
   */
  get allFailed(): boolean {
    return this.all.every((t) => t.failedOnce && !t.answered);
  }

  /** Starts announcing (event=started) to every tier at once. Idempotent. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    for (const [url, why] of this.unreachable) {
      this.emit('warning', `tracker ${url}: ${why}: not used`, url);
    }
    if (this.leftOut > 0) {
      this.emit(
        'warning',
        `${this.all.length + this.leftOut} trackers: announcing to the first ${MAX_TRACKERS}, ` +
          `${this.leftOut} more were left out`,
        '',
      );
    }
    if (this.all.length === 0) {
      debug('no usable tracker');
      this.maybeEmitAllFailed();
      return;
    }
    for (const tier of this.tiers) void this.runRound(tier);
  }

  /** Peers ran out: bring the next announce of every tier forward (see the module comment). */
  requestMore(): void {
    if (!this.started || this.stopped) return;
    for (const tier of this.tiers) {
      // A round in progress applies the request once it ends (its timing depends on it).
      if (tier.running) tier.moreRequested = true;
      else this.bringForward(tier);
    }
  }

  /** `base` doubled at each failed round of the tier in a row after the first, up to the cap. */
  private afterFailures(base: number, tier: TierState): number {
    const doubled = base * 2 ** Math.min(tier.failedRounds - 1, 30);
    return Math.min(doubled, this.timing.maxRetryAfterFailureMs);
  }

  private bringForward(tier: TierState): void {
    const now = Date.now();
    let at: number;
    if (tier.failedRounds > 0) {
      // Sooner than the failure schedule, but backing off too: a tracker that keeps failing
      // (down, or refusing the torrent) is not asked every few seconds for as long as the
      // download is short of peers.
      at = tier.lastRoundEndAt + this.afterFailures(this.timing.requestMoreMinMs, tier);
    } else if (tier.lastSuccessAt === undefined) {
      at = tier.lastRoundEndAt + this.timing.requestMoreMinMs;
    } else {
      // A tracker that answers with nothing new (no peers, or the same ones again) is asked
      // less and less often: its min interval (which may be 0), doubled at each such answer in
      // a row, up to the failure retry's cap. Never sooner than the tier's regular round.
      const floor = Math.max(
        tier.minIntervalMs ?? this.timing.requestMoreDefaultMs,
        this.timing.requestMoreMinMs,
      );
      const backOff = floor * 2 ** Math.min(tier.staleAnswers, 30);
      at =
        tier.lastSuccessAt + Math.min(backOff, Math.max(floor, this.timing.maxRetryAfterFailureMs));
    }
    at = Math.max(at, now);
    if (at < tier.nextAt) {
      debug(
        'tier %d (%s): re-announce brought forward to %dms from now',
        tier.index,
        tier.trackers[0]?.url,
        at - now,
      );
      this.schedule(tier, at - now);
    }
  }

  /** Sends event=completed to trackers that acknowledged started (best effort, bounded). */
  async complete(seeding = false): Promise<void> {
    if (this.stopped) return;
    const targets = this.all.filter((t) => t.startedAcked);
    // A run that seeds next wants leechers: the answer's peers are dialled as any announce's.
    await this.sendFinal(targets, 'completed', seeding);
  }

  /**
   * Stops announcing: clears timers, aborts announces in flight and sends event=stopped to
   * trackers that acknowledged started, returning within stopTimeoutMs. Idempotent.
   */
  stop(): Promise<void> {
    if (this.stopPromise) return this.stopPromise;
    this.stopped = true;
    for (const tier of this.tiers) {
      clearTimeout(tier.timer);
      tier.timer = undefined;
      tier.nextAt = Infinity;
    }
    for (const t of this.all) t.inFlight?.abort();
    const targets = this.all.filter((t) => t.startedAcked && !t.missedCompleted);
    this.stopPromise = this.sendFinal(targets, 'stopped');
    return this.stopPromise;
  }

  private async sendFinal(
    targets: TrackerState[],
    event: AnnounceEvent,
    wantPeers = false,
  ): Promise<void> {
    if (targets.length === 0) return;
    const bound = this.opts.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    const controller = new AbortController();
    // One listener per target (MAX_TRACKERS at most): not a leak for Node to warn about.
    setMaxListeners(0, controller.signal);
    const started = Date.now();
    const udpRetry: UdpRetryOptions = {
      firstWaitMs: Math.max(50, Math.floor(bound / 3)),
      maxWaitMs: bound,
      maxTries: 3,
    };
    const answered = new Set<TrackerState>();
    const sends = targets.map(async (t) => {
      try {
        const res = await this.request(t, event, {
          signal: controller.signal,
          timeoutMs: bound,
          udpRetry,
          wantPeers,
        });
        answered.add(t);
        t.missedCompleted = false;
        this.emit('announce', t.url, res);
        debug('%s: %s acknowledged', t.url, event);
      } catch (err) {
        debug('%s: %s not acknowledged: %s', t.url, event, describeError(err));
      }
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, bound);
      timer.unref();
    });
    try {
      await Promise.race([Promise.all(sends), timeout]);
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
    if (event === 'completed')
      for (const t of targets) if (!answered.has(t)) t.missedCompleted = true;
    debug('%s sent to %d tracker(s) in %dms', event, targets.length, Date.now() - started);
  }

  private schedule(tier: TierState, delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(tier.timer);
    const ms = Math.max(0, Math.min(delayMs, 2 ** 31 - 1));
    tier.nextAt = Date.now() + ms;
    tier.timer = setTimeout(() => {
      tier.timer = undefined;
      tier.nextAt = Infinity;
      void this.runRound(tier);
    }, ms);
    tier.timer.unref();
  }

  private buildRequest(event: AnnounceEvent | undefined, wantPeers = false): AnnounceRequest {
    let s = { uploaded: 0, downloaded: 0, left: 0 };
    try {
      s = this.opts.stats();
    } catch (err) {
      debug('stats callback failed: %s', describeError(err));
    }
    const req: AnnounceRequest = {
      infoHash: this.opts.infoHash,
      peerId: this.opts.peerId,
      port: this.opts.port,
      uploaded: s.uploaded,
      downloaded: s.downloaded,
      left: s.left,
      key: this.key,
      numWant:
        (event === 'stopped' || event === 'completed') && !wantPeers
          ? 0
          : (this.opts.numWant ?? DEFAULT_NUM_WANT),
    };
    if (event) req.event = event;
    return req;
  }

  /**
   * Waits for one of the maxInFlight slots (see the module comment); `urgent` ones (trackers that
   * answered before) go ahead of the others. Rejects, leaving the queue, when `signal` aborts.
   */
  private acquire(signal: AbortSignal, urgent: boolean): Promise<void> {
    signal.throwIfAborted();
    if (this.inFlightCount < this.maxInFlight) {
      this.inFlightCount++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const entry = {
        urgent,
        go: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const after = urgent ? this.waiting.findIndex((w) => !w.urgent) : -1;
      if (after >= 0) this.waiting.splice(after, 0, entry);
      else this.waiting.push(entry);
    });
  }

  /** Hands the slot to the next announce waiting, if any. */
  private release(): void {
    const next = this.waiting.shift();
    if (next) next.go();
    else this.inFlightCount--;
  }

  /** One announce, once it has a slot; `onSent` is called when it goes out. */
  private async request(
    t: TrackerState,
    event: AnnounceEvent | undefined,
    o: {
      signal: AbortSignal;
      timeoutMs?: number;
      udpRetry?: UdpRetryOptions;
      onSent?: () => void;
      /** Ask for peers with a `completed` (or `stopped`), which asks for none otherwise. */
      wantPeers?: boolean;
    },
  ): Promise<AnnounceResponse> {
    await this.acquire(o.signal, t.answered);
    try {
      // The stats of the moment it goes out, not of when it was queued.
      const req = this.buildRequest(event, o.wantPeers);
      const timeoutMs = o.timeoutMs ?? this.opts.announceTimeoutMs;
      o.onSent?.();
      const common = { signal: o.signal, timeoutMs, peersFrom: t.peersFrom, ...this.local };
      let res: AnnounceResponse;
      if (t.scheme === 'http') {
        if (t.trackerId !== undefined) req.trackerId = t.trackerId;
        res = await announceHttp(t.url, req, common);
        if (res.trackerId !== undefined) t.trackerId = res.trackerId;
      } else {
        res = await announceUdp(t.url, req, { ...common, retry: o.udpRetry ?? this.opts.udpRetry });
      }
      // A long list is read on from here next time (see PeerCollector).
      t.peersFrom += MAX_PEERS_PER_REPLY;
      return res;
    } finally {
      this.release();
    }
  }

  /**
   * One regular announce to one tracker; never rejects (undefined on failure). `onSent` is
   * called when it goes out (it may wait for a slot first).
   */
  private async announceTo(
    t: TrackerState,
    onSent?: () => void,
  ): Promise<AnnounceResponse | undefined> {
    if (t.inFlight) return undefined; // already being asked by an earlier round
    const event: AnnounceEvent | undefined = t.startedAcked ? undefined : 'started';
    const controller = new AbortController();
    t.inFlight = controller;
    try {
      const res = await this.request(t, event, { signal: controller.signal, onSent });
      if (this.stopped) return undefined;
      t.answered = true;
      t.lastFailure = undefined;
      t.missedCompleted = false;
      if (event === 'started') t.startedAcked = true;
      debug('%s: answered (%s): %d peers', t.url, event ?? 'regular', res.peers.length);
      this.emit('announce', t.url, res);
      // Named like a failure (which tracker said it, among many), and said once: a tracker
      // repeats its warning in every answer.
      const said = [res.warning, res.malformed].filter((w) => w !== undefined).join('; ');
      if (said !== '' && said !== t.lastWarning) {
        this.emit('warning', `tracker ${t.url}: ${said}`, t.url);
      }
      t.lastWarning = said === '' ? undefined : said;
      const peers = res.peers.filter((p) => !this.isSelf(p));
      if (peers.length > 0) this.emit('peers', peers, t.url);
      return res;
    } catch (err) {
      if (this.stopped) return undefined;
      const message =
        err instanceof TdlError ? err.message : `tracker ${t.url}: ${describeError(err)}`;
      t.failedOnce = true;
      // Retries of a dead tracker fail the same way every time: said once, not at each retry.
      const repeated = message === t.lastFailure;
      t.lastFailure = message;
      debug('%s: failed: %s', t.url, message);
      if (!repeated) this.emit('warning', message, t.url);
      this.maybeEmitAllFailed();
      return undefined;
    } finally {
      if (t.inFlight === controller) t.inFlight = undefined;
    }
  }

  private maybeEmitAllFailed(): void {
    if (!this.allFailedEmitted && this.allFailed) {
      this.allFailedEmitted = true;
      debug('every tracker failed');
      this.emit('allFailed');
      // Said at once, not only in the final error: the tiers keep retrying meanwhile.
      const n = this.all.length;
      this.emit(
        'warning',
        n === 0
          ? 'no usable tracker'
          : `${n === 1 ? 'the only tracker' : `every tracker (${n})`} failed; still retrying`,
        '',
      );
    }
  }

  /** One announce round of a tier (see the module comment). */
  private runRound(tier: TierState): Promise<void> {
    if (tier.running || this.stopped) return Promise.resolve();
    tier.running = true;
    const order = tier.trackers.slice();
    let next = 0;
    let pending = 0;
    let done = false;
    let hedge: NodeJS.Timeout | undefined;

    return new Promise<void>((resolve) => {
      const finish = (): void => {
        clearTimeout(hedge);
        tier.running = false;
        tier.lastRoundEndAt = Date.now();
        resolve();
      };

      const onSuccess = (t: TrackerState, res: AnnounceResponse): void => {
        if (done) return;
        done = true;
        const i = tier.trackers.indexOf(t);
        if (i > 0) {
          tier.trackers.splice(i, 1);
          tier.trackers.unshift(t);
        }
        tier.failedRounds = 0;
        tier.lastSuccessAt = Date.now();
        const peers = new Set(res.peers.map((p) => `${p.host}:${p.port}`));
        let fresh = false;
        for (const p of peers) if (!tier.lastPeers.has(p)) fresh = true;
        tier.staleAnswers = fresh ? 0 : tier.staleAnswers + 1;
        tier.lastPeers = peers;
        tier.minIntervalMs = res.minInterval !== undefined ? res.minInterval * 1000 : undefined;
        finish();
        this.schedule(tier, Math.max(res.interval * 1000, this.timing.minReannounceMs));
        applyPendingRequest();
      };

      const onAllFailed = (): void => {
        done = true;
        tier.failedRounds++;
        finish();
        const delay = this.afterFailures(this.timing.retryAfterFailureMs, tier);
        debug(
          'tier %d (%s): every tracker failed, retrying in %dms',
          tier.index,
          tier.trackers.map((t) => t.url).join(', '),
          delay,
        );
        this.schedule(tier, delay);
        applyPendingRequest();
      };

      const applyPendingRequest = (): void => {
        if (!tier.moreRequested) return;
        tier.moreRequested = false;
        this.bringForward(tier);
      };

      const launchNext = (): void => {
        clearTimeout(hedge);
        hedge = undefined;
        if (done || this.stopped) {
          if (!done) {
            done = true;
            finish();
          }
          return;
        }
        const t = order[next++];
        if (!t) {
          if (pending === 0) onAllFailed();
          return;
        }
        pending++;
        const launched = next;
        // The hedge counts from when the announce goes out: waiting for a slot is not silence.
        const onSent = (): void => {
          if (done || this.stopped || launched !== next || next >= order.length) return;
          clearTimeout(hedge);
          hedge = setTimeout(launchNext, this.timing.hedgeMs);
          hedge.unref();
        };
        void this.announceTo(t, onSent).then((res) => {
          pending--;
          if (done) return;
          if (res) onSuccess(t, res);
          else if (this.stopped) {
            done = true;
            finish();
          } else if (next < order.length) launchNext();
          else if (pending === 0) onAllFailed();
        });
      };

      launchNext();
    });
  }
}
