/**
 * The DHT as a peer source for one torrent, with the same interface as the tracker announcer
 * (src/swarm/download.ts PeerSource): emits 'peers' and 'warning'.
 *
 * get_peers runs at start, then again after a random 5–15 minutes; after each lookup we
 * announce our TCP port to the closest nodes that gave us a token (when `announcePort` is
 * set). `requestMore` starts a lookup early, at most one per REQUEST_MORE_MIN_MS.
 *
 * A lookup that fails is a 'warning', once while lookups keep failing the same way (a node
 * that cannot reach the DHT runs one a minute while the download is short of peers), again
 * after a lookup that nodes answered: the rule trackers follow.
 */
import { EventEmitter } from 'node:events';
import { logger } from '../log.js';
import type { Dht } from './dht.js';
import type { PeerAddress } from '../tracker/types.js';

const debug = logger('tdl:dht');

export const REFRESH_MIN_MS = 5 * 60_000;
export const REFRESH_MAX_MS = 15 * 60_000;
export const REQUEST_MORE_MIN_MS = 60_000;
/** Distinct peer addresses one torrent's DHT source remembers and reports. */
export const MAX_DHT_PEERS = 5000;

export interface DhtPeerSourceOptions {
  /** Our TCP port; undefined = don't announce. */
  announcePort?: number;
  /** Tests: the clock and the random source for the 5–15 minute schedule. */
  now?: () => number;
  random?: () => number;
}

export class DhtPeerSource extends EventEmitter<{
  peers: [PeerAddress[]];
  warning: [string];
}> {
  failures: { url: string; message: string }[] = [];
  /** The warning last given, until a lookup is answered again. */
  private lastWarning: string | undefined;
  private readonly found = new Set<string>();
  private running = false;
  private stopped = false;
  private lastStart = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private readonly ctrl = new AbortController();
  private readonly now: () => number;
  private readonly random: () => number;
  /** Settles when the running lookup (and its announce) ends. */
  private current: Promise<void> = Promise.resolve();
  /** Lookups started and finished (with their announce) so far (tests, diagnostics). */
  lookups = 0;
  lookupsDone = 0;
  /** The last lookup ended with no node answering (or failed). */
  private unanswered = false;
  /**
   * Nodes joined the table outside a lookup (a torrent's `nodes`, a cached node, a bootstrap
   * that ended): a lookup that found no node is tried again now, not a minute or more later.
   */
  private readonly onJoined = (): void => {
    this.joinedDuring = true;
    if (this.unanswered && !this.running && !this.stopped) this.run();
  };
  /**
   * A node announced to ours that it is a peer of this torrent: a peer at once, not at the next
   * lookup. Two nodes that only know each other (a LAN without trackers) find each other so:
   * the one that looks up second announces to the first, which then dials it.
   */
  private readonly onAnnounced = (infoHash: Buffer, peer: PeerAddress): void => {
    if (infoHash.equals(this.infoHash)) this.onPeers([peer]);
  };
  /** Nodes joined while the running lookup ran: if it finds no node, it goes again at once. */
  private joinedDuring = false;

  constructor(
    private readonly dht: Dht,
    private readonly infoHash: Buffer,
    private readonly opts: DhtPeerSourceOptions = {},
  ) {
    super();
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
  }

  start(): void {
    this.dht.on('joined', this.onJoined);
    this.dht.on('announced', this.onAnnounced);
    // Peers that announced to our own node before this source listened (the node answers
    // queries while a seed checks its data); those after come through `announced`.
    this.onPeers(this.dht.announcedPeers(this.infoHash));
    this.run();
  }

  requestMore(): void {
    if (this.stopped || this.running) return;
    const wait = this.lastStart + REQUEST_MORE_MIN_MS - this.now();
    if (wait <= 0) return this.run();
    this.schedule(wait);
  }

  complete(): Promise<void> {
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.dht.off('joined', this.onJoined);
    this.dht.off('announced', this.onAnnounced);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.ctrl.abort();
    await this.current;
  }

  peersFound(): number {
    return this.found.size;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.run();
    }, ms);
    this.timer.unref();
  }

  private onPeers(peers: PeerAddress[]): void {
    const fresh: PeerAddress[] = [];
    for (const p of peers) {
      const key = `${p.host}|${p.port}`;
      if (this.found.has(key) || this.found.size >= MAX_DHT_PEERS) continue;
      this.found.add(key);
      fresh.push(p);
    }
    if (fresh.length > 0 && !this.stopped) this.emit('peers', fresh);
  }

  private run(): void {
    if (this.stopped || this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.running = true;
    this.lastStart = this.now();
    this.lookups++;
    this.joinedDuring = false;
    this.current = this.lookupAndAnnounce().finally(() => {
      this.running = false;
      this.lookupsDone++;
      if (this.unanswered && this.joinedDuring) return this.run();
      this.schedule(REFRESH_MIN_MS + this.random() * (REFRESH_MAX_MS - REFRESH_MIN_MS));
    });
  }

  private async lookupAndAnnounce(): Promise<void> {
    try {
      const r = await this.dht.getPeers(this.infoHash, {
        onPeers: (p) => this.onPeers(p),
        signal: this.ctrl.signal,
      });
      debug(
        'get_peers %s: %d answered, %d peers, %s',
        this.infoHash.toString('hex'),
        r.responded,
        r.peers,
        r.end,
      );
      if (this.stopped) return;
      this.unanswered = r.responded === 0;
      if (r.responded === 0) {
        this.failures = [{ url: 'dht', message: 'no DHT node answered' }];
        this.warn('DHT: no node answered');
        return;
      }
      this.failures = [];
      this.lastWarning = undefined;
      if (this.opts.announcePort !== undefined) {
        const n = await this.dht.announce(
          this.infoHash,
          this.opts.announcePort,
          r.closest,
          this.ctrl.signal,
        );
        debug('announced port %d to %d nodes', this.opts.announcePort, n);
      }
    } catch (err) {
      if (this.stopped) return;
      this.unanswered = true;
      this.failures = [{ url: 'dht', message: (err as Error).message }];
      this.warn(`DHT: ${(err as Error).message}`);
    }
  }

  /** Emits `message`, unless it was the last one given (see the module comment). */
  private warn(message: string): void {
    if (message === this.lastWarning) return;
    this.lastWarning = message;
    this.emit('warning', message);
  }
}
