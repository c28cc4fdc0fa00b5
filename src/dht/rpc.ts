/**
 * The KRPC endpoint: one UDP socket, our outstanding transactions and the queries we answer.
 *
 * - Every query we send gets a fresh 2-byte transaction id and a timeout; the reply must come
 *   from the address we queried and carry that id, else it is dropped.
 * - At most `maxInFlight` queries are outstanding; up to MAX_QUEUED more wait their turn and
 *   anything beyond that is refused at once.
 * - Incoming datagrams above MAX_DATAGRAM_BYTES, malformed ones and queries over the
 *   per-address rate limit are dropped without an answer.
 */
import type { Socket, RemoteInfo } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { logger } from '../log.js';
import { DhtBusyError, DhtError, DhtTimeoutError, TdlError } from '../errors.js';
import { decodeKrpc, encodeQuery, MAX_DATAGRAM_BYTES } from './krpc.js';
import type { KrpcQuery, KrpcResponse, QueryArgs, QueryMethod } from './krpc.js';
import { RateLimiter } from './rate-limit.js';
import type { RateLimitOptions } from './rate-limit.js';

const debug = logger('tdl:dht');

export const DEFAULT_QUERY_TIMEOUT_MS = 4000;
export const DEFAULT_MAX_IN_FLIGHT = 64;
export const MAX_QUEUED = 512;

export interface Endpoint {
  host: string;
  port: number;
}

export interface RpcOptions {
  queryTimeoutMs?: number;
  maxInFlight?: number;
  rateLimit?: RateLimitOptions;
  now?: () => number;
}

interface Pending {
  host: string;
  port: number;
  resolve: (r: KrpcResponse) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export interface RpcStats {
  sent: number;
  received: number;
  dropped: number;
  rateLimited: number;
  timeouts: number;
}

export class KrpcSocket extends EventEmitter<{ query: [KrpcQuery, Endpoint] }> {
  private socket: Socket | null = null;
  private readonly pending = new Map<string, Pending>();
  private readonly queue: { run: () => void; reject: (e: Error) => void }[] = [];
  private inFlight = 0;
  private nextTid = Math.floor(Math.random() * 0x10000);
  private readonly limiter: RateLimiter;
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  readonly stats: RpcStats = { sent: 0, received: 0, dropped: 0, rateLimited: 0, timeouts: 0 };
  /** Our node id: replies carrying it (our own echo, or a spoof) are dropped. */
  selfId: Buffer | null = null;

  constructor(opts: RpcOptions = {}) {
    super();
    this.timeoutMs = opts.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
    this.maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.limiter = new RateLimiter(opts.rateLimit, opts.now);
  }

  /** Binds to `host:port` (port 0 = ephemeral); resolves with the bound port. */
  bind(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      // node:dgram is loaded when the DHT starts, not at every start of tdl.
      const socket = process.getBuiltinModule('node:dgram').createSocket({ type: 'udp4' });
      const onError = (err: Error): void => {
        socket.close();
        reject(err);
      };
      socket.once('error', onError);
      socket.bind(port, host, () => {
        socket.off('error', onError);
        socket.on('error', (err) => debug('socket error: %s', err.message));
        socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
        this.socket = socket;
        resolve(socket.address().port);
      });
    });
  }

  get port(): number {
    return this.socket ? this.socket.address().port : 0;
  }

  inFlightCount(): number {
    return this.inFlight;
  }

  /**
   * Sends a query; resolves with the reply, rejects with DhtTimeoutError (no answer in time),
   * DhtBusyError (not sent: the queue is full or the socket closed) or DhtError (a send failed).
   */
  query(
    to: Endpoint,
    method: QueryMethod,
    id: Buffer,
    args: QueryArgs = {},
  ): Promise<KrpcResponse> {
    if (!this.socket) return Promise.reject(new DhtBusyError('DHT socket is closed'));
    if (this.inFlight < this.maxInFlight) return this.send(to, method, id, args);
    if (this.queue.length >= MAX_QUEUED) {
      return Promise.reject(new DhtBusyError('too many DHT queries queued'));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({
        run: () => void this.send(to, method, id, args).then(resolve, reject),
        reject,
      });
    });
  }

  private send(
    to: Endpoint,
    method: QueryMethod,
    id: Buffer,
    args: QueryArgs,
  ): Promise<KrpcResponse> {
    const socket = this.socket;
    if (!socket) return Promise.reject(new DhtBusyError('DHT socket is closed'));
    let key: string;
    let t: Buffer;
    do {
      this.nextTid = (this.nextTid + 1) & 0xffff;
      t = Buffer.from([this.nextTid >> 8, this.nextTid & 0xff]);
      key = t.toString('hex');
    } while (this.pending.has(key));
    this.inFlight++;
    return new Promise<KrpcResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.stats.timeouts++;
        this.finish(key)?.reject(
          new DhtTimeoutError(`DHT ${method} to ${to.host}:${to.port} timed out`),
        );
      }, this.timeoutMs);
      this.pending.set(key, { host: to.host, port: to.port, resolve, reject, timer });
      const buf = encodeQuery(t, method, id, args);
      this.stats.sent++;
      socket.send(buf, to.port, to.host, (err) => {
        if (err) this.finish(key)?.reject(new DhtError(`DHT send to ${to.host}: ${err.message}`));
      });
    });
  }

  /** Removes a transaction and lets the next queued query go. */
  private finish(key: string): Pending | undefined {
    const p = this.pending.get(key);
    if (!p) return undefined;
    clearTimeout(p.timer);
    this.pending.delete(key);
    this.inFlight--;
    const next = this.queue.shift();
    if (next) next.run();
    return p;
  }

  /** Sends an already-encoded reply. */
  reply(to: Endpoint, buf: Buffer): void {
    if (!this.socket) return;
    this.stats.sent++;
    this.socket.send(buf, to.port, to.host, (err) => {
      if (err) debug('reply to %s:%d failed: %s', to.host, to.port, err.message);
    });
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    this.stats.received++;
    if (msg.length > MAX_DATAGRAM_BYTES || rinfo.port === 0) {
      this.stats.dropped++;
      return;
    }
    let m;
    try {
      m = decodeKrpc(msg);
    } catch (err) {
      // Only DhtError is expected; anything else is still a bad datagram, never a crash.
      this.stats.dropped++;
      const why = err instanceof TdlError ? err.message : `unexpected ${String(err)}`;
      debug('dropped datagram from %s:%d: %s', rinfo.address, rinfo.port, why);
      return;
    }
    const from = { host: rinfo.address, port: rinfo.port };
    if (m.y === 'q') {
      if (!this.limiter.allow(rinfo.address)) {
        this.stats.rateLimited++;
        return;
      }
      try {
        this.emit('query', m, from);
      } catch (err) {
        debug('query from %s:%d not answered: %s', from.host, from.port, String(err));
      }
      return;
    }
    const key = m.t.toString('hex');
    const p = this.pending.get(key);
    if (!p || p.host !== rinfo.address || p.port !== rinfo.port) {
      this.stats.dropped++;
      debug('dropped reply from %s:%d: unknown transaction %s', rinfo.address, rinfo.port, key);
      return;
    }
    if (m.y === 'r' && this.selfId && m.id.equals(this.selfId)) {
      this.stats.dropped++;
      return; // keep waiting: the real node may still answer
    }
    this.finish(key);
    if (m.y === 'e') p.reject(new DhtError(`DHT node error ${m.code}: ${m.message}`));
    else p.resolve(m);
  }

  /** Closes the socket; every outstanding and queued query is rejected. */
  close(): Promise<void> {
    const socket = this.socket;
    this.socket = null;
    for (const q of this.queue.splice(0)) q.reject(new DhtBusyError('DHT closed'));
    for (const key of [...this.pending.keys()]) {
      this.finish(key)?.reject(new DhtBusyError('DHT closed'));
    }
    if (!socket) return Promise.resolve();
    return new Promise((resolve) => socket.close(() => resolve()));
  }
}
