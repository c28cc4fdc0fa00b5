/**
 * Iterative Kademlia lookup (BEP 5) for `find_node` or `get_peers`.
 *
 * Candidates are kept sorted by XOR distance to the target (at most MAX_CANDIDATES; the
 * farthest are dropped). Up to `alpha` queries are in flight, always to the closest candidates
 * not yet asked among the K closest that have not failed. A query unanswered after `slowMs`
 * stops counting against `alpha` and no longer holds a place among those K (it may still
 * answer until its own timeout), so dead nodes delay a lookup's progress by `slowMs`, not by
 * the full query timeout; at most MAX_OUTSTANDING queries of one lookup are outstanding. The lookup ends when those K closest
 * have all answered, when nobody is left to ask, after `maxQueries` queries, or after
 * `timeoutMs` — whichever comes first. Late answers after the end are ignored.
 *
 * Contacts without a known id (bootstrap hosts) are asked first; their id is learned from the
 * answer. Pure apart from the `query` function it is given and one timer.
 */
import { compareDistance } from './node-id.js';
import type { KrpcResponse, NodeInfo } from './krpc.js';
import type { PeerAddress } from '../tracker/types.js';

export const ALPHA = 3;
export const LOOKUP_K = 8;
export const MAX_CANDIDATES = 200;
export const MAX_LOOKUP_QUERIES = 300;
export const LOOKUP_TIMEOUT_MS = 30_000;
/** After this long without an answer a query no longer holds one of the `alpha` slots. */
export const SLOW_QUERY_MS = 1000;
/** Outstanding queries of one lookup, slow ones included. */
export const MAX_OUTSTANDING = 12;
/** Distinct peers one lookup remembers (the rest are not reported). */
export const MAX_LOOKUP_PEERS = 2000;

/** A contact to start from; `id` null when unknown (a bootstrap host). */
export interface Seed {
  id: Buffer | null;
  host: string;
  port: number;
}

export interface LookupOptions {
  target: Buffer;
  seeds: readonly Seed[];
  /** Sends the lookup's query (find_node or get_peers) to one node. */
  query: (node: Seed) => Promise<KrpcResponse>;
  alpha?: number;
  k?: number;
  maxQueries?: number;
  timeoutMs?: number;
  slowMs?: number;
  /** Contacts never to ask (ourselves). */
  skip?: (n: NodeInfo) => boolean;
  onPeers?: (peers: PeerAddress[]) => void;
  onResponse?: (node: NodeInfo) => void;
  /** A query failed: `err` is what the query function rejected with. */
  onFailure?: (node: Seed, err: unknown) => void;
  signal?: AbortSignal;
}

export interface LookupResult {
  /** The K closest nodes that answered, closest first, with the token each gave. */
  closest: { node: NodeInfo; token?: Buffer }[];
  queried: number;
  responded: number;
  /** Distinct peers this lookup reported (getPeers may sum two passes). */
  peers: number;
  /** Why it ended. */
  end: 'converged' | 'exhausted' | 'max-queries' | 'timeout' | 'aborted';
}

type CandState = 'new' | 'pending' | 'done' | 'failed';
interface Cand {
  id: Buffer | null;
  host: string;
  port: number;
  state: CandState;
  token?: Buffer;
  /** Unanswered for longer than slowMs: no longer counted against alpha. */
  slow?: boolean;
}

export function lookup(opts: LookupOptions): Promise<LookupResult> {
  const alpha = opts.alpha ?? ALPHA;
  const k = opts.k ?? LOOKUP_K;
  const maxQueries = opts.maxQueries ?? MAX_LOOKUP_QUERIES;
  const target = opts.target;
  const cands: Cand[] = [];
  const byAddr = new Map<string, Cand>();
  const peerSeen = new Set<string>();
  let queried = 0;
  let responded = 0;
  /** Outstanding queries, slow ones included. */
  let inFlight = 0;
  /** Outstanding queries that are not slow (these count against alpha). */
  let active = 0;
  const slowMs = opts.slowMs ?? SLOW_QUERY_MS;
  const slowTimers = new Set<NodeJS.Timeout>();
  let ended = false;

  const order = (a: Cand, b: Cand): number => {
    if (!a.id || !b.id) return (a.id ? 1 : 0) - (b.id ? 1 : 0); // unknown ids first
    return compareDistance(target, a.id, b.id);
  };

  const addCand = (s: Seed): void => {
    if (!Number.isInteger(s.port) || s.port <= 0 || s.port > 65535) return;
    if (s.id && opts.skip?.({ id: s.id, host: s.host, port: s.port })) return;
    const key = `${s.host}|${s.port}`;
    if (byAddr.has(key)) return;
    const c: Cand = {
      id: s.id ? Buffer.from(s.id) : null,
      host: s.host,
      port: s.port,
      state: 'new',
    };
    byAddr.set(key, c);
    cands.push(c);
  };

  const trim = (): void => {
    cands.sort(order);
    while (cands.length > MAX_CANDIDATES) {
      const c = cands.pop()!;
      byAddr.delete(`${c.host}|${c.port}`);
    }
  };

  for (const s of opts.seeds) addCand(s);
  trim();

  return new Promise<LookupResult>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => finish('aborted');

    function finish(end: LookupResult['end']): void {
      if (ended) return;
      ended = true;
      if (timer) clearTimeout(timer);
      for (const t of slowTimers) clearTimeout(t);
      slowTimers.clear();
      opts.signal?.removeEventListener('abort', onAbort);
      const closest = cands
        .filter((c) => c.state === 'done' && c.id)
        .slice(0, k)
        .map((c) => {
          const node = { id: c.id!, host: c.host, port: c.port };
          return c.token ? { node, token: c.token } : { node };
        });
      resolve({ closest, queried, responded, peers: peerSeen.size, end });
    }

    function pump(): void {
      if (ended) return;
      // The K closest candidates that have not failed decide what happens next.
      let considered = 0;
      let allDone = true;
      for (const c of cands) {
        if (considered >= k) break;
        if (c.state === 'failed') continue;
        if (c.slow && c.state === 'pending') {
          // Still awaited, but it no longer keeps a farther node out of the window.
          allDone = false;
          continue;
        }
        considered++;
        if (c.state === 'done') continue;
        allDone = false;
        if (c.state === 'new' && active < alpha && inFlight < MAX_OUTSTANDING) {
          if (queried >= maxQueries) break;
          ask(c);
        }
      }
      if (considered > 0 && allDone) return finish('converged');
      if (inFlight === 0) {
        if (queried >= maxQueries) return finish('max-queries');
        return finish(considered === 0 ? 'exhausted' : 'converged');
      }
    }

    function ask(c: Cand): void {
      c.state = 'pending';
      inFlight++;
      active++;
      queried++;
      const slowTimer = setTimeout(() => {
        slowTimers.delete(slowTimer);
        if (ended || c.state !== 'pending') return;
        c.slow = true;
        active--;
        pump();
      }, slowMs);
      slowTimers.add(slowTimer);
      const settle = (): void => {
        clearTimeout(slowTimer);
        slowTimers.delete(slowTimer);
        inFlight--;
        if (!c.slow) active--;
      };
      opts.query({ id: c.id, host: c.host, port: c.port }).then(
        (r) => {
          settle();
          if (ended) return;
          // The id is taken from the answer (a seed's id may be unknown or stale).
          c.id = Buffer.from(r.id);
          if (opts.skip?.({ id: c.id, host: c.host, port: c.port })) {
            c.state = 'failed';
            return pump();
          }
          c.state = 'done';
          if (r.token) c.token = r.token;
          responded++;
          opts.onResponse?.({ id: c.id, host: c.host, port: c.port });
          for (const n of r.nodes) addCand(n);
          trim();
          if (r.values.length > 0) {
            const fresh: PeerAddress[] = [];
            for (const p of r.values) {
              const key = `${p.host}|${p.port}`;
              if (peerSeen.has(key) || peerSeen.size >= MAX_LOOKUP_PEERS) continue;
              peerSeen.add(key);
              fresh.push(p);
            }
            if (fresh.length > 0) opts.onPeers?.(fresh);
          }
          pump();
        },
        (err: unknown) => {
          settle();
          if (ended) return;
          c.state = 'failed';
          opts.onFailure?.({ id: c.id, host: c.host, port: c.port }, err);
          pump();
        },
      );
    }

    if (opts.signal?.aborted) return finish('aborted');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(() => finish('timeout'), opts.timeoutMs ?? LOOKUP_TIMEOUT_MS);
    pump();
  });
}
