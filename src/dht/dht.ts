/**
 * The DHT service (BEP 5, IPv4): one UDP socket, one routing table, one node id per run (kept
 * in the cache), answers to other nodes' queries, and the lookups the download asks for.
 * See docs/DESIGN.md, "DHT", for the state machine and the caps.
 */
import { EventEmitter, setMaxListeners } from 'node:events';
import { logger } from '../log.js';
import { DhtBusyError, DhtError, systemErrorText, TdlError } from '../errors.js';
import { dirname } from 'node:path';
import { takePidLock } from '../pid-lock.js';
import { makeFolders } from '../storage/fs-util.js';
import { defaultCacheFile, loadCache, saveCache } from './cache.js';
import { encodeError, encodeResponse, ERR_METHOD_UNKNOWN, ERR_PROTOCOL } from './krpc.js';
import type { KrpcQuery, NodeInfo } from './krpc.js';
import { lookup } from './lookup.js';
import type { LookupResult, Seed } from './lookup.js';
import { commonPrefixBits, compareDistance, randomId, randomIdInBucket } from './node-id.js';
import { K, RoutingTable } from './routing-table.js';
import { RateLimiter } from './rate-limit.js';
import { KrpcSocket } from './rpc.js';
import type { Endpoint, RpcOptions } from './rpc.js';
import { MAX_PEERS_PER_HASH, PeerStore } from './store.js';
import { TokenIssuer } from './tokens.js';
import { ipFamily } from '../tracker/compact.js';
import type { PeerAddress } from '../tracker/types.js';

const debug = logger('tdl:dht');

export const DEFAULT_BOOTSTRAP: readonly Endpoint[] = [
  { host: 'router.bittorrent.com', port: 6881 },
  { host: 'dht.transmissionbt.com', port: 6881 },
  { host: 'router.utorrent.com', port: 6881 },
  { host: 'dht.libtorrent.org', port: 25401 },
];

/** Lookups that may wait on the DHT's own stop signal at once before Node warns of a leak. */
const MAX_WAITING_LOOKUPS = 1024;
/** Table maintenance (pings, bucket refreshes, re-bootstrap when nearly empty). */
export const MAINTENANCE_MS = 60_000;
export const SAVE_EVERY_MS = 5 * 60_000;
const PINGS_PER_ROUND = 8;
/** A node that queried us is pinged (to join the table) at most this often per address. */
const VERIFY_AGAIN_MS = 5 * 60_000;
/** Pings to nodes that queried us, at most, each second; and addresses remembered. */
const VERIFY_PER_SECOND = 10;
const MAX_VERIFIED_KEPT = 1_024;
const REFRESHES_PER_ROUND = 2;
const DNS_TIMEOUT_MS = 5000;
/** One query to the DNS servers for a bootstrap name (then the system resolver is asked). */
const DNS_QUERY_TIMEOUT_MS = 1000;
export const MAX_EXTRA_CONTACTS = 64;
/**
 * Cached nodes a lookup starts from (the closest to its target); the cache's others, up to
 * MAX_EXTRA_CONTACTS, are pinged in the background and join the table when they answer. A
 * cache of nodes long gone filled a lookup's window with dead nodes, each holding it for
 * SLOW_QUERY_MS, and starved the routers' answers for the lookup's whole 30 s.
 */
export const CACHED_SEEDS = 16;

export interface DhtOptions {
  /** UDP port; 0 = ephemeral. When the port is taken, an ephemeral one is used instead. */
  port?: number;
  /** Address to bind, default '0.0.0.0'. */
  bind?: string;
  /** When given, only these are used (no router defaults). */
  bootstrap?: Endpoint[];
  /** null = no cache (tests); default: $XDG_CACHE_HOME/tdl/dht.dat or ~/.cache/tdl/dht.dat. */
  cacheFile?: string | null;
  /** Extra contacts, e.g. the torrent's `nodes`. */
  nodes?: Endpoint[];
  /** Tests: per-query timeout, in-flight cap, rate limit, clock. */
  rpc?: RpcOptions;
  /** Tests: per-lookup time limit (ms). */
  lookupTimeoutMs?: number;
}

export interface GetPeersOptions {
  onPeers?: (peers: PeerAddress[]) => void;
  signal?: AbortSignal;
}

export class Dht extends EventEmitter<{
  warning: [string];
  /** Nodes joined the table from outside a lookup (see DhtPeerSource: a failed lookup retries). */
  joined: [];
  /**
   * A node announced (announce_peer, its token checked) that it is a peer of this torrent at
   * this address: DhtPeerSource takes it at once for a torrent of ours.
   */
  announced: [infoHash: Buffer, peer: PeerAddress];
}> {
  private readonly rpc: KrpcSocket;
  private table: RoutingTable;
  private readonly tokens = new TokenIssuer();
  private readonly store = new PeerStore();
  private readonly cacheFile: string | null;
  private readonly bindHost: string;
  private readonly ctrl = new AbortController();
  private timers: NodeJS.Timeout[] = [];
  private bootstrapDone: Promise<void> = Promise.resolve();
  /** Settles when the bootstrap and extra contacts are resolved (DNS) into `seeds`. */
  private seedsReady: Promise<void> = Promise.resolve();
  /** Nodes from the cache file (not in the table until they answer). */
  private cachedSeeds: Seed[] = [];
  private saving: Promise<void> = Promise.resolve();
  /** The last save's failure, until a save succeeds. */
  private saveFailure: string | undefined;
  /** Releases the cache's lock: set while this node owns the cache's id (see claimCache). */
  private releaseCache: (() => Promise<void>) | null = null;
  private lastBootstrap = 0;
  private started = false;
  /** start()'s work, settled once it is over (stop() waits for it). */
  private starting: Promise<void> = Promise.resolve();
  private stopped = false;
  private id: Buffer;
  /** Bootstrap and extra contacts, resolved to IPv4 addresses. */
  private seeds: Endpoint[] = [];
  /** Pings to nodes that queried us (see verifyQuerier): per address, and in all. */
  private readonly verifyEach = new RateLimiter({
    burst: 1,
    ratePerSecond: 1000 / VERIFY_AGAIN_MS,
    maxTracked: MAX_VERIFIED_KEPT,
  });
  private readonly verifyAll = new RateLimiter({
    burst: VERIFY_PER_SECOND,
    ratePerSecond: VERIFY_PER_SECOND,
    maxTracked: 1,
  });

  constructor(private readonly opts: DhtOptions = {}) {
    super();
    this.rpc = new KrpcSocket(opts.rpc);
    // Every lookup waiting for the bootstrap listens to stop() while it waits, and removes its
    // listener when done: many lookups at once (one per torrent, or a burst) are not a leak.
    setMaxListeners(MAX_WAITING_LOOKUPS, this.ctrl.signal);
    this.id = randomId();
    this.table = new RoutingTable(this.id);
    this.cacheFile = opts.cacheFile === undefined ? defaultCacheFile() : opts.cacheFile;
    this.bindHost = opts.bind ?? '0.0.0.0';
    this.rpc.on('query', (q, from) => this.onQuery(q, from));
  }

  get port(): number {
    return this.rpc.port;
  }

  get nodeId(): Buffer {
    return this.id;
  }

  /** Good and questionable nodes in the table. */
  nodeCount(): number {
    return this.table.liveCount();
  }

  /**
   * Binds, loads the cache, and bootstraps in the background. Throws DhtError when no UDP port
   * can be bound (the caller may go on without the DHT).
   */
  start(): Promise<void> {
    if (!this.started && !this.stopped) {
      this.started = true;
      this.starting = this.startNow();
    }
    return this.starting;
  }

  /** start()'s steps; each one after a wait first checks that stop() has not run meanwhile. */
  private async startNow(): Promise<void> {
    if (this.opts.cacheFile === undefined && this.cacheFile === null) {
      this.emit('warning', 'the DHT keeps no cache: no home folder is known (set XDG_CACHE_HOME)');
    }
    const owner = await this.claimCache();
    if (this.stopped) return;
    const cached = await this.loadCached();
    if (this.stopped) return;
    if (cached && owner) {
      this.id = cached.id;
      this.table = new RoutingTable(this.id);
    }
    this.rpc.selfId = this.id;
    const want = this.opts.port ?? 0;
    try {
      await this.rpc.bind(want, this.bindHost);
    } catch (err) {
      debug('UDP port %d unavailable (%s); using an ephemeral port', want, (err as Error).message);
      try {
        if (want === 0) throw err;
        await this.rpc.bind(0, this.bindHost);
      } catch (err2) {
        throw new DhtError(`cannot listen on UDP ${this.bindHost}: ${(err2 as Error).message}`);
      }
    }
    if (this.stopped) return; // stop() closes the socket once this step is over
    debug('listening on udp %s:%d, id %s', this.bindHost, this.port, this.id.toString('hex'));
    this.cachedSeeds = cached ? cached.nodes : [];
    const base = this.opts.bootstrap ?? DEFAULT_BOOTSTRAP;
    const extra = (this.opts.nodes ?? []).slice(0, MAX_EXTRA_CONTACTS);
    const contacts = extra.length > 0 ? this.resolveAll(extra) : Promise.resolve([]);
    this.seedsReady = Promise.all([this.resolveAll(base), contacts]).then(([routers, nodes]) => {
      // The bootstrap contacts are routers: they start lookups, never enter the table.
      for (const r of routers) this.table.refuse(r.host, r.port);
      this.seeds = [...routers, ...nodes];
    });
    const first = this.closestCached(this.id);
    this.bootstrapDone = this.bootstrap(first);
    this.pingContacts(
      this.cachedSeeds.filter((n) => !first.includes(n)).slice(0, MAX_EXTRA_CONTACTS),
    );
    const maint = setInterval(() => void this.maintain(), MAINTENANCE_MS);
    const save = setInterval(() => void this.save(), SAVE_EVERY_MS);
    maint.unref();
    save.unref();
    this.timers.push(maint, save);
  }

  /**
   * Saves the cache, closes the socket, clears every timer, ends running lookups. During
   * start(), it waits for start()'s current step (taking the cache's lock, binding), which then
   * goes no further: what that step took is released here.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.ctrl.abort(); // running lookups end now; the bootstrap stops after its DNS step
    await this.starting.catch(() => {});
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.started) await this.save();
    await this.releaseCache?.();
    this.releaseCache = null;
    await this.rpc.close();
  }

  /**
   * Takes the cache's lock (`<cache>.lock`, holding our pid): a node id is one node's, so a
   * second tdl running beside the first (two downloads, `tdl info` of a magnet during a
   * download) must not answer with the same id: each would take the other's queries and replies
   * for reflections of its own. True when this node may use the cached id and write the cache;
   * otherwise it takes a random id, still starts from the cached nodes, and writes nothing.
   */
  private async claimCache(): Promise<boolean> {
    if (!this.cacheFile) return false;
    const file = `${this.cacheFile}.lock`;
    try {
      await makeFolders(dirname(file));
      const lock = await takePidLock(file);
      if ('heldBy' in lock) {
        debug('the DHT cache is in use by pid %d: a node id of our own', lock.heldBy);
        return false;
      }
      this.releaseCache = lock.release;
      return true;
    } catch (err) {
      // No lock, no cache to write either (the same folder): a node id of our own, and said,
      // as a cache that cannot be written is (a read-only or missing cache folder).
      debug('cannot lock the DHT cache (%s)', (err as Error).message);
      this.emit(
        'warning',
        `cannot write the DHT cache ${this.cacheFile}: ${systemErrorText(err)} (each run starts without it)`,
      );
      return false;
    }
  }

  private async loadCached(): Promise<{ id: Buffer; nodes: NodeInfo[] } | null> {
    if (!this.cacheFile) return null;
    try {
      return await loadCache(this.cacheFile);
    } catch (err) {
      this.emit('warning', `ignoring the DHT cache ${this.cacheFile}: ${(err as Error).message}`);
      return null;
    }
  }

  /** Saves one after the other (the periodic save and the one at stop share a temp file). */
  private save(): Promise<void> {
    this.saving = this.saving.then(() => this.saveNow());
    return this.saving;
  }

  private async saveNow(): Promise<void> {
    if (!this.cacheFile || !this.releaseCache) return;
    const nodes = this.table.all().filter((n) => this.table.state(n) !== 'bad');
    if (nodes.length === 0) return; // keep an older, useful cache
    try {
      await saveCache(this.cacheFile, { id: this.id, nodes });
      this.saveFailure = undefined;
    } catch (err) {
      // Said once while saves keep failing the same way (a full disk), not every 5 minutes.
      const message = (err as Error).message;
      if (message !== this.saveFailure) this.emit('warning', message);
      this.saveFailure = message;
    }
  }

  /**
   * Resolves host names to IPv4. Names with a dot go to the DNS servers directly (`resolve4`):
   * `dns.lookup` would first test the name with `net.isIP`, whose IPv6 pattern costs 20-40 ms of
   * CPU to compile on first use, at start-up, on the download's critical path (docs/DESIGN.md,
   * "Start-up"); it would also hold a thread-pool thread that file operations wait for. Single
   * labels (`localhost`, a LAN host), and names the DNS servers do not answer, still go through
   * `lookup`: /etc/hosts, search domains and the rest of the system's resolver.
   */
  private async resolveAll(list: readonly Endpoint[]): Promise<Endpoint[]> {
    const out: Endpoint[] = [];
    // One short try, so that the system resolver still has time within DNS_TIMEOUT_MS when the
    // DNS servers do not answer (offline, a LAN named by /etc/hosts).
    // node:dns/promises is loaded here, when the DHT starts, not at every start of tdl.
    const { lookup: dnsLookup, Resolver } = await import('node:dns/promises');
    const resolver = new Resolver({ timeout: DNS_QUERY_TIMEOUT_MS, tries: 1 });
    const resolveName = async (host: string): Promise<string> => {
      if (!host.includes('.')) return (await dnsLookup(host, { family: 4 })).address;
      // A name the DNS servers do not know (one in /etc/hosts only, or no server configured)
      // still goes through the system resolver.
      const a = (await resolver.resolve4(host).catch(() => []))[0];
      return a ?? (await dnsLookup(host, { family: 4 })).address;
    };
    await Promise.all(
      list.map(async (e) => {
        if (!Number.isInteger(e.port) || e.port <= 0 || e.port > 65535) return;
        const family = ipFamily(e.host);
        if (family === 4) {
          out.push(e);
          return;
        }
        if (family === 6) return; // IPv4 only for now
        try {
          const timeout = new Promise<never>((_, reject) => {
            const t = setTimeout(() => reject(new Error('DNS timeout')), DNS_TIMEOUT_MS);
            t.unref();
          });
          const address = await Promise.race([resolveName(e.host), timeout]);
          out.push({ host: address, port: e.port });
        } catch (err) {
          debug('cannot resolve %s: %s', e.host, (err as Error).message);
        }
      }),
    );
    resolver.cancel(); // queries still out after their timeout
    return out;
  }

  private async bootstrap(cached: readonly Seed[]): Promise<void> {
    this.lastBootstrap = Date.now();
    await this.seedsReady;
    if (this.stopped) return;
    const seeds: Seed[] = [
      ...this.table.closest(this.id, K),
      ...cached,
      ...this.seeds.map((e) => ({ id: null, host: e.host, port: e.port })),
    ];
    const r = await this.runLookup(this.id, 'find_node', seeds, {});
    debug(
      'bootstrap: %d answered, %d nodes in the table (%s)',
      r.responded,
      this.nodeCount(),
      r.end,
    );
    // A bootstrap node that answered is a node to look up through, even when it gave no other
    // (a LAN where each node is only another's --dht-bootstrap, and the routers do not join
    // the table): a lookup that found no node then runs again now, not 5-15 minutes later.
    if ((this.nodeCount() > 0 || r.responded > 0) && !this.stopped) this.emit('joined');
  }

  /** The cached nodes a lookup for `target` starts from: the CACHED_SEEDS closest to it. */
  private closestCached(target: Buffer): Seed[] {
    if (this.cachedSeeds.length <= CACHED_SEEDS) return this.cachedSeeds;
    return [...this.cachedSeeds]
      .sort((a, b) => compareDistance(target, a.id!, b.id!))
      .slice(0, CACHED_SEEDS);
  }

  /** Ping each contact; those that answer join the table ('joined'). */
  private pingContacts(list: readonly Endpoint[]): void {
    for (const e of list) {
      if (this.stopped) return;
      this.rpc.query(e, 'ping', this.id).then(
        (r) => {
          const n = { id: r.id, host: e.host, port: e.port };
          if (this.isSelf(n) || this.stopped) return;
          this.table.responded(n);
          this.emit('joined');
        },
        () => undefined,
      );
    }
  }

  /**
   * Extra contacts after start (e.g. a torrent's `nodes`): resolved, then pinged; those that
   * answer join the table ('joined'). They are also contacts that later cold lookups and
   * bootstraps start from, as the routers are. At most MAX_EXTRA_CONTACTS per call.
   */
  addContacts(list: readonly Endpoint[]): void {
    if (!this.started || this.stopped) return;
    void Promise.all([this.resolveAll(list.slice(0, MAX_EXTRA_CONTACTS)), this.seedsReady]).then(
      ([resolved]) => {
        const known = new Set(this.seeds.map((e) => `${e.host}|${e.port}`));
        for (const e of resolved) {
          const key = `${e.host}|${e.port}`;
          if (known.has(key) || this.seeds.length >= 2 * MAX_EXTRA_CONTACTS) continue;
          known.add(key);
          this.seeds.push(e);
        }
        this.pingContacts(resolved);
      },
    );
  }

  /** Periodic upkeep: ping questionable nodes, refresh stale buckets, re-bootstrap if empty. */
  private async maintain(): Promise<void> {
    if (this.stopped) return;
    for (const n of this.table.toPing(PINGS_PER_ROUND)) {
      this.rpc.query(n, 'ping', this.id).then(
        (r) => this.table.responded({ id: r.id, host: n.host, port: n.port }),
        (err: unknown) => this.queryFailed(n, err),
      );
    }
    if (this.nodeCount() < K && Date.now() - this.lastBootstrap >= MAINTENANCE_MS) {
      this.bootstrapDone = this.bootstrap([]);
      return;
    }
    for (const b of this.table.staleBuckets().slice(0, REFRESHES_PER_ROUND)) {
      this.table.markRefreshed(b);
      const target = randomIdInBucket(this.id, b);
      void this.runLookup(target, 'find_node', this.table.closest(target, K), {});
    }
  }

  /**
   * Counts a failed query against its node, unless we never sent it (our queue was full, or we
   * are closing): a busy moment of ours must not make good nodes bad.
   */
  private queryFailed(n: Endpoint, err: unknown): void {
    if (!(err instanceof DhtBusyError)) this.table.failed(n.host, n.port);
  }

  /**
   * A node that queried us and is not in the table is pinged, and joins it when it answers
   * (BEP 5: its answer shows the address is its own). A node only ever queried (a seed's node
   * that others bootstrap from) learnt of no one otherwise, and answered every `find_node` with
   * no node: nodes that knew only it never learnt of each other. One ping per address per
   * VERIFY_AGAIN_MS, VERIFY_PER_SECOND in all.
   */
  private verifyQuerier(sender: NodeInfo): void {
    if (this.table.get(sender.host, sender.port)) return;
    if (!this.verifyEach.allow(`${sender.host}|${sender.port}`)) return;
    if (!this.verifyAll.allow('')) return;
    this.pingContacts([{ host: sender.host, port: sender.port }]);
  }

  private isSelf(n: NodeInfo): boolean {
    if (n.id.equals(this.id)) return true;
    if (n.port !== this.port) return false;
    return n.host === this.bindHost || n.host.startsWith('127.') || n.host === '0.0.0.0';
  }

  private runLookup(
    target: Buffer,
    method: 'find_node' | 'get_peers',
    seeds: Seed[],
    o: GetPeersOptions,
  ): Promise<LookupResult> {
    const signal = o.signal ? AbortSignal.any([o.signal, this.ctrl.signal]) : this.ctrl.signal;
    const args = method === 'find_node' ? { target } : { infoHash: target };
    return lookup({
      target,
      seeds,
      signal,
      ...(this.opts.lookupTimeoutMs !== undefined ? { timeoutMs: this.opts.lookupTimeoutMs } : {}),
      query: (n) => this.rpc.query(n, method, this.id, args),
      skip: (n) => this.isSelf(n),
      onResponse: (n) => this.table.responded(n),
      onFailure: (n, err) => this.queryFailed(n, err),
      ...(o.onPeers ? { onPeers: o.onPeers } : {}),
    });
  }

  /**
   * Iterative get_peers for an info hash. Peers are reported through `onPeers` as they come;
   * the result names the closest nodes that answered, with their tokens (for `announce`).
   */
  async getPeers(infoHash: Buffer, o: GetPeersOptions = {}): Promise<LookupResult> {
    if (!this.started || this.stopped) throw new TdlError('no-peers', 'the DHT is not running');
    // No need to wait for the bootstrap lookup: while the table is small, this lookup starts
    // from the same contacts the bootstrap does.
    const seeds: Seed[] = this.table.closest(infoHash, K * 2);
    const cold = seeds.length < K;
    if (cold) {
      await this.untilAborted(this.seedsReady, o.signal);
      seeds.push(...this.closestCached(infoHash));
      for (const e of this.seeds) seeds.push({ id: null, host: e.host, port: e.port });
    }
    const first = await this.runLookup(infoHash, 'get_peers', seeds, o);
    if (!cold || first.closest.length >= K || first.end === 'aborted') return first;
    // Started cold and met fewer than K nodes (a node that has peers answers with them instead
    // of with nodes, which can end a lookup early): once the bootstrap has filled the table,
    // look again from it, so announces reach the nodes that are really the closest.
    await this.untilAborted(this.bootstrapDone, o.signal);
    if (this.stopped || o.signal?.aborted || this.nodeCount() <= first.responded) return first;
    const again: Seed[] = [
      ...first.closest.map((c) => c.node),
      ...this.table.closest(infoHash, K * 2),
    ];
    const second = await this.runLookup(infoHash, 'get_peers', again, o);
    return {
      closest: second.closest.length >= first.closest.length ? second.closest : first.closest,
      queried: first.queried + second.queried,
      responded: first.responded + second.responded,
      peers: first.peers + second.peers,
      end: second.end,
    };
  }

  /** Waits for `p`, or less when `signal` or stop() aborts first. */
  private untilAborted(p: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
    const signals = signal ? [signal, this.ctrl.signal] : [this.ctrl.signal];
    if (signals.some((s) => s.aborted)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        for (const s of signals) s.removeEventListener('abort', done);
        resolve();
      };
      for (const s of signals) s.addEventListener('abort', done, { once: true });
      p.then(done, done);
    });
  }

  /**
   * announce_peer to each node with its token. `port` undefined = implied port (our UDP
   * source port). Resolves with how many nodes accepted.
   */
  async announce(
    infoHash: Buffer,
    port: number | undefined,
    nodes: readonly { node: NodeInfo; token?: Buffer }[],
    signal?: AbortSignal,
  ): Promise<number> {
    const tasks = nodes
      .filter((n) => n.token)
      .map((n) =>
        this.rpc
          .query(n.node, 'announce_peer', this.id, {
            infoHash,
            token: n.token!,
            port: port ?? this.port,
            impliedPort: port === undefined,
          })
          .then(
            () => 1,
            () => 0,
          ),
      );
    // Aborted: resolves at once with the nodes that accepted so far; the queries left end
    // within their timeout, or when the socket closes.
    let accepted = 0;
    const all = Promise.all(tasks.map((t) => t.then((n) => void (accepted += n))));
    await this.untilAborted(
      all.then(() => {}),
      signal,
    );
    return accepted;
  }

  private onQuery(q: KrpcQuery, from: Endpoint): void {
    if (this.stopped) return;
    const sender: NodeInfo = { id: q.id, host: from.host, port: from.port };
    if (q.id.equals(this.id)) return; // our own id: a reflection or a spoof
    this.table.queried(sender);
    this.verifyQuerier(sender);
    const t = q.t;
    switch (q.q) {
      case 'ping':
        return this.rpc.reply(from, encodeResponse(t, this.id));
      case 'find_node': {
        if (!q.args.target) return this.rpc.reply(from, encodeError(t, ERR_PROTOCOL, 'no target'));
        const nodes = this.table.closest(q.args.target, K);
        return this.rpc.reply(from, encodeResponse(t, this.id, { nodes }));
      }
      case 'get_peers': {
        const ih = q.args.infoHash;
        if (!ih) return this.rpc.reply(from, encodeError(t, ERR_PROTOCOL, 'no info_hash'));
        const token = this.tokens.issue(from.host);
        const values = this.store.get(ih);
        const body =
          values.length > 0 ? { token, values } : { token, nodes: this.table.closest(ih, K) };
        return this.rpc.reply(from, encodeResponse(t, this.id, body));
      }
      case 'announce_peer': {
        const ih = q.args.infoHash;
        if (!ih) return this.rpc.reply(from, encodeError(t, ERR_PROTOCOL, 'no info_hash'));
        if (!this.tokens.check(from.host, q.args.token)) {
          return this.rpc.reply(from, encodeError(t, ERR_PROTOCOL, 'bad token'));
        }
        const port = q.args.impliedPort ? from.port : q.args.port;
        if (port === undefined || port <= 0) {
          return this.rpc.reply(from, encodeError(t, ERR_PROTOCOL, 'bad port'));
        }
        this.store.add(ih, { host: from.host, port });
        this.rpc.reply(from, encodeResponse(t, this.id));
        this.emit('announced', ih, { host: from.host, port });
        return;
      }
      default:
        return this.rpc.reply(from, encodeError(t, ERR_METHOD_UNKNOWN, 'method unknown'));
    }
  }

  /** Peers that nodes announced to this one for this torrent (live entries, any order). */
  announcedPeers(infoHash: Buffer): PeerAddress[] {
    return this.store.get(infoHash, MAX_PEERS_PER_HASH);
  }

  /** Diagnostics for tests and --verbose. */
  stats(): {
    nodes: number;
    tableSize: number;
    storedInfoHashes: number;
    rpc: KrpcSocket['stats'];
  } {
    return {
      nodes: this.nodeCount(),
      tableSize: this.table.size(),
      storedInfoHashes: this.store.infoHashCount(),
      rpc: this.rpc.stats,
    };
  }

  /** Tests: the bucket a node id would go in. */
  bucketOf(id: Buffer): number {
    return commonPrefixBits(this.id, id);
  }
}
export { DhtPeerSource } from './peer-source.js';
export type { DhtPeerSourceOptions } from './peer-source.js';
