/**
 * Web seeds (BEP 19) inside the swarm: which pieces the picker hands them, and what happens to
 * a piece a web seed fetched. The HTTP side (ranges, back-off, bans) is src/webseed/.
 *
 * A web seed takes whole pieces no peer has started, reserved in the picker under one owner.
 * With none left (the endgame), it fetches a piece peers hold too, the one of fewest blocks
 * received (a slow peer's last piece would otherwise hold the download up for as long as that
 * peer takes), at most one such piece per web seed at a time. The first copy counts: when the
 * web seed's arrives, the peers' requests for that piece are taken back, and once the piece is
 * filled those peers are given other work (before, its blocks would still be free to ask for).
 * A piece peers hold stays theirs when the web seed's fetch fails. See docs/DESIGN.md, "Web
 * seeds".
 */
import { logger } from '../log.js';
import type { Metainfo } from '../metainfo/torrent.js';
import type { Layout } from '../storage/layout.js';
import {
  WEB_SEED_BACKOFF_BASE_MS,
  WEB_SEED_BACKOFF_MAX_MS,
  WEB_SEED_TIMEOUT_MS,
} from '../webseed/client.js';
import { WebSeeds } from '../webseed/scheduler.js';
import { otherFamily } from '../tracker/compact.js';
import type { PiecePicker, PieceInProgress } from './picker.js';
import type { ReadLimiter } from './rate-limit.js';
import type { Waste } from './requests.js';

const log = logger('tdl:swarm');

/** The picker's owner of pieces reserved for web seeds. */
export const WEB_SEED_OWNER = 'web seeds';

export interface WebSeedFeedHost {
  picker: PiecePicker;
  /**
   * Take back the peers' requests for every block of `p`; returns what gives those peers other
   * work (called once the piece is filled).
   */
  takeBack(p: PieceInProgress): () => void;
  /** Verify and store a filled piece; false when its hash did not match. */
  store(p: PieceInProgress): boolean;
  /** A piece was freed: peers may want it. */
  wake(): void;
  warn(message: string): void;
  fail(e: Error): void;
  /** `--max-download-rate`: web seed bytes count with the peers'. */
  limiter: ReadLimiter | null;
  /** `--bind`. */
  localAddress: string | undefined;
  /** `--timeout` (ms): a failing web seed is asked again within it (see backoffCap). */
  stallTimeoutMs: number;
  /** Where a copy that came too late (peers completed the piece first) is counted. */
  waste: Waste;
}

/**
 * Why web seed `url` cannot be reached from `localAddress` (`--bind`): an IP address of the
 * other family. Undefined when it can be, may be (a name), or is not a URL (the seed says so).
 */
export function webSeedOtherFamily(
  url: string,
  localAddress: string | undefined,
): string | undefined {
  try {
    return otherFamily(new URL(url), localAddress);
  } catch {
    return undefined;
  }
}

/**
 * Longest back-off of a failing web seed: a third of `--timeout` (within the usual bounds), so
 * that a seed that recovers is asked again at least twice before the download gives up for
 * want of data. Doubling up to 5 min, a seed failing for 40 s was next asked at 75 s: past a
 * `--timeout 60`, with the seed answering since 40 s.
 */
export function backoffCap(stallTimeoutMs: number): number {
  const third = Math.floor(stallTimeoutMs / 3);
  return Math.min(WEB_SEED_BACKOFF_MAX_MS, Math.max(WEB_SEED_BACKOFF_BASE_MS, third));
}

/**
 * A web seed's wait for headers, and for each gap in a body: at most half of `--timeout` (2 s at
 * least). A mirror that accepts and never answers held its pieces the 20 s of the default while
 * another mirror sat idle, and `--timeout 15` gave up with the good one answering.
 */
export function replyTimeout(stallTimeoutMs: number): number {
  return Math.min(WEB_SEED_TIMEOUT_MS, Math.max(2_000, Math.floor(stallTimeoutMs / 2)));
}

/** Start fetching from `urls`; the caller stops the result. */
export function startWebSeedFeed(
  urls: readonly string[],
  meta: Metainfo,
  layout: Layout,
  host: WebSeedFeedHost,
): WebSeeds {
  const { picker, limiter } = host;
  // A web seed at an address of the other family than --bind cannot be reached: said once, and
  // left out (it failed at every try with the system's "bind EINVAL").
  const usable = urls.filter((url) => {
    const why = webSeedOtherFamily(url, host.localAddress);
    if (why !== undefined) host.warn(`web seed ${url}: ${why}: not used`);
    return why === undefined;
  });
  /** Pieces peers hold that web seeds fetch as well. */
  const dupes = new Set<number>();
  const takeOver = (has: (index: number) => boolean): number | null => {
    if (dupes.size >= usable.length) return null;
    let best: PieceInProgress | null = null;
    for (const p of picker.inProgress.values()) {
      if (p.complete || p.owner === WEB_SEED_OWNER || dupes.has(p.index) || !has(p.index)) continue;
      if (best === null || p.receivedCount < best.receivedCount) best = p;
    }
    if (best === null) return null;
    dupes.add(best.index);
    log('piece %d: fetched from a web seed too (peers hold it)', best.index);
    return best.index;
  };
  const ws = new WebSeeds(usable, meta, layout, {
    pick: (has) => picker.reserveWhole(WEB_SEED_OWNER, has)?.index ?? takeOver(has),
    pickNext: (index) => picker.tryReserveWhole(WEB_SEED_OWNER, index) !== null,
    isFree: (index) => picker.isFree(index),
    onPiece: (index, data, url, fetched) => {
      const p = picker.inProgress.get(index);
      const taken = dupes.delete(index);
      // Peers finished it first: the copy is dropped (the bytes fetched for it: no padding).
      if (!p || p.complete) {
        host.waste.webSeed += fetched;
        return true;
      }
      const giveWork = taken ? host.takeBack(p) : null;
      picker.fillWhole(p, data, `web seed ${url}`);
      const ok = host.store(p);
      if (!ok) picker.abandon(index);
      giveWork?.();
      return ok;
    },
    onRelease: (index) => {
      if (!dupes.delete(index)) picker.abandon(index);
      queueMicrotask(() => host.wake());
    },
    onWarning: (m) => host.warn(m),
    onError: (e) => host.fail(e instanceof Error ? e : new Error(String(e))),
    seed: {
      ...(limiter
        ? { limit: { onRead: (n) => limiter.onRead(n), waitMs: () => limiter.bucket.waitMs(1) } }
        : {}),
      ...(host.localAddress === undefined ? {} : { localAddress: host.localAddress }),
      backoffMaxMs: backoffCap(host.stallTimeoutMs),
      timeoutMs: replyTimeout(host.stallTimeoutMs),
    },
  });
  ws.start();
  return ws;
}
