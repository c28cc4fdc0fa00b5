/**
 * The DHT routing table (BEP 5): k-buckets of K nodes, indexed by how many leading bits a
 * node's id shares with ours (0..159), so the table never holds more than MAX_TABLE_NODES.
 * Pure: time comes from the `now` function given to the constructor; no I/O.
 *
 * Node states (docs/DESIGN.md, "DHT"):
 * - good: answered one of our queries within the last 15 minutes, or answered us once and
 *   queried us within the last 15 minutes;
 * - questionable: known, not good, fewer than BAD_AFTER_FAILURES failed queries in a row;
 * - bad: BAD_AFTER_FAILURES or more failed queries in a row. Bad nodes are replaced first.
 *
 * Only nodes that answered one of our queries (`responded`) enter the table. A node that merely
 * queried us, or that another node named in a reply, is not added: a flood of queries or of
 * bogus `nodes` cannot fill the table, nor steer our lookups towards addresses that never answer.
 *
 * One node per public IP address in the whole table, and one per /24 in a bucket: a single host
 * (or a single network) answering from many ports with many ids cannot take over buckets, nor
 * the nodes our lookups start from. Addresses of a local network (loopback, RFC 1918, link-local,
 * 100.64.0.0/10) are exempt: several nodes behind one such address are normal on a LAN or a
 * test host. A node already there keeps its place; a bad one gives it up to the newcomer.
 */
import { commonPrefixBits, compareDistance, ID_BITS } from './node-id.js';
import type { NodeInfo } from './krpc.js';

export const K = 8;
export const GOOD_FOR_MS = 15 * 60_000;
export const BAD_AFTER_FAILURES = 2;
/** Hard cap: 160 buckets of K nodes. */
export const MAX_TABLE_NODES = ID_BITS * K;

export type NodeState = 'good' | 'questionable' | 'bad';

export interface TableNode extends NodeInfo {
  /** Last answer to one of our queries (ms, 0 = never). */
  lastResponse: number;
  /** Last query from this node (ms, 0 = never). */
  lastQuery: number;
  /** Failed queries in a row. */
  failures: number;
  /** When it entered the table. */
  added: number;
}

function addrKey(host: string, port: number): string {
  return `${host}|${port}`;
}

/** The four numbers of a dotted IPv4 address, or null. */
function ipv4(host: string): number[] | null {
  const parts = host.split('.');
  if (parts.length !== 4) return null;
  const n = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  return n.every((x) => x <= 255) ? n : null;
}

/**
 * Whether several DHT nodes may share this address: loopback, private (RFC 1918), link-local
 * and carrier-grade NAT (100.64.0.0/10) IPv4 addresses, and anything that is not IPv4.
 */
export function sharedAddressAllowed(host: string): boolean {
  const a = ipv4(host);
  if (!a) return true;
  const [x, y] = a as [number, number];
  return (
    x === 127 ||
    x === 10 ||
    (x === 172 && y >= 16 && y <= 31) ||
    (x === 192 && y === 168) ||
    (x === 169 && y === 254) ||
    (x === 100 && y >= 64 && y <= 127)
  );
}

/** The /24 an IPv4 address is in ('a.b.c'), or the address itself. */
function subnet24(host: string): string {
  return host.slice(0, host.lastIndexOf('.'));
}

export class RoutingTable {
  private readonly buckets: TableNode[][] = [];
  /** Last time each bucket saw a change or an answer (for refreshes). */
  private readonly touched: number[] = [];
  private readonly byAddr = new Map<string, TableNode>();
  /** Nodes at public addresses, by IP (one each). */
  private readonly byIp = new Map<string, TableNode>();
  /** Addresses never taken (the bootstrap routers). */
  private readonly refused = new Set<string>();

  constructor(
    readonly self: Buffer,
    private readonly now: () => number = Date.now,
  ) {
    const t = now();
    for (let i = 0; i <= ID_BITS; i++) {
      this.buckets.push([]);
      this.touched.push(t);
    }
  }

  state(n: TableNode): NodeState {
    if (n.failures >= BAD_AFTER_FAILURES) return 'bad';
    const t = this.now();
    if (n.lastResponse > 0 && t - n.lastResponse < GOOD_FOR_MS) return 'good';
    if (n.lastResponse > 0 && n.lastQuery > 0 && t - n.lastQuery < GOOD_FOR_MS) return 'good';
    return 'questionable';
  }

  /** Nodes in the table (any state). */
  size(): number {
    return this.byAddr.size;
  }

  /** Good and questionable nodes. */
  liveCount(): number {
    let n = 0;
    for (const node of this.byAddr.values()) if (this.state(node) !== 'bad') n++;
    return n;
  }

  all(): TableNode[] {
    return [...this.byAddr.values()];
  }

  get(host: string, port: number): TableNode | undefined {
    return this.byAddr.get(addrKey(host, port));
  }

  /**
   * Never takes a node at this address, and drops the one there: bootstrap routers start
   * lookups, but they only know other nodes (they keep no peers), so they take no bucket slot,
   * are asked nothing a table node would be, and stay out of the cache.
   */
  refuse(host: string, port: number): void {
    this.refused.add(addrKey(host, port));
    this.remove(host, port);
  }

  /** A node answered one of our queries. Returns true when it is (now) in the table. */
  responded(info: NodeInfo): boolean {
    const n = this.insert(info, true);
    if (!n) return false;
    n.lastResponse = this.now();
    n.failures = 0;
    this.touched[commonPrefixBits(this.self, n.id)] = this.now();
    return true;
  }

  /** A node queried us: refreshes it when it is in the table (never adds it). */
  queried(info: NodeInfo): void {
    const n = this.known(info);
    if (n) n.lastQuery = this.now();
  }

  /** One of our queries to this address failed (timeout or error). */
  failed(host: string, port: number): void {
    const n = this.byAddr.get(addrKey(host, port));
    if (n) n.failures++;
  }

  remove(host: string, port: number): void {
    const n = this.byAddr.get(addrKey(host, port));
    if (!n) return;
    const b = this.buckets[commonPrefixBits(this.self, n.id)]!;
    b.splice(b.indexOf(n), 1);
    this.byAddr.delete(addrKey(host, port));
    if (this.byIp.get(host) === n) this.byIp.delete(host);
  }

  /** Up to `count` non-bad nodes closest to `target`, closest first. */
  closest(target: Buffer, count = K): TableNode[] {
    return this.all()
      .filter((n) => this.state(n) !== 'bad')
      .sort((a, b) => compareDistance(target, a.id, b.id))
      .slice(0, count);
  }

  /** Questionable nodes worth a ping (oldest contact first), at most `max`. */
  toPing(max: number): TableNode[] {
    return this.all()
      .filter((n) => this.state(n) === 'questionable')
      .sort((a, b) => Math.max(a.lastResponse, a.added) - Math.max(b.lastResponse, b.added))
      .slice(0, max);
  }

  /**
   * Buckets (as common-prefix lengths) not touched for `ms`, up to the deepest non-empty
   * bucket (deeper ones are empty because nobody is that close to us).
   */
  staleBuckets(ms = GOOD_FOR_MS): number[] {
    let deepest = -1;
    for (let i = ID_BITS; i >= 0; i--) {
      if (this.buckets[i]!.length > 0) {
        deepest = i;
        break;
      }
    }
    const out: number[] = [];
    const t = this.now();
    for (let i = 0; i <= deepest; i++) if (t - this.touched[i]! >= ms) out.push(i);
    return out;
  }

  markRefreshed(bucket: number): void {
    this.touched[bucket] = this.now();
  }

  private known(info: NodeInfo): TableNode | undefined {
    const n = this.byAddr.get(addrKey(info.host, info.port));
    return n && n.id.equals(info.id) ? n : undefined;
  }

  /**
   * Puts a node in its bucket if there is room, or in place of a bad node, or (only for a node
   * that answered) in place of the stalest questionable node. Null when it does not fit.
   */
  private insert(info: NodeInfo, answered: boolean): TableNode | null {
    // (`answered` is false only for callers that add unverified contacts; none do today.)
    if (info.id.equals(this.self)) return null;
    if (!Number.isInteger(info.port) || info.port <= 0 || info.port > 65535) return null;
    const key = addrKey(info.host, info.port);
    if (this.refused.has(key)) return null;
    const existing = this.byAddr.get(key);
    if (existing) {
      if (existing.id.equals(info.id)) return existing;
      // Same address, new id: the node restarted. Trust it only when it answered us.
      if (!answered) return null;
      this.remove(info.host, info.port);
    }
    const bucketIndex = commonPrefixBits(this.self, info.id);
    const bucket = this.buckets[bucketIndex]!;
    if (!sharedAddressAllowed(info.host)) {
      // One node per public IP in the table, one per /24 in a bucket; a bad holder gives way.
      const net = subnet24(info.host);
      const holders = new Set<TableNode>(bucket.filter((n) => subnet24(n.host) === net));
      const sameIp = this.byIp.get(info.host);
      if (sameIp) holders.add(sameIp);
      for (const h of holders) if (this.state(h) !== 'bad') return null;
      for (const h of holders) this.remove(h.host, h.port);
    }
    if (bucket.length >= K) {
      let victim = bucket.find((n) => this.state(n) === 'bad');
      if (!victim && answered) {
        const q = bucket.filter((n) => this.state(n) === 'questionable');
        q.sort((a, b) => b.failures - a.failures || a.lastResponse - b.lastResponse);
        victim = q[0];
      }
      if (!victim) return null;
      this.remove(victim.host, victim.port);
    }
    const node: TableNode = {
      id: Buffer.from(info.id),
      host: info.host,
      port: info.port,
      lastResponse: 0,
      lastQuery: 0,
      failures: 0,
      added: this.now(),
    };
    bucket.push(node);
    this.byAddr.set(key, node);
    if (!sharedAddressAllowed(info.host)) this.byIp.set(info.host, node);
    this.touched[bucketIndex] = this.now();
    return node;
  }
}
